"""MultiQuadEnv as the trainer uses it: seeding, input checks, episode ends, auto-reset, rewards."""
from __future__ import annotations

import pytest
import torch

from seqwm_agent.sim import MultiQuadEnv, load_task_config


def rollout(env: MultiQuadEnv, steps: int, seed: int = 0) -> list:
    """Random actions from a separate generator; returns everything the env produced."""
    g = torch.Generator().manual_seed(seed)
    out = [env.reset()]
    for _ in range(steps):
        a = torch.rand(env.num_envs, env.num_robots, 3, generator=g) * 2 - 1
        obs, rew, term, trunc, info = env.step(a)
        out += [obs, rew, term, trunc, info['final_obs'], info['success'], info['collision']]
    return out


@pytest.mark.parametrize('task', ['pushbox', 'gate', 'shepherd'])
def test_a_seed_reproduces_bit_identically_and_another_seed_differs(task: str):
    # short episodes so that auto-resets (re-randomisation) happen within the rollout
    cfg = load_task_config(task, overrides={'episode_s': 2.0})
    a = rollout(MultiQuadEnv(cfg, num_envs=6, seed=11), 45)
    b = rollout(MultiQuadEnv(cfg, num_envs=6, seed=11), 45)
    c = rollout(MultiQuadEnv(cfg, num_envs=6, seed=12), 45)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])                          # other start states
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_reset_with_a_seed_restarts_the_same_episodes():
    env = MultiQuadEnv('pushbox', num_envs=4, seed=0)
    first = env.reset(seed=5)
    rollout_a = [env.step(torch.zeros(4, 2, 3))[0] for _ in range(5)]
    again = env.reset(seed=5)
    rollout_b = [env.step(torch.zeros(4, 2, 3))[0] for _ in range(5)]
    assert torch.equal(first, again)
    assert all(torch.equal(x, y) for x, y in zip(rollout_a, rollout_b))


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_non_finite_actions_are_rejected_naming_env_and_robot(bad: float):
    env = MultiQuadEnv('gate', num_envs=4, seed=0)
    before = env.snapshot().robots.clone()
    actions = torch.zeros(4, 2, 3)
    actions[2, 1, 0] = bad
    with pytest.raises(ValueError, match=r'action for env 2 robot 1 is not finite'):
        env.step(actions)
    cmd = torch.zeros(4, 2, 3)
    cmd[3, 0, 2] = bad
    with pytest.raises(ValueError, match=r'command for env 3 robot 0 is not finite'):
        env.step_commands(cmd)
    assert torch.equal(env.snapshot().robots, before)           # nothing was stepped
    assert int(env.t.sum()) == 0


def test_wrong_action_shapes_are_rejected():
    env = MultiQuadEnv('pushbox', num_envs=2)
    with pytest.raises(ValueError, match=r'shape \(2, 2, 3\)'):
        env.step(torch.zeros(2, 3))


def test_time_out_is_truncated_not_terminated_and_final_obs_is_the_last_state():
    cfg = load_task_config('pushbox', overrides={'episode_s': 1.0})   # 10 control steps
    env = MultiQuadEnv(cfg, num_envs=3, seed=0)
    start = env.reset()
    total = torch.zeros(3)
    for k in range(1, 11):
        obs, rew, term, trunc, info = env.step(torch.full((3, 2, 3), 0.5))
        total += rew
        if k < 10:
            assert not trunc.any() and not term.any()
            assert torch.equal(info['final_obs'], obs)
    assert trunc.all() and not term.any()
    assert (info['episode_length'] == 10).all()
    assert torch.allclose(info['episode_return'], total)
    # the returned obs already belongs to the next episode, final_obs to the one that ended
    assert not torch.allclose(obs, info['final_obs'])
    assert obs.shape == info['final_obs'].shape == start.shape
    assert (env.t == 0).all() and (env.episode_return == 0).all()


