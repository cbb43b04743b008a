"""The three Multi-Quad tasks: start-state sampling (domain randomisation), object behaviour,
team reward, success and termination. Everything is batched over B and masked, never looped.

Rewards are team rewards (one scalar per environment, the same for every robot). The shaped part
is clamped to [-1, 1] per step so the critic's symlog two-hot range is never stressed; the
success bonus comes on top, once, on the terminating step.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch

from .config import GateConfig, PushBoxConfig, ShepherdConfig, TaskConfig
from .observation import Snapshot, nominal_gate_targets, push_point, unit_vector
from .geometry import boxes_overlap
from .physics import GateGeometry, PlanarWorld


class Task(ABC):
    """Common part: the world, seeded sampling and the per-episode randomisation of robots."""

    name = ''

    def __init__(self, cfg: TaskConfig, num_envs: int, device: torch.device,
                 generator: torch.Generator) -> None:
        self.cfg, self.B, self.n, self.device, self.gen = cfg, num_envs, cfg.num_robots, device, \
            generator
        self.world = self.build_world()
        p = cfg.physics
        self.max_delay = int(math.floor(cfg.noise.delay_max_s / p.substep_dt + 1e-9))

    @abstractmethod
    def build_world(self) -> PlanarWorld:
        ...

    # ---- seeded sampling ------------------------------------------------------------------------
    def uniform(self, *shape: int) -> torch.Tensor:
        """U[-1, 1] of the given shape from the environment's own generator."""
        return torch.rand(*shape, generator=self.gen, device=self.device) * 2.0 - 1.0

    def jitter(self, amount: float, *shape: int) -> torch.Tensor:
        """U[-amount, amount], or zeros (same draws consumed) when randomisation is off."""
        u = self.uniform(*shape)
        return u * (amount if self.cfg.randomize else 0.0)

    def in_range(self, rng: tuple, nominal: float) -> torch.Tensor:
        """U[rng] per environment, or the nominal value when randomisation is off."""
        u = torch.rand(self.B, generator=self.gen, device=self.device)
        if not self.cfg.randomize:
            return torch.full_like(u, nominal)
        return rng[0] + (rng[1] - rng[0]) * u

    def robot_poses(self, starts: list[tuple[float, float]]) -> torch.Tensor:
        """Robot start poses (B, n, 3): nominal starts + position / yaw jitter."""
        base = torch.tensor(starts, dtype=torch.float32, device=self.device)
        xy = base[None] + self.jitter(self.cfg.robot_pos_jitter, self.B, self.n, 2)
        yaw = self.jitter(self.cfg.robot_yaw_jitter, self.B, self.n, 1)
        return torch.cat((xy, yaw), -1)

    def reset_common(self, mask: torch.Tensor) -> None:
        """Per-episode lag scale and actuation delay."""
        scale = self.in_range(self.cfg.lag_scale_range, 1.0)
        self.world.set_lag_scale(scale, mask)
        delay = torch.randint(0, self.max_delay + 1, (self.B,), generator=self.gen,
                              device=self.device)
        self.world.delay = torch.where(mask, delay, self.world.delay)

    # ---- interface used by the environment ------------------------------------------------------
    @abstractmethod
    def reset(self, mask: torch.Tensor) -> None:
        ...

    @abstractmethod
    def snapshot(self) -> Snapshot:
        ...

    def object_commands(self) -> torch.Tensor | None:
        """Commands (B, A - n, 3) of actuated non-robot bodies (the sheep), else None."""
        return None

    def contacts(self, touching: torch.Tensor) -> torch.Tensor:
        """The robots (B, n) in a contact that counts, from the physics' touch flags (B, n):
        by default every touch."""
        return touching

    @abstractmethod
    def evaluate(self, collision: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                         torch.Tensor, dict]:
        """After a control step: reward (B,), success (B,), terminated (B,), extra info."""

    @abstractmethod
    def refresh(self, mask: torch.Tensor) -> None:
        """Recompute the reward potentials after bodies were placed where mask (B,) is set."""

    def set_params(self, target: torch.Tensor | None, gate: torch.Tensor | None,
                   mask: torch.Tensor) -> None:
        """Overwrite target (B, m, 2) / gate centre (B, 2) where mask (B,) is set."""
        for value, attr in ((target, 'target'), (gate, 'gate')):
            if value is not None and not hasattr(self, attr):
                raise ValueError(f'{self.name} has no {attr}')
        if target is not None:
            self.target = torch.where(mask[:, None, None], target.to(self.target), self.target)
        if gate is not None:
            self.gate = torch.where(mask[:, None], gate.to(self.gate), self.gate)
            self.world.gate_y = self.gate[:, 1].clone()


