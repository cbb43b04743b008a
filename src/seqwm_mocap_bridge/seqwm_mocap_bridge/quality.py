"""Is this rigid-body measurement fresh and believable? (pure Python / numpy)

Two stages, each returning a reason string (or None when the body passes):
1. `RawBodyCheck` looks at the SDK values alone: non-finite numbers, the SDK's "no measurement"
   forms (all-zero quaternion, the UNDEFINED sentinel, an optional tracking bit in `params`),
   a non-unit quaternion, and optionally a pose repeated bit-for-bit for several frames (some
   drivers re-send the last solution while a body is occluded: a stale pose must not pass as
   fresh).
2. `JumpFilter` compares an arena-frame pose with the last *accepted* pose of the same body:
   faster than `max_speed_mps` (plus a small noise margin) or turning faster than
   `max_angular_speed_rps` is rejected. A body whose rejected poses keep agreeing with each other
   for `reacquire_frames` frames is re-acquired there, so one bad accepted pose cannot lock a
   body out forever.
A rejected body is published with tracked = false for that frame; counters are kept per reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .conversion import quat_angle
from .raw_frame import UNDEFINED_THRESHOLD_MM, RawRigidBody

# Reasons a body is not tracked in a frame (also the counter names).
UNTRACKED = 'untracked'            # the SDK says it has no solution for the body
MISSING = 'missing'                # a configured body is absent from the frame
NON_FINITE = 'non_finite'          # NaN / inf in the position or quaternion
BAD_QUATERNION = 'bad_quaternion'  # quaternion norm too far from 1
FROZEN = 'frozen'                  # pose repeated bit-for-bit (stale re-send)
JUMP = 'jump'                      # moved faster than max_speed_mps
ROTATION_JUMP = 'rotation_jump'    # turned faster than max_angular_speed_rps
REASONS = (UNTRACKED, MISSING, NON_FINITE, BAD_QUATERNION, FROZEN, JUMP, ROTATION_JUMP)


@dataclass
class RawCheckConfig:
    """How to read the SDK's own tracking signals."""

    quaternion_norm_tolerance: float = 0.05
    tracking_valid_mask: int = 0   # 0: ignore params; else tracked iff params & mask != 0
    frozen_frames: int = 0         # 0: off; else N identical consecutive poses -> untracked


class RawBodyCheck:
    """Stage 1: per-body checks on SDK values; keeps per-ID state for the frozen-pose test."""

    def __init__(self, cfg: RawCheckConfig) -> None:
        self.cfg = cfg
        self._last: dict[int, tuple[float, ...]] = {}
        self._repeats: dict[int, int] = {}

    def reset(self) -> None:
        self._last.clear()
        self._repeats.clear()

    def instant(self, body: RawRigidBody) -> tuple[str | None, str]:
        """(reason or None, human detail) from this frame's SDK values alone (no state)."""
        values = (body.x, body.y, body.z, body.qx, body.qy, body.qz, body.qw)
        if not all(math.isfinite(v) for v in values):
            return NON_FINITE, 'non-finite value in ' + _fmt(values)
        if any(abs(v) >= UNDEFINED_THRESHOLD_MM for v in values[:3]):
            return UNTRACKED, 'SDK UNDEFINED position ' + _fmt(values[:3])
        if values[:3] == (0.0, 0.0, 0.0):
            # exactly the origin, to the last bit: one way a mocap system says "no solution"
            # (a measured body is never there exactly; the arena's origin is a corner)
            return UNTRACKED, 'SDK reports the origin exactly (no solution)'
        if self.cfg.tracking_valid_mask and not (int(body.params) & self.cfg.tracking_valid_mask):
            return UNTRACKED, (f'tracking flag clear (params=0x{int(body.params) & 0xFFFF:04x}, '
                               f'mask=0x{self.cfg.tracking_valid_mask:04x})')
        norm = math.sqrt(sum(v * v for v in values[3:]))
        if norm == 0.0:
            return UNTRACKED, 'SDK reports no solution (all-zero quaternion)'
        if abs(norm - 1.0) > self.cfg.quaternion_norm_tolerance:
            return BAD_QUATERNION, (f'quaternion norm {norm:.4f} outside 1 +- '
                                    f'{self.cfg.quaternion_norm_tolerance}')
        return None, ''

    def check(self, body: RawRigidBody) -> tuple[str | None, str]:
        """`instant`, plus the frozen-pose test across frames (per SDK ID)."""
        reason, detail = self.instant(body)
        if reason is not None:
            self._forget(body.id)
            return reason, detail
        if self.cfg.frozen_frames >= 2:
            values = (body.x, body.y, body.z, body.qx, body.qy, body.qz, body.qw)
            if self._last.get(body.id) == values:
                self._repeats[body.id] = self._repeats.get(body.id, 1) + 1
            else:
                self._repeats[body.id] = 1
            self._last[body.id] = values
            if self._repeats[body.id] >= self.cfg.frozen_frames:
                return FROZEN, (f'pose identical for {self._repeats[body.id]} frames '
                                f'(stale re-send)')
        return None, ''

    def _forget(self, body_id: int) -> None:
        self._last.pop(body_id, None)
        self._repeats.pop(body_id, None)


