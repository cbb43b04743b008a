"""Losses and the sequential update of every agent's world model (paper Eq. 3, Eq. 4, Sec. 4.1).

One `SequentialUpdate.update(batch)`:
  order   = identity, or a random permutation with probability shuffle_prob
  e^1     = empty intent
  for agent i in order:
      keep  = visible slots (seq: predecessors, dec: none, cen: all others) and, per sample and
              slot, not randomly masked (mask_prob); seq: in the form the deployed link gave
              agent i at that tick (batch.slot_age: fresh, the previous tick's prediction
              shifted by the cache rule, or masked)
      train i on (o, a, r, o') with e_h = model_inputs(mask(e^i, keep))[h]       (Eq. 3, Eq. 4)
      e^{i+1} = insert(e^i, i, z^i_0..H predicted by i's *updated* model, a^i)   (seq)
cen uses every other agent's prediction from a stepwise joint rollout of the current models.

Eq. 3 for agent i, with z_0 = E(o_0), z_{h+1} = D(z_h, a_h, e_h) and step weights rho^h:
  dynamics  || z_{h+1} - sg(E(o'_h)) ||^2
  reward    Soft-CE(R(z_h, a_h, e_h), r_h)
  value     Soft-CE(Q(z_h, a_h, e_h), G_h),  G_h = n-step return + gamma^m (1 - terminated)
            min Q_target(z', pi(z', e'), e') at the state m rows later (or where the episode ended)
  termination (models with the head) BCE(T(z_h, a_h, e_h), terminated_h): not in the paper;
            the planner stops a rollout's value where the model expects the episode to end
Eq. 4: actor on sg(z_h): entropy_coef * log pi(a|z_h, e_h) - Q(z_h, a, e_h) / S, S = EMA of the
batch's 5-95 percentile range of Q (Eq. 15), at least 1.
Gradients never cross the communication channel (intents are built without grad).

Each agent's step is four pure functions of (model, tensors): `td_targets`, `model_loss`,
`actor_loss`, `predict`. They run through torch.compile (`TrainConfig.compile`, core/compiled.py)
with the same functions as the eager reference and fallback; their random draws are arguments.
The sequential order is untouched: agent i+1's inputs come from agent i's updated model.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..core.compiled import Compiled
from ..core.intent import IntentLayout, IntentTensors
from ..core.world_model import WorldModel
from .buffer import Batch
from .config import TrainConfig
from .team import joint_rollout, slot_inputs, visible


def td_targets(m: WorldModel, next_obs: torch.Tensor, o_boot: torch.Tensor, e_boot: torch.Tensor,
               noise: torch.Tensor, ret: torch.Tensor,
               boot_disc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamics targets sg(E(o'_h)) (H, B, dz) and TD targets G_h (H, B) (no grad)."""
    z_target = m.encode(next_obs)
    z_b = m.encode(o_boot)
    a_b = m.pi(z_b, e_boot, noise=noise).action
    return z_target, ret + boot_disc * m.Q(z_b, a_b, e_boot, 'min', target=True)


