"""Conversions between the ROS messages and the runtime's own types, both ways, in one place.

Incoming messages (`mocap_sample_from_msg`, `intent_message_from_msg`,
`input_records_from_msg`) are read duck-typed, so rclpy messages and rosbags-deserialised ones
(bag replay) go through the same code and give the same `MocapSample` / `IntentMessage` /
`InputRecord`s. Outgoing messages (`intent_to_msg`, `status_to_msg`, `inputs_to_msgs`,
`markers_to_msg`) import their ROS message classes when called: the runtime stays importable
where no ROS message packages are installed (training, evaluation).

No validation here: `validation.py` checks lengths and values of what came in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from seqwm_common.bounds import message_bounds  # noqa: F401 (re-exported)
from seqwm_common.stamps import NS_PER_S, duration_msg, stamp_ns, time_msg  # noqa: F401 (re-exported)
from seqwm_common.topics import FRAME_ID  # noqa: F401 (re-exported)

from .journal import InputKind, InputRecord


@dataclass(eq=False)
class MocapSample:
    """One mocap frame as the pipeline sees it (a seqwm_msgs/MocapFrame without ROS types).

    stamp_ns: capture time in the arena clock, integer ns (tick = stamp_ns // dt_ns, exact).
    positions (k, 3) m, orientations (k, 4) quaternion x, y, z, w; names and tracked of length k.
    """

    stamp_ns: int
    frame_number: int
    names: tuple[str, ...]
    positions: np.ndarray
    orientations: np.ndarray
    tracked: tuple[bool, ...]

    @property
    def stamp(self) -> float:
        return self.stamp_ns / NS_PER_S

    @property
    def key(self) -> tuple[int, int]:
        """Identity of the frame (a tick may be called with a frame already observed)."""
        return (self.stamp_ns, self.frame_number)

    @staticmethod
    def from_planar(stamp: float, poses: Mapping[str, Sequence[float]], frame_number: int = 0,
                    untracked: Sequence[str] = ()) -> MocapSample:
        """A frame from (x, y, yaw) per body (tests, simulation); stamp in seconds."""
        names = tuple(poses)
        pos = np.array([[float(p[0]), float(p[1]), 0.0] for p in poses.values()]).reshape(-1, 3)
        quat = np.array([[0.0, 0.0, math.sin(float(p[2]) / 2), math.cos(float(p[2]) / 2)]
                         for p in poses.values()]).reshape(-1, 4)
        return MocapSample(int(round(stamp * NS_PER_S)), int(frame_number), names, pos, quat,
                           tuple(n not in untracked for n in names))


def mocap_sample_from_msg(msg: Any) -> MocapSample:
    """seqwm_msgs/MocapFrame (rclpy or rosbags deserialised, duck-typed) -> MocapSample.

    No validation here: lengths and values are checked by `check_frame`."""
    poses = list(msg.poses)
    pos = np.array([[p.position.x, p.position.y, p.position.z] for p in poses],
                   dtype=np.float64).reshape(-1, 3)
    quat = np.array([[p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w]
                     for p in poses], dtype=np.float64).reshape(-1, 4)
    return MocapSample(stamp_ns(msg.header), int(msg.frame_number),
                       tuple(str(n) for n in msg.names), pos, quat,
                       tuple(bool(t) for t in msg.tracked))


@dataclass(eq=False)
class IntentMessage:
    """seqwm_msgs/Intent without ROS types: what a robot receives from its predecessor and sends on."""

    tick: int
    stamp_ns: int
    model_set_id: str
    sender: str
    sender_index: int
    num_agents: int
    horizon: int
    latent_dim: int
    action_dim: int
    latents: np.ndarray
    actions: np.ndarray
    valid: np.ndarray
    planner_iterations: int = 0
    planner_value: float = 0.0
    planner_time_ms: float = 0.0


def intent_message_from_msg(msg: Any) -> IntentMessage:
    """seqwm_msgs/Intent (rclpy or rosbags deserialised, duck-typed) -> IntentMessage."""
    return IntentMessage(
        tick=int(msg.tick),
        stamp_ns=stamp_ns(msg.header),
        model_set_id=str(msg.model_set_id), sender=str(msg.sender),
        sender_index=int(msg.sender_index), num_agents=int(msg.num_agents),
        horizon=int(msg.horizon), latent_dim=int(msg.latent_dim), action_dim=int(msg.action_dim),
        latents=np.asarray(msg.latents, dtype=np.float32),
        actions=np.asarray(msg.actions, dtype=np.float32),
        valid=np.asarray(msg.valid, dtype=bool),
        planner_iterations=int(msg.planner_iterations),
        planner_value=float(msg.planner_value), planner_time_ms=float(msg.planner_time_ms))


def _finite32(x: float) -> float:
    """A float32 message field cannot carry what the planner may produce (inf); clip it."""
    return max(-3.0e38, min(3.0e38, x)) if math.isfinite(x) else 0.0


def mocap_sample_to_msg(sample: MocapSample) -> Any:
    """MocapSample -> seqwm_msgs/MocapFrame (the simulated arena's cameras; bags in tests)."""
    from geometry_msgs.msg import Point, Pose, Quaternion
    from seqwm_msgs.msg import MocapFrame
    msg = MocapFrame()
    msg.header.stamp = time_msg(sample.stamp_ns)
    msg.header.frame_id = FRAME_ID
    msg.frame_number = int(sample.frame_number)
    msg.names = list(sample.names)
    msg.poses = [Pose(position=Point(x=float(p[0]), y=float(p[1]), z=float(p[2])),
                      orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]),
                                             w=float(q[3])))
                 for p, q in zip(sample.positions, sample.orientations)]
    msg.tracked = [bool(t) for t in sample.tracked]
    return msg


