"""The compiled update (torch.compile) against its eager reference, and the eager fallback."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import torch

from seqwm_agent.core import compiled as compiled_mod
from seqwm_agent.core.compiled import Compiled, compile_unavailable_reason
from seqwm_agent.train.update import model_loss

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_fixtures import TINY, filled_buffer, team, tiny_cfg  # noqa: E402

# Inductor fuses and reorders float32 reductions (LayerNorm, softmax, means), so results differ
# from eager in the last bits; over a few Adam steps that stays within these bounds.
LOSS_RTOL, GRAD_RTOL, GRAD_ATOL = 2e-4, 2e-3, 1e-6

needs_compiler = pytest.mark.skipif(compile_unavailable_reason() is not None,
                                    reason=f'torch.compile unavailable: {compile_unavailable_reason()}')


def _two_teams(comm: str = 'seq', termination: bool = False):
    """The same team twice (same initial weights and generators): compiled and eager."""
    model = {**TINY, 'termination': termination}
    eager = team(tiny_cfg(comm=comm, compile='off', model=model), seed=5)
    compiled = team(tiny_cfg(comm=comm, compile='on', model=model), seed=5)
    for a, b in zip(eager[0], compiled[0]):
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(),
                                                     b.state_dict().values()))
    return eager, compiled


@needs_compiler
@pytest.mark.parametrize('termination', [False, True])
def test_compiled_loss_and_its_gradients_match_eager_on_a_fixed_batch(termination):
    (models, layout, learner), _ = _two_teams(termination=termination)
    m = models[0]
    batch = filled_buffer().sample(32, learner.window, torch.Generator().manual_seed(1))
    H, B = learner.cfg.horizon, 32
    g = torch.Generator().manual_seed(3)
    e = torch.rand(H + 1, B, layout.input_dim, generator=g)
    z_target = torch.softmax(torch.randn(H, B, m.cfg.latent_dim, generator=g), -1)
    G = torch.randn(H, B, generator=g) * 3
    w = torch.rand(H, B, generator=g)
    args = (m, batch.obs[0, :, 0], batch.action[:H, :, 0], e, z_target, G, batch.reward[:H],
            batch.terminated[:H], w)
    coefs = (20.0, 0.1, 0.1, 1.0)
    fast = Compiled(lambda *a: model_loss(*a, coefs), 'test.model_loss', mode='on')

    results = []
    for fn in (lambda *a: model_loss(*a, coefs), fast):
        m.zero_grad(set_to_none=True)
        loss, dyn, rew, val, term, z = fn(*args)
        loss.backward()
        assert (float(term.detach()) > 0) == termination
        results.append(([float(x.detach()) for x in (loss, dyn, rew, val, term)],
                        {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}))
    assert fast.active
    (l_eager, g_eager), (l_comp, g_comp) = results
    assert l_comp == pytest.approx(l_eager, rel=LOSS_RTOL)
    assert g_eager.keys() == g_comp.keys() and len(g_eager) > 10
    for k in g_eager:
        torch.testing.assert_close(g_comp[k], g_eager[k], rtol=GRAD_RTOL, atol=GRAD_ATOL, msg=k)


@needs_compiler
@pytest.mark.parametrize('comm,termination', [('seq', False), ('dec', False), ('seq', True)])
def test_compiled_sequential_updates_track_the_eager_ones(comm, termination):
    (models_e, _, eager), (models_c, _, comp) = _two_teams(comm, termination)
    batch = filled_buffer().sample(32, eager.window, torch.Generator().manual_seed(1))
    for step in range(3):
        s_e, s_c = eager.update(batch), comp.update(batch)
        assert comp.compiled and not eager.compiled
        for k in ('loss', 'dynamics', 'reward', 'value', 'termination', 'pi', 'q_scale'):
            assert s_c[k] == pytest.approx(s_e[k], rel=LOSS_RTOL * (step + 1), abs=1e-6), (step, k)
    # what the successor was trained on (the predecessor's updated prediction) agrees too
    for i in eager.last_inputs:
        torch.testing.assert_close(comp.last_inputs[i], eager.last_inputs[i], rtol=1e-3, atol=1e-5)
    for a, b in zip(models_e, models_c):
        for (k, p), q in zip(a.named_parameters(), b.parameters()):
            torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-5, msg=k)


def _failing_backend(gm, example_inputs):
    raise RuntimeError('no code generator here (test)')


def test_a_failed_compile_falls_back_to_eager_with_one_log_line(caplog):
    calls = []

    def fn(x):
        calls.append(1)
        return torch.sin(x) * 2

    f = Compiled(fn, 'test.fn', mode='auto', backend=_failing_backend)
    x = torch.linspace(-1, 1, 7)
    with caplog.at_level(logging.WARNING, logger='seqwm.compile'):
        y1, y2 = f(x), f(x)
    assert torch.equal(y1, torch.sin(x) * 2) and torch.equal(y2, y1)
    assert not f.active and 'no code generator here' in f.fallback_reason
    lines = [r.getMessage() for r in caplog.records if r.name == 'seqwm.compile']
    assert len(lines) == 1 and 'test.fn: running eagerly (the compiled form failed' in lines[0]


def test_compile_required_but_failing_is_an_error_not_a_silent_fallback():
    f = Compiled(lambda x: x + 1, 'test.required', mode='on', backend=_failing_backend)
    with pytest.raises(RuntimeError, match='test.required: torch.compile is required'):
        f(torch.zeros(3))


def test_without_a_cpp_compiler_the_update_runs_eagerly_and_says_why(monkeypatch, caplog):
    monkeypatch.setattr(compiled_mod.shutil, 'which', lambda name: None)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert 'no C++ compiler' in compile_unavailable_reason()
    with caplog.at_level(logging.WARNING, logger='seqwm.compile'):
        _, _, learner = team(tiny_cfg(compile='auto'))
        stats = learner.update(filled_buffer().sample(32, learner.window,
                                                      torch.Generator().manual_seed(1)))
    assert not learner.compiled and all(v == v for v in stats.values())
    assert any('no C++ compiler' in r.getMessage() for r in caplog.records)


def test_off_never_compiles():
    f = Compiled(lambda x: x * 3, 'test.off', mode='off')
    assert not f.active and f.fallback_reason is None
    assert torch.equal(f(torch.ones(2)), torch.full((2,), 3.0))


@needs_compiler
@pytest.mark.parametrize('comm', ['seq', 'cen'])
def test_compiled_collection_actors_send_the_eager_commands(comm):
    from seqwm_agent.core.command import ChainSettings
    from seqwm_agent.train.team import ChainedActors
    models, layout, _ = team(tiny_cfg(comm=comm, compile='off'), seed=2)
    limits = (1.0, 0.5, 0.5)
    eager, fast = (ChainedActors(models, layout, ChainSettings(), limits, 8, comm,
                                 explore_std=0.3, deterministic=False,
                                 generator=torch.Generator().manual_seed(9), compile_mode=m)
                   for m in ('off', 'on'))
    g = torch.Generator().manual_seed(1)
    for _ in range(4):
        obs = torch.randn(8, len(models), models[0].cfg.obs_dim, generator=g)
        (c1, ok1), (c2, ok2) = eager.act(obs), fast.act(obs)
        torch.testing.assert_close(c2, c1, rtol=1e-5, atol=1e-6)
        assert torch.equal(ok1, ok2)
    assert fast._act.active


@needs_compiler
def test_compiled_actors_serve_a_second_batch_size_without_falling_back():
    # the trainer's actor envs and planner envs differ in size; a second shape makes Dynamo
    # compile with symbolic sizes, where a random draw in the graph would fail
    from seqwm_agent.core.command import ChainSettings
    from seqwm_agent.train.team import ChainedActors
    models, layout, _ = team(tiny_cfg(compile='off'), seed=2)
    for B in (8, 5, 3):
        actors = ChainedActors(models, layout, ChainSettings(), (1.0, 0.5, 0.5), B, 'seq',
                               explore_std=0.3, deterministic=False,
                               generator=torch.Generator().manual_seed(B), compile_mode='on')
        cmd, ok = actors.act(torch.randn(B, len(models), models[0].cfg.obs_dim))
        assert cmd.shape == (B, len(models), 3) and bool(ok.all()) and actors._act.active
