"""One robot's agent runtime without ROS: modes, cache, watchdog, determinism, model checks.

Real components throughout: a two-robot PushBox model set saved and loaded with the checkpoint
code, the real planner, intent layout/cache, command chain, scheduler and observation builder.
Every tick goes through the runtime's events (`on_intent`, `on_frame`, `on_timer`) as the node
drives them; time is passed explicitly (`now`), so every timing rule is checked exactly.
"""
from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_team import (DT, LEADER_ACTION, MODEL_SET_ID, POSES, TEAM, make_manifest,  # noqa: E402
                        make_models, model_config, scaled_copy, write_team)

from seqwm_agent.core.checkpoint import load_agent
from seqwm_agent.core.command import CommandLimits
from seqwm_agent.runtime.agent import (AgentError, AgentRuntime, AgentSettings, Mode,
                                      integrate_plan)
from seqwm_agent.runtime.messages import MocapSample
from seqwm_agent.runtime.scheduler import Trigger

T0 = 1_795_000_000.0          # mocap clock (s): tick k starts at T0 + k * DT
N0 = 500.0                    # the caller's monotonic clock at tick 0
TICK0 = int(round(T0 / DT))


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory) -> Path:
    return write_team(tmp_path_factory.mktemp('team'))


def settings(k: int, **kw) -> AgentSettings:
    base = dict(robot_name=TEAM[k], order_index=k, team=TEAM, task='pushbox',
                predecessor=TEAM[k - 1] if k else '', cache_max_age_ticks=3,
                stale_timeout_s=0.3, plan_budget_ms=25.0, hop_budget_ms=25.0)   # waits 50 ms
    base.update(kw)
    return AgentSettings(**base)


def pipe(model_dir: Path, k: int, **kw) -> AgentRuntime:
    return AgentRuntime.load(settings(k, **kw), model_dir)


def step(rt: AgentRuntime, f: MocapSample, intent, t: float):
    """One tick through the runtime's events: the predecessor's intent (if delivered) before the
    frame, the frame at `t`, then the deadline timer if the tick waits for an intent."""
    outs = rt.on_intent(intent, t) if intent is not None else []
    outs += rt.on_frame(f, t)
    if rt.next_deadline() is not None:
        outs += rt.on_timer(rt.next_deadline())
    ticks = [o for o in outs if o.trigger != Trigger.WATCHDOG]
    assert len(ticks) == 1, f'the frame started {len(ticks)} ticks'
    return ticks[0]


def watch(rt: AgentRuntime, t: float):
    """The watchdog timer at `t`: its stop, or None."""
    stops = [o for o in rt.on_timer(t) if o.trigger == Trigger.WATCHDOG]
    return stops[0] if stops else None


def frame(i: int, poses=None, untracked=(), offset: float = 0.004) -> MocapSample:
    """The first frame of tick TICK0 + i (captured `offset` s into the tick)."""
    return MocapSample.from_planar(T0 + i * DT + offset, poses or POSES, frame_number=1000 + 5 * i,
                                   untracked=untracked)


def now(i: int, extra: float = 0.0) -> float:
    return N0 + i * DT + extra


def within_limits(cmd: np.ndarray, limits: CommandLimits = CommandLimits()) -> bool:
    return bool(np.all(np.abs(cmd) <= limits.velocity + 1e-12))


def run_pair(model_dir: Path, ticks: int, deliver=lambda i: True, **kw):
    """Robots 0 and 1 over `ticks` ticks; robot 1 gets robot 0's intent when deliver(i)."""
    p0, p1 = pipe(model_dir, 0, **kw), pipe(model_dir, 1, **kw)
    outs = []
    for i in range(ticks):
        f = frame(i)
        o0 = step(p0, f, None, now(i))
        o1 = step(p1, f, o0.intent if deliver(i) else None, now(i, 0.01))
        outs.append((o0, o1))
    return p0, p1, outs


