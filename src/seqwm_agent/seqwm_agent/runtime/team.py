"""B teams of n robots, each robot running the deployed controller, intents passed as on a network.

What a robot team does in one control tick, for B teams at once (simulation: evaluation,
training collection, the intent-loss robustness check):

    every robot's mocap frame of tick t arrives at time tau_0 = t * dt
    robot 0 plans at once; for k = 1..n-1, robot k's `Scheduler` waits for robot k-1's intent:
        it arrives robot k-1's planning time after robot k-1 started its tick, plus the hop's
        median: the planning time drawn per robot and tick from a log-normal with the measured
        median and p99 (runtime.chain), unless the message is lost (probability `loss`,
        independently per message);
        before tau_0 + timing.deadline_s(k) (k steps at their p99s, as the robot waits): robot k
        plans on it (fresh, trigger INTENT), else at the deadline on its cache (cached / masked,
        trigger DEADLINE) and the late intent, if it comes, is the cache for tick t + 1 -
        exactly the rules of the robot's runtime.
    every robot: plan through its command chain, send the chain's command

Each robot plans alone, with its own model, on what it received; `Controller` is the class the
robot runs (B = 1 there). Seeded: loss draws from one generator, planning from per-team streams
re-seeded per tick (like a robot in deterministic mode), so a run is reproducible.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..core.command import ChainSettings
from ..core.config import PlannerConfig
from ..core.intent import CACHE_MAX_AGE_TICKS, CacheMode, IntentCache, IntentLayout
from ..core.validate import integer, number
from ..core.world_model import WorldModel
from .chain import LOOPBACK_HOP_MS, ChainTiming
from .controller import Controller
from .scheduler import Run, Scheduler, Trigger


# Planning time (p50, p99 ms at B = 1) for simulated teams whose model has no measurement of its
# own (training collection, which plans with 128 samples x 16 elites x 3 iterations): that point's
# times in the shipped models' planner_budget.json on this machine were p50 7.2-9.4, p99 8.7-13.8.
DEFAULT_PLAN_MS = (8.0, 13.0)


@dataclass(frozen=True)
class LinkConfig:
    """How intents travel between robots in simulation: what planning and a hop take (p50, p99
    ms; a robot's planning time is drawn per tick from a log-normal through both), what the
    robots budget for them (plan, hop ms: their wait, runtime.chain; None: the p99s, as robots
    configured from the same measurement), and message loss."""

    plan_ms: tuple[float, float] = DEFAULT_PLAN_MS
    hop_ms: tuple[float, float] = LOOPBACK_HOP_MS
    loss: float = 0.0            # probability that one intent message is lost
    cache_max_age_ticks: int = CACHE_MAX_AGE_TICKS
    budget_ms: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name in ('plan_ms', 'hop_ms'):
            p50, p99 = getattr(self, name)
            number(f'link.{name} p50', p50, 0.0)
            number(f'link.{name} p99', p99, p50)
        number('link.loss', self.loss, 0.0, 1.0)
        integer('link.cache_max_age_ticks', self.cache_max_age_ticks, 0)
        if self.budget_ms is not None:
            for v in self.budget_ms:
                number('link.budget_ms', v, 0.0)

    def timing(self, dt: float) -> ChainTiming:
        """What the robots wait for (their chain timing)."""
        plan, hop = self.budget_ms or (self.plan_ms[1], self.hop_ms[1])
        return ChainTiming(dt, plan / 1e3, hop / 1e3)


@dataclass
class LinkTick:
    """One tick of a simulated chain, per robot i (lists of length n, tensors over B teams)."""

    on_time: list[torch.Tensor]     # (B,) bool: i planned on its predecessor's intent of the tick
    late: list[torch.Tensor]        # (B,) bool: that intent came after the deadline (cache, t + 1)
    mode: list[torch.Tensor]        # (B,) CacheMode robot i planned on
    slot_age: torch.Tensor          # (B, n, n) int8: in robot i's e^i, slot j's age in ticks
                                    #   (0 fresh, k: shifted k ticks by the cache), -1 masked
    sent_s: torch.Tensor            # (B, n) float64: from the frame to each robot's command
    runs: list[list[Run]]           # per robot, each team's scheduler run


class ChainLink:
    """When each robot of B teams gets its predecessor's intent, and in what form it plans on
    it: the timing of `TeamRuntime` without the planning, so training can present every agent
    the intent forms its deployed link produces, at the rates it produces them.

    Per tick and robot, in order: a loss draw and a planning time (log-normal through the
    measured p50 and p99), the robot's `Scheduler` deciding between the intent (arrival before
    its deadline) and the deadline, and an `IntentCache` over a content-free layout deciding
    fresh / cached (shifted) / masked with the robot's own rules, ages carried slot by slot
    through the chain (e^{i+1} = e^i + slot i at age 0)."""

    def __init__(self, n: int, batch: int, dt: float, link: LinkConfig, horizon: int,
                 listens: Sequence[bool] | None = None, seed: int = 0) -> None:
        self.n, self.batch, self.dt, self.link = n, batch, float(dt), link
        self.timing = link.timing(self.dt)
        self.listens = list(listens) if listens is not None else [k > 0 for k in range(n)]
        self.layout = IntentLayout(n, horizon, 1, 1)       # forms only: valid flags and ages
        self.caches = [IntentCache(self.layout, link.cache_max_age_ticks, batch)
                       for _ in range(n)]
        self.gen = torch.Generator(device='cpu').manual_seed(seed + 17)
        self._new_schedulers()

    def _new_schedulers(self) -> None:
        # a stale timeout far beyond an episode: simulated frames never stop coming
        self.schedulers = [[self._scheduler(i) for _ in range(self.batch)] for i in range(self.n)]

    def _scheduler(self, i: int) -> Scheduler:
        return Scheduler(i, self.timing.deadline_s(i), 1e9, self.dt, listens=self.listens[i])

    def tick(self, tick: int) -> LinkTick:
        B, n, link = self.batch, self.n, self.link
        t0 = tick * self.dt
        (p50, p99), hop = link.plan_ms, link.hop_ms[0] / 1e3
        sigma = math.log(p99 / p50) / 2.326 if p99 > p50 > 0 else 0.0     # z of the 99th pct
        done = [t0] * B       # when the previous robot of each team sent its intent (robot 0: none)
        out = LinkTick([], [], [], torch.full((B, n, n), -1, dtype=torch.int8),
                       torch.zeros(B, n, dtype=torch.float64), [])
        prev = None
        for i in range(n):
            lost = torch.rand(B, generator=self.gen) < link.loss
            plan = p50 / 1e3 * torch.exp(sigma * torch.randn(B, generator=self.gen,
                                                             dtype=torch.float64))
            on_time = torch.zeros(B, dtype=torch.bool)
            late = torch.zeros(B, dtype=torch.bool)
            runs: list[Run] = []
            for b in range(B):
                sch = self.schedulers[i][b]
                arrive = math.inf if (lost[b] or not self.listens[i]) else done[b] + hop
                got = sch.on_frame(tick, None, True, t0)
                if not got:          # waiting for robot i-1's intent of this tick
                    due = t0 + self.timing.deadline_s(i)    # at the deadline is late, as on a robot
                    got = sch.on_intent(tick, arrive) if arrive < due else sch.on_timer(due)
                run = got[0]
                on_time[b] = run.trigger == Trigger.INTENT
                late[b] = math.isfinite(arrive) and not on_time[b]
                runs.append(run)
            # the forms, by the robot's own cache rules (Controller.step's order)
            cache = self.caches[i]
            if self.listens[i]:
                if prev is not None and bool(on_time.any()):
                    cache.update(prev, tick, on_time)
                intent, mode = cache.lookup(tick)
            else:
                intent = self.layout.empty(B)
                mode = torch.full((B,), int(CacheMode.FRESH), dtype=torch.long)
            out.slot_age[:, i] = torch.where(intent.valid, intent.age, -1).to(torch.int8)
            mine = self.layout.insert(intent, i, torch.zeros(B, self.layout.horizon + 1, 1),
                                      torch.zeros(B, self.layout.horizon, 1))
            if self.listens[i] and prev is not None and bool(late.any()):
                cache.update(prev, tick, late)                # the cache for t + 1
            sent = torch.tensor([r.waited_s for r in runs], dtype=torch.float64) + plan
            done = (t0 + sent).tolist()
            out.on_time.append(on_time)
            out.late.append(late)
            out.mode.append(mode)
            out.sent_s[:, i] = sent
            out.runs.append(runs)
            prev = mine
        return out

    def reset(self, rows: torch.Tensor) -> None:
        """Teams whose episode restarted (B,) bool: caches empty, schedulers new."""
        for cache in self.caches:
            cache.clear(rows)
        for i in range(self.n):
            for b in rows.nonzero().flatten().tolist():
                self.schedulers[i][b] = self._scheduler(i)

    def select(self, rows: torch.Tensor) -> None:
        """Keep only some teams (index tensor)."""
        keep = rows.tolist()
        for cache in self.caches:
            cache.select(rows)
        self.schedulers = [[s[k] for k in keep] for s in self.schedulers]
        self.batch = len(keep)


class TeamRuntime:
    """n deployed controllers over B teams, linked as `LinkConfig` says."""

    def __init__(self, models: Sequence[WorldModel], layout: IntentLayout,
                 planner_cfg: PlannerConfig, chain: ChainSettings, action_scale: Sequence[float],
                 batch: int, dt: float, comm: str = 'seq', seed: int = 0,
                 link: LinkConfig = LinkConfig(), deterministic: bool = True,
                 device: torch.device | str = 'cpu',
                 controller: type[Controller] = Controller) -> None:
        self.n, self.batch, self.dt, self.comm = len(models), batch, float(dt), comm
        self.layout, self.link, self.device = layout, link, torch.device(device)
        self.timing = link.timing(self.dt)
        self.seed, self.deterministic = int(seed), deterministic
        self.controllers = [   # `controller`: the deployed class, or an evaluation diagnostic
            controller(m, layout, planner_cfg, i, chain, action_scale, batch=batch,
                       cache_max_age_ticks=link.cache_max_age_ticks, seed=seed + 1000 * i,
                       comm=comm, device=device)
            for i, m in enumerate(models)]
        self.chain_link = ChainLink(self.n, batch, self.dt, link, layout.horizon,
                                    [c.listens for c in self.controllers], seed)
        # per robot: counts of fresh / cached / masked ticks, and scheduler triggers; the time
        # from the frame to each robot's command, summed (the chain's latency)
        self.mode_counts = torch.zeros(self.n, 3, dtype=torch.long)
        self.command_s_sum = torch.zeros(self.n, dtype=torch.float64)
        self.command_s_max = torch.zeros(self.n, dtype=torch.float64)
        self.trigger_counts = torch.zeros(self.n, len(Trigger), dtype=torch.long)
        self.team_ids = torch.arange(batch)
        self.last_link: LinkTick | None = None
        self.last_modes: list[torch.Tensor] = []     # per robot, the mode its controller used

    def _seeds(self, i: int, tick: int) -> list[int] | None:
        if not self.deterministic:
            return None
        base = self.seed + 1000 * i + tick
        return [base + 100_003 * int(b) for b in self.team_ids]

    @torch.no_grad()
    def act(self, obs: torch.Tensor, tick: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One control tick of every team: obs (B, n, obs_dim) -> (commands (B, n, 3) in m/s,
        m/s, rad/s, ok (B, n): a finite plan was commanded)."""
        B, n = self.batch, self.n
        link = self.last_link = self.chain_link.tick(tick)
        commands = torch.zeros(B, n, 3, dtype=torch.float64, device=self.device)
        ok = torch.zeros(B, n, dtype=torch.bool, device=self.device)
        prev_out = None
        self.last_modes = []
        for i, ctl in enumerate(self.controllers):
            on_time, late = link.on_time[i], link.late[i]
            if prev_out is not None and bool(on_time.any()):
                ctl.receive(prev_out.intent, tick, on_time.to(self.device))
            out = ctl.step(obs[:, i], tick, self.dt, self._seeds(i, tick))
            if prev_out is not None and bool(late.any()):
                ctl.receive(prev_out.intent, tick, late.to(self.device))   # cache for t + 1
            commands[:, i], ok[:, i] = out.commands, out.ok
            self.last_modes.append(out.mode.cpu())
            self.mode_counts[i] += torch.bincount(out.mode.cpu(), minlength=3)[:3]
            self.trigger_counts[i] += torch.bincount(
                torch.tensor([int(r.trigger) for r in link.runs[i]]), minlength=len(Trigger))
            sent = link.sent_s[:, i]
            self.command_s_sum[i] += sent.sum()
            self.command_s_max[i] = max(float(self.command_s_max[i]), float(sent.max()))
            prev_out = out
        return commands, ok

    def reset(self, rows: torch.Tensor) -> None:
        """Teams whose episode restarted (B,) bool: robots at rest, caches and warm starts gone."""
        for ctl in self.controllers:
            ctl.stop(rows.to(self.device))
            ctl.forget(rows.to(self.device))
        self.chain_link.reset(rows)

    def select(self, rows: torch.Tensor) -> None:
        """Keep only some teams (index tensor): the episodes still running."""
        for ctl in self.controllers:
            ctl.select(rows.to(self.device))
        self.chain_link.select(rows.cpu())
        self.team_ids = self.team_ids[rows.cpu()]
        self.batch = int(rows.numel())
