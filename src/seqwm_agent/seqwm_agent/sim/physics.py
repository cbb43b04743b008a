"""Batched planar rigid-body world: velocity-tracking robots, a box or a sheep, walls, a gate.

Everything is one tensor per quantity with a leading batch dimension B (environments); no Python
loop runs over environments or bodies, only over sub-steps, solver iterations and the handful of
contact groups. State is stored component-major, `pose` / `vel` as (3, B, K), so every
contact group works on contiguous (B, m) slices without gathers.

Bodies of one environment (index k):
  0..n-1  robots: discs of radius r and mass m_r. Their yaw follows their controller (no yaw
          inertia in contacts: a legged robot holds its heading through its feet), and their own
          spin does not drag what they touch.
  n       the object, if the task has one: the PushBox box (a square with mass, yaw inertia and
          Coulomb ground friction) or the Shepherd sheep (a velocity-tracking disc).
Arena walls and gate posts are static (infinite mass, frictionless).

Per sub-step (dt = control_dt / substeps):
  1. contact detection at the start-of-sub-step positions, in fixed slots per environment.
     Contacts are speculative: an open contact may close at most its gap within the sub-step,
     so nothing tunnels;
  2. locomotion controller: body-frame command -> first-order lag -> desired world velocity. In
     free motion the drive realises the lag exactly; while the body presses against another
     body its force is limited to `max_push_force` (traction);
  3. `solver_iterations` iterations of a projected impulse solver, warm-started with the last
     sub-step's impulses (Gauss-Seidel over contact groups, Jacobi with mass splitting inside a
     group): drive motors, the box's floor friction (a force/torque limit surface, see
     `_box_ground_friction`), normal impulses (>= 0) and Coulomb friction at body-body
     contacts. Every contact impulse acts equal and opposite on both bodies at the contact
     point: linear momentum is conserved exactly, and so is angular momentum for frictionless
     contacts (with friction, the torque on a robot goes to its controller);
  4. semi-implicit Euler integration of positions and yaw (wrapped to (-pi, pi]); a box touching
     nothing uses the trapezoid rule, which makes free Coulomb sliding exact;
  5. position correction: penetration left beyond `slop` is removed (a fraction
     `position_correction` per sub-step) by moving bodies apart along the normal in inverse-mass
     proportion, without touching velocities, so penetration cannot grow.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from ..core.compiled import Compiled
from .config import ArenaConfig, PhysicsConfig, RobotConfig
from .geometry import wrap_angle

# speculative contact range: bodies closing faster than this (m/s) could pass a contact unnoticed
_MAX_CLOSING_SPEED = 4.0


@dataclass
class GateGeometry:
    """A wall across the arena at x with an opening of `width` centred at a per-env y."""

    x: float
    width: float
    depth: float


def clamp_norm(x: torch.Tensor, max_norm: torch.Tensor) -> torch.Tensor:
    """Scale component-major vectors x (d, ...) down to norm <= max_norm (...).

    (Written out: a reduction over the leading dimension is far slower on CPU.)
    """
    sq = x[0] * x[0]
    for comp in x[1:]:
        sq = sq + comp * comp
    return x * (max_norm / torch.sqrt(sq).clamp_min(1e-12)).clamp(max=1.0)


def _clamp_sym(v: torch.Tensor, h: torch.Tensor | float) -> torch.Tensor:
    if torch.is_tensor(h):
        return torch.minimum(torch.maximum(v, -h), h)
    return v.clamp(-h, h)


def disc_vs_rect(lx: torch.Tensor, ly: torch.Tensor, hx: torch.Tensor | float,
                 hy: torch.Tensor | float, radius: torch.Tensor | float):
    """Discs at (lx, ly) in a rectangle's frame (centre 0, half sides hx, hy).

    Returns outward normal (nx, ny), closest boundary point (px, py) and penetration (> 0
    overlap). A centre inside the rectangle leaves through the nearest side.
    """
    qx, qy = _clamp_sym(lx, hx), _clamp_sym(ly, hy)
    dx, dy = lx - qx, ly - qy
    dist = torch.sqrt(dx * dx + dy * dy)
    outside = dist > 1e-6
    inv = 1.0 / dist.clamp_min(1e-6)
    sx = torch.where(lx >= 0, 1.0, -1.0)
    sy = torch.where(ly >= 0, 1.0, -1.0)
    ax, ay = hx - lx.abs(), hy - ly.abs()
    use_x = ax < ay
    zero = torch.zeros_like(lx)
    nx = torch.where(outside, dx * inv, torch.where(use_x, sx, zero))
    ny = torch.where(outside, dy * inv, torch.where(use_x, zero, sy))
    px = torch.where(outside | ~use_x, qx, sx * hx)
    py = torch.where(outside | use_x, qy, sy * hy)
    pen = torch.where(outside, radius - dist, radius + torch.minimum(ax, ay))
    return nx, ny, px, py, pen


def _normal_step(lam: torch.Tensor, vn: torch.Tensor, k: torch.Tensor, bias: torch.Tensor):
    """Accumulated normal impulse update: lam >= 0 stops approach beyond the gap."""
    new = (lam - k * (vn + bias)).clamp_min(0.0)
    return new, new - lam


def _friction_step(lam: torch.Tensor, vt: torch.Tensor, k: torch.Tensor, limit: torch.Tensor):
    """Accumulated Coulomb friction impulse update: |lam| <= mu * normal impulse."""
    new = torch.maximum(torch.minimum(lam - k * vt, limit), -limit)
    return new, new - lam


class PlanarWorld:
    """The batched physics of one task layout (see the module docstring for the model)."""

    def __init__(self, *, num_envs: int, num_robots: int, robot: RobotConfig,
                 physics: PhysicsConfig, arena: ArenaConfig, device: torch.device | str = 'cpu',
                 box_size: float | None = None, sheep_radius: float | None = None,
                 sheep_mass: float = 3.3, sheep_tau: float = 0.2, sheep_max_force: float = 30.0,
                 gate: GateGeometry | None = None) -> None:
        if box_size is not None and sheep_radius is not None:
            raise ValueError('a world holds either a box or a sheep, not both')
        self.B, self.n = num_envs, num_robots
        self.device = torch.device(device)
        self.robot, self.phys, self.arena, self.gate = robot, physics, arena, gate
        self.dt = physics.substep_dt
        self.has_box = box_size is not None
        self.has_sheep = sheep_radius is not None
        self.obj = num_robots if (self.has_box or self.has_sheep) else None
        self.K = num_robots + (1 if self.obj is not None else 0)   # bodies
        self.A = num_robots + (1 if self.has_sheep else 0)          # actuated bodies 0..A-1
        self.D = self.A                                             # discs 0..D-1 (robots, sheep)
        self.box_size = box_size
        self.box_half = None if box_size is None else box_size / 2
        # radius of gyration of a uniform square: sets its inertia and its friction torque limit
        self.box_rho = None if box_size is None else box_size / math.sqrt(6.0)
        # (vx, vy, w) -> (vx, vy, rho w): the floor-friction ball lives in these coordinates
        self._rho_scale = torch.tensor([[1.0], [1.0], [self.box_rho or 1.0]], device=device)
        B, K, A, dev = num_envs, self.K, self.A, self.device
        f32 = dict(device=dev, dtype=torch.float32)

        self._pose = torch.zeros(3, B, K, **f32)    # x, y, yaw
        self._vel = torch.zeros(3, B, K, **f32)     # vx, vy, yaw rate
        self.inv_mass = torch.full((B, K), 1.0 / robot.mass, **f32)
        self.box_mass = torch.ones(B, **f32)
        self.box_inv_inertia = torch.zeros(B, **f32)
        self.box_mu = torch.zeros(B, **f32)
        self.act_mass = torch.full((B, A), robot.mass, **f32)
        self.act_force_dt = torch.full((B, A), robot.max_push_force * self.dt, **f32)
        base_tau = torch.tensor([robot.lag_tau_lin, robot.lag_tau_lin, robot.lag_tau_yaw], **f32)
        self.base_tau = base_tau[:, None].expand(3, A).clone()     # (3, A)
        radius = [robot.radius] * num_robots
        if self.has_sheep:
            self.inv_mass[:, self.obj] = 1.0 / sheep_mass
            self.act_mass[:, self.obj] = sheep_mass
            self.act_force_dt[:, self.obj] = sheep_max_force * self.dt
            self.base_tau[:, self.obj] = sheep_tau
            radius.append(sheep_radius)
        self.disc_r = torch.tensor(radius, **f32)                  # (D,)
        self.alpha = torch.zeros(3, B, A, **f32)
        self.set_lag_scale(torch.ones(B, **f32))
        self.v_ref = torch.zeros(3, B, A, **f32)     # lag state, body frame (vx, vy, wz)
        self.v_des = torch.zeros(2, B, A, **f32)     # desired world velocity, last sub-step
        self.gate_y = torch.zeros(B, **f32)
        self.delay = torch.zeros(B, dtype=torch.long, device=dev)  # actuation delay, sub-steps
        self._warm: dict = {}                        # accumulated impulses of the last sub-step
        self._substep = self.substep                 # or its compiled form (use_compiled)

        # disc pairs (robot-robot, robot-sheep); a pair is a collision for each robot in it
        pairs = [(i, j) for i in range(self.D) for j in range(i + 1, self.D)]
        self.pair_i = torch.tensor([p[0] for p in pairs], dtype=torch.long, device=dev)
        self.pair_j = torch.tensor([p[1] for p in pairs], dtype=torch.long, device=dev)
        self.pair_rsum = self.disc_r[self.pair_i] + self.disc_r[self.pair_j] if pairs else None
        self.is_robot = (torch.arange(self.D, device=dev) < num_robots).float()
        self.pair_flag_i = self.is_robot[self.pair_i] if pairs else None
        self.pair_flag_j = self.is_robot[self.pair_j] if pairs else None
        # (D, P) difference matrix: x @ pair_diff = x_j - x_i for every pair in one matmul
        self.pair_diff = torch.zeros(self.D, len(pairs), **f32)
        for p, (i, j) in enumerate(pairs):
            self.pair_diff[i, p] -= 1.0
            self.pair_diff[j, p] += 1.0

    # ---- views and per-environment settings -----------------------------------------------------
    @property
    def pose(self) -> torch.Tensor:
        """Poses (B, K, 3) = x, y, yaw (a view: writes go to the world)."""
        return self._pose.permute(1, 2, 0)

    @property
    def vel(self) -> torch.Tensor:
        """Velocities (B, K, 3) = vx, vy, yaw rate (a view)."""
        return self._vel.permute(1, 2, 0)

    def set_lag_scale(self, scale: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Lag time constants x scale (B,): exact discretisation alpha = 1 - exp(-dt / tau)."""
        alpha = 1.0 - torch.exp(-self.dt / (self.base_tau[:, None, :] * scale[None, :, None]))
        self.alpha = alpha if mask is None else torch.where(mask[None, :, None], alpha, self.alpha)

    def set_box(self, mass: torch.Tensor, mu: torch.Tensor, mask: torch.Tensor) -> None:
        """Box mass (B,) and floor friction coefficient (B,) where mask (B,) is set."""
        self.box_mass = torch.where(mask, mass, self.box_mass)
        self.box_mu = torch.where(mask, mu, self.box_mu)
        self.inv_mass[:, self.obj] = 1.0 / self.box_mass
        self.box_inv_inertia = 1.0 / (self.box_mass * self.box_rho ** 2)

    def place(self, pose: torch.Tensor, mask: torch.Tensor) -> None:
        """Teleport bodies to pose (B, K, 3) at rest where mask (B,) is set; controllers idle."""
        new = pose.permute(2, 0, 1).to(self._pose)
        new = torch.stack((new[0], new[1], wrap_angle(new[2])))
        m = mask[None, :, None]
        self._pose = torch.where(m, new, self._pose)
        self._vel = torch.where(m, torch.zeros_like(self._vel), self._vel)
        self.v_ref = torch.where(m, torch.zeros_like(self.v_ref), self.v_ref)
        self.v_des = torch.where(m, torch.zeros_like(self.v_des), self.v_des)
        keep = ~mask
        self._warm = {k: (v * keep if k == 'floor' else v * keep[None, :, None] if k == 'motor'
                          else tuple(t * keep[:, None] for t in v))
                      for k, v in self._warm.items()}

    # ---- one control step -----------------------------------------------------------------------
    def use_compiled(self, mode: str) -> None:
        """Run sub-steps through torch.compile ('auto' | 'on' | 'off', as core.compiled).

        A sub-step is a few hundred element-wise ops on (B, bodies) tensors, so eagerly its cost
        is per-op overhead; compiled it is a handful of fused loops (5-6x faster for 256 envs).
        The eager `substep` stays the reference (a test pins the two together)."""
        self._substep = Compiled(self.substep, 'sim.substep', mode) if mode != 'off' \
            else self.substep

    def step(self, cmd: torch.Tensor, prev_cmd: torch.Tensor) -> torch.Tensor:
        """Advance one control period with body-frame commands cmd (B, A, 3), already clamped.

        Environments with actuation delay d (sub-steps) apply prev_cmd for their first d
        sub-steps. Returns per-robot collision flags (B, n) bool: the robot touched another
        robot, the sheep, a wall or a gate post in some sub-step.
        """
        cmd_t, prev_t = cmd.permute(2, 0, 1), prev_cmd.permute(2, 0, 1)
        hits = torch.zeros(self.B, self.D, device=self.device)
        for s in range(self.phys.substeps):
            use = torch.where((self.delay > s)[None, :, None], prev_t, cmd_t)
            hits = hits + self._substep(use)
        return hits[:, :self.n] > 0

    def substep(self, cmd: torch.Tensor) -> torch.Tensor:
        """One physics sub-step with commands cmd (3, B, A); returns disc contact counts (B, D)."""
        dt, A, D = self.dt, self.A, self.D
        phys = self.phys
        yaw, w = self._pose[2], self._vel[2]

        # 1. detection; which actuated bodies press against another body
        pressed = torch.zeros(self.B, D, device=self.device)
        groups = self._detect(pressed)

        # 2. locomotion controller: first-order lag in the body frame -> desired world velocity.
        # Free, it realises the lag's acceleration exactly; pressing against a body, its
        # horizontal force is limited to max_push_force (traction).
        self.v_ref = self.v_ref + self.alpha * (cmd - self.v_ref)
        yaw_end = yaw[:, :A] + self.v_ref[2] * dt        # body frame at the end of the sub-step
        c, s = torch.cos(yaw_end), torch.sin(yaw_end)
        ux, uy = self.v_ref[0], self.v_ref[1]
        v_des = torch.stack((c * ux - s * uy, s * ux + c * uy))          # (2, B, A)
        dvd = v_des - self.v_des
        own = self.act_mass * torch.sqrt(dvd[0] * dvd[0] + dvd[1] * dvd[1])
        budget = torch.where(pressed[:, :A] > 0, 0.0, own) + self.act_force_dt
        self.v_des = v_des
        w[:, :A] = self.v_ref[2]
        for g in groups.values():
            g.prepare(self, self.inv_mass)

        # 3. warm start with the last sub-step's impulses (contact slots are fixed, so a
        # resting or pushing contact starts converged), then solver iterations
        warm = self._warm
        m_act = self.act_mass
        if self.has_box:
            box_v0 = self._vel[:, :, self.obj].clone()
        lam_m = torch.zeros(2, self.B, A, device=self.device)
        lam_f = torch.zeros(3, self.B, device=self.device)
        if warm:
            lam_m = clamp_norm(warm['motor'], budget)
            self._vel[:2, :, :A] += lam_m / m_act
            if self.has_box:
                lam_f = self._box_ground_friction(lam_f, warm['floor'])
            for key, g in groups.items():
                g.warm(self, warm.get(key))
        for _ in range(phys.solver_iterations):
            v = self._vel[:2, :, :A]
            lam_new = clamp_norm(lam_m + m_act * (self.v_des - v), budget)
            self._vel[:2, :, :A] = v + (lam_new - lam_m) / m_act
            lam_m = lam_new
            if self.has_box:
                lam_f = self._box_ground_friction(lam_f)
            for g in groups.values():
                g.solve(self)

        self._warm = {'motor': lam_m, 'floor': lam_f,
                      **{key: g.impulses() for key, g in groups.items()}}

        # 4. integrate: semi-implicit Euler, positions move with the solved velocities, so the
        # speculative contacts hold. A box touching nothing only decelerates under constant
        # kinetic friction: integrate that exactly (trapezoid), else it would stop v0 dt / 2
        # short of v0^2 / (2 mu g).
        self._pose[:2] += self._vel[:2] * dt
        self._pose[2] += self._vel[2] * dt
        if self.has_box:
            free = ~(groups['box'].any_active | groups['box_walls'].any_active)
            dv = self._vel[:, :, self.obj] - box_v0
            self._pose[:, :, self.obj] -= torch.where(free, 0.5 * dt, 0.0) * dv
        self._pose[2] = wrap_angle(self._pose[2])

        # 5. position correction and collision flags
        hits = torch.zeros(self.B, D, device=self.device)
        for g in groups.values():
            g.correct(self, hits)
        return hits

    def _box_ground_friction(self, lam_f: torch.Tensor,
                             target: torch.Tensor | None = None) -> torch.Tensor:
        """Coulomb friction of the box on the floor as one generalised impulse (Fx, Fy, tau/rho).

        The admissible set is the ball |(Fx, Fy, tau / rho)| <= mu m g dt (an ellipsoidal limit
        surface; rho = a / sqrt(6) = 0.49 m for the 1.2 m square vs 0.46 m for its exact mean
        pressure radius). Projecting onto it in the kinetic-energy metric is the
        maximum-dissipation impulse: a box at rest stays at rest under any push below the limit,
        and a box sliding without spin decelerates at exactly mu g.
        """
        k, m = self.obj, self.box_mass
        v = self._vel[:, :, k]                                           # (3, B)
        limit = self.box_mu * m * self.phys.gravity * self.dt
        if target is None:      # iteration: towards stopping the box
            lam_new = clamp_norm(lam_f + v * self._rho_scale * m, limit)
        else:                   # warm start: re-apply a previous impulse
            lam_new = clamp_norm(target, limit)
        self._vel[:, :, k] = v - (lam_new - lam_f) / (m * self._rho_scale)
        return lam_new

    def _detect(self, pressed: torch.Tensor) -> dict:
        """Contact groups in solver order (hard static constraints last)."""
        groups = {}
        if self.pair_i.numel():
            groups['pairs'] = _DiscPairs(self, pressed)
        if self.has_box:
            groups['box'] = _RobotBox(self, pressed)
            groups['box_walls'] = _BoxWalls(self)
        groups['walls'] = _DiscWalls(self)
        if self.gate is not None:
            groups['posts'] = _DiscPosts(self)
        return groups

    # ---- diagnostics ----------------------------------------------------------------------------
    def momentum(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Linear (B, 2) and angular (B,) momentum about the origin.

        Robots and the sheep count with their linear momentum only (their yaw is held by their
        controllers); the box also with its spin.
        """
        mass = 1.0 / self.inv_mass
        vx, vy = self._vel[0], self._vel[1]
        lin = torch.stack(((mass * vx).sum(1), (mass * vy).sum(1)), -1)
        ang = (mass * (self._pose[0] * vy - self._pose[1] * vx)).sum(1)
        if self.has_box:
            ang = ang + self._vel[2, :, self.obj] / self.box_inv_inertia
        return lin, ang


# ---- contact groups ------------------------------------------------------------------------------
# Each group detects its candidates (aligned with a slice of bodies), prepares effective masses,
# applies its impulses in `solve`, and corrects positions / reports touches in `correct`.
# Conventions: normal (nx, ny) points from body a to body b, pen > 0 is overlap.

def _active(pen: torch.Tensor, dt: float) -> torch.Tensor:
    """Contacts that may close within this sub-step (they count for mass splitting)."""
    return (pen > -_MAX_CLOSING_SPEED * dt).float()


def _touching(pen: torch.Tensor, wd: PlanarWorld) -> torch.Tensor:
    """Contacts closed to within the collision margin."""
    return (pen > -wd.phys.collision_margin).float()


class _Group(ABC):
    """Common warm-start bookkeeping: `lams` are the accumulated impulses, one (B, m) each."""

    lams: tuple

    def impulses(self) -> tuple:
        return self.lams

    def warm(self, wd: PlanarWorld, prev: tuple | None) -> None:
        """Re-apply the previous sub-step's impulses of contacts that are still closed."""
        if prev is None:
            return
        self.warm_apply(wd, [lam * self.touch for lam in prev])

    @abstractmethod
    def warm_apply(self, wd: PlanarWorld, lams: list) -> None:
        ...


class _FrictionGroup(_Group):
    """Contacts with a normal and a Coulomb-friction tangent impulse (lams = (normal, tangent)).

    Subclasses give the relative velocity along (n, t) (`_rel`), how impulses change the
    velocities (`_apply`), the effective masses `kn`, `kt`, the bias and the friction `mu`.
    """

    kn: torch.Tensor
    kt: torch.Tensor
    bias: torch.Tensor
    mu: float

    @abstractmethod
    def _rel(self, wd: PlanarWorld) -> tuple[torch.Tensor, torch.Tensor]:
        ...

    @abstractmethod
    def _apply(self, wd: PlanarWorld, dn: torch.Tensor, dt_: torch.Tensor) -> None:
        ...

    def warm_apply(self, wd: PlanarWorld, lams: list) -> None:
        ln, lt = lams
        lim = self.mu * ln
        lt = torch.maximum(torch.minimum(lt, lim), -lim)
        self.lams = (ln, lt)
        self._apply(wd, ln, lt)

    def solve(self, wd: PlanarWorld) -> None:
        vn, vt = self._rel(wd)
        ln, lt = self.lams
        ln, dn = _normal_step(ln, vn, self.kn, self.bias)
        lt, dt_ = _friction_step(lt, vt, self.kt, self.mu * ln)
        self.lams = (ln, lt)
        self._apply(wd, dn, dt_)


class _DiscPairs(_FrictionGroup):
    """Disc-disc contacts (robot-robot, robot-sheep) with Coulomb friction; no spin."""

    def __init__(self, wd: PlanarWorld, pressed: torch.Tensor) -> None:
        x, y = wd._pose[0, :, :wd.D], wd._pose[1, :, :wd.D]
        dx, dy = x @ wd.pair_diff, y @ wd.pair_diff                # (B, P): p_j - p_i
        dist = torch.sqrt(dx * dx + dy * dy)
        ok = dist > 1e-6
        inv = 1.0 / dist.clamp_min(1e-6)
        self.nx = torch.where(ok, dx * inv, 1.0)
        self.ny = torch.where(ok, dy * inv, 0.0)
        self.pen = wd.pair_rsum - dist
        act = _active(self.pen, wd.dt)
        count = torch.zeros_like(x).index_add_(1, wd.pair_i, act).index_add_(1, wd.pair_j, act)
        self.count = count.clamp_min(1.0)                           # pairs per disc (B, D)
        self.touch = _touching(self.pen, wd)
        pressed.index_add_(1, wd.pair_i, self.touch).index_add_(1, wd.pair_j, self.touch)

    def prepare(self, wd: PlanarWorld, im: torch.Tensor) -> None:
        i, j = wd.pair_i, wd.pair_j
        self.imi, self.imj = im.index_select(1, i), im.index_select(1, j)
        ci, cj = self.count.index_select(1, i), self.count.index_select(1, j)
        self.ci, self.cj = ci, cj
        self.kn = self.kt = 1.0 / (ci * self.imi + cj * self.imj)   # a disc has no arm
        self.bias = (-self.pen).clamp_min(0.0) / wd.dt
        self.lams = (torch.zeros_like(self.pen), torch.zeros_like(self.pen))
        self.mu = wd.phys.contact_friction

    def _apply(self, wd: PlanarWorld, dn: torch.Tensor, dt_: torch.Tensor) -> None:
        nx, ny = self.nx, self.ny
        jx, jy = dn * nx - dt_ * ny, dn * ny + dt_ * nx   # impulse on j (on i: minus)
        i, j, D = wd.pair_i, wd.pair_j, wd.D
        vx, vy = wd._vel[0, :, :D], wd._vel[1, :, :D]
        vx.index_add_(1, j, jx * self.imj).index_add_(1, i, jx * self.imi, alpha=-1.0)
        vy.index_add_(1, j, jy * self.imj).index_add_(1, i, jy * self.imi, alpha=-1.0)

    def _rel(self, wd: PlanarWorld):
        D = wd.D
        dvx = wd._vel[0, :, :D] @ wd.pair_diff
        dvy = wd._vel[1, :, :D] @ wd.pair_diff
        return dvx * self.nx + dvy * self.ny, dvy * self.nx - dvx * self.ny   # t = (-ny, nx)

    def correct(self, wd: PlanarWorld, hits: torch.Tensor) -> None:
        vn, _ = self._rel(wd)
        pen = self.pen - vn * wd.dt
        corr = wd.phys.position_correction * (pen - wd.phys.slop).clamp_min(0.0) \
            / (self.imi + self.imj)
        ai, aj = corr * self.imi / self.ci, corr * self.imj / self.cj
        i, j, D = wd.pair_i, wd.pair_j, wd.D
        for comp, nrm in ((0, self.nx), (1, self.ny)):
            wd._pose[comp, :, :D].index_add_(1, j, aj * nrm).index_add_(1, i, ai * nrm,
                                                                        alpha=-1.0)
        touch = (pen > -wd.phys.collision_margin).float()
        hits.index_add_(1, i, touch * wd.pair_flag_i).index_add_(1, j, touch * wd.pair_flag_j)


def _ones(m: int, like: torch.Tensor) -> torch.Tensor:
    """A ones vector: `x @ ones` sums the last dimension far faster than x.sum(-1) on CPU."""
    return torch.ones(m, dtype=like.dtype, device=like.device)


class _RobotBox(_FrictionGroup):
    """Robot (b) against the box (a): the box turns, robots do not; Coulomb friction.

    Jacobian rows (x, y, arm) per contact: an impulse dn along the normal and dt along the
    tangent moves the robot by (imp_x, imp_y) * im_r and the box by -(imp_x, imp_y) * im_b,
    and turns the box by -imp_arm * ii_b.
    """

    def __init__(self, wd: PlanarWorld, pressed: torch.Tensor) -> None:
        n, k = wd.n, wd.obj
        x, y, yaw = wd._pose[0], wd._pose[1], wd._pose[2]
        c, s = torch.cos(yaw[:, k:k + 1]), torch.sin(yaw[:, k:k + 1])
        dx, dy = x[:, :n] - x[:, k:k + 1], y[:, :n] - y[:, k:k + 1]
        lx, ly = c * dx + s * dy, -s * dx + c * dy
        h = wd.box_half
        nlx, nly, plx, ply, self.pen = disc_vs_rect(lx, ly, h, h, wd.robot.radius)
        self.nx, self.ny = c * nlx - s * nly, s * nlx + c * nly
        ax, ay = c * plx - s * ply, s * plx + c * ply              # arm on the box
        self.ran = ax * self.ny - ay * self.nx                     # arm x n
        self.rat = -(ax * self.nx + ay * self.ny)                  # arm x t, t = (-ny, nx)
        act = _active(self.pen, wd.dt)
        self.any_active = act.amax(1) > 0
        self.cb = act.sum(1, keepdim=True).clamp_min(1.0)          # the box's contacts
        self.touch = _touching(self.pen, wd)
        pressed[:, :n] += self.touch

    def prepare(self, wd: PlanarWorld, im: torch.Tensor) -> None:
        n, k = wd.n, wd.obj
        self.imr, imb = im[:, :n], im[:, k]
        iib = wd.box_inv_inertia
        self.kn = 1.0 / (self.imr + self.cb * (imb[:, None] + iib[:, None] * self.ran ** 2))
        self.kt = 1.0 / (self.imr + self.cb * (imb[:, None] + iib[:, None] * self.rat ** 2))
        self.jn = torch.stack((self.nx, self.ny, self.ran))        # (3, B, n)
        self.jt = torch.stack((-self.ny, self.nx, self.rat))
        self.wbox = torch.stack((imb, imb, iib))                    # (3, B)
        self.ones = _ones(n, self.pen)
        self.bias = (-self.pen).clamp_min(0.0) / wd.dt
        self.lams = (torch.zeros_like(self.pen), torch.zeros_like(self.pen))
        self.mu = wd.phys.contact_friction

    def _rel(self, wd: PlanarWorld):
        n, k = wd.n, wd.obj
        vb = wd._vel[:, :, k, None]                                 # (3, B, 1)
        dvx = wd._vel[0, :, :n] - vb[0]
        dvy = wd._vel[1, :, :n] - vb[1]
        vn = dvx * self.nx + dvy * self.ny - vb[2] * self.ran
        vt = dvy * self.nx - dvx * self.ny - vb[2] * self.rat
        return vn, vt

    def _apply(self, wd: PlanarWorld, dn: torch.Tensor, dt_: torch.Tensor) -> None:
        n, k = wd.n, wd.obj
        imp = self.jn * dn + self.jt * dt_                          # (3, B, n)
        wd._vel[:2, :, :n] += imp[:2] * self.imr
        wd._vel[:, :, k] -= (imp @ self.ones) * self.wbox

    def correct(self, wd: PlanarWorld, hits: torch.Tensor) -> None:
        n, k = wd.n, wd.obj
        vn, _ = self._rel(wd)
        pen = self.pen - vn * wd.dt
        imb = self.wbox[0][:, None]
        corr = wd.phys.position_correction * (pen - wd.phys.slop).clamp_min(0.0) \
            / (self.imr + imb)
        push = self.jn[:2] * corr                                   # (2, B, n)
        wd._pose[:2, :, :n] += push * self.imr
        wd._pose[:2, :, k] -= (push @ self.ones) * (imb[:, 0] / self.cb[:, 0])


class _NormalGroup(_Group):
    """A frictionless normal-only contact group: subclasses give `_vn` (normal velocity),
    `_apply` (impulse -> velocities) and set `kn` (effective mass) and `bias` in `prepare`."""

    kn: torch.Tensor
    bias: torch.Tensor

    @abstractmethod
    def _vn(self, wd: PlanarWorld) -> torch.Tensor:
        ...

    @abstractmethod
    def _apply(self, wd: PlanarWorld, dn: torch.Tensor) -> None:
        ...

    def warm_apply(self, wd: PlanarWorld, lams: list) -> None:
        self.lams = (lams[0],)
        self._apply(wd, lams[0])

    def solve(self, wd: PlanarWorld) -> None:
        ln, dn = _normal_step(self.lams[0], self._vn(wd), self.kn, self.bias)
        self.lams = (ln,)
        self._apply(wd, dn)


class _BoxWalls(_NormalGroup):
    """The box's corners against the nearer x wall and the nearer y wall (frictionless)."""

    def __init__(self, wd: PlanarWorld) -> None:
        a, k = wd.arena, wd.obj
        bx, by, yaw = wd._pose[0, :, k:k + 1], wd._pose[1, :, k:k + 1], wd._pose[2, :, k:k + 1]
        c, s = torch.cos(yaw), torch.sin(yaw)
        h = wd.box_half
        sx = bx.new_tensor([1.0, -1.0, -1.0, 1.0]) * h
        sy = bx.new_tensor([1.0, 1.0, -1.0, -1.0]) * h
        ax, ay = c * sx - s * sy, s * sx + c * sy                  # corner arms (B, 4)
        left = bx < 0.5 * (a.x_min + a.x_max)
        low = by < 0.5 * (a.y_min + a.y_max)
        # every corner against the nearer x wall and the nearer y wall: 8 candidates, of which
        # the far ones stay inactive (their gap is far beyond one sub-step)
        pen_x = torch.where(left, a.x_min - (bx + ax), (bx + ax) - a.x_max)
        pen_y = torch.where(low, a.y_min - (by + ay), (by + ay) - a.y_max)
        self.pen = torch.cat((pen_x, pen_y), 1)                          # (B, 8)
        sgx = torch.where(left, 1.0, -1.0).expand(-1, 4)
        sgy = torch.where(low, 1.0, -1.0).expand(-1, 4)
        zero = torch.zeros_like(pen_x)
        self.nx = torch.cat((sgx, zero), 1)
        self.ny = torch.cat((zero, sgy), 1)
        self.rbn = torch.cat((-ay * sgx, ax * sgy), 1)                   # arm x n
        act = _active(self.pen, wd.dt)
        self.any_active = act.amax(1) > 0
        self.cb = act.sum(1, keepdim=True).clamp_min(1.0)
        self.touch = _touching(self.pen, wd)

    def prepare(self, wd: PlanarWorld, im: torch.Tensor) -> None:
        k = wd.obj
        imb, iib = im[:, k, None], wd.box_inv_inertia[:, None]
        self.kn = 1.0 / (self.cb * (imb + iib * self.rbn ** 2))
        self.jn = torch.stack((self.nx, self.ny, self.rbn))        # (3, B, 8)
        self.jw = self.jn * torch.stack((imb, imb, iib))            # impulse -> velocity
        self.ones = _ones(8, self.pen)
        self.imb = imb
        self.bias = (-self.pen).clamp_min(0.0) / wd.dt
        self.lams = (torch.zeros_like(self.pen),)

    def _vn(self, wd: PlanarWorld) -> torch.Tensor:
        v = wd._vel[:, :, wd.obj, None]                             # (3, B, 1)
        return v[0] * self.nx + v[1] * self.ny + v[2] * self.rbn

    def _apply(self, wd: PlanarWorld, dn: torch.Tensor) -> None:
        wd._vel[:, :, wd.obj] += (self.jw * dn) @ self.ones

    def correct(self, wd: PlanarWorld, hits: torch.Tensor) -> None:
        pen = self.pen - self._vn(wd) * wd.dt
        corr = wd.phys.position_correction * (pen - wd.phys.slop).clamp_min(0.0) / self.cb
        wd._pose[:2, :, wd.obj] += (self.jn[:2] * corr) @ self.ones


class _DiscWalls(_Group):
    """Each disc against its nearer x wall and its nearer y wall (frictionless, static).

    Stored as (2, B, D): row 0 the x wall (acts on vx only), row 1 the y wall (vy only).
    """

    def __init__(self, wd: PlanarWorld) -> None:
        a, D, r = wd.arena, wd.D, wd.disc_r
        p = wd._pose[:2, :, :D]
        lo = p.new_tensor([a.x_min, a.y_min])[:, None, None]
        hi = p.new_tensor([a.x_max, a.y_max])[:, None, None]
        near_lo = (p - lo) < (hi - p)
        self.sign = torch.where(near_lo, 1.0, -1.0)                # normal into the arena
        self.pen = r - torch.where(near_lo, p - lo, hi - p)
        self.touch = _touching(self.pen, wd)

    def prepare(self, wd: PlanarWorld, im: torch.Tensor) -> None:
        self.im = im[:, :wd.D]                  # x and y walls act on independent components
        self.k = 1.0 / self.im
        self.bias = (-self.pen).clamp_min(0.0) / wd.dt
        self.lams = (torch.zeros_like(self.pen),)

    def warm_apply(self, wd: PlanarWorld, lams: list) -> None:
        self.lams = (lams[0],)
        wd._vel[:2, :, :wd.D] += self.sign * lams[0] * self.im

    def solve(self, wd: PlanarWorld) -> None:
        v = wd._vel[:2, :, :wd.D]
        ln, dn = _normal_step(self.lams[0], self.sign * v, self.k, self.bias)
        self.lams = (ln,)
        wd._vel[:2, :, :wd.D] = v + self.sign * dn * self.im

    def correct(self, wd: PlanarWorld, hits: torch.Tensor) -> None:
        D, p = wd.D, wd.phys
        pen = self.pen - self.sign * wd._vel[:2, :, :D] * wd.dt
        wd._pose[:2, :, :D] += self.sign * p.position_correction * (pen - p.slop).clamp_min(0.0)
        touch = (pen > -p.collision_margin).any(0).float()
        hits += touch * wd.is_robot


class _DiscPosts(_NormalGroup):
    """Each disc against the gate post on its side of the opening (frictionless, static)."""

    def __init__(self, wd: PlanarWorld) -> None:
        g, a, D = wd.gate, wd.arena, wd.D
        x, y = wd._pose[0, :, :D], wd._pose[1, :, :D]
        gy = wd.gate_y[:, None]
        big = 2.0 * (a.y_max - a.y_min)       # posts reach well beyond the walls
        cy = torch.where(y > gy, gy + 0.5 * (g.width + big), gy - 0.5 * (g.width + big))
        self.nx, self.ny, _, _, self.pen = disc_vs_rect(x - g.x, y - cy, 0.5 * g.depth,
                                                        0.5 * big, wd.disc_r)
        self.touch = _touching(self.pen, wd)

    def prepare(self, wd: PlanarWorld, im: torch.Tensor) -> None:
        self.im = im[:, :wd.D]
        self.kn = 1.0 / self.im
        self.bias = (-self.pen).clamp_min(0.0) / wd.dt
        self.lams = (torch.zeros_like(self.pen),)

    def _vn(self, wd: PlanarWorld) -> torch.Tensor:
        D = wd.D
        return wd._vel[0, :, :D] * self.nx + wd._vel[1, :, :D] * self.ny

    def _apply(self, wd: PlanarWorld, dn: torch.Tensor) -> None:
        D = wd.D
        wd._vel[0, :, :D] += dn * self.nx * self.im
        wd._vel[1, :, :D] += dn * self.ny * self.im

    def correct(self, wd: PlanarWorld, hits: torch.Tensor) -> None:
        p = wd.phys
        pen = self.pen - self._vn(wd) * wd.dt
        corr = p.position_correction * (pen - p.slop).clamp_min(0.0)
        D = wd.D
        wd._pose[0, :, :D] += corr * self.nx
        wd._pose[1, :, :D] += corr * self.ny
        hits += (pen > -p.collision_margin).float() * wd.is_robot
