"""Input validation of the agent runtime: pure functions, each refusal named by its reason key."""
from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_team import MODEL_SET_ID  # noqa: E402

from seqwm_agent.core.intent import IntentLayout
from seqwm_agent.runtime.agent import integrate_plan
from seqwm_agent.runtime.messages import (IntentMessage, MocapSample, intent_message_from_msg,
                                          mocap_sample_from_msg)
from seqwm_agent.runtime.validation import (REJECT_REASONS, IntentExpectation, Rejected,
                                            check_frame, check_intent_tick, tick_index,
                                            validate_intent)

LAYOUT = IntentLayout(num_agents=2, horizon=3, latent_dim=16, action_dim=3)
EXPECT = IntentExpectation(LAYOUT, MODEL_SET_ID, predecessor='go2w_1', predecessor_index=0)
BODIES = ('go2w_1', 'go2w_2', 'box')
POSES = {'go2w_1': (1.0, -1.0, 0.5), 'go2w_2': (1.0, 1.0, -3.0), 'box': (2.0, 0.0, 0.0)}


def intent(**changes) -> IntentMessage:
    rng = np.random.default_rng(0)
    sizes = LAYOUT.sizes
    fields = dict(tick=100, stamp_ns=10_000_000_000, model_set_id=MODEL_SET_ID, sender='go2w_1',
                  sender_index=0, num_agents=2, horizon=3, latent_dim=16, action_dim=3,
                  latents=rng.uniform(0, 1, sizes['latents']).astype(np.float32),
                  actions=rng.uniform(-1, 1, sizes['actions']).astype(np.float32),
                  valid=np.array([True, False]))
    fields.update(changes)
    return IntentMessage(**fields)


def reason_of(fn, *args) -> str:
    with pytest.raises(Rejected) as err:
        fn(*args)
    assert err.value.reason in REJECT_REASONS
    return err.value.reason


# ---- mocap frames -------------------------------------------------------------------------------
def test_good_frame_gives_planar_poses_with_yaw_from_the_quaternion():
    check = check_frame(MocapSample.from_planar(12.3, POSES), BODIES)
    assert check.problems == {} and check.malformed == ''
    for name, (x, y, yaw) in POSES.items():
        gx, gy, gyaw = check.poses[name]
        assert (gx, gy) == (x, y)
        assert math.isclose(math.remainder(gyaw - yaw, 2 * math.pi), 0.0, abs_tol=1e-9)


@pytest.mark.parametrize('value', [math.nan, math.inf, -math.inf])
def test_non_finite_pose_is_refused_as_mocap_nan(value):
    f = MocapSample.from_planar(1.0, POSES)
    f.positions[1, 0] = value
    check = check_frame(f, BODIES)
    assert check.problems == {'go2w_2': 'mocap_nan'} and set(check.poses) == {'go2w_1', 'box'}
    f = MocapSample.from_planar(1.0, POSES)
    f.orientations[2, 3] = value
    assert check_frame(f, BODIES).problems == {'box': 'mocap_nan'}


def test_untracked_missing_and_degenerate_quaternion_bodies_are_named():
    f = MocapSample.from_planar(1.0, POSES, untracked=['box'])
    f.orientations[0] = 0.0                                   # zero quaternion: no yaw
    check = check_frame(f, BODIES + ('sheep',))
    assert check.problems == {'go2w_1': 'mocap_bad_quaternion', 'box': 'mocap_untracked',
                              'sheep': 'mocap_missing'}
    assert list(check.poses) == ['go2w_2']
    assert 'norm 0' in check.details['go2w_1']


def test_unnormalised_quaternion_is_normalised_not_refused():
    f = MocapSample.from_planar(1.0, POSES)
    f.orientations[0] *= 1.3
    assert math.isclose(check_frame(f, BODIES).poses['go2w_1'][2], 0.5, abs_tol=1e-9)