# ---- modes --------------------------------------------------------------------------------------
def test_first_robot_always_plans_fresh_and_fills_only_its_slot(model_dir):
    p0 = pipe(model_dir, 0)
    for i in range(4):
        out = step(p0, frame(i), None, now(i))
        assert out.mode == Mode.FRESH and out.reason == '' and not out.stop
        assert out.tick == TICK0 + i and out.stamp_ns == frame(i).stamp_ns
        assert within_limits(out.command)
        m = out.intent
        assert (m.tick, m.sender, m.sender_index, m.model_set_id) == (TICK0 + i, 'go2w_1', 0,
                                                                      MODEL_SET_ID)
        assert m.valid.tolist() == [True, False]
        assert m.latents.size == 2 * 4 * 16 and m.actions.size == 2 * 3 * 3
        assert out.trajectory.shape == (4, 3)
        np.testing.assert_allclose(out.trajectory[0], POSES['go2w_1'])
    assert out.mode_counts == (4, 0, 0, 0)


def test_fresh_intent_is_planned_on_and_forwarded_in_the_outgoing_intent(model_dir):
    _, _, outs = run_pair(model_dir, 6)
    for o0, o1 in outs:
        assert o1.mode == Mode.FRESH and o1.intent_age_s == 0.0
        assert o1.intent.valid.tolist() == [True, True]
        half_z, half_a = o0.intent.latents.size // 2, o0.intent.actions.size // 2
        np.testing.assert_array_equal(o1.intent.latents[:half_z], o0.intent.latents[:half_z])
        np.testing.assert_array_equal(o1.intent.actions[:half_a], o0.intent.actions[:half_a])


def test_follower_plans_towards_what_its_predecessor_intends(model_dir):
    """go2w_2's reward is highest at go2w_1's planned command read from the intent: with the
    intent its plan follows go2w_1's (as closely as its own command chain lets it move); with
    the predecessor masked it has nothing to follow."""
    _, _, fresh = run_pair(model_dir, 14)
    _, _, masked = run_pair(model_dir, 14, deliver=lambda i: False)

    def first(intent, k):                   # slot k's planned command of the tick
        return intent.actions.reshape(2, 3, 3)[k, 0]
    lead = np.array([first(o0.intent, 0) for o0, _ in fresh[4:]])
    np.testing.assert_allclose(lead.mean(0), LEADER_ACTION, atol=0.1)
    gap_fresh = np.mean([np.abs(first(o1.intent, 1) - first(o0.intent, 0))
                         for o0, o1 in fresh[4:]], axis=0)
    gap_masked = np.mean([np.abs(first(o1.intent, 1) - first(o0.intent, 0))
                          for o0, o1 in masked[4:]], axis=0)
    assert masked[-1][1].mode == Mode.MASKED
    assert gap_fresh.max() < 0.12, gap_fresh
    assert gap_masked.max() > 0.3 and np.all(gap_fresh < gap_masked), (gap_fresh, gap_masked)


def test_lost_intents_use_the_shifted_cache_then_mask_after_max_age_then_recover(model_dir):
    lost = range(5, 12)
    _, p1, outs = run_pair(model_dir, 15, deliver=lambda i: i not in lost)
    modes = [o1.mode for _, o1 in outs]
    assert modes == [Mode.FRESH] * 5 + [Mode.CACHED] * 3 + [Mode.MASKED] * 4 + [Mode.FRESH] * 3
    for i in (5, 6, 7):
        o1 = outs[i][1]
        age = i - 4
        assert math.isclose(o1.intent_age_s, age * DT)
        assert f'using tick {TICK0 + 4} shifted by {age}' in o1.reason
        # slot 0 is robot 0's intent of tick 4, shifted: its step `age` became step 0
        sent = outs[4][0].intent.latents[:64].reshape(4, 16)
        fwd = o1.intent.latents[:64].reshape(4, 16)
        np.testing.assert_array_equal(fwd[0], sent[age])
        assert o1.intent.valid.tolist() == [True, True]
    o1 = outs[8][1]
    assert 'cache_max_age_ticks 3' in o1.reason and o1.intent.valid.tolist() == [False, True]
    assert all(within_limits(o1.command) and not o1.stop for _, o1 in outs)
    events = [e.message for e in p1.drain_events()]
    assert any('fresh -> cached' in m for m in events) and any('cached -> masked' in m for m in events)
    assert any('masked -> fresh' in m for m in events)