def _segment_distance(p: torch.Tensor, centre: torch.Tensor, direction: torch.Tensor,
                      half_length: float) -> torch.Tensor:
    """Distance (B, n) of points p (B, n, 2) to segments centre (B, 2) +- half_length * dir."""
    d = p - centre[:, None]
    s = (d * direction[:, None]).sum(-1).clamp(-half_length, half_length)
    return torch.linalg.vector_norm(d - s[..., None] * direction[:, None], dim=-1)


class PushBoxTask(Task):
    """Push the box so its centre ends within `success_radius` of the target."""

    name = 'pushbox'
    cfg: PushBoxConfig

    def build_world(self) -> PlanarWorld:
        c = self.cfg
        w = PlanarWorld(num_envs=self.B, num_robots=self.n, robot=c.robot, physics=c.physics,
                        arena=c.arena, device=self.device, box_size=c.box_size)
        self.target = torch.zeros(self.B, 1, 2, device=self.device)
        self.prev_dist = torch.zeros(self.B, device=self.device)
        self.prev_approach = torch.zeros(self.B, device=self.device)
        return w

    def reset(self, mask: torch.Tensor) -> None:
        c, B = self.cfg, self.B
        robots = self.robot_poses(c.robot_starts())
        box_xy = torch.tensor(c.box_start, device=self.device) + self.jitter(
            c.box_start_jitter, B, 2)
        box = torch.cat((box_xy, self.jitter(c.box_yaw_jitter, B, 1)), -1)
        target = torch.tensor(c.target, device=self.device) + self.jitter(c.target_jitter, B, 2)
        mass = self.in_range(c.box_mass_range, c.box_mass)
        mu = self.in_range(c.box_friction_range, c.box_friction)
        self.reset_common(mask)
        self.world.set_box(mass, mu, mask)
        self.world.place(torch.cat((robots, box[:, None]), 1), mask)
        self.target = torch.where(mask[:, None, None], target[:, None], self.target)
        self.refresh(mask)

    def snapshot(self) -> Snapshot:
        p = self.world.pose
        return Snapshot(robots=p[:, :self.n].clone(), box=p[:, self.n].clone(),
                        target=self.target.clone())

    def _potentials(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Box-target distance (B,) and mean robot distance to the box's far side (B,)."""
        box = self.world.pose[:, self.n]
        target = self.target[:, 0]
        dist = torch.linalg.vector_norm(box[:, :2] - target, dim=-1)
        u = unit_vector(target - box[:, :2])
        side = torch.stack((-u[:, 1], u[:, 0]), -1)
        far = push_point(box, target, self.cfg)
        approach = _segment_distance(self.world.pose[:, :self.n, :2], far, side,
                                     0.5 * self.cfg.box_size).mean(1)
        return dist, approach

    def refresh(self, mask: torch.Tensor) -> None:
        dist, approach = self._potentials()
        self.prev_dist = torch.where(mask, dist, self.prev_dist)
        self.prev_approach = torch.where(mask, approach, self.prev_approach)

    def evaluate(self, collision: torch.Tensor):
        r = self.cfg.reward
        dist, approach = self._potentials()
        success = dist < self.cfg.success_radius
        any_col = collision.any(1)
        shaped = (r.progress * (self.prev_dist - dist)
                  + r.approach * (self.prev_approach - approach)
                  - r.time_penalty - r.collision_penalty * any_col.float())
        reward = shaped.clamp(-1.0, 1.0) + r.success_bonus * success.float()
        self.prev_dist, self.prev_approach = dist, approach
        return reward, success, success.clone(), {'box_distance': dist}


class GateTask(Task):
    """Every robot passes the 1 m opening (and, with success: targets, reaches its own target),
    without any contact."""

    name = 'gate'
    cfg: GateConfig

    def build_world(self) -> PlanarWorld:
        c = self.cfg
        w = PlanarWorld(num_envs=self.B, num_robots=self.n, robot=c.robot, physics=c.physics,
                        arena=c.arena, device=self.device,
                        gate=GateGeometry(c.gate_x, c.gate_width, c.wall_depth))
        self.target = torch.zeros(self.B, self.n, 2, device=self.device)
        self.gate = torch.zeros(self.B, 2, device=self.device)
        self.prev_path = torch.zeros(self.B, self.n, device=self.device)
        self.prev_pos = torch.zeros(self.B, self.n, 2, device=self.device)
        self.steps = torch.zeros(self.B, dtype=torch.long, device=self.device)  # in the episode
        return w

    def reset(self, mask: torch.Tensor) -> None:
        c, B, n = self.cfg, self.B, self.n
        starts = [(c.start_x, y) for y in c.lane_offsets]
        robots = self.robot_poses(starts)
        gate = torch.stack((torch.full((B,), c.gate_x, device=self.device),
                            c.gate_y + self.jitter(c.gate_y_jitter, B)), -1)
        target = torch.tensor(nominal_gate_targets(c), device=self.device)[None] + self.jitter(
            c.target_jitter, B, n, 2)
        self.reset_common(mask)
        self.world.place(robots, mask)
        self.set_params(target, gate, mask)
        self.steps = torch.where(mask, torch.zeros_like(self.steps), self.steps)
        self.refresh(mask)

    def snapshot(self) -> Snapshot:
        return Snapshot(robots=self.world.pose[:, :self.n].clone(), target=self.target.clone(),
                        gate=self.gate.clone())

    def _path(self) -> torch.Tensor:
        """Path length (B, n) to each robot's target, through the opening centre until past it."""
        p = self.world.pose[:, :self.n, :2]
        g = self.gate[:, None]
        direct = torch.linalg.vector_norm(self.target - p, dim=-1)
        via = (torch.linalg.vector_norm(g - p, dim=-1)
               + torch.linalg.vector_norm(self.target - g, dim=-1))
        return torch.where(p[..., 0] < g[..., 0], via, direct)

    def refresh(self, mask: torch.Tensor) -> None:
        self.prev_path = torch.where(mask[:, None], self._path(), self.prev_path)
        pos = self.world.pose[:, :self.n, :2]
        self.prev_pos = torch.where(mask[:, None, None], pos, self.prev_pos)

    def contacts(self, touching: torch.Tensor) -> torch.Tensor:
        """Realistic variant: every touch of the footprint. Paper variant: a trunk box
        overlapping a wall (the gate's or the arena's) or another robot's trunk box."""
        if self.cfg.variant == 'realistic':
            return touching
        c, n = self.cfg, self.n
        pose = self.world.pose[:, :n]
        xy, yaw = pose[..., :2], pose[..., 2]
        half = xy.new_tensor(c.trunk) / 2
        # the arena's walls: a corner beyond a side
        ex = half[0] * torch.cos(yaw).abs() + half[1] * torch.sin(yaw).abs()
        ey = half[0] * torch.sin(yaw).abs() + half[1] * torch.cos(yaw).abs()
        a = c.arena
        hit = ((xy[..., 0] - ex <= a.x_min) | (xy[..., 0] + ex >= a.x_max)
               | (xy[..., 1] - ey <= a.y_min) | (xy[..., 1] + ey >= a.y_max))
        # the gate's two wall pieces, beside the opening (axis-aligned boxes)
        gy = self.gate[:, 1:2]                                                   # (B, 1)
        lo_edge, hi_edge = gy - c.gate_width / 2, gy + c.gate_width / 2
        zero = torch.zeros_like(yaw)
        for y0, y1 in ((hi_edge, torch.full_like(gy, a.y_max)),
                       (torch.full_like(gy, a.y_min), lo_edge)):
            centre = torch.stack((torch.full_like(y0, c.gate_x), (y0 + y1) / 2), -1)
            ext = torch.stack((torch.full_like(y0, c.wall_depth / 2), (y1 - y0) / 2), -1)
            hit = hit | boxes_overlap(xy, yaw, half, centre, zero, ext)
        if n > 1:                                                                # trunk pairs
            pair = boxes_overlap(xy[:, :, None], yaw[:, :, None], half, xy[:, None],
                                 yaw[:, None], half)
            pair = pair & ~torch.eye(n, dtype=torch.bool, device=pair.device)
            hit = hit | pair.any(2)
        return hit

    def evaluate(self, collision: torch.Tensor):
        c = self.cfg
        self.steps = self.steps + 1
        p = self.world.pose[:, :self.n, :2]
        passed = p[..., 0] > self.gate[:, None, 0] + c.pass_margin
        reached = torch.linalg.vector_norm(self.target - p, dim=-1) < c.target_radius
        any_col = collision.any(1)
        success = (passed if c.success == 'passed' else reached).all(1) & ~any_col
        if c.variant == 'paper':
            reward = self._paper_reward(p, passed, any_col, success)
        else:
            reward = self._realistic_reward(p, reached, any_col, success)
        self.prev_pos = p.clone()
        terminated = success | (any_col & c.terminate_on_collision)
        return reward, success, terminated, {'passed': passed, 'reached': reached}

    def _realistic_reward(self, p: torch.Tensor, reached: torch.Tensor, any_col: torch.Tensor,
                          success: torch.Tensor) -> torch.Tensor:
        r = self.cfg.reward
        path = self._path()
        prox = torch.zeros(self.B, device=self.device)
        if self.n > 1:
            d = torch.cdist(p, p)
            iu = torch.triu_indices(self.n, self.n, 1, device=self.device)
            close = (1.0 - d[:, iu[0], iu[1]] / r.safe_distance).clamp_min(0.0)
            prox = (close * close).sum(1)
        shaped = (r.progress * (self.prev_path - path).mean(1) - r.proximity * prox
                  + r.on_target * reached.float().mean(1)
                  - r.time_penalty - r.collision_penalty * any_col.float())
        self.prev_path = path
        return (shaped.clamp(-1.0, 1.0) + r.success_bonus * success.float()
                - r.contact_cost * any_col.float())

    def _paper_reward(self, p: torch.Tensor, passed: torch.Tensor, any_col: torch.Tensor,
                      success: torch.Tensor) -> torch.Tensor:
        """The paper's terms (PaperGateReward), unclipped as there."""
        r, n, g = self.cfg.paper_reward, self.n, self.gate[:, None]
        before = self.prev_pos[..., 0] <= g[..., 0] + self.cfg.pass_margin      # not yet through
        toward = (torch.linalg.vector_norm(self.prev_pos - g, dim=-1)
                  - torch.linalg.vector_norm(p - g, dim=-1)) * before.float()
        reward = n * (r.forward * (p[..., 0] - self.prev_pos[..., 0]).sum(1)
                      + r.towards_gate * toward.sum(1))
        if n > 1:
            d = torch.cdist(p, p) + torch.eye(n, device=p.device) * 1e6
            nearest = d.min(2).values
            crowd = torch.where(nearest < r.crowding_distance, 1.0 / nearest.clamp_min(0.05) ** 2,
                                torch.zeros_like(nearest))
            reward = reward - r.crowding * crowd.sum(1)
        steps_left = (self.cfg.max_steps - self.steps).clamp_min(0).float()
        return (reward - r.contact * n * any_col.float()
                + r.all_through * n * steps_left * success.float())


class ShepherdTask(Task):
    """The dogs (robots) drive the sheep through the opening in the fence, into the pen."""

    name = 'shepherd'
    cfg: ShepherdConfig

    def build_world(self) -> PlanarWorld:
        c = self.cfg
        w = PlanarWorld(num_envs=self.B, num_robots=self.n, robot=c.robot, physics=c.physics,
                        arena=c.arena, device=self.device, sheep_radius=c.sheep_radius,
                        sheep_mass=c.sheep_mass, sheep_tau=c.sheep_tau,
                        sheep_max_force=c.sheep_max_force,
                        gate=GateGeometry(c.gate_x, c.gate_width, c.wall_depth))
        self.gate = torch.zeros(self.B, 2, device=self.device)
        self.prev_goal = torch.zeros(self.B, device=self.device)
        self.prev_herd = torch.zeros(self.B, device=self.device)
        return w

    def reset(self, mask: torch.Tensor) -> None:
        c, B, n = self.cfg, self.B, self.n
        ys = [0.0] if n == 1 else [(i / (n - 1) - 0.5) * c.dog_start_span for i in range(n)]
        dogs = self.robot_poses([(c.dog_start_x, c.arena.centre[1] + y) for y in ys])
        sheep_xy = torch.tensor(c.sheep_start, device=self.device) + self.jitter(
            c.sheep_start_jitter, B, 2)
        sheep = torch.cat((sheep_xy, torch.zeros(B, 1, device=self.device)), -1)
        gate = torch.stack((torch.full((B,), c.gate_x, device=self.device),
                            c.gate_y + self.jitter(c.gate_y_jitter, B)), -1)
        self.reset_common(mask)
        self.world.place(torch.cat((dogs, sheep[:, None]), 1), mask)
        self.set_params(None, gate, mask)
        self.refresh(mask)

    def snapshot(self) -> Snapshot:
        p = self.world.pose
        return Snapshot(robots=p[:, :self.n].clone(), sheep=p[:, self.n].clone(),
                        gate=self.gate.clone())

    def object_commands(self) -> torch.Tensor:
        """The sheep flees the nearest dog within flee_radius, speed = flee_gain / distance."""
        c = self.cfg
        p = self.world.pose
        rel = p[:, self.n:self.n + 1, :2] - p[:, :self.n, :2]          # (B, n, 2) dog -> sheep
        dist = torch.linalg.vector_norm(rel, dim=-1)
        d, k = dist.min(1)                                                # nearest dog
        away = torch.gather(rel, 1, k[:, None, None].expand(-1, 1, 2))[:, 0] / \
            d.clamp_min(1e-6)[:, None]
        speed = (c.flee_gain / d.clamp_min(0.05)).clamp(max=c.sheep_max_speed)
        speed = torch.where(d < c.flee_radius, speed, torch.zeros_like(speed))
        v = away * speed[:, None]
        return torch.cat((v, torch.zeros(self.B, 1, device=self.device)), -1)[:, None]

    def _goal(self) -> torch.Tensor:
        g = self.gate.clone()
        g[:, 0] += self.cfg.pass_margin
        return g

    def _potentials(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Sheep distance to the pen point (B,) and mean dog distance to the herding point (B,)."""
        sheep = self.world.pose[:, self.n, :2]
        goal = self._goal()
        to_goal = torch.linalg.vector_norm(goal - sheep, dim=-1)
        herd = sheep - unit_vector(goal - sheep) * self.cfg.reward.herd_distance
        dogs = self.world.pose[:, :self.n, :2]
        herd_d = torch.linalg.vector_norm(dogs - herd[:, None], dim=-1).mean(1)
        return to_goal, herd_d

    def refresh(self, mask: torch.Tensor) -> None:
        g, h = self._potentials()
        self.prev_goal = torch.where(mask, g, self.prev_goal)
        self.prev_herd = torch.where(mask, h, self.prev_herd)

    def evaluate(self, collision: torch.Tensor):
        c, r = self.cfg, self.cfg.reward
        goal_d, herd_d = self._potentials()
        success = self.world.pose[:, self.n, 0] > self.gate[:, 0] + c.pass_margin
        any_col = collision.any(1)
        shaped = (r.progress * (self.prev_goal - goal_d) + r.approach * (self.prev_herd - herd_d)
                  - r.time_penalty - r.collision_penalty * any_col.float())
        reward = shaped.clamp(-1.0, 1.0) + r.success_bonus * success.float()
        self.prev_goal, self.prev_herd = goal_d, herd_d
        terminated = success | (any_col & c.terminate_on_collision)
        return reward, success, terminated, {'sheep_distance': goal_d}


TASKS = {'pushbox': PushBoxTask, 'gate': GateTask, 'shepherd': ShepherdTask}


def make_task(cfg: TaskConfig, num_envs: int, device: torch.device,
              generator: torch.Generator) -> Task:
    return TASKS[cfg.name](cfg, num_envs, device, generator)

