"""Sequential MPPI planner on hand-built world models with a known best plan (core/toy.py)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from seqwm_agent.core.config import ModelConfig, PlannerConfig
from seqwm_agent.core.intent import IntentError, IntentLayout
from seqwm_agent.core.planner import SequentialPlanner, kl_diag_gaussians
from seqwm_agent.core.toy import tracking_model

CFG = ModelConfig(obs_dim=10, num_agents=2, latent_dim=16, hidden_dim=32, critic_dim=32,
                  actor_dim=32, encoder_dim=32)
PCFG = PlannerConfig()
A_STAR = torch.tensor([0.5, -0.3, 0.2])
LAYOUT = IntentLayout(CFG.num_agents, PCFG.horizon, CFG.latent_dim, CFG.action_dim)


def planner(model, agent_index=0, seed=0, **overrides) -> SequentialPlanner:
    return SequentialPlanner(model, LAYOUT, dataclasses.replace(PCFG, **overrides), agent_index, seed=seed)


def obs(batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, CFG.obs_dim, generator=torch.Generator().manual_seed(3))


def intent_with_actions(actions: torch.Tensor):
    """Robot 0's slot filled with the given planned actions (B, H, da)."""
    B = actions.shape[0]
    z = torch.full((B, PCFG.horizon + 1, CFG.latent_dim), 1.0 / 8)
    return LAYOUT.insert(LAYOUT.empty(B), 0, z, actions)


def test_plan_converges_to_the_rewarded_action():
    model = tracking_model(CFG, target=A_STAR)
    result = planner(model, iterations=10).plan(obs(), LAYOUT.empty(1))
    assert result.actions.shape == (1, PCFG.horizon, 3)
    assert (result.actions[0, 0] - A_STAR).abs().max() < 0.06
    assert (result.actions[0] - A_STAR).abs().max() < 0.1
    assert result.value.item() > -0.1                        # the best possible value is 0


def test_more_iterations_give_a_better_plan():
    model = tracking_model(CFG, target=A_STAR)
    values = {}
    for k in (1, 3, 8):
        values[k] = torch.stack([planner(model, seed=s, iterations=k).plan(obs(), LAYOUT.empty(1)).value
                                 for s in range(3)]).mean().item()
    assert values[1] < values[3] < values[8]


def test_kl_early_stop_ends_when_the_distribution_has_converged():
    model = tracking_model(CFG, target=A_STAR)
    full = planner(model, iterations=12, early_stop=True, kl_threshold=0.0).plan(obs(), LAYOUT.empty(1))
    assert full.iterations == 12                             # threshold 0: never stops early
    early = planner(model, iterations=12, early_stop=True, kl_threshold=2.0).plan(obs(), LAYOUT.empty(1))
    assert 1 < early.iterations < 12
    assert early.kl is not None and early.kl.item() < 2.0
    assert (early.actions[0, 0] - A_STAR).abs().max() < 0.15
    off = planner(model, iterations=12, early_stop=False, kl_threshold=2.0).plan(obs(), LAYOUT.empty(1))
    assert off.iterations == 12


def test_batched_early_stop_waits_for_every_problem():
    """A target on the action bound converges faster than one inside; the batch waits for both."""
    model = tracking_model(CFG, follow=0)
    acts = torch.stack([torch.full((PCFG.horizon, 3), 0.0), torch.full((PCFG.horizon, 3), 1.0)])
    settings = {'iterations': 12, 'early_stop': True, 'kl_threshold': 1.0}
    both = planner(model, agent_index=1, **settings).plan(obs(2), intent_with_actions(acts))
    assert both.kl is not None and torch.all(both.kl < 1.0)     # stopping at the first would not
    assert both.iterations < 12


def test_kl_of_identical_gaussians_is_zero_and_grows_with_the_shift():
    mu, std = torch.zeros(3, 2, 3), torch.ones(3, 2, 3)
    torch.testing.assert_close(kl_diag_gaussians(mu, std, mu, std), torch.zeros(2))
    shifted = kl_diag_gaussians(mu + 1, std, mu, std)
    torch.testing.assert_close(shifted, torch.full((2,), 0.5 * 9))


def test_successor_plan_follows_the_predecessor_intent():
    follower = tracking_model(CFG, follow=0)
    plans = {}
    for sign in (1.0, -1.0):
        acts = (sign * torch.tensor([0.6, 0.3, -0.4])).expand(1, PCFG.horizon, 3)
        plans[sign] = planner(follower, agent_index=1, iterations=10).plan(
            obs(), intent_with_actions(acts)).actions
        assert (plans[sign][0, 0] - acts[0, 0]).abs().max() < 0.1
    assert (plans[1.0] - plans[-1.0]).abs().max() > 0.5


