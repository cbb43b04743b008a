"""The planner's inference path through a WorldModel: value of many action sequences at once.

Same math as `WorldModel.next_and_reward` / `Q` / `pi` (a test pins them equal), arranged for
speed on one CPU core, where a plan is a few hundred small ops on (R, width) tensors:

* The intent e_h is the same for every candidate sequence of one planning problem, so its part
  of every first layer, W_e e_h + b, is computed once per plan (`prepare`) and folded into the
  weights as the row that multiplies a constant-1 input column. Per sequence only the (z, a)
  columns cost anything, and no bias pass is needed.
* [z_h, 1, a_h] live side by side in one buffer `za` (H+1, B, R, dz+1+da): the input of D, R
  and Q (and [z, 1] of pi) is a slice of it, no concatenation; D writes z_{h+1} straight into it.
  At h = 0 every sequence starts from the same z_0, so its part of the first layer is folded
  into the bias row too and D, R multiply only [1, a_0].
* D and R read the same input: their first layers are one matmul with 2h outputs, their second
  layers one batched matmul; the twin Q heads likewise.
* LayerNorm + Mish in few passes with preallocated buffers: the first layers' weight columns are
  centred over the outputs (then every output row has zero mean and LayerNorm is a scaling by
  1 / sqrt(mean(y^2) + eps), exact in real arithmetic), and
  mish(x) = x tanh(softplus(x)) = u - 2u / (1 + sigmoid(u)^2) with u = -x (exact; one sigmoid
  instead of the slow softplus + tanh).
* SimNorm as exp, a matmul with a block-diagonal ones matrix (each element's group sum) and a
  divide. LayerNorm bounds its input to
  |x| <= sqrt(dz - 1) max|g| + max|b| (g, b its affine); while that bound is below 80 the
  max-subtraction of a softmax is unnecessary (no overflow, no whole-group underflow), which
  `prepare` checks, falling back to the exact softmax otherwise.
* The two-hot heads are padded to a multiple of 8 bins (zero weights, -inf bias: probability 0)
  because odd matmul widths run slowly; rewards and Q stay in symlog space until one symexp
  per rollout.
* Weights are re-read by `prepare` whenever any parameter has changed (the tensors' version
  counters move on every in-place update), so a model that the trainer keeps updating is
  always planned with its current weights, while a fixed model costs nothing per plan.

Values follow Eq. 5/7: V = sum_{h<H} gamma^h R(z_h, a_h, e_h) + gamma^H Q(z_H, a_H, e_H) with
a_H the actor's mean action and Q the average of the twin heads. A model with a termination head
(`ModelConfig.termination`) weights every term by the chance that the episode is still running
when it is earned, c_0 = 1, c_{h+1} = c_h (1 - sigmoid(T(z_h, a_h, e_h))): a sequence that drives
into a contact loses the value after it instead of collecting it from a latent past the end.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .world_model import WorldModel

_SIMNORM_SAFE_BOUND = 80.0
# products with fewer rows round batch-dependently (rows_mm); exp(+-80) and 8 exp(80) are
# finite and normal in float32
MIN_ROWS = 8


def _pad8(n: int) -> int:
    return -(-n // 8) * 8


def rows_mm(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """fn(x) for a row-wise fn built on matmuls, computed on at least `MIN_ROWS` rows.

    MKL multiplies a few rows by other kernels (gemv for one row; for a transposed operand,
    others up to four rows) than many rows, so a row's result would differ in the last bits
    from the same row inside a larger batch. Planning must not depend on the batch it shares
    (B = 1 on a robot, B = thousands in simulation give the same plan), so small batches are
    padded by repeating their rows (cost: a few more rows of a small product)."""
    B = x.shape[0]
    if B >= MIN_ROWS:
        return fn(x.contiguous())
    reps = -(-MIN_ROWS // B)
    return fn(x.repeat(reps, *([1] * (x.dim() - 1))))[:B]


@dataclass
class _Normed:
    """A hidden NormedLinear (or a 2-member ensemble of them) prepared for inference."""

    W: torch.Tensor          # (in, out) or (2, in, out), columns centred
    b: torch.Tensor          # (out,) or (2, 1, out), centred
    neg_g: torch.Tensor      # -LN weight, broadcastable to the output
    neg_beta: torch.Tensor   # -LN bias
    eps: torch.Tensor        # LN eps, 0-dim


def _centred(W: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Columns centred over the outputs; contiguous, because MKL multiplies a transposed
    operand with kernels whose rounding depends on the number of rows (batch dependence)."""
    return ((W - W.mean(dim=-1, keepdim=True)).contiguous(),
            (b - b.mean(dim=-1, keepdim=True)).contiguous())


