"""Test helper: a small PushBox model set for two robots, written with the real checkpoint code.

Robot go2w_1 (order index 0) carries a hand-built tracking reward towards a constant action, so
its plan is predictable; go2w_2 follows go2w_1's planned action read from the intent (robot 0's
slot), so what it plans visibly depends on the intent it receives. Encoders, dynamics and actors
keep their random initialisation. Widths are small so that a tick plans in a few ms on one core.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from seqwm_agent.core.checkpoint import Manifest, save_team
from seqwm_agent.core.config import ModelConfig, PlannerConfig
from seqwm_agent.core.toy import tracking_model
from seqwm_agent.core.world_model import WorldModel
from seqwm_agent.sim.config import load_task_config
from seqwm_agent.sim.observation import obs_spec

TEAM = ('go2w_1', 'go2w_2')
TASK = 'pushbox'
MODEL_SET_ID = 'test-pushbox-2robots'
DT = 0.1
LEADER_ACTION = (0.6, -0.4, 0.2)
PLANNER = PlannerConfig(horizon=3, iterations=4, num_samples=128, num_pi_trajs=8, num_elites=16)
# The manifest's deployment timing (seqwm-budget writes it for real models): these models plan
# in ~5 ms alone on one core; p99 20 ms leaves room for a loaded test machine.
DEPLOYMENT = {'plan_ms': {'p50': 5.0, 'p99': 20.0}}
# Nominal arena poses (x, y, yaw): robots behind the box, as at an episode start.
POSES = {'go2w_1': (1.15, -1.25, 0.0), 'go2w_2': (1.15, 1.25, 0.0), 'box': (2.0, 0.0, 0.0)}


def task_config():
    return load_task_config(TASK, overrides={'num_robots': len(TEAM)})


def model_config() -> ModelConfig:
    return ModelConfig(obs_dim=len(obs_spec(TASK, task_config())), num_agents=len(TEAM),
                       latent_dim=16, encoder_dim=32, hidden_dim=32, critic_dim=32, actor_dim=32)


def make_models(seed: int = 0) -> list[WorldModel]:
    cfg = model_config()
    return [tracking_model(cfg, target=LEADER_ACTION, seed=seed),
            tracking_model(cfg, follow=0, seed=seed + 1)]


def make_manifest(model_set_id: str = MODEL_SET_ID, dt: float = DT,
                  planner: PlannerConfig = PLANNER, order: Sequence[str] = TEAM,
                  deployment: dict | None = None) -> Manifest:
    return Manifest(model_set_id=model_set_id, model=model_config(),
                    obs_spec=obs_spec(TASK, task_config()),
                    action_scaling={'vx': 1.0, 'vy': 0.5, 'wz': 0.5}, dt=dt, order=list(order),
                    task=TASK, planner=planner.to_dict(),
                    deployment=dict(DEPLOYMENT if deployment is None else deployment))


def write_team(model_dir: Path, models: Sequence[WorldModel] | None = None,
               **manifest_kw) -> Path:
    """Save a team (default: make_models()) with a manifest matching the pushbox observation."""
    models = list(models) if models is not None else make_models()
    save_team(model_dir, models, make_manifest(**manifest_kw))
    return model_dir


def scaled_copy(model: WorldModel, scale: float, nan: bool = False) -> WorldModel:
    """A copy with every weight multiplied by `scale`, and NaN in the reward head if `nan`."""
    out = WorldModel(model.cfg)
    out.load_state_dict(model.state_dict())
    with torch.no_grad():
        for p in out.parameters():
            p.mul_(scale)
        if nan:
            out._reward_head.bias.fill_(float('nan'))
    return out
