"""Whether a team's world models are learning the task's danger: the trainer's health monitor.

A model can predict ordinary steps well and still not see a contact coming; the planner then
drives into posts it cannot foresee while the losses look fine. At each periodic evaluation the
trainer records, per agent, on the evaluation episodes' transitions (the actor's, in deployed
form):

  contact_auc      how well the reward head ranks contact transitions below ordinary ones:
                   P(r_hat(contact) < r_hat(ordinary)), ties half. 0.5 is chance: the model does
                   not tell a contact from an ordinary step. None without both kinds.
  dynamics_error   mean || D(z, a, e) - E(o') ||^2 over the transitions (one step)
  reward_error     mean | r_hat - r |

Each agent conditions on its predecessors' one-step intents as in the update (seq: the agents
before it; dec: none; cen: every other), built from their encodings of the same observations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..core.world_model import WorldModel
from .team import joint_rollout, visible


def contact_auc(pred: torch.Tensor, contact: torch.Tensor) -> float | None:
    """P(pred of a contact row < pred of an ordinary row), ties counted half (Mann-Whitney U).

    pred (N,), contact (N,) bool. None when either kind is missing."""
    k, m = int(contact.sum()), int((~contact).sum())
    if k == 0 or m == 0:
        return None
    order = torch.argsort(pred.double(), stable=True)
    s = pred.double()[order]
    ranks = torch.empty_like(s)
    ranks[order] = torch.arange(1, len(s) + 1, dtype=torch.float64)
    # average ranks over ties
    uniq, inv, counts = torch.unique(s, return_inverse=True, return_counts=True)
    if len(uniq) < len(s):
        sums = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inv, ranks[order])
        ranks[order] = (sums / counts)[inv]
    r_contact = ranks[contact].sum()
    u = r_contact - k * (k + 1) / 2            # pairs where a contact ranks above an ordinary
    return float(1.0 - u / (k * m))


@dataclass
class Transitions:
    """Team transitions gathered from evaluation episodes (the live rows of each tick)."""

    obs: list[torch.Tensor] = field(default_factory=list)        # (b, n, obs)
    action: list[torch.Tensor] = field(default_factory=list)     # (b, n, da), model units
    reward: list[torch.Tensor] = field(default_factory=list)     # (b,)
    contact: list[torch.Tensor] = field(default_factory=list)    # (b,) bool
    next_obs: list[torch.Tensor] = field(default_factory=list)   # (b, n, obs)

    def add(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
            contact: torch.Tensor, next_obs: torch.Tensor) -> None:
        for name, v in (('obs', obs), ('action', action), ('reward', reward),
                        ('contact', contact), ('next_obs', next_obs)):
            getattr(self, name).append(v.detach().float() if name != 'contact' else v.detach())

    def __len__(self) -> int:
        return sum(int(r.shape[0]) for r in self.reward)

    def cat(self) -> dict[str, torch.Tensor]:
        return {k: torch.cat(getattr(self, k)) for k in
                ('obs', 'action', 'reward', 'contact', 'next_obs')}


@torch.no_grad()
def learning_health(models: Sequence[WorldModel], comm: str,
                    transitions: Transitions) -> dict[str, Any]:
    """Per agent: contact AUC of the reward head, one-step dynamics and reward errors."""
    n = len(models)
    out: dict[str, Any] = {'transitions': len(transitions), 'contacts': 0,
                           'contact_auc': [None] * n, 'dynamics_error': [None] * n,
                           'reward_error': [None] * n}
    if len(transitions) == 0:
        return out
    t = transitions.cat()
    keep = visible(comm, list(range(n))).to(t['obs'].device)[None].expand(t['obs'].shape[0], n, n)
    lat, logits = joint_rollout(models, t['obs'], t['action'][None], keep)
    out['contacts'] = int(t['contact'].sum())
    for i, m in enumerate(models):
        r_hat = m.two_hot.decode(logits[0, :, i])
        target = m.encode(t['next_obs'][:, i])
        out['contact_auc'][i] = _round(contact_auc(r_hat, t['contact']))
        out['dynamics_error'][i] = _round(float((lat[1, :, i] - target).pow(2).mean()))
        out['reward_error'][i] = _round(float((r_hat - t['reward']).abs().mean()))
    return out


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)
