"""One robot's control tick without ROS: mocap frame + predecessor intent -> command + own intent.

The agent node (agent_node.py) is a thin rclpy shell around `AgentPipeline`; bag replay drives the
same class from recorded messages. Nothing here imports rclpy or reads a clock: every method that
needs the time takes `now` (seconds, one monotonic clock chosen by the caller), and the planner is
re-seeded from the tick index in deterministic mode, so the same inputs give the same commands.

Data flow of one tick (`AgentPipeline.tick`, architecture §3):

    MocapSample --check_frame--> poses of the needed bodies (own body fresh, others held <= stale_timeout_s)
        --watchdog--> stop (own pose outside the arena, a needed body lost too long)
    predecessor IntentMessage --validate_intent--> IntentTensors --> pending/IntentCache
        --lookup(tick)--> e^i and mode: fresh | cached (shifted) | masked
    poses --Snapshot.from_named_poses + observe (the simulator's builder)--> o^i
    SequentialPlanner.plan(o^i, e^i), B = 1, seed = seed + tick --> actions (H, 3), latents (H+1, dz)
        --finite?--> CommandChain (scale, low-pass, acceleration limit, clamp) --> (vx, vy, wz)
        --IntentLayout.insert--> e^{i+1} --> outgoing IntentMessage
        --integrate_plan--> predicted (x, y, yaw) for markers
    any exception --> stop with reason 'internal_error'

Inputs are validated by pure functions (`check_frame`, `validate_intent`, `check_intent_tick`)
that name a reason key from REJECT_REASONS; the pipeline counts rejections per key.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .core.checkpoint import CheckpointError, Manifest, load_agent
from .core.command import AXES, CommandChain, CommandLimits, NonFiniteActionError
from .core.config import PlannerConfig
from .core.intent import IntentCache, IntentError, IntentLayout, IntentSizeError, IntentTensors
from .core.planner import SequentialPlanner
from .core.world_model import WorldModel
from .sim.config import TaskConfig, load_task_config
from .sim.geometry import yaw_from_quaternion
from .sim.observation import Snapshot, obs_spec, observe

NS_PER_S = 1_000_000_000

# Mocap bodies of each task's object (robots are named by the team list).
OBJECT_BODIES: dict[str, tuple[str, ...]] = {'pushbox': ('box',), 'gate': (), 'shepherd': ('sheep',)}

# Why an input was refused. Order is the order of AgentStatus.reject_reasons (stable for monitors).
REJECT_REASONS: tuple[str, ...] = (
    'mocap_malformed',       # names / poses / tracked of different lengths
    'mocap_missing',         # a needed body is not in the frame
    'mocap_untracked',       # a needed body is flagged untracked
    'mocap_nan',             # a needed body's position or orientation is NaN/inf
    'mocap_bad_quaternion',  # a needed body's quaternion is far from unit length
    'mocap_out_of_order',    # capture time older than an earlier frame's
    'intent_sender',         # not from the configured predecessor (name or order index)
    'intent_model_set',      # from another training run (model_set_id)
    'intent_size',           # sizes differ from this robot's layout (IntentSizeError)
    'intent_nan',            # NaN/inf in a valid slot
    'intent_past_tick',      # for a tick older than the one already planned
    'intent_out_of_order',   # not newer than an intent already accepted
    'intent_future_tick',    # too far ahead of the mocap clock
)

# Intents may be this many ticks ahead of the latest mocap frame (the predecessor may see a frame
# of the next tick a moment earlier); further ahead means a broken clock.
MAX_INTENT_AHEAD_TICKS = 2
# Frames remembered by observe_frame, so that a tick run a little later (after the intent
# deadline) plans on its own frame's poses and a frame is never counted twice.
RECENT_FRAMES = 16
# Quaternions with a norm outside this band are corrupt, not merely unnormalised.
QUATERNION_NORM_BAND = (0.5, 2.0)


class Mode(IntEnum):
    """What a tick did; values equal seqwm_msgs/AgentStatus MODE_*."""

    FRESH = 0
    CACHED = 1
    MASKED = 2
    STOPPED = 3


class PipelineError(ValueError):
    """Settings, model and task do not fit together (raised at construction only)."""


class Rejected(ValueError):
    """An input refused by a validation function: `reason` is a REJECT_REASONS key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# ---- inputs -------------------------------------------------------------------------------------
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
    stamp_ns = int(msg.header.stamp.sec) * NS_PER_S + int(msg.header.stamp.nanosec)
    return MocapSample(stamp_ns, int(msg.frame_number), tuple(str(n) for n in msg.names), pos, quat,
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
        stamp_ns=int(msg.header.stamp.sec) * NS_PER_S + int(msg.header.stamp.nanosec),
        model_set_id=str(msg.model_set_id), sender=str(msg.sender),
        sender_index=int(msg.sender_index), num_agents=int(msg.num_agents),
        horizon=int(msg.horizon), latent_dim=int(msg.latent_dim), action_dim=int(msg.action_dim),
        latents=np.asarray(msg.latents, dtype=np.float32),
        actions=np.asarray(msg.actions, dtype=np.float32),
        valid=np.asarray(msg.valid, dtype=bool),
        planner_iterations=int(msg.planner_iterations),
        planner_value=float(msg.planner_value), planner_time_ms=float(msg.planner_time_ms))


