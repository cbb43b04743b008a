"""Tiny teams, configs and filled buffers shared by the trainer tests (seconds, not minutes)."""
from __future__ import annotations

import torch

from seqwm_agent.core.intent import IntentLayout
from seqwm_agent.core.world_model import WorldModel
from seqwm_agent.train.buffer import ReplayBuffer
from seqwm_agent.train.config import TrainConfig
from seqwm_agent.train.update import SequentialUpdate

TINY = {'latent_dim': 16, 'encoder_dim': 32, 'hidden_dim': 32, 'critic_dim': 16, 'actor_dim': 16}
OBS, N = 6, 2


def tiny_cfg(**kw) -> TrainConfig:
    base = dict(model=TINY, batch_size=32, td_steps=3, horizon=3, mask_prob=0.0,
                shuffle_prob=0.0, num_envs=4, warmup_env_steps=0, compile='off')
    base.update(kw)
    return TrainConfig(**base)


def filled_buffer(rows: int = 40, envs: int = 4, seed: int = 0, episode: int = 7) -> ReplayBuffer:
    g = torch.Generator().manual_seed(seed)
    buf = ReplayBuffer(rows * envs, envs, N, OBS, 3)
    for t in range(rows):
        obs = torch.randn(envs, N, OBS, generator=g)
        a = torch.rand(envs, N, 3, generator=g) * 2 - 1
        r = obs[:, 0, 0] + a[:, 1, 0]                     # learnable from (o, a) of both agents
        end = torch.full((envs,), (t + 1) % episode == 0)
        buf.add(obs, a, r, torch.randn(envs, N, OBS, generator=g), end & (t % 2 == 0),
                end & (t % 2 == 1))
    return buf


def team(cfg: TrainConfig, seed: int = 0):
    torch.manual_seed(seed)
    mc = cfg.model_config(OBS, N)
    models = [WorldModel(mc) for _ in range(N)]
    layout = IntentLayout(N, cfg.horizon, mc.latent_dim, mc.action_dim)
    return models, layout, SequentialUpdate(models, layout, cfg, torch.Generator().manual_seed(seed))
