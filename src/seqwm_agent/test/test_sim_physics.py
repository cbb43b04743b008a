"""Physics of the Multi-Quad simulator: friction, pushing, contacts, command limits, lag, yaw."""
from __future__ import annotations

import math

import pytest
import torch

from seqwm_agent.sim import MultiQuadEnv, load_task_config
from seqwm_agent.sim.config import ArenaConfig, PhysicsConfig, RobotConfig
from seqwm_agent.sim.physics import PlanarWorld
from seqwm_agent.sim.scripted import pushbox_formation, pushbox_formation_start

QUIET = {'randomize': False, 'noise': {'pos_std': 0.0, 'yaw_std': 0.0, 'delay_max_s': 0.0}}


def quiet_env(task: str, num_envs: int = 1, **over) -> MultiQuadEnv:
    """No randomisation, noise or delay: outcomes follow from the physics alone."""
    cfg = load_task_config(task, overrides={**QUIET, **over})
    return MultiQuadEnv(cfg, num_envs=num_envs, seed=0, auto_reset=False)


def box_env(mu: float = 0.5, mass: float = 6.0) -> MultiQuadEnv:
    """PushBox with the robots parked far from the box at the arena's left end."""
    env = quiet_env('pushbox', box_mass=mass, box_friction=mu)
    env.set_state(robots=torch.tensor([[[0.5, -2.0, 0.0], [0.5, 2.0, 0.0]]]),
                  box=torch.tensor([[3.0, 0.0, 0.3]]))
    return env


def test_free_box_stays_still_while_robots_move_elsewhere():
    env = box_env()
    start = env.snapshot().box.clone()
    for _ in range(50):
        env.step_commands(torch.tensor([[[0.0, 0.5, 0.5], [0.0, -0.5, -0.5]]]))
    assert torch.equal(env.snapshot().box, start)
    assert env.snapshot().robots[0, :, 1].abs().max() < 2.0   # the robots did move


@pytest.mark.parametrize('v0, mu', [(1.5, 0.5), (2.0, 0.3)])
def test_friction_stops_a_pushed_box_after_v2_over_2_mu_g(v0: float, mu: float):
    env = box_env(mu=mu)
    world = env.world
    x0 = world.pose[0, 2, 0].item()
    world.vel[0, 2, 0] = v0
    g, dt = env.cfg.physics.gravity, env.cfg.physics.substep_dt
    world.step(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3))
    decel = (v0 - world.vel[0, 2, 0].item()) / env.cfg.physics.control_dt
    assert decel == pytest.approx(mu * g, rel=1e-3)          # Coulomb: exactly mu g
    for _ in range(30):
        env.step_commands(torch.zeros(1, 2, 3))
    assert world.vel[0, 2].abs().max().item() == 0.0           # it stops, and stays stopped
    dist = world.pose[0, 2, 0].item() - x0
    # a free slide is integrated exactly (trapezoid); only the sub-step in which the box comes
    # to rest overshoots, by at most mu g dt^2 / 8
    ideal = v0 ** 2 / (2 * mu * g)
    assert ideal - 1e-4 <= dist <= ideal + mu * g * dt * dt / 8 + 1e-4
    assert world.pose[0, 2, 2].item() == pytest.approx(0.3)    # no spin from a straight slide


def run_formation(offsets: list[float], num_envs: int = 48, seed: int = 0):
    """Scripted straight pushes from just behind the box, with the default randomisation."""
    cfg = load_task_config('pushbox', overrides={'num_robots': len(offsets)})
    env = MultiQuadEnv(cfg, num_envs=num_envs, seed=seed, auto_reset=False)
    env.set_state(robots=pushbox_formation_start(env.snapshot(), offsets, cfg.box_size,
                                                 cfg.robot))
    box0 = env.snapshot().box.clone()
    done = torch.zeros(num_envs, dtype=torch.bool)
    success = torch.zeros(num_envs, dtype=torch.bool)
    for _ in range(cfg.max_steps):
        _, _, term, trunc, info = env.step_commands(
            pushbox_formation(env.snapshot(), offsets, cfg.robot))
        success |= info['success'] & ~done
        done |= term | trunc
    moved = torch.linalg.vector_norm(env.snapshot().box[:, :2] - box0[:, :2], dim=-1)
    return success, moved


def test_a_lone_robot_cannot_push_the_box_to_the_target_but_two_can():
    alone, moved_alone = run_formation([0.0])
    pair, _ = run_formation([-0.3, 0.3])
    assert not alone.any()
    assert moved_alone.max() < 0.5           # only the bump of its first contact
    assert pair.float().mean() >= 0.9


