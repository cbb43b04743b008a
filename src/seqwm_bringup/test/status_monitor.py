"""Test helper process: append every AgentStatus of some robots to a JSON-lines file.

    python status_monitor.py OUT.jsonl go2w_1 go2w_2
"""
from __future__ import annotations

import json
import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from seqwm_msgs.msg import AgentStatus


def main() -> None:
    out, robots = sys.argv[1], sys.argv[2:]
    rclpy.init()
    node = Node('status_monitor')
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    fh = open(out, 'a', buffering=1)

    def record(msg: AgentStatus) -> None:
        fh.write(json.dumps({'robot': msg.robot, 'tick': int(msg.tick), 'mode': int(msg.mode),
                             'trigger': int(msg.trigger), 'reason': msg.reason,
                             'command': [msg.command.linear.x, msg.command.linear.y,
                                         msg.command.angular.z],
                             'wall': time.time()}) + '\n')
    for r in robots:
        node.create_subscription(AgentStatus, f'/{r}/status', record, qos)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        fh.close()


if __name__ == '__main__':
    main()
