"""The simulator as a TorchRL env, and the MAPPO / IPPO baselines built on it (issue #16)."""
from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from seqwm_agent.baselines.cli import main as baseline_main
from seqwm_agent.baselines.env import GROUP, MultiQuadTorchRLEnv, default_chain
from seqwm_agent.baselines.policy import NetConfig, PolicyTeam, build_actor, build_critic, \
    load_policy
from seqwm_agent.baselines.ppo import PPOConfig, PPOTrainer
from seqwm_agent.core.command import CommandChain
from seqwm_agent.sim import MultiQuadEnv, load_task_config


@pytest.mark.parametrize('task,robots', [('pushbox', 2), ('gate', 2), ('gate', 3), ('gate', 5),
                                         ('shepherd', 2)])
def test_torchrl_spec_check_passes_for_every_task_and_team_size(task, robots):
    env = MultiQuadTorchRLEnv(task, num_envs=4, num_robots=robots, seed=3)
    check_env_specs(env, seed=5)
    td = env.reset()
    assert td.get((GROUP, 'observation')).shape == (4, robots, env.sim.obs_dim)
    assert env.full_action_spec[GROUP, 'action'].shape == (4, robots, 3)
    assert env.full_reward_spec[GROUP, 'reward'].shape == (4, robots, 1)
    assert set(env.done_keys) == {'done', 'terminated', 'truncated'}


def _direct(task, robots, B, seed, actions):
    """The simulator stepped directly (auto-reset) with each robot's command chain, as the
    trainer and the robots run it: the first observation and per step (obs, reward,
    terminated, truncated)."""
    sim = MultiQuadEnv(load_task_config(task, {'num_robots': robots}), B, seed=seed)
    cs = default_chain(sim.cfg)
    chain = CommandChain(cs.limits, cs.cutoff_hz, cs.rate_hz, B * robots,
                         list(sim.cfg.action_limits))
    first = sim.reset()
    steps = []
    for a in actions:
        cmd, _ = chain.step_batch(a.reshape(-1, 3))
        obs, r, term, trunc, _ = sim.step_commands(cmd.view(B, robots, 3).float())
        chain.stop((term | trunc).repeat_interleave(robots))
        steps.append((obs, r, term, trunc))
    return first, steps


def test_a_torchrl_rollout_is_the_simulator_stepped_directly_for_a_seed_and_actions():
    B, T, n = 6, 90, 3     # Gate, 3 robots driving forward: the outer two hit the wall (ends)
    g = torch.Generator().manual_seed(0)
    actions = [torch.cat([torch.ones(B, n, 1), torch.rand(B, n, 2, generator=g) * 2 - 1], -1)
               for _ in range(T)]
    first, direct = _direct('gate', n, B, 11, actions)
    env = MultiQuadTorchRLEnv('gate', B, n, seed=11)
    td = env.reset()
    assert torch.equal(td.get((GROUP, 'observation')), first)
    ends = 0
    for t, a in enumerate(actions):
        td.set((GROUP, 'action'), a)
        td, td_next = env.step_and_maybe_reset(td)
        obs, r, term, trunc = direct[t]
        nxt = td.get('next')
        assert torch.equal(nxt.get('terminated').squeeze(-1), term)
        assert torch.equal(nxt.get('truncated').squeeze(-1), trunc)
        assert torch.allclose(nxt.get((GROUP, 'reward'))[..., 0], r[:, None].expand(B, n))
        # after a reset the next observation is the new episode's, as with auto-reset
        assert torch.equal(td_next.get((GROUP, 'observation')), obs), f'step {t}'
        ends += int((term | trunc).sum())
        td = td_next
    assert ends >= B, 'the comparison must cover episodes that ended and restarted'


def test_the_env_executes_the_command_chain_not_the_raw_action():
    env = MultiQuadTorchRLEnv('pushbox', 2, seed=0)
    raw = MultiQuadTorchRLEnv('pushbox', 2, seed=0, raw_actions=True)
    for e in (env, raw):
        td = e.reset()
        td.set((GROUP, 'action'), torch.ones(2, 2, 3))
        e.step(td)
    # full-scale action from rest: the raw env commands 1 m/s at once, the chain ramps up
    lim = env.chain_settings.limits
    assert float(env.chain.state.last[:, 0].max()) <= lim.ax * env.sim.control_dt + 1e-9
    assert float(raw.sim.prev_cmd[:, :2, 0].min()) == pytest.approx(1.0)