def intent_to_msg(m: IntentMessage) -> Any:
    """IntentMessage -> seqwm_msgs/Intent."""
    from seqwm_msgs.msg import Intent
    msg = Intent()
    msg.header.stamp = time_msg(m.stamp_ns)
    msg.header.frame_id = FRAME_ID
    msg.tick = int(m.tick)
    msg.model_set_id = m.model_set_id
    msg.sender = m.sender
    msg.sender_index = int(m.sender_index)
    msg.num_agents, msg.horizon = int(m.num_agents), int(m.horizon)
    msg.latent_dim, msg.action_dim = int(m.latent_dim), int(m.action_dim)
    msg.latents = m.latents.astype('float32')
    msg.actions = m.actions.astype('float32')
    msg.valid = [bool(v) for v in m.valid]
    msg.planner_iterations = min(int(m.planner_iterations), 255)
    msg.planner_value = _finite32(m.planner_value)
    msg.planner_time_ms = _finite32(m.planner_time_ms)
    return msg


def status_to_msg(out: Any, robot: str, order_index: int, seq: int = 0) -> Any:
    """One tick's (or stop's) `agent.TickOutput` -> seqwm_msgs/AgentStatus (`seq`: the node's
    count of outputs). Its reject_counts hold every REJECT_REASONS key in that order (stable
    for monitors)."""
    from geometry_msgs.msg import Twist
    from seqwm_msgs.msg import AgentStatus
    msg = AgentStatus()
    msg.header.stamp = time_msg(out.stamp_ns)
    msg.header.frame_id = FRAME_ID
    msg.robot = robot
    msg.seq = int(seq)
    msg.order_index = order_index
    msg.tick = max(int(out.tick), 0)
    msg.mode = int(out.mode)
    msg.trigger = int(out.trigger)
    msg.wait_ms = _finite32(1000.0 * out.waited_s)
    msg.reason = out.reason
    msg.intent_age_s = _finite32(out.intent_age_s)
    msg.planning_time_ms = _finite32(out.planning_time_ms)
    msg.planner_iterations = min(int(out.planner_iterations), 255)
    msg.planner_value = _finite32(out.planner_value)
    msg.command = Twist()
    msg.command.linear.x, msg.command.linear.y, msg.command.angular.z = (
        float(v) for v in out.command)
    msg.mode_counts = [int(c) for c in out.mode_counts]
    msg.reject_reasons = list(out.reject_counts)
    msg.reject_counts = [int(c) for c in out.reject_counts.values()]
    return msg


