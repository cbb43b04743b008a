"""Team-size curriculum (train/grow.py): a grown agent starts as its source on what it knew."""
from __future__ import annotations

import pytest
import torch

from seqwm_agent.core.config import ModelConfig
from seqwm_agent.core.world_model import WorldModel
from seqwm_agent.sim import MultiQuadEnv, load_task_config
from seqwm_agent.train.grow import grow_agent, source_index

WIDTHS = dict(latent_dim=16, encoder_dim=32, hidden_dim=24, critic_dim=16, actor_dim=16)


def gate_spec(n: int) -> list[str]:
    return MultiQuadEnv(load_task_config('gate', {'num_robots': n}), 1).obs_spec()


def pair(m: int, n: int, dst_agent: int, seed: int = 0):
    """(source model, grown model, source spec, new spec, source agent index)."""
    torch.manual_seed(seed)
    s_spec, d_spec = gate_spec(m), gate_spec(n)
    src = WorldModel(ModelConfig(obs_dim=len(s_spec), num_agents=m, **WIDTHS))
    with torch.no_grad():       # trained-looking weights everywhere (a fresh Q head is zero)
        for p in src.parameters():
            p.add_(0.3 * torch.randn_like(p))
    dst = WorldModel(ModelConfig(obs_dim=len(d_spec), num_agents=n, **WIDTHS))
    s = source_index(dst_agent, m)
    dst.load_state_dict(grow_agent(src.state_dict(), src.cfg, s_spec, s, dst.state_dict(),
                                   dst.cfg, d_spec))
    return src.eval(), dst.eval(), s_spec, d_spec, s


def intents(cfg: ModelConfig, valid: int, batch: int) -> torch.Tensor:
    """Random conditioning vectors with the first `valid` slots filled, the rest masked."""
    e = torch.randn(batch, cfg.num_agents, cfg.slot_dim)
    e[:, valid:] = 0.0
    return e.reshape(batch, -1)


@pytest.mark.parametrize('dst_agent', range(5))
def test_grown_agent_reads_the_observation_as_its_source_and_ignores_new_mates(dst_agent):
    src, dst, s_spec, d_spec, _ = pair(3, 5, dst_agent)
    obs = torch.randn(64, len(d_spec))                  # new columns hold anything at all
    shared = torch.tensor([d_spec.index(name) for name in s_spec])
    assert torch.allclose(dst.encode(obs), src.encode(obs[:, shared]), atol=1e-5)


@pytest.mark.parametrize('dst_agent', range(5))
def test_grown_agent_plans_as_its_source_when_the_extra_predecessors_are_unseen(dst_agent):
    src, dst, _, _, s = pair(3, 5, dst_agent, seed=1)
    B = 32
    z, a = torch.randn(B, src.cfg.latent_dim), torch.rand(B, 3) * 2 - 1
    e_src = intents(src.cfg, s, B)
    # the grown agent sees the same s predecessors plus, in slots s.., intents it has not
    # learned to read yet: they must not change anything at the start
    e_dst = torch.randn(B, 5, dst.cfg.slot_dim)
    e_dst[:, :s] = e_src.reshape(B, 3, -1)[:, :s]
    e_dst = e_dst.reshape(B, -1)
    zn_s, r_s = src.next_and_reward(z, a, e_src)
    zn_d, r_d = dst.next_and_reward(z, a, e_dst)
    assert torch.allclose(zn_d, zn_s, atol=1e-5) and torch.allclose(r_d, r_s, atol=1e-4)
    assert torch.allclose(dst.Q(z, a, e_dst), src.Q(z, a, e_src), atol=1e-4)
    assert torch.allclose(dst.Q(z, a, e_dst, target=True), src.Q(z, a, e_src, target=True),
                          atol=1e-4)
    assert torch.allclose(dst.pi(z, e_dst, deterministic=True).action,
                          src.pi(z, e_src, deterministic=True).action, atol=1e-5)


def test_new_robots_copy_the_source_teams_last_robot():
    assert [source_index(k, 3) for k in range(5)] == [0, 1, 2, 2, 2]


def test_growing_refuses_other_widths_and_shrinking():
    s_spec, d_spec = gate_spec(3), gate_spec(5)
    src = WorldModel(ModelConfig(obs_dim=len(s_spec), num_agents=3, **WIDTHS))
    wide = WorldModel(ModelConfig(obs_dim=len(d_spec), num_agents=5, **(WIDTHS | {'hidden_dim': 32})))
    with pytest.raises(ValueError, match='hidden_dim'):
        grow_agent(src.state_dict(), src.cfg, s_spec, 0, wide.state_dict(), wide.cfg, d_spec)
    small = WorldModel(ModelConfig(obs_dim=len(gate_spec(2)), num_agents=2, **WIDTHS))
    with pytest.raises(ValueError, match='cannot grow a 3-robot team into 2'):
        grow_agent(src.state_dict(), src.cfg, s_spec, 0, small.state_dict(), small.cfg,
                   gate_spec(2))
