"""The scheduler: when a robot's tick runs, as a pure event machine with the clock passed in."""
from __future__ import annotations

import pytest

from seqwm_agent.runtime.scheduler import Run, Scheduler, Stop, Trigger

DT, DEADLINE, STALE = 0.1, 0.05, 0.3


def follower(**kw) -> Scheduler:
    return Scheduler(1, kw.pop('deadline', DEADLINE), STALE, DT, **kw)


def test_order_index_zero_runs_on_its_first_usable_frame_and_only_once_per_tick():
    s = Scheduler(0, DEADLINE, STALE, DT)
    runs = s.on_frame(10, 'f0', True, 5.0)
    assert runs == [Run(10, 'f0', Trigger.FRAME, 0.0)]
    assert s.on_frame(10, 'f1', True, 5.02) == []            # a later frame of the same tick
    assert s.on_frame(11, 'f2', True, 5.1)[0].tick == 11


def test_follower_waits_for_the_intent_of_its_tick_and_runs_when_it_comes():
    s = follower()
    assert s.on_frame(10, 'f', True, 5.0) == [] and s.waiting_tick == 10
    assert s.next_deadline() == pytest.approx(5.05)
    assert s.on_intent(9, 5.01) == []                         # not the waiting tick
    run = s.on_intent(10, 5.023)[0]
    assert (run.tick, run.frame, run.trigger) == (10, 'f', Trigger.INTENT)
    assert run.waited_s == pytest.approx(0.023)
    assert s.next_deadline() is None


def test_follower_runs_at_the_deadline_when_no_intent_comes():
    s = follower()
    s.on_frame(10, 'f', True, 5.0)
    assert s.on_timer(5.049) == []
    run = s.on_timer(5.05)[0]
    assert run.trigger == Trigger.DEADLINE and run.waited_s == pytest.approx(0.05)
    assert s.on_intent(10, 5.06) == []                        # late: nothing waits for it


def test_an_intent_in_hand_or_a_zero_deadline_runs_at_once():
    assert follower().on_frame(10, 'f', True, 5.0, intent_in_hand=True)[0].trigger == Trigger.FRAME
    assert follower(deadline=0.0).on_frame(10, 'f', True, 5.0)[0].trigger == Trigger.DEADLINE


def test_a_frame_of_the_next_tick_runs_the_waiting_tick_first():
    s = follower()
    s.on_frame(10, 'f10', True, 5.0)
    runs = s.on_frame(11, 'f11', True, 5.04)
    assert [(r.tick, r.trigger) for r in runs] == [(10, Trigger.NEXT_FRAME)]
    assert s.waiting_tick == 11


def test_unusable_frames_start_nothing_and_the_watchdog_stops_after_stale_timeout():
    s = Scheduler(0, DEADLINE, STALE, DT, robot='go2w_1')
    s.on_frame(10, 'f', True, 5.0)
    for k in range(1, 8):
        assert s.on_frame(10 + k, 'f', False, 5.0 + 0.1 * k, problem='body go2w_1 untracked') == []
    assert s.on_timer(5.29) == []
    stop = s.on_timer(5.71)[0]
    assert isinstance(stop, Stop) and stop.key == 'own_untracked'
    assert 'own body go2w_1 not measured for 0.71 s' in stop.reason and 'untracked' in stop.reason
    assert s.on_timer(5.75) == []                             # at most one stop per dt ...
    assert isinstance(s.on_timer(5.82)[0], Stop)              # ... while it lasts
    assert s.on_frame(30, 'g', True, 6.0)[0].trigger == Trigger.FRAME   # recovers at once


def test_no_frame_at_all_is_a_stale_mocap_stop():
    s = Scheduler(0, DEADLINE, STALE, DT)
    assert s.on_timer(1.0) == []                               # the clock starts here
    stop = s.on_timer(1.31)[0]
    assert stop.key == 'stale_mocap' and 'no mocap frame received' in stop.reason
    s2 = Scheduler(0, DEADLINE, STALE, DT)
    s2.on_frame(10, 'f', True, 2.0)
    assert s2.on_timer(2.31)[0].reason.startswith('no mocap frame for 0.31 s')


def test_a_stale_stop_forgets_the_tick_clock():
    """A restarted mocap source may start again at an earlier tick: it must run."""
    s = Scheduler(0, DEADLINE, STALE, DT)
    s.on_frame(500, 'f', True, 2.0)
    assert isinstance(s.on_timer(2.4)[0], Stop)
    assert s.on_frame(3, 'g', True, 2.5)[0].tick == 3


def test_the_same_events_give_the_same_decisions_on_any_clock():
    def decisions(offset: float) -> list:
        s = follower()
        out = []
        for k in range(20):
            t = offset + 0.1 * k
            out += s.on_frame(k, k, True, t)
            if k % 3:
                out += s.on_intent(k, t + 0.01 * (k % 7))
            out += s.on_timer(t + 0.06)
        return [(r.tick, r.trigger, round(r.waited_s, 9)) for r in out]
    assert decisions(0.0) == decisions(12345.0)