def test_intent_arriving_after_its_tick_is_the_cache_for_the_next(model_dir):
    p0, p1 = pipe(model_dir, 0), pipe(model_dir, 1)
    o0 = step(p0, frame(0), None, now(0))
    assert step(p1, frame(0), o0.intent, now(0, 0.01)).mode == Mode.FRESH
    o0 = step(p0, frame(1), None, now(1))
    assert step(p1, frame(1), None, now(1, 0.06)).mode == Mode.CACHED     # deadline passed
    assert p1.receive_intent(o0.intent, now(1, 0.08)) is None              # late, still kept
    step(p0, frame(2), None, now(2))
    out = step(p1, frame(2), None, now(2, 0.06))
    assert out.mode == Mode.CACHED and math.isclose(out.intent_age_s, DT)  # tick 1 shifted by 1


def test_an_intent_arriving_after_the_deadline_is_late_even_before_the_timer_fires(model_dir):
    """The node's executor may run the intent callback before a late deadline timer: the tick
    still counts as run at its deadline and must not plan on the late intent (bag replay of
    `make demo` found a status 'fresh' with trigger 'deadline')."""
    p0, p1 = pipe(model_dir, 0), pipe(model_dir, 1)
    o0 = step(p0, frame(0), None, now(0))
    step(p1, frame(0), o0.intent, now(0, 0.01))
    o0 = step(p0, frame(1), None, now(1))
    assert p1.on_frame(frame(1), now(1)) == []                        # waits for the intent
    late = p1.on_intent(o0.intent, now(1, 0.06))                      # deadline 0.05 passed
    assert [(o.trigger, o.mode) for o in late] == [(Trigger.DEADLINE, Mode.CACHED)]
    assert late[0].waited_s == pytest.approx(0.05)
    o0 = step(p0, frame(2), None, now(2))
    nxt = step(p1, frame(2), None, now(2, 0.06))
    assert nxt.mode == Mode.CACHED and math.isclose(nxt.intent_age_s, DT)   # tick 1's, shifted


def test_robot_never_heard_from_its_predecessor_plans_masked(model_dir):
    out = step(pipe(model_dir, 1), frame(0), None, now(0))
    assert out.mode == Mode.MASKED and 'no intent from go2w_1 yet' in out.reason
    assert out.intent.valid.tolist() == [False, True]


# ---- rejections ---------------------------------------------------------------------------------
def test_rejected_inputs_are_counted_per_reason_and_never_used(model_dir):
    p0, p1 = pipe(model_dir, 0), pipe(model_dir, 1)
    o0 = step(p0, frame(0), None, now(0))
    good = o0.intent
    assert p1.receive_intent(replace(good, sender='go2w_9'), now(0)) == 'intent_sender'
    assert p1.receive_intent(replace(good, model_set_id='x'), now(0)) == 'intent_model_set'
    assert p1.receive_intent(replace(good, latent_dim=96), now(0)) == 'intent_size'
    bad = replace(good, latents=good.latents.copy())
    bad.latents[3] = np.inf
    assert p1.receive_intent(bad, now(0)) == 'intent_nan'
    assert step(p1, frame(0), None, now(0, 0.06)).mode == Mode.MASKED    # none of them was used
    assert p1.receive_intent(replace(good, tick=TICK0 - 3), now(0)) == 'intent_past_tick'
    assert p1.receive_intent(replace(good, tick=TICK0 + 50), now(0)) == 'intent_future_tick'
    assert p1.receive_intent(good, now(0, 0.07)) is None                  # late but usable
    assert p1.receive_intent(good, now(0, 0.08)) == 'intent_repeat'        # a repeat
    nan_frame = frame(1)
    nan_frame.positions[0, 1] = np.nan
    out = step(p1, nan_frame, None, now(1, 0.06))        # go2w_1's pose NaN: held from tick 0
    assert p1.observe_frame(nan_frame, now(1)).usable
    assert out.mode == Mode.CACHED
    counts = out.reject_counts
    assert {k: v for k, v in counts.items() if v} == {
        'intent_sender': 1, 'intent_model_set': 1, 'intent_size': 1, 'intent_nan': 1,
        'intent_past_tick': 1, 'intent_future_tick': 1, 'intent_repeat': 1, 'mocap_nan': 1}
    older = frame(1, offset=-0.05)
    assert not p1.observe_frame(older, now(1, 0.07)).usable
    assert p1.reject_counts['mocap_out_of_order'] == 1
    messages = [e.message for e in p1.drain_events()]
    assert 'rejected intent from go2w_1: latent size 96 != 16' in messages


