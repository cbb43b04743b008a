"""One SDK frame in, one arena-frame MocapFrame's worth of data out (pure Python / numpy).

`BridgePipeline.process` is the data flow of one camera frame, in order:
  1. frame number: duplicates and out-of-order frames are dropped, gaps counted as drops;
  2. stamp: capture time = receive time - reported latency;
  3. per body: SDK checks (untracked / NaN / bad quaternion / frozen), mm -> m and axis mapping,
     jump rejection against the last accepted pose;
  4. assembly in the published body order, untracked bodies with tracked = False and a NaN pose
     (never the last good pose presented as current).
Every sources' frames (SDK, replay, sim) take this same path.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .config import BridgeConfig
from .conversion import BodyMap, check_reference_body, sdk_to_arena, yaw_from_quaternion
from .quality import (MISSING, UNTRACKED, JumpConfig, JumpFilter, RawBodyCheck,
                      RawCheckConfig)
from .raw_frame import RawFrame, RawRigidBody
from .timing import FrameOrder, capture_time_ns, latency_to_ms, plausible_latency

# on_event(key, level, message): `key` groups repeats for throttling; level 'info'|'warn'|'error'.
EventFn = Callable[[str, str, str], None]


@dataclass
class ProcessedFrame:
    """A frame ready to publish. Arrays are in `names` order; poses are NaN where not tracked."""

    frame_number: int
    stamp_ns: int
    receive_ns: int
    latency_ms: float
    names: list[str]
    positions: np.ndarray          # (n, 3) metres, arena frame, z up
    quaternions: np.ndarray        # (n, 4) x, y, z, w (unit)
    yaw: np.ndarray                # (n,) rad
    tracked: np.ndarray            # (n,) bool
    reasons: dict[str, str] = field(default_factory=dict)   # untracked name -> reason
    dropped_before: int = 0        # frames lost between the previous published frame and this


class BridgePipeline:
    """Stateful frame processor: ordering, timing, conversion and quality, with counters."""

    def __init__(self, cfg: BridgeConfig, body_map: BodyMap,
                 on_event: EventFn | None = None) -> None:
        self.cfg = cfg
        self.body_map = body_map
        self.on_event: EventFn = on_event or (lambda key, level, message: None)
        self.counters: Counter[str] = Counter()
        self.order = FrameOrder(cfg.frame_reset_gap)
        self.raw_check = RawBodyCheck(RawCheckConfig(
            quaternion_norm_tolerance=cfg.quaternion_norm_tolerance,
            tracking_valid_mask=cfg.tracking_valid_mask,
            frozen_frames=cfg.frozen_frames))
        self.jumps = JumpFilter(JumpConfig(
            max_speed_mps=cfg.max_speed_mps,
            max_angular_speed_rps=cfg.max_angular_speed_rps,
            jump_margin_m=cfg.jump_margin_m,
            reacquire_frames=cfg.reacquire_frames))
        self._fixed_names = bool(cfg.bodies)
        self.names: list[str] = list(cfg.bodies)

    # ------------------------------------------------------------------ sequence control
    def reset_sequence(self, why: str, forget_poses: bool = False) -> None:
        """The source restarted its frame numbering (reconnect, replay loop)."""
        self.order.reset()
        self.raw_check.reset()
        if forget_poses:
            self.jumps.reset()
        self.counters['sequence_resets'] += 1
        self.on_event('sequence_reset', 'info', f'frame sequence reset: {why}')

    # ------------------------------------------------------------------ start-up check
    def reference_check(self, raw: RawFrame) -> float | None:
        """Axis check on the reference body: its up coordinate (m), or None if not in this frame.

        Raises conversion.AxisCheckError when the configured axis convention puts the body at
        the wrong height.
        """
        name = self.cfg.reference_body
        body_id = self.body_map.id_of(name)
        if body_id is None:
            return None
        for body in raw.bodies:
            if body.id == body_id:
                if self.raw_check.instant(body)[0] is not None:
                    return None
                return check_reference_body(name, (body.x, body.y, body.z), self.cfg.axis_up,
                                            self.cfg.reference_up_m,
                                            self.cfg.reference_tolerance_m)
        return None

    # ------------------------------------------------------------------ one frame
    def process(self, raw: RawFrame, receive_ns: int) -> ProcessedFrame | None:
        """Turn one SDK frame into a publishable frame, or None when it must not be published."""
        self.counters['frames_in'] += 1
        # 1. frame number
        if raw.frame_number < 0:
            self.counters['bad_frame_number'] += 1
            self.on_event('bad_frame_number', 'warn',
                          f'frame number {raw.frame_number} is negative; frame ignored')
            return None
        order = self.order.classify(raw.frame_number)
        if order.kind == 'duplicate':
            self.counters['duplicate_frames'] += 1
            self.on_event('duplicate_frame', 'warn',
                          f'duplicate frame {raw.frame_number} ignored')
            return None
        if order.kind == 'out_of_order':
            self.counters['out_of_order_frames'] += 1
            self.on_event('out_of_order_frame', 'warn',
                          f'out-of-order frame {raw.frame_number} after {order.previous} '
                          f'ignored')
            return None
        if order.kind == 'gap':
            self.counters['dropped_frames'] += order.dropped
            self.on_event('dropped_frames', 'warn',
                          f'dropped {order.dropped} frame(s): frame {raw.frame_number} after '
                          f'{order.previous}')
        elif order.kind == 'reset':
            self.counters['sequence_resets'] += 1
            self.raw_check.reset()
            self.on_event('sequence_reset', 'info',
                          f'frame counter jumped from {order.previous} to {raw.frame_number}; '
                          f'taken as a counter reset, not drops')

        # 2. capture-time stamp
        latency_ms = latency_to_ms(raw.latency, self.cfg.latency_unit)
        if not plausible_latency(latency_ms, self.cfg.max_latency_ms):
            self.counters['bad_latency'] += 1
            self.on_event('bad_latency', 'warn',
                          f'frame {raw.frame_number}: reported latency {latency_ms!r} ms is '
                          f'outside [0, {self.cfg.max_latency_ms:g}] ms; stamped with the '
                          f'receive time')
            latency_ms = 0.0
        stamp_ns = capture_time_ns(receive_ns, latency_ms)

        # 3. per body: SDK checks, conversion, jump rejection
        by_name: dict[str, RawRigidBody] = {}
        for body in raw.bodies:
            name = self.body_map.name_of(body.id)
            if name is None:
                self.counters['unnamed_body'] += 1
                self.on_event(f'unnamed:{body.id}', 'warn',
                              f'SDK body ID {body.id} has no name (not in body_ids, not in the '
                              f'data descriptions); ignored')
                continue
            if self._fixed_names and name not in self.cfg.bodies:
                self.counters['unlisted_body'] += 1
                continue
            if name in by_name:
                self.counters['duplicate_body'] += 1
                self.on_event(f'duplicate_body:{name}', 'warn',
                              f'frame {raw.frame_number}: body {name} (ID {body.id}) appears '
                              f'twice; first kept')
                continue
            by_name[name] = body
            if name not in self.names:
                self.names.append(name)

        n = len(self.names)
        positions = np.full((n, 3), np.nan)
        quaternions = np.full((n, 4), np.nan)
        tracked = np.zeros(n, dtype=bool)
        reasons: dict[str, str] = {}
        for k, name in enumerate(self.names):
            body = by_name.get(name)
            if body is None:
                self._reject(name, MISSING, f'not in frame {raw.frame_number}', reasons)
                continue
            reason, detail = self.raw_check.check(body)
            if reason is not None:
                self._reject(name, reason, detail, reasons)
                continue
            p, q = sdk_to_arena(np.array([body.x, body.y, body.z]),
                                np.array([body.qx, body.qy, body.qz, body.qw]), self.cfg.axis_up)
            q = q[0] / np.linalg.norm(q[0])
            reason, detail = self.jumps.check(name, p[0], q, stamp_ns)
            if reason is not None:
                self._reject(name, reason, detail, reasons)
                continue
            if detail:
                self.counters['reacquired'] += 1
                self.on_event(f'reacquired:{name}', 'warn', f'{name}: {detail}')
            positions[k] = p[0]
            quaternions[k] = q
            tracked[k] = True

        # 4. assembly
        self.counters['frames_out'] += 1
        return ProcessedFrame(
            frame_number=raw.frame_number, stamp_ns=stamp_ns, receive_ns=int(receive_ns),
            latency_ms=latency_ms, names=list(self.names), positions=positions,
            quaternions=quaternions, yaw=yaw_from_quaternion(quaternions), tracked=tracked,
            reasons=reasons, dropped_before=order.dropped)

    def _reject(self, name: str, reason: str, detail: str, reasons: dict[str, str]) -> None:
        self.counters[reason] += 1
        reasons[name] = reason
        level = 'info' if reason in (UNTRACKED, MISSING) else 'warn'
        self.on_event(f'{reason}:{name}', level, f'{name} not tracked ({reason}): {detail}')
