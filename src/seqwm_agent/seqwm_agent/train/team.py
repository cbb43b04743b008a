"""Who sees whom, and how a team builds its intents outside the planner (collection, rollouts).

`visible(comm, order)` is the (n, n) matrix of which slots agent i conditions on:
  seq: the agents before it in the order (the paper's chain), dec: none (no message),
  cen: every other agent (full joint information). An agent never sees its own slot.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Sequence

import torch

from ..core.command import ChainParams, ChainSettings, ChainState, CommandChain, chain_step
from ..core.compiled import Compiled
from ..core.intent import IntentLayout
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


ChainRows = tuple[ChainParams, ChainState]   # float32 params, state fields (B, n, 3)


def chain_stepper(chain: ChainRows | None, i: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Robot i's command chain as a function action -> executed command (model units), stepping
    from its current state (a copy): what a robot's intent carries is the chain's commands."""
    if chain is None:
        return None
    p, st = chain
    state = [ChainState(st.x_prev[:, i], st.y_prev[:, i], st.last[:, i])]

    def step(a: torch.Tensor) -> torch.Tensor:
        state[0], v = chain_step(p, state[0], a)
        return v * p.inv_scale
    return step


@torch.no_grad()
def actor_rollout(model: WorldModel, z0: torch.Tensor, e: torch.Tensor, horizon: int,
                  first_action: torch.Tensor | None = None,
                  generator: torch.Generator | None = None,
                  through: Callable[[torch.Tensor], torch.Tensor] | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The actor's own proposal (the planner's prior): a_0 given (or pi's mean), a_h = mean of
    pi(z_h, e_h) along D. z0 (B, dz), e (B, H+1, de) -> latents (B, H+1, dz), actions (B, H, da).
    `through` (chain_stepper): each action becomes the command its chain executes, and D and
    the returned actions are those commands, as in a robot's intent."""
    z, zs, acts = z0, [z0], []
    for h in range(horizon):
        if h == 0 and first_action is not None:
            a = first_action
        else:
            a = model.pi(z, e[:, h], deterministic=True).mean
        if through is not None:
            a = through(a)
        z = model.next(z, a, e[:, h])
        zs.append(z)
        acts.append(a)
    return torch.stack(zs, 1), torch.stack(acts, 1)


def actor_noise(n: int, B: int, da: int, generator: torch.Generator | None,
                device: torch.device | str = 'cpu') -> torch.Tensor:
    """The standard-normal draws one `actor_act` call uses: (n, 2, B, da), per agent its
    actor sample's noise and its exploration noise (drawn apart, so compiled and eager acting
    consume a generator alike)."""
    return torch.randn(n, 2, B, da, generator=generator, device=device)


@torch.no_grad()
def actor_act(models: Sequence[WorldModel], layout: IntentLayout, obs: torch.Tensor, comm: str,
              explore_std: float = 0.0, deterministic: bool = False,
              noise: torch.Tensor | None = None, chain: ChainRows | None = None) -> torch.Tensor:
    """Team actions (B, n, da) from the actors, each conditioned on the intent it would receive.

    seq: agent i sees the actor proposals (latents + actions, `actor_rollout`) of agents < i, as
    the planner's intent would carry them; dec: nothing; cen: every other agent's proposal made
    without a message (the joint information available before anyone acts). With `chain` (each
    robot's command chain: params and state) a proposal's actions are the commands the chain
    would execute, as a robot sends them. Exploration: the actor's own sample (noise[i, 0])
    plus explore_std * noise[i, 1], clipped to [-1, 1]; `deterministic`: the mean (no noise
    needed). noise: `actor_noise`.
    """
    n, B, H = len(models), obs.shape[0], layout.horizon
    if not deterministic and noise is None:
        raise ValueError('a stochastic actor_act needs its noise (actor_noise)')
    intent = layout.empty(B, obs.device)
    if comm == 'cen':
        base = layout.empty(B, obs.device)
        for k, m in enumerate(models):
            z0 = m.encode(obs[:, k])
            lat, act = actor_rollout(m, z0, layout.model_inputs(base, 0), H,
                                     through=chain_stepper(chain, k))
            intent = layout.insert(intent, k, lat, act)
    out = []
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
        if deterministic:
            a0 = m.pi(z0, e[:, 0], deterministic=True).action
        else:
            a0 = m.pi(z0, e[:, 0], noise=noise[i, 0]).action
            if explore_std > 0:
                a0 = (a0 + noise[i, 1] * explore_std).clamp(-1.0, 1.0)
        out.append(a0)
        if comm == 'seq':
            lat, act = actor_rollout(m, z0, e, H, first_action=a0,
                                     through=chain_stepper(chain, i))
            intent = layout.insert(intent, i, lat, act)
    return torch.stack(out, 1)


class ChainedTeam(ABC):
    """n robots' command chains for B teams: what every simulated team acts through.

    A policy's actions (B, n, 3) in [-1, 1] are the chains' inputs, as the planner's action is on
    a robot; the chains' commands (m/s, m/s, rad/s) are what the simulator executes. One chain row
    per team and robot. Subclasses supply `act`; evaluation (`evaluate.run_episodes`) needs only
    `act(obs, tick) -> (commands, ok)` and `select(rows)`."""

    def __init__(self, n: int, chain: ChainSettings, action_scale: Sequence[float], batch: int,
                 device: torch.device | str = 'cpu') -> None:
        self.n, self.batch = n, batch
        self.chain = CommandChain(chain.limits, chain.cutoff_hz, chain.rate_hz, batch * n,
                                  action_scale, device)

    @property
    def action_scale(self) -> torch.Tensor:
        return self.chain.params.action_scale

    def _through(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B = a.shape[0]
        cmd, ok = self.chain.step_batch(a.reshape(B * self.n, -1))
        return cmd.view(B, self.n, -1), ok.view(B, self.n)

    @abstractmethod
    def act(self, obs: torch.Tensor, tick: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """obs (B, n, obs_dim) -> commands (B, n, 3) m/s, m/s, rad/s and ok (B, n)."""

    @torch.no_grad()
    def random(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Uniform random actions in [-1, 1] through the chain (the trainer's warm-up)."""
        dev = self.chain.params.device
        a = torch.rand(batch, self.n, 3, generator=generator, device=dev) * 2 - 1
        return self._through(a)

    def reset(self, rows: torch.Tensor) -> None:
        """Teams whose episode restarted (B,) bool: their robots start at rest."""
        self.chain.stop(rows.repeat_interleave(self.n))

    def select(self, rows: torch.Tensor) -> None:
        """Keep only some teams (index tensor)."""
        idx = (rows[:, None] * self.n + torch.arange(self.n, device=rows.device)).reshape(-1)
        self.chain.select(idx)
        self.batch = int(rows.numel())


class ChainedActors(ChainedTeam):
    """The team's actors acting through their robots' command chains, B teams at once.

    What the trainer collects with (and its cheap periodic check): the actor's action (its own
    sample plus exploration noise, or its mean) is the chain's input; the chain's command is what
    the simulator executes and what the buffer stores (in model units, command / action_scale)."""

    def __init__(self, models: Sequence[WorldModel], layout: IntentLayout, chain: ChainSettings,
                 action_scale: Sequence[float], batch: int, comm: str,
                 device: torch.device | str = 'cpu', explore_std: float = 0.0,
                 deterministic: bool = True, generator: torch.Generator | None = None,
                 compile_mode: str = 'off') -> None:
        super().__init__(len(models), chain, action_scale, batch, device)
        self.models, self.layout, self.comm = list(models), layout, comm
        self.explore_std, self.deterministic, self.generator = explore_std, deterministic, generator
        self._act = Compiled(actor_act, 'collect.actor_act', compile_mode)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, tick: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """obs (B, n, obs_dim) -> commands (B, n, 3) m/s, m/s, rad/s and ok (B, n)."""
        noise = None if self.deterministic else actor_noise(
            self.n, obs.shape[0], self.layout.action_dim, self.generator, obs.device)
        B, c = obs.shape[0], self.chain
        st = c.state
        rows = ChainState(*(t.reshape(B, self.n, -1).float() for t in
                            (st.x_prev, st.y_prev, st.last)))
        a = self._act(self.models, self.layout, obs, self.comm, self.explore_std,
                      self.deterministic, noise, (c.params.like(torch.float32, obs.device), rows))
        return self._through(a)
