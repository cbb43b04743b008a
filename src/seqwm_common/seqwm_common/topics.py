"""The team's topic names and frame id, declared once (no ROS import: the graph, the security
policy, the demo, replay and the nodes all read them)."""

# relative names resolve in the robot's namespace, e.g. /go2w_2/intent
MOCAP_TOPIC = '/mocap/frame'
MOCAP_POSE_TOPIC = '/mocap/{body}/pose'
MOCAP_STATUS_TOPIC = '/mocap/status'
TF_TOPIC = '/tf'
PREDECESSOR_TOPIC = 'predecessor_intent'     # remapped to /<predecessor>/intent by the graph
INTENT_TOPIC = 'intent'
STATUS_TOPIC = 'status'
INPUTS_TOPIC = 'inputs'
MARKER_TOPIC = 'plan_markers'
CMD_TOPIC = 'cmd_vel'
ARENA_TRUTH_TOPIC = '/arena/truth'
ARENA_EPISODE_TOPIC = '/arena/episode'
FRAME_ID = 'arena'


def robot_topic(robot: str, name: str) -> str:
    """The absolute name of a robot's relative topic: robot_topic('go2w_2', INTENT_TOPIC)."""
    return f'/{robot}/{name}'