def test_frame_with_mismatched_lengths_is_malformed_for_every_body():
    f = MocapSample.from_planar(1.0, POSES)
    f.tracked = f.tracked[:2]
    check = check_frame(f, BODIES)
    assert check.poses == {} and set(check.problems.values()) == {'mocap_malformed'}
    assert '3 names' in check.malformed and '2 tracked' in check.malformed


def test_message_conversion_is_duck_typed_and_exact_in_nanoseconds():
    pose = SimpleNamespace(position=SimpleNamespace(x=1.0, y=2.0, z=0.3),
                           orientation=SimpleNamespace(x=0.0, y=0.0, z=0.0, w=1.0))
    msg = SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=1_795_000_000,
                                                                       nanosec=199_999_999)),
                          frame_number=7, names=['go2w_1'], poses=[pose], tracked=[True])
    f = mocap_sample_from_msg(msg)
    assert f.stamp_ns == 1_795_000_000_199_999_999 and f.names == ('go2w_1',)
    # float seconds would round this stamp into the next tick; integer ns does not
    assert tick_index(f.stamp_ns, 0.1) == 17_950_000_001
    assert tick_index(1_795_000_000_200_000_000, 0.1) == 17_950_000_002


# ---- intents ------------------------------------------------------------------------------------
def test_valid_intent_becomes_tensors_with_masked_slots_zeroed():
    msg = intent()
    msg.latents[-16:] = 5.0                     # content in the masked slot is ignored
    t = validate_intent(msg, EXPECT)
    assert t.latents.shape == (1, 2, 4, 16) and t.valid.tolist() == [[True, False]]
    assert float(t.latents[0, 1].abs().sum()) == 0.0


@pytest.mark.parametrize('changes,reason,words', [
    (dict(sender='go2w_9'), 'intent_sender', 'predecessor is go2w_1'),
    (dict(sender_index=1), 'intent_sender', 'index 1'),
    (dict(model_set_id='another-run'), 'intent_model_set', "'another-run'"),
    (dict(latent_dim=96), 'intent_size', 'latent size 96 != 16'),
    (dict(horizon=5), 'intent_size', 'horizon 5 != 3'),
    (dict(latents=np.zeros(100, np.float32)), 'intent_size', "'latents' has 100 elements"),
    (dict(valid=np.array([True])), 'intent_size', "'valid' has 1 elements"),
    (dict(actions=np.full(18, np.nan, np.float32)), 'intent_nan', 'non-finite'),
])
def test_bad_intents_are_rejected_with_a_reason_and_the_numbers(changes, reason, words):
    with pytest.raises(Rejected) as err:
        validate_intent(intent(**changes), EXPECT)
    assert err.value.reason == reason
    assert words in err.value.message and 'from go2w_' in err.value.message


def test_nan_in_a_masked_slot_is_harmless():
    msg = intent()
    msg.latents[-16:] = np.nan
    assert validate_intent(msg, EXPECT).valid.tolist() == [[True, False]]


def test_robot_without_predecessor_accepts_no_intent():
    first = IntentExpectation(LAYOUT, MODEL_SET_ID, predecessor='', predecessor_index=-1)
    assert reason_of(validate_intent, intent(), first) == 'intent_sender'


def test_intent_tick_rules():
    check_intent_tick(10, last_planned=10, held={9}, current=10)      # late: cache for 11
    check_intent_tick(11, last_planned=10, held={10}, current=10)     # one tick ahead
    assert reason_of(check_intent_tick, 9, 10, set(), 10) == 'intent_past_tick'
    assert reason_of(check_intent_tick, 10, 10, {10}, 10) == 'intent_repeat'
    assert reason_of(check_intent_tick, 12, 10, set(), 10) == 'intent_future_tick'
    check_intent_tick(10 ** 9, None, set(), None)    # no clock yet: judged at the first frame


