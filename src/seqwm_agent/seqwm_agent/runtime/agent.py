"""One robot's agent without ROS: events in (mocap frame, predecessor intent, timer), ticks out.

The agent node (agent_node.py) only turns ROS messages into these events and the outputs back
into messages; bag replay (replay.py) feeds the same events with the recorded receive times.
Nothing here reads a clock: every method takes `now` (seconds, one monotonic clock chosen by
the caller).

Data flow of one tick (`AgentRuntime.tick`, architecture §3):

    MocapSample --check_frame--> poses of the needed bodies (own body fresh, others held)
        --scheduler--> run now | wait for the predecessor (deadline) | stop (watchdog)
        --watchdog on poses--> stop (own pose outside the arena, a needed body lost too long)
    poses --Snapshot.from_named_poses + observe (the simulator's builder)--> o^i
    Controller.step (B = 1, seed = seed + tick): predecessor intent fresh | cached | masked,
        plan through the command chain, first action --CommandChain--> (vx, vy, wz),
        e^{i+1} = e^i (+) (z^i, c^i) --> outgoing IntentMessage
    planned commands integrated from the measured pose --> predicted (x, y, yaw) for markers
    any exception --> stop with reason 'internal_error'

Inputs are validated by pure functions (validation.py) naming a reason key from
REJECT_REASONS; the runtime counts refusals per key and emits one event per refusal for the
node's throttled log.

Every call that can change what the runtime decides (a frame, an intent, a timer, an outside
stop, the backend's readiness) is written to its journal (journal.py) with `now`; each output
carries the records since the previous one, so a robot's own record is enough to replay it.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.checkpoint import CheckpointError, Manifest, load_agent
from ..core.command import AXES, CUTOFF_HZ, ChainSettings, CommandLimits
from ..core.config import PlannerConfig
from ..core.intent import CACHE_MAX_AGE_TICKS, IntentLayout, IntentTensors
from ..core.validate import ConfigError, integer, number
from ..core.world_model import WorldModel
from ..sim.config import TaskConfig, load_task_config
from ..sim.observation import Snapshot, obs_spec, observe
from ..task_registry import position_problem, task_info, team_mismatch, team_problem
from .chain import PRESETS, TimingError, chain_timing, preset_planner
from .controller import Controller
from .journal import (ACCEPTED, LATE, REPEAT, InputKind, InputRecord, Journal, frame_digest,
                      intent_digest)
from .messages import NS_PER_S, IntentMessage, MocapSample, message_bounds
from .scheduler import Run, Scheduler, Stop, Trigger
from .sources import BRIDGE_NODE, Publisher, SourceGuard, agent_node
from .validation import (MAX_INTENT_AHEAD_TICKS, RECENT_FRAMES, REJECT_REASONS,
                         TRACK_CONFLICT_JUMPS, IntentExpectation, Rejected, check_frame,
                         check_intent_tick, check_jump, check_stamp, tick_index, validate_intent)


class Mode(IntEnum):
    """What a tick did; values equal seqwm_msgs/AgentStatus MODE_* (and CacheMode for 0-2)."""

    FRESH = 0
    CACHED = 1
    MASKED = 2
    STOPPED = 3


class AgentError(ConfigError):
    """Settings, model and task do not fit together (raised at construction only)."""


def integrate_plan(pose: Sequence[float], velocities: np.ndarray, dt: float) -> np.ndarray:
    """Predicted (x, y, yaw) (H+1, 3) from `pose` under body-frame velocities (H, 3), each held dt.

    The latents cannot be decoded to positions (the world model has no decoder), so the plan is
    shown as the planned commands integrated from the current pose (what the robot would do if
    its locomotion controller tracked them exactly)."""
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
    """Per-robot facts (node parameters). What the model fixes (dt, horizon, discount, action
    scaling) comes from its manifest, never from here."""

    robot_name: str
    order_index: int
    team: tuple[str, ...]
    task: str
    predecessor: str = ''
    # the chain's timing (runtime/chain.py): one robot's planning p99 (0: the model's measured
    # deployment figure) and one intent hop's (0: the loopback measurement), ms
    plan_budget_ms: float = 0.0
    hop_budget_ms: float = 0.0
    cache_max_age_ticks: int = CACHE_MAX_AGE_TICKS
    stale_timeout_s: float = 0.3
    # mocap plausibility: stamps at most this far ahead of this host's clock, bodies no faster
    mocap_future_s: float = 0.5
    max_body_speed_mps: float = 3.0
    jump_margin_m: float = 0.1
    # the one node each input may come from (runtime/sources.py): the team's bridge, and the
    # predecessor's agent ('': agent_node(predecessor))
    mocap_source: str = BRIDGE_NODE
    predecessor_node: str = ''
    limits: CommandLimits = field(default_factory=CommandLimits)
    lowpass_cutoff_hz: float = CUTOFF_HZ
    # Watchdog bounds (min_x, max_x, min_y, max_y); None: the task config's arena.
    arena_bounds: tuple[float, float, float, float] | None = None
    # 'deployment': the manifest's planner (chosen by seqwm-budget); 'paper': the paper's
    # sampling settings. PlannerConfig keys in `planner_overrides` replace either.
    planner_preset: str = 'deployment'
    planner_overrides: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    deterministic: bool = True
    device: str = 'cpu'

    def __post_init__(self) -> None:
        team = tuple(self.team)
        object.__setattr__(self, 'team', team)
        problem = (team_problem(self.task, team)
                   or position_problem(team, self.robot_name, self.order_index, self.predecessor))
        if problem:
            raise AgentError(problem)
        try:
            integer('cache_max_age_ticks', self.cache_max_age_ticks, 0)
            number('stale_timeout_s', self.stale_timeout_s, 0.0, lo_open=True)
            number('mocap_future_s', self.mocap_future_s, 0.0, lo_open=True)
            number('max_body_speed_mps', self.max_body_speed_mps, 0.0, lo_open=True)
            number('jump_margin_m', self.jump_margin_m, 0.0)
            number('plan_budget_ms', self.plan_budget_ms, 0.0)
            number('hop_budget_ms', self.hop_budget_ms, 0.0)
            if self.planner_preset not in PRESETS:
                raise ConfigError(f'planner_preset must be one of {PRESETS}, got '
                                  f'{self.planner_preset!r}')
            number('lowpass_cutoff_hz', self.lowpass_cutoff_hz, 0.0, lo_open=True)
            integer('seed', self.seed, 0)
        except ConfigError as exc:
            raise AgentError(str(exc)) from None
        if self.arena_bounds is not None:
            x0, x1, y0, y1 = self.arena_bounds
            if not (x0 < x1 and y0 < y1):
                raise AgentError(f'arena bounds {self.arena_bounds} are empty')


@dataclass
class TickOutput:
    """Everything one tick (or one stop) produced; the node turns it into messages."""

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
    stop_key: str = ''                 # why stopped ('stale_mocap', 'outside_arena', ...)
    trigger: Trigger = Trigger.FRAME   # what made the tick run (the scheduler's decision)
    waited_s: float = 0.0              # from the tick's frame arriving to the tick running
    ran_s: float = 0.0                 # the runtime's clock (`now`) when the tick ran or stopped
    # what the tick planned on: the predecessor intent (sender, tick, arrival on the runtime's
    # clock) or None, and the journal's records since the previous output (and how many refusals
    # it left out)
    intent_used: tuple[str, int, float] | None = None
    inputs: tuple[InputRecord, ...] = ()
    inputs_dropped: int = 0

    @property
    def frame_arrival_s(self) -> float:
        """When the tick's frame reached the runtime (its clock)."""
        return self.ran_s - self.waited_s


