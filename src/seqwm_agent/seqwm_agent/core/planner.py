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
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .config import PlannerConfig
from .intent import IntentError, IntentLayout, IntentTensors
from .lowpass import LowPassCoefficients, butterworth1, filter_sequence
from .rollout import LatentRollout
from .world_model import WorldModel


@dataclass
class PlanResult:
    """Outcome of one `plan` call for B problems."""

    actions: torch.Tensor      # (B, H, da) planned actions in [-1, 1]; actions[:, 0] is executed
    latents: torch.Tensor      # (B, H+1, dz) predicted z_0..z_H under `actions` (for the intent)
    value: torch.Tensor        # (B,) V(actions), Eq. 7, in reward units
    iterations: int            # MPPI iterations run (K, or fewer after the KL early stop)
    time_ms: float             # wall time of the call, encoder included
    std: torch.Tensor          # (B, H, da) final sampling std
    kl: torch.Tensor | None    # (B,) KL of the last iteration's update (None when not computed)


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

        A move restarts the random stream (from the same seed) and forgets the warm start."""
        dev = self.model.device
        if dev == self._on_device:
            return
        self.generator = torch.Generator(device=dev)
        if self._seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(self._seed)
        self._filter_matrix = (self._filter_impulses.to(dev)
                               if self._filter_impulses is not None else None)
        self._prev_mean = None
        self._on_device = dev

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
            bufs = {'eps': torch.empty(H, B, cfg.num_samples, da, device=dev),
                    'eps_f': torch.empty(H, B, cfg.num_samples, da, device=dev),
                    'actions': torch.zeros(H, B, N, da, device=dev),
                    'values': torch.zeros(B, N, device=dev)}
            self._buffers[key] = bufs
        return bufs

    def plan(self, obs: torch.Tensor, intent: IntentTensors,
             early_stop: bool | None = None) -> PlanResult:
        """Plan for B problems. obs (B, obs_dim); intent with batch B (or 1, broadcast)."""
        t_start = time.perf_counter()
        self._follow_device()
        with torch.inference_mode():
            obs = obs.to(self.device, torch.float32)
            z0 = self.model.encode(obs)
            result = self._plan_latent(z0, intent, early_stop)
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        result.time_ms = 1000.0 * (time.perf_counter() - t_start)
        return result

    def plan_latent(self, z0: torch.Tensor, intent: IntentTensors,
                    early_stop: bool | None = None) -> PlanResult:
        """As `plan`, from latents z_0 (B, dz) already encoded."""
        t_start = time.perf_counter()
        self._follow_device()
        with torch.inference_mode():
            result = self._plan_latent(z0.to(self.device), intent, early_stop)
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        result.time_ms = 1000.0 * (time.perf_counter() - t_start)
        return result

    def _plan_latent(self, z0: torch.Tensor, intent: IntentTensors,
                     early_stop: bool | None) -> PlanResult:
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
            values[:, :Na] = rollout.run(ws_a, sample_actor=True, generator=self.generator)
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
        iterations = 0
        for _ in range(cfg.iterations):
            if ws is not None:
                eps = torch.randn(bufs['eps'].shape, generator=self.generator, device=self.device,
                                  out=bufs['eps'])
                if self._filter_matrix is not None:                      # low-pass along H
                    eps = torch.mm(self._filter_matrix, eps.view(H, -1),
                                   out=bufs['eps_f'].view(H, -1)).view_as(eps)
                torch.addcmul(mean.unsqueeze(2), std.unsqueeze(2), eps, out=ws.actions)
                ws.actions.clamp_(-1.0, 1.0)
                values[:, Na:] = rollout.run(ws)
                actions[:, :, Na:] = ws.actions
            elite_value, idx = torch.topk(values, M, dim=1)                 # (B, M), sorted
            elites = actions.gather(2, idx[None, :, :, None].expand(H, B, M, da))  # (H, B, M, da)
            w = torch.exp(cfg.temperature * (elite_value - elite_value[:, :1]))
            w = (w / w.sum(dim=1, keepdim=True))[None, :, :, None]          # (1, B, M, 1)
            new_mean = (w * elites).sum(dim=2)
            new_std = ((w * (elites - new_mean.unsqueeze(2)).pow(2)).sum(dim=2)).sqrt()
            new_std.clamp_(cfg.min_std, cfg.max_std)
            iterations += 1
            if stop_early:
                kl = kl_diag_gaussians(new_mean, new_std, mean, std)
            mean, std = new_mean, new_std
            if stop_early and bool((kl < cfg.kl_threshold).all()):
                break

        # the plan: the final mean, rolled out once for its trajectory and value
        ws_m = rollout.workspace(B, 1)
        rollout.set_start(ws_m)
        ws_m.actions.copy_(mean.unsqueeze(2))
        value = rollout.run(ws_m)[:, 0].clone()
        latents = ws_m.latents[:, :, 0].transpose(0, 1).clone()              # (B, H+1, dz)
        self._prev_mean = mean.clone()
        return PlanResult(actions=mean.transpose(0, 1).contiguous(), latents=latents, value=value,
                          iterations=iterations, time_ms=0.0,
                          std=std.transpose(0, 1).contiguous(), kl=kl)