def frictionless_world(contact_friction: float = 0.0) -> PlanarWorld:
    """Robot + box on a frictionless floor with the robot's drive switched off.

    Position correction is switched off (slop 1 m): it moves bodies by millimetres without
    touching velocities, which shifts angular momentum about the origin slightly (~0.1 %);
    what is pinned here is the impulse solver.
    """
    phys = PhysicsConfig(contact_friction=contact_friction, slop=1.0)
    world = PlanarWorld(num_envs=3, num_robots=1, robot=RobotConfig(max_push_force=1e-9),
                        physics=phys, arena=ArenaConfig(), box_size=1.2)
    every = torch.ones(3, dtype=torch.bool)
    world.set_box(torch.full((3,), 6.0), torch.zeros(3), every)
    return world


@pytest.mark.parametrize('contact_friction', [0.0, 0.5])
def test_robot_box_impacts_conserve_momentum(contact_friction: float):
    world = frictionless_world(contact_friction)
    # the robot hits the box centred, off-centre and at a slant, moving at 1 m/s
    robots = torch.tensor([[2.0, 0.0, 0.0], [2.0, 0.45, 0.0], [2.0, -0.3, 0.5]])
    box = torch.tensor([[3.0, 0.0, 0.0], [3.0, 0.0, 0.1], [3.0, 0.0, -0.2]])
    world.place(torch.stack((robots, box), 1), torch.ones(3, dtype=torch.bool))
    heading = robots[:, 2]
    cmd = torch.stack((torch.ones(3), torch.zeros(3), torch.zeros(3)), -1)[:, None]
    world.v_ref = cmd.permute(2, 0, 1).clone()             # controller already at 1 m/s
    world.v_des = torch.stack((torch.cos(heading), torch.sin(heading)))[..., None]
    world.vel[:, 0, 0], world.vel[:, 0, 1] = torch.cos(heading), torch.sin(heading)
    lin0, ang0 = world.momentum()
    for _ in range(10):
        world.step(cmd, cmd)
    lin1, ang1 = world.momentum()
    assert torch.allclose(lin1, lin0, atol=1e-4)             # impulses are equal and opposite
    assert (world.vel[:, 1, 0] > 0.3).all()                 # the box was hit
    if contact_friction == 0.0:      # normal impulses exert no torque on the robot's disc
        assert torch.allclose(ang1, ang0, atol=1e-4)
    assert (world.vel[1:, 1, 2].abs() > 1e-3).all()          # off-centre hits spin the box


def test_head_on_robots_conserve_momentum_and_do_not_sink_into_each_other():
    world = PlanarWorld(num_envs=1, num_robots=2, robot=RobotConfig(max_push_force=1e-9),
                        physics=PhysicsConfig(), arena=ArenaConfig())
    world.place(torch.tensor([[[3.0, 0.0, 0.0], [4.0, 0.1, math.pi]]]),
                torch.ones(1, dtype=torch.bool))
    cmd = torch.tensor([[[1.0, 0.0, 0.0], [0.5, 0.0, 0.0]]])
    world.v_ref = cmd.permute(2, 0, 1).clone()
    world.v_des = torch.tensor([[[1.0, -0.5]], [[0.0, 0.0]]])
    world.vel[0, 0, 0], world.vel[0, 1, 0] = 1.0, -0.5
    lin0, _ = world.momentum()
    for _ in range(10):
        world.step(cmd, cmd)
        gap = torch.linalg.vector_norm(world.pose[0, 1, :2] - world.pose[0, 0, :2])
        assert gap > 0.6 - 0.01
    assert torch.allclose(world.momentum()[0], lin0, atol=1e-4)


def max_wall_penetration(env: MultiQuadEnv) -> float:
    """Deepest overlap of any robot or box corner with the arena walls."""
    a, r = env.cfg.arena, env.cfg.robot.radius
    p = env.snapshot()
    x, y = p.robots[0, :, 0], p.robots[0, :, 1]
    pens = [r - (x - a.x_min), r - (a.x_max - x), r - (y - a.y_min), r - (a.y_max - y)]
    if p.box is not None:
        from seqwm_agent.sim.geometry import square_corners
        c = square_corners(p.box[0], env.cfg.box_size / 2)
        pens += [a.x_min - c[:, 0], c[:, 0] - a.x_max, a.y_min - c[:, 1], c[:, 1] - a.y_max]
    return max(float(t.max()) for t in pens)


