"""Planar geometry shared by the physics, the observation builder and the renderer (pure torch)."""
from __future__ import annotations

import math

import torch

TWO_PI = 2.0 * math.pi


def wrap_angle(a: torch.Tensor) -> torch.Tensor:
    """Wrap angles to (-pi, pi] (any shape). Yaw differences must always go through this."""
    return math.pi - torch.remainder(math.pi - a, TWO_PI)


def rotate(v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate vectors v (..., 2) by the angle whose cos/sin are given (broadcast to v[..., 0])."""
    x, y = v[..., 0], v[..., 1]
    return torch.stack((cos * x - sin * y, sin * x + cos * y), dim=-1)


def to_frame(v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Express world vectors v (..., 2) in a frame rotated by (cos, sin): R(-yaw) v."""
    x, y = v[..., 0], v[..., 1]
    return torch.stack((cos * x + sin * y, -sin * x + cos * y), dim=-1)


def cross2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """z of the 3-D cross product of planar vectors (..., 2) x (..., 2) -> (...)."""
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def perp(v: torch.Tensor) -> torch.Tensor:
    """v rotated by +90 degrees: omega x r = omega * perp(r)."""
    return torch.stack((-v[..., 1], v[..., 0]), dim=-1)


def square_corners(pose: torch.Tensor, half: float | torch.Tensor) -> torch.Tensor:
    """Corners (..., 4, 2) of squares of half side `half` at poses (..., 3), counter-clockwise."""
    signs = pose.new_tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    local = signs * (half if not torch.is_tensor(half) else half[..., None, None])
    c, s = torch.cos(pose[..., 2:3]), torch.sin(pose[..., 2:3])
    return pose[..., None, :2] + rotate(local, c, s)


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    """Yaw (rotation about z, rad, in (-pi, pi]) of a unit quaternion, as mocap poses carry it."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def boxes_overlap(c1: torch.Tensor, yaw1: torch.Tensor, half1: torch.Tensor,
                  c2: torch.Tensor, yaw2: torch.Tensor, half2: torch.Tensor) -> torch.Tensor:
    """Whether oriented rectangles overlap (separating-axis test), all arguments broadcast.

    Centres c (..., 2), yaws (...), half extents (..., 2) along the box's own x and y. Touching
    counts as overlap. Used for the paper's Gate contact rule (trunk boxes against posts, walls
    and each other), where a disc footprint would be the wrong shape.
    """
    u1 = torch.stack((torch.cos(yaw1), torch.sin(yaw1)), -1)
    u2 = torch.stack((torch.cos(yaw2), torch.sin(yaw2)), -1)
    axes1, axes2 = (u1, perp(u1)), (u2, perp(u2))
    d = c2 - c1
    sep = torch.zeros(torch.broadcast_shapes(d.shape[:-1], yaw1.shape, yaw2.shape),
                      dtype=torch.bool, device=d.device)
    for ax in axes1 + axes2:
        r1 = sum(half1[..., k] * (axes1[k] * ax).sum(-1).abs() for k in range(2))
        r2 = sum(half2[..., k] * (axes2[k] * ax).sum(-1).abs() for k in range(2))
        sep = sep | ((d * ax).sum(-1).abs() > r1 + r2)
    return ~sep
