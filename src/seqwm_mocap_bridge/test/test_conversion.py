"""Plain unit tests of the pure modules: conversion, timing, quality, config, throttled log."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqwm_mocap_bridge.config import PARAMETERS, BridgeConfig, ConfigError
from seqwm_mocap_bridge.conversion import (AxisCheckError, BodyMap, arena_to_sdk,
                                           check_reference_body, quat_multiply, sdk_to_arena,
                                           yaw_from_quaternion)
from seqwm_mocap_bridge.quality import JumpConfig, JumpFilter
from seqwm_common.throttled_log import ThrottledLog
from seqwm_mocap_bridge.timing import FrameOrder, capture_time_ns, latency_to_ms

finite = st.floats(-5000.0, 5000.0, allow_nan=False)


def _unit_quats(raw: np.ndarray) -> np.ndarray:
    q = raw.reshape(-1, 4)
    n = np.linalg.norm(q, axis=1, keepdims=True)
    return q / np.where(n < 1e-3, 1.0, n) + np.where(n < 1e-3, [[0, 0, 0, 1.0]], 0.0)


def test_millimetres_become_metres_and_z_up_passes_axes_through():
    p, q = sdk_to_arena(np.array([[1234.5, -250.0, 300.0]]), np.array([[0, 0, 0, 1.0]]), 'z')
    np.testing.assert_allclose(p, [[1.2345, -0.25, 0.3]])
    np.testing.assert_array_equal(q, [[0, 0, 0, 1.0]])


def test_y_up_axes_map_to_a_right_handed_z_up_frame():
    # SDK unit vectors x, y (up), z -> arena x, z (up), -y.
    p, _ = sdk_to_arena(np.eye(3) * 1000.0, np.tile([0, 0, 0, 1.0], (3, 1)), 'y')
    np.testing.assert_allclose(p, [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-12)
    assert np.linalg.det(p) == pytest.approx(1.0)   # a rotation, not a reflection


@pytest.mark.parametrize('axis_up,turn_axis', [('z', 2), ('y', 1)])
def test_turn_about_the_sdk_up_axis_is_arena_yaw(axis_up, turn_axis):
    for yaw in (-3.0, -1.2, 0.0, 0.4, 2.9):
        q = np.zeros(4)
        q[turn_axis] = math.sin(yaw / 2)
        q[3] = math.cos(yaw / 2)
        _, qa = sdk_to_arena(np.zeros(3), q, axis_up)
        assert float(yaw_from_quaternion(qa)[0]) == pytest.approx(yaw, abs=1e-12)


def test_yaw_ignores_roll_and_pitch_order_zyx():
    def about(axis, a):
        q = np.zeros(4)
        q[axis], q[3] = math.sin(a / 2), math.cos(a / 2)
        return q
    q = quat_multiply(quat_multiply(about(2, 1.1), about(1, 0.2)), about(0, -0.3))
    assert float(yaw_from_quaternion(q)) == pytest.approx(1.1, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=3, max_size=3), st.lists(finite, min_size=4, max_size=4),
       st.sampled_from(['z', 'y']))
def test_arena_to_sdk_is_the_exact_inverse_of_sdk_to_arena(p, q, axis_up):
    q = _unit_quats(np.array(q))
    p_mm, q_s = arena_to_sdk(np.array(p) / 1000.0, q, axis_up)
    p_a, q_a = sdk_to_arena(p_mm, q_s, axis_up)
    np.testing.assert_allclose(p_a, np.array(p).reshape(1, 3) / 1000.0, atol=1e-12)
    np.testing.assert_allclose(q_a, q, atol=1e-12)


def test_reference_body_on_the_floor_passes_and_names_the_measured_height():
    assert check_reference_body('floor', (500.0, 20.0, 3000.0), 'y', 0.0, 0.05) == \
        pytest.approx(0.02)


def test_wrong_axis_convention_refuses_with_the_other_conventions_height():
    with pytest.raises(AxisCheckError) as err:
        # A Y-up stream read as Z-up: the floor body appears 3 m "above" the floor.
        check_reference_body('floor', (500.0, 20.0, 3000.0), 'z', 0.0, 0.05)
    text = str(err.value)
    assert "reference body 'floor'" in text and '3.000 m' in text
    assert "axis_up='y' would give 0.020 m" in text and 'Refusing to start' in text


def test_body_map_configured_ids_win_over_descriptions_and_conflicts_are_reported():
    conflicts: list[str] = []
    bm = BodyMap(['go2w_1', 'box'], [3, 9], on_conflict=conflicts.append)
    bm.update({3: 'go2w_1', 5: 'box', 6: 'sheep'})
    assert (bm.id_of('box'), bm.name_of(9), bm.name_of(6), bm.name_of(5)) == (9, 'box', 'sheep',
                                                                              None)
    assert len(conflicts) == 1 and "configured ID 9" in conflicts[0]


def test_body_map_assigns_fresh_ids_above_known_ones():
    bm = BodyMap(['go2w_1'], [4])
    assert bm.assign('go2w_1') == 4
    assert bm.assign('box') == 5
    assert bm.assign('box') == 5


# --------------------------------------------------------------------------------- timing
def test_capture_time_is_receive_minus_latency_in_integer_ns():
    assert capture_time_ns(10_000_000_000, 12.5) == 9_987_500_000
    assert capture_time_ns(10_000_000_000, 0.0) == 10_000_000_000
    assert latency_to_ms(0.004, 's') == pytest.approx(4.0)
    assert latency_to_ms(4000.0, 'us') == pytest.approx(4.0)


def test_frame_order_classifies_gaps_duplicates_out_of_order_and_resets():
    order = FrameOrder(reset_gap=100)
    kinds = [(n, order.classify(n)) for n in (10, 11, 14, 14, 12, 15, 9000, 9001, 2)]
    assert [(n, r.kind, r.dropped) for n, r in kinds] == [
        (10, 'first', 0), (11, 'next', 0), (14, 'gap', 2), (14, 'duplicate', 0),
        (12, 'out_of_order', 0), (15, 'next', 0), (9000, 'reset', 0), (9001, 'next', 0),
        (2, 'reset', 0)]


# --------------------------------------------------------------------------------- quality
def test_jump_filter_allows_speed_limit_plus_margin_and_rejects_beyond():
    f = JumpFilter(JumpConfig(max_speed_mps=2.0, jump_margin_m=0.01, reacquire_frames=3,
                              max_angular_speed_rps=0.0))
    q = np.array([0, 0, 0, 1.0])
    assert f.check('a', np.zeros(3), q, 0) == (None, '')
    assert f.check('a', np.array([0.20, 0, 0]), q, 100_000_000)[0] is None   # 2.0 m/s
    reason, detail = f.check('a', np.array([0.45, 0, 0]), q, 200_000_000)   # 2.5 m/s
    assert reason == 'jump' and '2.5 m/s > 2 m/s' in detail


def test_jump_filter_rejects_fast_turns():
    f = JumpFilter(JumpConfig(max_speed_mps=2.0, max_angular_speed_rps=3.0))
    f.check('a', np.zeros(3), np.array([0, 0, 0, 1.0]), 0)
    half_turn = np.array([0, 0, 1.0, 0])
    assert f.check('a', np.zeros(3), half_turn, 10_000_000)[0] == 'rotation_jump'
    # q and -q are the same orientation: no turn at all.
    assert f.check('a', np.zeros(3), np.array([0, 0, 0, -1.0]), 20_000_000)[0] is None


# --------------------------------------------------------------------------------- config
def test_every_parameter_has_a_description_and_a_valid_default():
    for spec in PARAMETERS:
        assert spec.description, spec.name
    cfg = BridgeConfig.from_dict({})
    assert set(cfg.to_dict()) == {p.name for p in PARAMETERS}


@pytest.mark.parametrize('values,fragment', [
    ({'max_speed_mps': -1.0}, 'max_speed_mps = -1.0 is out of range'),
    ({'axis_up': 'x'}, "axis_up must be one of ['z', 'y']"),
    ({'axis_up': True}, "quote it"),
    ({'source': 'replay'}, 'replay_file must be set'),
    ({'bodies': ['a', 'b'], 'body_ids': [1]}, 'body_ids has 1 entries but bodies has 2'),
    ({'frozen_frames': 1}, 'frozen_frames must be 0 (off) or >= 2'),
    ({'no_such': 1}, 'unknown parameter(s): no_such'),
])
def test_bad_parameters_are_refused_with_the_parameter_named(values, fragment):
    with pytest.raises(ConfigError) as err:
        BridgeConfig.from_dict(values)
    assert fragment in str(err.value)


def test_axis_aliases_normalise():
    assert BridgeConfig.from_dict({'axis_up': 'y_up'}).axis_up == 'y'


# --------------------------------------------------------------------------------- logging
def test_repeated_events_are_folded_into_a_count():
    lines: list[tuple[str, str]] = []
    now = [0.0]
    log = ThrottledLog(lambda lvl, msg: lines.append((lvl, msg)), 5.0, clock=lambda: now[0])
    for t in (0.0, 1.0, 2.0, 3.0):
        now[0] = t
        log.event('jump:a', 'warn', 'a jumped')
    log.event('jump:b', 'warn', 'b jumped')
    now[0] = 6.0
    log.event('jump:a', 'warn', 'a jumped again')
    assert lines == [('warn', 'a jumped'), ('warn', 'b jumped'),
                     ('warn', 'a jumped again [+3 similar in the last 6.0 s]')]


def test_docs_list_every_parameter_and_status_counter():
    from pathlib import Path

    from conftest import REPO_ROOT

    doc = (Path(REPO_ROOT) / 'docs' / 'mocap.md').read_text()
    missing = [p.name for p in PARAMETERS if f'| `{p.name}` |' not in doc]
    assert not missing, f'docs/mocap.md lacks parameters {missing}'
    import ast
    node_src = (Path(__file__).resolve().parents[1] / 'seqwm_mocap_bridge' /
                'bridge_node.py').read_text()
    counters = next(ast.literal_eval(n.value) for n in ast.parse(node_src).body
                    if isinstance(n, ast.Assign) and getattr(n.targets[0], 'id', '') ==
                    'STATUS_COUNTERS')
    assert [c for c in counters if f'`{c}`' not in doc] == []
