"""`MultiQuadEnv`: the batched Multi-Quad environment the trainer steps and the arena node drives.

One control tick of `step` (read top to bottom):
  actions (B, n, 3) in [-1, 1] -> reject non-finite -> clamp -> x action_limits = commands
  -> (+ the sheep's flee command) -> physics: delay, lag, contacts over `substeps`
  -> task: reward, success, terminated; time-out -> truncated
  -> observation of the (noisy) snapshot -> auto-reset of finished environments
     (their last observation goes to info['final_obs']).
"""
from __future__ import annotations

from pathlib import Path

import torch

from .config import TaskConfig, load_task_config
from .observation import Snapshot, obs_spec, observe
from .tasks import Task, make_task
from .geometry import wrap_angle


def check_finite(x: torch.Tensor, what: str) -> None:
    """Raise ValueError naming the first environment and robot whose entry is NaN or inf."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        env, robot = (int(i) for i in bad.any(-1).nonzero()[0])
        raise ValueError(f'{what} for env {env} robot {robot} is not finite: '
                         f'{x[env, robot].tolist()} (rejected; nothing was stepped)')


class MultiQuadEnv:
    """B environments of one Multi-Quad task (pushbox, gate, shepherd), stepped together.

    `task_cfg` is a task config, a task name ('pushbox' loads config/pushbox.yaml), a YAML path
    or a `task:` dict. `seed` seeds the environment's own torch.Generator: for a fixed seed and
    device, every reset, randomisation, noise draw and delay is bit-identical.
    `auto_reset=False` (the arena node) leaves finished environments as they are until `reset`.
    `compile` runs the physics sub-steps through torch.compile (core.compiled modes; the trainer
    passes its `compile` setting, everything else steps eagerly).
    """

    def __init__(self, task_cfg: TaskConfig | str | Path | dict, num_envs: int = 1,
                 device: torch.device | str = 'cpu', seed: int = 0,
                 auto_reset: bool = True, compile: str = 'off') -> None:
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f'num_envs must be a positive integer, got {num_envs!r}')
        self.cfg: TaskConfig = load_task_config(task_cfg)
        self.task_name: str = self.cfg.name
        self.num_envs = num_envs
        self.num_robots: int = self.cfg.num_robots
        self.device = torch.device(device)
        self.auto_reset = auto_reset
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.task: Task = make_task(self.cfg, num_envs, self.device, self.generator)
        self.world = self.task.world
        self.world.use_compiled(compile)
        self.action_dim = 3
        #: (vx, vy, wz) limits: command = action * action_limits (m/s, m/s, rad/s)
        self.action_limits = torch.tensor(self.cfg.action_limits, device=self.device)
        self._spec = obs_spec(self.task_name, self.cfg)
        self.obs_dim = len(self._spec)
        self.control_dt = self.cfg.physics.control_dt
        self.max_steps = self.cfg.max_steps
        B = num_envs
        self.t = torch.zeros(B, dtype=torch.long, device=self.device)
        self.episode_return = torch.zeros(B, device=self.device)
        self.prev_cmd = torch.zeros(B, self.world.A, 3, device=self.device)
        self._all = torch.ones(B, dtype=torch.bool, device=self.device)
        self.reset()

    # ---- public interface ---------------------------------------------------------------------
    def obs_spec(self) -> list[str]:
        """Name of every observation element, in order (stored in the checkpoint manifest)."""
        return list(self._spec)

    def reset(self, env_mask: torch.Tensor | None = None, seed: int | None = None) -> torch.Tensor:
        """Start new episodes (all, or where env_mask (B,) is set); returns obs (B, n, obs_dim)."""
        if seed is not None:
            self.generator.manual_seed(seed)
        mask = self._all if env_mask is None else env_mask.to(self.device, torch.bool)
        self._reset_mask(mask)
        return self.observe()

    def step(self, actions: torch.Tensor):
        """Step with normalised actions (B, n, 3) in [-1, 1] (clamped), scaled by action_limits.

        Returns obs (B, n, obs_dim), reward (B,), terminated (B,) bool, truncated (B,) bool and
        info with 'success', 'collision' (B,) bool, 'collision_robot' (B, n) bool,
        'final_obs' (B, n, obs_dim) (the observation before any auto-reset; equal to obs where
        not done), 'episode_return', 'episode_length' (B,) (of the episode that just ended,
        where done) and task metrics.
        """
        actions = self._as_input(actions, 'action')
        return self._advance(actions.clamp(-1.0, 1.0) * self.action_limits)

    def step_commands(self, cmd: torch.Tensor):
        """The same step driven by velocity commands (B, n, 3) in m/s, m/s, rad/s (body frame).

        Commands beyond the locomotion controller's limits are clamped to them, as on the robot.
        """
        cmd = self._as_input(cmd, 'command')
        lim = self.action_limits
        return self._advance(torch.maximum(torch.minimum(cmd, lim), -lim))

    def observe(self) -> torch.Tensor:
        """Observation (B, n, obs_dim) of the current state, with sensor noise if configured."""
        return observe(self.task_name, self._noisy(self.task.snapshot()), self.cfg)

    def snapshot(self) -> Snapshot:
        """The true (noise-free) poses and task parameters: what the arena publishes as mocap."""
        return self.task.snapshot()

    def set_state(self, robots: torch.Tensor | None = None, box: torch.Tensor | None = None,
                  sheep: torch.Tensor | None = None, target: torch.Tensor | None = None,
                  gate: torch.Tensor | None = None,
                  env_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Place bodies at rest at given poses (scenarios, tests); returns the new observation.

        robots (B, n, 3); box / sheep (B, 3); target (B, m, 2); gate (B, 2). Unspecified bodies
        stay where they are (and come to rest). The step counter is not changed.
        """
        mask = self._all if env_mask is None else env_mask.to(self.device, torch.bool)
        pose = self.world.pose[:, :self.world.K].clone()
        if robots is not None:
            pose[:, :self.num_robots] = robots.to(pose)
        obj = box if box is not None else sheep
        if obj is not None:
            if self.world.obj is None:
                raise ValueError(f'{self.task_name} has no box or sheep')
            pose[:, self.world.obj] = obj.to(pose)
        self.world.place(pose, mask)
        self.task.set_params(target, gate, mask)
        self.task.refresh(mask)
        self.prev_cmd = torch.where(mask[:, None, None], torch.zeros_like(self.prev_cmd),
                                    self.prev_cmd)
        return self.observe()

    # ---- internals ----------------------------------------------------------------------------
    def _as_input(self, x: torch.Tensor, what: str) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        want = (self.num_envs, self.num_robots, 3)
        if tuple(x.shape) != want:
            raise ValueError(f'{what}s must have shape {want} (envs, robots, vx/vy/wz), '
                             f'got {tuple(x.shape)}')
        check_finite(x, what)
        return x

    def _reset_mask(self, mask: torch.Tensor) -> None:
        self.task.reset(mask)
        self.t = torch.where(mask, torch.zeros_like(self.t), self.t)
        self.episode_return = torch.where(mask, torch.zeros_like(self.episode_return),
                                          self.episode_return)
        self.prev_cmd = torch.where(mask[:, None, None], torch.zeros_like(self.prev_cmd),
                                    self.prev_cmd)

    def _noisy(self, snap: Snapshot) -> Snapshot:
        """Sensor noise on measured poses (robots, box, sheep); targets and gate are known."""
        nz = self.cfg.noise
        if nz.pos_std == 0.0 and nz.yaw_std == 0.0:
            return snap
        std = torch.tensor([nz.pos_std, nz.pos_std, nz.yaw_std], device=self.device)

        def jitter(p: torch.Tensor) -> torch.Tensor:
            e = torch.randn(p.shape, generator=self.generator, device=self.device) * std
            q = p + e
            q[..., 2] = wrap_angle(q[..., 2])
            return q

        return Snapshot(robots=jitter(snap.robots),
                        box=None if snap.box is None else jitter(snap.box),
                        sheep=None if snap.sheep is None else jitter(snap.sheep),
                        target=snap.target, gate=snap.gate)

    def _advance(self, cmd: torch.Tensor):
        obj_cmd = self.task.object_commands()
        full = cmd if obj_cmd is None else torch.cat((cmd, obj_cmd), 1)
        collision_robot = self.task.contacts(self.world.step(full, self.prev_cmd))
        self.prev_cmd = full
        self.t = self.t + 1
        reward, success, terminated, extra = self.task.evaluate(collision_robot)
        truncated = (self.t >= self.max_steps) & ~terminated
        done = terminated | truncated
        self.episode_return = self.episode_return + reward
        obs = self.observe()
        info = {'success': success, 'collision': collision_robot.any(1),
                'collision_robot': collision_robot, 'final_obs': obs,
                'episode_return': self.episode_return.clone(), 'episode_length': self.t.clone(),
                **extra}
        if self.auto_reset and bool(done.any()):
            self._reset_mask(done)
            obs = torch.where(done[:, None, None], self.observe(), obs)
        return obs, reward, terminated, truncated, info
