"""The controller is batched over teams: B teams in one call equal B robots planning alone."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_team import PLANNER, make_models, model_config  # noqa: E402

from seqwm_agent.core.command import ChainSettings, CommandLimits
from seqwm_agent.core.config import PlannerConfig
from seqwm_agent.core.intent import IntentLayout, IntentTensors
from seqwm_agent.runtime.controller import Controller

SCALE = (1.0, 0.5, 0.5)
CHAIN = ChainSettings(CommandLimits(), 2.0, 10.0)


def rows(intent: IntentTensors, b: int) -> IntentTensors:
    return IntentTensors(*(t[b:b + 1] for t in (intent.latents, intent.actions, intent.valid,
                                                intent.age)))


def test_batched_controller_equals_one_controller_per_team_bit_for_bit():
    """Four teams in one B = 4 controller and four B = 1 controllers (robots), fed the same
    observations, intents (fresh, late, lost), seeds and tick times, give identical commands,
    outgoing intents and modes over several ticks (warm start, chain state and cache carry)."""
    torch.manual_seed(0)
    cfg = model_config()
    model = make_models()[1]
    planner = PlannerConfig.from_dict({**PLANNER.to_dict(), 'early_stop': True,
                                       'kl_threshold': 0.5})
    layout = IntentLayout(cfg.num_agents, planner.horizon, cfg.latent_dim, cfg.action_dim)
    B = 4
    batched = Controller(model, layout, planner, 1, CHAIN, SCALE, batch=B, seed=0)
    singles = [Controller(model, layout, planner, 1, CHAIN, SCALE, batch=1, seed=0)
               for _ in range(B)]
    gen = torch.Generator().manual_seed(1)
    for tick in range(100, 106):
        obs = torch.randn(B, cfg.obs_dim, generator=gen)
        intent = layout.empty(B)
        intent.latents[:, 0] = torch.rand(B, planner.horizon + 1, cfg.latent_dim, generator=gen)
        intent.actions[:, 0] = torch.rand(B, planner.horizon, cfg.action_dim, generator=gen) * 2 - 1
        intent.valid[:, 0] = True
        delivered = torch.tensor([True, tick % 2 == 0, tick % 3 == 0, False])
        seeds = [1000 * b + tick for b in range(B)]
        dt0 = torch.tensor([0.1, 0.1, 0.12, 0.08])
        batched.receive(intent, tick, delivered)
        out = batched.step(obs, tick, dt0, seeds)
        for b, one in enumerate(singles):
            if delivered[b]:
                one.receive(rows(intent, b), tick)
            o = one.step(obs[b:b + 1], tick, dt0[b:b + 1], seeds[b:b + 1])
            assert torch.equal(o.commands[0], out.commands[b]), (tick, b)
            assert torch.equal(o.mode[0], out.mode[b]) and torch.equal(o.age[0], out.age[b])
            for f in ('latents', 'actions', 'valid', 'age'):
                assert torch.equal(getattr(o.intent, f)[0], getattr(out.intent, f)[b]), (f, b)
            assert torch.equal(o.plan.iterations_per_problem[0], out.plan.iterations_per_problem[b])
    modes = set(out.mode.tolist())
    assert len(modes) > 1, 'the teams must have taken different paths (fresh / cached / masked)'


def test_a_non_finite_plan_stops_only_its_own_team():
    cfg = model_config()
    planner = PLANNER
    layout = IntentLayout(cfg.num_agents, planner.horizon, cfg.latent_dim, cfg.action_dim)
    ctl = Controller(make_models()[0], layout, planner, 0, CHAIN, SCALE, batch=3, seed=0)
    obs = torch.zeros(3, cfg.obs_dim)
    for tick in range(3):
        ctl.step(obs, tick, 0.1, [tick] * 3)
    obs[1] = float('nan')
    out = ctl.step(obs, 3, 0.1, [3] * 3)
    assert out.ok.tolist() == [True, False, True]
    assert out.commands[1].tolist() == [0.0, 0.0, 0.0]
    assert torch.equal(ctl.chain.state.last[1], torch.zeros(3, dtype=torch.float64))
    assert bool(out.commands[0].abs().max() > 0)
