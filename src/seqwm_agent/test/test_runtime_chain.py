"""The chain's timing (runtime/chain.py): one measured fact, the waits by position, the fit."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqwm_agent.runtime.chain import (LOOPBACK_HOP_MS, ChainTiming, TimingError, chain_timing,
                                       preset_planner)
from seqwm_agent.runtime.scheduler import Scheduler, Trigger
from seqwm_agent.train.budget import choose


def test_order_index_k_waits_k_steps_of_plan_plus_hop():
    t = ChainTiming(0.1, 0.008, 0.002)
    assert [round(t.deadline_s(k), 9) for k in range(5)] == [0.0, 0.01, 0.02, 0.03, 0.04]
    assert t.command_s(4) == pytest.approx(0.048)
    assert t.check(5) is None


def test_a_chain_that_cannot_fit_the_tick_is_named_with_its_numbers():
    why = ChainTiming(0.1, 0.022, 0.0045).check(5)
    assert why.startswith('a chain of 5 robots needs 128.0 ms to the last command '
                          '(4 x (plan 22.0 + hop 4.5 ms) + plan), more than the 100 ms control '
                          'period')
    assert ChainTiming(0.1, 0.022, 0.0045).check(3) is None


def test_a_given_budget_beats_the_measurement_and_nothing_measured_is_an_error():
    measured = {'plan_ms': {'p50': 5.0, 'p99': 9.0}}
    assert chain_timing(0.1, measured).plan_s == pytest.approx(0.009)
    assert chain_timing(0.1, measured).hop_s == pytest.approx(LOOPBACK_HOP_MS[1] / 1e3)
    t = chain_timing(0.1, measured, plan_budget_ms=20.0, hop_budget_ms=1.0)
    assert (t.plan_s, t.hop_s) == pytest.approx((0.02, 0.001))
    with pytest.raises(TimingError, match='no measured planning time'):
        chain_timing(0.1, {})


class _Manifest:
    planner = {'horizon': 3, 'num_samples': 64, 'num_elites': 8, 'iterations': 2, 'init': 'actor'}
    deployment = {'plan_ms': {'p50': 5.0, 'p99': 9.0}, 'paper': {'plan_ms': {'p99': 40.0}}}


def test_the_paper_preset_keeps_the_model_settings_and_takes_the_papers_sampling():
    planner, measured = preset_planner(_Manifest, 'paper')
    assert (planner['num_samples'], planner['num_elites'], planner['iterations']) == (512, 64, 6)
    assert planner['horizon'] == 3 and planner['init'] == 'actor'
    assert measured == {'plan_ms': {'p99': 40.0}}
    assert preset_planner(_Manifest)[0]['num_samples'] == 64


def _chain(plans, hops, timing):
    """Each robot's scheduler in order (as on robots and in TeamRuntime): when each one ran and
    how. plans/hops per robot in seconds."""
    done, out = 0.0, []
    for k, (plan, hop) in enumerate(zip(plans, hops)):
        sch = Scheduler(k, timing.deadline_s(k), 10.0, timing.dt_s)
        got = sch.on_frame(0, None, True, 0.0)
        if not got:
            arrive = done + hops[k - 1]
            due = timing.deadline_s(k)
            got = sch.on_intent(0, arrive) if arrive < due else sch.on_timer(due)
        run = got[0]
        out.append((run.waited_s, run.trigger))
        done = run.waited_s + plan
    return out


durations = st.floats(0.0005, 0.02)


@settings(max_examples=200, deadline=None)
@given(plan=durations, hop=durations, n=st.integers(1, 5), data=st.data())
def test_robots_within_the_budget_are_always_fresh_and_the_last_commands_inside_the_tick(
        plan, hop, n, data):
    timing = ChainTiming(0.1, plan, hop)
    plans = data.draw(st.lists(st.floats(0.0, plan * 0.999), min_size=n, max_size=n))
    hops = data.draw(st.lists(st.floats(0.0, hop * 0.999), min_size=n, max_size=n))
    runs = _chain(plans, hops, timing)
    assert all(trig in (Trigger.FRAME, Trigger.INTENT) for _, trig in runs)
    for k, (waited, _) in enumerate(runs):
        assert waited + plans[k] <= timing.command_s(k) + 1e-12


@settings(max_examples=200, deadline=None)
@given(plan=durations, hop=durations, n=st.integers(2, 5), data=st.data())
def test_a_late_robot_delays_its_successors_by_at_most_their_own_deadline(plan, hop, n, data):
    """Whatever one robot's planning takes, nobody waits past its deadline, and a successor
    whose predecessor ran at its own deadline still gets the intent in time if that one plans
    within the budget: the chain recovers in one step."""
    timing = ChainTiming(0.1, plan, hop)
    plans = data.draw(st.lists(st.floats(0.0, 0.2), min_size=n, max_size=n))
    hops = data.draw(st.lists(st.floats(0.0, hop * 0.999), min_size=n, max_size=n))
    runs = _chain(plans, hops, timing)
    for k, (waited, trig) in enumerate(runs):
        assert waited <= timing.deadline_s(k) + 1e-12
        if k >= 1 and plans[k - 1] < plan:
            assert trig == Trigger.INTENT, (k, runs)


def test_the_budget_is_the_cheapest_fitting_point_inside_the_papers_interval():
    def row(point, p99, rate, ci, fits=True):
        return {'point': point, 'plan_ms': {'p99': p99}, 'success_rate': rate,
                'success_ci95': ci, 'fits': fits}
    paper = row('512x64x6', 40.0, 0.96, [0.87, 0.99], fits=False)
    rows = [paper, row('256x32x4', 15.0, 0.94, [0.84, 0.98]),
            row('64x8x2', 5.0, 0.80, [0.67, 0.89]),            # below the paper's interval
            row('128x16x3', 8.0, 0.90, [0.79, 0.96])]
    assert choose(rows)['point'] == '128x16x3'
    assert choose([paper, row('64x8x2', 5.0, 0.5, [0.4, 0.6])]) is paper   # nothing as good
