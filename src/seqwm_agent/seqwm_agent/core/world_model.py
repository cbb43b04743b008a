"""One agent's sequential world model (paper Eq. 2, App. B.2).

    z   = E(o)                 encoder, SimNorm latent
    z'  = D(z, a, e)           dynamics, SimNorm latent
    r   = R(z, a, e)           reward, 101-bin two-hot logits over symlog space
    d   = T(z, a, e)           termination logit (optional, `ModelConfig.termination`)
    q   = Q(z, a, e)           twin critics, same encoding
    a   ~ pi(z, e)             tanh-squashed Gaussian actor

`e` is the intent conditioning vector built by `IntentLayout.model_input` (the predecessors'
predicted latents and actions for the same step, each with a valid flag), `ModelConfig.intent_dim`
wide. Every agent owns one WorldModel with its own parameters.

D and R read the same (z, a, e), so their two hidden layers are stored as one 2-member ensemble
(member 0 = D, member 1 = R): independent parameters, one batched matmul per layer; the
termination head T is a linear read-out of R's hidden layer (whether the step ends the episode is
a property of the same transition the reward scores). The twin
critics are a 2-member ensemble likewise. This is the layout the planner's fused inference path
(`rollout.LatentRollout`) reads directly.
"""
from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import nn

from .config import ModelConfig
from .layers import EnsembleLinear, EnsembleNormedLinear, NormedLinear, gaussian_log_prob, init_linear_
from .twohot import TwoHot

DYNAMICS, REWARD = 0, 1   # members of the shared D/R trunk


class Step(NamedTuple):
    """One latent transition (..., .); termination is None for a model without the head."""

    next: torch.Tensor                   # z' (..., dz)
    reward: torch.Tensor                 # reward logits (..., num_bins)
    termination: torch.Tensor | None     # termination logit (...)


class PolicyOutput(NamedTuple):
    """Actor output; shapes (..., da) except log_prob (...)."""

    action: torch.Tensor     # sampled squashed action in (-1, 1) (the mean when deterministic)
    mean: torch.Tensor       # tanh(mu)
    log_std: torch.Tensor    # log sigma of the pre-squash Gaussian
    log_prob: torch.Tensor   # log density of `action`, tanh change of variables included