def test_two_agent_chain_passes_the_plan_along():
    """Robot 1 plans for its own target and publishes its intent; robot 2 follows robot 1."""
    leader = tracking_model(CFG, target=A_STAR, seed=1)
    follower = tracking_model(CFG, follow=0, seed=2)
    p1, p2 = planner(leader, agent_index=0, iterations=10), planner(follower, agent_index=1, iterations=10)
    o = obs(2)
    r1 = p1.plan(o[:1], LAYOUT.empty(1))
    e2 = LAYOUT.insert(LAYOUT.empty(1), 0, r1.latents, r1.actions)          # e^2 = e^1 (+) (z^1, a^1)
    r2 = p2.plan(o[1:], e2)
    assert (r2.actions - r1.actions).abs().max() < 0.1
    # the message arrays carry the same intent
    arrays = LAYOUT.to_arrays(e2)
    r2_msg = planner(follower, agent_index=1, iterations=10).plan(o[1:], LAYOUT.from_arrays(**arrays))
    torch.testing.assert_close(r2_msg.actions, r2.actions)
    # a changed intent changes the successor's plan
    other = LAYOUT.insert(LAYOUT.empty(1), 0, r1.latents, -r1.actions)
    r2b = planner(follower, agent_index=1, iterations=10).plan(o[1:], other)
    assert (r2b.actions - r2.actions).abs().max() > 0.3


def test_masked_predecessor_is_not_followed():
    follower = tracking_model(CFG, follow=0)
    acts = torch.full((1, PCFG.horizon, 3), 0.8)
    masked = LAYOUT.mask(intent_with_actions(acts), torch.tensor([[False, True]]))
    result = planner(follower, agent_index=1, iterations=10).plan(obs(), masked)
    assert result.actions.abs().max() < 0.15                 # masked slot reads as action 0


def test_batched_problems_are_solved_independently():
    follower = tracking_model(CFG, follow=0)
    targets = torch.tensor([[0.5, 0.5, 0.5], [-0.5, 0.0, 0.3], [0.0, -0.6, -0.2]])
    acts = targets[:, None, :].expand(3, PCFG.horizon, 3).contiguous()
    result = planner(follower, agent_index=1, iterations=10).plan(obs(3), intent_with_actions(acts))
    assert result.actions.shape == (3, PCFG.horizon, 3) and result.value.shape == (3,)
    assert (result.actions[:, 0] - targets).abs().max() < 0.1


def test_returned_trajectory_is_the_model_rollout_of_the_plan():
    model = tracking_model(CFG, target=A_STAR)
    pl = planner(model, iterations=3)
    o = obs()
    result = pl.plan(o, LAYOUT.empty(1))
    e = LAYOUT.model_inputs(LAYOUT.empty(1), agent_index=0)[0]
    with torch.no_grad():
        z = model.encode(o)
        torch.testing.assert_close(result.latents[:, 0], z)
        value = torch.zeros(1)
        for h in range(PCFG.horizon):
            z_next, r = model.next_and_reward(z, result.actions[:, h], e[h:h + 1])
            value += PCFG.discount ** h * model.two_hot.decode(r)
            torch.testing.assert_close(result.latents[:, h + 1], z_next, atol=1e-5, rtol=1e-4)
            z = z_next
        a_H = model.pi(z, e[-1:], deterministic=True).action
        value += PCFG.discount ** PCFG.horizon * model.Q(z, a_H, e[-1:], 'avg')
    torch.testing.assert_close(result.value, value, atol=1e-4, rtol=1e-4)


def test_warm_start_carries_the_previous_plan():
    model = tracking_model(CFG, target=A_STAR)
    narrow = {'iterations': 1, 'max_std': 0.3}                # sampling stays near the start mean
    cold = torch.stack([planner(model, seed=s, **narrow).plan(obs(), LAYOUT.empty(1)).actions
                        for s in range(4)])
    warm = []
    for s in range(4):
        pl = planner(model, seed=s, **narrow)
        for _ in range(4):
            r = pl.plan(obs(), LAYOUT.empty(1))
        warm.append(r.actions)
    warm = torch.stack(warm)
    assert (warm - A_STAR).abs().mean() < 0.5 * (cold - A_STAR).abs().mean()