def test_a_far_future_intent_before_the_first_frame_blocks_nothing(model_dir):
    """Issue 15 hole 1: an intent for tick 2**64 - 1 arriving before any mocap frame (at start,
    or after a stale stop) made every later real intent 'out of order' and the successor plan
    masked. Now it is kept aside, refused as future at the first frame, and the chain flows."""
    p0, p1 = pipe(model_dir, 0), pipe(model_dir, 1)
    first = step(p0, frame(0), None, now(0)).intent
    assert p1.receive_intent(replace(first, tick=2 ** 64 - 1), now(0)) is None   # no clock yet
    modes = [step(p1, frame(0), first, now(0, 0.01)).mode]
    for i in range(1, 6):
        o0 = step(p0, frame(i), None, now(i))
        modes.append(step(p1, frame(i), o0.intent, now(i, 0.01)).mode)
    assert modes == [Mode.FRESH] * 6
    assert p1.reject_counts['intent_future_tick'] == 1 and p1.reject_counts['intent_repeat'] == 0


def wall(i: int, extra: float = 0.0) -> int:
    """This host's wall clock (ns) when frame i arrives: its capture time plus a little."""
    return int(round((T0 + i * DT + 0.01 + extra) * 1e9))


def test_a_frame_stamped_in_the_future_is_refused_and_real_frames_keep_counting(model_dir):
    """Issue 15 hole 4: a +1 h stamp was planned on, then every real frame was out of order and
    the robot stopped as stale although frames kept arriving."""
    p0 = pipe(model_dir, 0)
    assert p0.on_frame(frame(0), now(0), wall(0))[0].mode == Mode.FRESH
    ahead = MocapSample.from_planar(T0 + DT + 3600.0, POSES, frame_number=77)
    assert p0.on_frame(ahead, now(1), wall(1)) == []
    assert p0.reject_counts['mocap_future'] == 1
    outs = [p0.on_frame(frame(i), now(i), wall(i))[0] for i in range(1, 5)]
    assert [o.mode for o in outs] == [Mode.FRESH] * 4 and p0.reject_counts['mocap_out_of_order'] == 0


def test_a_body_named_twice_in_a_frame_is_not_used(model_dir):
    """Issue 15 hole 4: duplicate names silently kept the first entry."""
    p0 = pipe(model_dir, 0)
    step(p0, frame(0), None, now(0))
    f = frame(1)
    twice = MocapSample(f.stamp_ns, f.frame_number, f.names + ('box',),
                        np.vstack([f.positions, [[5.0, 1.0, 0.0]]]),
                        np.vstack([f.orientations, [[0.0, 0.0, 0.0, 1.0]]]), f.tracked + (True,))
    out = step(p0, twice, None, now(1))
    assert out.mode == Mode.FRESH                      # the box is held from tick 0 ...
    assert p0.reject_counts['mocap_duplicate_body'] == 1
    assert p0._held['box'].stamp_ns == frame(0).stamp_ns    # ... not taken from either entry


def test_a_body_that_jumps_is_refused_by_the_agent_itself(model_dir):
    """Issue 15 hole 4: the agent had no jump check of its own; any node may publish on
    /mocap/frame."""
    p0 = pipe(model_dir, 0)
    step(p0, frame(0), None, now(0))
    teleported = {**POSES, 'box': (POSES['box'][0] + 2.0, POSES['box'][1], 0.0)}  # 2 m in 0.1 s
    step(p0, frame(1, poses=teleported), None, now(1))
    assert p0.reject_counts['mocap_jump'] == 1
    assert p0._held['box'].pose == POSES['box']
    own_jump = {**POSES, 'go2w_1': (POSES['go2w_1'][0] + 1.5, POSES['go2w_1'][1], 0.0)}
    assert p0.on_frame(frame(2, poses=own_jump), now(2)) == []    # no tick on a jumped own pose
    assert p0.reject_counts['mocap_jump'] == 2


