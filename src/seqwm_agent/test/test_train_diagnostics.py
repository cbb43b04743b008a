"""The controller forms no robot runs (train/diagnostics.py) differ from the deployed one only
where they say: what the plan runs through and what is sent."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_team import PLANNER, make_models, model_config  # noqa: E402

from seqwm_agent.core.command import ChainSettings, CommandLimits
from seqwm_agent.core.intent import IntentLayout
from seqwm_agent.train.diagnostics import CONTROLLERS

SCALE = (1.0, 0.5, 0.5)
CHAIN = ChainSettings(CommandLimits(), 2.0, 10.0)


def first_step(form: str):
    cfg = model_config()
    layout = IntentLayout(cfg.num_agents, PLANNER.horizon, cfg.latent_dim, cfg.action_dim)
    ctl = CONTROLLERS[form](make_models()[0], layout, PLANNER, 0, CHAIN, SCALE, batch=3, seed=0)
    obs = torch.randn(3, cfg.obs_dim, generator=torch.Generator().manual_seed(2))
    return ctl, ctl.step(obs, 0, 0.1, seeds=[1, 2, 3])


def test_raw_actions_send_the_plans_first_action_scaled_and_unfiltered():
    _, out = first_step('off')
    expected = out.plan.actions[:, 0].double().clamp(-1, 1) * torch.tensor(SCALE).double()
    assert torch.allclose(out.commands, expected)


def test_the_deployed_and_the_chain_after_forms_send_the_chains_output_from_rest():
    for form in ('plan', 'after'):
        ctl, out = first_step(form)
        # from rest the acceleration limit bounds the first command: never the raw action
        assert (out.commands.abs() <= ctl.chain.params.a_max * 0.1 + 1e-9).all(), form
    # the deployed form plans through the chain: its plan's commands are executable ones
    _, deployed = first_step('plan')
    _, after = first_step('after')
    assert torch.equal(after.plan.commands, after.plan.actions)          # raw: no chain inside
    assert not torch.equal(deployed.plan.commands, deployed.plan.actions)
