"""Property: whatever the model computes and however frames and intents arrive, every command the
runtime emits is finite, inside the velocity limits, and changes by at most a_max * dt between
ticks (dt = the ticks' capture-time difference; the step into a stop is exempt, the step out of
one is bounded by a_max * dt_nominal).

No stub: real WorldModels whose weights are scaled by up to 1e6 (saturated, overflowing plans)
or carry NaN (non-finite plans), the real planner, intent layout, cache and command chain; the
predecessor's intents come from a real robot-0 runtime or are garbage of the right size. Every
input goes through the runtime's events, as the node delivers them.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_team import DT, POSES, TEAM, make_manifest, make_models, scaled_copy  # noqa: E402

from seqwm_agent.core.command import CommandLimits
from seqwm_agent.runtime.agent import AgentRuntime, AgentSettings, Mode
from seqwm_agent.runtime.messages import MocapSample

BASE = make_models()
MANIFEST = make_manifest()
LIMITS = CommandLimits(vx=0.8, vy=0.4, wz=0.6, ax=1.5, ay=0.7, awz=1.2)
T0 = 1_795_000_000.0

scales = st.sampled_from([1e-3, 0.5, 1.0, 1.0, 1.0, 10.0, 1e3, 1e6])
rarely = st.sampled_from([False, False, False, False, True])
tick_events = st.lists(st.tuples(
    st.one_of(st.floats(0.08, 0.12), st.floats(0.0, 0.35)),   # capture-time gap to the last frame
    st.floats(0.0, 0.09),                     # arrival delay of the frame (monotonic clock)
    st.sampled_from(['fresh', 'late', 'lost', 'garbage']),   # what robot 0's intent does
    rarely,                                   # box untracked in this frame
    st.floats(-0.4, 0.4),                     # jitter of robot 1's x (moves the observation)
    st.booleans(),                            # a watchdog check between ticks
), min_size=3, max_size=16)


def settings_for(k: int, seed: int) -> AgentSettings:
    return AgentSettings(robot_name=TEAM[k], order_index=k, team=TEAM, task='pushbox',
                         predecessor=TEAM[k - 1] if k else '', cache_max_age_ticks=2,
                         stale_timeout_s=0.25, limits=LIMITS, seed=seed)


class CommandLog:
    """Checks the property on the sequence of outputs of one robot."""

    def __init__(self) -> None:
        self.prev: np.ndarray | None = None
        self.prev_stamp: int | None = None
        self.count = {m: 0 for m in Mode}

    def check(self, out) -> None:
        v = out.command
        self.count[out.mode] += 1
        assert v.shape == (3,) and np.all(np.isfinite(v))
        assert np.all(np.abs(v) <= LIMITS.velocity + 1e-12), v
        if out.stop:
            assert out.mode == Mode.STOPPED and np.all(v == 0.0)
            self.prev, self.prev_stamp = None, None
            return
        if self.prev is None:              # first command, or first after a stop: from zero
            assert np.all(np.abs(v) <= LIMITS.acceleration * DT + 1e-9), v
        else:
            dt = (out.stamp_ns - self.prev_stamp) / 1e9
            assert np.all(np.abs(v - self.prev) <= LIMITS.acceleration * dt + 1e-9), (v, self.prev, dt)
        self.prev, self.prev_stamp = v, out.stamp_ns


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scale0=scales, scale1=scales, nan0=rarely, nan1=rarely,
       seed=st.integers(0, 2 ** 31 - 1), events=tick_events, data=st.data())
def test_commands_stay_within_velocity_and_acceleration_limits(scale0, scale1, nan0, nan1, seed,
                                                               events, data):
    p0 = AgentRuntime(settings_for(0, seed), scaled_copy(BASE[0], scale0, nan0), MANIFEST)
    p1 = AgentRuntime(settings_for(1, seed), scaled_copy(BASE[1], scale1, nan1), MANIFEST)
    logs = [CommandLog(), CommandLog()]
    stamp, mono = T0, 100.0
    for gap, delay, intent_fate, box_lost, jitter, watchdog in events:
        stamp += gap
        mono += max(gap, 1e-3) + delay
        poses = {**POSES, 'go2w_2': (POSES['go2w_2'][0] + jitter, *POSES['go2w_2'][1:])}
        frame = MocapSample.from_planar(stamp, poses, untracked=['box'] if box_lost else [])
        if watchdog:
            for p, log in zip((p0, p1), logs):
                for out in p.on_timer(mono - delay / 2):
                    log.check(out)
        outs0 = p0.on_frame(frame, mono)
        for out in outs0:
            logs[0].check(out)
        intent = outs0[-1].intent if outs0 else None
        if intent is not None and intent_fate == 'garbage':
            n = intent.latents.size
            intent.latents = data.draw(st.lists(st.floats(-1e30, 1e30), min_size=n, max_size=n).map(
                lambda xs: np.asarray(xs, dtype=np.float32)))
        outs1 = p1.on_frame(frame, mono)
        if intent is not None and intent_fate in ('fresh', 'garbage'):
            outs1 += p1.on_intent(intent, mono + 0.01)
        due = p1.next_deadline()
        if due is not None:
            outs1 += p1.on_timer(due)
        if intent is not None and intent_fate == 'late':
            outs1 += p1.on_intent(intent, (due or mono) + 0.01)
        for out in outs1:
            logs[1].check(out)
    for log in logs:
        assert sum(log.count.values()) >= 1


def test_the_property_check_catches_an_unlimited_command_stream():
    """The checker itself can fail: a jump bigger than a_max * dt is reported."""
    class Out:
        def __init__(self, v, stamp):
            self.command, self.stamp_ns, self.stop, self.mode = np.array(v), stamp, False, Mode.FRESH

    log = CommandLog()
    log.check(Out([0.1, 0.0, 0.0], 0))
    try:
        log.check(Out([0.5, 0.0, 0.0], 100_000_000))     # 4 m/s^2 > 1.5
    except AssertionError:
        return
    raise AssertionError('the acceleration check did not fire')