# ---- watchdog -----------------------------------------------------------------------------------
def test_stale_mocap_stops_after_stale_timeout_then_recovers_from_standstill(model_dir):
    p0 = pipe(model_dir, 0)
    for i in range(6):
        last = step(p0, frame(i), None, now(i))
    assert np.abs(last.command).max() > 0.3                       # moving
    t_last = now(5)
    assert watch(p0, t_last + 0.29) is None
    out = watch(p0, t_last + 0.31)
    assert out.mode == Mode.STOPPED and out.stop and out.stop_key == 'stale_mocap'
    assert out.command.tolist() == [0.0, 0.0, 0.0] and out.intent is None
    assert 'no mocap frame for 0.31 s' in out.reason
    assert watch(p0, t_last + 0.35) is None               # one status per dt ...
    assert watch(p0, t_last + 0.42).mode == Mode.STOPPED  # ... while it lasts
    back = step(p0, frame(20), None, now(20))
    assert back.mode == Mode.FRESH
    assert np.all(np.abs(back.command) <= CommandLimits().acceleration * DT + 1e-12)


def test_own_body_untracked_starts_no_tick_and_stops_after_stale_timeout(model_dir):
    p1 = pipe(model_dir, 1)
    step(p1, frame(0), None, now(0))
    for j in range(1, 20):                   # frames keep coming, own body lost: no tick starts
        assert p1.on_frame(frame(j, untracked=['go2w_2']), now(j)) == []
        seen = p1.observe_frame(frame(j, untracked=['go2w_2']), now(j))
        assert not seen.usable and not seen.new and 'untracked' in seen.reason
        if now(j) - now(0) <= 0.3:
            assert watch(p1, now(j)) is None
    out = watch(p1, now(19, 0.01))
    assert out.stop_key == 'own_untracked' and 'own body go2w_2 not measured' in out.reason
    assert p1.reject_counts['mocap_untracked'] == 19
    direct = p1.tick(frame(30, untracked=['go2w_2']), now(30))   # a tick forced on such a frame
    assert direct.mode == Mode.STOPPED and direct.stop_key == 'own_untracked'


def test_teammate_and_box_are_held_briefly_then_the_robot_stops(model_dir):
    p0 = pipe(model_dir, 0)
    assert step(p0, frame(0), None, now(0)).mode == Mode.FRESH
    assert step(p0, frame(1, untracked=['box']), None, now(1)).mode == Mode.FRESH   # held 0.1 s
    assert step(p0, frame(3, untracked=['box']), None, now(3)).mode == Mode.FRESH   # held 0.3 s
    out = step(p0, frame(4, untracked=['box']), None, now(4))
    assert out.stop_key == 'body_lost' and 'body box not measured for 0.40 s' in out.reason
    fresh = pipe(model_dir, 0)
    out = step(fresh, frame(0, untracked=['go2w_2']), None, now(0))
    assert out.stop_key == 'body_lost' and 'no usable pose of body go2w_2 yet' in out.reason


def test_pose_outside_the_arena_stops_the_robot(model_dir):
    outside = {**POSES, 'go2w_1': (8.3, 0.4, 0.0)}
    out = step(pipe(model_dir, 0), frame(0, poses=outside), None, now(0))
    assert out.stop and out.stop_key == 'outside_arena'
    assert 'go2w_1 at (8.30, 0.40) outside the arena [0.0, 8.0] x [-2.5, 2.5]' in out.reason
    narrow = pipe(model_dir, 0, arena_bounds=(1.5, 6.0, -2.0, 2.0))
    assert step(narrow, frame(0), None, now(0)).stop_key == 'outside_arena'   # x = 1.15 < 1.5


def test_non_finite_model_output_stops_the_robot(model_dir):
    model, manifest = load_agent(model_dir, 0)
    broken = scaled_copy(model, 1.0, nan=True)
    p = AgentRuntime(settings(0), broken, manifest)
    out = step(p, frame(0), None, now(0))
    assert out.mode == Mode.STOPPED and out.stop_key == 'non_finite_plan'
    assert out.intent is None and out.command.tolist() == [0.0, 0.0, 0.0]


