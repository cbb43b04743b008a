"""Training sees the intent forms robots see: the buffer's forms and rates against TeamRuntime's."""
from __future__ import annotations

import torch

from seqwm_agent.core.command import ChainSettings
from seqwm_agent.core.config import PlannerConfig
from seqwm_agent.core.intent import IntentLayout
from seqwm_agent.runtime.team import TeamRuntime
from seqwm_agent.sim import load_task_config
from seqwm_agent.train.config import TrainConfig
from seqwm_agent.train.trainer import Trainer

# a lossy link whose intents are sometimes late: all three forms occur
LINK = {'plan_ms': [15.0, 40.0], 'hop_ms': [5.0, 5.0], 'budget_ms': [20.0, 5.0], 'loss': 0.3}
TINY = {'latent_dim': 16, 'encoder_dim': 32, 'hidden_dim': 32, 'critic_dim': 16, 'actor_dim': 16}


def _fractions(modes: torch.Tensor) -> torch.Tensor:
    return torch.bincount(modes.flatten(), minlength=3)[:3].double() / modes.numel()


def test_the_buffer_holds_the_forms_the_deployed_link_produces_at_its_rates(tmp_path):
    task = load_task_config('pushbox', {'episode_s': 2.0})
    cfg = TrainConfig(seed=1, num_envs=32, total_env_steps=32 * 60, warmup_env_steps=10 ** 6,
                      plan_envs=0, eval_every_env_steps=10 ** 9, checkpoint_every_s=10 ** 6,
                      buffer_size=32 * 80, compile='off', model=TINY, link=LINK)
    trainer = Trainer(task, cfg, tmp_path / 'run', None, progress=False)
    trainer.run()
    ages = trainer.buffer.slot_age[:trainer.buffer.rows, :, 1, 0].long()   # agent 1, slot 0
    # fresh: age 0; cached: the previous intent, shifted (age >= 1); masked: -1
    buffered = _fractions(torch.where(ages < 0, 2, torch.where(ages == 0, 0, 1)))

    tiny = PlannerConfig(horizon=3, num_samples=16, num_pi_trajs=4, num_elites=4, iterations=1)
    team = TeamRuntime(trainer.models, trainer.layout, tiny, ChainSettings(),
                       task.action_limits, 32, 0.1, 'seq', seed=7, link=cfg.link_config())
    obs = trainer.env.reset()
    for tick in range(60):
        if tick % task.max_steps == 0:
            team.reset(torch.ones(32, dtype=torch.bool))
        team.act(obs, tick)
    deployed = team.mode_counts[1].double() / team.mode_counts[1].sum()
    assert (buffered > 0.02).all() and (deployed > 0.02).all()     # every form occurs
    assert torch.allclose(buffered, deployed, atol=0.06), (buffered, deployed)


def test_a_collected_intent_carries_the_commands_the_chain_would_execute():
    from seqwm_agent.core.command import CommandChain, chain_step
    from seqwm_agent.core.config import ModelConfig
    from seqwm_agent.core.world_model import WorldModel
    from seqwm_agent.train.team import actor_rollout, chain_stepper
    torch.manual_seed(0)
    model = WorldModel(ModelConfig(obs_dim=4, num_agents=2, **TINY))
    chain = CommandChain(ChainSettings().limits, 2.0, 10.0, 2 * 2, (1.0, 0.5, 0.5))
    chain.step_batch(torch.full((4, 3), 0.8))              # moving: the chain lags and limits
    before = chain.state.clone()
    rows = type(before)(*(t.reshape(2, 2, 3).float() for t in
                          (before.x_prev, before.y_prev, before.last)))
    params = chain.params.like(torch.float32, 'cpu')
    a0 = torch.tensor([[-1.0, 1.0, 0.0], [1.0, -1.0, 0.5]])
    z0 = model.encode(torch.randn(2, 4))
    e = torch.zeros(2, 4, IntentLayout(2, 3, 16, 3).input_dim)
    _, acts = actor_rollout(model, z0, e, 3, first_action=a0, through=chain_stepper(
        (params, rows), 1))
    robot1 = type(before)(rows.x_prev[:, 1], rows.y_prev[:, 1], rows.last[:, 1])
    _, v = chain_step(params, robot1, a0)
    assert torch.allclose(acts[:, 0], v * params.inv_scale)           # not the raw action
    assert not torch.allclose(acts[:, 0], a0)
    assert torch.equal(chain.state.last, before.last)                 # the chain is untouched
