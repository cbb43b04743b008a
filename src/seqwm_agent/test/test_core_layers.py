"""Building blocks of the world model: SimNorm, NormedLinear, two-hot encoding, symlog."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from seqwm_agent.core.layers import EnsembleNormedLinear, NormedLinear, simnorm
from seqwm_agent.core.twohot import TwoHot, symexp, symlog


def test_simnorm_groups_sum_to_one():
    x = torch.randn(5, 7, 64) * 10
    y = simnorm(x, 8)
    groups = y.view(5, 7, 8, 8)
    assert torch.all(groups >= 0)
    torch.testing.assert_close(groups.sum(-1), torch.ones(5, 7, 8))


def test_simnorm_is_softmax_per_group_not_over_the_whole_vector():
    x = torch.zeros(1, 16)
    x[0, 0] = 5.0                                       # only the first group changes
    y = simnorm(x, 8)
    torch.testing.assert_close(y[0, 8:], torch.full((8,), 1 / 8))
    assert y[0, 0] > 0.9


def test_normed_linear_encoder_output_is_on_the_simplices():
    layer = NormedLinear(10, 32, act='simnorm', simnorm_dim=8)
    y = layer(torch.randn(4, 10))
    torch.testing.assert_close(y.view(4, 4, 8).sum(-1), torch.ones(4, 4))


def test_ensemble_members_equal_separate_normed_linears():
    ens = EnsembleNormedLinear(2, 6, 5, act='mish', shared_input=True)
    with torch.no_grad():
        ens.ln_weight.uniform_(0.5, 1.5)
        ens.ln_bias.uniform_(-0.5, 0.5)
        ens.linear.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 6)
    y = ens(x)
    for g in range(2):
        ref = F.linear(x, ens.linear.weight[g].t(), ens.linear.bias[g])
        ref = F.mish(F.layer_norm(ref, (5,), ens.ln_weight[g], ens.ln_bias[g]))
        torch.testing.assert_close(y[g], ref)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=-float(symexp(torch.tensor(9.99))), max_value=float(symexp(torch.tensor(9.99))),
                 allow_nan=False))
def test_two_hot_round_trip_recovers_the_scalar(r):
    th = TwoHot(101, -10.0, 10.0, dtype=torch.float64)
    x = torch.tensor([r], dtype=torch.float64)
    enc = th.encode(x)
    assert torch.all(enc >= 0) and (enc > 0).sum() <= 2
    assert abs(float(enc.sum()) - 1.0) < 1e-9
    back = float(th.expectation(enc))
    assert back == pytest.approx(r, rel=1e-6, abs=1e-9)


def test_two_hot_puts_weight_on_the_two_neighbouring_bins():
    th = TwoHot(101, -10.0, 10.0)
    # symlog(r) = 0.25 lies between bins 0.2 and 0.4: weights 0.75 and 0.25
    r = symexp(torch.tensor([0.25]))
    enc = th.encode(r)[0]
    k = int(torch.argmin((th.bins - 0.2).abs()))
    assert enc[k].item() == pytest.approx(0.75, abs=1e-5)
    assert enc[k + 1].item() == pytest.approx(0.25, abs=1e-5)


def test_two_hot_clamps_out_of_range_values_to_the_edge_bins():
    th = TwoHot(101, -10.0, 10.0)
    enc = th.encode(torch.tensor([1e9, -1e9]))
    assert enc[0, -1] == 1 and enc[1, 0] == 1


def test_soft_cross_entropy_is_smallest_at_the_target():
    th = TwoHot(101, -10.0, 10.0)
    target = torch.tensor([3.0])
    logits = torch.zeros(1, 101, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        th.soft_ce(logits, target).sum().backward()
        opt.step()
    assert float(th.decode(logits.detach())) == pytest.approx(3.0, rel=0.02)


def test_symlog_and_symexp_are_inverse_and_odd():
    x = torch.linspace(-1000, 1000, 2001, dtype=torch.float64)
    torch.testing.assert_close(symexp(symlog(x)), x)
    torch.testing.assert_close(symlog(-x), -symlog(x))
    assert float(symlog(torch.tensor(math.e - 1))) == pytest.approx(1.0)


def test_one_exp_mish_equals_torch_mish_and_its_gradient_over_the_whole_float_range():
    import torch.nn.functional as F
    from seqwm_agent.core.layers import mish
    x = torch.cat([torch.linspace(-120, 120, 20001), torch.tensor([-1e30, -88.8, 19.99, 20.01, 1e30])])
    x = x.double().requires_grad_(True)
    x32 = x.detach().float().requires_grad_(True)
    y, ref = mish(x32), F.mish(x.detach().float())
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, ref, rtol=2e-6, atol=1e-6)
    (g,) = torch.autograd.grad(y.sum(), x32)
    x64 = x.detach().requires_grad_(True)
    (g_ref,) = torch.autograd.grad(F.mish(x64).sum(), x64)
    torch.testing.assert_close(g.double(), g_ref, rtol=1e-5, atol=1e-5)