def model_loss(m: WorldModel, obs0: torch.Tensor, a: torch.Tensor, e: torch.Tensor,
               z_target: torch.Tensor, G: torch.Tensor, reward: torch.Tensor,
               terminated: torch.Tensor, w: torch.Tensor,
               coefs: tuple[float, float, float, float]) -> tuple[torch.Tensor, ...]:
    """Eq. 3 along the latent rollout from E(o_0):
    (loss, dynamics, reward, value, termination, z (H, B, dz)).

    coefs = (dynamics_coef, reward_coef, q_coef, termination_coef); w (H, B) = rho^h * alive;
    terminated (H, B) bool. The termination term is 0 for a model without the head."""
    two_hot, H = m.two_hot, a.shape[0]
    z = m.encode(obs0)
    zs, z_next, r_logits, d_logits = [], [], [], []
    for h in range(H):                       # D (with R, same trunk pass) is sequential in h
        zs.append(z)
        out = m.step(z, a[h], e[h])
        z = out.next
        z_next.append(z)
        r_logits.append(out.reward)
        d_logits.append(out.termination)
    z_roll = torch.stack(zs)                                                     # (H, B, dz)
    q_logits = m.Q(z_roll, a, e[:H], 'all')                  # every step at once: (2, H, B, bins)
    dyn = (w * (torch.stack(z_next) - z_target).pow(2).mean(-1)).mean()
    rew = (w * two_hot.soft_ce(torch.stack(r_logits), reward)).mean()
    val = (w * two_hot.soft_ce(q_logits, G).mean(0)).mean()
    if d_logits[0] is None:
        term = torch.zeros((), device=obs0.device)
    else:
        term = (w * nn.functional.binary_cross_entropy_with_logits(
            torch.stack(d_logits), terminated.float(), reduction='none')).mean()
    loss = coefs[0] * dyn + coefs[1] * rew + coefs[2] * val + coefs[3] * term
    return loss, dyn, rew, val, term, z_roll