def test_reset_forgets_the_warm_start_of_selected_problems():
    model = tracking_model(CFG, target=A_STAR)
    pl = planner(model, iterations=2)
    pl.plan(obs(2), LAYOUT.empty(2))
    prev = pl._prev_mean.clone()
    pl.reset(which=torch.tensor([True, False]))
    assert torch.all(pl._prev_mean[:, 0] == 0)
    torch.testing.assert_close(pl._prev_mean[:, 1], prev[:, 1])
    pl.reset()
    assert pl._prev_mean is None


def test_planner_follows_weight_updates_between_plans():
    model = tracking_model(CFG, target=A_STAR)
    pl = planner(model, iterations=10)
    first = pl.plan(obs(), LAYOUT.empty(1))
    new_target = -A_STAR
    with torch.no_grad():                                    # as an optimizer step would, in place
        model.load_state_dict(tracking_model(CFG, target=new_target).state_dict())
    pl.reset()
    second = pl.plan(obs(), LAYOUT.empty(1))
    assert (first.actions[0, 0] - A_STAR).abs().max() < 0.1
    assert (second.actions[0, 0] - new_target).abs().max() < 0.1


def test_same_seed_same_plan():
    model = tracking_model(CFG, target=A_STAR)
    a = planner(model, seed=7).plan(obs(), LAYOUT.empty(1))
    b = planner(model, seed=7).plan(obs(), LAYOUT.empty(1))
    torch.testing.assert_close(a.actions, b.actions, rtol=0, atol=0)


def test_sampled_sequences_are_low_pass_filtered():
    model = tracking_model(CFG, target=A_STAR)

    def roughness(cutoff):
        pl = planner(model, iterations=1, lowpass_cutoff_hz=cutoff, horizon=3)
        pl.plan(obs(), LAYOUT.empty(1))
        acts = pl.rollout.workspace(1, PCFG.num_samples).actions        # (H, B, N_p, da)
        return (acts[1:] - acts[:-1]).pow(2).mean().item()

    assert roughness(0.5) < 0.5 * roughness(None)


def test_plan_checks_intent_and_layout_sizes():
    model = tracking_model(CFG, target=A_STAR)
    pl = planner(model)
    with pytest.raises(IntentError, match='batch'):
        pl.plan(obs(2), LAYOUT.empty(3))
    with pytest.raises(IntentError, match='horizon'):
        SequentialPlanner(model, IntentLayout(2, 5, 16, 3), PCFG, 0)
    with pytest.raises(IntentError, match='latent_dim'):
        SequentialPlanner(model, IntentLayout(2, 3, 32, 3), PCFG, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')
def test_plan_on_cuda_converges_like_on_cpu():
    model = tracking_model(CFG, target=A_STAR).to('cuda')
    result = planner(model, iterations=10).plan(obs(), LAYOUT.empty(1))
    assert result.actions.device.type == 'cuda'
    assert (result.actions[0, 0].cpu() - A_STAR).abs().max() < 0.06


def test_actor_guided_initial_distribution_is_centred_on_the_actor_candidates():
    """init='actor' (Sec. 4.2): Gaussian samples start around the actor's proposals."""
    torch.manual_seed(0)
    from seqwm_agent.core.world_model import WorldModel
    model = WorldModel(CFG)
    uniform = {'iterations': 1, 'temperature': 1e-6, 'lowpass_cutoff_hz': None}
    # Only the 24 actor candidates, uniformly weighted: their mean.
    actor_mean = planner(model, seed=5, init='actor', num_samples=0, num_elites=24,
                         **uniform).plan(obs(), LAYOUT.empty(1)).actions
    # Many Gaussian samples from the fitted distribution plus the same actor candidates.
    guided = planner(model, seed=5, init='actor', num_samples=4000, num_elites=4024,
                     **uniform).plan(obs(), LAYOUT.empty(1)).actions
    cold = planner(model, seed=5, init='warm_start', num_samples=4000, num_elites=4024,
                   **uniform).plan(obs(), LAYOUT.empty(1)).actions
    assert (guided - actor_mean).abs().max() < 0.08
    assert (cold - actor_mean).abs().max() > 0.15


def test_actor_init_needs_actor_candidates():
    from seqwm_agent.core.config import ConfigError
    with pytest.raises(ConfigError, match='init'):
        PlannerConfig(init='actor', num_pi_trajs=0)
    with pytest.raises(ConfigError, match='init'):
        PlannerConfig(init='mean')
