"""Who sees whom, and how a team builds its intents outside the planner (collection, rollouts).

`visible(comm, order)` is the (n, n) matrix of which slots agent i conditions on:
  seq: the agents before it in the order (the paper's chain), dec: none (no message),
  cen: every other agent (full joint information). An agent never sees its own slot.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..core.intent import IntentLayout, IntentTensors
from ..core.world_model import WorldModel


def visible(comm: str, order: Sequence[int]) -> torch.Tensor:
    """(n, n) bool: row i = the slots agent i may condition on, for this communication order."""
    n = len(order)
    vis = torch.zeros(n, n, dtype=torch.bool)
    if comm == 'seq':
        for pos, i in enumerate(order):
            vis[i, list(order[:pos])] = True
    elif comm == 'cen':
        vis[:] = True
        vis.fill_diagonal_(False)
    elif comm != 'dec':
        raise ValueError(f"comm must be 'seq', 'dec' or 'cen', got {comm!r}")
    return vis


def slot_inputs(z: torch.Tensor, a: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """One step's model input from every agent's latent z (B, n, dz) and action a (B, n, da)
    with slots kept where keep (B, n): the same [valid*z, valid*a, valid] per-slot layout as
    IntentLayout.model_inputs -> (B, n * (dz + da + 1))."""
    k = keep.to(z.dtype)[..., None]
    slots = torch.cat([z, a, torch.ones_like(k)], dim=-1) * k
    return slots.reshape(z.shape[0], -1)


@torch.no_grad()
def joint_rollout(models: Sequence[WorldModel], obs0: torch.Tensor, actions: torch.Tensor,
                  keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every agent's predicted latents and reward logits along given actions, stepwise.

    obs0 (B, n, obs), actions (T, B, n, da), keep (B, n, n): slot k visible to agent i.
    At step h agent i conditions on the visible agents' own predictions z^k_h. For seq
    visibility this is exactly the sequential chain (predecessors never depend on successors).
    Returns latents (T+1, B, n, dz) and reward logits (T, B, n, bins).
    """
    n, T = len(models), actions.shape[0]
    z = torch.stack([models[i].encode(obs0[:, i]) for i in range(n)], 1)
    zs, rs = [z], []
    for h in range(T):
        nxt, rew = [], []
        for i, m in enumerate(models):
            e = slot_inputs(z, actions[h], keep[:, i])
            z1, r = m.next_and_reward(z[:, i], actions[h, :, i], e)
            nxt.append(z1)
            rew.append(r)
        z = torch.stack(nxt, 1)
        zs.append(z)
        rs.append(torch.stack(rew, 1))
    return torch.stack(zs), torch.stack(rs)


@torch.no_grad()
def actor_rollout(model: WorldModel, z0: torch.Tensor, e: torch.Tensor, horizon: int,
                  first_action: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The actor's own proposal (the planner's prior): a_0 given (or pi's mean), a_h = mean of
    pi(z_h, e_h) along D. z0 (B, dz), e (B, H+1, de) -> latents (B, H+1, dz), actions (B, H, da)."""
    z, zs, acts = z0, [z0], []
    for h in range(horizon):
        a = first_action if (h == 0 and first_action is not None) else model.pi(z, e[:, h]).mean
        z = model.next(z, a, e[:, h])
        zs.append(z)
        acts.append(a)
    return torch.stack(zs, 1), torch.stack(acts, 1)


@torch.no_grad()
def actor_act(models: Sequence[WorldModel], layout: IntentLayout, obs: torch.Tensor, comm: str,
              explore_std: float = 0.0, deterministic: bool = False,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Team actions (B, n, da) from the actors, each conditioned on the intent it would receive.

    seq: agent i sees the actor proposals (latents + actions, `actor_rollout`) of agents < i, as
    the planner's intent would carry them; dec: nothing; cen: every other agent's proposal made
    without a message (the joint information available before anyone acts). Exploration: the
    actor's own sample plus N(0, explore_std^2), clipped to [-1, 1]; `deterministic`: the mean.
    """
    n, B, H = len(models), obs.shape[0], layout.horizon
    intent = layout.empty(B, obs.device)
    if comm == 'cen':
        base = layout.empty(B, obs.device)
        for k, m in enumerate(models):
            z0 = m.encode(obs[:, k])
            lat, act = actor_rollout(m, z0, layout.model_inputs(base, 0), H)
            intent = layout.insert(intent, k, lat, act)
    out = torch.zeros(B, n, layout.action_dim, device=obs.device)
    for i, m in enumerate(models):
        if comm == 'seq':
            e = layout.model_inputs(intent, i)
        elif comm == 'dec':
            e = layout.model_inputs(layout.empty(B, obs.device), 0)
        else:
            keep = torch.ones(B, n, dtype=torch.bool, device=obs.device)
            keep[:, i] = False
            e = layout.model_inputs(layout.mask(intent, keep))
        z0 = m.encode(obs[:, i])
        p = m.pi(z0, e[:, 0], deterministic=deterministic, generator=generator)
        a0 = p.action
        if explore_std > 0 and not deterministic:
            noise = torch.randn(a0.shape, generator=generator, device=a0.device) * explore_std
            a0 = (a0 + noise).clamp(-1.0, 1.0)
        out[:, i] = a0
        if comm == 'seq':
            lat, act = actor_rollout(m, z0, e, H, first_action=a0)
            intent = layout.insert(intent, i, lat, act)
    return out


class PlannerTeam:
    """Deployment-style acting: agent i plans with its own model and its predecessor's intent.

    seq: e^{i+1} = e^i (+) (z^i, a^i) forwarded in order; dec: every agent plans with an empty
    intent. (cen has no deployment form: it would need successors' plans before they exist.)
    """

    def __init__(self, models: Sequence[WorldModel], layout: IntentLayout, planner_cfg,
                 comm: str, seed: int) -> None:
        from ..core.planner import SequentialPlanner
        if comm not in ('seq', 'dec'):
            raise ValueError(f'planning evaluation supports comm seq or dec, not {comm!r} '
                             '(cen needs every agent\'s plan before any agent plans)')
        self.layout, self.comm = layout, comm
        self.planners = [SequentialPlanner(m, layout, planner_cfg, i, seed=seed + 1000 * i)
                         for i, m in enumerate(models)]

    def reset(self) -> None:
        for p in self.planners:
            p.reset()

    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, IntentTensors]:
        """obs (B, n, obs) -> first planned actions (B, n, da) and the last agent's outgoing intent."""
        B = obs.shape[0]
        intent = self.layout.empty(B, obs.device)
        out = torch.zeros(B, len(self.planners), self.layout.action_dim, device=obs.device)
        for i, planner in enumerate(self.planners):
            received = intent if self.comm == 'seq' else self.layout.empty(B, obs.device)
            res = planner.plan(obs[:, i], received)
            out[:, i] = res.actions[:, 0]
            intent = self.layout.insert(intent, i, res.latents, res.actions)
        return out, intent