def actor_loss(m: WorldModel, z: torch.Tensor, e: torch.Tensor, w: torch.Tensor,
               noise: torch.Tensor, q_scale: torch.Tensor, entropy_coef: float,
               scale_tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4 on sg(z) (H, B, dz), with the Q scale S updated from this batch (Eq. 15):
    S <- tau S + (1 - tau) (q95 - q05) of the first step's Q (S = the range when unset, 0).
    Returns (loss, new S)."""
    pol = m.pi(z, e, noise=noise)
    q = m.Q(z, pol.action, e, 'avg')                                              # (H, B)
    q0 = q[0].detach().float()
    spread = torch.quantile(q0, 0.95) - torch.quantile(q0, 0.05)
    new_scale = torch.where(q_scale == 0, spread, scale_tau * q_scale + (1 - scale_tau) * spread)
    loss = ((entropy_coef * pol.log_prob - q / new_scale.clamp(min=1.0)) * w).mean()
    return loss, new_scale


def _rollout(m: WorldModel, obs0: torch.Tensor, a: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """Latents z_0..H (B, H+1, dz) of m from obs0 along actions a (H, B, da), inputs e."""
    z = m.encode(obs0)
    zs = [z]
    for h in range(a.shape[0]):
        z = m.next(z, a[h], e[h])
        zs.append(z)
    return torch.stack(zs, 1)


def predict(m: WorldModel, obs0: torch.Tensor, a: torch.Tensor, e: torch.Tensor,
            o_boot: torch.Tensor, e_boot: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """What agent i passes on (seq, no grad): its latents z_0..H along the taken actions
    (B, H+1, dz), and its bootstrap slot E(o') (H, B, dz) with pi's mean there (H, B, da)."""
    z_boot = m.encode(o_boot)
    return _rollout(m, obs0, a, e), z_boot, m.pi(z_boot, e_boot, deterministic=True).mean


def _select_slots(a: IntentTensors, b: IntentTensors, use_a: torch.Tensor) -> IntentTensors:
    """Slot by slot: a where use_a (B, n), else b."""
    k = use_a[:, :, None, None]
    return IntentTensors(torch.where(k, a.latents, b.latents), torch.where(k, a.actions, b.actions),
                         torch.where(use_a, a.valid, b.valid), torch.where(use_a, a.age, b.age))


def make_optimizers(model: WorldModel,
                    cfg: TrainConfig) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Adam for E/D/R/Q (encoder at lr x encoder_lr_scale) and a separate Adam for the actor."""
    enc = list(model._encoder.parameters())
    rest = [p for name, mod in model.named_children() if name in ('_trunk', '_dynamics_head',
                                                                  '_reward_head', '_termination_head',
                                                                  '_Qs')
            for p in mod.parameters()]
    # fused: one kernel for every parameter's Adam step (CPU and CUDA); same math as foreach
    model_opt = torch.optim.Adam([{'params': enc, 'lr': cfg.lr * cfg.encoder_lr_scale},
                                  {'params': rest, 'lr': cfg.lr}], lr=cfg.lr, fused=True)
    pi_opt = torch.optim.Adam(model._pi.parameters(), lr=cfg.lr, eps=1e-5, fused=True)
    return model_opt, pi_opt


class SequentialUpdate:
    """Owns the optimizers and Q scales of a team and performs sequential updates."""

    def __init__(self, models: Sequence[WorldModel], layout: IntentLayout, cfg: TrainConfig,
                 generator: torch.Generator | None = None, compile_mode: str | None = None) -> None:
        self.models = list(models)
        self.layout, self.cfg = layout, cfg
        self.n = len(self.models)
        self.device = self.models[0].device
        self.generator = generator or torch.Generator(device=self.device).manual_seed(cfg.seed)
        opts = [make_optimizers(m, cfg) for m in self.models]
        self.model_opts = [o[0] for o in opts]
        self.pi_opts = [o[1] for o in opts]
        self._model_params = [[p for grp in o.param_groups for p in grp['params']]
                              for o in self.model_opts]
        self._pi_params = [list(m._pi.parameters()) for m in self.models]
        self.q_scale = [torch.zeros((), device=self.device) for _ in self.models]   # 0: unset
        # the per-agent steps, compiled (or eager: the fallback and the reference)
        compile_mode = compile_mode or cfg.compile
        coefs = (cfg.dynamics_coef, cfg.reward_coef, cfg.q_coef, cfg.termination_coef)
        ent, stau = cfg.entropy_coef, cfg.scale_tau
        self._targets = Compiled(td_targets, 'update.td_targets', compile_mode)
        self._model_loss = Compiled(
            lambda *args: model_loss(*args, coefs), 'update.model_loss', compile_mode)
        self._actor_loss = Compiled(
            lambda *args: actor_loss(*args, ent, stau), 'update.actor_loss', compile_mode)
        self._predict = Compiled(predict, 'update.predict', compile_mode)
        self.num_updates = 0
        self.last_order: list[int] = list(range(self.n))
        self.last_inputs: dict[int, torch.Tensor] = {}   # agent -> e (H+1, B, de) it was trained on
        H = cfg.horizon
        self.rho = cfg.rho ** torch.arange(H, dtype=torch.float32, device=self.device)  # (H,)

    @property
    def compiled(self) -> bool:
        """Whether the per-agent steps run compiled (False: eager, by choice or fallback)."""
        return all(f.active for f in (self._targets, self._model_loss, self._actor_loss,
                                      self._predict))

    @property
    def window(self) -> int:

        """Rows per sampled window: H loss steps, the last one needing td_steps rows of return."""
        return self.cfg.horizon + self.cfg.td_steps - 1

    # ---- n-step returns ----------------------------------------------------------------------
    def nstep(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For loss steps h < H: discounted reward sum over up to td_steps rows within the episode
        (H, B), the row whose o' is bootstrapped from (H, B), and gamma^m (1 - terminated) (H, B)."""
        H, n_td, gamma = self.cfg.horizon, self.cfg.td_steps, self.cfg.discount
        dev = batch.reward.device
        idx = torch.arange(H, device=dev)[:, None] + torch.arange(n_td, device=dev)[None]  # (H, n)
        r, done = batch.reward[idx], batch.done[idx].float()                              # (H, n, B)
        cont = torch.cumprod(torch.cat([torch.ones_like(done[:, :1]), 1 - done[:, :-1]], 1), 1)
        disc = gamma ** torch.arange(n_td, device=dev, dtype=torch.float32)[None, :, None]
        ret = (cont * disc * r).sum(1)                                                    # (H, B)
        m = cont.sum(1)                                                                   # rows used
        last = (torch.arange(H, device=dev)[:, None] + m.long() - 1)                      # (H, B)
        term = batch.terminated.gather(0, last).float()
        return ret, last, (gamma ** m) * (1 - term)

    # ---- the sequential update ---------------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, float]:
        """One update of every agent, in the (possibly shuffled) order; returns mean losses."""
        cfg, H, n, layout = self.cfg, self.cfg.horizon, self.n, self.layout
        g, dev = self.generator, self.device
        B = batch.obs.shape[1]
        order = list(range(n))
        if cfg.shuffle_prob > 0 and float(torch.rand((), generator=g, device=dev)) < cfg.shuffle_prob:
            order = torch.randperm(n, generator=g, device=dev).tolist()
        vis = visible(cfg.comm, order).to(dev)                                   # (n, n)
        keep_rand = torch.rand(B, n, generator=g, device=dev) >= cfg.mask_prob   # (B, n)
        actions = batch.action[:H]                                              # (H, B, n, da)
        ret, last, boot_disc = self.nstep(batch)
        o_boot = batch.next_obs.gather(
            0, last[..., None, None].expand(H, B, n, batch.next_obs.shape[-1]))  # (H, B, n, obs)

        intent = layout.empty(B, dev)
        if cfg.comm == 'cen':     # every other agent's prediction, from the current models
            keep_all = vis[None].expand(B, n, n)
            lat, _ = joint_rollout(self.models, batch.obs[0], actions, keep_all)  # (H+1, B, n, dz)
            intent = IntentTensors(lat.permute(1, 2, 0, 3).contiguous(),
                                   actions.permute(1, 2, 0, 3).contiguous(),
                                   torch.ones(B, n, dtype=torch.bool, device=dev))
        # bootstrap slots z'^k = E_k(o'), a'^k = mean of pi_k, filled as agents are updated
        z_boot = torch.zeros(H, B, n, layout.latent_dim, device=dev)
        a_boot = torch.zeros(H, B, n, layout.action_dim, device=dev)
        if cfg.comm == 'cen':
            with torch.no_grad():
                for k, m in enumerate(self.models):
                    z_boot[:, :, k] = m.encode(o_boot[:, :, k])
                    a_boot[:, :, k] = m.pi(z_boot[:, :, k], torch.zeros(
                        H, B, layout.input_dim, device=dev), deterministic=True).mean

        # seq: the forms the deployed link produced (batch.slot_age, from runtime.team.ChainLink):
        # a slot of age 0 is the fresh prediction, age 1 the prediction of the tick before
        # shifted by the cache rule, anything else masked (ages >= 2 are rare at deployed rates)
        ages = batch.slot_age[0].long()                                          # (B, n, n)
        stale = cfg.comm == 'seq' and bool((ages == 1).any())
        prev_intent = layout.empty(B, dev) if stale else None
        stats: list[dict[str, torch.Tensor]] = []
        for i in order:
            keep = vis[i][None] & keep_rand                                      # (B, n)
            seen = intent
            if cfg.comm == 'seq':
                cached = (ages[:, i] == 1) & batch.prev_ok[0][:, None]
                keep = keep & ((ages[:, i] == 0) | cached)
                if stale:
                    seen = _select_slots(layout.shift(prev_intent, 1), intent, cached)
            e = layout.model_inputs(layout.mask(seen, keep)).transpose(0, 1)     # (H+1, B, de)
            e_boot = slot_inputs(z_boot.reshape(H * B, n, -1), a_boot.reshape(H * B, n, -1),
                                 keep.repeat(H, 1)).reshape(H, B, -1)
            self.last_inputs[i] = e.detach()
            stats.append(self._update_agent(i, batch, actions[:, :, i], ret, boot_disc,
                                            o_boot[:, :, i], e, e_boot))
            if cfg.comm == 'seq':   # what the just-updated model predicts goes to the successors
                with torch.no_grad():
                    zs, z_boot[:, :, i], a_boot[:, :, i] = self._predict(
                        self.models[i], batch.obs[0, :, i], actions[:, :, i], e, o_boot[:, :, i],
                        e_boot)
                    intent = layout.insert(intent, i, zs, actions[:, :, i].transpose(0, 1))
                    if stale:       # and what it predicted one tick earlier (the cache's)
                        a_prev = torch.cat([batch.prev_action[:, :, i], actions[:H - 1, :, i]])
                        e_prev = layout.model_inputs(layout.mask(
                            prev_intent, vis[i][None] & keep_rand)).transpose(0, 1)
                        z_prev = _rollout(self.models[i], batch.prev_obs[0, :, i], a_prev, e_prev)
                        prev_intent = layout.insert(prev_intent, i, z_prev, a_prev.transpose(0, 1))
        self.last_order = order
        self.num_updates += 1
        keys = list(stats[0])       # one host sync for every agent's figures
        means = torch.stack([torch.stack([st[k].float() for k in keys]) for st in stats]).mean(0)
        return dict(zip(keys, means.tolist()))

    def _update_agent(self, i: int, batch: Batch, a: torch.Tensor, ret: torch.Tensor,
                      boot_disc: torch.Tensor, o_boot: torch.Tensor, e: torch.Tensor,
                      e_boot: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eq. 3 then Eq. 4 for agent i. a (H, B, da), e (H+1, B, de), e_boot (H, B, de)."""
        cfg, H, m = self.cfg, self.cfg.horizon, self.models[i]
        w = self.rho[:, None] * batch.alive[:H].float()                          # (H, B)
        g, da = self.generator, a.shape[-1]
        boot_noise = torch.randn(o_boot.shape[:-1] + (da,), generator=g, device=self.device)
        pi_noise = torch.randn(a.shape, generator=g, device=self.device)
        with torch.no_grad():
            z_target, G = self._targets(m, batch.next_obs[:H, :, i], o_boot, e_boot, boot_noise,
                                        ret, boot_disc)
        loss, dyn, rew, val, term, z_pi = self._model_loss(
            m, batch.obs[0, :, i], a, e, z_target, G, batch.reward[:H], batch.terminated[:H], w)
        opt = self.model_opts[i]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self._model_params[i], cfg.grad_clip, foreach=True)
        opt.step()

        # actor (Eq. 4) on the rolled-out latents, without gradient into the model
        # (Q is a constant here: no weight gradients of the critic are computed for it)
        m._Qs.requires_grad_(False)
        try:
            pi_loss, self.q_scale[i] = self._actor_loss(m, z_pi.detach(), e[:H], w, pi_noise,
                                                        self.q_scale[i])
            self.pi_opts[i].zero_grad(set_to_none=True)
            pi_loss.backward()
        finally:
            m._Qs.requires_grad_(True)
        nn.utils.clip_grad_norm_(self._pi_params[i], cfg.grad_clip, foreach=True)
        self.pi_opts[i].step()
        m.soft_update_target_Q(cfg.tau)
        return {'loss': loss.detach(), 'dynamics': dyn.detach(), 'reward': rew.detach(),
                'value': val.detach(), 'termination': term.detach(), 'pi': pi_loss.detach(),
                'grad_norm': grad_norm,
                'q_scale': self.q_scale[i]}

    def state_dict(self) -> dict:
        return {'model_opts': [o.state_dict() for o in self.model_opts],
                'pi_opts': [o.state_dict() for o in self.pi_opts],
                'q_scale': [s.cpu() for s in self.q_scale], 'num_updates': self.num_updates,
                'generator': self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        for o, s in zip(self.model_opts, state['model_opts']):
            o.load_state_dict(s)
        for o, s in zip(self.pi_opts, state['pi_opts']):
            o.load_state_dict(s)
        self.q_scale = [s.to(self.device) for s in state['q_scale']]
        self.num_updates = int(state['num_updates'])
        self.generator.set_state(state['generator'])