class WorldModel(nn.Module):
    """Encoder, dynamics, reward, twin critic (+ its Polyak target) and actor of one agent."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dz, da, de = cfg.latent_dim, cfg.action_dim, cfg.intent_dim
        h, c, p, L = cfg.hidden_dim, cfg.critic_dim, cfg.actor_dim, cfg.simnorm_dim
        self._encoder = nn.Sequential(
            NormedLinear(cfg.obs_dim, cfg.encoder_dim, 'mish'),
            NormedLinear(cfg.encoder_dim, dz, 'simnorm', L))
        self._trunk = nn.Sequential(   # member 0: dynamics, member 1: reward
            EnsembleNormedLinear(2, dz + da + de, h, 'mish', shared_input=True),
            EnsembleNormedLinear(2, h, h, 'mish'))
        self._dynamics_head = NormedLinear(h, dz, 'simnorm', L)
        self._reward_head = nn.Linear(h, cfg.num_bins)
        init_linear_(self._reward_head.weight, self._reward_head.bias, zero=True)
        self._termination_head: nn.Linear | None = None
        if cfg.termination:     # starts at P(end) = 1 %: rollouts count their rewards at first
            self._termination_head = nn.Linear(h, 1)
            with torch.no_grad():
                self._termination_head.weight.zero_()
                self._termination_head.bias.fill_(-4.6)
        self._Qs = nn.Sequential(
            EnsembleNormedLinear(2, dz + da + de, c, 'mish', shared_input=True),
            EnsembleNormedLinear(2, c, c, 'mish'),
            EnsembleLinear(2, c, cfg.num_bins, zero_init=True))
        self._target_Qs = copy.deepcopy(self._Qs).requires_grad_(False)
        self._pi = nn.Sequential(
            NormedLinear(dz + de, p, 'mish'),
            NormedLinear(p, p, 'mish'),
            nn.Linear(p, 2 * da))
        init_linear_(self._pi[2].weight, self._pi[2].bias)
        self._two_hot: TwoHot | None = None

    # ---- helpers ----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self._reward_head.weight.device

    @property
    def two_hot(self) -> TwoHot:
        """Bin maps on the model's device (reward and Q logits <-> scalars)."""
        if self._two_hot is None or self._two_hot.bins.device != self.device:
            # Built outside inference mode even when first used by the planner, so the cached
            # bins stay usable by autograd in the next training step.
            with torch.inference_mode(False):
                self._two_hot = TwoHot(self.cfg.num_bins, self.cfg.vmin, self.cfg.vmax, self.device)
        return self._two_hot

    def _check(self, name: str, x: torch.Tensor, width: int) -> None:
        if x.shape[-1] != width:
            raise ValueError(f'{name} has last dim {x.shape[-1]}, expected {width}')

    def _zae(self, z: torch.Tensor, a: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        self._check('z', z, cfg.latent_dim)
        self._check('a', a, cfg.action_dim)
        self._check('e', e, cfg.intent_dim)
        return torch.cat([z, a, e], dim=-1)

    # ---- Eq. 2 ------------------------------------------------------------------------------
    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """o (..., obs_dim) -> z (..., dz)."""
        self._check('obs', obs, self.cfg.obs_dim)
        return self._encoder(obs)

    def step(self, z: torch.Tensor, a: torch.Tensor, e: torch.Tensor) -> Step:
        """(z, a, e) (..., .) -> z', reward logits and termination logit; one trunk pass."""
        x = self._trunk(self._zae(z, a, e))             # (2, ..., h)
        term = self._termination_head
        return Step(self._dynamics_head(x[DYNAMICS]), self._reward_head(x[REWARD]),
                    None if term is None else term(x[REWARD]).squeeze(-1))

    def next_and_reward(self, z: torch.Tensor, a: torch.Tensor,
                        e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, a, e) (..., .) -> (z' (..., dz), reward logits (..., num_bins))."""
        out = self.step(z, a, e)
        return out.next, out.reward

    def next(self, z: torch.Tensor, a: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """D: (z, a, e) -> z' (..., dz)."""
        return self.next_and_reward(z, a, e)[0]

    def reward(self, z: torch.Tensor, a: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """R: (z, a, e) -> reward logits (..., num_bins); decode with `two_hot.decode`."""
        return self.next_and_reward(z, a, e)[1]

    def Q(self, z: torch.Tensor, a: torch.Tensor, e: torch.Tensor, return_type: str = 'all',
          target: bool = False) -> torch.Tensor:
        """Twin critic. 'all': logits (2, ..., num_bins); 'min' / 'avg': scalar values (...)."""
        net = self._target_Qs if target else self._Qs
        logits = net(self._zae(z, a, e))
        if return_type == 'all':
            return logits
        q = self.two_hot.decode(logits)
        if return_type == 'min':
            return q.min(0).values
        if return_type == 'avg':
            return q.mean(0)
        raise ValueError(f"return_type must be 'all', 'min' or 'avg', got {return_type!r}")

    def pi(self, z: torch.Tensor, e: torch.Tensor, deterministic: bool = False,
           generator: torch.Generator | None = None,
           noise: torch.Tensor | None = None) -> PolicyOutput:
        """Actor: (z (..., dz), e (..., de)) -> tanh-squashed Gaussian action (..., da).

        `noise` (..., da): the standard-normal draw to use instead of one from `generator` (a
        compiled update draws its noise outside the compiled graph, so eager and compiled
        updates see the same numbers)."""
        self._check('z', z, self.cfg.latent_dim)
        self._check('e', e, self.cfg.intent_dim)
        mu, log_std = self._pi(torch.cat([z, e], dim=-1)).chunk(2, dim=-1)
        lo, hi = self.cfg.log_std_min, self.cfg.log_std_max
        log_std = lo + 0.5 * (hi - lo) * (torch.tanh(log_std) + 1)
        if deterministic:
            eps = torch.zeros_like(mu)
        elif noise is not None:
            eps = noise
        else:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        u = mu + eps * log_std.exp()
        action = torch.tanh(u)
        log_prob = gaussian_log_prob(eps, log_std) - torch.log1p(-action.pow(2) + 1e-6).sum(-1)
        return PolicyOutput(action, torch.tanh(mu), log_std, log_prob)

    @torch.no_grad()
    def soft_update_target_Q(self, tau: float) -> None:
        """Polyak update of the target critics: target <- (1 - tau) target + tau online."""
        for p, tp in zip(self._Qs.parameters(), self._target_Qs.parameters()):
            tp.lerp_(p, tau)