def test_an_exception_inside_the_tick_stops_the_robot_with_its_message(model_dir, monkeypatch):
    p = pipe(model_dir, 0)
    assert step(p, frame(0), None, now(0)).mode == Mode.FRESH

    def broken_plan(*args, **kwargs):
        raise RuntimeError('simulated planner failure')

    monkeypatch.setattr(p.controller.planner, 'plan', broken_plan)
    out = step(p, frame(1), None, now(1))
    assert out.stop_key == 'internal_error'
    assert out.reason == 'internal error: RuntimeError: simulated planner failure'
    assert [e.level for e in p.drain_events() if e.key == 'stop:internal_error'] == ['error']


def test_a_tick_is_planned_once(model_dir):
    p = pipe(model_dir, 0)
    step(p, frame(2), None, now(2))
    assert p.on_frame(frame(2, offset=0.03), now(2, 0.03)) == []   # not its tick's first frame
    again = p.tick(frame(2, offset=0.06), now(2, 0.06))            # forced: refused
    assert again.stop_key == 'tick_order'


# ---- commands -----------------------------------------------------------------------------------
def test_lower_deployment_limits_clamp_the_models_velocity_instead_of_rescaling_it(model_dir):
    slow = CommandLimits(vx=0.3, vy=0.1, wz=0.05)
    p = pipe(model_dir, 0, limits=slow)
    for i in range(12):
        out = step(p, frame(i), None, now(i))
        assert within_limits(out.command, slow)
    # the leader wants vx = 0.6 * 1.0 m/s: above the 0.3 limit, so the command saturates at it
    # (rescaling the model's meaning would give 0.6 * 0.3 = 0.18); the planner, planning over
    # what this robot's chain can execute, ends within a few % of the bound
    assert 0.28 <= out.command[0] <= 0.3 and -0.1 <= out.command[1] <= -0.095


def test_predicted_trajectory_integrates_the_planned_commands(model_dir):
    p = pipe(model_dir, 0)
    out = step(p, frame(0), None, now(0))
    commands = out.intent.actions[:9].reshape(3, 3).astype(np.float64)   # model units
    expected = integrate_plan(POSES['go2w_1'], commands * [1.0, 0.5, 0.5], DT)
    np.testing.assert_allclose(out.trajectory, expected, atol=1e-6)
    # the intent carries what the chain sends: its first step is this tick's command
    np.testing.assert_allclose(commands[0] * [1.0, 0.5, 0.5], out.command, atol=1e-6)


# ---- determinism (bag replay) -------------------------------------------------------------------
def _replay(model_dir: Path, seed: int):
    deliver = lambda i: i % 4 != 3       # noqa: E731 - some ticks lose the intent
    _, _, outs = run_pair(model_dir, 10, deliver=deliver, seed=seed)
    return [(o0.command, o1.command, o1.intent.latents, o1.intent.actions, o1.mode)
            for o0, o1 in outs]


def test_deterministic_mode_reproduces_commands_and_intents_bit_for_bit(model_dir):
    a, b = _replay(model_dir, seed=7), _replay(model_dir, seed=7)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    c = _replay(model_dir, seed=8)
    assert any(not np.array_equal(x[3], z[3]) for x, z in zip(a, c)), 'the seed must matter'


def test_replay_can_start_at_a_stale_mocap_stop(model_dir):
    """After a stale stop the pipeline forgets everything tied to the past (cache, warm start,
    filter, clock), and the planner is seeded from the tick: a replay starting there with a new
    pipeline reproduces the live commands exactly."""
    live = pipe(model_dir, 0)
    for i in range(5):
        step(live, frame(i), None, now(i))
    assert watch(live, now(4, 0.5)).stop_key == 'stale_mocap'
    replay = pipe(model_dir, 0)
    for i in range(30, 36):
        a = step(live, frame(i), None, now(i))
        b = step(replay, frame(i), None, now(i) + 1234.5)   # another clock: only stamps matter
        np.testing.assert_array_equal(a.command, b.command)
        np.testing.assert_array_equal(a.intent.latents, b.intent.latents)


