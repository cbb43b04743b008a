"""Property: whatever the planner emits and however the ticks jitter, commands stay in limits."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqwm_agent.core.command import CommandChain, CommandLimits, NonFiniteActionError

positive = st.floats(min_value=0.05, max_value=5.0)
limits_st = st.builds(CommandLimits, vx=positive, vy=positive, wz=positive,
                      ax=positive, ay=positive, awz=positive)
# Any float64 at all: NaN, +-inf, subnormals, +-1e308.
planner_value = st.floats(allow_nan=True, allow_infinity=True)
action_st = st.lists(planner_value, min_size=3, max_size=3)
dt_st = st.floats(min_value=1e-4, max_value=1.0)        # jittered, late and very early ticks
event_st = st.one_of(st.tuples(st.just('step'), action_st, dt_st),
                     st.tuples(st.just('stop')))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limits=limits_st, rate_hz=st.floats(min_value=2.0, max_value=200.0),
       cutoff_ratio=st.floats(min_value=0.02, max_value=0.98),
       events=st.lists(event_st, min_size=1, max_size=80))
def test_commands_stay_within_velocity_and_acceleration_limits(limits, rate_hz, cutoff_ratio,
                                                               events):
    chain = CommandChain(limits, cutoff_hz=cutoff_ratio * rate_hz / 2, rate_hz=rate_hz)
    v_max, a_max = limits.velocity, limits.acceleration
    prev = np.zeros(3)          # the chain starts stopped
    for event in events:
        if event[0] == 'stop':
            prev = chain.stop()
            assert np.all(prev == 0.0)
            continue
        _, action, dt = event
        finite = all(np.isfinite(action))
        try:
            out = chain.step(np.array(action), dt)
        except NonFiniteActionError:
            assert not finite
            np.testing.assert_array_equal(chain.last, prev)   # nothing was passed on
            continue
        assert finite, f'non-finite action {action} produced a command'
        assert np.all(np.isfinite(out))
        assert np.all(np.abs(out) <= v_max), (out, v_max)
        # Tolerance for the float rounding of prev + delta (a few ulps of |v| <= 5).
        assert np.all(np.abs(out - prev) <= a_max * dt + 1e-12), (out, prev, a_max * dt)
        prev = out
