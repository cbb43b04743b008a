"""The simulated arena as a camera system: /arena/truth -> the frames the real SDK would deliver.

Contract with the arena node (publisher of `sim_truth_topic`, default /arena/truth):
  seqwm_msgs/MocapFrame, one message per simulated camera frame, with
  - header.stamp: the simulated capture time of the poses (the clock the demo runs on);
  - frame_number: +1 per camera frame (0 everywhere is tolerated: the bridge then counts);
  - names / poses / tracked: every body (robots by name, `box`, `sheep`, ...), positions in
    metres in the arena frame, z up, orientation quaternion (x, y, z, w); tracked[k] = false for
    a body the arena wants to appear occluded;
  - latency_ms: ignored (the configured `latency_ms` plays the SDK's reported latency).
Any QoS works: we subscribe best effort, which matches reliable and best-effort publishers.

Each truth message becomes a RawFrame exactly like the SDK's: mm, the configured `axis_up`
convention (the inverse of the bridge's mapping), SDK IDs from the body map, occluded bodies in
the SDK's no-solution form (zeros), optional Gaussian noise, per-body dropouts and lost frames.
It is delivered with receive time = truth stamp + latency_ms, after really waiting latency_ms
(sim_delay_delivery), so the bridge stamps capture time = receive - latency = the truth stamp
and everything downstream runs the real pipeline.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Any, Sequence

import numpy as np

from ..conversion import BodyMap, arena_to_sdk, quat_multiply
from ..raw_frame import RawFrame, RawRigidBody
from ..timing import LATENCY_UNIT_TO_MS, latency_ns
from .base import FrameSource, SourceSink


def _small_rotations(rng: np.random.Generator, n: int, std_rad: float) -> np.ndarray:
    """n random rotations (x, y, z, w) with rotation vector ~ N(0, std^2 I)."""
    v = rng.normal(0.0, std_rad, size=(n, 3))
    angle = np.linalg.norm(v, axis=1, keepdims=True)
    axis = np.divide(v, angle, out=np.zeros_like(v), where=angle > 0)
    return np.hstack([axis * np.sin(angle / 2), np.cos(angle / 2)])


def arena_to_raw_frame(frame_number: int, names: Sequence[str], positions_m: np.ndarray,
                       quaternions: np.ndarray, tracked: Sequence[bool], body_map: BodyMap,
                       axis_up: str, latency: float,
                       rng: np.random.Generator | None = None, noise_mm: float = 0.0,
                       noise_rad: float = 0.0, dropout_prob: float = 0.0) -> RawFrame:
    """What the SDK would deliver for arena-frame poses (the inverse of the bridge's mapping).

    `latency` is in the SDK's unit. Bodies not tracked (or dropped out) carry the SDK's
    no-solution form: zero position and an all-zero quaternion.
    """
    n = len(names)
    p_mm, q = arena_to_sdk(np.asarray(positions_m, dtype=float).reshape(n, 3),
                           np.asarray(quaternions, dtype=float).reshape(n, 4), axis_up)
    visible = np.asarray(tracked, dtype=bool).reshape(n).copy()
    if rng is not None and n:
        if noise_mm > 0.0:
            p_mm = p_mm + rng.normal(0.0, noise_mm, size=p_mm.shape)
        if noise_rad > 0.0:
            q = quat_multiply(q, _small_rotations(rng, n, noise_rad))
        if dropout_prob > 0.0:
            visible &= rng.random(n) >= dropout_prob
    bodies = []
    for k, name in enumerate(names):
        body_id = body_map.assign(name)
        if visible[k]:
            bodies.append(RawRigidBody(body_id, *map(float, p_mm[k]), *map(float, q[k])))
        else:
            bodies.append(RawRigidBody(body_id, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
    return RawFrame(frame_number=int(frame_number), timestamp=0, latency=float(latency),
                    bodies=bodies)


class DelayLine:
    """Releases items to a callback `delay_s` after they were pushed, in order, on one thread."""

    def __init__(self, deliver: Any, name: str = 'delay-line') -> None:
        self._deliver = deliver
        self._heap: list[tuple[float, int, tuple]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def push(self, delay_s: float, *item: Any) -> None:
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + delay_s, next(self._seq), item))
            self._cv.notify()

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stopped:
                    if self._heap:
                        wait = self._heap[0][0] - time.monotonic()
                        if wait <= 0:
                            break
                        self._cv.wait(wait)
                    else:
                        self._cv.wait()
                if self._stopped:
                    return
                _, _, item = heapq.heappop(self._heap)
            self._deliver(*item)


class SimSource(FrameSource):
    kind = 'sim'

    def __init__(self, node: Any, topic: str, body_map: BodyMap, axis_up: str = 'z',
                 latency_ms: float = 10.0, latency_unit: str = 'ms', delay_delivery: bool = True,
                 noise_mm: float = 0.0, noise_rad: float = 0.0, dropout_prob: float = 0.0,
                 frame_drop_prob: float = 0.0, seed: int = 0) -> None:
        self.node = node
        self.topic = topic
        self.body_map = body_map
        self.axis_up = axis_up
        self.latency_ms = latency_ms
        self.latency_raw = latency_ms / LATENCY_UNIT_TO_MS[latency_unit]
        self.delay_delivery = delay_delivery
        self.noise_mm, self.noise_rad = noise_mm, noise_rad
        self.dropout_prob, self.frame_drop_prob = dropout_prob, frame_drop_prob
        self.rng = np.random.default_rng(seed)
        self._sink: SourceSink | None = None
        self._sub = None
        self._delay: DelayLine | None = None
        self._own_numbers = itertools.count(1)
        self._warned_numbers = False

    def start(self, sink: SourceSink) -> None:
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from seqwm_msgs.msg import MocapFrame

        self._sink = sink
        if self.delay_delivery and self.latency_ms > 0.0:
            self._delay = DelayLine(sink.frame, name='sim-latency')
        # Best effort matches both reliable and best-effort publishers; a few deep so that a
        # burst of truth messages is not lost before our callback runs.
        qos = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT,
                         history=HistoryPolicy.KEEP_LAST, depth=5)
        self._sub = self.node.create_subscription(MocapFrame, self.topic, self.on_truth, qos)

    def stop(self) -> None:
        if self._sub is not None:
            try:
                self.node.destroy_subscription(self._sub)
            except Exception:   # noqa: BLE001 - node may already be gone at shutdown
                pass
            self._sub = None
        if self._delay is not None:
            self._delay.stop()
            self._delay = None

    def describe(self) -> str:
        return f'sim {self.topic} (latency {self.latency_ms:g} ms, axis_up {self.axis_up})'

    def on_truth(self, msg: Any) -> None:
        """One truth message -> one simulated SDK frame (or a lost one)."""
        sink = self._sink
        if sink is None:
            return
        try:
            names = list(msg.names)
            n = len(names)
            tracked = list(msg.tracked) if len(msg.tracked) else [True] * n
            if len(msg.poses) != n or len(tracked) != n:
                sink.event('sim_bad_truth', 'error',
                           f'{self.topic}: {n} names, {len(msg.poses)} poses, {len(msg.tracked)} '
                           f'tracked flags; message ignored')
                return
            frame_number = int(msg.frame_number)
            if frame_number == 0:
                frame_number = next(self._own_numbers)
                if not self._warned_numbers:
                    self._warned_numbers = True
                    sink.event('sim_frame_numbers', 'warn',
                               f'{self.topic} carries frame_number 0; the bridge numbers the '
                               f'simulated frames itself')
            if self.frame_drop_prob > 0.0 and self.rng.random() < self.frame_drop_prob:
                return
            positions = np.array([[p.position.x, p.position.y, p.position.z]
                                  for p in msg.poses], dtype=float).reshape(n, 3)
            quats = np.array([[p.orientation.x, p.orientation.y, p.orientation.z,
                               p.orientation.w] for p in msg.poses], dtype=float).reshape(n, 4)
            raw = arena_to_raw_frame(frame_number, names, positions, quats, tracked,
                                     self.body_map, self.axis_up, self.latency_raw, self.rng,
                                     self.noise_mm, self.noise_rad, self.dropout_prob)
            stamp_ns = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
            receive_ns = stamp_ns + latency_ns(self.latency_ms)
            if self._delay is not None:
                self._delay.push(self.latency_ms / 1000.0, raw, receive_ns)
            else:
                sink.frame(raw, receive_ns)
        except Exception as exc:   # noqa: BLE001 - bad input must never stop the bridge
            sink.event('sim_bad_truth', 'error', f'{self.topic}: cannot use message: {exc!r}')
