"""`python -m seqwm_bringup.strangers <mode>`: a stranger on the team's ROS domain, on purpose.

A lab network is shared; the likeliest intruder is a colleague replaying an old bag of this
project or starting a second bridge. This process plays such a stranger against a running team,
so a lab can check, before a robot day, that its team refuses them (and the tests do the same):

  mocap-host    /mocap/frame at --rate Hz, every robot displaced by --offset m, stamped with
                this host's clock (what a second bridge or a stale tool would send)
  mocap-follow  the same, stamped just after the newest real frame (on the team's own clock)
  twin-bridge   the real frames, displaced, from a node named like the team's bridge
                (/mocap_bridge): two publishers claim one role
  bag           a bag replayed live with its original topic names (`ros2 bag play` does the
                same), from a node named rosbag2_player, looped
  spoof-intent  the predecessor's intent for the current and the next tick, in range, with its
                sender's name and the commands reversed, at --rate Hz on /<robot>/intent
  flood-intent  stale, repeated and malformed intents at --rate Hz on /<robot>/intent

It runs until SIGINT, then writes what it sent (count, duration, achieved rate) to --report.
"""
from __future__ import annotations

import argparse
import copy
import json
import signal
import sys
import time
from pathlib import Path

from seqwm_common.topics import ARENA_TRUTH_TOPIC, INTENT_TOPIC, MOCAP_TOPIC, robot_topic

MODES = ('mocap-host', 'mocap-follow', 'twin-bridge', 'bag', 'spoof-intent', 'flood-intent')
MARK = 'stranger'     # header.frame_id of what this process sends: it hears its own messages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('mode', choices=MODES)
    ap.add_argument('--rate', type=float, default=1000.0, help='messages per second')
    ap.add_argument('--offset', type=float, default=2.0, help='displacement of the robots, m')
    ap.add_argument('--robot', default='go2w_1', help='whose intent to spoof or flood')
    ap.add_argument('--bag', type=Path, default=None, help='bag directory (mode bag)')
    ap.add_argument('--report', type=Path, default=None, help='JSON file written at exit')
    args = ap.parse_args(argv)

    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions
    from seqwm_msgs.msg import Intent, MocapFrame

    qos = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST,
                     depth=1)
    name = {'twin-bridge': 'mocap_bridge', 'bag': 'rosbag2_player'}.get(args.mode, 'stranger')
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(name)
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    latest: dict[str, object] = {}

    def keep(key: str):
        def store(m) -> None:
            if m.header.frame_id != MARK:          # the team's own traffic only
                latest[key] = m
        return store
    node.create_subscription(MocapFrame, MOCAP_TOPIC, keep('frame'), qos)
    intent_topic = robot_topic(args.robot, INTENT_TOPIC)
    node.create_subscription(Intent, intent_topic, keep('intent'), qos)
    frames = node.create_publisher(MocapFrame, MOCAP_TOPIC, qos)
    intents = node.create_publisher(Intent, intent_topic, qos)
    bag = _bag_messages(args.bag, node, qos) if args.mode == 'bag' else None

    sent, k, t0, first = 0, 0, time.monotonic(), None
    period = 1.0 / args.rate
    forged = Forger(args)
    while not stop:
        if k % 20 == 0:                  # the team's traffic, now and then: a stranger must be
            rclpy.spin_once(node, timeout_sec=0.0)    # cheap, or it steals the team's CPU
        k += 1
        if args.mode == 'bag':
            sent += bag(time.monotonic() - t0)
            first = t0
        else:
            data = forged.next(latest, k)
            if data is not None:
                (intents if args.mode.endswith('intent') else frames).publish(data)
                sent += 1
                first = time.monotonic() if first is None else first
        time.sleep(max(0.0, t0 + k * period - time.monotonic()))
    wall = time.monotonic() - (first if first is not None else t0)    # since the first sent
    if args.report:
        args.report.write_text(json.dumps({'mode': args.mode, 'node': node.get_fully_qualified_name(),
                                           'sent': sent, 'duration_s': round(wall, 3),
                                           'rate_hz': round(sent / wall, 1) if wall else 0.0}))
    node.destroy_node()
    rclpy.shutdown()
    return 0


