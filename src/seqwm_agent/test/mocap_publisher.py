"""Test helper process: publishes seqwm_msgs/MocapFrame on /mocap/frame at a fixed rate.

Stamps are the wall clock (as the bridge stamps capture time). Bodies sit at fixed poses (the
nominal PushBox start, or --pose name=x,y,yaw), the box optionally circling slowly. A JSON control
file, re-read whenever it changes, steers the feed while it runs:

    {"publish": false}                 stop publishing (mocap gone)
    {"nan": ["go2w_2"]}                those bodies' positions are NaN
    {"untracked": ["box"]}             those bodies are flagged untracked
    {"poses": {"go2w_1": [9.5, 0, 0]}} move bodies

Every change of `publish` is appended to --events as a JSON line with the wall time, so a test
knows when the feed really stopped.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import rclpy
from geometry_msgs.msg import Pose
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from seqwm_msgs.msg import MocapFrame

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_team import POSES  # noqa: E402

QOS = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST, depth=1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--rate', type=float, default=50.0)
    ap.add_argument('--control', type=Path, default=None)
    ap.add_argument('--events', type=Path, default=None)
    ap.add_argument('--pose', action='append', default=[], help='name=x,y,yaw (replaces defaults)')
    ap.add_argument('--box-circle', type=float, default=0.0, help='radius of a slow box circle, m')
    a = ap.parse_args()
    poses = {k: list(v) for k, v in POSES.items()}
    if a.pose:
        poses = {}
        for item in a.pose:
            name, xyz = item.split('=')
            poses[name] = [float(v) for v in xyz.split(',')]

    rclpy.init()
    node = Node('mocap_bridge')     # it stands in for the team's bridge (the agents' mocap_source)
    pub = node.create_publisher(MocapFrame, '/mocap/frame', QOS)
    control = {'publish': True, 'nan': [], 'untracked': [], 'poses': {}}
    mtime = [None]
    frame = [0]

    def event(**kw) -> None:
        if a.events is not None:
            with open(a.events, 'a') as f:
                f.write(json.dumps({**kw, 't': time.time()}) + '\n')

    def read_control() -> None:
        if a.control is None:
            return
        try:
            m = os.stat(a.control).st_mtime_ns
        except FileNotFoundError:
            return
        if m == mtime[0]:
            return
        try:
            new = json.loads(a.control.read_text())
        except ValueError:
            return              # half-written; next cycle
        mtime[0] = m
        was = control['publish']
        control.update({'publish': True, 'nan': [], 'untracked': [], 'poses': {}})
        control.update(new)
        if control['publish'] != was:
            event(event='publish', value=control['publish'])

    def tick() -> None:
        read_control()
        if not control['publish']:
            return
        now = time.time()
        msg = MocapFrame()
        msg.header.frame_id = 'arena'
        sec = int(now)
        msg.header.stamp.sec, msg.header.stamp.nanosec = sec, int((now - sec) * 1e9)
        frame[0] += 1
        msg.frame_number = frame[0]
        current = {**poses, **{k: list(v) for k, v in control['poses'].items()}}
        for name, (x, y, yaw) in current.items():
            if name == 'box' and a.box_circle > 0:
                x += a.box_circle * math.cos(0.2 * now)
                y += a.box_circle * math.sin(0.2 * now)
            p = Pose()
            p.position.x, p.position.y, p.position.z = float(x), float(y), 0.3
            if name in control['nan']:
                p.position.x = float('nan')
            p.orientation.z, p.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
            msg.names.append(name)
            msg.poses.append(p)
            msg.tracked.append(name not in control['untracked'])
        pub.publish(msg)

    node.create_timer(1.0 / a.rate, tick)
    event(event='start')
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == '__main__':
    main()