# ---- pure validation ----------------------------------------------------------------------------
def tick_index(stamp_ns: int, dt: float) -> int:
    """tick = floor(stamp / dt), in integer ns so that every robot computes the same index."""
    return int(stamp_ns) // int(round(dt * NS_PER_S))


@dataclass
class FrameCheck:
    """What one frame says about the bodies a robot needs."""

    poses: dict[str, tuple[float, float, float]]   # body -> (x, y, yaw), usable measurements only
    problems: dict[str, str]                       # body -> REJECT_REASONS key
    details: dict[str, str]                        # body -> human-readable cause
    malformed: str = ''                            # non-empty: the whole frame is unusable


def check_frame(frame: MocapSample, bodies: Sequence[str]) -> FrameCheck:
    """Usable (x, y, yaw) of each of `bodies` in `frame`, and why the others are not usable.

    A body is usable when present, tracked, finite, and its quaternion is near unit length
    (it is normalised before the yaw is taken)."""
    k = len(frame.names)
    shapes = (frame.positions.shape, frame.orientations.shape, len(frame.tracked))
    if shapes != ((k, 3), (k, 4), k):
        msg = (f'frame {frame.frame_number}: {k} names, {frame.positions.shape[0]} poses, '
               f'{len(frame.tracked)} tracked flags')
        return FrameCheck({}, {b: 'mocap_malformed' for b in bodies}, {b: msg for b in bodies}, msg)
    index: dict[str, int] = {}
    for j, name in enumerate(frame.names):
        index.setdefault(name, j)
    poses: dict[str, tuple[float, float, float]] = {}
    problems: dict[str, str] = {}
    details: dict[str, str] = {}
    lo, hi = QUATERNION_NORM_BAND
    for body in bodies:
        j = index.get(body)
        if j is None:
            problems[body], details[body] = 'mocap_missing', f'body {body} not in frame'
            continue
        if not frame.tracked[j]:
            problems[body], details[body] = 'mocap_untracked', f'body {body} untracked'
            continue
        p, q = frame.positions[j], frame.orientations[j]
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
            problems[body] = 'mocap_nan'
            details[body] = f'body {body} pose not finite: position {p.tolist()} quaternion {q.tolist()}'
            continue
        norm = float(np.linalg.norm(q))
        if not lo <= norm <= hi:
            problems[body] = 'mocap_bad_quaternion'
            details[body] = f'body {body} quaternion norm {norm:.3g} outside [{lo}, {hi}]'
            continue
        qx, qy, qz, qw = (float(v) / norm for v in q)
        poses[body] = (float(p[0]), float(p[1]), yaw_from_quaternion(qx, qy, qz, qw))
    return FrameCheck(poses, problems, details)


@dataclass(frozen=True)
class IntentExpectation:
    """What this robot accepts from its predecessor."""

    layout: IntentLayout
    model_set_id: str
    predecessor: str          # '' for order index 0: nobody may send to it
    predecessor_index: int    # -1 for order index 0