class _Workspace:
    """Preallocated buffers for B problems x R sequences."""

    def __init__(self, B: int, R: int, H: int, dz: int, da: int, h: int, c: int, p: int,
                 bins: int, group: int, device: torch.device) -> None:
        BR = B * R
        K1 = dz + 1 + da
        kw = {'device': device}
        self.B, self.R = B, R
        self.za = torch.zeros(H + 1, B, R, K1, **kw)
        self.za[..., dz] = 1.0
        self.za3 = [self.za[t] for t in range(H + 1)]                       # (B, R, dz+1+da)
        self.z1 = [v[..., :dz + 1] for v in self.za3]                      # (B, R, dz+1) [z, 1]
        self.one_a = self.za3[0][..., dz:]                                  # (B, R, 1+da) [1, a_0]
        z2 = [self.za[t].view(BR, K1)[:, :dz] for t in range(H + 1)]       # (BR, dz) strided
        self.z2 = z2
        self.zg = [v.view(BR, dz // group, group) for v in z2]              # SimNorm groups
        self.a2 = [self.za[t].view(BR, K1)[:, dz + 1:] for t in range(H + 1)]  # (BR, da)
        self.actions = self.za[:H, :, :, dz + 1:]                           # (H, B, R, da)
        self.latents = self.za[:, :, :, :dz]                                # (H+1, B, R, dz)
        # trunk (D, R): layer-1 output is (BR, 2, h) = [D | R] per row; layer 2 is (2, BR, h)
        self.t1 = torch.empty(B, R, 2 * h, **kw)
        self.t1v = self.t1.view(BR, 2, h)
        self.t_n1 = torch.empty(BR, 2, 1, **kw)
        self.t_u1 = torch.empty(BR, 2, h, **kw)
        self.t_m1 = torch.empty(BR, 2, h, **kw)
        self.t_m1T = self.t_m1.transpose(0, 1)                              # (2, BR, h) view
        self.t2 = torch.empty(2, BR, h, **kw)
        self.t_n2 = torch.empty(2, BR, 1, **kw)
        self.t_u2 = torch.empty(2, BR, h, **kw)
        self.t_m2 = torch.empty(2, BR, h, **kw)
        self.t_m2_d, self.t_m2_r = self.t_m2[0], self.t_m2[1]
        self.zpre = torch.empty(BR, dz, **kw)
        self.z_n = torch.empty(BR, 1, **kw)
        self.zsum = torch.empty(BR, dz, **kw)
        self.r_logits = torch.empty(BR, bins, **kw)
        self.r_probs = torch.empty(BR, bins, **kw)
        # actor
        self.p1 = torch.empty(B, R, p, **kw)
        self.p1v = self.p1.view(BR, p)
        self.p2 = torch.empty(BR, p, **kw)
        self.p_n = torch.empty(BR, 1, **kw)
        self.p_u = torch.empty(BR, p, **kw)
        self.p_m1 = torch.empty(BR, p, **kw)
        self.p_m2 = torch.empty(BR, p, **kw)
        self.p_out = torch.empty(BR, 2 * da, **kw)
        self.p_mean = self.p_out[:, :da]
        self.eps_actor = torch.empty(B, R, da, **kw)
        # critic
        self.q1 = torch.empty(B, R, 2 * c, **kw)
        self.q1v = self.q1.view(BR, 2, c)
        self.q_n1 = torch.empty(BR, 2, 1, **kw)
        self.q_u1 = torch.empty(BR, 2, c, **kw)
        self.q_m1 = torch.empty(BR, 2, c, **kw)
        self.q_m1T = self.q_m1.transpose(0, 1)
        self.q2 = torch.empty(2, BR, c, **kw)
        self.q_n2 = torch.empty(2, BR, 1, **kw)
        self.q_u2 = torch.empty(2, BR, c, **kw)
        self.q_m2 = torch.empty(2, BR, c, **kw)
        self.q_logits = torch.empty(2, BR, bins, **kw)
        self.q_probs = torch.empty(2, BR, bins, **kw)
        # expected symlog reward per step and of each critic: rows 0..H-1 rewards, H and H+1 Q
        self.S = torch.empty(H + 2, BR, **kw)
        self.S_rows = [self.S[t] for t in range(H)]
        self.S_Q = self.S[H:]
        self.S_T = self.S.t()
        self.S_sign = torch.empty(H + 2, BR, **kw)
        # termination logits of steps 0..H-1, then c_0..c_H (the episode still running)
        self.d_logits = torch.empty(H, BR, **kw)
        self.cont = torch.ones(H + 1, BR, **kw)
        self.value = torch.zeros(B, R, **kw)
        self.value1 = self.value.view(BR)


class LatentRollout:
    """Batched latent rollouts of one WorldModel over a horizon H, for planning."""

    def __init__(self, model: WorldModel, horizon: int, discount: float) -> None:
        self.model = model
        self.H = horizon
        self.gamma = discount
        cfg = model.cfg
        self.dz, self.da, self.de = cfg.latent_dim, cfg.action_dim, cfg.intent_dim
        self.group = cfg.simnorm_dim
        self.bins_padded = _pad8(cfg.num_bins)
        self._ws: dict[tuple[int, int, torch.device], _Workspace] = {}
        self._B: int | None = None
        self._version: tuple | None = None

    def workspace(self, B: int, R: int) -> _Workspace:
        """Buffers for B problems x R sequences (allocated once per shape and device)."""
        dev = self.model.device
        key = (B, R, dev)
        ws = self._ws.get(key)
        if ws is None:
            cfg = self.model.cfg
            ws = _Workspace(B, R, self.H, self.dz, self.da, cfg.hidden_dim, cfg.critic_dim,
                            cfg.actor_dim, self.bins_padded, self.group, dev)
            self._ws[key] = ws
        return ws

    # ---- per plan ---------------------------------------------------------------------------
    def _first(self, W: torch.Tensor, b: torch.Tensor, e: torch.Tensor, n_z: int,
               z0: torch.Tensor | None = None) -> torch.Tensor:
        """First-layer weights for the input [z, 1, rest] (or [1, rest] given a shared z0).

        W (dz + n_rest + de, out) with rows [z | rest | e] and b (out,) are centred already;
        e (B, de). The constant-1 row holds b + W_e e (+ W_z z0). Returns (B, rows, out).
        """
        B, out = e.shape[0], W.shape[1]
        n_in = W.shape[0] - self.de
        lead = rows_mm(lambda x: torch.addmm(b, x, W[n_in:]), e)            # (B, out)
        rest = W[n_z:n_in].expand(B, n_in - n_z, out)
        if z0 is not None:
            lead = lead + rows_mm(lambda x: x @ W[:n_z], z0)
            return torch.cat([lead.unsqueeze(1), rest], dim=1)
        return torch.cat([W[:n_z].expand(B, n_z, out), lead.unsqueeze(1), rest], dim=1)

    def _head(self, W: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two-hot head padded to `bins_padded` outputs: W (..., in, bins), b (..., bins)."""
        pad = self.bins_padded - W.shape[-1]
        if pad == 0:
            return W.contiguous(), b
        Wp = torch.cat([W, W.new_zeros(*W.shape[:-1], pad)], dim=-1)
        bp = torch.cat([b, b.new_full((*b.shape[:-1], pad), float('-inf'))], dim=-1)
        return Wp, bp

    def _weights_version(self) -> tuple:
        """Changes whenever a parameter is updated in place (optimizer step, load_state_dict)."""
        return (self.model.device,) + tuple((p.data_ptr(), p._version) for p in self.model.parameters())

    def _load_weights(self) -> None:
        """Everything derived from the weights alone; redone only when they change."""
        m, dz, da = self.model, self.dz, self.da
        dev = m.device
        self.one = torch.ones((), device=dev)
        bins = m.two_hot.bins
        self.bins = torch.cat([bins, bins.new_zeros(self.bins_padded - bins.numel())])

        # trunk: D (member 0) and R (member 1); layer 1 as one matmul with [D | R] outputs
        l1, l2 = m._trunk[0], m._trunk[1]
        W1, b1 = _centred(l1.linear.weight, l1.linear.bias)                 # (2, K+de, h), (2, h)
        self.t1_Wc = torch.cat([W1[0], W1[1]], dim=1)                       # (K+de, 2h)
        self.t1_bc = torch.cat([b1[0], b1[1]])
        self.t1_L = _Normed(self.t1_Wc, self.t1_bc, -l1.ln_weight, -l1.ln_bias,
                            torch.tensor(l1.eps, device=dev))
        W2, b2 = _centred(l2.linear.weight, l2.linear.bias)
        self.t2_L = _Normed(W2, b2.unsqueeze(1), -l2.ln_weight.unsqueeze(1), -l2.ln_bias.unsqueeze(1),
                            torch.tensor(l2.eps, device=dev))
        dh = m._dynamics_head
        self.d_W, self.d_b = _centred(dh.linear.weight.t(), dh.linear.bias)  # (h, dz)
        self.d_g, self.d_beta = dh.ln.weight, dh.ln.bias
        self.d_eps = torch.tensor(dh.ln.eps, device=dev)
        bound = (math.sqrt(max(dz - 1, 1)) * float(dh.ln.weight.abs().max())
                 + float(dh.ln.bias.abs().max()))
        self.simnorm_fast = bound < _SIMNORM_SAFE_BOUND
        self.group_ones = torch.block_diag(                                  # (dz, dz): group sums
            *[torch.ones(self.group, self.group, device=dev)] * (dz // self.group))
        self.r_W, self.r_b = self._head(m._reward_head.weight.t(), m._reward_head.bias)
        th = m._termination_head                                             # reads R's hidden
        self.k_w = None if th is None else th.weight[0].contiguous()         # (h,)
        self.k_b = None if th is None else th.bias                           # (1,)

        # actor: input [z, 1]
        p1, p2, p3 = m._pi[0], m._pi[1], m._pi[2]
        self.p1_Wc, self.p1_bc = _centred(p1.linear.weight.t(), p1.linear.bias)  # (dz+de, p)
        self.p1_L = _Normed(self.p1_Wc, self.p1_bc, -p1.ln.weight, -p1.ln.bias,
                            torch.tensor(p1.ln.eps, device=dev))
        Wp2, bp2 = _centred(p2.linear.weight.t(), p2.linear.bias)
        self.p2_L = _Normed(Wp2, bp2, -p2.ln.weight, -p2.ln.bias, torch.tensor(p2.ln.eps, device=dev))
        self.p3_W, self.p3_b = p3.weight.t().contiguous(), p3.bias          # (p, 2 da)
        self.p3_W_mean = self.p3_W[:, :da].contiguous()
        self.p3_b_mean = self.p3_b[:da]
        self.log_std_lo, self.log_std_hi = m.cfg.log_std_min, m.cfg.log_std_max

        # twin critic at step H
        q1, q2, q3 = m._Qs[0], m._Qs[1], m._Qs[2]
        Wq1, bq1 = _centred(q1.linear.weight, q1.linear.bias)
        self.q1_Wc = torch.cat([Wq1[0], Wq1[1]], dim=1)                     # (K+de, 2c)
        self.q1_bc = torch.cat([bq1[0], bq1[1]])
        self.q1_L = _Normed(self.q1_Wc, self.q1_bc, -q1.ln_weight, -q1.ln_bias,
                            torch.tensor(q1.eps, device=dev))
        Wq2, bq2 = _centred(q2.linear.weight, q2.linear.bias)
        self.q2_L = _Normed(Wq2, bq2.unsqueeze(1), -q2.ln_weight.unsqueeze(1),
                            -q2.ln_bias.unsqueeze(1), torch.tensor(q2.eps, device=dev))
        self.q3_W, q3_b = self._head(q3.weight, q3.bias)                    # (2, c, bins)
        self.q3_b = q3_b.unsqueeze(1)
        # V = sum_t gamma^t symexp(S_t) + gamma^H (symexp(S_H) + symexp(S_H+1)) / 2
        H = self.H
        w = [self.gamma ** t for t in range(H)] + [0.5 * self.gamma ** H] * 2
        self.value_weights = torch.tensor(w, device=dev)

    @torch.inference_mode()
    def prepare(self, e: torch.Tensor, z0: torch.Tensor) -> None:
        """Take the current weights, the intent e (B, H+1, de) and the start latents z0 (B, dz)."""
        H, dz = self.H, self.dz
        B = e.shape[0]
        if tuple(e.shape) != (B, H + 1, self.de):
            raise ValueError(f'e has shape {tuple(e.shape)}, expected (B, {H + 1}, {self.de})')
        if tuple(z0.shape) != (B, dz):
            raise ValueError(f'z0 has shape {tuple(z0.shape)}, expected ({B}, {dz})')
        version = self._weights_version()
        if version != self._version:
            self._load_weights()
            self._version = version
        self.z0 = z0
        self._B = B
        # the intent (and, at h = 0, the shared z_0) enter every first layer as its bias row
        self.t1_W = [self._first(self.t1_Wc, self.t1_bc, e[:, 0], dz, z0)]           # (B, 1+da, 2h)
        self.t1_W += [self._first(self.t1_Wc, self.t1_bc, e[:, t], dz) for t in range(1, H)]
        self.p1_W = [self._first(self.p1_Wc, self.p1_bc, e[:, t], dz) for t in range(H + 1)]
        self.q1_W = self._first(self.q1_Wc, self.q1_bc, e[:, H], dz)      # (B, dz+1+da, 2c)

    # ---- building blocks --------------------------------------------------------------------
    def _ln_mish(self, y: torch.Tensor, L: _Normed, nrm: torch.Tensor, u: torch.Tensor,
                 out: torch.Tensor) -> None:
        """out = mish(g * LN(y) + beta) for y (..., o) from a centred layer; y is overwritten.

        With u = -(g x_hat + beta): mish = u - 2u / (1 + sigmoid(u)^2).
        """
        torch.linalg.vector_norm(y, dim=-1, keepdim=True, out=nrm)        # sqrt(o var)
        torch.addcmul(L.eps, nrm, nrm, value=1.0 / y.shape[-1], out=nrm).rsqrt_()
        y.mul_(nrm)                                                          # x_hat
        torch.addcmul(L.neg_beta, y, L.neg_g, out=u)
        torch.sigmoid(u, out=y)
        torch.addcmul(self.one, y, y, out=y)
        torch.addcdiv(u, u, y, value=-2.0, out=out)

    def _trunk_step(self, ws: _Workspace, t: int) -> None:
        """z_{t+1} = D(z_t, a_t, e_t) into za[t+1]; S_t = expected symlog R(z_t, a_t, e_t)."""
        torch.bmm(ws.one_a if t == 0 else ws.za3[t], self.t1_W[t], out=ws.t1)
        self._ln_mish(ws.t1v, self.t1_L, ws.t_n1, ws.t_u1, ws.t_m1)
        torch.baddbmm(self.t2_L.b, ws.t_m1T, self.t2_L.W, out=ws.t2)
        self._ln_mish(ws.t2, self.t2_L, ws.t_n2, ws.t_u2, ws.t_m2)
        # dynamics head: Linear -> LN -> SimNorm, written into za[t+1]
        zp = torch.addmm(self.d_b, ws.t_m2_d, self.d_W, out=ws.zpre)
        torch.linalg.vector_norm(zp, dim=-1, keepdim=True, out=ws.z_n)
        torch.addcmul(self.d_eps, ws.z_n, ws.z_n, value=1.0 / self.dz, out=ws.z_n).rsqrt_()
        zp.mul_(ws.z_n)
        torch.addcmul(self.d_beta, zp, self.d_g, out=zp)                    # g x_hat + beta
        if self.simnorm_fast:                                               # exp / group sums
            zp.exp_()
            torch.mm(zp, self.group_ones, out=ws.zsum)
            torch.div(zp, ws.zsum, out=ws.z2[t + 1])
        else:
            ws.zg[t + 1].copy_(torch.softmax(zp.view_as(ws.zg[t + 1]), dim=-1))
        # reward head: two-hot logits -> expected symlog reward
        torch.addmm(self.r_b, ws.t_m2_r, self.r_W, out=ws.r_logits)
        torch.softmax(ws.r_logits, dim=-1, out=ws.r_probs)
        torch.mv(ws.r_probs, self.bins, out=ws.S_rows[t])
        if self.k_w is not None:
            torch.addmv(self.k_b, ws.t_m2_r, self.k_w, out=ws.d_logits[t])

    def _pi_head(self, ws: _Workspace, t: int, mean_only: bool) -> torch.Tensor:
        """Actor output at step t: pre-tanh mean (BR, da) or (mean, log_std) (BR, 2 da)."""
        torch.bmm(ws.z1[t], self.p1_W[t], out=ws.p1)
        self._ln_mish(ws.p1v, self.p1_L, ws.p_n, ws.p_u, ws.p_m1)
        torch.addmm(self.p2_L.b, ws.p_m1, self.p2_L.W, out=ws.p2)
        self._ln_mish(ws.p2, self.p2_L, ws.p_n, ws.p_u, ws.p_m2)
        if mean_only:
            return torch.addmm(self.p3_b_mean, ws.p_m2, self.p3_W_mean, out=ws.p_mean)
        return torch.addmm(self.p3_b, ws.p_m2, self.p3_W, out=ws.p_out)

    def _sample_actor(self, ws: _Workspace, t: int,
                      generators: Sequence[torch.Generator] | None) -> None:
        """a_t ~ pi(z_t, e_t) into za[t] (tanh-squashed Gaussian, as WorldModel.pi); problem b
        draws its noise from generators[b] (batch-independent plans)."""
        out = self._pi_head(ws, t, mean_only=False)
        mu, log_std = out[:, :self.da], out[:, self.da:]
        lo, hi = self.log_std_lo, self.log_std_hi
        std = (lo + 0.5 * (hi - lo) * (torch.tanh(log_std) + 1)).exp()
        if generators is None:
            eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype)
        else:
            eps = ws.eps_actor
            for b, g in enumerate(generators):
                torch.randn(eps.shape[1:], generator=g, device=mu.device, out=eps[b])
            eps = eps.view(mu.shape)
        torch.tanh(torch.addcmul(mu, std, eps), out=ws.a2[t])

    def _terminal(self, ws: _Workspace) -> None:
        """a_H = tanh(mean of pi(z_H, e_H)); S_H, S_H+1 = expected symlog Q_1, Q_2 (z_H, a_H, e_H)."""
        H = self.H
        torch.tanh(self._pi_head(ws, H, mean_only=True), out=ws.a2[H])
        torch.bmm(ws.za3[H], self.q1_W, out=ws.q1)
        self._ln_mish(ws.q1v, self.q1_L, ws.q_n1, ws.q_u1, ws.q_m1)
        torch.baddbmm(self.q2_L.b, ws.q_m1T, self.q2_L.W, out=ws.q2)
        self._ln_mish(ws.q2, self.q2_L, ws.q_n2, ws.q_u2, ws.q_m2)
        torch.baddbmm(self.q3_b, ws.q_m2, self.q3_W, out=ws.q_logits)
        torch.softmax(ws.q_logits, dim=-1, out=ws.q_probs)
        torch.matmul(ws.q_probs, self.bins, out=ws.S_Q)

    # ---- rollouts ---------------------------------------------------------------------------
    def set_start(self, ws: _Workspace) -> None:
        """z_0 of `prepare` for every sequence of each problem (once per plan and workspace)."""
        ws.latents[0].copy_(self.z0.unsqueeze(1).expand(ws.B, ws.R, self.dz))

    def run(self, ws: _Workspace, sample_actor: bool = False,
            generators: Sequence[torch.Generator] | None = None,
            through: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """Roll out the actions in ws.actions (H, B, R, da) from z_0; returns ws.value (B, R).

        With `sample_actor`, the actions are drawn from pi along the rollout instead (and left
        in ws.actions), problem b from generators[b]; `through(t, a_t)` may then replace the
        drawn a_t (B * R, da) in place by what is executed (the planner's command chain).
        Call `prepare` first (same B).
        """
        if self._B != ws.B:
            raise RuntimeError(f'prepare() was called for B = {self._B}, workspace has B = {ws.B}')
        for t in range(self.H):
            if sample_actor:
                self._sample_actor(ws, t, generators)
                if through is not None:
                    through(t, ws.a2[t])
            self._trunk_step(ws, t)
        self._terminal(ws)
        # symexp of every expected symlog value, then the discounted sum (Eq. 7)
        torch.sign(ws.S, out=ws.S_sign)
        ws.S.abs_().expm1_().mul_(ws.S_sign)
        if self.k_w is not None:          # c_{t+1} = c_t sigmoid(-d_t); each term times its c
            torch.sigmoid(ws.d_logits.neg_(), out=ws.d_logits)
            torch.cumprod(ws.d_logits, 0, out=ws.cont[1:])
            ws.S[:self.H].mul_(ws.cont[:self.H])
            ws.S[self.H:].mul_(ws.cont[self.H])
        torch.mv(ws.S_T, self.value_weights, out=ws.value1)
        return ws.value
