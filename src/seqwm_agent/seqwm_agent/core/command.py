"""The command chain: planner action -> velocity command that is safe to send to a robot.

One control tick (architecture §3 step 5) turns an action a in [-1, 1]^3 (the model's units:
a * action_scale is the velocity it means) into (vx, vy, wz) in m/s, m/s, rad/s:

    a --check finite--> clip to [-1, 1] --scale--> v* = clamp(a * action_scale, +-v_max)
      --low-pass--> v_f (first-order Butterworth of lowpass.py, fixed sample rate)
      --acceleration limit--> |v - v_prev| <= a_max * dt   (dt = time since the previous output)
      --hard clamp--> |v| <= v_max

Guarantees, for any input sequence and any dt > 0, per robot of the batch:
  * every output lies inside the velocity limits (the clamp is the last step);
  * consecutive outputs differ by at most a_max * dt per axis, except right after a stop
    (clamping towards an interval that contains v_prev never increases |v - v_prev|);
  * a non-finite action (NaN, +-inf) is never passed on: that robot's state is left untouched
    (its previous output stands), the refusal is counted, and the caller decides whether to stop
    it (`CommandChain.step` with numpy input raises `NonFiniteActionError`, as a robot wants).

A stop is a safety action, so it is *not* rate limited: `stop()` returns zeros at once and resets
the filter and the rate limiter to zero, so the next command ramps up from standstill. The chain
starts in that same stopped state.

One implementation, in torch and batched over B robots (`chain_step` on a `ChainState`): the
robot runs B = 1 (numpy in, numpy out, through `CommandChain`), the simulator and the trainer
run one row per environment, and the planner runs the same function over its candidate action
sequences to plan through the chain (planner.py): the world model sees the commands the robot
will really execute. Never imports rclpy.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

import numpy as np
import torch

from .lowpass import butterworth1
from .validate import number, unknown_keys

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
            number(f'command limit {f.name}', getattr(self, f.name), 0.0, lo_open=True)

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
        unknown_keys(cls, d, 'command limits')
        return cls(**{k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                      for k, v in d.items()})

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


# The robots' defaults, declared here once: the low-pass cutoff (Hz) and the control rate (Hz).
# Node parameters, the planner's noise filter and the agent settings read these.
CUTOFF_HZ = 2.0
RATE_HZ = 10.0


@dataclass(frozen=True)
class ChainSettings:
    """What fixes the chain's behaviour (recorded in a model's manifest when trained with it)."""

    limits: CommandLimits = field(default_factory=CommandLimits)
    cutoff_hz: float = CUTOFF_HZ
    rate_hz: float = RATE_HZ

    def __post_init__(self) -> None:
        r = number('command chain rate_hz', self.rate_hz, 0.0, lo_open=True)
        number('command chain cutoff_hz (below rate_hz / 2)', self.cutoff_hz, 0.0, r / 2,
               lo_open=True, hi_open=True)

    def to_dict(self) -> dict[str, Any]:
        return {'limits': self.limits.to_dict(), 'cutoff_hz': float(self.cutoff_hz),
                'rate_hz': float(self.rate_hz)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> 'ChainSettings':
        d = dict(d)
        unknown_keys(cls, d, 'command chain')
        return cls(CommandLimits.from_dict(d.get('limits')), float(d.get('cutoff_hz', CUTOFF_HZ)),
                   float(d.get('rate_hz', RATE_HZ)))


@dataclass
class ChainState:
    """Memory of the chain for a batch: previous filter input and output, last command (m/s).

    Each tensor has shape (..., 3); zeros everywhere is the stopped state."""

    x_prev: torch.Tensor
    y_prev: torch.Tensor
    last: torch.Tensor

    @classmethod
    def stopped(cls, batch: int, dtype: torch.dtype = torch.float64,
                device: torch.device | str = 'cpu') -> 'ChainState':
        z = torch.zeros(batch, 3, dtype=dtype, device=device)
        return cls(z, z.clone(), z.clone())

    def clone(self) -> 'ChainState':
        return ChainState(self.x_prev.clone(), self.y_prev.clone(), self.last.clone())

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
           ) -> 'ChainState':
        return ChainState(*(t.to(device=device, dtype=dtype) for t in
                            (self.x_prev, self.y_prev, self.last)))

    def select(self, rows: torch.Tensor) -> 'ChainState':
        """The state of some rows (e.g. the environments still running)."""
        return ChainState(self.x_prev[rows], self.y_prev[rows], self.last[rows])

    def expand(self, *shape: int) -> 'ChainState':
        """Broadcast a (B, 3) state to (B, *shape, 3) (the planner's candidate sequences)."""
        def ex(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(t.shape[0], *([1] * len(shape)), 3).expand(t.shape[0], *shape, 3)
        return ChainState(ex(self.x_prev), ex(self.y_prev), ex(self.last))

    def where(self, keep: torch.Tensor, other: 'ChainState') -> 'ChainState':
        """Rows where `keep` (B,) is true from self, the others from `other`."""
        k = keep.reshape(-1, *([1] * (self.last.dim() - 1)))
        return ChainState(torch.where(k, self.x_prev, other.x_prev),
                          torch.where(k, self.y_prev, other.y_prev),
                          torch.where(k, self.last, other.last))


class ChainParams:
    """The chain's constants as tensors of one dtype and device (cached per pair)."""

    def __init__(self, settings: ChainSettings, action_scale: Any = None,
                 dtype: torch.dtype = torch.float64, device: torch.device | str = 'cpu') -> None:
        lim = settings.limits
        self.settings = settings
        self.dtype, self.device = dtype, torch.device(device)
        kw = {'dtype': dtype, 'device': self.device}
        self.v_max = torch.tensor(lim.velocity, **kw)
        self.a_max = torch.tensor(lim.acceleration, **kw)
        scale = lim.velocity if action_scale is None else np.asarray(action_scale, dtype=np.float64)
        if scale.shape != (3,) or not np.all(np.isfinite(scale)) or not np.all(scale > 0):
            raise ValueError(f'action_scale must be 3 positive finite numbers (vx, vy, wz), '
                             f'got {scale.tolist()}')
        self.action_scale = torch.tensor(scale, **kw)
        self.inv_scale = 1.0 / self.action_scale
        # the largest filter input an action can ask for (|a| <= 1, |target| <= v_max)
        self.x_max = torch.minimum(self.action_scale, self.v_max)
        self.neg_v_max = -self.v_max
        c = butterworth1(settings.cutoff_hz, settings.rate_hz)
        self.b, self.a = c.b, c.a
        self.dt = 1.0 / settings.rate_hz

    def like(self, dtype: torch.dtype, device: torch.device | str) -> 'ChainParams':
        """These constants in another dtype / device (made once: the planner asks every plan)."""
        dev = torch.device(device)
        if dtype == self.dtype and dev == self.device:
            return self
        cache = self.__dict__.setdefault('_like', {})
        key = (dtype, dev)
        if key not in cache:
            cache[key] = ChainParams(self.settings, self.action_scale.cpu().numpy(), dtype, dev)
        return cache[key]


def chain_step(p: ChainParams, state: ChainState, action: torch.Tensor,
               dt: torch.Tensor | float | None = None) -> tuple[ChainState, torch.Tensor]:
    """One step for every row: action (..., 3) in model units -> (new state, command (..., 3) m/s).

    `dt` (s since the previous output) is a float or a tensor broadcastable to (..., 1); default
    the nominal 1 / rate_hz. No finiteness check here (callers refuse non-finite rows first)."""
    target = torch.clamp(action.clamp(-1.0, 1.0) * p.action_scale, p.neg_v_max, p.v_max)
    y = p.b * (target + state.x_prev) + p.a * state.y_prev
    max_step = p.a_max * (p.dt if dt is None else dt)
    v = torch.clamp(state.last + torch.clamp(y - state.last, -max_step, max_step),
                    p.neg_v_max, p.v_max)
    return ChainState(target, y, v), v


def chain_inverse(p: ChainParams, state: ChainState, command: torch.Tensor,
                  dt: torch.Tensor | float | None = None) -> torch.Tensor:
    """The action whose command (`chain_step` from `state`) is the executable command nearest
    to `command` (model units, (..., 3)).

    From a state the chain can reach, per axis, one interval of commands: the filter output y
    spans b (x + x_prev) + a y_prev over the inputs |x| <= x_max, then the acceleration limit
    and the clamp cut it. The nearest executable command v is `command` clipped to it; the
    filter output y = v (clipped to the filter's span, which contains the rate-limited interval)
    gives the input x = (y - a y_prev) / b - x_prev, and the action x / action_scale. So a
    planner can search over commands, the quantity its world model is trained on, and hand the
    robot's chain the action that produces the planned command."""
    c = command * p.action_scale
    step = p.a_max * (p.dt if dt is None else dt)
    y_lo = p.b * (state.x_prev - p.x_max) + p.a * state.y_prev
    y_hi = p.b * (state.x_prev + p.x_max) + p.a * state.y_prev
    v_lo = state.last + torch.clamp(y_lo - state.last, -step, step)   # the acceleration limit
    v_hi = state.last + torch.clamp(y_hi - state.last, -step, step)   # cuts the filter's span
    v = torch.clamp(torch.clamp(c, v_lo, v_hi), p.neg_v_max, p.v_max)
    y = torch.clamp(v, y_lo, y_hi)
    x = (y - p.a * state.y_prev) / p.b - state.x_prev
    return (x * p.inv_scale).clamp(-1.0, 1.0)


class CommandChain:
    """Stateful scale -> low-pass -> acceleration limit -> clamp for B robots, one call per tick.

    `rate_hz` is the nominal control rate the filter is designed for (its coefficients are
    fixed); the acceleration limit uses the real `dt` of each call, so late ticks may change
    the command more and early ticks less. `action_scale` (3,) is what an action of 1 means in
    m/s, rad/s (default: the velocity limits; a model dir's manifest gives its training scaling).
    Usage on a robot (B = 1, numpy)::

        chain = CommandChain(CommandLimits(), cutoff_hz=CUTOFF_HZ, rate_hz=RATE_HZ)
        vx, vy, wz = chain.step(plan.actions[0, 0], dt)
        ...
        chain.stop()   # zeros now; the next step ramps up from standstill

    Batched (torch): `step_batch(actions (B, 3), dt)` returns the commands and which rows were
    finite; `stop(rows)` stops some robots.
    """

    def __init__(self, limits: CommandLimits | None = None, cutoff_hz: float = CUTOFF_HZ,
                 rate_hz: float = 10.0, batch: int = 1, action_scale: Any = None,
                 device: torch.device | str = 'cpu') -> None:
        self.settings = ChainSettings(limits if limits is not None else CommandLimits(),
                                      cutoff_hz, rate_hz)
        self.limits = self.settings.limits
        self.cutoff_hz = float(cutoff_hz)
        self.rate_hz = float(rate_hz)
        self.batch = int(batch)
        self.params = ChainParams(self.settings, action_scale, torch.float64, device)
        self.state = ChainState.stopped(self.batch, torch.float64, device)
        self.rejected = 0   # non-finite actions refused since construction

    @property
    def last(self) -> np.ndarray:
        """The most recent output of robot 0 (zeros after a stop), shape (3,)."""
        return self.state.last[0].cpu().numpy().copy()

    def scale(self, action: np.ndarray) -> np.ndarray:
        """[-1, 1]^3 -> (vx, vy, wz); finite out-of-range actions are clipped first."""
        a = torch.as_tensor(np.asarray(action, dtype=np.float64))
        p = self.params
        return torch.minimum(torch.maximum(a.clamp(-1.0, 1.0) * p.action_scale.cpu(),
                                           -p.v_max.cpu()), p.v_max.cpu()).numpy()

    def step_batch(self, actions: torch.Tensor, dt: torch.Tensor | float | None = None,
                   rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Commands (B, 3) m/s for actions (B, 3); returns (commands, finite (B,) bool).

        Rows with a non-finite action keep their state and report their previous output; rows
        outside `rows` (a (B,) bool mask, default all) are not stepped. dt: float or (B,)."""
        p = self.params
        a = actions.to(device=p.device, dtype=p.dtype)
        if a.shape != (self.batch, 3):
            raise ValueError(f'actions must have shape ({self.batch}, 3), got {tuple(a.shape)}')
        finite = torch.isfinite(a).all(dim=1)
        use = finite if rows is None else finite & rows.to(p.device)
        self.rejected += int((~finite if rows is None else ~finite & rows.to(p.device)).sum())
        if torch.is_tensor(dt):
            dt = dt.to(device=p.device, dtype=p.dtype).reshape(-1, 1)
        new, _ = chain_step(p, self.state, torch.where(use[:, None], a, torch.zeros_like(a)), dt)
        self.state = new.where(use, self.state)
        return self.state.last.clone(), finite

    def step(self, action: np.ndarray, dt: float | None = None) -> np.ndarray:
        """Next command of robot 0 for `action` (shape (3,)), `dt` s after the previous output.

        `dt` defaults to 1 / rate_hz. Raises `NonFiniteActionError` for NaN/inf actions and
        ValueError for a non-positive or non-finite dt; in both cases nothing changes."""
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
        if self.batch != 1:
            raise ValueError(f'step() drives a chain of one robot; this one has {self.batch}')
        out, _ = self.step_batch(torch.from_numpy(a.reshape(1, 3)), float(dt))
        return out[0].cpu().numpy().copy()

    def stop(self, rows: torch.Tensor | None = None) -> np.ndarray:
        """Zero command now (not rate limited) and restart from standstill: every robot, or
        those where `rows` (B,) is true. Returns robot 0's command (zeros)."""
        stopped = ChainState.stopped(self.batch, self.params.dtype, self.params.device)
        self.state = stopped if rows is None else stopped.where(rows.to(self.params.device),
                                                                self.state)
        return self.state.last[0].cpu().numpy().copy()

    def select(self, rows: torch.Tensor) -> None:
        """Keep only some robots (index tensor), e.g. the environments still running."""
        self.state = self.state.select(rows)
        self.batch = int(self.state.last.shape[0])
