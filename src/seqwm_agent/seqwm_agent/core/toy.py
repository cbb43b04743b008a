"""Hand-built world models with a known best plan: for tests, benchmarks and untrained demos.

`tracking_model` sets the weights of a WorldModel's reward network by hand so that the reward
of step h is 0 when the action equals a target and negative elsewhere, growing with the
distance. The target is a constant a* or, with `follow=k`, the action that robot k planned for
the same step, read from the intent; so a planner on this model must converge to a*, and an
agent following its predecessor must change its plan when the predecessor's intent changes.
The critic's output layer stays zero (Q = 0 everywhere); encoder, dynamics and actor keep their
random initialisation.

How the reward network computes it (reward member of the D/R trunk, 2 hidden layers):
  layer 1: features +-kappa (a_j - target_j) for each action dim and a constant +-C pair
           (LayerNorm then scales all of them by the same positive factor; means are zero;
           the LN gain makes that factor independent of the hidden width);
  layer 2: s = sum_j mish(x_j) + mish(-x_j), an even function of each difference that is 0 at
           0 and grows with |x_j|, as a +-pair with a constant +-C2 pair;
  head:    logits_i = -lambda * b_i * mish(LN(s)), so the expected symlog reward is 0 at s = 0
           and decreases as s grows.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .config import ModelConfig
from .world_model import REWARD, WorldModel


def tracking_model(cfg: ModelConfig, target: Sequence[float] | torch.Tensor | None = None,
                   follow: int | None = None, kappa: float = 1.0, const: float = 4.0,
                   const2: float = 4.0, lam: float = 0.1, seed: int = 0) -> WorldModel:
    """A WorldModel whose reward is maximal (0) when a = target or a = robot `follow`'s action."""
    if (target is None) == (follow is None):
        raise ValueError('give exactly one of target (a constant a*) or follow (a robot index)')
    dz, da, h, slot = cfg.latent_dim, cfg.action_dim, cfg.hidden_dim, cfg.slot_dim
    if h < 2 * da + 2:
        raise ValueError(f'hidden_dim must be >= {2 * da + 2} for the tracking reward')
    if follow is not None and not 0 <= follow < cfg.num_agents:
        raise ValueError(f'follow={follow} outside 0..{cfg.num_agents - 1}')
    torch.manual_seed(seed)
    model = WorldModel(cfg)
    # LayerNorm scales the few non-zero features by sqrt(h / (2 da + 2)); the LN gain undoes
    # the width dependence so the reward has the same shape for every hidden_dim (tuned at 32).
    gain = (32.0 / h) ** 0.5
    l1, l2 = model._trunk[0], model._trunk[1]
    with torch.no_grad():
        W1, b1 = l1.linear.weight[REWARD], l1.linear.bias[REWARD]      # (dz+da+de, h), (h,)
        W1.zero_()
        b1.zero_()
        for j in range(da):
            W1[dz + j, 2 * j] = kappa
            W1[dz + j, 2 * j + 1] = -kappa
            if follow is not None:
                row = dz + da + follow * slot + dz + j                 # slot `follow`, action j
                W1[row, 2 * j] = -kappa
                W1[row, 2 * j + 1] = kappa
        if target is not None:
            a_star = torch.as_tensor(target, dtype=torch.float32).reshape(da)
            b1[0:2 * da:2] = -kappa * a_star
            b1[1:2 * da:2] = kappa * a_star
        b1[2 * da] = const
        b1[2 * da + 1] = -const
        l1.ln_weight[REWARD].fill_(gain)
        l1.ln_bias[REWARD].zero_()
        W2, b2 = l2.linear.weight[REWARD], l2.linear.bias[REWARD]      # (h, h), (h,)
        W2.zero_()
        b2.zero_()
        W2[:2 * da, 0] = 1.0
        W2[:2 * da, 1] = -1.0
        b2[2] = const2
        b2[3] = -const2
        l2.ln_weight[REWARD].fill_(gain)
        l2.ln_bias[REWARD].zero_()
        head = model._reward_head
        head.weight.zero_()
        head.bias.zero_()
        head.weight[:, 0] = -lam * model.two_hot.bins
    return model
