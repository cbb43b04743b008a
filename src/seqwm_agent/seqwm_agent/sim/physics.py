"""Batched planar rigid-body world: velocity-tracking robots, a box or a sheep, walls, a gate.

Everything is one tensor per quantity with a leading batch dimension B (environments); no Python
loop runs over environments or bodies, only over sub-steps and solver iterations.

Bodies of one environment, in this order (index k):
  0..n-1   robots: discs of radius r, mass m_r, yaw driven by their controller (no yaw inertia
           in contacts: the legged controller holds its heading, so contact torques on a robot
           go to the ground through its feet)
  n        the object, if the task has one: the PushBox box (a square with mass, yaw inertia and
           Coulomb ground friction) or the Shepherd sheep (a velocity-tracking disc)
  K        one static body (arena walls, gate posts) with zero inverse mass

Per sub-step (dt = control_dt / substeps):
  1. locomotion controller: body-frame command -> first-order lag -> desired world velocity;
  2. contact detection (positions at the start of the sub-step), speculative: contacts that are
     still open may close at most their gap within the sub-step, so nothing tunnels;
  3. `solver_iterations` Jacobi iterations of the impulse solver with mass splitting: drive
     motors (force-limited), normal impulses (>= 0), Coulomb friction impulses at contacts, and
     the box's ground friction (a force/torque limit surface, see `_box_ground_friction`);
     impulses act equal and opposite on both bodies at the contact point, so every contact
     conserves linear and angular momentum;
  4. semi-implicit Euler integration of positions and yaw (wrapped to (-pi, pi]);
  5. position correction: remaining penetration beyond `slop` is pushed apart along the contact
     normal in inverse-mass proportion (velocities untouched), so penetration cannot grow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import ArenaConfig, PhysicsConfig, RobotConfig
from .geometry import rotate, to_frame, wrap_angle

# speculative contact range: relative speeds above this (m/s) could skip a contact in one sub-step
_MAX_CLOSING_SPEED = 4.0


@dataclass
class GateGeometry:
    """A wall across the arena at x = x with an opening of `width` centred at y = gate_y (per env)."""

    x: float
    width: float
    depth: float


@dataclass
class Contacts:
    """Contact candidates of one sub-step, C per environment.

    normal (B, C, 2) points from body a to body b; arm_a / arm_b (B, C, 2) are the contact point
    relative to each body's centre; pen (B, C) is the overlap (> 0) or gap (< 0).
    """

    normal: torch.Tensor
    arm_a: torch.Tensor
    arm_b: torch.Tensor
    pen: torch.Tensor


def clamp_norm(x: torch.Tensor, max_norm: torch.Tensor) -> torch.Tensor:
    """Scale vectors x (..., d) down to norm <= max_norm (...)."""
    norm = torch.linalg.vector_norm(x, dim=-1)
    scale = (max_norm / norm.clamp_min(1e-12)).clamp(max=1.0)
    return x * scale[..., None]


def _clamp_sym(v: torch.Tensor, h: torch.Tensor | float) -> torch.Tensor:
    """Clamp v to [-h, h] (h a float or a tensor broadcastable to v)."""
    if torch.is_tensor(h):
        return torch.minimum(torch.maximum(v, -h), h)
    return v.clamp(-h, h)


def _disc_vs_rect(local: torch.Tensor, hx: torch.Tensor | float, hy: torch.Tensor | float,
                  radius: torch.Tensor | float):
    """Disc centres `local` (..., 2) in a rectangle's frame (centre 0, half sides hx, hy).

    Returns the outward normal (..., 2), the closest point on the rectangle boundary (..., 2) and
    the penetration (...) (> 0 overlap). A centre inside the rectangle is pushed out through the
    nearest side.
    """
    lx, ly = local[..., 0], local[..., 1]
    qx, qy = _clamp_sym(lx, hx), _clamp_sym(ly, hy)
    dx, dy = lx - qx, ly - qy
    dist = torch.sqrt(dx * dx + dy * dy)
    outside = dist > 1e-6
    inv = 1.0 / dist.clamp_min(1e-6)
    # inside: leave through the side with the least penetration
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
    return torch.stack((nx, ny), -1), torch.stack((px, py), -1), pen


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
        self.K = num_robots + (1 if self.obj is not None else 0)   # dynamic bodies
        self.static = self.K                                        # index of the static body
        self.A = num_robots + (1 if self.has_sheep else 0)          # actuated bodies 0..A-1
        self.box_size = box_size
        self.box_half = None if box_size is None else box_size / 2
        # radius of gyration of a uniform square: sets both its inertia and its friction torque
        self.box_rho = None if box_size is None else box_size / math.sqrt(6.0)
        B, K1, A, dev = num_envs, self.K + 1, self.A, self.device
        f32 = dict(device=dev, dtype=torch.float32)

        self.pose = torch.zeros(B, K1, 3, **f32)
        self.vel = torch.zeros(B, K1, 3, **f32)
        self.inv_mass = torch.zeros(B, K1, **f32)
        self.inv_mass[:, :num_robots] = 1.0 / robot.mass
        self.inv_inertia = torch.zeros(B, K1, **f32)
        self.act_mass = torch.full((B, A), robot.mass, **f32)
        self.act_force_dt = torch.full((B, A), robot.max_push_force * self.dt, **f32)
        base_tau = torch.tensor([robot.lag_tau_lin, robot.lag_tau_lin, robot.lag_tau_yaw], **f32)
        self.base_tau = base_tau.expand(A, 3).clone()
        if self.has_sheep:
            self.inv_mass[:, self.obj] = 1.0 / sheep_mass
            self.act_mass[:, self.obj] = sheep_mass
            self.act_force_dt[:, self.obj] = sheep_max_force * self.dt
            self.base_tau[self.obj] = sheep_tau
        self.alpha = torch.zeros(B, A, 3, **f32)
        self.set_lag_scale(torch.ones(B, **f32))
        self.v_ref = torch.zeros(B, A, 3, **f32)    # lag state, body frame (vx, vy, wz)
        self.v_des = torch.zeros(B, A, 2, **f32)    # desired world velocity of the last sub-step
        self.box_mu = torch.zeros(B, **f32)
        self.box_mass = torch.ones(B, **f32)
        self.gate_y = torch.zeros(B, **f32)
        self.delay = torch.zeros(B, dtype=torch.long, device=dev)   # actuation delay, sub-steps

        # ---- static contact candidate lists (identical for every environment) -------------
        discs = list(range(num_robots)) + ([self.obj] if self.has_sheep else [])
        radius = [robot.radius] * num_robots + ([sheep_radius] if self.has_sheep else [])
        self.disc_idx = torch.tensor(discs, dtype=torch.long, device=dev)
        self.disc_r = torch.tensor(radius, **f32)
        ia, ib, mu, flag_a, flag_b = [], [], [], [], []

        def add(a: int, b: int, m: float, fa: bool, fb: bool) -> None:
            ia.append(a), ib.append(b), mu.append(m), flag_a.append(fa), flag_b.append(fb)

        mu_c = physics.contact_friction
        pairs = [(i, j) for i in range(len(discs)) for j in range(i + 1, len(discs))]
        self._dd_i = torch.tensor([p[0] for p in pairs], dtype=torch.long, device=dev)
        self._dd_j = torch.tensor([p[1] for p in pairs], dtype=torch.long, device=dev)
        for i, j in pairs:    # robot-robot and robot-sheep: both are collisions for robots
            add(discs[i], discs[j], mu_c, discs[i] < num_robots, discs[j] < num_robots)
        if self.has_box:      # robot-box: pushing, not a collision
            for i in range(num_robots):
                add(self.obj, i, mu_c, False, False)
        for k in discs:       # disc vs nearest x wall, nearest y wall (frictionless)
            add(self.static, k, 0.0, False, k < num_robots)
            add(self.static, k, 0.0, False, k < num_robots)
        if self.has_box:      # box: its two deepest corners vs nearest x wall, same for y
            for _ in range(4):
                add(self.static, self.obj, 0.0, False, False)
        if gate is not None:  # disc vs the gate post on its side of the opening
            for k in discs:
                add(self.static, k, 0.0, False, k < num_robots)
        self.ia = torch.tensor(ia, dtype=torch.long, device=dev)
        self.ib = torch.tensor(ib, dtype=torch.long, device=dev)
        self.mu = torch.tensor(mu, **f32)
        self.flag_a = torch.tensor(flag_a, **f32)
        self.flag_b = torch.tensor(flag_b, **f32)
        self.num_contacts = len(ia)

    # ---- configuration per environment (domain randomisation) ------------------------------
    def set_lag_scale(self, scale: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Lag time constants x scale (B,): exact discretisation alpha = 1 - exp(-dt / tau)."""
        alpha = 1.0 - torch.exp(-self.dt / (self.base_tau[None] * scale[:, None, None]))
        self.alpha = alpha if mask is None else torch.where(mask[:, None, None], alpha, self.alpha)

    def set_box(self, mass: torch.Tensor, mu: torch.Tensor, mask: torch.Tensor) -> None:
        """Box mass (B,) and ground friction coefficient (B,) where mask (B,) is set."""
        self.box_mass = torch.where(mask, mass, self.box_mass)
        self.box_mu = torch.where(mask, mu, self.box_mu)
        inertia = self.box_mass * self.box_rho ** 2
        self.inv_mass[:, self.obj] = 1.0 / self.box_mass
        self.inv_inertia[:, self.obj] = 1.0 / inertia

    def place(self, pose: torch.Tensor, mask: torch.Tensor) -> None:
        """Teleport bodies to pose (B, K, 3) at rest where mask (B,) is set; controllers idle."""
        m3 = mask[:, None, None]
        pose = pose.clone()
        pose[..., 2] = wrap_angle(pose[..., 2])
        self.pose[:, :self.K] = torch.where(m3, pose, self.pose[:, :self.K])
        self.vel = torch.where(m3, torch.zeros_like(self.vel), self.vel)
        self.v_ref = torch.where(m3, torch.zeros_like(self.v_ref), self.v_ref)
        self.v_des = torch.where(m3, torch.zeros_like(self.v_des), self.v_des)

    # ---- one control step -----------------------------------------------------------------
    def step(self, cmd: torch.Tensor, prev_cmd: torch.Tensor) -> torch.Tensor:
        """Advance one control period with body-frame commands cmd (B, A, 3), already clamped.

        Environments with actuation delay d (sub-steps) apply prev_cmd for their first d
        sub-steps. Returns per-robot collision flags (B, n) bool: the robot touched another robot
        (or the sheep), a wall or a gate post in any sub-step.
        """
        touched = torch.zeros(self.B, self.K + 1, device=self.device)
        for s in range(self.phys.substeps):
            use = torch.where((self.delay > s)[:, None, None], prev_cmd, cmd)
            touched = touched + self.substep(use)
        return touched[:, :self.n] > 0

    def substep(self, cmd: torch.Tensor) -> torch.Tensor:
        """One physics sub-step; returns per-body collision counts (B, K + 1)."""
        dt, A = self.dt, self.A
        # 1. locomotion controller: first-order lag in the body frame, then to the world frame
        self.v_ref = self.v_ref + self.alpha * (cmd - self.v_ref)
        yaw = self.pose[:, :A, 2]
        v_des = rotate(self.v_ref[..., :2], torch.cos(yaw), torch.sin(yaw))
        # the controller always realises its own acceleration, plus max_push_force against loads
        budget = self.act_mass * torch.linalg.vector_norm(v_des - self.v_des, dim=-1) \
            + self.act_force_dt
        self.v_des = v_des
        self.vel[:, :A, 2] = self.v_ref[..., 2]

        # 2. contacts and solver set-up
        c = self.detect()
        n, ta = c.normal, c.normal.flip(-1) * c.normal.new_tensor([-1.0, 1.0])   # tangent
        ia, ib = self.ia, self.ib
        active = (c.pen > -_MAX_CLOSING_SPEED * dt).float()
        count = torch.zeros(self.B, self.K + 1, device=self.device)
        count.index_add_(1, ia, active).index_add_(1, ib, active)
        count = count.clamp_min(1.0)
        ima, imb = self.inv_mass[:, ia], self.inv_mass[:, ib]
        iia, iib = self.inv_inertia[:, ia], self.inv_inertia[:, ib]
        ran = c.arm_a[..., 0] * n[..., 1] - c.arm_a[..., 1] * n[..., 0]
        rbn = c.arm_b[..., 0] * n[..., 1] - c.arm_b[..., 1] * n[..., 0]
        rat = c.arm_a[..., 0] * ta[..., 1] - c.arm_a[..., 1] * ta[..., 0]
        rbt = c.arm_b[..., 0] * ta[..., 1] - c.arm_b[..., 1] * ta[..., 0]
        ca, cb = count[:, ia], count[:, ib]     # mass splitting: Jacobi without overshoot
        kn = 1.0 / (ca * (ima + iia * ran * ran) + cb * (imb + iib * rbn * rbn)).clamp_min(1e-9)
        kt = 1.0 / (ca * (ima + iia * rat * rat) + cb * (imb + iib * rbt * rbt)).clamp_min(1e-9)
        jna = torch.cat((n, ran[..., None]), -1)          # velocity Jacobians (B, C, 3)
        jnb = torch.cat((n, rbn[..., None]), -1)
        jta = torch.cat((ta, rat[..., None]), -1)
        jtb = torch.cat((ta, rbt[..., None]), -1)
        wa = torch.stack((ima, ima, iia), -1)
        wb = torch.stack((imb, imb, iib), -1)
        mna, mnb, mta, mtb = jna * wa, jnb * wb, jta * wa, jtb * wb
        bias = (-c.pen).clamp_min(0.0) / dt                # speculative: may close the gap
        lam_n = torch.zeros_like(c.pen)
        lam_t = torch.zeros_like(c.pen)
        lam_m = torch.zeros(self.B, A, 2, device=self.device)
        lam_f = torch.zeros(self.B, 3, device=self.device)
        m_act = self.act_mass[..., None]

        # 3. solver iterations
        for _ in range(self.phys.solver_iterations):
            # drive motors: push the velocity towards v_des within the force budget
            v = self.vel[:, :A, :2]
            lam_new = clamp_norm(lam_m + m_act * (self.v_des - v), budget)
            self.vel[:, :A, :2] = v + (lam_new - lam_m) / m_act
            lam_m = lam_new
            # contacts
            va, vb = self.vel[:, ia], self.vel[:, ib]
            vn = (vb * jnb).sum(-1) - (va * jna).sum(-1)
            vt = (vb * jtb).sum(-1) - (va * jta).sum(-1)
            ln_new = (lam_n - kn * (vn + bias)).clamp_min(0.0)
            dln = ln_new - lam_n
            lam_n = ln_new
            lim = self.mu * lam_n
            lt_new = torch.minimum(torch.maximum(lam_t - kt * vt, -lim), lim)
            dlt = lt_new - lam_t
            lam_t = lt_new
            dln, dlt = dln[..., None], dlt[..., None]
            self.vel.index_add_(1, ib, dln * mnb + dlt * mtb)
            self.vel.index_add_(1, ia, -(dln * mna + dlt * mta))
            if self.has_box:
                lam_f = self._box_ground_friction(lam_f)

        # 4. integrate
        K = self.K
        self.pose[:, :K, :2] += self.vel[:, :K, :2] * dt
        self.pose[:, :K, 2] = wrap_angle(self.pose[:, :K, 2] + self.vel[:, :K, 2] * dt)

        # 5. position correction (velocities untouched) and collision flags
        va, vb = self.vel[:, ia], self.vel[:, ib]
        vn = (vb * jnb).sum(-1) - (va * jna).sum(-1)
        pen = c.pen - vn * dt
        corr = self.phys.position_correction * (pen - self.phys.slop).clamp_min(0.0)
        share = corr / (ima + imb).clamp_min(1e-9)
        push = n * share[..., None]
        delta = torch.zeros(self.B, K + 1, 2, device=self.device)
        delta.index_add_(1, ib, push * (imb / cb)[..., None])
        delta.index_add_(1, ia, -push * (ima / ca)[..., None])
        self.pose[:, :K, :2] += delta[:, :K]
        touch = (pen > -self.phys.collision_margin).float()
        hits = torch.zeros(self.B, K + 1, device=self.device)
        hits.index_add_(1, ia, touch * self.flag_a).index_add_(1, ib, touch * self.flag_b)
        return hits

    def _box_ground_friction(self, lam_f: torch.Tensor) -> torch.Tensor:
        """Coulomb friction of the box on the floor as one generalised impulse (Fx, Fy, tau/rho).

        The admissible set is the ball |(Fx, Fy, tau/rho)| <= mu m g (an ellipsoidal limit
        surface with radius of gyration rho; for a uniform square rho = a / sqrt(6) = 0.49 m vs
        0.46 m mean pressure radius). Projecting onto it in the kinetic-energy metric gives the
        maximum-dissipation impulse: a box at rest stays at rest under any push below the limit,
        and a sliding box decelerates at exactly mu g.
        """
        k = self.obj
        m = self.box_mass
        v = self.vel[:, k]
        g = torch.stack((v[:, 0], v[:, 1], self.box_rho * v[:, 2]), -1) * m[:, None]
        lam_new = clamp_norm(lam_f + g, self.box_mu * m * self.phys.gravity * self.dt)
        d = (lam_new - lam_f) / m[:, None]
        self.vel[:, k] = v - d * v.new_tensor([1.0, 1.0, 1.0 / self.box_rho])
        return lam_new

    # ---- contact detection ------------------------------------------------------------------
    def detect(self) -> Contacts:
        """All contact candidates of this sub-step, in the order of the static lists."""
        B, dev = self.B, self.device
        p = self.pose
        normals, arms_a, arms_b, pens = [], [], [], []
        discs = p[:, self.disc_idx, :2]                       # (B, D, 2)
        r = self.disc_r                                        # (D,)

        if self._dd_i.numel():
            pa, pb = discs[:, self._dd_i], discs[:, self._dd_j]
            d = pb - pa
            dist = torch.linalg.vector_norm(d, dim=-1)
            nrm = torch.where((dist > 1e-6)[..., None], d / dist.clamp_min(1e-6)[..., None],
                              d.new_tensor([1.0, 0.0]))
            ra, rb = r[self._dd_i], r[self._dd_j]
            normals.append(nrm)
            arms_a.append(nrm * ra[:, None])
            arms_b.append(-nrm * rb[:, None])
            pens.append(ra + rb - dist)

        if self.has_box:
            box = p[:, self.obj]                                # (B, 3)
            cos, sin = torch.cos(box[:, 2:3]), torch.sin(box[:, 2:3])
            local = to_frame(p[:, :self.n, :2] - box[:, None, :2], cos, sin)
            h = self.box_half
            nl, ql, pen = _disc_vs_rect(local, h, h, self.robot.radius)
            nw = rotate(nl, cos, sin)
            normals.append(nw)
            arms_a.append(rotate(ql, cos, sin))
            arms_b.append(-nw * self.robot.radius)
            pens.append(pen)

        a = self.arena
        x, y = discs[..., 0], discs[..., 1]
        left = (x - a.x_min) < (a.x_max - x)
        low = (y - a.y_min) < (a.y_max - y)
        one = torch.ones_like(x)
        zero = torch.zeros_like(x)
        nx = torch.stack((torch.where(left, one, -one), zero), -1)
        ny = torch.stack((zero, torch.where(low, one, -one)), -1)
        pen_x = r - torch.where(left, x - a.x_min, a.x_max - x)
        pen_y = r - torch.where(low, y - a.y_min, a.y_max - y)
        wall_n = torch.stack((nx, ny), 2).reshape(B, -1, 2)   # (B, 2D, 2): per disc x then y
        normals.append(wall_n)
        arms_a.append(torch.zeros_like(wall_n))
        arms_b.append(-wall_n * r.repeat_interleave(2)[:, None])
        pens.append(torch.stack((pen_x, pen_y), 2).reshape(B, -1))

        if self.has_box:
            box = p[:, self.obj]
            cos, sin = torch.cos(box[:, 2:3]), torch.sin(box[:, 2:3])
            signs = box.new_tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
            arms = rotate(signs * self.box_half, cos, sin)       # (B, 4, 2)
            corner = box[:, None, :2] + arms
            bl = box[:, 0:1] < 0.5 * (a.x_min + a.x_max)
            bd = box[:, 1:2] < 0.5 * (a.y_min + a.y_max)
            pxk = torch.where(bl, a.x_min - corner[..., 0], corner[..., 0] - a.x_max)
            pyk = torch.where(bd, a.y_min - corner[..., 1], corner[..., 1] - a.y_max)
            pen2, idx = torch.cat((pxk, pyk), 1).view(B, 2, 4).topk(2, dim=2)   # (B, 2, 2)
            arm2 = torch.gather(arms[:, None].expand(B, 2, 4, 2), 2,
                                idx[..., None].expand(B, 2, 2, 2))
            one1 = torch.ones_like(box[:, 0:1])
            zero1 = torch.zeros_like(one1)
            nxb = torch.cat((torch.where(bl, one1, -one1), zero1), -1)      # (B, 2)
            nyb = torch.cat((zero1, torch.where(bd, one1, -one1)), -1)
            nb = torch.stack((nxb, nyb), 1)[:, :, None].expand(B, 2, 2, 2)
            normals.append(nb.reshape(B, 4, 2))
            arms_a.append(torch.zeros(B, 4, 2, device=dev))
            arms_b.append(arm2.reshape(B, 4, 2))
            pens.append(pen2.reshape(B, 4))

        if self.gate is not None:
            g = self.gate
            gy = self.gate_y[:, None]                            # (B, 1)
            upper = y > gy
            big = 2.0 * (a.y_max - a.y_min)
            # posts: [gy + w/2, gy + w/2 + big] above, [gy - w/2 - big, gy - w/2] below
            cy = torch.where(upper, gy + 0.5 * g.width + 0.5 * big, gy - 0.5 * g.width - 0.5 * big)
            local = torch.stack((x - g.x, y - cy), -1)
            nl, ql, pen = _disc_vs_rect(local, 0.5 * g.depth, 0.5 * big, r)
            normals.append(nl)
            arms_a.append(torch.zeros_like(nl))
            arms_b.append(-nl * r[:, None])
            pens.append(pen)

        return Contacts(torch.cat(normals, 1), torch.cat(arms_a, 1), torch.cat(arms_b, 1),
                        torch.cat(pens, 1))

    # ---- diagnostics --------------------------------------------------------------------------
    def momentum(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Linear (B, 2) and angular (B,) momentum about the origin of the free (rotating) bodies.

        Robots count with their linear momentum only (their yaw is held by the controller).
        """
        K = self.K
        mass = 1.0 / self.inv_mass[:, :K].clamp_min(1e-12) * (self.inv_mass[:, :K] > 0)
        lin = (mass[..., None] * self.vel[:, :K, :2]).sum(1)
        inertia = torch.where(self.inv_inertia[:, :K] > 0,
                              1.0 / self.inv_inertia[:, :K].clamp_min(1e-12),
                              torch.zeros_like(mass))
        r, v = self.pose[:, :K, :2], self.vel[:, :K, :2]
        ang = (mass * (r[..., 0] * v[..., 1] - r[..., 1] * v[..., 0])).sum(1) \
            + (inertia * self.vel[:, :K, 2]).sum(1)
        return lin, ang
