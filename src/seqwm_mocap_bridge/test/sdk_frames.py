"""Test helpers: SDK frames in the SDK's own ctypes layout, and a sink that runs the pipeline."""
from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass, field

from seqwm_mocap_bridge.config import BridgeConfig
from seqwm_mocap_bridge.conversion import BodyMap
from seqwm_mocap_bridge.pipeline import BridgePipeline, ProcessedFrame
from seqwm_mocap_bridge.sources.nokov_layout import (DESCRIPTOR_RIGIDBODY, DataDescriptions,
                                                     FrameOfMocapData, RigidBodyDescription)


@dataclass
class Body:
    """One rigid body as the SDK streams it: mm in the SDK's axes, quaternion x, y, z, w."""

    id: int
    x: float
    y: float
    z: float
    q: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    params: int = 0


def yaw_quat_about(axis: str, angle: float) -> tuple[float, float, float, float]:
    """Quaternion (x, y, z, w) of a rotation by `angle` about the SDK's 'x', 'y' or 'z' axis."""
    s, c = math.sin(angle / 2), math.cos(angle / 2)
    return {'x': (s, 0.0, 0.0, c), 'y': (0.0, s, 0.0, c), 'z': (0.0, 0.0, s, c)}[axis]


def sdk_frame(frame_number: int, bodies: list[Body], latency: float = 0.0,
              timestamp: int = 0) -> FrameOfMocapData:
    """A FrameOfMocapData filled the way the SDK fills it."""
    frame = FrameOfMocapData()
    frame.iFrame = frame_number
    frame.fLatency = latency
    frame.iTimeStamp = timestamp
    frame.nRigidBodies = len(bodies)
    for i, b in enumerate(bodies):
        rb = frame.RigidBodies[i]
        rb.ID = b.id
        rb.x, rb.y, rb.z = b.x, b.y, b.z
        rb.qx, rb.qy, rb.qz, rb.qw = b.q
        rb.params = b.params
        rb.MeanError = 0.1
    return frame


class DescriptionsBuffer:
    """SDK data descriptions (rigid bodies only) kept alive for ctypes pointers."""

    def __init__(self, names: dict[int, str]) -> None:
        self.bodies = [RigidBodyDescription() for _ in names]
        self.descriptions = DataDescriptions()
        self.descriptions.nDataDescriptions = len(names)
        for k, (body_id, name) in enumerate(sorted(names.items())):
            self.bodies[k].szName = name.encode()
            self.bodies[k].ID = body_id
            d = self.descriptions.arrDataDescriptions[k]
            d.type = DESCRIPTOR_RIGIDBODY
            d.Data.RigidBodyDescription = ctypes.pointer(self.bodies[k])


@dataclass
class PipelineSink:
    """A SourceSink that runs the real pipeline synchronously and keeps what it produced."""

    cfg: BridgeConfig
    body_map: BodyMap = None
    events: list[tuple[str, str, str]] = field(default_factory=list)
    out: list[ProcessedFrame] = field(default_factory=list)
    receive_ns: list[int] = field(default_factory=list)
    resets: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.body_map is None:
            self.body_map = BodyMap(self.cfg.bodies, self.cfg.body_ids)
        self.pipeline = BridgePipeline(self.cfg, self.body_map,
                                       on_event=lambda *e: self.events.append(e))

    def frame(self, raw, receive_ns: int) -> None:
        self.receive_ns.append(receive_ns)
        result = self.pipeline.process(raw, receive_ns)
        if result is not None:
            self.out.append(result)

    def sequence_reset(self, why: str, forget_poses: bool = False) -> None:
        self.resets.append(why)
        self.pipeline.reset_sequence(why, forget_poses)

    def descriptions(self, id_to_name) -> None:
        self.body_map.update(id_to_name)

    def event(self, key: str, level: str, message: str) -> None:
        self.events.append((key, level, message))

    @property
    def counters(self):
        return self.pipeline.counters
