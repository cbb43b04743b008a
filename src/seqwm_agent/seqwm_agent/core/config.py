"""Configuration blocks of the core: world-model widths and planner settings.

Each block is a small dataclass, validated once at construction (validate.py, the helper every
config dataclass uses), loadable from a YAML mapping (`from_dict`) and writable back to one
(`to_dict`, used by the checkpoint manifest). Unknown keys are refused so a misspelt YAML key
fails loudly instead of silently keeping a default.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, TypeVar

from .command import CUTOFF_HZ
from .validate import ConfigError, build, integer, number

T = TypeVar('T')


def _from_dict(cls: type[T], data: Mapping[str, Any], block: str) -> T:
    return build(cls, data, block)


def _check_int(block: str, name: str, value: Any, low: int, high: int | None = None) -> None:
    integer(f'{block}.{name}', value, low, high)


def _check_float(block: str, name: str, value: Any, low: float, high: float,
                 low_open: bool = False, high_open: bool = False) -> None:
    number(f'{block}.{name}', value, low, high, low_open, high_open)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of one agent's world model (paper Eq. 2, App. B.2).

    Defaults are the quadruped-task widths chosen for single-core planning latency
    (docs/core.md explains the choice); `obs_dim` and `num_agents` come from the task.
    """

    obs_dim: int
    action_dim: int = 3
    num_agents: int = 2
    latent_dim: int = 32        # d_z, a multiple of simnorm_dim
    encoder_dim: int = 128      # hidden width of the encoder E (runs once per tick)
    hidden_dim: int = 80        # hidden width of dynamics D and reward R (run N x H times per iteration)
    critic_dim: int = 48        # hidden width of each of the twin critics Q (run N times per iteration)
    actor_dim: int = 48         # hidden width of the actor pi
    simnorm_dim: int = 8        # SimNorm group size L (Eq. 11)
    num_bins: int = 101         # two-hot bins for reward and Q
    vmin: float = -10.0         # bin range in symlog space
    vmax: float = 10.0
    log_std_min: float = -10.0  # actor log-std range
    log_std_max: float = 2.0
    # Predict whether a transition ends the episode (a contact in Gate, a success) and weight the
    # planner's imagined rewards after it by the chance it did not: without it an H-step rollout
    # through a contact keeps collecting reward as if the team were still running. Off for models
    # trained before the head existed (their manifests lack the key).
    termination: bool = False

    def __post_init__(self) -> None:
        b = 'model'
        if not isinstance(self.termination, bool):
            raise ConfigError(f'{b}.termination must be true or false, got {self.termination!r}')
        _check_int(b, 'obs_dim', self.obs_dim, 1)
        _check_int(b, 'num_agents', self.num_agents, 1, 255)
        _check_int(b, 'action_dim', self.action_dim, 1, 255)
        for name in ('latent_dim', 'encoder_dim', 'hidden_dim', 'critic_dim', 'actor_dim'):
            _check_int(b, name, getattr(self, name), 1, 65535)
        _check_int(b, 'simnorm_dim', self.simnorm_dim, 2)
        if self.latent_dim % self.simnorm_dim:
            raise ConfigError(f'{b}.latent_dim ({self.latent_dim}) must be a multiple of '
                              f'{b}.simnorm_dim ({self.simnorm_dim})')
        _check_int(b, 'num_bins', self.num_bins, 2)
        _check_float(b, 'vmin', self.vmin, -1e3, 1e3)
        _check_float(b, 'vmax', self.vmax, -1e3, 1e3)
        if not self.vmin < self.vmax:
            raise ConfigError(f'{b}.vmin ({self.vmin}) must be < {b}.vmax ({self.vmax})')
        _check_float(b, 'log_std_min', self.log_std_min, -50.0, 10.0)
        _check_float(b, 'log_std_max', self.log_std_max, -50.0, 10.0)
        if not self.log_std_min < self.log_std_max:
            raise ConfigError(f'{b}.log_std_min must be < {b}.log_std_max')

    @property
    def slot_dim(self) -> int:
        """Width of one intent slot in the model input: latent, action, valid flag."""
        return self.latent_dim + self.action_dim + 1

    @property
    def intent_dim(self) -> int:
        """Width of the conditioning vector e fed to D, R, Q and pi: n slots."""
        return self.num_agents * self.slot_dim

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        return _from_dict(cls, data, 'model')

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PlannerConfig:
    """Sequential MPPI settings (paper App. A.1, Table 2; App. A.2 filter; App. C.5 early stop)."""

    horizon: int = 3               # H
    iterations: int = 6            # K
    num_samples: int = 512         # N_p, Gaussian candidate sequences
    num_pi_trajs: int = 24         # N_a, actor candidate sequences
    num_elites: int = 64           # M
    temperature: float = 0.5       # tau in alpha_m = exp(tau (V_m - V_max))
    min_std: float = 0.05
    max_std: float = 2.0
    discount: float = 0.99         # gamma in Eq. 5/7; must equal the trainer's
    lowpass_cutoff_hz: float | None = CUTOFF_HZ   # f_c of the noise filter; None disables it
    control_hz: float = 10.0       # f_s = 1 / dt
    kl_threshold: float = 0.5      # eta: stop when KL(N^(k+1) || N^(k)) < eta (summed over H x da)
    early_stop: bool = False       # KL early stop (paper default: off, run all K iterations)
    # Initial distribution (Sec. 4.2: "samples ... from the initial distribution guided by the
    # actor"): 'actor' fits N(mu, sigma) to the N_a actor candidates; 'warm_start' starts from the
    # previous plan shifted by one step with sigma = max_std (TD-MPC2's choice).
    init: str = 'warm_start'

    def __post_init__(self) -> None:
        b = 'planner'
        _check_int(b, 'horizon', self.horizon, 1, 255)
        _check_int(b, 'iterations', self.iterations, 1)
        _check_int(b, 'num_samples', self.num_samples, 0)
        _check_int(b, 'num_pi_trajs', self.num_pi_trajs, 0)
        if self.num_samples + self.num_pi_trajs < 1:
            raise ConfigError(f'{b}.num_samples + {b}.num_pi_trajs must be >= 1')
        _check_int(b, 'num_elites', self.num_elites, 1)
        if self.num_elites > self.num_samples + self.num_pi_trajs:
            raise ConfigError(f'{b}.num_elites ({self.num_elites}) must be <= num_samples + '
                              f'num_pi_trajs ({self.num_samples + self.num_pi_trajs})')
        _check_float(b, 'temperature', self.temperature, 0.0, 1e6, low_open=True)
        _check_float(b, 'min_std', self.min_std, 0.0, 1e3, low_open=True)
        _check_float(b, 'max_std', self.max_std, 0.0, 1e3, low_open=True)
        if self.min_std > self.max_std:
            raise ConfigError(f'{b}.min_std ({self.min_std}) must be <= {b}.max_std ({self.max_std})')
        _check_float(b, 'discount', self.discount, 0.0, 1.0, low_open=True)
        _check_float(b, 'control_hz', self.control_hz, 0.0, 1e4, low_open=True)
        if self.lowpass_cutoff_hz is not None:
            _check_float(b, 'lowpass_cutoff_hz', self.lowpass_cutoff_hz, 0.0, self.control_hz / 2,
                         low_open=True, high_open=True)
        if self.init not in ('actor', 'warm_start'):
            raise ConfigError(f"{b}.init must be 'actor' or 'warm_start', got {self.init!r}")
        if self.init == 'actor' and self.num_pi_trajs < 2:
            raise ConfigError(f"{b}.init 'actor' needs num_pi_trajs >= 2, got {self.num_pi_trajs}")
        if not isinstance(self.early_stop, bool):
            raise ConfigError(f'{b}.early_stop must be true or false, got {self.early_stop!r}')
        _check_float(b, 'kl_threshold', self.kl_threshold, 0.0, 1e6)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlannerConfig:
        return _from_dict(cls, data, 'planner')

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
