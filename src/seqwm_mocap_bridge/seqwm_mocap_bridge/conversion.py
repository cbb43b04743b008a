"""SDK units and axes -> the arena frame (metres, z up), yaw, and body name <-> ID mapping.

Pure numpy, no rclpy: the same functions serve the node, the sim/replay sources (which run the
mapping backwards to fake the SDK) and plain unit tests.

Axis conventions (`axis_up`), as a proper rotation M from SDK coordinates to arena coordinates:
- 'z': the SDK already streams z up (newer XINGYING, or "Z up" selected): M = identity.
- 'y': the SDK streams y up (older SDKs / "Y up"): the floor is the SDK's x-z plane. We keep
  x, send SDK y to arena z and SDK z to arena -y (a +90 degree rotation about x), which keeps the
  frame right-handed: arena (x, y, z) = (x_s, -z_s, y_s).
Positions map as p_a = M p_s. Orientations map as R_a = M R_s M^T, i.e. q_a = m * q_s * m^-1: the
rigid body's own axes were defined in the SDK's convention too (XINGYING creates rigid bodies with
their local axes along the world axes, "up" along the SDK's up axis), so a body at rest in its
creation pose has the identity orientation in both frames and a turn about the SDK's up axis is a
turn about arena z, which is what yaw must measure.
"""
from __future__ import annotations

import math
import threading
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

MM_PER_M = 1000.0
AXIS_CHOICES = ('z', 'y')

_S = math.sqrt(0.5)
# Rotation SDK -> arena per convention: matrix and the same rotation as a quaternion (x, y, z, w).
AXIS_ROTATIONS: dict[str, tuple[np.ndarray, np.ndarray]] = {
    'z': (np.eye(3), np.array([0.0, 0.0, 0.0, 1.0])),
    'y': (np.array([[1.0, 0.0, 0.0],
                    [0.0, 0.0, -1.0],
                    [0.0, 1.0, 0.0]]), np.array([_S, 0.0, 0.0, _S])),
}


class AxisCheckError(RuntimeError):
    """The configured axis convention contradicts where the reference body is known to be."""