def test_mappo_critic_reads_every_robot_and_ippo_only_its_own():
    net = NetConfig(obs_dim=5, num_agents=3, hidden=16, depth=1)
    obs = torch.randn(4, 3, 5)
    moved = obs.clone()
    moved[:, 2] += 1.0
    for algo, coupled in (('mappo', True), ('ippo', False)):
        critic = build_critic(net, algo)
        v = [critic(TensorDict({GROUP: TensorDict({'observation': o}, batch_size=(4, 3))},
                               batch_size=(4,))).get((GROUP, 'state_value')) for o in (obs, moved)]
        assert (not torch.allclose(v[0][:, 0], v[1][:, 0])) is coupled, algo


def test_a_robot_acts_on_its_own_observation_only():
    actor = build_actor(NetConfig(obs_dim=5, num_agents=3, hidden=16, depth=1))
    team = PolicyTeam(actor, 3, default_chain(MultiQuadEnv('gate').cfg), [1.0, 0.5, 0.5], 4)
    obs = torch.randn(4, 3, 5)
    moved = obs.clone()
    moved[:, 1] += 1.0
    a, b = team.actions(obs), team.actions(moved)
    assert torch.equal(a[:, 0], b[:, 0]) and torch.equal(a[:, 2], b[:, 2])
    assert not torch.equal(a[:, 1], b[:, 1])
    assert bool((a.abs() <= 1.0).all())


def test_baseline_settings_are_checked_with_their_names():
    with pytest.raises(ValueError, match='unknown baseline setting'):
        PPOConfig.from_dict({'learning_rate': 1e-3})
    with pytest.raises(ValueError, match='algo must be one of'):
        PPOConfig(algo='hasac')
    with pytest.raises(ValueError, match='num_envs must be a positive integer'):
        PPOConfig(num_envs=0)


@pytest.mark.parametrize('algo', ['mappo', 'ippo'])
def test_a_few_ppo_iterations_give_finite_losses_and_an_evaluable_model_dir(tmp_path, algo):
    torch.set_num_threads(1)
    cfg = PPOConfig(algo=algo, num_envs=16, rollout_steps=10, epochs=2, minibatch_size=80,
                    hidden=32, total_env_steps=16 * 10 * 3, eval_every_env_steps=16 * 10 * 2,
                    eval_episodes=4, max_wall_s=0)
    out = tmp_path / algo
    result = PPOTrainer('gate', cfg, out, progress=False).run()
    assert result['env_steps'] == 480 and result['updates'] == 3 * 2 * 2
    records = [json.loads(x) for x in (out / 'metrics.jsonl').read_text().splitlines()]
    train = [r for r in records if r['kind'] == 'train']
    assert len(train) == 3
    for r in train:
        for k in ('loss_objective', 'loss_critic', 'loss_entropy', 'grad_norm'):
            assert math.isfinite(r[k]), (k, r)
    assert [r['env_steps'] for r in records if r['kind'] == 'eval'] == [320, 480]
    assert (out / 'learning_curve.png').stat().st_size > 0
    actor, doc = load_policy(out)
    assert doc['algo'] == algo and doc['training']['config']['num_envs'] == 16
    assert baseline_main(['eval', str(out), '--episodes', '3']) == 0
    ev = yaml.safe_load((out / 'manifest.yaml').read_text())['evaluation']
    assert ev['form'] == 'deployed' and ev['episodes'] == 3 and ev['chain']['cutoff_hz'] == 2.0
    assert 0.0 <= ev['results'][0]['success_rate'] <= 1.0


def test_a_changed_policy_file_is_refused(tmp_path):
    cfg = PPOConfig(num_envs=8, rollout_steps=5, epochs=1, minibatch_size=40, hidden=16,
                    total_env_steps=40, eval_every_env_steps=10**6, eval_episodes=2, max_wall_s=0)
    PPOTrainer('pushbox', cfg, tmp_path, progress=False).run()
    (tmp_path / 'policy.pt').write_bytes((tmp_path / 'policy.pt').read_bytes() + b'x')
    with pytest.raises(ValueError, match='does not match its manifest'):
        load_policy(tmp_path)
    assert baseline_main(['eval', str(tmp_path)]) == 2


def test_seqwm_eval_points_a_baseline_dir_to_seqwm_baseline(tmp_path, capsys):
    from seqwm_agent.train.evaluate import main as eval_main
    cfg = PPOConfig(num_envs=8, rollout_steps=5, epochs=1, minibatch_size=40, hidden=16,
                    total_env_steps=40, eval_every_env_steps=10**6, eval_episodes=2, max_wall_s=0)
    PPOTrainer('pushbox', cfg, tmp_path, progress=False).run()
    assert eval_main([str(tmp_path), '--episodes', '2']) == 2
    assert 'evaluate it with seqwm-baseline eval' in capsys.readouterr().err
