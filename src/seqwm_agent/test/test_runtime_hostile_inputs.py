"""Property: whatever arrives as an Intent or a MocapFrame, it is used or refused with a counted,
named reason, the runtime never raises, and every command stays inside the limits.

Hypothesis draws the hostile parts: ticks (including 2**64 - 1 and far past/future), values
(NaN, +-inf, 3e38, out of range), valid flags, sizes, names (duplicates, missing bodies),
quaternions, and stamps against the receiving host's clock."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_team import DT, POSES, TEAM, make_manifest, make_models  # noqa: E402

from seqwm_agent.core.command import CommandLimits
from seqwm_agent.runtime.agent import AgentRuntime, AgentSettings
from seqwm_agent.runtime.messages import MocapSample
from seqwm_agent.runtime.validation import REJECT_REASONS

MODELS = make_models()
MANIFEST = make_manifest()
LIMITS = CommandLimits()
T0 = 1_795_000_000.0
NS = 1_000_000_000


def runtime(k: int) -> AgentRuntime:
    s = AgentSettings(robot_name=TEAM[k], order_index=k, team=TEAM, task='pushbox',
                      predecessor=TEAM[k - 1] if k else '')
    return AgentRuntime(s, MODELS[k], MANIFEST)


def within_limits(out) -> bool:
    return bool(np.all(np.isfinite(out.command)) and np.all(np.abs(out.command) <= LIMITS.velocity + 1e-12))


def frame(i: int) -> MocapSample:
    return MocapSample.from_planar(T0 + i * DT + 0.004, POSES, frame_number=i)


def wall(i: int) -> int:
    return int(round((T0 + i * DT + 0.01) * NS))


weird = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                  st.sampled_from([0.0, 0.5, 1.0, -1.0, 1.0001, -40.0, 3e38]))
tick_offsets = st.one_of(st.integers(-5, 5), st.sampled_from([10 ** 9, -(10 ** 9)]),
                         st.just('max'))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(st.tuples(tick_offsets, st.sampled_from(['latents', 'actions', 'none']),
                                 st.integers(0, 200), weird,
                                 st.lists(st.booleans(), min_size=1, max_size=3),
                                 st.booleans(), st.booleans()),
                       min_size=1, max_size=8))
def test_any_intent_is_used_or_refused_with_a_reason_and_commands_stay_in_limits(events):
    p0, p1 = runtime(0), runtime(1)
    for i, (offset, field, index, value, valid, resize, before_frame) in enumerate(events):
        out0 = p0.on_frame(frame(i), 100.0 + i * DT, wall(i))
        good = out0[0].intent if out0 else None
        if good is None:
            continue
        bad = replace(good, latents=good.latents.copy(), actions=good.actions.copy())
        if offset == 'max':
            bad.tick = 2 ** 64 - 1
        else:
            bad.tick = good.tick + offset
        if field != 'none':
            arr = getattr(bad, field)
            arr[index % arr.size] = value
        if valid != [True, False]:
            bad.valid = np.array((valid + [False, False])[:2]) if not resize else np.array(valid)
        elif resize:
            bad.latents = bad.latents[:-1]
        before = dict(p1.reject_counts)
        deliveries = [(bad, 100.0 + i * DT)] if before_frame else []
        outs = []
        for intent, t in deliveries:
            outs += p1.on_intent(intent, t)
        outs += p1.on_frame(frame(i), 100.0 + i * DT + 0.001, wall(i))
        if not before_frame:
            outs += p1.on_intent(bad, 100.0 + i * DT + 0.005)
        due = p1.next_deadline()
        if due is not None:
            outs += p1.on_timer(due)
        refused = sum(p1.reject_counts.values()) - sum(before.values())
        assert refused in (0, 1)
        assert set(p1.reject_counts) == set(REJECT_REASONS)
        if refused == 0:   # used: a proper intent (what a masked slot holds does not matter)
            keep = np.asarray(bad.valid, dtype=bool)
            assert keep.tolist() == [True, False]
            z = bad.latents.reshape(2, -1)[keep]
            a = bad.actions.reshape(2, -1)[keep]
            assert np.all(np.isfinite(z)) and np.all(np.isfinite(a))
            assert z.min() >= -1e-5 and z.max() <= 1 + 1e-5 and np.abs(a).max() <= 1 + 1e-5
        for out in outs:
            assert within_limits(out), out.command


names_st = st.lists(st.sampled_from(['go2w_1', 'go2w_2', 'box', 'sheep', 'x']), min_size=0,
                    max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(st.tuples(names_st, st.floats(-20, 20), st.floats(-20, 20), weird,
                                 st.sampled_from([0.0, 0.01, -0.3, 0.7, 3600.0, -3600.0]),
                                 st.booleans(), st.integers(-1, 1)),
                       min_size=1, max_size=10))
def test_any_mocap_frame_is_used_or_refused_with_a_reason_and_commands_stay_in_limits(frames):
    p0 = runtime(0)
    for i, (names, x, y, qw, stamp_shift, good_first, length_change) in enumerate(frames):
        good = frame(i)
        if good_first:
            for out in p0.on_frame(good, 100.0 + i * DT, wall(i)):
                assert within_limits(out)
        k = len(names)
        pos = np.array([[x + 0.01 * j, y, 0.0] for j in range(k)]).reshape(-1, 3)
        quat = np.array([[0.0, 0.0, 0.0, qw] for _ in range(k)]).reshape(-1, 4)
        tracked = tuple(True for _ in range(max(k + length_change, 0)))
        hostile = MocapSample(good.stamp_ns + int(stamp_shift * NS) + 1, 10_000 + i,
                              tuple(names), pos, quat, tracked)
        before = sum(p0.reject_counts.values())
        outs = p0.on_frame(hostile, 100.0 + i * DT + 0.002, wall(i))
        seen = p0.observe_frame(hostile, 100.0 + i * DT + 0.002)
        refused = sum(p0.reject_counts.values()) - before
        if not seen.usable:
            assert refused >= 1 or seen.reason, (names, seen)    # why it was not used is named
        for out in outs:
            assert within_limits(out), out.command
        for out in p0.on_timer(100.0 + i * DT + 0.05):
            assert within_limits(out)
    assert set(p0.reject_counts) == set(REJECT_REASONS)