def inputs_to_msgs(out: Any, robot: str, seq: int) -> list[Any]:
    """One output's `inputs` -> seqwm_msgs/AgentInputs with the `seq` of its status. Records
    beyond the message's bound go into further parts: none is ever cut."""
    from seqwm_msgs.msg import AgentInputs, InputEvent
    bound, text = message_bounds('AgentInputs')['events'], message_bounds('InputEvent')
    events = []
    for r in out.inputs:
        e = InputEvent()
        e.kind, e.time_s, e.stamp_ns, e.number = int(r.kind), float(r.time_s), int(r.stamp_ns), \
            int(r.number)
        e.source = r.source[:text['source']]
        e.digest, e.wall_ns = int(r.digest), int(r.wall_ns)
        e.outcome = r.outcome[:text['outcome']]
        e.publisher = r.publisher[:text['publisher']]
        e.publisher_gid = list(r.publisher_gid)
        events.append(e)
    chunks = [events[k:k + bound] for k in range(0, len(events), bound)] or [[]]
    msgs = []
    for k, chunk in enumerate(chunks):
        msg = AgentInputs()
        msg.header.stamp = time_msg(out.stamp_ns)
        msg.header.frame_id = FRAME_ID
        msg.robot, msg.seq, msg.tick = robot, int(seq), max(int(out.tick), 0)
        msg.part, msg.parts = k, len(chunks)
        if out.mode != 3:       # a planning tick: its frame
            msg.frame_stamp_ns, msg.frame_arrival_s = int(out.stamp_ns), float(out.frame_arrival_s)
        if out.intent_used is not None:
            sender, tick, arrival = out.intent_used
            msg.intent_used, msg.intent_sender = True, sender
            msg.intent_tick, msg.intent_arrival_s = int(tick), float(arrival)
        msg.events = chunk
        msg.refusals_not_listed = int(out.inputs_dropped) if k == len(chunks) - 1 else 0
        msgs.append(msg)
    return msgs


def input_records_from_msg(msg: Any) -> list[InputRecord]:
    """seqwm_msgs/AgentInputs (rclpy or rosbags, duck-typed) -> its journal.InputRecords."""
    return [InputRecord(InputKind(int(e.kind)), float(e.time_s), int(e.stamp_ns), int(e.number),
                        str(e.source), int(e.digest), int(e.wall_ns), str(e.outcome),
                        str(e.publisher), bytes(bytearray(e.publisher_gid)))
            for e in msg.events]


# Marker colours (r, g, b) per mode value (fresh, cached, masked, stopped).
MODE_COLOURS = {0: (0.1, 0.8, 0.2), 1: (0.95, 0.8, 0.1), 2: (1.0, 0.45, 0.0), 3: (0.9, 0.1, 0.1)}


def markers_to_msg(out: Any, ns: str, lifetime_s: float) -> Any:
    """The predicted trajectory: a line strip and one sphere per step; deleted when stopped."""
    from geometry_msgs.msg import Point
    from visualization_msgs.msg import Marker, MarkerArray
    array = MarkerArray()
    for marker_id, kind in ((0, Marker.LINE_STRIP), (1, Marker.SPHERE_LIST)):
        m = Marker()
        m.header.stamp = time_msg(out.stamp_ns)
        m.header.frame_id = FRAME_ID
        m.ns, m.id, m.type = ns, marker_id, kind
        if out.trajectory is None:
            m.action = Marker.DELETE
        else:
            m.action = Marker.ADD
            m.pose.orientation.w = 1.0
            m.points = [Point(x=float(x), y=float(y), z=0.05) for x, y, _ in out.trajectory]
            size = 0.04 if kind == Marker.LINE_STRIP else 0.08
            m.scale.x = m.scale.y = m.scale.z = size
            r, g, b = MODE_COLOURS[int(out.mode)]
            m.color.r, m.color.g, m.color.b, m.color.a = r, g, b, 0.9
            m.lifetime = duration_msg(lifetime_s)
        array.markers.append(m)
    return array


