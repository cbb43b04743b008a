"""The command chain: scaling, filter steady state, acceleration limit, clamp, stop, bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest

from seqwm_agent.core.command import CommandChain, CommandLimits, NonFiniteActionError
from seqwm_agent.core.lowpass import LowPassFilter, butterworth1

LIMITS = CommandLimits()
LOOSE = CommandLimits(ax=1e6, ay=1e6, awz=1e6)   # acceleration limit out of the way


def run(chain: CommandChain, action, ticks: int, dt: float = 0.1) -> np.ndarray:
    out = np.zeros((ticks, 3))
    for t in range(ticks):
        out[t] = chain.step(np.asarray(action, dtype=float), dt)
    return out


def test_default_limits_match_the_robot_and_simulator():
    assert (LIMITS.vx, LIMITS.vy, LIMITS.wz) == (1.0, 0.5, 0.5)
    assert (LIMITS.ax, LIMITS.ay, LIMITS.awz) == (2.0, 1.0, 2.0)
    assert CommandLimits.from_dict(LIMITS.to_dict()) == LIMITS


@pytest.mark.parametrize('field, value', [('vx', 0.0), ('vy', -0.5), ('wz', math.nan),
                                          ('ax', math.inf), ('awz', 'fast')])
def test_invalid_limit_is_rejected_with_its_name(field, value):
    with pytest.raises(ValueError, match=field):
        CommandLimits(**{field: value})


def test_unknown_limit_key_is_rejected_by_name():
    with pytest.raises(ValueError, match='vz'):
        CommandLimits.from_dict({'vx': 1.0, 'vz': 2.0})


def test_invalid_filter_settings_are_rejected():
    with pytest.raises(ValueError, match='cutoff_hz'):
        CommandChain(LIMITS, cutoff_hz=5.0, rate_hz=10.0)     # at Nyquist
    with pytest.raises(ValueError, match='rate_hz'):
        CommandChain(LIMITS, cutoff_hz=1.0, rate_hz=0.0)


def test_scale_maps_unit_box_to_velocity_limits_and_clips_beyond():
    chain = CommandChain(CommandLimits(vx=0.8, vy=0.4, wz=0.6))
    np.testing.assert_allclose(chain.scale(np.array([1.0, -1.0, 0.5])), [0.8, -0.4, 0.3])
    np.testing.assert_allclose(chain.scale(np.array([7.0, -1e300, 0.0])), [0.8, -0.4, 0.0])


def test_constant_action_settles_at_scaled_value():
    chain = CommandChain(LIMITS, cutoff_hz=2.0, rate_hz=10.0)
    out = run(chain, [1.0, -1.0, 0.5], ticks=60)
    np.testing.assert_allclose(out[-1], [1.0, -0.5, 0.25], atol=1e-9)


def test_with_loose_acceleration_the_chain_is_exactly_the_low_pass_filter():
    rng = np.random.default_rng(3)
    actions = rng.uniform(-1, 1, size=(40, 3))
    chain = CommandChain(LOOSE, cutoff_hz=1.5, rate_hz=10.0)
    reference = LowPassFilter(1.5, 10.0, channels=3)
    reference.reset(np.zeros(3))
    for a in actions:
        np.testing.assert_allclose(chain.step(a), reference(a * LOOSE.velocity), atol=1e-12)


def test_step_from_standstill_is_filtered_then_acceleration_limited():
    chain = CommandChain(LIMITS, cutoff_hz=2.0, rate_hz=10.0)
    b = butterworth1(2.0, 10.0).b
    first = chain.step(np.array([1.0, 1.0, 1.0]), dt=0.1)
    # Filter output after one tick is b * v_max; the limiter allows a_max * dt of it.
    expected = np.minimum(b * LIMITS.velocity, LIMITS.acceleration * 0.1)
    np.testing.assert_allclose(first, expected)
    assert first[0] == pytest.approx(0.2)          # vx: 2 m/s^2 * 0.1 s, below b * 1.0 = 0.42
    out = run(chain, [1.0, 1.0, 1.0], ticks=30)
    assert np.all(np.abs(np.diff(np.vstack([first, out]), axis=0)) <= LIMITS.acceleration * 0.1 + 1e-12)


def test_clamp_catches_filter_overshoot():
    # A cutoff close to Nyquist gives a negative pole: the step response overshoots the input.
    chain = CommandChain(LOOSE, cutoff_hz=4.5, rate_hz=10.0)
    reference = LowPassFilter(4.5, 10.0, channels=3)
    reference.reset(np.zeros(3))
    raw = np.array([reference(LOOSE.velocity) for _ in range(3)])
    assert raw[:, 0].max() > LOOSE.vx                # the filter alone would exceed the limit
    out = run(chain, [1.0, 1.0, 1.0], ticks=3)
    assert np.all(np.abs(out) <= LOOSE.velocity)
    assert out[1, 0] == LOOSE.vx


def test_non_finite_action_raises_and_changes_nothing():
    chain = CommandChain(LIMITS)
    twin = CommandChain(LIMITS)
    for a in ([0.5, 0.2, -0.3], [0.6, 0.1, -0.2]):
        chain.step(np.array(a))
        twin.step(np.array(a))
    before = chain.last
    for bad in ([math.nan, 0, 0], [0, math.inf, 0], [0, 0, -math.inf]):
        with pytest.raises(NonFiniteActionError):
            chain.step(np.array(bad))
    assert chain.rejected == 3
    np.testing.assert_array_equal(chain.last, before)
    np.testing.assert_array_equal(chain.step(np.array([0.7, 0, 0])), twin.step(np.array([0.7, 0, 0])))


def test_bad_dt_and_bad_shape_are_refused():
    chain = CommandChain(LIMITS)
    for dt in (0.0, -0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match='dt'):
            chain.step(np.zeros(3), dt)
    with pytest.raises(ValueError, match='3 elements'):
        chain.step(np.zeros(2))


def test_stop_is_immediate_and_next_command_ramps_up_from_zero():
    chain = CommandChain(LIMITS)
    run(chain, [1.0, -1.0, 1.0], ticks=40)
    assert chain.last[0] == pytest.approx(1.0)
    np.testing.assert_array_equal(chain.stop(), np.zeros(3))     # not rate limited
    np.testing.assert_array_equal(chain.last, np.zeros(3))
    after = chain.step(np.array([1.0, -1.0, 1.0]), dt=0.1)
    fresh = CommandChain(LIMITS).step(np.array([1.0, -1.0, 1.0]), dt=0.1)
    np.testing.assert_array_equal(after, fresh)
    assert np.all(np.abs(after) <= LIMITS.acceleration * 0.1 + 1e-12)


def test_late_tick_may_change_more_early_tick_less():
    slow = CommandChain(LIMITS)
    fast = CommandChain(LIMITS)
    assert slow.step(np.array([1.0, 0, 0]), dt=0.3)[0] > fast.step(np.array([1.0, 0, 0]), dt=0.05)[0]