@dataclass
class JumpConfig:
    max_speed_mps: float = 5.0
    max_angular_speed_rps: float = 20.0   # 0: no rotation check
    jump_margin_m: float = 0.05           # noise/jitter allowance on top of speed * dt
    reacquire_frames: int = 5


@dataclass
class _Track:
    position: np.ndarray
    quaternion: np.ndarray
    t_ns: int


class JumpFilter:
    """Stage 2: reject implausible motion against the last accepted pose of each body."""

    def __init__(self, cfg: JumpConfig) -> None:
        self.cfg = cfg
        self._accepted: dict[str, _Track] = {}
        self._candidate: dict[str, tuple[_Track, int]] = {}

    def reset(self) -> None:
        self._accepted.clear()
        self._candidate.clear()

    def _violation(self, ref: _Track, pos: np.ndarray, quat: np.ndarray,
                   t_ns: int) -> tuple[str | None, str]:
        dt = max((t_ns - ref.t_ns) * 1e-9, 1e-4)
        dist = float(np.linalg.norm(pos - ref.position))
        if dist > self.cfg.max_speed_mps * dt + self.cfg.jump_margin_m:
            return JUMP, (f'moved {dist:.3f} m in {dt:.3f} s = {dist / dt:.1f} m/s > '
                          f'{self.cfg.max_speed_mps:g} m/s')
        if self.cfg.max_angular_speed_rps > 0.0:
            angle = float(quat_angle(quat, ref.quaternion))
            if angle > self.cfg.max_angular_speed_rps * dt + 0.05:
                return ROTATION_JUMP, (f'turned {angle:.2f} rad in {dt:.3f} s = '
                                       f'{angle / dt:.1f} rad/s > '
                                       f'{self.cfg.max_angular_speed_rps:g} rad/s')
        return None, ''

    def check(self, name: str, position: np.ndarray, quaternion: np.ndarray,
              t_ns: int) -> tuple[str | None, str]:
        """(reason or None, detail); accepted poses become the new reference for `name`.

        A detail starting with 'reacquired' means the pose was accepted after a run of
        mutually consistent rejected poses (the old reference was the outlier, or the body
        really was moved while occluded).
        """
        new = _Track(np.asarray(position, dtype=float), np.asarray(quaternion, dtype=float),
                     int(t_ns))
        ref = self._accepted.get(name)
        if ref is None:
            self._accepted[name] = new
            return None, ''
        reason, detail = self._violation(ref, new.position, new.quaternion, new.t_ns)
        if reason is None:
            self._accepted[name] = new
            self._candidate.pop(name, None)
            return None, ''
        previous = self._candidate.get(name)
        count = 1
        if previous is not None and self._violation(previous[0], new.position, new.quaternion,
                                                    new.t_ns)[0] is None:
            count = previous[1] + 1
        if count >= self.cfg.reacquire_frames:
            self._accepted[name] = new
            self._candidate.pop(name, None)
            return None, f'reacquired after {count} consistent rejected poses ({detail})'
        self._candidate[name] = (new, count)
        return reason, detail


def _fmt(values: tuple[float, ...]) -> str:
    return '[' + ', '.join(f'{v:.4g}' for v in values) + ']'
