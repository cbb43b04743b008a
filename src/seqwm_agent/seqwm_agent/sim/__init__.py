"""Batched Multi-Quad simulator (pure torch): PushBox, Gate, Shepherd with 1-5 Go2-W robots.

The trainer steps `MultiQuadEnv` with thousands of environments; the arena node steps the same
class with B = 1 through `step_commands`; the agent node builds a `Snapshot` from mocap and calls
the same `observe`. See docs/simulator.md.
"""
from __future__ import annotations

from .config import (ConfigError, GateConfig, PushBoxConfig, ShepherdConfig, TaskConfig,
                     load_task_config, task_config_from_dict, task_config_to_dict)
from .env import MultiQuadEnv
from .observation import Snapshot, obs_spec, observe, pose_from_position_quaternion

__all__ = ['MultiQuadEnv', 'Snapshot', 'observe', 'obs_spec', 'pose_from_position_quaternion',
           'load_task_config', 'task_config_from_dict', 'task_config_to_dict', 'TaskConfig',
           'PushBoxConfig', 'GateConfig', 'ShepherdConfig', 'ConfigError']
