"""The controller: one robot position of B teams, from observation to command and intent.

    received intents --IntentCache.lookup(tick)--> e^i and mode: fresh | cached (shifted) | masked
    o^i, e^i --SequentialPlanner.plan (through the command chain, seeded per team)--> a, c, z
        --finite?--> CommandChain.step_batch(a_0) --> (vx, vy, wz) per team
        --IntentLayout.insert(e^i, i, z, c)--> e^{i+1} (what successors plan with)

The same class runs B = 1 on a robot (`runtime.agent.AgentRuntime`, which adds input
validation, the watchdog and the scheduler) and B = thousands in simulation (`train.rollout`:
evaluation and training collection), so what is evaluated is what a robot runs. A team's
result does not depend on the other teams of the batch: each row has its own random stream,
chain state, cache and warm start, and the planner is batch-independent (a test pins B = 4
equal to four B = 1 controllers bit for bit).

No ROS, no clock: the caller passes tick indices and the time since each row's previous
command (`dt0`, for the acceleration limit).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..core.command import ChainSettings, CommandChain
from ..core.config import PlannerConfig
from ..core.intent import (CACHE_MAX_AGE_TICKS, CacheMode, IntentCache, IntentLayout,
                           IntentTensors)
from ..core.planner import PlanChain, PlanResult, SequentialPlanner
from ..core.world_model import WorldModel

COMMS = ('seq', 'dec')


@dataclass
class ControlOutput:
    """One step of B teams."""

    commands: torch.Tensor     # (B, 3) float64 m/s, m/s, rad/s sent (zeros where not ok)
    ok: torch.Tensor           # (B,) bool: a finite plan was turned into a command
    mode: torch.Tensor         # (B,) CacheMode of the predecessor intent planned on
    age: torch.Tensor          # (B,) ticks since the newest intent received (0: fresh or none)
    intent: IntentTensors      # e^{i+1}, batch B
    plan: PlanResult


class Controller:
    """Robot `agent_index` of B teams: its own model, planner, command chain and intent cache."""

    def __init__(self, model: WorldModel, layout: IntentLayout, planner_cfg: PlannerConfig,
                 agent_index: int, chain: ChainSettings, action_scale: Sequence[float],
                 batch: int = 1, cache_max_age_ticks: int = CACHE_MAX_AGE_TICKS, seed: int | None = 0,
                 comm: str = 'seq', device: torch.device | str = 'cpu') -> None:
        if comm not in COMMS:
            raise ValueError(f'comm must be one of {COMMS}, got {comm!r}')
        self.model = model.to(device).eval()
        self.layout, self.agent_index, self.comm = layout, agent_index, comm
        self.device = torch.device(device)
        self.batch = batch
        self.planner = SequentialPlanner(self.model, layout, planner_cfg, agent_index, seed=seed)
        self.chain = CommandChain(chain.limits, chain.cutoff_hz, chain.rate_hz, batch,
                                  action_scale, self.device)
        self.cache = IntentCache(layout, cache_max_age_ticks, batch, self.device)
        # the world model's action units: command / action_scale
        self.action_scale = self.chain.params.action_scale

    @property
    def listens(self) -> bool:
        """Whether this robot plans on a predecessor's intent at all."""
        return self.comm == 'seq' and self.agent_index > 0

    def receive(self, intent: IntentTensors, ticks: int | torch.Tensor,
                rows: torch.Tensor | None = None) -> None:
        """The predecessor's intent (batch B) for `ticks`, arrived for the rows in `rows`."""
        if self.listens:
            self.cache.update(intent, ticks, rows)

    def step(self, obs: torch.Tensor, ticks: int | torch.Tensor,
             dt0: torch.Tensor | float | None = None, seeds: Sequence[int] | None = None
             ) -> ControlOutput:
        """Plan and command every row for its tick. obs (B, obs_dim); dt0 float or (B,) s."""
        B = obs.shape[0]
        if B != self.batch:
            raise ValueError(f'obs batch {B} != controller batch {self.batch}')
        # 1. predecessor intent: fresh, cached (shifted) or masked; index 0 / dec: none needed
        if self.listens:
            intent, mode = self.cache.lookup(ticks)
            t = torch.as_tensor(ticks, dtype=torch.long, device=self.device).reshape(-1).expand(B)
            age = torch.where(self.cache.have, t - self.cache.ticks, torch.zeros_like(t))
        else:
            intent = self.layout.empty(B, self.device)
            mode = torch.full((B,), int(CacheMode.FRESH), dtype=torch.long, device=self.device)
            age = torch.zeros(B, dtype=torch.long, device=self.device)
        # 2. plan through the chain from each row's chain state
        plan = self.planner.plan(obs, intent, seeds=seeds, chain=self._plan_chain(dt0))
        # 3. a non-finite plan never reaches the chain: that row stops
        finite = (torch.isfinite(plan.actions).flatten(1).all(1)
                  & torch.isfinite(plan.latents).flatten(1).all(1) & torch.isfinite(plan.value))
        commands, ok = self._command(plan, dt0, finite)
        if not bool(ok.all()):
            self.stop(~ok)
            commands = torch.where(ok[:, None], commands, torch.zeros_like(commands))
        # 4. e^{i+1} = e^i (+) (z^i, c^i): successors predict with the commands executed
        out = self.layout.insert(intent, self.agent_index, plan.latents, plan.commands)
        return ControlOutput(commands, ok, mode, age, out, plan)

    # ---- the two steps a diagnostic form (train/diagnostics.py) replaces ---------------------
    def _plan_chain(self, dt0: torch.Tensor | float | None) -> PlanChain | None:
        """What the planner plans through: this robot's command chain, from each row's state."""
        return PlanChain(self.chain.params, self.chain.state, dt0)

    def _command(self, plan: PlanResult, dt0: torch.Tensor | float | None,
                 finite: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The command each row sends (B, 3) m/s and whether it could (B,): the chain's output
        for the plan's first action; non-finite rows never reach the chain."""
        commands, ok = self.chain.step_batch(plan.actions[:, 0], dt0, rows=finite)
        return commands, ok & finite

    def stop(self, rows: torch.Tensor | None = None) -> None:
        """Zero command for the rows (default all); chain and warm start restart from rest."""
        self.chain.stop(rows)
        self.planner.reset(which=rows)

    def forget(self, rows: torch.Tensor | None = None) -> None:
        """Forget the cached predecessor intents (e.g. after the mocap clock jumped)."""
        self.cache.clear(rows)

    def select(self, rows: torch.Tensor) -> None:
        """Keep only some teams (index tensor): the environments still running."""
        self.chain.select(rows)
        self.cache.select(rows)
        self.planner.select(rows)
        self.batch = int(rows.numel())