def test_an_intent_ahead_does_not_make_the_next_real_one_out_of_order():
    """Issue 15 hole 1: an intent for tick current+2 (or any later one) used to make the real
    one for current+1 'out of order'; only a repeat of a tick received is one now."""
    check_intent_tick(11, last_planned=10, held={12}, current=10)


@pytest.mark.parametrize('slot,value,words', [
    ('latents', 3e38, 'latents span'),
    ('latents', -0.5, 'latents span'),
    ('actions', -40.0, 'commands span'),
    ('actions', 1.01, 'commands span'),
])
def test_values_outside_their_range_are_refused(slot, value, words):
    """Issue 15 hole 2: only finiteness was checked; latents at 3e38 and actions at -40 were
    planned on as fresh and forwarded."""
    arr = getattr(intent(), slot).copy()
    arr[1] = value
    with pytest.raises(Rejected) as err:
        validate_intent(intent(**{slot: arr}), EXPECT)
    assert err.value.reason == 'intent_range' and words in err.value.message


def test_a_sender_without_its_own_slot_or_with_successors_slots_is_refused():
    """Issue 15 hole 2: a predecessor that marked its own slot invalid was reported fresh while
    the robot in fact planned masked."""
    assert reason_of(validate_intent, intent(valid=np.array([False, False])), EXPECT) == \
        'intent_valid_flags'
    assert reason_of(validate_intent, intent(valid=np.array([True, True])), EXPECT) == \
        'intent_valid_flags'


def test_intent_message_conversion_keeps_arrays_and_header():
    src = intent()
    msg = SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=10, nanosec=5)),
                          **{k: getattr(src, k) for k in (
                              'tick', 'model_set_id', 'sender', 'sender_index', 'num_agents',
                              'horizon', 'latent_dim', 'action_dim', 'latents', 'actions',
                              'valid', 'planner_iterations', 'planner_value', 'planner_time_ms')})
    got = intent_message_from_msg(msg)
    assert got.stamp_ns == 10_000_000_005 and got.tick == 100
    np.testing.assert_array_equal(got.latents, src.latents)
    assert got.valid.dtype == bool


def test_integrate_plan_moves_in_the_body_frame():
    traj = integrate_plan((1.0, 2.0, math.pi / 2), np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.0],
                                                             [0.0, 0.0, 0.5]]), 0.1)
    assert traj.shape == (4, 3)
    np.testing.assert_allclose(traj[1], [1.0, 2.1, math.pi / 2], atol=1e-12)   # forward = +y
    np.testing.assert_allclose(traj[2], [0.95, 2.1, math.pi / 2], atol=1e-12)  # left = -x
    np.testing.assert_allclose(traj[3], [0.95, 2.1, math.pi / 2 + 0.05], atol=1e-12)


def test_message_arrays_are_bounded_and_checked_again_on_receipt():
    """Issue 15 hole 3: float32[] / bool[] were unbounded (10 M floats were copied before the
    sender check). The .msg files bound them (5 robots, horizon 16, latent 64; 256 bodies);
    rclpy refuses to serialise more, and the runtime checks the sizes again."""
    from rclpy.serialization import serialize_message
    from seqwm_msgs.msg import Intent

    from seqwm_agent.runtime.messages import message_bounds
    assert message_bounds('Intent') == {'model_set_id': 128, 'sender': 64, 'latents': 5440,
                                       'actions': 240, 'valid': 5}
    assert message_bounds('MocapFrame') == {'names': 256, 'names.item': 64, 'poses': 256,
                                            'tracked': 256}
    big = Intent()
    big.latents = np.zeros(5441, dtype=np.float32)
    with pytest.raises(Exception):
        serialize_message(big)
    names = tuple(f'b{k}' for k in range(257))
    frame = MocapSample(0, 1, names, np.zeros((257, 3)), np.tile([0.0, 0, 0, 1], (257, 1)),
                        (True,) * 257)
    check = check_frame(frame, BODIES)
    assert check.malformed and set(check.problems.values()) == {'mocap_malformed'}
