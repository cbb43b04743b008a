"""`IsaacGymEnv`: the `MultiQuadEnv` interface over an MQE-style Isaac Gym environment.

For the trainer's `--backend isaacgym` on a machine with NVIDIA Isaac Gym and the MQE package
(multi-agent quadruped environments: `mqe.envs.utils.make_mqe_env`). Isaac Gym is imported lazily
inside the constructor, so importing this module never needs it; without it the constructor
raises `IsaacGymUnavailable` (an ImportError) saying so.

NOT RUN HERE: none of the project's machines has Isaac Gym (it needs an NVIDIA GPU, Python <= 3.8
and a licence-gated download); this adapter is written against MQE's public interface and is
exercised in the tests only through a stand-in with the same interface.

What it maps (MQE -> ours):
  * actions: ours are (B, n, 3) in [-1, 1]; MQE's wrappers scale by their own action_scale. We
    pass commands scaled to OUR limits (vx 1.0, vy 0.5, wz 0.5 by default) divided by the
    wrapper's scale, so both back-ends mean the same physical command.
  * reward: MQE returns (B, n) per-agent rewards; ours is the team reward = mean over robots.
  * done: MQE returns one `done` flag and marks time-outs in `info['time_outs']` (legged_gym
    convention); ours splits it into terminated = done & ~time_out, truncated = time_out.
  * observations: MQE's own per-task observations (not ours: no spec names beyond `mqe[k]`);
    `final_obs` is MQE's observation after its internal reset (MQE does not expose the
    pre-reset one), flagged by info['final_obs_is_reset_obs'] = True.
  * success / collision: from `info` keys 'success' / 'collide' when the wrapper provides them,
    else zeros.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

import torch

from .config import TaskConfig, load_task_config
from .env import check_finite

MQE_TASKS = {'pushbox': 'go1pushbox', 'gate': 'go1gate', 'shepherd': 'go1sheep'}


class IsaacGymUnavailable(ImportError):
    """Isaac Gym (or MQE) is not installed on this machine."""


def _default_factory(task: str, num_envs: int, device: str, seed: int):
    """Build MQE's env: isaacgym must be imported before torch touches CUDA, and before MQE."""
    try:
        importlib.import_module('isaacgym')
    except ImportError as e:
        raise IsaacGymUnavailable(
            'the isaacgym backend needs NVIDIA Isaac Gym (python -c "import isaacgym" fails: '
            f'{e}); install Isaac Gym Preview 4 and MQE, or use the builtin backend') from None
    try:
        utils = importlib.import_module('mqe.envs.utils')
    except ImportError as e:
        raise IsaacGymUnavailable(f'the isaacgym backend needs the MQE package ({e})') from None

    def custom(cfg_cls):
        cfg_cls.env.num_envs = num_envs
        cfg_cls.seed = seed
        return cfg_cls

    env, _ = utils.make_mqe_env(MQE_TASKS[task], None, custom)
    return env


class IsaacGymEnv:
    """Same methods and return values as `MultiQuadEnv` (see the module docstring for the map).

    `factory(task, num_envs, device, seed) -> mqe_env` builds the wrapped environment; the
    default imports isaacgym and MQE. Tests pass a stand-in.
    """

    def __init__(self, task_cfg: TaskConfig | str | dict, num_envs: int = 1,
                 device: str = 'cuda:0', seed: int = 0, auto_reset: bool = True,
                 factory: Callable[..., Any] | None = None) -> None:
        self.cfg = load_task_config(task_cfg)
        self.task_name = self.cfg.name
        if self.task_name not in MQE_TASKS:
            raise ValueError(f'no MQE task for {self.task_name!r}')
        self.num_envs, self.num_robots = num_envs, self.cfg.num_robots
        self.device = torch.device(device)
        self.auto_reset = auto_reset            # MQE always resets finished envs itself
        self.env = (factory or _default_factory)(self.task_name, num_envs, device, seed)
        if getattr(self.env, 'num_agents', self.num_robots) != self.num_robots:
            raise ValueError(f'MQE env has {self.env.num_agents} agents, config wants '
                             f'{self.num_robots}')
        self.action_dim = 3
        self.action_limits = torch.tensor(self.cfg.action_limits, device=self.device)
        scale = getattr(self.env, 'action_scale', None)
        scale = torch.ones(3) if scale is None else torch.as_tensor(scale).reshape(-1, 3)[0]
        self._mqe_scale = scale.to(self.device, torch.float32)
        self.control_dt = float(getattr(self.env, 'dt', self.cfg.physics.control_dt))
        self.max_steps = self.cfg.max_steps
        self.obs_dim = int(self.env.observation_space.shape[0])
        self.episode_return = torch.zeros(num_envs, device=self.device)
        self.t = torch.zeros(num_envs, dtype=torch.long, device=self.device)

    def obs_spec(self) -> list[str]:
        return [f'mqe[{k}]' for k in range(self.obs_dim)]

    def reset(self) -> torch.Tensor:
        obs = self.env.reset()
        self.episode_return.zero_()
        self.t.zero_()
        return torch.as_tensor(obs, device=self.device).reshape(self.num_envs, self.num_robots, -1)

    def step(self, actions: torch.Tensor):
        actions = torch.as_tensor(actions, dtype=torch.float32, device=self.device)
        check_finite(actions, 'action')
        return self.step_commands(actions.clamp(-1.0, 1.0) * self.action_limits)

    def step_commands(self, cmd: torch.Tensor):
        cmd = torch.as_tensor(cmd, dtype=torch.float32, device=self.device)
        check_finite(cmd, 'command')
        lim = self.action_limits
        cmd = torch.maximum(torch.minimum(cmd, lim), -lim)
        obs, reward, done, info = self.env.step(cmd / self._mqe_scale)
        B, n = self.num_envs, self.num_robots
        obs = torch.as_tensor(obs, device=self.device).reshape(B, n, -1)
        reward = torch.as_tensor(reward, device=self.device, dtype=torch.float32)
        reward = reward.reshape(B, -1).mean(1)
        done = torch.as_tensor(done, device=self.device).reshape(B, -1).any(1)
        time_out = torch.as_tensor(info.get('time_outs', torch.zeros(B)),
                                   device=self.device).reshape(B).bool()
        self.t += 1
        self.episode_return += reward

        def flag(key: str) -> torch.Tensor:
            v = info.get(key)
            if v is None:
                return torch.zeros(B, dtype=torch.bool, device=self.device)
            return torch.as_tensor(v, device=self.device).reshape(B, -1).bool().any(1)

        out = {'success': flag('success'), 'collision': flag('collide'), 'final_obs': obs,
               'final_obs_is_reset_obs': True, 'episode_return': self.episode_return.clone(),
               'episode_length': self.t.clone()}
        self.episode_return = torch.where(done, torch.zeros_like(reward), self.episode_return)
        self.t = torch.where(done, torch.zeros_like(self.t), self.t)
        return obs, reward, done & ~time_out, done & time_out, out
