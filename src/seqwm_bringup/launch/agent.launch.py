"""`ros2 launch seqwm_bringup agent.launch.py robot:=go2w_1 [task:=pushbox] [robots:=go2w_1,go2w_2]`.

Starts only this robot's agent node (onboard the robot); the mocap bridge and the other robots run
elsewhere on the team network.
"""
from seqwm_bringup.launch_actions import agent_launch_description


def generate_launch_description():
    return agent_launch_description()
