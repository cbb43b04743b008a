"""The command chain: planner action -> velocity command that is safe to send to a robot.

One control tick (architecture §3 step 5) turns the planner's first action a in [-1, 1]^3 into
(vx, vy, wz) in m/s, m/s, rad/s:

    a --check finite--> clip to [-1, 1] --scale--> v* = a * v_max
      --low-pass--> v_f (first-order Butterworth, `LowPassFilter`, fixed sample rate)
      --acceleration limit--> |v - v_prev| <= a_max * dt   (dt = time since the previous output)
      --hard clamp--> |v| <= v_max

Guarantees, for any input sequence and any dt > 0:
  * every output lies inside the velocity limits (the clamp is the last step);
  * consecutive outputs differ by at most a_max * dt per axis, except right after `stop()`
    (clamping towards an interval that contains v_prev never increases |v - v_prev|);
  * a non-finite action (NaN, +-inf) is never passed on: `step` raises `NonFiniteActionError`,
    counts it in `rejected`, and leaves the chain state untouched (the previous output stands;
    the caller decides whether to stop the robot).

A stop is a safety action, so it is *not* rate limited: `stop()` returns zeros at once and
resets the filter and the rate limiter to zero, so the next command ramps up from standstill.
The chain starts in that same stopped state.

Pure numpy (the filter module also holds the planner's torch helper); never imports rclpy.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

import numpy as np

from .lowpass import LowPassFilter

AXES = ('vx', 'vy', 'wz')


class NonFiniteActionError(ValueError):
    """The planner produced NaN or inf; the command chain refused it."""


@dataclass(frozen=True)
class CommandLimits:
    """Velocity and acceleration limits of one robot (base frame: x forward, y left, z up).

    Velocities match the training simulator and the reference task (vx 1 m/s, vy 0.5 m/s,
    wz 0.5 rad/s). Accelerations are our choice: 2 m/s^2 forward reaches full speed in 0.5 s
    (5 control ticks at 10 Hz), lateral is half of that like the velocity, and 2 rad/s^2 reaches
    full yaw rate in 0.25 s. They bound what the low-pass filter lets through after a planner
    jump and keep the Go2-W's own locomotion controller inside its comfortable range.
    """

    vx: float = field(default=1.0, metadata={'description': 'max |forward velocity|, m/s'})
    vy: float = field(default=0.5, metadata={'description': 'max |lateral velocity|, m/s'})
    wz: float = field(default=0.5, metadata={'description': 'max |yaw rate|, rad/s'})
    ax: float = field(default=2.0, metadata={'description': 'max |forward acceleration|, m/s^2'})
    ay: float = field(default=1.0, metadata={'description': 'max |lateral acceleration|, m/s^2'})
    awz: float = field(default=2.0, metadata={'description': 'max |yaw acceleration|, rad/s^2'})

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f'command limit {f.name} must be a number, got {value!r}')
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'command limit {f.name} must be positive and finite, got {value}')

    @property
    def velocity(self) -> np.ndarray:
        """(vx, vy, wz) maxima, shape (3,)."""
        return np.array([self.vx, self.vy, self.wz], dtype=np.float64)

    @property
    def acceleration(self) -> np.ndarray:
        """(ax, ay, awz) maxima, shape (3,)."""
        return np.array([self.ax, self.ay, self.awz], dtype=np.float64)

    def clamp(self, v: np.ndarray) -> np.ndarray:
        """Hard clamp of a (3,) velocity to the limits (NaN is not handled here)."""
        lim = self.velocity
        return np.clip(np.asarray(v, dtype=np.float64).reshape(3), -lim, lim)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> 'CommandLimits':
        """Build from a config/parameter mapping; unknown keys are rejected by name."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f'unknown command limit(s) {unknown}; known: {sorted(known)}')
        return cls(**{k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                      for k, v in d.items()})

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


class CommandChain:
    """Stateful scale -> low-pass -> acceleration limit -> clamp, one call per control tick.

    `rate_hz` is the nominal control rate the filter is designed for (its coefficients are
    fixed); the acceleration limit uses the real `dt` of each call, so late ticks may change
    the command more and early ticks less. Usage::

        chain = CommandChain(CommandLimits(), cutoff_hz=2.0, rate_hz=10.0)
        vx, vy, wz = chain.step(plan.actions[0, 0], dt)
        ...
        chain.stop()   # zeros now; the next step ramps up from standstill
    """

    def __init__(self, limits: CommandLimits | None = None, cutoff_hz: float = 2.0,
                 rate_hz: float = 10.0) -> None:
        self.limits = limits if limits is not None else CommandLimits()
        if not (isinstance(rate_hz, (int, float)) and math.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f'command chain rate_hz must be positive and finite, got {rate_hz}')
        if not (isinstance(cutoff_hz, (int, float)) and 0 < cutoff_hz < rate_hz / 2):
            raise ValueError(f'command chain cutoff_hz must lie in (0, rate_hz / 2 = '
                             f'{rate_hz / 2}), got {cutoff_hz}')
        self.cutoff_hz = float(cutoff_hz)
        self.rate_hz = float(rate_hz)
        self._filter = LowPassFilter(self.cutoff_hz, self.rate_hz, channels=3)
        self._v_max = self.limits.velocity
        self._a_max = self.limits.acceleration
        self._last = np.zeros(3)
        self.rejected = 0   # non-finite actions refused since construction
        self.stop()

    @property
    def last(self) -> np.ndarray:
        """The most recent output (zeros after a stop), shape (3,)."""
        return self._last.copy()

    def scale(self, action: np.ndarray) -> np.ndarray:
        """[-1, 1]^3 -> (vx, vy, wz); finite out-of-range actions are clipped first."""
        return np.clip(action, -1.0, 1.0) * self._v_max

    def step(self, action: np.ndarray, dt: float | None = None) -> np.ndarray:
        """Next command for planner `action` (shape (3,)), `dt` s after the previous output.

        `dt` defaults to 1 / rate_hz. Raises `NonFiniteActionError` for NaN/inf actions and
        ValueError for a non-positive or non-finite dt; in both cases nothing changes.
        """
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (3,):
            a = a.reshape(-1)
            if a.shape != (3,):
                raise ValueError(f'planner action must have 3 elements (vx, vy, wz), '
                                 f'got shape {np.shape(action)}')
        if not np.all(np.isfinite(a)):
            self.rejected += 1
            bad = [AXES[i] for i in np.flatnonzero(~np.isfinite(a))]
            raise NonFiniteActionError(f'non-finite planner action {a.tolist()} in {bad}; '
                                       f'command not changed')
        if dt is None:
            dt = 1.0 / self.rate_hz
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f'dt must be positive and finite, got {dt}')

        target = self._filter(self.scale(a))
        max_step = self._a_max * dt
        v = self._last + np.clip(target - self._last, -max_step, max_step)
        v = np.clip(v, -self._v_max, self._v_max)
        self._last = v
        return v.copy()

    def stop(self) -> np.ndarray:
        """Zero command now (not rate limited) and restart the chain from standstill."""
        self._filter.reset(np.zeros(3))
        self._last = np.zeros(3)
        return self._last.copy()
