"""Building blocks of the world model (paper App. B.2): SimNorm and LayerNorm'd linear layers.

`NormedLinear` is Linear -> LayerNorm -> activation (Mish, or SimNorm for latent outputs), the
TD-MPC2 layer. The `Ensemble*` layers hold G independent members in one weight tensor
(G, in, out) so that several networks reading the same input (dynamics + reward, the twin
critics) run as one batched matmul; the members never share parameters.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ('mish', 'simnorm', 'none')


def simnorm(x: torch.Tensor, group: int) -> torch.Tensor:
    """SimNorm (Eq. 11): softmax over consecutive groups of `group` features. x (..., d) -> (..., d)."""
    shape = x.shape
    return torch.softmax(x.reshape(*shape[:-1], shape[-1] // group, group), dim=-1).reshape(shape)


def mish(x: torch.Tensor) -> torch.Tensor:
    """Mish, x tanh(softplus(x)), written with one exp: with n = e^x,
    tanh(log(1 + n)) = ((1 + n)^2 - 1) / ((1 + n)^2 + 1) = p / (p + 2), p = n (n + 2).

    Exact in real arithmetic and within a few float32 ulps of F.mish; for x > 20, p / (p + 2)
    is 1 in float32 (so x is clamped there before the exp, which would overflow past 88). Why:
    compiled (Inductor) and eager kernels of exp and arithmetic are several times faster than
    those of softplus + tanh on a CPU, and Mish is most of a world model's element-wise work."""
    n = torch.exp(x.clamp(max=20.0))
    p = n * (n + 2.0)
    return x * (p / (p + 2.0))    # the ratio first: x p would overflow for |x| > ~1e21


def _activate(y: torch.Tensor, act: str, group: int) -> torch.Tensor:
    if act == 'mish':
        return mish(y)
    if act == 'simnorm':
        return simnorm(y, group)
    return y


def init_linear_(weight: torch.Tensor, bias: torch.Tensor | None, zero: bool = False) -> None:
    """Truncated normal (std 0.02) weights and zero bias; `zero` for output heads of the
    two-hot predictors so that they start from a uniform distribution (value 0)."""
    with torch.no_grad():
        if zero:
            weight.zero_()
        else:
            nn.init.trunc_normal_(weight, std=0.02, a=-0.04, b=0.04)
        if bias is not None:
            bias.zero_()


class NormedLinear(nn.Module):
    """y = act(LayerNorm(W x + b)).  x (..., in) -> (..., out)."""

    def __init__(self, in_features: int, out_features: int, act: str = 'mish',
                 simnorm_dim: int = 8) -> None:
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f'unknown activation {act!r}; expected one of {ACTIVATIONS}')
        self.linear = nn.Linear(in_features, out_features)
        self.ln = nn.LayerNorm(out_features)
        self.act = act
        self.simnorm_dim = simnorm_dim
        init_linear_(self.linear.weight, self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _activate(self.ln(self.linear(x)), self.act, self.simnorm_dim)


class EnsembleLinear(nn.Module):
    """G independent linear maps in one tensor: weight (G, in, out), bias (G, out).

    With `shared_input` x (..., in) feeds every member; otherwise x is (G, ..., in).
    Output (G, ..., out).
    """

    def __init__(self, members: int, in_features: int, out_features: int,
                 shared_input: bool = False, zero_init: bool = False) -> None:
        super().__init__()
        self.members = members
        self.in_features = in_features
        self.out_features = out_features
        self.shared_input = shared_input
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(members, out_features))
        init_linear_(self.weight, self.bias, zero=zero_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.members
        if self.shared_input:
            lead = x.shape[:-1]
            y = torch.matmul(x.reshape(1, -1, self.in_features), self.weight)
        else:
            if x.shape[0] != g:
                raise ValueError(f'expected {g} members on dim 0, got shape {tuple(x.shape)}')
            lead = x.shape[1:-1]
            y = torch.bmm(x.reshape(g, -1, self.in_features), self.weight)
        y = y + self.bias.unsqueeze(1)
        return y.reshape(g, *lead, self.out_features)

    def extra_repr(self) -> str:
        return (f'members={self.members}, in={self.in_features}, out={self.out_features}, '
                f'shared_input={self.shared_input}')


class EnsembleNormedLinear(nn.Module):
    """G independent NormedLinear layers: per-member LayerNorm affine (G, out). (G, ..., out)."""

    def __init__(self, members: int, in_features: int, out_features: int, act: str = 'mish',
                 shared_input: bool = False, simnorm_dim: int = 8) -> None:
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f'unknown activation {act!r}; expected one of {ACTIVATIONS}')
        self.linear = EnsembleLinear(members, in_features, out_features, shared_input)
        self.ln_weight = nn.Parameter(torch.ones(members, out_features))
        self.ln_bias = nn.Parameter(torch.zeros(members, out_features))
        self.act = act
        self.simnorm_dim = simnorm_dim
        self.eps = 1e-5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        y = F.layer_norm(y, y.shape[-1:], eps=self.eps)
        view = (y.shape[0],) + (1,) * (y.dim() - 2) + (y.shape[-1],)
        y = torch.addcmul(self.ln_bias.view(view), y, self.ln_weight.view(view))
        return _activate(y, self.act, self.simnorm_dim)


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def gaussian_log_prob(eps: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(mean + std eps | mean, std) summed over the last dim: (..., d) -> (...)."""
    return (-0.5 * eps.pow(2) - log_std).sum(-1) - 0.5 * math.log(2 * math.pi) * eps.shape[-1]