def test_acceleration_limit_uses_the_ticks_capture_times(model_dir):
    p = pipe(model_dir, 0)
    acc = CommandLimits().acceleration
    prev, prev_stamp = np.zeros(3), None
    for i in (0, 1, 2, 4, 5):                         # tick 3's frame was lost: 0.2 s step
        out = step(p, frame(i), None, now(i))
        dt = DT if prev_stamp is None else (out.stamp_ns - prev_stamp) / 1e9
        assert np.all(np.abs(out.command - prev) <= acc * dt + 1e-9)
        prev, prev_stamp = out.command, out.stamp_ns
    assert abs(out.command[0] - 0.0) > 0.3


# ---- construction -------------------------------------------------------------------------------
def test_models_that_do_not_fit_the_robot_are_refused_at_start(tmp_path):
    fast = write_team(tmp_path / 'dt', dt=0.05)                 # the manifest fixes dt
    with pytest.raises(AgentError, match=r'a chain of 2 robots needs 55.0 ms to the last command '
                                         r'\(1 x \(plan 25.0 \+ hop 5.0 ms\) \+ plan\), more '
                                         r'than the 50 ms control period'):
        AgentRuntime.load(settings(1, plan_budget_ms=25.0, hop_budget_ms=5.0), fast)
    rt = AgentRuntime.load(settings(1, plan_budget_ms=20.0, hop_budget_ms=5.0), fast)
    assert rt.dt == 0.05 and rt.scheduler.deadline_s == pytest.approx(0.025)
    with pytest.raises(AgentError, match='no measured planning time'):
        AgentRuntime.load(settings(1, plan_budget_ms=0.0),
                          write_team(tmp_path / 'unmeasured', deployment={}))
    with pytest.raises(AgentError, match='lowpass_cutoff_hz 12.0 must be below the Nyquist'):
        AgentRuntime.load(settings(0, lowpass_cutoff_hz=12.0, plan_budget_ms=20.0,
                                   hop_budget_ms=5.0), fast)
    three = ('go2w_1', 'go2w_2', 'go2w_3')
    with pytest.raises(AgentError, match='team size mismatch: .* for 2 robots, the team has 3 '
                                         r'\(go2w_1, go2w_2, go2w_3\)'):
        AgentRuntime.load(settings(0, team=three), write_team(tmp_path / 'ok'))
    corrupt = write_team(tmp_path / 'corrupt')
    data = bytearray((corrupt / 'agent_1.pt').read_bytes())
    data[-10] ^= 0xFF
    (corrupt / 'agent_1.pt').write_bytes(bytes(data))
    with pytest.raises(AgentError, match='sha256'):
        AgentRuntime.load(settings(1), corrupt)
    AgentRuntime.load(settings(0), corrupt)          # robot 0 loads only its own, intact file
    with pytest.raises(AgentError, match='predecessor'):
        settings(1, predecessor='go2w_7')
    with pytest.raises(AgentError, match='robot_name'):
        settings(1, robot_name='go2w_1')


def test_a_model_whose_intent_exceeds_the_message_bounds_is_refused_at_start(tmp_path):
    from seqwm_agent.core.config import ModelConfig
    from seqwm_agent.core.world_model import WorldModel
    cfg = ModelConfig(obs_dim=model_config().obs_dim, num_agents=2, latent_dim=1024,
                      encoder_dim=8, hidden_dim=8, critic_dim=8, actor_dim=8)
    manifest = replace(make_manifest(), model=cfg)
    with pytest.raises(AgentError, match='latents .* more than Intent.msg allows \\(5440\\)'):
        AgentRuntime(settings(0), WorldModel(cfg), manifest)


def test_planner_overrides_replace_the_manifest_settings(model_dir):
    p = pipe(model_dir, 0, planner_overrides={'iterations': 2, 'early_stop': True})
    cfg = p.controller.planner.cfg
    assert cfg.iterations == 2 and cfg.early_stop
    assert cfg.num_samples == 128                               # from the manifest
    assert math.isclose(cfg.control_hz, 1 / DT)
    out = step(p, frame(0), None, now(0))
    assert 1 <= out.planner_iterations <= 2


def test_models_built_in_memory_match_the_saved_ones(model_dir):
    model, manifest = load_agent(model_dir, 1)
    direct = AgentRuntime(settings(1), make_models()[1], manifest)
    loaded = pipe(model_dir, 1)
    a = step(direct, frame(0), None, now(0))
    b = step(loaded, frame(0), None, now(0))
    np.testing.assert_array_equal(a.command, b.command)
