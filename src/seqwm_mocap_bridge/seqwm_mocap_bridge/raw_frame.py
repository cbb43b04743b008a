"""The one internal form every source yields: a camera frame as the NOKOV SDK delivers it.

Why a mirror of the SDK layout rather than ROS types: the replayed and simulated sources must
feed the *same* conversion, timing and quality code the real cameras go through, so they produce
exactly what the SDK would (millimetres, the SDK's axis convention, a reported latency) and the
bridge cannot tell them apart. Plain dataclasses, no ctypes and no rclpy, so they can be built in
tests and in the sim source without the vendor library.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# `UNDEFINED` in the SDK's types header: the value the host writes where it has no measurement.
UNDEFINED_MM = 999999.9999
# Any coordinate at or beyond this magnitude (mm) is treated as "no measurement" (~1 km).
UNDEFINED_THRESHOLD_MM = 0.9 * UNDEFINED_MM


@dataclass
class RawRigidBody:
    """One rigid body of one frame, in SDK units: position in mm, quaternion (x, y, z, w).

    `params` are the SDK's host-defined tracking flags and `mean_error` its mean marker
    residual; what their bits mean is configuration (see quality.RawBodyCheck), not assumed.
    """

    id: int
    x: float
    y: float
    z: float
    qx: float
    qy: float
    qz: float
    qw: float
    params: int = 0
    mean_error: float = 0.0


@dataclass
class RawFrame:
    """One camera frame: SDK frame number, SDK timestamp, reported latency, rigid bodies.

    `latency` is in the SDK's own unit (see BridgeConfig.latency_unit); `timestamp` is the SDK's
    opaque FrameGroup timestamp, carried for diagnostics only (its clock is not ours).
    """

    frame_number: int
    timestamp: int = 0
    latency: float = 0.0
    bodies: list[RawRigidBody] = field(default_factory=list)
