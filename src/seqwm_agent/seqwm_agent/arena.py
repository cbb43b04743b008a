"""The simulated arena, ROS-free: one `MultiQuadEnv` (B = 1) driven by velocity commands.

The arena node feeds it the robots' latest `cmd_vel` and publishes its true poses as a mocap
"camera" (the bridge's `sim` source turns them into SDK-layout frames). It uses the very physics
and task code the trainer uses; only the step period differs: the arena steps at the camera rate
(e.g. 50 Hz) so agents see several frames per control tick, as with real motion capture.

Like the real robot (which stops about 1 s after its last Move), a robot whose command is older
than `cmd_timeout_s` gets a zero command.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Sequence

import torch

from .sim.config import TaskConfig, load_task_config
from .sim.env import MultiQuadEnv


@dataclass
class EpisodeResult:
    """What the arena knows about the running episode (published as JSON on /arena/episode)."""

    running: bool = False
    done: bool = False
    success: bool = False
    truncated: bool = False
    collision: bool = False
    sim_time_s: float = 0.0
    time_to_goal_s: float | None = None
    steps: int = 0
    metrics: dict = field(default_factory=dict)


def arena_task_config(task: str | TaskConfig, num_robots: int, frame_dt: float,
                      overrides: dict | None = None) -> TaskConfig:
    """The trainer's task config with the arena's step period and team size.

    Sub-steps are scaled so the physics integration step stays what training used.
    """
    cfg = copy.deepcopy(load_task_config(task))
    train_substep = cfg.physics.control_dt / cfg.physics.substeps
    data = cfg.to_dict()
    data['num_robots'] = num_robots
    data['physics']['control_dt'] = frame_dt
    data['physics']['substeps'] = max(1, int(math.ceil(frame_dt / train_substep - 1e-9)))
    for key, value in (overrides or {}).items():
        data[key] = value
    return load_task_config({'name': cfg.name, **data} if 'name' not in data else data)


class ArenaSession:
    """Steps the world at the camera rate from held velocity commands."""

    def __init__(self, cfg: TaskConfig, robots: Sequence[str], seed: int = 0,
                 cmd_timeout_s: float = 1.0) -> None:
        self.robots = list(robots)
        if cfg.num_robots != len(self.robots):
            raise ValueError(f'task config has {cfg.num_robots} robots, arena got {self.robots}')
        self.env = MultiQuadEnv(cfg, num_envs=1, seed=seed, auto_reset=False)
        self.dt = self.env.control_dt
        self.cmd_timeout_s = cmd_timeout_s
        self._cmd = torch.zeros(1, len(self.robots), 3)
        self._cmd_time = [-math.inf] * len(self.robots)
        self.result = EpisodeResult()
        self.env.reset(seed=seed)

    def set_command(self, robot: str, vx: float, vy: float, wz: float, sim_time: float) -> bool:
        """Hold a robot's latest command; non-finite commands are refused (returns False)."""
        if not all(math.isfinite(v) for v in (vx, vy, wz)):
            return False
        k = self.robots.index(robot)
        self._cmd[0, k] = torch.tensor([vx, vy, wz])
        self._cmd_time[k] = sim_time
        return True

    def start(self) -> None:
        self.result = EpisodeResult(running=True)

    def next_episode(self, seed: int) -> None:
        """Reset the world for a new episode (held commands dropped), not yet running."""
        self.env.reset(seed=seed)
        self._cmd.zero_()
        self._cmd_time = [-math.inf] * len(self.robots)
        self.result = EpisodeResult()

    def step(self) -> EpisodeResult:
        """Advance one camera frame; physics only runs while the episode is running."""
        r = self.result
        if not r.running:
            return r
        now = r.sim_time_s
        cmd = self._cmd.clone()
        for k, t in enumerate(self._cmd_time):
            if now - t > self.cmd_timeout_s:
                cmd[0, k] = 0.0
        _, _, terminated, truncated, info = self.env.step_commands(cmd)
        r.steps += 1
        r.sim_time_s = r.steps * self.dt
        r.collision = r.collision or bool(info['collision'][0])
        r.metrics = {k: float(v[0]) for k, v in info.items()
                     if torch.is_tensor(v) and v.dim() == 1 and v.dtype.is_floating_point}
        if bool(info['success'][0]):
            r.success = True
            r.time_to_goal_s = r.sim_time_s
        if bool(terminated[0]) or bool(truncated[0]):
            r.truncated = bool(truncated[0]) and not r.success
            r.done, r.running = True, False
        return r

    def sim_time(self) -> float:
        return self.result.sim_time_s

    def bodies(self) -> dict[str, tuple[float, float, float]]:
        """True (x, y, yaw) of every body, by mocap name (robots, then 'box' / 'sheep')."""
        snap = self.env.snapshot()
        out = {name: tuple(float(v) for v in snap.robots[0, k]) for k, name in enumerate(self.robots)}
        if snap.box is not None:
            out['box'] = tuple(float(v) for v in snap.box[0])
        if snap.sheep is not None:
            out['sheep'] = tuple(float(v) for v in snap.sheep[0])
        return out

    def task_params(self) -> dict:
        """The episode's task parameters (target, gate) — what agents must be configured with."""
        snap = self.env.snapshot()
        params = {}
        if snap.target is not None:
            params['target'] = snap.target[0].tolist()
        if snap.gate is not None:
            params['gate'] = snap.gate[0].tolist()
        return params