def test_penetration_does_not_grow_when_robots_press_the_box_into_a_wall():
    env = quiet_env('pushbox')
    env.set_state(robots=torch.tensor([[[5.2, 0.3, 0.0], [5.2, -0.3, 0.0]]]),
                  box=torch.tensor([[6.5, 0.0, 0.05]]))
    depth = []
    for _ in range(80):
        env.step_commands(torch.tensor([[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]]))
        depth.append(max_wall_penetration(env))
    assert env.snapshot().box[0, 0] > 7.0                     # it did reach the wall
    assert max(depth) < 0.03                                  # the impact at ~0.9 m/s
    assert max(depth[40:]) <= env.cfg.physics.slop            # pressed: within the slop
    assert max(depth[60:]) <= max(depth[40:60]) + 1e-4        # and not creeping


def test_commands_beyond_the_limits_are_clamped_to_the_controller_limits():
    # a large room, so that no wall redirects the robots (contacts may, commands may not)
    env = quiet_env('gate', arena={'x_min': 0.0, 'x_max': 30.0, 'y_min': -15.0, 'y_max': 15.0})
    env.set_state(robots=torch.tensor([[[10.0, -5.0, 0.3], [10.0, 5.0, -0.2]]]))
    lim = env.action_limits
    for k in range(40):
        cmd = torch.tensor([[[5.0, -3.0, 2.0], [-7.0, 9.0, -4.0]]])
        if k % 2:
            env.step(cmd)                                     # actions beyond [-1, 1] too
        else:
            env.step_commands(cmd)
        v = env.world.vel[0, :2]                              # (n, 3) world frame
        yaw = env.snapshot().robots[0, :, 2]
        vb_x = torch.cos(yaw) * v[:, 0] + torch.sin(yaw) * v[:, 1]
        vb_y = -torch.sin(yaw) * v[:, 0] + torch.cos(yaw) * v[:, 1]
        assert (vb_x.abs() <= lim[0] + 1e-5).all() and (vb_y.abs() <= lim[1] + 1e-5).all()
        assert (v[:, 2].abs() <= lim[2] + 1e-6).all()
    assert v[:, 2].abs().min() > 0.99 * lim[2]                 # saturated, not just small


def test_velocity_follows_the_configured_first_order_lag():
    tau, tau_yaw = 0.3, 0.12
    env = quiet_env('gate', robot={'lag_tau_lin': tau, 'lag_tau_yaw': tau_yaw})
    env.set_state(robots=torch.tensor([[[1.0, -1.5, 0.0], [1.0, 1.5, 0.0]]]))
    dt = env.cfg.physics.control_dt
    cmd = torch.tensor([[[0.8, 0.0, 0.4], [0.0, -0.5, 0.0]]])
    for k in range(1, 16):
        env.step_commands(cmd)
        t = k * dt
        v = env.world.vel[0]
        yaw = env.snapshot().robots[0, 0, 2]
        fwd = torch.cos(yaw) * v[0, 0] + torch.sin(yaw) * v[0, 1]
        assert fwd.item() == pytest.approx(0.8 * (1 - math.exp(-t / tau)), abs=2e-3)
        assert v[0, 2].item() == pytest.approx(0.4 * (1 - math.exp(-t / tau_yaw)), abs=1e-4)
        assert v[1, 1].item() == pytest.approx(-0.5 * (1 - math.exp(-t / tau)), abs=1e-4)


def test_actuation_delay_holds_the_previous_command_for_the_delay():
    env = quiet_env('gate', noise={'pos_std': 0.0, 'yaw_std': 0.0, 'delay_max_s': 0.05})
    env.set_state(robots=torch.tensor([[[1.0, -1.5, 0.0], [1.0, 1.5, 0.0]]]))
    delay, substeps = 1, env.cfg.physics.substeps
    env.world.delay[:] = delay                                 # sub-steps on the old command
    cmd = torch.tensor([[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    env.step_commands(cmd)
    tau, dt = env.cfg.robot.lag_tau_lin, env.cfg.physics.substep_dt
    expected = 1 - math.exp(-(substeps - delay) * dt / tau)    # lag ran only after the delay
    assert env.world.vel[0, 0, 0].item() == pytest.approx(expected, abs=1e-4)


def test_yaw_stays_wrapped_while_a_robot_spins_for_many_turns():
    env = quiet_env('gate')
    prev = env.snapshot().robots[0, 0, 2].item()
    crossings = 0
    for _ in range(300):
        env.step_commands(torch.tensor([[[0.0, 0.0, 0.5], [0.0, 0.0, -0.5]]]))
        yaw = env.snapshot().robots[0, :, 2]
        assert (yaw > -math.pi).all() and (yaw <= math.pi).all()
        crossings += int(yaw[0].item() < prev - math.pi)
        prev = yaw[0].item()
    assert crossings >= 2                                      # it did wrap (30 s x 0.5 rad/s)