def validate_intent(intent: IntentMessage, expect: IntentExpectation) -> IntentTensors:
    """The intent as tensors (B = 1), or `Rejected` naming the reason.

    Checked in this order: sender (name and order index), model-set id, sizes (header fields and
    array lengths, via the layout's IntentSizeError), finite values in valid slots."""
    who = intent.sender or '<unnamed>'
    if expect.predecessor_index < 0:
        raise Rejected('intent_sender', f'rejected intent from {who}: order index 0 has no predecessor')
    if intent.sender != expect.predecessor or intent.sender_index != expect.predecessor_index:
        raise Rejected('intent_sender', f'rejected intent from {who} (index {intent.sender_index}): '
                                        f'predecessor is {expect.predecessor} '
                                        f'(index {expect.predecessor_index})')
    if intent.model_set_id != expect.model_set_id:
        raise Rejected('intent_model_set', f'rejected intent from {who}: model set '
                                           f'{intent.model_set_id!r} != {expect.model_set_id!r}')
    lay = expect.layout
    for name, got, want in (('num_agents', intent.num_agents, lay.num_agents),
                            ('horizon', intent.horizon, lay.horizon),
                            ('latent size', intent.latent_dim, lay.latent_dim),
                            ('action size', intent.action_dim, lay.action_dim)):
        if int(got) != want:
            raise Rejected('intent_size', f'rejected intent from {who}: {name} {got} != {want}')
    latents = np.asarray(intent.latents, dtype=np.float32).reshape(-1)
    actions = np.asarray(intent.actions, dtype=np.float32).reshape(-1)
    valid = np.asarray(intent.valid, dtype=bool).reshape(-1)
    sizes = lay.sizes
    if (latents.size, actions.size, valid.size) == (sizes['latents'], sizes['actions'], sizes['valid']):
        # A masked slot's content means nothing, NaN included: zero it before the layout
        # multiplies by the mask (NaN * 0 would still be NaN).
        n = lay.num_agents
        latents = np.where(np.repeat(valid, sizes['latents'] // n), latents, np.float32(0))
        actions = np.where(np.repeat(valid, sizes['actions'] // n), actions, np.float32(0))
    try:
        return lay.from_arrays(latents, actions, valid)
    except IntentSizeError as exc:
        raise Rejected('intent_size', f'rejected intent from {who}: {exc}') from None
    except IntentError as exc:
        raise Rejected('intent_nan', f'rejected intent from {who}: {exc}') from None


def check_intent_tick(tick: int, last_planned: int | None, newest_accepted: int | None,
                      current: int | None, max_ahead: int = MAX_INTENT_AHEAD_TICKS) -> None:
    """Refuse an intent whose tick cannot help any more, repeats one, or lies in the future.

    An intent for the tick just planned (it arrived after the deadline) is accepted: shifted by
    one, it is the best cache for the next tick."""
    if last_planned is not None and tick < last_planned:
        raise Rejected('intent_past_tick', f'intent for tick {tick} arrived after tick '
                                           f'{last_planned} was planned')
    if newest_accepted is not None and tick <= newest_accepted:
        raise Rejected('intent_out_of_order', f'intent for tick {tick} after one for tick '
                                              f'{newest_accepted}')
    if current is not None and tick > current + max_ahead:
        raise Rejected('intent_future_tick', f'intent for tick {tick} but mocap is at tick '
                                             f'{current} (more than {max_ahead} ahead)')


def integrate_plan(pose: Sequence[float], velocities: np.ndarray, dt: float) -> np.ndarray:
    """Predicted (x, y, yaw) (H+1, 3) from `pose` under body-frame velocities (H, 3), each held dt.

    The latents cannot be decoded to positions (the world model has no decoder), so the plan is
    shown as the planned velocity commands integrated from the current pose (what the robot would
    do if its locomotion controller tracked them exactly)."""
    x, y, yaw = (float(v) for v in pose)
    out = [(x, y, yaw)]
    for vx, vy, wz in np.asarray(velocities, dtype=np.float64).reshape(-1, 3):
        c, s = math.cos(yaw), math.sin(yaw)
        x += (c * vx - s * vy) * dt
        y += (s * vx + c * vy) * dt
        yaw += wz * dt
        out.append((x, y, yaw))
    return np.array(out)


# ---- settings and outputs -----------------------------------------------------------------------
@dataclass(frozen=True)
class AgentSettings:
    """Everything the pipeline needs besides the model and the task config (node parameters)."""

    robot_name: str
    order_index: int
    team: tuple[str, ...]
    task: str
    predecessor: str = ''
    dt: float = 0.1
    cache_max_age_ticks: int = 3
    stale_timeout_s: float = 0.3
    limits: CommandLimits = field(default_factory=CommandLimits)
    lowpass_cutoff_hz: float = 2.0
    # Watchdog bounds (min_x, max_x, min_y, max_y); None: the task config's arena.
    arena_bounds: tuple[float, float, float, float] | None = None
    # PlannerConfig keys replacing the manifest's `planner` section (iterations, early_stop, ...).
    planner_overrides: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    deterministic: bool = True
    device: str = 'cpu'

    def __post_init__(self) -> None:
        team = tuple(self.team)
        object.__setattr__(self, 'team', team)
        if self.task not in OBJECT_BODIES:
            raise PipelineError(f'task {self.task!r} is not one of {sorted(OBJECT_BODIES)}')
        if not 0 <= self.order_index < len(team):
            raise PipelineError(f'order_index {self.order_index} outside the team {list(team)}')
        if team[self.order_index] != self.robot_name:
            raise PipelineError(f'robot_name {self.robot_name!r} is not team[{self.order_index}] '
                                f'= {team[self.order_index]!r}')
        if len(set(team)) != len(team):
            raise PipelineError(f'team names must be unique, got {list(team)}')
        want = team[self.order_index - 1] if self.order_index > 0 else ''
        if self.predecessor != want:
            raise PipelineError(f'predecessor {self.predecessor!r} does not match the team order '
                                f'(expected {want!r} for order_index {self.order_index})')
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise PipelineError(f'dt must be positive, got {self.dt}')
        if self.cache_max_age_ticks < 0:
            raise PipelineError(f'cache_max_age_ticks must be >= 0, got {self.cache_max_age_ticks}')
        if not (math.isfinite(self.stale_timeout_s) and self.stale_timeout_s > 0):
            raise PipelineError(f'stale_timeout_s must be positive, got {self.stale_timeout_s}')
        if self.arena_bounds is not None:
            x0, x1, y0, y1 = self.arena_bounds
            if not (x0 < x1 and y0 < y1):
                raise PipelineError(f'arena bounds {self.arena_bounds} are empty')


@dataclass
class TickOutput:
    """Everything one tick (or one watchdog stop) produced; the node turns it into messages."""

    tick: int
    stamp_ns: int                      # mocap capture time of the tick (headers)
    mode: Mode
    reason: str                        # '' when fresh; why otherwise
    command: np.ndarray                # (3,) vx, vy, wz sent (zeros when stopped)
    stop: bool                         # True: call the backend's stop() instead of send()
    intent: IntentMessage | None       # outgoing intent (None when stopped)
    intent_age_s: float                # age of the predecessor intent used (0 when fresh/none)
    planning_time_ms: float
    planner_iterations: int
    planner_value: float
    trajectory: np.ndarray | None      # (H+1, 3) predicted x, y, yaw for markers
    mode_counts: tuple[int, int, int, int]
    reject_counts: dict[str, int]
    stop_key: str = ''                 # watchdog key when stopped ('stale_mocap', 'outside_arena', ...)


@dataclass(frozen=True)
class FrameSeen:
    """What `observe_frame` learnt from one frame."""

    tick: int
    usable: bool         # own body measured in this frame: the frame may start a tick
    new: bool            # not the frame observed last (a repeat is not counted twice)
    reason: str = ''     # why not usable


@dataclass(frozen=True)
class Event:
    """A log line for the node: `key` groups repeats for throttling."""

    key: str
    level: str     # 'info' | 'warn' | 'error'
    message: str


@dataclass
class _Held:
    pose: tuple[float, float, float]
    stamp_ns: int


# ---- the pipeline -------------------------------------------------------------------------------
class AgentPipeline:
    """This robot's model, planner (B = 1), intent layout + cache, command chain and watchdog."""

    def __init__(self, settings: AgentSettings, model: WorldModel, manifest: Manifest,
                 task_cfg: TaskConfig | None = None) -> None:
        s = settings
        self.settings = s
        self.manifest = manifest
        n = len(s.team)
        if manifest.model.num_agents != n:
            raise PipelineError(f'the model set has {manifest.model.num_agents} agents, the team '
                                f'{list(s.team)} has {n}')
        if abs(float(manifest.dt) - s.dt) > 1e-9:
            raise PipelineError(f'dt {s.dt} differs from the model\'s dt {manifest.dt} (manifest); '
                                f'the world model predicts one step of its training dt')
        if manifest.task and manifest.task != s.task:
            raise PipelineError(f'task {s.task!r} but the model set was trained for {manifest.task!r}')
        if task_cfg is None:
            task_cfg = load_task_config(s.task, overrides={'num_robots': n})
        if task_cfg.name != s.task or task_cfg.num_robots != n:
            raise PipelineError(f'task config is {task_cfg.name} with {task_cfg.num_robots} robots, '
                                f'expected {s.task} with {n}')
        spec = obs_spec(s.task, task_cfg)
        if spec != list(manifest.obs_spec):
            raise PipelineError(f'the observation builder gives {len(spec)} elements '
                                f'{spec[:3]}..., the model expects {len(manifest.obs_spec)} '
                                f'{list(manifest.obs_spec)[:3]}...')
        self.task_cfg = task_cfg
        a = task_cfg.arena
        self.arena_bounds = s.arena_bounds or (a.x_min, a.x_max, a.y_min, a.y_max)

        planner_dict = {**manifest.planner, **dict(s.planner_overrides), 'control_hz': 1.0 / s.dt}
        try:
            pcfg = PlannerConfig.from_dict(planner_dict)
        except ValueError as exc:
            raise PipelineError(f'planner settings: {exc}') from None
        mc = manifest.model
        self.layout = IntentLayout(n, pcfg.horizon, mc.latent_dim, mc.action_dim)
        self.model = model.to(s.device).eval()
        self.planner = SequentialPlanner(self.model, self.layout, pcfg, s.order_index,
                                         seed=s.seed if s.deterministic else None)
        self.cache = IntentCache(self.layout, s.cache_max_age_ticks)
        self.chain = CommandChain(s.limits, cutoff_hz=s.lowpass_cutoff_hz, rate_hz=1.0 / s.dt)
        self.expect = IntentExpectation(self.layout, manifest.model_set_id, s.predecessor,
                                        s.order_index - 1)
        # The model's action a in [-1, 1] means a * action_scaling (training units); the chain
        # scales by the deployment limits, so hand it a * scaling / limits (then clipped to [-1, 1]:
        # lower deployment limits clamp, they do not rescale the model's meaning).
        scaling = manifest.action_scaling
        scale = [scaling[k] for k in AXES] if set(AXES) <= set(scaling) else list(scaling.values())
        self.action_scale = np.asarray(scale, dtype=np.float64)
        self._chain_gain = self.action_scale / s.limits.velocity
        self.bodies: tuple[str, ...] = s.team + OBJECT_BODIES[s.task]

        self.reject_counts: dict[str, int] = {r: 0 for r in REJECT_REASONS}
        self.mode_counts = [0, 0, 0, 0]
        self._events: list[Event] = []
        self._held: dict[str, _Held] = {}
        self._pending: dict[int, IntentTensors] = {}
        self._reset_clocks()
        self._last_mode: Mode | None = None
        self._last_stop_key = ''
        self._last_output_now: float | None = None
        self._first_watchdog_now: float | None = None

    @classmethod
    def load(cls, settings: AgentSettings, model_dir: str | Path,
             task_cfg: TaskConfig | None = None) -> AgentPipeline:
        """Load only this robot's agent file (verified against the manifest and its sha256)."""
        if task_cfg is None:
            task_cfg = load_task_config(settings.task, overrides={'num_robots': len(settings.team)})
        try:
            model, manifest = load_agent(model_dir, settings.order_index,
                                         obs_spec=obs_spec(settings.task, task_cfg),
                                         device=settings.device)
        except CheckpointError as exc:
            raise PipelineError(str(exc)) from None
        return cls(settings, model, manifest, task_cfg)

    # ---- bookkeeping ----------------------------------------------------------------------------
    def _reset_clocks(self) -> None:
        """Forget everything tied to the mocap clock (after a stale stop the clock may have jumped)."""
        self._last_stamp_ns: int | None = None
        self._recent: OrderedDict[tuple[int, int], tuple[FrameSeen, dict]] = OrderedDict()
        self._last_any_frame_now: float | None = None
        self._last_usable_now: float | None = None
        self._last_problem = ''
        self._current_tick: int | None = None
        self._last_tick: int | None = None
        self._newest_intent_tick: int | None = None
        self._last_command_stamp: int | None = None
        self._pending.clear()
        self._held.clear()
        self.cache.clear()

    def _event(self, key: str, level: str, message: str) -> None:
        self._events.append(Event(key, level, message))

    def drain_events(self) -> list[Event]:
        """Log lines produced since the last call (the node logs them, throttled by key)."""
        out, self._events = self._events, []
        return out

    def _reject(self, reason: str, message: str) -> None:
        self.reject_counts[reason] += 1
        self._event(reason, 'warn', message)

    @property
    def last_tick(self) -> int | None:
        """The last tick planned (or stopped), None before the first."""
        return self._last_tick

    def tick_of(self, frame: MocapSample) -> int:
        return tick_index(frame.stamp_ns, self.settings.dt)

    # ---- inputs ---------------------------------------------------------------------------------
    def observe_frame(self, frame: MocapSample, now: float) -> FrameSeen:
        """Validate a frame, hold the latest usable pose of every needed body, count rejections.

        Call it for every received frame (the node does); `tick` calls it for its own frame,
        and a frame already observed is not counted twice."""
        if frame.key in self._recent:
            seen = self._recent[frame.key][0]
            return FrameSeen(seen.tick, seen.usable, False, seen.reason)
        t = self.tick_of(frame)
        if self._last_stamp_ns is not None and frame.stamp_ns < self._last_stamp_ns:
            msg = (f'mocap frame {frame.frame_number} captured {1e-9 * (self._last_stamp_ns - frame.stamp_ns):.3f} s '
                   f'before the previous one')
            self._reject('mocap_out_of_order', msg)
            self._last_problem = msg
            return FrameSeen(t, False, True, msg)
        self._last_stamp_ns = frame.stamp_ns
        self._last_any_frame_now = now
        self._current_tick = t
        check = check_frame(frame, self.bodies)
        for reason in sorted(set(check.problems.values()), key=REJECT_REASONS.index):
            bodies = [b for b, r in check.problems.items() if r == reason]
            self._reject(reason, '; '.join(check.details[b] for b in bodies)
                         + f' (frame {frame.frame_number})')
        for body, pose in check.poses.items():
            self._held[body] = _Held(pose, frame.stamp_ns)
        own = self.settings.robot_name
        usable = own in check.poses
        reason = '' if usable else check.details.get(own, f'body {own} not usable')
        if usable:
            self._last_usable_now = now
        else:
            self._last_problem = reason
        seen = FrameSeen(t, usable, True, reason)
        self._recent[frame.key] = (seen, check.poses)
        while len(self._recent) > RECENT_FRAMES:
            self._recent.popitem(last=False)
        return seen

    def receive_intent(self, intent: IntentMessage, now: float) -> str | None:
        """Validate a predecessor intent and keep it for its tick; returns the reject reason or None.

        Every valid intent is kept, even one arriving after its tick was planned: shifted, it is
        the cache for the next tick."""
        try:
            tensors = validate_intent(intent, self.expect)
            check_intent_tick(intent.tick, self._last_tick, self._newest_intent_tick,
                              self._current_tick)
        except Rejected as r:
            self._reject(r.reason, r.message)
            return r.reason
        self._pending[intent.tick] = tensors.to(self.settings.device)
        self._newest_intent_tick = intent.tick
        return None

    def has_intent_for(self, tick: int) -> bool:
        """A valid intent for `tick` is in hand (the node stops waiting for the deadline)."""
        return tick in self._pending or self.cache.tick == tick

    # ---- THE control tick -----------------------------------------------------------------------
    def tick(self, frame: MocapSample, predecessor: IntentMessage | None, now: float) -> TickOutput:
        """One control tick on the first frame of a new tick.

        `predecessor`: the predecessor's intent for this tick if it arrived before the deadline
        (None otherwise, or when it was already passed to `receive_intent`). Never raises: any
        failure becomes a stop with a reason."""
        s = self.settings
        seen = self.observe_frame(frame, now)
        t, stamp = seen.tick, frame.stamp_ns
        frame_poses = self._recent[frame.key][1] if frame.key in self._recent else {}
        try:
            if predecessor is not None:
                self.receive_intent(predecessor, now)
            self._absorb_pending(t)
            # 1. watchdog on the inputs: own pose measured now, others recent, inside the arena
            if self._last_tick is not None and t <= self._last_tick:
                return self._stop(t, stamp, now, 'tick_order',
                                  f'tick {t} is not after the last tick {self._last_tick}')
            if not seen.usable:
                return self._stop(t, stamp, now, 'own_untracked', f'own pose unusable: {seen.reason}')
            fault = self._pose_fault(stamp, frame_poses[s.robot_name])
            if fault:
                return self._stop(t, stamp, now, *fault)
            # 2. predecessor intent: fresh, cached (shifted) or masked
            intent, mode, age_ticks = self._predecessor_intent(t)
            # 3. observation with the simulator's builder: this frame's poses, held ones for
            #    bodies it lacks (every robot of the tick plans on the same frame)
            poses = {b: self._held[b].pose for b in self.bodies}
            poses.update(frame_poses)
            snap = Snapshot.from_named_poses(s.task, self.task_cfg, s.team, poses, device=s.device)
            obs = observe(s.task, snap, self.task_cfg)[:, s.order_index]          # (1, obs_dim)
            # 4. plan (B = 1) conditioned on the predecessors' slots
            if s.deterministic:
                self.planner.generator.manual_seed(s.seed + t)
            plan = self.planner.plan(obs, intent)
            actions = plan.actions[0].detach().cpu().numpy().astype(np.float64)   # (H, da)
            value = float(plan.value[0])
            if not (np.all(np.isfinite(actions)) and bool(torch.isfinite(plan.latents).all())
                    and math.isfinite(value)):
                return self._stop(t, stamp, now, 'non_finite_plan',
                                  f'planner output not finite (first action {actions[0].tolist()}, '
                                  f'value {value})')
            # 5. command chain: scale, low-pass, acceleration limit, clamp
            try:
                command = self.chain.step(actions[0] * self._chain_gain, self._command_dt(stamp))
            except NonFiniteActionError as exc:
                return self._stop(t, stamp, now, 'non_finite_plan', str(exc))
            self._last_command_stamp = stamp
            # 6. outgoing intent e^{i+1} = e^i (+) (z^i, a^i)
            out = self.layout.insert(intent.to(plan.latents.device), s.order_index,
                                     plan.latents, plan.actions)
            arrays = self.layout.to_arrays(out)
            message = IntentMessage(
                tick=t, stamp_ns=stamp, model_set_id=self.manifest.model_set_id,
                sender=s.robot_name, sender_index=s.order_index, num_agents=self.layout.num_agents,
                horizon=self.layout.horizon, latent_dim=self.layout.latent_dim,
                action_dim=self.layout.action_dim, latents=arrays['latents'],
                actions=arrays['actions'], valid=arrays['valid'],
                planner_iterations=int(plan.iterations), planner_value=value,
                planner_time_ms=float(plan.time_ms))
            # 7. predicted trajectory (planned velocities integrated from the measured pose)
            velocities = np.clip(actions, -1.0, 1.0) * self.action_scale
            velocities = np.clip(velocities, -s.limits.velocity, s.limits.velocity)
            trajectory = integrate_plan(poses[s.robot_name], velocities, s.dt)
        except Exception as exc:  # noqa: BLE001 - the robot must stop whatever went wrong
            return self._stop(t, stamp, now, 'internal_error',
                              f'internal error: {type(exc).__name__}: {exc}')

        self._last_tick = t
        reason = self._mode_reason(mode, t, age_ticks)
        self._note_mode(mode, reason)
        return self._output(t, stamp, now, mode, reason, command, False, message,
                            age_ticks * s.dt if mode != Mode.FRESH else 0.0, plan.time_ms,
                            plan.iterations, value, trajectory)

    # ---- pieces of the tick ---------------------------------------------------------------------
    def _pose_fault(self, stamp_ns: int, own: tuple[float, float, float]) -> tuple[str, str] | None:
        """Watchdog on poses: a needed body never seen or not measured for stale_timeout_s
        (mocap time), or the own pose outside the arena bounds."""
        s = self.settings
        for body in self.bodies:
            held = self._held.get(body)
            if held is None:
                return 'body_lost', f'no usable pose of body {body} yet'
            age = (stamp_ns - held.stamp_ns) / NS_PER_S
            if age > s.stale_timeout_s:
                return 'body_lost', (f'body {body} not measured for {age:.2f} s '
                                     f'(stale_timeout_s {s.stale_timeout_s})')
        x, y, _ = own
        x0, x1, y0, y1 = self.arena_bounds
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            return 'outside_arena', (f'{s.robot_name} at ({x:.2f}, {y:.2f}) outside the arena '
                                     f'[{x0}, {x1}] x [{y0}, {y1}]')
        return None

    def _predecessor_intent(self, t: int) -> tuple[IntentTensors, Mode, int]:
        """e^i for tick t: the predecessor's intent of t (fresh), an older one shifted (cached),
        or nothing usable (masked); robot index 0 plans on the empty intent (always fresh)."""
        if self.settings.order_index == 0:
            return self.layout.empty(1, self.settings.device), Mode.FRESH, 0
        intent, mode = self.cache.lookup(t, 1, self.settings.device)
        age = t - self.cache.tick if self.cache.tick is not None else 0
        return intent, Mode[mode.upper()], age

    def _absorb_pending(self, t: int) -> None:
        """Move intents for ticks <= t into the cache, oldest first (every tick, stopped or not,
        so that nothing piles up while the robot is stopped)."""
        for k in sorted(self._pending):
            if k <= t:
                self.cache.update(self._pending.pop(k), k)

    def _mode_reason(self, mode: Mode, t: int, age: int) -> str:
        s = self.settings
        if mode == Mode.FRESH:
            return ''
        if mode == Mode.CACHED:
            return (f'no intent from {s.predecessor} for tick {t}: using tick {t - age} '
                    f'shifted by {age}')
        if self.cache.tick is None:
            return f'no intent from {s.predecessor} yet: predecessor slots masked'
        return (f'last intent from {s.predecessor} is {age} ticks old '
                f'(> cache_max_age_ticks {s.cache_max_age_ticks}): predecessor slots masked')

    def _note_mode(self, mode: Mode, reason: str) -> None:
        if mode != self._last_mode:
            prev = self._last_mode.name.lower() if self._last_mode is not None else 'start'
            level = 'info' if mode == Mode.FRESH else 'warn'
            text = f'{self.settings.robot_name} mode {prev} -> {mode.name.lower()}'
            self._event(f'mode:{mode.name.lower()}', level, f'{text}: {reason}' if reason else text)
            self._last_mode = mode

    def _command_dt(self, stamp_ns: int) -> float:
        """Time between this tick and the previous command, for the acceleration limit.

        Measured in mocap capture time (the ticks' frame stamps), not in send time, so that a
        replay of the recorded frames reproduces the commands exactly; capped at 2 dt (a gap never
        licenses a bigger jump than two ticks' worth). The first command after a start or a stop
        uses the nominal dt: it ramps up from standstill."""
        dt = self.settings.dt
        if self._last_command_stamp is None:
            return dt
        return min(max((stamp_ns - self._last_command_stamp) / NS_PER_S, 1e-6), 2.0 * dt)

    # ---- stops ----------------------------------------------------------------------------------
    def _stop(self, t: int, stamp_ns: int, now: float, key: str, reason: str) -> TickOutput:
        """Zero command now; the chain and the planner's warm start restart from standstill."""
        self.chain.stop()
        self.planner.reset()
        self._last_command_stamp = None
        if self._last_tick is None or t > self._last_tick:
            self._last_tick = t
        if key != self._last_stop_key or self._last_mode != Mode.STOPPED:
            self._event(f'stop:{key}', 'error' if key == 'internal_error' else 'warn',
                        f'{self.settings.robot_name} stopped: {reason}')
        self._last_stop_key = key
        self._last_mode = Mode.STOPPED
        return self._output(t, stamp_ns, now, Mode.STOPPED, reason, np.zeros(3), True, None, 0.0,
                            0.0, 0, 0.0, None, key)

    def stop(self, now: float, key: str, reason: str) -> TickOutput:
        """A stop decided outside the pipeline (backend not ready or failing)."""
        t = self._last_tick if self._last_tick is not None else (self._current_tick or 0)
        return self._stop(t, self._last_stamp_ns or 0, now, key, reason)

    def stop_tick(self, frame: MocapSample, now: float, key: str, reason: str) -> TickOutput:
        """This frame's tick, stopped for a reason decided outside the pipeline."""
        seen = self.observe_frame(frame, now)
        self._absorb_pending(seen.tick)
        return self._stop(seen.tick, frame.stamp_ns, now, key, reason)

    def check_watchdog(self, now: float) -> TickOutput | None:
        """Stop when no usable frame arrived for stale_timeout_s (call it periodically).

        Returns a stopped output at most once per dt while the condition lasts (one status per
        tick), None otherwise. A stale stop forgets everything tied to the mocap clock, so the
        pipeline restarts cleanly if the clock jumped (a restarted mocap source)."""
        s = self.settings
        if self._first_watchdog_now is None:
            self._first_watchdog_now = now
        since = self._last_usable_now if self._last_usable_now is not None else self._first_watchdog_now
        waited = now - since
        if waited <= s.stale_timeout_s:
            return None
        if self._last_output_now is not None and now - self._last_output_now < 0.9 * s.dt \
                and self._last_mode == Mode.STOPPED:
            return None
        if self._last_usable_now is None and self._last_any_frame_now is None:
            key, reason = 'stale_mocap', f'no mocap frame received ({waited:.2f} s since start)'
        elif self._last_any_frame_now is None or now - self._last_any_frame_now > s.stale_timeout_s:
            last = self._last_any_frame_now if self._last_any_frame_now is not None else since
            key, reason = 'stale_mocap', (f'no mocap frame for {now - last:.2f} s '
                                          f'(stale_timeout_s {s.stale_timeout_s})')
        else:
            key, reason = 'own_untracked', (f'own body {s.robot_name} not measured for {waited:.2f} s '
                                            f'(stale_timeout_s {s.stale_timeout_s}): {self._last_problem}')
        t = self._last_tick if self._last_tick is not None else (self._current_tick or 0)
        stamp = self._last_stamp_ns or 0
        out = self._stop(t, stamp, now, key, reason)
        self._reset_clocks()
        self._last_usable_now = since   # keep measuring from the last usable frame
        return out

    def robot_stopped(self) -> None:
        """The backend stopped the robot by itself (its own watchdog): ramp up from zero next."""
        self.chain.stop()

    # ---- output ---------------------------------------------------------------------------------
    def _output(self, t: int, stamp_ns: int, now: float, mode: Mode, reason: str,
                command: np.ndarray, stop: bool, intent: IntentMessage | None, age_s: float,
                time_ms: float, iterations: int, value: float, trajectory: np.ndarray | None,
                stop_key: str = '') -> TickOutput:
        self.mode_counts[int(mode)] += 1
        self._last_output_now = now
        return TickOutput(tick=t, stamp_ns=stamp_ns, mode=mode, reason=reason,
                          command=np.asarray(command, dtype=np.float64).copy(), stop=stop,
                          intent=intent, intent_age_s=float(age_s), planning_time_ms=float(time_ms),
                          planner_iterations=int(iterations), planner_value=float(value),
                          trajectory=trajectory, mode_counts=tuple(self.mode_counts),
                          reject_counts=dict(self.reject_counts), stop_key=stop_key)
