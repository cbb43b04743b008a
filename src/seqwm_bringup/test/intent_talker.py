"""Test helper process: publishes one realistic Intent repeatedly until killed (SIGINT)."""
import sys

import numpy as np
import rclpy
from rclpy.node import Node
from seqwm_msgs.msg import Intent


def make_intent(n: int, horizon: int, latent_dim: int, action_dim: int, tick: int) -> Intent:
    rng = np.random.default_rng(tick)
    msg = Intent()
    msg.header.frame_id = 'arena'
    msg.header.stamp.sec = 1234
    msg.header.stamp.nanosec = 500_000_000
    msg.tick = tick
    msg.model_set_id = 'test-model-set'
    msg.sender = 'go2w_1'
    msg.sender_index = 0
    msg.num_agents, msg.horizon, msg.latent_dim, msg.action_dim = n, horizon, latent_dim, action_dim
    msg.latents = rng.standard_normal(n * (horizon + 1) * latent_dim).astype(np.float32)
    msg.actions = rng.uniform(-1, 1, n * horizon * action_dim).astype(np.float32)
    msg.valid = [True] + [False] * (n - 1)
    msg.planner_iterations = 4
    msg.planner_value = 12.5
    msg.planner_time_ms = 7.25
    return msg


def main() -> None:
    n, horizon, latent_dim, action_dim = (int(a) for a in sys.argv[1:5])
    rclpy.init()
    node = Node('intent_talker')
    pub = node.create_publisher(Intent, '/go2w_1/intent', 10)
    tick = [0]

    def publish() -> None:
        pub.publish(make_intent(n, horizon, latent_dim, action_dim, tick[0]))
        tick[0] += 1

    node.create_timer(0.05, publish)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == '__main__':
    main()