def test_success_terminates_with_the_bonus_and_is_not_truncated():
    env = MultiQuadEnv('pushbox', num_envs=2, seed=0)
    snap = env.snapshot()
    box = torch.cat((snap.target[:, 0] + torch.tensor([0.1, 0.0]), torch.zeros(2, 1)), -1)
    box[1, 0] += 2.0                                                  # env 1: far from target
    env.set_state(box=box)
    obs, rew, term, trunc, info = env.step(torch.zeros(2, 2, 3))
    assert term.tolist() == [True, False] and not trunc.any()
    assert info['success'].tolist() == [True, False]
    assert rew[0] >= env.cfg.reward.success_bonus - 1.0
    assert rew[1].abs() <= 1.0
    assert not torch.equal(info['final_obs'][0], obs[0])              # env 0 auto-reset
    assert torch.equal(info['final_obs'][1], obs[1])


def test_without_auto_reset_a_finished_environment_stays_put():
    env = MultiQuadEnv('pushbox', num_envs=1, seed=0, auto_reset=False)
    snap = env.snapshot()
    box = torch.cat((snap.target[:, 0], torch.zeros(1, 1)), -1)
    env.set_state(box=box)
    _, _, term, _, _ = env.step(torch.zeros(1, 2, 3))
    assert term.item()
    assert torch.allclose(env.snapshot().box, box, atol=1e-6)


@pytest.mark.parametrize('task', ['pushbox', 'gate', 'shepherd'])
def test_shaped_rewards_stay_within_minus_one_and_one_apart_from_bonus_and_contact_cost(task: str):
    cfg = load_task_config(task, overrides={'episode_s': 4.0})
    env = MultiQuadEnv(cfg, num_envs=64, seed=1)
    g = torch.Generator().manual_seed(1)
    cost = getattr(cfg.reward, 'contact_cost', 0.0)      # Gate: paid outside the clip
    for _ in range(60):
        a = torch.rand(64, cfg.num_robots, 3, generator=g) * 2 - 1
        _, rew, _, _, info = env.step(a)
        shaped = (rew - cfg.reward.success_bonus * info['success'].float()
                  + cost * info['collision'].float())
        assert (shaped.abs() <= 1.0 + 1e-6).all()
        assert torch.isfinite(rew).all()


def test_collision_flags_are_reported_per_robot_and_per_env():
    env = MultiQuadEnv(load_task_config('shepherd', overrides={'randomize': False}),
                       num_envs=2, seed=0)
    robots = env.snapshot().robots.clone()
    robots[0, 0, :2] = torch.tensor([3.0, 1.0])
    robots[0, 1, :2] = torch.tensor([3.5, 1.0])          # env 0: 0.5 m apart, discs overlap
    env.set_state(robots=robots)
    _, _, _, _, info = env.step(torch.zeros(2, 2, 3))
    assert info['collision'].tolist() == [True, False]
    assert info['collision_robot'][0].tolist() == [True, True]


@pytest.mark.skipif(__import__('seqwm_agent.core.compiled', fromlist=['x'])
                    .compile_unavailable_reason() is not None, reason='torch.compile unavailable')
@pytest.mark.parametrize('task', ['pushbox', 'gate', 'shepherd'])
def test_compiled_physics_follows_the_eager_physics_through_contacts_and_resets(task: str):
    # short episodes so that every env resets inside the window; strong random commands so
    # that robots collide and push
    cfg = load_task_config(task, overrides={'episode_s': 2.0})
    eager, fast = (MultiQuadEnv(cfg, 24, seed=4, compile=m) for m in ('off', 'on'))
    g = torch.Generator().manual_seed(0)
    resets = 0
    for _ in range(45):
        a = torch.rand(24, eager.num_robots, 3, generator=g) * 2 - 1
        (o1, r1, te1, tr1, _), (o2, r2, te2, tr2, _) = eager.step(a), fast.step(a)
        # contact is a threshold: float32 reordering could flip a grazing contact, so a
        # tolerance on the states, exact on the episode bookkeeping
        torch.testing.assert_close(o2, o1, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(r2, r1, rtol=1e-4, atol=1e-4)
        assert torch.equal(te1, te2) and torch.equal(tr1, tr2)
        resets += int((te1 | tr1).sum())
    assert resets >= 24
    assert fast.world._substep.active