class Forger:
    """The hostile messages of a mode, serialised: built again only when the team's own
    message they copy changes (a frame's stamp is set per message), so sending costs little."""

    def __init__(self, args) -> None:
        self.args = args
        self.source = None
        self.variants: list = []

    def next(self, latest: dict, k: int) -> bytes | None:
        from rclpy.serialization import serialize_message
        frame_mode = self.args.mode in ('mocap-host', 'mocap-follow', 'twin-bridge')
        real = latest.get('frame' if frame_mode else 'intent')
        if real is None:
            return None
        if real is not self.source:
            self.source, self.variants = real, self._variants(real)
        msg = self.variants[k % len(self.variants)]
        if frame_mode:
            if self.args.mode == 'mocap-host':
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
            elif self.args.mode == 'mocap-follow':    # just after the newest real frame
                msg.header.stamp.nanosec = min(real.header.stamp.nanosec + 1000 * (k % 900 + 1),
                                               999_999_999)
            msg.frame_number = real.frame_number + 1
            return serialize_message(msg)
        return msg

    def _variants(self, real) -> list:
        from rclpy.serialization import serialize_message
        msg = copy.deepcopy(real)
        msg.header.frame_id = MARK
        if self.args.mode in ('mocap-host', 'mocap-follow', 'twin-bridge'):
            for body, pose in zip(msg.names, msg.poses):
                if body.startswith('go2w'):
                    pose.position.x += self.args.offset
            return [msg]
        out = []
        if self.args.mode == 'spoof-intent':   # this tick and the next, in range, reversed
            for ahead in (0, 1):
                m = copy.deepcopy(msg)
                m.tick = int(real.tick) + ahead
                m.actions = [-float(a) for a in m.actions]
                out.append(m)
        else:                                   # flood-intent: stale, repeated, malformed
            stale, bad = copy.deepcopy(msg), copy.deepcopy(msg)
            stale.tick = max(int(msg.tick) - 50, 0)
            bad.latent_dim = int(msg.latent_dim) + 32
            out = [stale, msg, bad]
        return [serialize_message(m) for m in out]


def _bag_messages(path: Path | None, node, qos):
    """A function that publishes every bag message whose (looped) time has come; returns how
    many it published."""
    if path is None:
        raise SystemExit('mode bag needs --bag')
    from seqwm_agent.bag import read_messages, topic_types
    from seqwm_msgs.msg import Intent, MocapFrame
    types = {'seqwm_msgs/msg/Intent': Intent, 'seqwm_msgs/msg/MocapFrame': MocapFrame}
    wanted = {t: types[k] for t, k in topic_types(path).items()
              if k in types and t != ARENA_TRUTH_TOPIC}
    messages = [(stamp, topic, msg) for topic, stamp, msg in read_messages(path, set(wanted))]
    if not messages:
        raise SystemExit(f'{path}: no frames or intents to play')
    start, span = messages[0][0], messages[-1][0] - messages[0][0] + 1
    pubs = {t: node.create_publisher(cls, t, qos) for t, cls in wanted.items()}
    state = {'next': 0, 'loop': 0}

    def play(elapsed_s: float) -> int:
        n = 0
        while True:
            i = state['next']
            stamp, topic, msg = messages[i]
            due = (stamp - start + state['loop'] * span) / 1e9
            if due > elapsed_s:
                return n
            pubs[topic].publish(_to_rclpy(msg, wanted[topic]))
            n += 1
            state['next'] = (i + 1) % len(messages)
            if state['next'] == 0:
                state['loop'] += 1
    return play


def _to_rclpy(msg, cls):
    """A rosbags-deserialised message as the rclpy class (field by field, as a player would)."""
    from seqwm_agent.runtime.messages import (intent_message_from_msg, intent_to_msg,
                                              mocap_sample_from_msg, mocap_sample_to_msg)
    from seqwm_msgs.msg import Intent
    if cls is Intent:
        return intent_to_msg(intent_message_from_msg(msg))
    return mocap_sample_to_msg(mocap_sample_from_msg(msg))


if __name__ == '__main__':
    sys.exit(main())
