"""The batched Multi-Quad simulator as a TorchRL multi-agent environment.

`MultiQuadTorchRLEnv` is `sim.MultiQuadEnv` behind TorchRL's `EnvBase`, with the robots' command
chain in the loop exactly as the trainer and the robots run it: the policy's action (B, n, 3) in
[-1, 1] goes through each robot's `CommandChain` (scale -> low-pass -> acceleration limit ->
clamp) and the chain's command is what the simulator executes. Keys (TorchRL's multi-agent
conventions, one agent group named `agents`):

    ("agents", "observation")   (B, n, obs_dim)  each robot's own ego-centric observation
    ("agents", "action")        (B, n, 3)        normalised vx, vy, wz in [-1, 1]
    ("agents", "reward")        (B, n, 1)        the team reward, given to every robot
    "done", "terminated", "truncated"  (B, 1)    the team's episode (it ends for all at once)
    "success"                   (B, 1)           the task's success flag of this step

Partial resets follow TorchRL's `"_reset"` mask; a finished environment is re-drawn by the
simulator's own generator, so a rollout here is the simulator stepped directly with auto-reset
(tests pin trajectories equal for a seed and an action sequence). The policy never sees the
chain's state, as a planner on a robot does not.
"""
from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from ..core.command import ChainSettings, CommandChain
from ..sim import MultiQuadEnv, load_task_config

GROUP = 'agents'


def default_chain(task_cfg: Any) -> ChainSettings:
    """The chain a robot runs for this task when nothing else is configured: the robots'
    default limits and 2 Hz low-pass at the task's velocity limits and control rate (the same
    settings `seqwm-train` records in a manifest's `training.command_chain`)."""
    from ..train.evaluate import chain_settings_of
    return chain_settings_of(None, task_cfg, task_cfg.physics.control_dt)


class MultiQuadTorchRLEnv(EnvBase):
    """B Multi-Quad environments of one task and team size as one TorchRL env (batch_size [B]).

    `task`: a task name, YAML path, `task:` dict or TaskConfig; `num_robots` overrides the
    task's team size (Gate: 2-5). `chain`: the robots' command chain (default `default_chain`);
    `chain=None` with `raw_actions=True` sends actions straight to the simulator (a diagnostic:
    no robot runs it)."""

    batch_locked = True

    def __init__(self, task: Any = 'pushbox', num_envs: int = 64, num_robots: int | None = None,
                 device: torch.device | str = 'cpu', seed: int = 0,
                 chain: ChainSettings | None = None, raw_actions: bool = False) -> None:
        cfg = load_task_config(task, {'num_robots': num_robots} if num_robots else None)
        super().__init__(device=torch.device(device), batch_size=torch.Size([num_envs]))
        self.sim = MultiQuadEnv(cfg, num_envs, device, seed=seed, auto_reset=False)
        self.task_cfg = self.sim.cfg
        self.n_agents = self.sim.num_robots
        self.raw_actions = raw_actions
        self.chain_settings = None if raw_actions else (chain or default_chain(self.task_cfg))
        self.chain = None if raw_actions else CommandChain(
            self.chain_settings.limits, self.chain_settings.cutoff_hz,
            self.chain_settings.rate_hz, num_envs * self.n_agents,
            list(self.task_cfg.action_limits), device)
        self._make_specs()

    def _make_specs(self) -> None:
        B, n, d = self.batch_size[0], self.n_agents, self.sim.obs_dim
        dev = self.device
        self.observation_spec = Composite(
            {GROUP: Composite({'observation': Unbounded((B, n, d), device=dev)},
                              shape=(B, n), device=dev),
             'success': Categorical(2, (B, 1), dtype=torch.bool, device=dev)},
            shape=(B,), device=dev)
        self.action_spec = Composite(
            {GROUP: Composite({'action': Bounded(-1.0, 1.0, (B, n, 3), device=dev)},
                              shape=(B, n), device=dev)}, shape=(B,), device=dev)
        self.reward_spec = Composite(
            {GROUP: Composite({'reward': Unbounded((B, n, 1), device=dev)},
                              shape=(B, n), device=dev)}, shape=(B,), device=dev)
        self.done_spec = Composite(
            {k: Categorical(2, (B, 1), dtype=torch.bool, device=dev)
             for k in ('done', 'terminated', 'truncated')}, shape=(B,), device=dev)

    @property
    def obs_spec_names(self) -> list[str]:
        """Every observation element's name (the simulator's `obs_spec`)."""
        return self.sim.obs_spec()

    # ---- EnvBase ------------------------------------------------------------------------------
    def _reset(self, tensordict: TensorDictBase | None = None, **_: Any) -> TensorDictBase:
        mask = None
        if tensordict is not None and '_reset' in tensordict.keys():
            mask = tensordict.get('_reset').reshape(-1).to(self.device, torch.bool)
        obs = self.sim.reset(mask)
        if self.chain is not None:
            self.chain.stop(None if mask is None else mask.repeat_interleave(self.n_agents))
        B = self.batch_size[0]
        false = torch.zeros(B, 1, dtype=torch.bool, device=self.device)
        return TensorDict({GROUP: TensorDict({'observation': obs}, batch_size=(B, self.n_agents)),
                           'success': false, 'done': false.clone(),
                           'terminated': false.clone(), 'truncated': false.clone()},
                          batch_size=self.batch_size, device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get((GROUP, 'action'))
        B, n = self.batch_size[0], self.n_agents
        if self.chain is None:
            obs, reward, term, trunc, info = self.sim.step(action)
        else:
            cmd, _ = self.chain.step_batch(action.reshape(B * n, 3))
            obs, reward, term, trunc, info = self.sim.step_commands(cmd.view(B, n, 3).float())
        r = reward.to(torch.float32)[:, None, None].expand(B, n, 1)
        return TensorDict({GROUP: TensorDict({'observation': obs, 'reward': r.clone()},
                                             batch_size=(B, n)),
                           'success': info['success'][:, None],
                           'done': (term | trunc)[:, None], 'terminated': term[:, None],
                           'truncated': trunc[:, None]},
                          batch_size=self.batch_size, device=self.device)

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None:
            self.sim.generator.manual_seed(int(seed))