@dataclass(frozen=True)
class FrameSeen:
    """What `observe_frame` learnt from one frame."""

    tick: int
    usable: bool         # own body measured in this frame: the frame may start a tick
    new: bool            # not the frame observed last (a repeat is not counted twice)
    reason: str = ''     # why not usable
    refused: str = ''    # REJECT_REASONS key when the whole frame was refused (nothing held)


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


# ---- the runtime --------------------------------------------------------------------------------
class AgentRuntime:
    """This robot's controller (B = 1), scheduler, input validation and watchdog."""

    def __init__(self, settings: AgentSettings, model: WorldModel, manifest: Manifest,
                 task_cfg: TaskConfig | None = None) -> None:
        s = settings
        self.settings = s
        self.manifest = manifest
        n = len(s.team)
        problem = team_mismatch('the model set', manifest.task, manifest.model.num_agents,
                                s.task, s.team)
        if problem:   # the same check load() made through the checkpoint, for direct callers
            raise AgentError(problem)
        self.dt = float(manifest.dt)
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise AgentError(f'the manifest dt must be positive, got {manifest.dt}')
        planner, measured = preset_planner(manifest, s.planner_preset)
        try:
            self.timing = chain_timing(self.dt, measured, s.plan_budget_ms, s.hop_budget_ms)
        except TimingError as exc:
            raise AgentError(f'{exc} (planner preset {s.planner_preset})') from None
        # a model trained without intents (comm 'dec') plans alone: nobody waits, no chain
        self.comm = str(manifest.training.get('comm', 'seq'))
        problem = self.timing.check(n if self.comm == 'seq' else 1)
        if problem:
            raise AgentError(problem)
        if task_cfg is None:
            task_cfg = load_task_config(s.task, overrides={'num_robots': n})
        if task_cfg.name != s.task or task_cfg.num_robots != n:
            raise AgentError(f'task config is {task_cfg.name} with {task_cfg.num_robots} robots, '
                             f'expected {s.task} with {n}')
        spec = obs_spec(s.task, task_cfg)
        if spec != list(manifest.obs_spec):
            raise AgentError(f'the observation builder gives {len(spec)} elements '
                             f'{spec[:3]}..., the model expects {len(manifest.obs_spec)} '
                             f'{list(manifest.obs_spec)[:3]}...')
        self.task_cfg = task_cfg
        a = task_cfg.arena
        self.arena_bounds = s.arena_bounds or (a.x_min, a.x_max, a.y_min, a.y_max)

        if not s.lowpass_cutoff_hz < 0.5 / self.dt:
            raise AgentError(f'lowpass_cutoff_hz {s.lowpass_cutoff_hz} must be below the Nyquist '
                             f'rate 0.5 / dt = {0.5 / self.dt:g} Hz (dt {self.dt} s, manifest)')
        planner_dict = {**planner, **dict(s.planner_overrides), 'control_hz': 1.0 / self.dt}
        try:
            pcfg = PlannerConfig.from_dict(planner_dict)
            chain = ChainSettings(s.limits, s.lowpass_cutoff_hz, 1.0 / self.dt)
        except ValueError as exc:
            raise AgentError(f'planner / command chain settings: {exc}') from None
        mc = manifest.model
        self.layout = IntentLayout(n, pcfg.horizon, mc.latent_dim, mc.action_dim)
        for field_name, bound in message_bounds('Intent').items():
            size = self.layout.sizes.get(field_name, 0)
            if size > bound:
                raise AgentError(f'this model set\'s intent needs {size} {field_name} (n {n}, '
                                 f'horizon {pcfg.horizon}, latent {mc.latent_dim}), more than '
                                 f'Intent.msg allows ({bound})')
        self.action_scale = np.asarray([manifest.action_scaling[k] for k in AXES], dtype=np.float64)
        self.controller = Controller(model, self.layout, pcfg, s.order_index, chain,
                                     self.action_scale, batch=1,
                                     cache_max_age_ticks=s.cache_max_age_ticks,
                                     seed=s.seed if s.deterministic else None, device=s.device,
                                     comm=self.comm)
        self.scheduler = Scheduler(s.order_index, self.timing.deadline_s(s.order_index),
                                   s.stale_timeout_s, self.dt, listens=self.controller.listens,
                                   robot=s.robot_name)
        self.expect = IntentExpectation(self.layout, manifest.model_set_id, s.predecessor,
                                        s.order_index - 1)
        self.bodies: tuple[str, ...] = s.team + task_info(s.task).object_bodies
        # The robot backend's readiness (the node reports changes: `on_backend`).
        self._backend: tuple[bool, str] = (True, '')
        self.journal = Journal()
        # who may speak: the bridge for frames, the predecessor's agent for intents; a second
        # speaker within stale_timeout_s is a conflict
        window = max(s.stale_timeout_s, 2.0 * self.dt)
        self.sources = {InputKind.FRAME: SourceGuard('mocap', s.mocap_source, window)}
        if s.order_index > 0:
            self.sources[InputKind.INTENT] = SourceGuard(
                'intent', s.predecessor_node or agent_node(s.predecessor), window)
        self._last_conflict_stop: float | None = None
        # two-track conflicts on the runtime's clock: they outlive a watchdog reset of the
        # mocap clock (else the reset would let the other track become the reference)
        self._jumps: dict[str, list[float]] = {}      # body -> when poses were refused as jumps
        self._two_tracks_until: dict[str, float] = {}

        self.reject_counts: dict[str, int] = {r: 0 for r in REJECT_REASONS}
        self.mode_counts = [0, 0, 0, 0]
        self._events: list[Event] = []
        self._held: dict[str, _Held] = {}
        self._pending: dict[int, IntentTensors] = {}
        self._arrival: dict[int, float] = {}     # tick -> when its accepted intent arrived
        self._cache_arrival: tuple[int, float] | None = None
        self._reset_clocks()
        self._last_mode: Mode | None = None
        self._last_stop_key = ''

    @classmethod
    def load(cls, settings: AgentSettings, model_dir: str | Path,
             task_cfg: TaskConfig | None = None) -> AgentRuntime:
        """Load only this robot's agent file (verified against the manifest and its sha256)."""
        if task_cfg is None:
            task_cfg = load_task_config(settings.task, overrides={'num_robots': len(settings.team)})
        try:
            model, manifest = load_agent(model_dir, settings.order_index,
                                         obs_spec=obs_spec(settings.task, task_cfg),
                                         device=settings.device, task=settings.task,
                                         team=settings.team)
        except CheckpointError as exc:
            raise AgentError(str(exc)) from None
        return cls(settings, model, manifest, task_cfg)

    # ---- bookkeeping ----------------------------------------------------------------------------
    def _reset_clocks(self) -> None:
        """Forget everything tied to the mocap clock (after a stale stop the clock may have jumped)."""
        self._last_stamp_ns: int | None = None
        self._recent: OrderedDict[tuple[int, int], tuple[FrameSeen, dict]] = OrderedDict()
        self._current_tick: int | None = None
        self._last_tick: int | None = None
        self._received: set[int] = set()     # ticks whose intent was accepted (repeats refused)
        self._last_command_stamp: int | None = None
        self._pending.clear()
        self._arrival.clear()
        self._cache_arrival = None
        self._held.clear()
        self.controller.forget()

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
        return tick_index(frame.stamp_ns, self.dt)

    # ---- events (what the node, replay and tests call) ------------------------------------------
    def admit(self, kind: InputKind, publisher: Publisher,
              now: float) -> tuple[bool, list[TickOutput]]:
        """May a frame / intent from `publisher` be used (before it is even read)? A refusal is
        counted and journaled here; a conflict between two sources stops the robot."""
        guard = self.sources.get(kind)
        if guard is None:       # order index 0: no predecessor; validate_intent refuses it
            return True, []
        verdict = guard.check(publisher, now)
        if verdict.accepted:
            return True, []
        self._reject(verdict.reason, verdict.message)
        self.journal.add(InputRecord(kind, now, outcome=verdict.reason, publisher=publisher.node,
                                     publisher_gid=publisher.gid))
        if verdict.reason.endswith('_source_conflict'):
            return False, self._conflict_stop(now, verdict.reason, verdict.message)
        return False, []

    def _conflict(self, now: float) -> tuple[str, str] | None:
        """(key, reason) of a source conflict that lasts at `now`, else None."""
        for guard in self.sources.values():
            if guard.in_conflict(now):
                return (f'{guard.what}_source_conflict',
                        f'two publishers claim {guard.node}: stopped until one remains')
        return None

    def _conflict_stop(self, now: float, key: str, reason: str) -> list[TickOutput]:
        """Stop for a source conflict, at most once per dt while it lasts."""
        if self._last_conflict_stop is not None and now - self._last_conflict_stop < 0.9 * self.dt:
            return []
        self._last_conflict_stop = now
        t = self._last_tick if self._last_tick is not None else (self._current_tick or 0)
        return [self._stop(t, self._last_stamp_ns or 0, now, key, reason, Trigger.WATCHDOG)]

    def on_frame(self, frame: MocapSample, now: float, received_ns: int | None = None,
                 publisher: Publisher | None = None) -> list[TickOutput]:
        """A mocap frame arrived (`received_ns`: this host's wall clock at receipt, for the
        future-stamp check; `publisher`: who sent it, already `admit`ted): validate it, then
        run the ticks the scheduler decides."""
        out = self._run_due(now)                  # a tick whose deadline passed: without it
        seen = self.observe_frame(frame, now, received_ns)
        self.journal.add(InputRecord(
            InputKind.FRAME, now, frame.stamp_ns, frame.frame_number, digest=frame_digest(frame),
            wall_ns=-1 if received_ns is None else int(received_ns),
            outcome=seen.refused or (ACCEPTED if seen.new else REPEAT),
            publisher=publisher.node if publisher else '',
            publisher_gid=publisher.gid if publisher else b''))
        if not seen.new:
            return out
        runs = self.scheduler.on_frame(seen.tick, frame, seen.usable, now,
                                       self.has_intent_for(seen.tick), seen.reason)
        return out + [self._execute(r, now) for r in runs]

    def on_intent(self, intent: IntentMessage, now: float,
                  publisher: Publisher | None = None) -> list[TickOutput]:
        """A predecessor intent arrived (from `publisher`, already `admit`ted): validate and
        keep it; run the tick waiting for it."""
        out = self._run_due(now)                  # after its deadline: the tick runs without it
        refused = self.receive_intent(intent, now)
        late = refused is None and self._last_tick is not None and intent.tick <= self._last_tick
        self.journal.add(InputRecord(InputKind.INTENT, now, intent.stamp_ns, intent.tick,
                                     intent.sender, intent_digest(intent),
                                     outcome=refused or (LATE if late else ACCEPTED),
                                     publisher=publisher.node if publisher else '',
                                     publisher_gid=publisher.gid if publisher else b''))
        if refused is not None:
            return out
        return out + [self._execute(r, now) for r in self.scheduler.on_intent(intent.tick, now)]

    def _run_due(self, now: float) -> list[TickOutput]:
        """The waiting tick, if its deadline passed before this event (found by bag replay:
        an intent arriving after the deadline, before the late timer, was planned on as fresh
        while the tick counted as run at its deadline)."""
        return [self._execute(r, now) for r in self.scheduler.due(now)]

    def on_timer(self, now: float) -> list[TickOutput]:
        """Deadline and watchdog timer: a tick whose deadline passed, a stale-mocap stop."""
        self.journal.add(InputRecord(InputKind.TIMER, now))
        out = []
        conflict = self._conflict(now)
        for action in self.scheduler.on_timer(now):
            if isinstance(action, Run):
                out.append(self._execute(action, now))
            else:     # while sources conflict, the watchdog's stop names the conflict
                out.append(self._watchdog_stop(Stop(*conflict) if conflict else action, now))
        if conflict and not out:
            out += self._conflict_stop(now, *conflict)
        return out

    def next_deadline(self) -> float | None:
        """When the waiting tick's deadline falls (the node arms a one-shot timer for it)."""
        return self.scheduler.next_deadline()

    def on_backend(self, ready: bool, why: str, now: float) -> None:
        """The robot backend became ready or not (`why`): a tick while it is not is a stop."""
        self.journal.add(InputRecord(InputKind.BACKEND, now, number=int(bool(ready)),
                                     outcome=why))
        self._backend = (bool(ready), why)

    def _execute(self, run: Run, now: float) -> TickOutput:
        ready, why = self._backend
        if not ready:
            return self.stop_tick(run.frame, now, 'backend_not_ready', why, run.trigger,
                                  run.waited_s)
        conflict = self._conflict(now)
        if conflict:
            self._last_conflict_stop = now
            return self.stop_tick(run.frame, now, *conflict, run.trigger, run.waited_s)
        return self.tick(run.frame, now, run.trigger, run.waited_s)

    # ---- inputs ---------------------------------------------------------------------------------
    def observe_frame(self, frame: MocapSample, now: float,
                      received_ns: int | None = None) -> FrameSeen:
        """Validate a frame, hold the latest usable pose of every needed body, count rejections.

        A frame already observed is not counted twice."""
        if frame.key in self._recent:
            seen = self._recent[frame.key][0]
            return FrameSeen(seen.tick, seen.usable, False, seen.reason)
        t = self.tick_of(frame)
        s = self.settings
        future = check_stamp(frame.stamp_ns, received_ns, s.mocap_future_s)
        if future:       # refused before it can become the clock: later real frames still count
            self._reject('mocap_future', f'{future} (frame {frame.frame_number})')
            return FrameSeen(t, False, True, future, 'mocap_future')
        if self._last_stamp_ns is not None and frame.stamp_ns < self._last_stamp_ns:
            msg = (f'mocap frame {frame.frame_number} captured '
                   f'{1e-9 * (self._last_stamp_ns - frame.stamp_ns):.3f} s before the previous one')
            self._reject('mocap_out_of_order', msg)
            return FrameSeen(t, False, True, msg, 'mocap_out_of_order')
        self._last_stamp_ns = frame.stamp_ns
        if self._current_tick is None:
            self._drop_future_pending(t)
        self._current_tick = t
        check = check_frame(frame, self.bodies)
        for body, pose in list(check.poses.items()):
            held = self._held.get(body)
            if held is None:
                continue
            dt_s = (frame.stamp_ns - held.stamp_ns) / NS_PER_S
            if dt_s > s.stale_timeout_s:
                continue                 # too old to judge: the body may really be elsewhere
            jump = check_jump(body, pose, held.pose, dt_s, s.max_body_speed_mps, s.jump_margin_m)
            if jump:
                del check.poses[body]
                check.problems[body], check.details[body] = 'mocap_jump', jump
                self._note_jump(body, now)
        for reason in sorted(set(check.problems.values()), key=REJECT_REASONS.index):
            bodies = [b for b, r in check.problems.items() if r == reason]
            self._reject(reason, '; '.join(check.details[b] for b in bodies)
                         + f' (frame {frame.frame_number})')
        for body, pose in check.poses.items():
            self._held[body] = _Held(pose, frame.stamp_ns)
        own = self.settings.robot_name
        usable = own in check.poses
        reason = '' if usable else check.details.get(own, f'body {own} not usable')
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
            check_intent_tick(intent.tick, self._last_tick, self._received, self._current_tick)
        except Rejected as r:
            self._reject(r.reason, r.message)
            return r.reason
        self._pending[intent.tick] = tensors.to(self.settings.device)
        self._arrival[intent.tick] = now
        self._received.add(intent.tick)
        return None

    def _drop_future_pending(self, current: int) -> None:
        """The mocap clock just started: intents kept aside for ticks it shows too far ahead
        are refused now (a far-future tick must not sit in the pending set for good)."""
        for k in sorted(self._pending):
            if k > current + MAX_INTENT_AHEAD_TICKS:
                del self._pending[k]
                self._arrival.pop(k, None)
                self._received.discard(k)
                self._reject('intent_future_tick', f'intent for tick {k} kept before the first '
                                                   f'mocap frame, which is at tick {current} '
                                                   f'(more than {MAX_INTENT_AHEAD_TICKS} ahead)')

    def has_intent_for(self, tick: int) -> bool:
        """A valid intent for `tick` is in hand (no need to wait for the deadline)."""
        return tick in self._pending or self.controller.cache.tick == tick

    # ---- THE control tick -----------------------------------------------------------------------
    def tick(self, frame: MocapSample, now: float, trigger: Trigger = Trigger.FRAME,
             waited_s: float = 0.0) -> TickOutput:
        """The tick of `frame` (the scheduler decided it runs now). Never raises: any failure
        becomes a stop with a reason."""
        s = self.settings
        seen = self.observe_frame(frame, now)
        t, stamp = seen.tick, frame.stamp_ns
        frame_poses = self._recent[frame.key][1] if frame.key in self._recent else {}
        timing = (trigger, waited_s)
        try:
            self._absorb_pending(t)
            # 1. watchdog on the inputs: own pose measured now, others recent, inside the arena
            if self._last_tick is not None and t <= self._last_tick:
                return self._stop(t, stamp, now, 'tick_order',
                                  f'tick {t} is not after the last tick {self._last_tick}', *timing)
            if not seen.usable:
                return self._stop(t, stamp, now, 'own_untracked',
                                  f'own pose unusable: {seen.reason}', *timing)
            fault = self._pose_fault(stamp, frame_poses[s.robot_name]) or self._two_tracks(now)
            if fault:
                return self._stop(t, stamp, now, *fault, *timing)
            # 2. observation with the simulator's builder: this frame's poses, held ones for
            #    bodies it lacks (every robot of the tick plans on the same frame)
            poses = {b: self._held[b].pose for b in self.bodies}
            poses.update(frame_poses)
            snap = Snapshot.from_named_poses(s.task, self.task_cfg, s.team, poses, device=s.device)
            obs = observe(s.task, snap, self.task_cfg)[:, s.order_index]          # (1, obs_dim)
            # 3. controller: predecessor intent (fresh / cached / masked), plan through the
            #    command chain, first command, outgoing intent e^{i+1}
            seeds = [s.seed + t] if s.deterministic else None
            out = self.controller.step(obs, t, self._command_dt(stamp), seeds)
            plan = out.plan
            value = float(plan.value[0])
            if not bool(out.ok[0]):
                first = plan.actions[0, 0].tolist()
                return self._stop(t, stamp, now, 'non_finite_plan',
                                  f'planner output not finite (first action {first}, '
                                  f'value {value})', *timing)
            command = out.commands[0].cpu().numpy().astype(np.float64)
            self._last_command_stamp = stamp
            mode, age_ticks = Mode(int(out.mode[0])), int(out.age[0])
            arrays = self.layout.to_arrays(out.intent)
            message = IntentMessage(
                tick=t, stamp_ns=stamp, model_set_id=self.manifest.model_set_id,
                sender=s.robot_name, sender_index=s.order_index, num_agents=self.layout.num_agents,
                horizon=self.layout.horizon, latent_dim=self.layout.latent_dim,
                action_dim=self.layout.action_dim, latents=arrays['latents'],
                actions=arrays['actions'], valid=arrays['valid'],
                planner_iterations=int(plan.iterations), planner_value=value,
                planner_time_ms=float(plan.time_ms))
            # 4. predicted trajectory: the planned commands integrated from the measured pose
            velocities = plan.commands[0].cpu().numpy().astype(np.float64) * self.action_scale
            trajectory = integrate_plan(poses[s.robot_name], velocities, self.dt)
        except Exception as exc:  # noqa: BLE001 - the robot must stop whatever went wrong
            return self._stop(t, stamp, now, 'internal_error',
                              f'internal error: {type(exc).__name__}: {exc}', *timing)

        self._last_tick = t
        reason = self._mode_reason(mode, t, age_ticks)
        self._note_mode(mode, reason)
        used = None
        if s.order_index > 0 and mode in (Mode.FRESH, Mode.CACHED) and self._cache_arrival:
            used = (s.predecessor, *self._cache_arrival)
        return self._output(t, stamp, now, mode, reason, command, False, message,
                            age_ticks * self.dt if mode != Mode.FRESH else 0.0, plan.time_ms,
                            plan.iterations, value, trajectory, '', *timing, intent_used=used)

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

    def _note_jump(self, body: str, now: float) -> None:
        """A pose of `body` refused as a jump. TRACK_CONFLICT_JUMPS of them within
        stale_timeout_s: the body is on two tracks, until stale_timeout_s after the last jump."""
        window = self.settings.stale_timeout_s
        times = [k for k in self._jumps.get(body, []) if k >= now - window] + [now]
        self._jumps[body] = times
        if len(times) >= TRACK_CONFLICT_JUMPS or body in self._two_tracks_until:
            self._two_tracks_until[body] = now + window

    def _two_tracks(self, now: float) -> tuple[str, str] | None:
        """A body is in a two-track conflict: neither track may become the reference, so the
        robot stops until one track has been alone for stale_timeout_s."""
        for body, until in list(self._two_tracks_until.items()):
            if now >= until:
                del self._two_tracks_until[body]
                continue
            return 'mocap_track_conflict', (
                f'body {body} measured on two tracks ({TRACK_CONFLICT_JUMPS} or more poses '
                f'refused as jumps within {self.settings.stale_timeout_s} s); stopped until one '
                f'track has been alone for {self.settings.stale_timeout_s} s')
        return None

    def _absorb_pending(self, t: int) -> None:
        """Move intents for ticks <= t into the cache, oldest first (every tick, stopped or not,
        so that nothing piles up while the robot is stopped)."""
        for k in sorted(self._pending):
            if k <= t:
                self.controller.receive(self._pending.pop(k), k)
                self._cache_arrival = (k, self._arrival.pop(k))
        self._received = {k for k in self._received if k >= t}

    def _mode_reason(self, mode: Mode, t: int, age: int) -> str:
        s = self.settings
        if mode == Mode.FRESH:
            return ''
        if mode == Mode.CACHED:
            return (f'no intent from {s.predecessor} for tick {t}: using tick {t - age} '
                    f'shifted by {age}')
        cached = self.controller.cache.tick
        if cached is None:
            return f'no intent from {s.predecessor} yet: predecessor slots masked'
        return (f'last intent from {s.predecessor} is {t - cached} ticks old '
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
        dt = self.dt
        if self._last_command_stamp is None:
            return dt
        return min(max((stamp_ns - self._last_command_stamp) / NS_PER_S, 1e-6), 2.0 * dt)

    # ---- stops ----------------------------------------------------------------------------------
    def _stop(self, t: int, stamp_ns: int, now: float, key: str, reason: str,
              trigger: Trigger = Trigger.EXTERNAL, waited_s: float = 0.0) -> TickOutput:
        """Zero command now; the chain and the planner's warm start restart from standstill."""
        self.controller.stop()
        self.scheduler.note_stop(now)
        self._last_command_stamp = None
        if self._last_tick is None or t > self._last_tick:
            self._last_tick = t
            self.scheduler.ran(t)
        if key != self._last_stop_key or self._last_mode != Mode.STOPPED:
            self._event(f'stop:{key}', 'error' if key == 'internal_error' else 'warn',
                        f'{self.settings.robot_name} stopped: {reason}')
        self._last_stop_key = key
        self._last_mode = Mode.STOPPED
        return self._output(t, stamp_ns, now, Mode.STOPPED, reason, np.zeros(3), True, None,
                            0.0, 0.0, 0, 0.0, None, key, trigger, waited_s)

    def stop(self, now: float, key: str, reason: str) -> TickOutput:
        """A stop decided outside the runtime (backend failing, shutdown)."""
        self.journal.add(InputRecord(InputKind.STOP, now, source=key, outcome=reason))
        t = self._last_tick if self._last_tick is not None else (self._current_tick or 0)
        return self._stop(t, self._last_stamp_ns or 0, now, key, reason)

    def stop_tick(self, frame: MocapSample, now: float, key: str, reason: str,
                  trigger: Trigger = Trigger.EXTERNAL, waited_s: float = 0.0) -> TickOutput:
        """This frame's tick, stopped for a reason decided outside the runtime (backend)."""
        seen = self.observe_frame(frame, now)
        self._absorb_pending(seen.tick)
        return self._stop(seen.tick, frame.stamp_ns, now, key, reason, trigger, waited_s)

    def _watchdog_stop(self, stop: Stop, now: float) -> TickOutput:
        """The scheduler's watchdog fired: stop, then forget the mocap clock (a restarted
        source may come back with another one)."""
        t = self._last_tick if self._last_tick is not None else (self._current_tick or 0)
        out = self._stop(t, self._last_stamp_ns or 0, now, stop.key, stop.reason, Trigger.WATCHDOG)
        self._reset_clocks()
        return out

    def robot_stopped(self, now: float) -> None:
        """The backend stopped the robot by itself (its own watchdog): ramp up from zero next."""
        self.journal.add(InputRecord(InputKind.ROBOT_STOPPED, now))
        self.controller.chain.stop()

    # ---- output ---------------------------------------------------------------------------------
    def _output(self, t: int, stamp_ns: int, now: float, mode: Mode, reason: str,
                command: np.ndarray, stop: bool, intent: IntentMessage | None, age_s: float,
                time_ms: float, iterations: int, value: float, trajectory: np.ndarray | None,
                stop_key: str, trigger: Trigger, waited_s: float,
                intent_used: tuple[str, int, float] | None = None) -> TickOutput:
        self.mode_counts[int(mode)] += 1
        inputs, dropped = self.journal.drain()
        return TickOutput(tick=t, stamp_ns=stamp_ns, mode=mode, reason=reason,
                          command=np.asarray(command, dtype=np.float64).copy(), stop=stop,
                          intent=intent, intent_age_s=float(age_s), planning_time_ms=float(time_ms),
                          planner_iterations=int(iterations), planner_value=float(value),
                          trajectory=trajectory, mode_counts=tuple(self.mode_counts),
                          reject_counts=dict(self.reject_counts), stop_key=stop_key,
                          trigger=Trigger(trigger), waited_s=float(waited_s), ran_s=float(now),
                          intent_used=intent_used, inputs=inputs, inputs_dropped=dropped)
