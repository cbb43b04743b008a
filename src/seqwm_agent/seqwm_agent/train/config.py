"""Training configuration: the `train:` section of a task YAML, as one validated dataclass.

Defaults are the paper's Table 3 (loss coefficients, rho, lr, encoder lr scale, n-step return,
entropy coefficient, buffer size) and the paper code's defaults (grad clip
20, Polyak 0.01, 5-95 percentile Q scale with EMA 0.99). Batch size and the collection scheme
are sized for a CPU (docs/trainer.md says why).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..core.compiled import COMPILE_MODES
from ..core.config import ConfigError, ModelConfig, PlannerConfig
from ..core.validate import build, choice, integer, number
from ..runtime.team import LinkConfig

COMM_MODES = ('seq', 'dec', 'cen')


@dataclass
class TrainConfig:
    """One training run. `model` / `planner` / `eval_planner` / `collect_planner` are the core's
    ModelConfig / PlannerConfig keys (obs_dim and num_agents come from the task)."""

    seed: int = 0
    comm: str = 'seq'                   # seq | dec (no message) | cen (all others' slots)
    num_envs: int = 512                 # parallel envs stepped with the actor (+ noise)
    total_env_steps: int = 2_000_000    # team transitions (one per env per control tick)
    max_wall_s: float = 0.0             # stop after this much training wall time (excl. eval; 0: none)
    warmup_env_steps: int = 20_000      # uniformly random actions first
    pretrain_updates: int = 200         # burst of updates when warm-up ends
    updates_per_env_step: float = 1 / 64   # UTD ratio (updates per team transition)
    batch_size: int = 256
    buffer_size: int = 1_000_000
    horizon: int = 3                    # H of Eq. 3 (= planner horizon)
    td_steps: int = 20                  # n-step return (Table 3)
    discount: float = 0.99              # gamma (= planner.discount)
    lr: float = 5e-4
    encoder_lr_scale: float = 0.3
    grad_clip: float = 20.0
    dynamics_coef: float = 20.0
    reward_coef: float = 0.1
    q_coef: float = 0.1
    termination_coef: float = 1.0       # BCE of the termination head (models with model.termination)
    rho: float = 0.5
    entropy_coef: float = 1e-4
    tau: float = 0.01                   # Polyak rate of the target critics
    scale_tau: float = 0.99             # EMA of the 5-95 percentile Q range (Eq. 15)
    mask_prob: float = 0.1              # each predecessor slot masked with this probability
    shuffle_prob: float = 0.1           # the update order is a random permutation this often
    explore_std: float = 0.3            # Gaussian noise added to the actor's sampled action
    plan_envs: int = 16                 # envs acting with the planner (collect_planner)
    plan_every: int = 8                 # ... stepped once every this many actor steps (0: never)
    eval_every_env_steps: int = 200_000
    eval_episodes: int = 20             # periodic planner evaluation (eval_planner)
    checkpoint_every_s: float = 300.0   # resumable checkpoint period (wall time)
    compile: str = 'auto'               # torch.compile the update: auto (eager fallback) | on | off
    model: dict[str, Any] = field(default_factory=dict)
    planner: dict[str, Any] = field(default_factory=dict)          # deployment / final eval
    eval_planner: dict[str, Any] = field(default_factory=lambda: {
        'num_samples': 128, 'num_pi_trajs': 24, 'num_elites': 32, 'iterations': 3})
    collect_planner: dict[str, Any] = field(default_factory=lambda: {
        'num_samples': 128, 'num_pi_trajs': 24, 'num_elites': 32, 'iterations': 3})
    # the intent link collection simulates (runtime.team.LinkConfig keys: plan_ms, hop_ms,
    # loss, cache_max_age_ticks, budget_ms): the forms (fresh / cached / masked) every agent is
    # trained on come from it, as the deployed link produces them
    link: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        b = 'train'
        choice(f'{b}.comm', self.comm, COMM_MODES)
        choice(f'{b}.compile', self.compile, COMPILE_MODES)
        for name in ('num_envs', 'total_env_steps', 'batch_size', 'buffer_size', 'horizon',
                     'td_steps', 'eval_episodes'):
            integer(f'{b}.{name}', getattr(self, name), 1)
        for name in ('warmup_env_steps', 'pretrain_updates', 'plan_envs', 'plan_every',
                     'eval_every_env_steps', 'seed'):
            integer(f'{b}.{name}', getattr(self, name), 0)
        for name in ('mask_prob', 'shuffle_prob', 'rho', 'tau', 'scale_tau'):
            number(f'{b}.{name}', getattr(self, name), 0.0, 1.0)
        number(f'{b}.discount', self.discount, 0.0, 1.0, lo_open=True)
        for name in ('updates_per_env_step', 'lr', 'grad_clip', 'encoder_lr_scale'):
            number(f'{b}.{name}', getattr(self, name), 0.0, lo_open=True)
        for name in ('dynamics_coef', 'reward_coef', 'q_coef', 'termination_coef', 'entropy_coef',
                     'explore_std', 'max_wall_s', 'checkpoint_every_s'):
            number(f'{b}.{name}', getattr(self, name), 0.0)
        self.link_config()        # validate the link and planner blocks now, with their names
        self.planner_config()
        self.planner_config('eval_planner')
        self.planner_config('collect_planner')

    def model_config(self, obs_dim: int, num_agents: int, action_dim: int = 3) -> ModelConfig:
        data = {'obs_dim': obs_dim, 'num_agents': num_agents, 'action_dim': action_dim}
        data.update(self.model)
        return ModelConfig.from_dict(data)

    def planner_config(self, which: str = 'planner') -> PlannerConfig:
        """Deployment planner (`planner`), or it with `eval_planner` / `collect_planner` on top."""
        data = {'horizon': self.horizon, 'discount': self.discount}
        data.update(self.planner)
        if which != 'planner':
            data.update(getattr(self, which))
        try:
            return PlannerConfig.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f'train.{which}: {exc}') from None

    def link_config(self) -> LinkConfig:
        """The simulated intent link of collection (`link`), as a LinkConfig."""
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in self.link.items()}
        try:
            return LinkConfig(**data)
        except ConfigError as exc:
            raise ConfigError(f'train.{exc}') from None
        except TypeError as exc:
            raise ConfigError(f'train.link: {exc}') from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TrainConfig:
        return build(cls, dict(data or {}), 'train')

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_train_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """The `train:` section of a task YAML (missing section: all defaults), with overrides."""
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    data = dict(doc.get('train') or {})
    data.update(overrides or {})
    return TrainConfig.from_dict(data)
