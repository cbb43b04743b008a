"""World model: shapes, latent on the simplices, actor squashing, twin critic, independence of D
and R, and the planner's fused inference path (rollout.py) computing the same values."""
from __future__ import annotations

import pytest
import torch

from seqwm_agent.core.config import ModelConfig
from seqwm_agent.core.intent import IntentLayout
from seqwm_agent.core.rollout import LatentRollout
from seqwm_agent.core.world_model import WorldModel

CFG = ModelConfig(obs_dim=12, num_agents=2, latent_dim=16, hidden_dim=24, critic_dim=20,
                  actor_dim=16, encoder_dim=32)


def randomised(cfg: ModelConfig = CFG, seed: int = 0, scale: float = 0.3) -> WorldModel:
    """A model with every parameter perturbed (the zero-initialised heads included)."""
    torch.manual_seed(seed)
    model = WorldModel(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    return model


def inputs(cfg: ModelConfig = CFG, batch: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    z = torch.softmax(torch.randn(batch, cfg.latent_dim, generator=g), -1)
    a = torch.rand(batch, cfg.action_dim, generator=g) * 2 - 1
    e = torch.randn(batch, cfg.intent_dim, generator=g)
    return z, a, e


def test_shapes_and_latent_on_simplices():
    m = randomised()
    z = m.encode(torch.randn(4, 7, CFG.obs_dim))
    assert z.shape == (4, 7, CFG.latent_dim)
    torch.testing.assert_close(z.view(4, 7, -1, 8).sum(-1), torch.ones(4, 7, CFG.latent_dim // 8))
    z, a, e = inputs()
    z1, r = m.next_and_reward(z, a, e)
    assert z1.shape == z.shape and r.shape == (5, CFG.num_bins)
    torch.testing.assert_close(z1.view(5, -1, 8).sum(-1), torch.ones(5, 2))
    assert m.Q(z, a, e).shape == (2, 5, CFG.num_bins)
    assert m.Q(z, a, e, 'min').shape == (5,)
    q = m.Q(z, a, e, 'all')
    v = m.two_hot.decode(q)
    torch.testing.assert_close(m.Q(z, a, e, 'min'), v.min(0).values)
    torch.testing.assert_close(m.Q(z, a, e, 'avg'), v.mean(0))


def test_wrong_input_width_names_the_input():
    m = WorldModel(CFG)
    z, a, e = inputs()
    with pytest.raises(ValueError, match='e has last dim'):
        m.next(z, a, e[:, :-1])


def test_fresh_model_predicts_zero_reward_and_value():
    m = WorldModel(CFG)
    z, a, e = inputs()
    torch.testing.assert_close(m.two_hot.decode(m.reward(z, a, e)), torch.zeros(5))
    torch.testing.assert_close(m.Q(z, a, e, 'avg'), torch.zeros(5))


def test_actor_is_squashed_and_has_finite_log_prob():
    m = randomised()
    z, _, e = inputs(batch=200)
    out = m.pi(z, e, generator=torch.Generator().manual_seed(0))
    assert torch.all(out.action.abs() <= 1) and torch.all(out.mean.abs() <= 1)
    assert torch.isfinite(out.log_prob).all()
    assert torch.all(out.log_std >= CFG.log_std_min) and torch.all(out.log_std <= CFG.log_std_max)
    det = m.pi(z, e, deterministic=True)
    torch.testing.assert_close(det.action, det.mean)


def test_dynamics_and_reward_have_independent_parameters():
    m = randomised()
    z, a, e = inputs()
    m.zero_grad()
    m.reward(z, a, e).sum().backward()
    trunk_grads = [p.grad for p in m._trunk.parameters()]
    for g in trunk_grads:
        assert torch.all(g[0] == 0), 'reward loss must not reach the dynamics member'
    assert any(torch.any(g[1] != 0) for g in trunk_grads)
    assert m._dynamics_head.linear.weight.grad is None


def test_target_critic_follows_by_polyak_averaging():
    m = randomised()
    with torch.no_grad():
        for p in m._Qs.parameters():
            p.add_(1.0)
    before = [p.clone() for p in m._target_Qs.parameters()]
    m.soft_update_target_Q(0.25)
    for b, t, p in zip(before, m._target_Qs.parameters(), m._Qs.parameters()):
        torch.testing.assert_close(t, 0.75 * b + 0.25 * p)
    assert not any(p.requires_grad for p in m._target_Qs.parameters())


def reference_value(m: WorldModel, z0, actions, e, gamma):
    """Eq. 7 through the plain model API, each term weighted by the chance that the episode is
    still running when a termination head exists. z0 (dz,), actions (H, R, da), e (H+1, de)."""
    H, R, _ = actions.shape
    z = z0.expand(R, -1)
    value = torch.zeros(R)
    running = torch.ones(R)
    latents = [z]
    for t in range(H):
        et = e[t].expand(R, -1)
        out = m.step(z, actions[t], et)
        value += gamma ** t * running * m.two_hot.decode(out.reward)
        if out.termination is not None:
            running = running * (1 - torch.sigmoid(out.termination))
        z = out.next
        latents.append(z)
    eH = e[H].expand(R, -1)
    aH = m.pi(z, eH, deterministic=True).action
    value += gamma ** H * running * m.Q(z, aH, eH, 'avg')
    return value, torch.stack(latents)


def with_termination(seed: int = 0) -> WorldModel:
    """A randomised model whose termination head spreads P(end) over (0, 1) across sequences."""
    m = randomised(ModelConfig(**{**CFG.to_dict(), 'termination': True}), seed)
    with torch.no_grad():
        m._termination_head.weight.normal_(0.0, 2.0)
        m._termination_head.bias.zero_()
    return m


@pytest.mark.parametrize('termination', [False, True])
@pytest.mark.parametrize('batch', [1, 3])
def test_fused_rollout_equals_the_model(batch, termination):
    m = with_termination() if termination else randomised()
    H, R, gamma = 3, 11, 0.9
    layout = IntentLayout(CFG.num_agents, H, CFG.latent_dim, CFG.action_dim)
    g = torch.Generator().manual_seed(2)
    intent = layout.insert(layout.empty(batch), 0,
                           torch.softmax(torch.randn(batch, H + 1, 16, generator=g), -1),
                           torch.rand(batch, H, 3, generator=g) * 2 - 1)
    e = layout.model_inputs(intent, agent_index=1)
    z0 = m.encode(torch.randn(batch, CFG.obs_dim, generator=g))
    actions = torch.rand(H, batch, R, 3, generator=g) * 2 - 1
    with torch.inference_mode():
        ro = LatentRollout(m, H, gamma)
        ro.prepare(e, z0)
        ws = ro.workspace(batch, R)
        ro.set_start(ws)
        ws.actions.copy_(actions)
        fused = ro.run(ws).clone()
        again = ro.run(ws).clone()            # the continuation buffers are rebuilt per rollout
        latents = ws.latents.clone()
    torch.testing.assert_close(again, fused)
    with torch.no_grad():
        for b in range(batch):
            ref, ref_latents = reference_value(m, z0[b], actions[:, b], e[b], gamma)
            torch.testing.assert_close(fused[b], ref, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(latents[:, b], ref_latents, rtol=1e-4, atol=1e-5)


def test_a_sequence_the_model_expects_to_end_keeps_only_the_value_before_the_end():
    """With P(end) = 1 after the first step, a rollout is worth R_0 alone; with P(end) = 0 it is
    the full Eq. 7 value of a model without the head."""
    m = with_termination()
    H, R, gamma = 3, 7, 0.9
    layout = IntentLayout(CFG.num_agents, H, CFG.latent_dim, CFG.action_dim)
    e = layout.model_inputs(layout.empty(1), agent_index=0)
    z0 = m.encode(torch.randn(1, CFG.obs_dim))
    actions = torch.rand(H, 1, R, 3) * 2 - 1
    plain = WorldModel(CFG)
    plain.load_state_dict({k: v for k, v in m.state_dict().items()
                           if not k.startswith('_termination_head')})
    values = {}
    for bias in (30.0, -30.0):
        with torch.no_grad():
            m._termination_head.weight.zero_()
            m._termination_head.bias.fill_(bias)
        with torch.inference_mode():
            ro = LatentRollout(m, H, gamma)
            ro.prepare(e, z0)
            ws = ro.workspace(1, R)
            ro.set_start(ws)
            ws.actions.copy_(actions)
            values[bias] = ro.run(ws)[0].clone()
    with torch.no_grad():
        r0 = m.two_hot.decode(m.step(z0.expand(R, -1), actions[0, 0], e[0, 0].expand(R, -1)).reward)
        full, _ = reference_value(plain, z0[0], actions[:, 0], e[0], gamma)
    torch.testing.assert_close(values[30.0], r0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(values[-30.0], full, rtol=1e-4, atol=1e-4)


def test_fused_rollout_falls_back_to_exact_simnorm_for_large_layernorm_gains():
    m = randomised()
    with torch.no_grad():
        m._dynamics_head.ln.weight.fill_(30.0)               # |LN output| can exceed 80
    H, R = 2, 4
    layout = IntentLayout(CFG.num_agents, H, CFG.latent_dim, CFG.action_dim)
    e = layout.model_inputs(layout.empty(1), agent_index=0)
    z0 = m.encode(torch.randn(1, CFG.obs_dim))
    actions = torch.rand(H, 1, R, 3) * 2 - 1
    with torch.inference_mode():
        ro = LatentRollout(m, H, 0.95)
        ro.prepare(e, z0)
        assert not ro.simnorm_fast
        ws = ro.workspace(1, R)
        ro.set_start(ws)
        ws.actions.copy_(actions)
        fused = ro.run(ws).clone()
    with torch.no_grad():
        ref, _ = reference_value(m, z0[0], actions[:, 0], e[0], 0.95)
    assert torch.isfinite(fused).all()
    torch.testing.assert_close(fused[0], ref, rtol=1e-4, atol=1e-4)


def test_two_hot_first_used_under_inference_mode_still_trains():
    """The planner may be the first to touch the cached bins; a training step must still work."""
    import torch

    from seqwm_agent.core.config import ModelConfig
    from seqwm_agent.core.world_model import WorldModel

    model = WorldModel(ModelConfig(obs_dim=6, num_agents=2))
    with torch.inference_mode():
        model.two_hot.decode(torch.zeros(1, model.cfg.num_bins))
    logits = torch.zeros(4, model.cfg.num_bins, requires_grad=True)
    # decode saves the bins for backward (the actor's Q objective does this)
    loss = model.two_hot.decode(logits).sum() + model.two_hot.soft_ce(logits, torch.ones(4)).mean()
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