def _axis(axis_up: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        return AXIS_ROTATIONS[axis_up]
    except KeyError:
        raise ValueError(f"axis_up must be one of {AXIS_CHOICES}, got {axis_up!r}") from None


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a*b of quaternions in (x, y, z, w) order; shapes broadcast over (..., 4)."""
    ax, ay, az, aw = np.moveaxis(np.asarray(a, dtype=float), -1, 0)
    bx, by, bz, bw = np.moveaxis(np.asarray(b, dtype=float), -1, 0)
    return np.stack([
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ], axis=-1)


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """Inverse of a unit quaternion (x, y, z, w)."""
    q = np.asarray(q, dtype=float)
    return q * np.array([-1.0, -1.0, -1.0, 1.0])


def quat_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation angle (rad, in [0, pi]) between unit quaternions; q and -q are the same rotation."""
    dot = np.abs(np.sum(np.asarray(a, dtype=float) * np.asarray(b, dtype=float), axis=-1))
    return 2.0 * np.arccos(np.clip(dot, 0.0, 1.0))


def sdk_to_arena(positions_mm: np.ndarray, quats_xyzw: np.ndarray,
                 axis_up: str) -> tuple[np.ndarray, np.ndarray]:
    """SDK positions (n, 3) in mm and quaternions (n, 4) -> arena metres (n, 3), quaternions (n, 4)."""
    m, qm = _axis(axis_up)
    p = np.asarray(positions_mm, dtype=float).reshape(-1, 3) / MM_PER_M
    q = np.asarray(quats_xyzw, dtype=float).reshape(-1, 4)
    if axis_up == 'z':
        return p.copy(), q.copy()
    return p @ m.T, quat_multiply(quat_multiply(qm, q), quat_conjugate(qm))


def arena_to_sdk(positions_m: np.ndarray, quats_xyzw: np.ndarray,
                 axis_up: str) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of sdk_to_arena: what the SDK would report (mm, its axes) for an arena pose."""
    m, qm = _axis(axis_up)
    p = np.asarray(positions_m, dtype=float).reshape(-1, 3) * MM_PER_M
    q = np.asarray(quats_xyzw, dtype=float).reshape(-1, 4)
    if axis_up == 'z':
        return p.copy(), q.copy()
    return p @ m, quat_multiply(quat_multiply(quat_conjugate(qm), q), qm)


def up_coordinate_m(position_mm: Sequence[float], axis_up: str) -> float:
    """Height above the arena floor plane (m) of an SDK position under a given convention."""
    p, _ = sdk_to_arena(np.asarray(position_mm, dtype=float), np.array([0.0, 0.0, 0.0, 1.0]),
                        axis_up)
    return float(p[0, 2])


def yaw_from_quaternion(q: np.ndarray) -> np.ndarray:
    """Heading about arena z (rad, in (-pi, pi]) of quaternions (..., 4) in (x, y, z, w) order."""
    x, y, z, w = np.moveaxis(np.asarray(q, dtype=float), -1, 0)
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def check_reference_body(name: str, position_mm: Sequence[float], axis_up: str,
                         expected_up_m: float, tolerance_m: float) -> float:
    """Refuse a wrong axis convention: the reference body's up coordinate must match its height.

    Returns the measured up coordinate (m). Raises AxisCheckError with what the other
    conventions would have measured, so the operator sees which setting is right.
    """
    measured = up_coordinate_m(position_mm, axis_up)
    if abs(measured - expected_up_m) <= tolerance_m:
        return measured
    others = ', '.join(f"axis_up='{a}' would give {up_coordinate_m(position_mm, a):.3f} m"
                       for a in AXIS_CHOICES if a != axis_up)
    raw = ', '.join(f'{v:.1f}' for v in position_mm)
    raise AxisCheckError(
        f"reference body '{name}': up coordinate {measured:.3f} m with axis_up='{axis_up}' is not "
        f"within {tolerance_m:.3f} m of the configured height {expected_up_m:.3f} m (SDK position "
        f"[{raw}] mm; {others}). Check the axis setting in XINGYING (Y-up / Z-up) against the "
        f"bridge's axis_up, or the reference_up_m of '{name}'. Refusing to start.")


class BodyMap:
    """Rigid body name <-> SDK ID, from configuration and/or the SDK's data descriptions.

    Configured IDs are pinned by the operator and win over descriptions; a disagreement is
    reported through `on_conflict` (one message per body). Sources without IDs of their own
    (replay, sim) ask `assign` for one, so their frames carry IDs exactly like the SDK's.
    Thread-safe: the SDK thread updates descriptions while the worker thread looks names up.
    """

    def __init__(self, names: Sequence[str] = (), ids: Sequence[int] = (),
                 on_conflict: Callable[[str], None] | None = None) -> None:
        if ids and len(ids) != len(names):
            raise ValueError(f'body_ids has {len(ids)} entries but bodies has {len(names)}')
        self._lock = threading.Lock()
        self._by_id: dict[int, str] = {}
        self._by_name: dict[str, int] = {}
        self._pinned: set[str] = set()
        self._on_conflict = on_conflict or (lambda _msg: None)
        for name, body_id in zip(names, ids):
            self._add(int(body_id), name)
            self._pinned.add(name)

    def _add(self, body_id: int, name: str) -> None:
        old = self._by_name.pop(name, None)
        if old is not None:
            self._by_id.pop(old, None)
        other = self._by_id.pop(body_id, None)
        if other is not None:
            self._by_name.pop(other, None)
        self._by_id[body_id] = name
        self._by_name[name] = body_id

    def update(self, descriptions: Mapping[int, str]) -> None:
        """Merge the SDK's data descriptions (ID -> name)."""
        with self._lock:
            for body_id, name in descriptions.items():
                body_id = int(body_id)
                if name in self._pinned and self._by_name.get(name) != body_id:
                    self._on_conflict(
                        f"body '{name}': configured ID {self._by_name.get(name)} but the SDK's "
                        f"data descriptions say ID {body_id}; keeping the configured ID")
                    continue
                if self._by_id.get(body_id) in self._pinned and self._by_id[body_id] != name:
                    self._on_conflict(
                        f"SDK ID {body_id} is named '{name}' in the data descriptions but is "
                        f"configured as '{self._by_id[body_id]}'; keeping the configured name")
                    continue
                self._add(body_id, name)

    def name_of(self, body_id: int) -> str | None:
        with self._lock:
            return self._by_id.get(int(body_id))

    def id_of(self, name: str) -> int | None:
        with self._lock:
            return self._by_name.get(name)

    def assign(self, name: str) -> int:
        """The ID of `name`, allocating the next free one (above every known ID) if it has none."""
        with self._lock:
            body_id = self._by_name.get(name)
            if body_id is None:
                body_id = max(self._by_id, default=0) + 1
                self._add(body_id, name)
            return body_id

    def items(self) -> list[tuple[int, str]]:
        with self._lock:
            return sorted(self._by_id.items())

    def names(self) -> Iterable[str]:
        return [n for _, n in self.items()]
