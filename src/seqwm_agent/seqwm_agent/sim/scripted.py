"""Scripted team controllers: evidence that each task is solvable, baselines for tests and demos.

Each maps a `Snapshot` (what mocap sees) to body-frame velocity commands (B, n, 3) in m/s and
rad/s for `MultiQuadEnv.step_commands`. They know the task geometry; learned policies do not.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .config import RobotConfig
from .observation import Snapshot


def _body_commands(v_world: torch.Tensor, yaw: torch.Tensor, yaw_goal: torch.Tensor,
                   robot: RobotConfig, yaw_gain: float = 2.0) -> torch.Tensor:
    """World velocities (B, n, 2) -> body-frame commands, direction kept within the limits."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    vb = torch.stack((c * v_world[..., 0] + s * v_world[..., 1],
                      -s * v_world[..., 0] + c * v_world[..., 1]), -1)
    scale = torch.maximum(vb[..., 0].abs() / robot.vx_max, vb[..., 1].abs() / robot.vy_max)
    vb = vb / scale.clamp_min(1.0)[..., None]
    dyaw = torch.remainder(yaw_goal - yaw + math.pi, 2 * math.pi) - math.pi
    return torch.cat((vb, (yaw_gain * dyaw).clamp(-robot.wz_max, robot.wz_max)[..., None]), -1)


def pushbox_formation(snap: Snapshot, offsets: Sequence[float], robot: RobotConfig,
                      speed: float = 0.8, lateral_gain: float = 1.5) -> torch.Tensor:
    """Robots behind the box push along box -> target, each holding its lateral offset.

    offsets: lateral offset (m) of each robot from the box's centre line, e.g. (-0.3, 0.3).
    The robots face the target and correct their lateral position; no approach phase, so
    start them behind the box (see `pushbox_formation_start`).
    """
    box, target, robots = snap.box, snap.target[:, 0], snap.robots
    u = target - box[:, :2]
    u = u / torch.linalg.vector_norm(u, dim=-1, keepdim=True).clamp_min(1e-6)
    side = torch.stack((-u[:, 1], u[:, 0]), -1)
    off = torch.tensor(list(offsets), dtype=robots.dtype, device=robots.device)
    lat = ((robots[..., :2] - box[:, None, :2]) * side[:, None]).sum(-1) - off
    v = u[:, None] * speed - side[:, None] * (lateral_gain * lat)[..., None]
    heading = torch.atan2(u[:, 1], u[:, 0])[:, None].expand_as(lat)
    return _body_commands(v, robots[..., 2], heading, robot)


def pushbox_formation_start(snap: Snapshot, offsets: Sequence[float], box_size: float,
                            robot: RobotConfig, gap: float = 0.05) -> torch.Tensor:
    """Robot poses (B, n, 3) just behind the box's far side, facing the target."""
    box, target = snap.box, snap.target[:, 0]
    u = target - box[:, :2]
    u = u / torch.linalg.vector_norm(u, dim=-1, keepdim=True).clamp_min(1e-6)
    side = torch.stack((-u[:, 1], u[:, 0]), -1)
    poses = []
    for off in offsets:
        xy = box[:, :2] - u * (box_size / 2 + robot.radius + gap) + side * off
        poses.append(torch.cat((xy, torch.atan2(u[:, 1], u[:, 0])[:, None]), -1))
    return torch.stack(poses, 1)


def gate_queue(snap: Snapshot, phase: torch.Tensor, robot: RobotConfig, gain: float = 1.5,
               reach: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """One robot at a time: approach point -> exit point -> own target; yaw held at 0.

    phase (B, n) long, start with zeros: 0 waits, 1 goes to the point 0.7 m before the opening,
    2 to the point 0.7 m past it, 3 to its target. Robot k leaves once robot k-1 is past the
    gate. Returns (commands, new phase).
    """
    p, yaw = snap.robots[..., :2], snap.robots[..., 2]
    g = snap.gate[:, None, :]
    approach = g + p.new_tensor([-0.7, 0.0])
    exit_ = g + p.new_tensor([0.7, 0.0])
    d_app = torch.linalg.vector_norm(approach - p, dim=-1)
    d_exit = torch.linalg.vector_norm(exit_ - p, dim=-1)
    phase = torch.where((phase == 1) & (d_app < reach), 2, phase)
    phase = torch.where((phase == 2) & (d_exit < reach), 3, phase)
    may_go = torch.ones_like(phase, dtype=torch.bool)
    may_go[:, 1:] = phase[:, :-1] >= 3
    phase = torch.where((phase == 0) & may_go, 1, phase)
    goal = torch.where((phase == 1)[..., None], approach.expand_as(p),
                       torch.where((phase == 2)[..., None], exit_.expand_as(p), snap.target))
    goal = torch.where((phase == 0)[..., None], p, goal)
    return _body_commands(gain * (goal - p), yaw, torch.zeros_like(yaw), robot), phase


def shepherd_herd(snap: Snapshot, robot: RobotConfig, pass_margin: float = 0.3,
                  behind: float = 1.0, spread: float = 0.5, gain: float = 1.5) -> torch.Tensor:
    """Dogs hold a line `behind` the sheep, opposite the pen point past the gate."""
    p, yaw = snap.robots[..., :2], snap.robots[..., 2]
    sheep = snap.sheep[:, :2]
    goal = snap.gate.clone()
    goal[:, 0] += pass_margin + 0.3
    u = goal - sheep
    u = u / torch.linalg.vector_norm(u, dim=-1, keepdim=True).clamp_min(1e-6)
    side = torch.stack((-u[:, 1], u[:, 0]), -1)
    n = p.shape[1]
    offs = torch.linspace(-spread, spread, n, device=p.device) if n > 1 else p.new_zeros(1)
    herd = sheep[:, None] - u[:, None] * behind + side[:, None] * offs[None, :, None]
    return _body_commands(gain * (herd - p), yaw, torch.zeros_like(yaw), robot)
