"""THE observation builder: the simulator and the agent node (online, from mocap) both call it.

An observation is a pure function of a `Snapshot` (poses only: what motion capture measures) and
the task's static parameters (its config). Nothing here reads simulator state, velocities or
time, so the vector a robot sees online is built exactly as in training.

Every element is ego-centric for robot i unless its name says otherwise: positions are expressed
in robot i's body frame (x forward, y left), yaw differences are wrapped to (-pi, pi].
`obs_spec(task, params)` names every element in order; the names are the same for every robot
(teammate slots `mate0`, `mate1`, ... are the other robots in ascending order index, self
skipped), so one spec in the checkpoint manifest describes every agent.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from .config import GateConfig, PushBoxConfig, ShepherdConfig, TaskConfig
from .geometry import to_frame, wrap_angle, yaw_from_quaternion

Feature = tuple  # (name: str, value: torch.Tensor (B, n))


@dataclass
class Snapshot:
    """What motion capture (or the simulator) knows at one instant, batched over B.

    robots (B, n, 3): x, y, yaw of each robot in arena frame, in order index.
    box / sheep (B, 3): x, y, yaw of the task's object, when the task has one.
    target (B, m, 2): PushBox: the box target (m = 1); Gate: each robot's own target (m = n).
    gate (B, 2): centre (x, y) of the gate opening (Gate, Shepherd).
    """

    robots: torch.Tensor
    box: torch.Tensor | None = None
    sheep: torch.Tensor | None = None
    target: torch.Tensor | None = None
    gate: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return self.robots.shape[0]

    def index(self, i: int | slice | torch.Tensor) -> Snapshot:
        """The snapshot of environment(s) i (keeps the batch dimension for an int)."""
        sel = slice(i, i + 1) if isinstance(i, int) else i
        return Snapshot(*(None if t is None else t[sel] for t in
                          (self.robots, self.box, self.sheep, self.target, self.gate)))

    @staticmethod
    def from_named_poses(task: str, params: TaskConfig, robot_names: Sequence[str],
                         poses: Mapping[str, Sequence[float]],
                         target: Sequence | None = None, gate: Sequence[float] | None = None,
                         device: torch.device | str = 'cpu') -> Snapshot:
        """A B = 1 snapshot from named body poses, as the agent node gets them from mocap.

        `poses` maps a body name to (x, y, yaw) (see `pose_from_position_quaternion`);
        `robot_names` lists the robot bodies in order index; the object body is named `box`
        (PushBox) or `sheep` (Shepherd). `target`: PushBox (x, y); Gate one (x, y) per robot.
        `gate`: the opening centre (x, y). Both default to the nominal ones of `params` (the
        real arena's fixed set-up). Raises KeyError naming a missing body.
        """
        def get(name: str) -> torch.Tensor:
            if name not in poses:
                raise KeyError(f'{task}: no pose for body {name!r} (have: {sorted(poses)})')
            x, y, yaw = (float(v) for v in poses[name])
            return torch.tensor([x, y, yaw], dtype=torch.float32, device=device)

        robots = torch.stack([get(r) for r in robot_names])[None]
        snap = Snapshot(robots=robots)
        if task == 'pushbox':
            snap.box = get('box')[None]
            t = params.target if target is None else target
            snap.target = torch.as_tensor(t, dtype=torch.float32, device=device).reshape(
                -1, 2)[:1][None]
        elif task == 'gate':
            t = nominal_gate_targets(params) if target is None else target
            snap.target = torch.as_tensor(t, dtype=torch.float32, device=device).reshape(
                1, -1, 2)
            if snap.target.shape[1] != len(robot_names):
                raise ValueError(f'gate: {snap.target.shape[1]} targets for '
                                 f'{len(robot_names)} robots')
        elif task == 'shepherd':
            snap.sheep = get('sheep')[None]
        else:
            raise ValueError(f'unknown task {task!r}')
        if task in ('gate', 'shepherd'):
            g = (params.gate_x, params.gate_y) if gate is None else tuple(gate)[:2]
            snap.gate = torch.tensor([g], dtype=torch.float32, device=device)
        return snap


def pose_from_position_quaternion(position: Sequence[float],
                                  quaternion: Sequence[float]) -> tuple[float, float, float]:
    """(x, y, yaw) from a position (x, y, z) in metres and a unit quaternion (x, y, z, w)."""
    return (float(position[0]), float(position[1]), yaw_from_quaternion(*quaternion))


def nominal_gate_targets(cfg: GateConfig) -> list[list[float]]:
    """Gate targets without randomisation: lane i of the track at x = target_x."""
    return [[cfg.target_x_resolved, y] for y in cfg.lane_offsets]


# ---- feature builders ------------------------------------------------------------------------
def _ego(points: torch.Tensor, pos: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
         prefix: str) -> list[Feature]:
    """dx, dy (robot frame) and distance of points (B, n, 2) as seen from each robot."""
    d = to_frame(points - pos, cos, sin)
    dist = torch.linalg.vector_norm(d, dim=-1)
    return [(f'{prefix}.dx', d[..., 0]), (f'{prefix}.dy', d[..., 1]), (f'{prefix}.dist', dist)]


def _vector(vec: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
            prefix: str) -> list[Feature]:
    """A world vector (B, n, 2) rotated into each robot's frame, and its length."""
    d = to_frame(vec, cos, sin)
    return [(f'{prefix}.dx', d[..., 0]), (f'{prefix}.dy', d[..., 1]),
            (f'{prefix}.dist', torch.linalg.vector_norm(d, dim=-1))]


def _common(snap: Snapshot, params: TaskConfig) -> tuple[list[Feature], tuple]:
    """Own pose in the arena and every teammate, for each robot."""
    r = snap.robots
    n = r.shape[1]
    pos, yaw = r[..., :2], r[..., 2]
    cos, sin = torch.cos(yaw), torch.sin(yaw)
    cx, cy = params.arena.centre
    feats: list[Feature] = [
        ('self.x', pos[..., 0] - cx), ('self.y', pos[..., 1] - cy),
        ('self.sin_yaw', sin), ('self.cos_yaw', cos),
    ]
    if n > 1:
        mates = torch.tensor([[j for j in range(n) if j != i] for i in range(n)],
                             dtype=torch.long, device=r.device)              # (n, n - 1)
        rel = r[:, mates] - r[:, :, None]                                     # (B, n, n-1, 3)
        d = to_frame(rel[..., :2], cos[..., None], sin[..., None])
        dist = torch.linalg.vector_norm(d, dim=-1)
        dyaw = wrap_angle(rel[..., 2])
        s_d, c_d = torch.sin(dyaw), torch.cos(dyaw)
        for m in range(n - 1):
            feats += [(f'mate{m}.dx', d[..., m, 0]), (f'mate{m}.dy', d[..., m, 1]),
                      (f'mate{m}.dist', dist[..., m]), (f'mate{m}.dyaw', dyaw[..., m]),
                      (f'mate{m}.sin_dyaw', s_d[..., m]), (f'mate{m}.cos_dyaw', c_d[..., m])]
    return feats, (pos, yaw, cos, sin)


def _gate_points(gate: torch.Tensor, width: float, n: int) -> dict[str, torch.Tensor]:
    """Opening centre and its two edges (B, n, 2); 'left' is +y (left when moving along +x)."""
    g = gate[:, None, :].expand(-1, n, 2)
    off = g.new_tensor([0.0, 0.5 * width])
    return {'gate': g, 'gate_left': g + off, 'gate_right': g - off}


def push_point(box: torch.Tensor, target: torch.Tensor, params: PushBoxConfig) -> torch.Tensor:
    """Centre (B, 2) of the box's far side: where robots stand to push it towards the target.

    It lies on the line target -> box, past the box by its half extent along that line plus a
    robot radius. Used by the observation and the approach reward.
    """
    u = unit_vector(target - box[:, :2])
    half = _half_extent_along(box[:, 2], u, params.box_size / 2)
    return box[:, :2] - u * (half + params.robot.radius)[:, None]


def unit_vector(v: torch.Tensor) -> torch.Tensor:
    """v (..., 2) / |v|, or (1, 0) where v is (nearly) zero."""
    n = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    return torch.where(n > 1e-6, v / n.clamp_min(1e-6), v.new_tensor([1.0, 0.0]).expand_as(v))


def _half_extent_along(yaw: torch.Tensor, u: torch.Tensor, half: float) -> torch.Tensor:
    """Half extent (B,) of a square of half side `half` and yaw along unit directions u (B, 2)."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    return half * ((u[:, 0] * c + u[:, 1] * s).abs() + (-u[:, 0] * s + u[:, 1] * c).abs())


def _pushbox(snap: Snapshot, p: PushBoxConfig) -> list[Feature]:
    feats, (pos, yaw, cos, sin) = _common(snap, p)
    n = pos.shape[1]
    box, target = snap.box, snap.target[:, 0]
    boxp = box[:, None, :2].expand(-1, n, 2)
    # the square box looks the same every 90 degrees: encode its relative yaw as 4 x angle
    dyaw4 = 4.0 * (box[:, None, 2] - yaw)
    feats += _ego(boxp, pos, cos, sin, 'box')
    feats += [('box.sin4_dyaw', torch.sin(dyaw4)), ('box.cos4_dyaw', torch.cos(dyaw4))]
    feats += _ego(target[:, None].expand(-1, n, 2), pos, cos, sin, 'target')
    feats += _vector((target - box[:, :2])[:, None].expand(-1, n, 2), cos, sin, 'box_to_target')
    feats += _ego(push_point(box, target, p)[:, None].expand(-1, n, 2), pos, cos, sin,
                  'push_point')
    return feats


def _gate(snap: Snapshot, p: GateConfig) -> list[Feature]:
    feats, (pos, yaw, cos, sin) = _common(snap, p)
    n = pos.shape[1]
    if p.variant == 'paper':     # the paper's observation: the robot's id, no target
        ids = torch.arange(n, dtype=pos.dtype, device=pos.device) / max(n - 1, 1)
        feats.append(('self.id', ids.expand(pos.shape[0], n)))
    else:
        feats += _ego(snap.target, pos, cos, sin, 'target')
    for name, pt in _gate_points(snap.gate, p.gate_width, n).items():
        feats += _ego(pt, pos, cos, sin, name)
    passed = (pos[..., 0] > snap.gate[:, None, 0] + p.pass_margin).float()      # (B, n)
    feats.append(('self.passed', passed))
    if n > 1:
        mates = torch.tensor([[j for j in range(n) if j != i] for i in range(n)],
                             dtype=torch.long, device=pos.device)
        mp = passed[:, mates]
        feats += [(f'mate{m}.passed', mp[..., m]) for m in range(n - 1)]
    return feats


def _shepherd(snap: Snapshot, p: ShepherdConfig) -> list[Feature]:
    feats, (pos, yaw, cos, sin) = _common(snap, p)
    n = pos.shape[1]
    sheep = snap.sheep[:, None, :2].expand(-1, n, 2)
    feats += _ego(sheep, pos, cos, sin, 'sheep')
    pts = _gate_points(snap.gate, p.gate_width, n)
    for name, pt in pts.items():
        feats += _ego(pt, pos, cos, sin, name)
    feats += _vector(pts['gate'] - sheep, cos, sin, 'sheep_to_gate')
    return feats


_BUILDERS = {'pushbox': _pushbox, 'gate': _gate, 'shepherd': _shepherd}


def features(task: str, snapshot: Snapshot, params: TaskConfig) -> list[Feature]:
    """(name, (B, n) tensor) for every observation element, in order."""
    if task not in _BUILDERS:
        raise ValueError(f'unknown task {task!r} (known: {", ".join(_BUILDERS)})')
    if task != params.name:
        raise ValueError(f'observe: task {task!r} but params are for {params.name!r}')
    return _BUILDERS[task](snapshot, params)


def observe(task: str, snapshot: Snapshot, params: TaskConfig) -> torch.Tensor:
    """Ego-centric observations (B, n, obs_dim) of every robot; element k is obs_spec(...)[k]."""
    return torch.stack([v for _, v in features(task, snapshot, params)], dim=-1)


def example_snapshot(params: TaskConfig, batch: int = 1,
                     device: torch.device | str = 'cpu') -> Snapshot:
    """A nominal snapshot of the task (robots at the arena centre): for specs, shapes, tests."""
    n = params.num_robots
    cx, cy = params.arena.centre
    robots = torch.zeros(batch, n, 3, device=device)
    robots[..., 0] = cx
    robots[..., 1] = cy + torch.linspace(-1.0, 1.0, n, device=device)
    snap = Snapshot(robots=robots)
    if params.name == 'pushbox':
        snap.box = torch.tensor([[*params.box_start, 0.0]], device=device).expand(batch, 3)
        snap.target = torch.tensor([[params.target]], device=device).expand(batch, 1, 2)
    elif params.name == 'gate':
        snap.target = torch.tensor([nominal_gate_targets(params)], device=device).expand(
            batch, n, 2)
    else:
        snap.sheep = torch.tensor([[*params.sheep_start, 0.0]], device=device).expand(batch, 3)
    if params.name in ('gate', 'shepherd'):
        snap.gate = torch.tensor([[params.gate_x, params.gate_y]], device=device).expand(batch, 2)
    return snap


def obs_spec(task: str, params: TaskConfig) -> list[str]:
    """Names of every observation element of `task` with `params.num_robots` robots, in order."""
    return [name for name, _ in features(task, example_snapshot(params), params)]
