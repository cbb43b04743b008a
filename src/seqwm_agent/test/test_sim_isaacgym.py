"""The isaacgym back-end adapter: a clear error without Isaac Gym; the mapping, via a stand-in."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from seqwm_agent.sim.isaacgym_backend import IsaacGymEnv, IsaacGymUnavailable


@pytest.mark.skipif(importlib.util.find_spec('isaacgym') is not None,
                    reason='Isaac Gym is installed here')
def test_without_isaac_gym_the_backend_says_so():
    with pytest.raises(IsaacGymUnavailable, match='Isaac Gym'):
        IsaacGymEnv('pushbox', num_envs=2, device='cpu')
    assert issubclass(IsaacGymUnavailable, ImportError)


class _Box:
    def __init__(self, n: int) -> None:
        self.shape = (n,)


class StandInMQE:
    """What the adapter relies on in an MQE env (wrapper): reset, step, spaces, scales."""

    def __init__(self, num_envs: int, num_agents: int = 2) -> None:
        self.num_envs, self.num_agents = num_envs, num_agents
        self.observation_space = _Box(5)
        self.action_scale = torch.tensor([[[2.0, 0.5, 0.5]]]).repeat(num_envs, num_agents, 1)
        self.sent = []
        self.t = 0

    def reset(self):
        return torch.zeros(self.num_envs, self.num_agents, 5)

    def step(self, action):
        self.sent.append(action.clone())
        self.t += 1
        reward = torch.tensor([[1.0, 3.0], [0.0, 2.0]])
        done = torch.tensor([self.t == 2, self.t == 3])
        info = {'time_outs': torch.tensor([False, self.t == 3]),
                'success': torch.tensor([self.t == 2, False])}
        return torch.ones(self.num_envs, self.num_agents, 5), reward, done, info


def make(task, num_envs, device, seed):
    return StandInMQE(num_envs)


def test_adapter_maps_commands_rewards_and_episode_ends():
    env = IsaacGymEnv('pushbox', num_envs=2, device='cpu', factory=make)
    assert env.reset().shape == (2, 2, 5) and env.obs_dim == 5
    actions = torch.tensor([[[1.0, 1.0, -1.0], [0.5, 0.0, 0.0]]]).repeat(2, 1, 1)
    _, rew, term, trunc, info = env.step(actions)
    # our full-scale action = 1 m/s; MQE's scale is 2, so MQE receives 0.5
    assert torch.allclose(env.env.sent[0][0, 0], torch.tensor([0.5, 1.0, -1.0]))
    assert rew.tolist() == [2.0, 1.0]                      # team reward = mean over robots
    assert not term.any() and not trunc.any()
    _, _, term, trunc, info = env.step(actions)
    assert term.tolist() == [True, False] and info['success'].tolist() == [True, False]
    _, _, term, trunc, info = env.step(actions)
    assert term.tolist() == [False, False] and trunc.tolist() == [False, True]
    assert info['final_obs_is_reset_obs']


def test_adapter_rejects_nan_like_the_builtin_env():
    env = IsaacGymEnv('gate', num_envs=2, device='cpu', factory=make)
    bad = torch.zeros(2, 2, 3)
    bad[1, 0, 1] = float('nan')
    with pytest.raises(ValueError, match='env 1 robot 0'):
        env.step(bad)
