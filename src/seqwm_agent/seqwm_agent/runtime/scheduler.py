"""When a robot's control tick runs: a pure event machine with the clock passed in.

Events and what they decide (architecture §3):

* a usable mocap frame (own body measured) of a new tick t starts it. Order index 0 (or a robot
  that already holds the predecessor's intent of t) runs it at once (`Trigger.FRAME`); any other
  robot waits for its predecessor's intent of t, at most `deadline_s` after that frame arrived;
* the predecessor's intent of the waiting tick arrives: run it now (`Trigger.INTENT`);
* the timer passes the deadline: run it on the cache (`Trigger.DEADLINE`);
* a frame of a later tick arrives while waiting: run the waiting tick first (`Trigger.NEXT_FRAME`);
* the timer finds no usable frame for `stale_timeout_s`: stop the robot (`Stop`, watchdog),
  at most once per dt while it lasts. A stale stop restarts the clock-bound state (the mocap
  source may have restarted with another clock).

Nothing here reads a clock or touches ROS: the node passes `time.monotonic()`, bag replay the
recorded receive times, the simulator its own schedule, so all three take the same decisions.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class Trigger(IntEnum):
    """What made a tick run; values equal seqwm_msgs/AgentStatus TRIGGER_*."""

    FRAME = 0        # its first usable frame (order index 0, or the intent was already in hand)
    INTENT = 1       # waited; the predecessor's intent of the tick arrived
    DEADLINE = 2     # waited until the intent deadline
    NEXT_FRAME = 3   # waited; a frame of a later tick arrived first
    WATCHDOG = 4     # a stop decided by the watchdog (no tick of a frame)
    EXTERNAL = 5     # a stop decided outside the scheduler (backend, shutdown)


@dataclass(frozen=True)
class Run:
    """Run tick `tick` now on `frame` (an opaque payload: the caller's frame object)."""

    tick: int
    frame: Any
    trigger: Trigger
    waited_s: float      # from the frame's arrival to now


@dataclass(frozen=True)
class Stop:
    """Stop the robot now (watchdog). `key` names the reason, `reason` explains it."""

    key: str
    reason: str


@dataclass
class _Waiting:
    tick: int
    frame: Any
    arrived: float
    deadline: float


class Scheduler:
    """Tick scheduling of one robot (see the module docstring)."""

    def __init__(self, order_index: int, deadline_s: float, stale_timeout_s: float,
                 dt: float, listens: bool = True, robot: str = 'own body') -> None:
        if deadline_s < 0 or stale_timeout_s <= 0 or dt <= 0:
            raise ValueError(f'deadline_s {deadline_s} must be >= 0, stale_timeout_s '
                             f'{stale_timeout_s} and dt {dt} > 0')
        self.order_index = order_index
        self.deadline_s = float(deadline_s)
        self.stale_timeout_s = float(stale_timeout_s)
        self.dt = float(dt)
        self.waits = listens and order_index > 0
        self.robot = robot
        self._waiting: _Waiting | None = None
        self._last_run_tick: int | None = None
        self._started: float | None = None
        self._last_usable: float | None = None
        self._last_any: float | None = None
        self._last_problem = ''
        self._last_stop: float | None = None
        self._stopped = False

    # ---- state ---------------------------------------------------------------------------------
    @property
    def waiting_tick(self) -> int | None:
        return self._waiting.tick if self._waiting else None

    def next_deadline(self) -> float | None:
        """When `on_timer` must be called next for the waiting tick (None: nothing waits)."""
        return self._waiting.deadline if self._waiting else None

    def reset(self) -> None:
        """Forget the tick clock (after a stale stop: the mocap source may restart)."""
        self._waiting = None
        self._last_run_tick = None

    def ran(self, tick: int) -> None:
        """A tick was run (or stopped) outside a `Run` of this scheduler (e.g. a stop tick)."""
        if self._last_run_tick is None or tick > self._last_run_tick:
            self._last_run_tick = tick

    def _run(self, now: float, trigger: Trigger) -> Run:
        w = self._waiting
        assert w is not None
        self._waiting = None
        self.ran(w.tick)
        self._stopped = False
        return Run(w.tick, w.frame, trigger, max(now - w.arrived, 0.0))

    # ---- events --------------------------------------------------------------------------------
    def due(self, now: float) -> list[Run]:
        """The waiting tick, if its deadline passed before `now`. Every event first runs it, so
        a decision depends only on when events happened, never on which callback the node's
        executor happened to run first (a deadline timer that fires late must not let a late
        intent count as on time: bag replay would decide otherwise). The runtime calls it
        before it takes anything from the event in (the late intent, the next frame's poses)."""
        if self._waiting is not None and now >= self._waiting.deadline:
            return [self._run(self._waiting.deadline, Trigger.DEADLINE)]
        return []

    def on_frame(self, tick: int, frame: Any, usable: bool, now: float,
                 intent_in_hand: bool = False, problem: str = '') -> list[Run]:
        """A mocap frame of `tick` arrived (already validated: `usable` = own body measured)."""
        due = self.due(now)
        self._last_any = now
        if self._started is None:
            self._started = now
        if not usable:
            self._last_problem = problem
            return due
        self._last_usable = now
        out: list[Run] = due
        if self._waiting is not None and tick > self._waiting.tick:
            out.append(self._run(now, Trigger.NEXT_FRAME))     # the deadline is moot
        if self._last_run_tick is not None and tick <= self._last_run_tick:
            return out                                          # not the first frame of its tick
        if self._waiting is not None:
            return out                                          # its tick already waits
        self._waiting = _Waiting(tick, frame, now, now + self.deadline_s)
        if not self.waits or intent_in_hand:
            out.append(self._run(now, Trigger.FRAME))
        elif self.deadline_s <= 0:
            out.append(self._run(now, Trigger.DEADLINE))
        return out

    def on_intent(self, tick: int, now: float) -> list[Run]:
        """An accepted predecessor intent of `tick` arrived."""
        due = self.due(now)
        if not due and self._waiting is not None and tick == self._waiting.tick:
            return [self._run(now, Trigger.INTENT)]
        return due

    def on_timer(self, now: float) -> list[Run | Stop]:
        """Periodic call (deadline timer, watchdog timer): a due deadline, a stale stop."""
        out: list[Run | Stop] = list(self.due(now))
        if self._started is None:
            self._started = now
        since = self._last_usable if self._last_usable is not None else self._started
        waited = now - since
        if waited <= self.stale_timeout_s:
            return out
        if self._stopped and self._last_stop is not None and now - self._last_stop < 0.9 * self.dt:
            return out
        if self._last_usable is None and self._last_any is None:
            stop = Stop('stale_mocap', f'no mocap frame received ({waited:.2f} s since start)')
        elif self._last_any is None or now - self._last_any > self.stale_timeout_s:
            last = self._last_any if self._last_any is not None else since
            stop = Stop('stale_mocap', f'no mocap frame for {now - last:.2f} s '
                                       f'(stale_timeout_s {self.stale_timeout_s})')
        else:
            stop = Stop('own_untracked', f'own body {self.robot} not measured for {waited:.2f} s '
                                         f'(stale_timeout_s {self.stale_timeout_s}): '
                                         f'{self._last_problem}')
        # the clock-bound state restarts (the runtime forgets its mocap clock with it), but the
        # time of the last usable frame stays: the stop repeats while nothing usable arrives
        self._waiting = None
        self._last_run_tick = None
        self._last_any = None
        self._last_usable = since
        self._last_stop, self._stopped = now, True
        out.append(stop)
        return out

    def note_stop(self, now: float) -> None:
        """A stop happened (any cause): the watchdog repeats its own stop at most once per dt."""
        self._last_stop, self._stopped = now, True
