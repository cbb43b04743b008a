"""Discrete regression of rewards and values (paper App. B.3, Eq. 12-14).

Scalars are mapped to symlog space and spread over `num_bins` evenly spaced bins in
[vmin, vmax] with a two-hot vector; networks predict logits over the bins and are trained with
soft cross-entropy. Decoding takes the softmax expectation in symlog space and maps it back
with symexp. Eq. 13 prints the softmax without the log; the loss is the cross-entropy, i.e.
with log-softmax, which is what we implement.
"""
from __future__ import annotations

import torch


def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x) ln(|x| + 1) (Eq. 14)."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    """sign(x) (exp(|x|) - 1), the inverse of symlog (Eq. 14)."""
    return torch.sign(x) * torch.expm1(x.abs())


class TwoHot:
    """Bins in symlog space and the maps scalar <-> bin distribution.

    `bins` (num_bins,) are the bin centres b_i; everything is batched over leading dims.
    """

    def __init__(self, num_bins: int, vmin: float, vmax: float,
                 device: torch.device | str = 'cpu', dtype: torch.dtype = torch.float32) -> None:
        if num_bins < 2 or not vmin < vmax:
            raise ValueError(f'need num_bins >= 2 and vmin < vmax, got {num_bins}, [{vmin}, {vmax}]')
        self.num_bins = num_bins
        self.vmin = float(vmin)
        self.vmax = float(vmax)
        self.bin_size = (self.vmax - self.vmin) / (num_bins - 1)
        self.bins = torch.linspace(self.vmin, self.vmax, num_bins, dtype=torch.float64).to(device, dtype)

    def to(self, device: torch.device | str) -> TwoHot:
        return TwoHot(self.num_bins, self.vmin, self.vmax, device, self.bins.dtype)

    def _bins_of(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower bin k (..., long) of symlog(x), clamped to the bin range, and the weight of
        bin k + 1 (...); bin k gets 1 - that."""
        s = symlog(x).clamp(self.vmin, self.vmax)
        pos = (s - self.vmin) / self.bin_size
        k = pos.floor().clamp(max=self.num_bins - 2)
        return k.long(), pos - k

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Scalars (...) -> two-hot targets (..., num_bins) of symlog(x), clamped to the bin range."""
        k, upper = self._bins_of(x)
        upper, k = upper.unsqueeze(-1), k.unsqueeze(-1)
        out = torch.zeros(*x.shape, self.num_bins, dtype=x.dtype, device=x.device)
        out.scatter_(-1, k, 1.0 - upper)
        out.scatter_add_(-1, k + 1, upper)
        return out

    def expectation(self, probs: torch.Tensor) -> torch.Tensor:
        """Bin distribution (..., num_bins) -> scalar (...): symexp of the expected bin value."""
        return symexp(probs @ self.bins.to(probs.dtype))

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits (..., num_bins) -> scalar (...)."""
        return self.expectation(torch.softmax(logits, dim=-1))

    def soft_ce(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Soft cross-entropy (...,) between predicted logits (..., num_bins) and scalar targets
        (...) (leading dims broadcast, e.g. twin critics' (2, ...) against one target).

        -sum_i t_i log softmax(l)_i with the two-hot t = (1 - u) at bin k, u at k + 1, i.e.
        logsumexp(l) - (1 - u) l_k - u l_{k+1}: the same value as with the encoded target,
        without building (..., num_bins) targets (two gathers instead of a scatter, a product
        and a sum over the bins)."""
        k, upper = self._bins_of(target)
        lead = torch.broadcast_shapes(logits.shape[:-1], target.shape)
        idx = k.unsqueeze(-1).expand(*lead, 1)
        lo = logits.expand(*lead, logits.shape[-1]).gather(-1, idx).squeeze(-1)
        hi = logits.expand(*lead, logits.shape[-1]).gather(-1, idx + 1).squeeze(-1)
        return torch.logsumexp(logits, dim=-1) - (1.0 - upper) * lo - upper * hi
