"""Sequential MPPI planner of one agent (paper Sec. 4.2, App. A.1-A.2, C.5).

Agent i plans alone with its own world model, conditioned at every rollout step h on the
predecessors' slots of the intent it received (IntentLayout.model_inputs with agent_index = i).
One call of `plan` solves B independent problems (B environments for the trainer, B = 1 on a
robot):

1. z_0 = E(o); e_h for h = 0..H from the intent.
2. N_a actor sequences: a_h ~ pi(z_h, e_h) along a latent rollout; sampled once per plan and
   kept as fixed candidates in every iteration (their values do not change, so they are
   evaluated once).
3. K iterations: N_p Gaussian sequences a = clip(mu + sigma * lowpass(eps), -1, 1) (the noise eps
   ~ N(0, I) is filtered along the horizon by the first-order Butterworth of lowpass.py, cutoff
   f_c at the control rate f_s), valued by Eq. 5/7; top-M elites; weights
   alpha_m = exp(tau (V_m - V_max)); mu, sigma from the weighted elites (Eq. 8), sigma clamped to
   [min_std, max_std].
4. Early stop (optional): after each iteration, KL(N^(k+1) || N^(k)) of the diagonal Gaussians
   over all H x da dimensions; stop when it is below eta for every problem of the batch (the
   batch shares one loop, so a converged problem keeps iterating until all have converged,
   which can only refine it).
5. The plan is the final mean mu (deterministic, smooth: what a robot should execute); its own
   latent rollout gives the predicted trajectory z_0..z_H that goes into the intent and the
   plan's value V(mu).

Warm start: the next call starts from the previous mean shifted by one step (the last step
held), sigma from max_std.

Planning through the command chain (`PlanChain`, docs/core.md): a robot does not execute the
planner's action but what its command chain (low-pass, acceleration limit, clamp; command.py)
makes of it from the chain's current state. With a chain, the search runs over commands c_h,
the quantity the world model is trained on (the trainer stores executed commands), and every
candidate is valued as its projection, step by step, onto what the chain can execute from its
state (`chain_inverse` gives the chain input whose output is the nearest executable command,
`chain_step` executes it): the world model sees exactly what the robot would do, and the plan
reports both (`commands`: the executed c, what the intent carries to successors; `actions`: the
chain inputs, whose first step is handed to the robot's chain, which then sends c_0). The
sampling distribution is updated from the candidates as drawn, not as projected: a command
beyond what the chain can reach in one step means "as far as it goes", and averaging projected
elites would pull every plan inside the reachable set, never accelerating fully. Searching over
the chain's input instead leaves directions in which the acceleration limit makes many inputs
give one command; the mean drifts along them and the filter remembers the drift as overshoot
(docs/agent.md §1b has the measurements of the three forms).

Batch independence: each of the B problems draws its noise from its own generator (`seeds`
re-seeds them per call) and the KL early stop freezes each problem's distribution when it has
converged, so a problem's plan does not depend on which other problems share the call: B = 1 on
a robot and B = thousands in the simulator give the same plan for the same inputs (a test pins
it bit for bit).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch

from .command import ChainParams, ChainState, chain_inverse, chain_step
from .config import PlannerConfig
from .intent import IntentError, IntentLayout, IntentTensors
from .lowpass import LowPassCoefficients, butterworth1, filter_sequence
from .rollout import MIN_ROWS, LatentRollout, rows_mm
from .world_model import WorldModel


@dataclass
class PlanChain:
    """The command chain a plan runs through: constants, each problem's state, time since the
    last command of each problem (float or (B,) s; the later steps use the nominal period)."""

    params: ChainParams
    state: ChainState          # (B, 3) each
    dt0: torch.Tensor | float | None = None


@dataclass
class PlanResult:
    """Outcome of one `plan` call for B problems."""

    actions: torch.Tensor      # (B, H, da) planned actions in [-1, 1] (the chain's input)
    commands: torch.Tensor     # (B, H, da) what the world model saw: the chain's commands in
                               # model units when planning through it, else = actions
    latents: torch.Tensor      # (B, H+1, dz) predicted z_0..z_H under `commands` (for the intent)
    value: torch.Tensor        # (B,) V, Eq. 7, in reward units
    iterations: int            # MPPI iterations run, the most of any problem
    time_ms: float             # wall time of the call, encoder included
    std: torch.Tensor          # (B, H, da) final sampling std
    kl: torch.Tensor | None    # (B,) KL of each problem's last update (None when not computed)
    iterations_per_problem: torch.Tensor | None = None   # (B,) K, or fewer after the early stop


def kl_diag_gaussians(mu1: torch.Tensor, std1: torch.Tensor, mu0: torch.Tensor,
                      std0: torch.Tensor) -> torch.Tensor:
    """KL(N(mu1, std1^2) || N(mu0, std0^2)) of diagonal Gaussians with means/stds (H, B, da) -> (B,)."""
    var0, var1 = std0.pow(2), std1.pow(2)
    kl = torch.log(std0 / std1) + (var1 + (mu1 - mu0).pow(2)) / (2 * var0) - 0.5
    return kl.sum(dim=(0, 2))


class SequentialPlanner:
    """MPPI over one agent's world model, conditioned on its predecessors' intent."""

    def __init__(self, model: WorldModel, layout: IntentLayout, cfg: PlannerConfig,
                 agent_index: int, seed: int | None = None) -> None:
        mc = model.cfg
        if (layout.latent_dim, layout.action_dim, layout.num_agents) != (
                mc.latent_dim, mc.action_dim, mc.num_agents):
            raise IntentError(f'{layout} does not match the model (latent_dim {mc.latent_dim}, '
                              f'action_dim {mc.action_dim}, num_agents {mc.num_agents})')
        if layout.horizon != cfg.horizon:
            raise IntentError(f'{layout} has horizon {layout.horizon}, planner.horizon is {cfg.horizon}')
        if not 0 <= agent_index < mc.num_agents:
            raise ValueError(f'agent_index {agent_index} outside 0..{mc.num_agents - 1}')
        self.model = model
        self.layout = layout
        self.cfg = cfg
        self.agent_index = agent_index
        self.rollout = LatentRollout(model, cfg.horizon, cfg.discount)
        self.coeffs: LowPassCoefficients | None = (
            butterworth1(cfg.lowpass_cutoff_hz, cfg.control_hz)
            if cfg.lowpass_cutoff_hz is not None else None)
        # The filter is linear in its input sequence (its start state is x[0] itself), so
        # filtering every noise sequence along the horizon is one matmul with the filter's
        # responses to unit impulses: F[:, j] = filter_sequence(e_j).
        self._filter_impulses: torch.Tensor | None = None
        if self.coeffs is not None:
            self._filter_impulses = filter_sequence(torch.eye(cfg.horizon, dtype=torch.float64),
                                                    self.coeffs, dim=0).float()
        self._seed = seed
        self._prev_mean: torch.Tensor | None = None     # (H, B, da)
        self._buffers: dict[tuple[int, torch.device], dict[str, torch.Tensor]] = {}
        self._on_device: torch.device | None = None
        self._follow_device()

    def _follow_device(self) -> None:
        """Put the planner's own tensors on the model's device (again, if the model moved).

        A move restarts the random streams (from the same seed) and forgets the warm start."""
        dev = self.model.device
        if dev == self._on_device:
            return
        self._generators: list[torch.Generator] = []
        self._filter_matrix = (self._filter_impulses.to(dev)
                               if self._filter_impulses is not None else None)
        self._prev_mean = None
        self._on_device = dev

    def generators(self, B: int, seeds: Sequence[int] | None = None) -> list[torch.Generator]:
        """One random stream per problem: problem b of a planner seeded s starts from seed
        s + 7919 b; `seeds` re-seeds problem b with seeds[b] (a robot's seed + tick)."""
        gens = self._generators
        if len(gens) != B:
            dev = self.device
            gens[:] = [torch.Generator(device=dev) for _ in range(B)]
            for b, g in enumerate(gens):
                if self._seed is None:
                    g.seed()
                else:
                    g.manual_seed(self._seed + 7919 * b)
        if seeds is not None:
            if len(seeds) != B:
                raise ValueError(f'{len(seeds)} seeds for {B} problems')
            for g, s in zip(gens, seeds):
                g.manual_seed(int(s))
        return gens

    def select(self, rows: torch.Tensor) -> None:
        """Keep only some problems (index tensor): their warm start and random streams."""
        keep = rows.tolist()
        if self._prev_mean is not None:
            self._prev_mean = self._prev_mean[:, rows]
        if self._generators:
            self._generators = [self._generators[k] for k in keep]
        self._buffers.clear()

    @property
    def device(self) -> torch.device:
        return self.model.device

    def reset(self, batch: int | None = None, which: torch.Tensor | None = None) -> None:
        """Forget the warm start: for all problems, or only where `which` (B,) is true
        (environments that were just reset). `batch` is accepted for symmetry with B-sized calls."""
        if which is None or self._prev_mean is None:
            self._prev_mean = None
            return
        which = which.to(device=self._prev_mean.device, dtype=torch.bool)
        if which.shape != (self._prev_mean.shape[1],):
            raise ValueError(f'which has shape {tuple(which.shape)}, expected ({self._prev_mean.shape[1]},)')
        with torch.inference_mode():
            self._prev_mean[:, which] = 0.0

    def _bufs(self, B: int) -> dict[str, torch.Tensor]:
        key = (B, self.device)
        bufs = self._buffers.get(key)
        if bufs is None:
            H, da, cfg = self.cfg.horizon, self.model.cfg.action_dim, self.cfg
            N = cfg.num_samples + cfg.num_pi_trajs
            dev = self.device
            bufs = {'eps': torch.empty(B, H, cfg.num_samples * da, device=dev),
                    'eps_f': torch.empty(B, H, cfg.num_samples * da, device=dev),
                    'drawn': torch.empty(H, B, cfg.num_samples, da, device=dev),
                    'actions': torch.zeros(H, B, N, da, device=dev),
                    'values': torch.zeros(B, N, device=dev)}
            self._buffers[key] = bufs
        return bufs

    def plan(self, obs: torch.Tensor, intent: IntentTensors, early_stop: bool | None = None,
             seeds: Sequence[int] | None = None, chain: PlanChain | None = None) -> PlanResult:
        """Plan for B problems. obs (B, obs_dim); intent with batch B (or 1, broadcast);
        `seeds` (B ints) re-seeds each problem's stream; `chain`: plan through the command chain."""
        t_start = time.perf_counter()
        self._follow_device()
        with torch.inference_mode():
            obs = obs.to(self.device, torch.float32)
            z0 = rows_mm(self.model.encode, obs)
            result = self._plan_latent(z0, intent, early_stop, seeds, chain)
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        result.time_ms = 1000.0 * (time.perf_counter() - t_start)
        return result

    def plan_latent(self, z0: torch.Tensor, intent: IntentTensors,
                    early_stop: bool | None = None, seeds: Sequence[int] | None = None,
                    chain: PlanChain | None = None) -> PlanResult:
        """As `plan`, from latents z_0 (B, dz) already encoded."""
        t_start = time.perf_counter()
        self._follow_device()
        with torch.inference_mode():
            result = self._plan_latent(z0.to(self.device), intent, early_stop, seeds, chain)
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        result.time_ms = 1000.0 * (time.perf_counter() - t_start)
        return result

    def _plan_latent(self, z0: torch.Tensor, intent: IntentTensors, early_stop: bool | None,
                     seeds: Sequence[int] | None, chain: PlanChain | None) -> PlanResult:
        cfg, H = self.cfg, self.cfg.horizon
        da = self.model.cfg.action_dim
        B = z0.shape[0]
        Np, Na, M = cfg.num_samples, cfg.num_pi_trajs, cfg.num_elites
        stop_early = cfg.early_stop if early_stop is None else early_stop
        intent = intent.to(self.device)
        if intent.batch_size == 1 and B > 1:
            intent = IntentTensors(*(t.expand(B, *t.shape[1:]) for t in
                                     (intent.latents, intent.actions, intent.valid, intent.age)))
        elif intent.batch_size != B:
            raise IntentError(f'intent batch {intent.batch_size} does not match obs batch {B}')
        e = self.layout.model_inputs(intent, self.agent_index)             # (B, H+1, de)
        rollout = self.rollout
        rollout.prepare(e, z0)
        bufs = self._bufs(B)
        gens = self.generators(B, seeds)
        through = _Through(chain, B, self.device) if chain is not None else None

        # initial distribution: warm start from the shifted previous mean
        mean = torch.zeros(H, B, da, device=self.device)
        if self._prev_mean is not None and self._prev_mean.shape[1] == B:
            mean[:-1] = self._prev_mean[1:]
            mean[-1] = self._prev_mean[-1]
        std = torch.full((H, B, da), cfg.max_std, device=self.device)

        # actor candidates: sampled once, valued once
        actions, values = bufs['actions'], bufs['values']
        if Na > 0:
            ws_a = rollout.workspace(B, Na)
            rollout.set_start(ws_a)
            step = through.stepper(Na, actions[:, :, :Na]) if through is not None else None
            values[:, :Na] = rollout.run(ws_a, sample_actor=True, generators=gens, through=step)
            if through is None:
                actions[:, :, :Na] = ws_a.actions
        if cfg.init == 'actor':
            # the actor guides the initial distribution: fit it to the actor's candidates, so
            # the Gaussian samples start where the model has seen data
            pa = actions[:, :, :Na]                                          # (H, B, Na, da)
            mean = pa.mean(dim=2)
            std = pa.std(dim=2).clamp_(cfg.min_std, cfg.max_std)
        ws = rollout.workspace(B, Np) if Np > 0 else None
        if ws is not None:
            rollout.set_start(ws)

        kl = None
        done = torch.zeros(B, dtype=torch.bool, device=self.device)
        iters = torch.zeros(B, dtype=torch.long, device=self.device)
        iterations = 0
        for _ in range(cfg.iterations):
            if ws is not None:
                eps = bufs['eps']                                            # (B, H, Np * da)
                for b, g in enumerate(gens):                                 # one stream per problem
                    torch.randn(eps.shape[1:], generator=g, device=self.device, out=eps[b])
                if self._filter_matrix is not None:                          # low-pass along H
                    eps = torch.matmul(self._filter_matrix, eps, out=bufs['eps_f'])
                c = bufs['drawn']                                            # as drawn
                torch.addcmul(mean.unsqueeze(2), std.unsqueeze(2),
                              eps.view(B, H, Np, da).transpose(0, 1), out=c)
                c.clamp_(-1.0, 1.0)
                if through is None:
                    ws.actions.copy_(c)
                else:                                                        # executable ones
                    through.project(c, ws.actions)
                values[:, Na:] = rollout.run(ws)
                actions[:, :, Na:] = c
            elite_value, idx = torch.topk(values, M, dim=1)                 # (B, M), sorted
            elites = actions.gather(2, idx[None, :, :, None].expand(H, B, M, da))  # (H, B, M, da)
            w = torch.exp(cfg.temperature * (elite_value - elite_value[:, :1]))
            w = (w / w.sum(dim=1, keepdim=True))[None, :, :, None]          # (1, B, M, 1)
            new_mean = (w * elites).sum(dim=2)
            new_std = ((w * (elites - new_mean.unsqueeze(2)).pow(2)).sum(dim=2)).sqrt()
            new_std.clamp_(cfg.min_std, cfg.max_std)
            iterations += 1
            if not stop_early:
                mean, std = new_mean, new_std
                iters += 1
                continue
            # early stop per problem: a converged problem keeps its distribution from now on
            active = ~done
            iters += active
            step_kl = kl_diag_gaussians(new_mean, new_std, mean, std)
            kl = step_kl if kl is None else torch.where(active, step_kl, kl)
            keep = active[None, :, None]
            mean = torch.where(keep, new_mean, mean)
            std = torch.where(keep, new_std, std)
            done |= active & (step_kl < cfg.kl_threshold)
            if bool(done.all()):
                break

        # the plan: the final mean, rolled out once for its trajectory and value
        # (as MIN_ROWS identical sequences: fewer rows would round batch-dependently, rows_mm)
        R_m = MIN_ROWS
        ws_m = rollout.workspace(B, R_m)
        rollout.set_start(ws_m)
        plan_in = mean.unsqueeze(2).expand(H, B, R_m, da)
        if through is None:
            ws_m.actions.copy_(plan_in)
            chain_in = mean
        else:
            raw = torch.empty(H, B, R_m, da, device=self.device)
            through.project(plan_in, ws_m.actions, raw)
            chain_in = raw[:, :, 0]
        value = rollout.run(ws_m)[:, 0].clone()
        latents = ws_m.latents[:, :, 0].transpose(0, 1).clone()              # (B, H+1, dz)
        commands = ws_m.actions[:, :, 0].transpose(0, 1).clone()             # (B, H, da)
        self._prev_mean = mean.clone()
        return PlanResult(actions=chain_in.transpose(0, 1).contiguous(), commands=commands,
                          latents=latents, value=value, iterations=iterations, time_ms=0.0,
                          std=std.transpose(0, 1).contiguous(), kl=kl,
                          iterations_per_problem=iters)


class _Through:
    """The command chain inside a plan: float32 copies of its constants and start state."""

    def __init__(self, chain: PlanChain, B: int, device: torch.device) -> None:
        self.p = chain.params.like(torch.float32, device)
        self.state = chain.state.to(torch.float32, device)
        if tuple(self.state.last.shape) != (B, 3):
            raise ValueError(f'chain state has shape {tuple(self.state.last.shape)}, '
                             f'expected ({B}, 3)')
        dt0 = chain.dt0
        if torch.is_tensor(dt0):
            dt0 = dt0.to(device=device, dtype=torch.float32).reshape(B, 1, 1)
        self.dt0 = dt0
        self.B = B

    def _follow(self, state: ChainState, c: torch.Tensor, h: int
                ) -> tuple[ChainState, torch.Tensor, torch.Tensor]:
        """Step h: the chain input for command c (model units), the new state, the executed
        command (model units)."""
        dt = self.dt0 if h == 0 else None
        a = chain_inverse(self.p, state, c, dt)
        state, v = chain_step(self.p, state, a, dt)
        return state, a, v * self.p.inv_scale

    def project(self, commands: torch.Tensor, out: torch.Tensor,
                raw_out: torch.Tensor | None = None) -> None:
        """Commands (H, B, R, da) -> the executable ones into `out` (and the chain inputs that
        produce them into `raw_out`), step by step from each problem's chain state."""
        state = self.state.expand(commands.shape[2])
        for h in range(commands.shape[0]):
            state, a, c = self._follow(state, commands[h], h)
            out[h].copy_(c)
            if raw_out is not None:
                raw_out[h].copy_(a)

    def stepper(self, R: int, sampled_out: torch.Tensor):
        """For the actor's rollout: step t keeps the sampled commands (B * R, da) in
        sampled_out[t] (B, R, da) and replaces them, in place, by the executable ones."""
        state = [self.state.expand(R)]

        def step(t: int, a2: torch.Tensor) -> None:
            c = a2.view(self.B, R, -1)
            sampled_out[t].copy_(c)
            state[0], _, executed = self._follow(state[0], c, t)
            c.copy_(executed)
        return step
