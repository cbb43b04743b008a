"""The observation builder: named elements, wrapped angles, ego-centric, same online as in sim."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqwm_agent.sim import MultiQuadEnv, Snapshot, load_task_config, obs_spec, observe
from seqwm_agent.sim.geometry import wrap_angle
from seqwm_agent.sim.observation import example_snapshot, pose_from_position_quaternion

TASK_ROBOTS = [('pushbox', n) for n in (1, 2, 3)] + [('gate', n) for n in (2, 3, 4, 5)] + \
    [('shepherd', n) for n in (1, 2, 3)]


@pytest.mark.parametrize('task, n', TASK_ROBOTS)
def test_every_observation_element_has_a_unique_name(task: str, n: int):
    cfg = load_task_config(task, overrides={'num_robots': n})
    spec = obs_spec(task, cfg)
    obs = observe(task, example_snapshot(cfg, batch=3), cfg)
    assert obs.shape == (3, n, len(spec))
    assert len(set(spec)) == len(spec)
    assert all(isinstance(name, str) and '.' in name for name in spec)
    env = MultiQuadEnv(cfg, num_envs=2)
    assert env.obs_spec() == spec and env.obs_dim == len(spec)
    assert env.reset().shape == (2, n, len(spec))
    mates = {name.split('.')[0] for name in spec if name.startswith('mate')}
    assert mates == {f'mate{m}' for m in range(n - 1)}


def test_observation_sizes_per_task_are_as_documented():
    dims = {(t, n): len(obs_spec(t, load_task_config(t, overrides={'num_robots': n})))
            for t, n in TASK_ROBOTS}
    for n in (1, 2, 3):
        assert dims[('pushbox', n)] == 18 + 6 * (n - 1)
        assert dims[('shepherd', n)] == 19 + 6 * (n - 1)
    for n in (2, 3, 4, 5):
        assert dims[('gate', n)] == 17 + 7 * (n - 1)


angles = st.floats(min_value=-50.0, max_value=50.0, allow_nan=False)
coords = st.floats(min_value=-3.0, max_value=9.0, allow_nan=False)


def random_snapshot(cfg, draw_xy, draw_yaw) -> Snapshot:
    snap = example_snapshot(cfg, batch=1)
    n = cfg.num_robots
    snap.robots = torch.tensor([[[draw_xy[2 * k], draw_xy[2 * k + 1], draw_yaw[k]]
                                 for k in range(n)]])
    obj = torch.tensor([[draw_xy[-2], draw_xy[-1], draw_yaw[-1]]])
    if snap.box is not None:
        snap.box = obj
    if snap.sheep is not None:
        snap.sheep = obj
    return snap


@settings(max_examples=60, deadline=None)
@given(task=st.sampled_from(['pushbox', 'gate', 'shepherd']),
       xy=st.lists(coords, min_size=8, max_size=8), yaw=st.lists(angles, min_size=4,
                                                                     max_size=4))
def test_wrapped_angle_differences_never_exceed_pi(task: str, xy: list, yaw: list):
    cfg = load_task_config(task, overrides={'num_robots': 3})
    snap = random_snapshot(cfg, xy, yaw)
    obs = observe(task, snap, cfg)[0]
    spec = obs_spec(task, cfg)
    for k, name in enumerate(spec):
        if name.endswith('.dyaw'):
            assert (obs[:, k].abs() <= math.pi + 1e-6).all(), name
        if 'sin' in name or 'cos' in name:
            assert (obs[:, k].abs() <= 1 + 1e-6).all(), name
    # the wrapped difference and its sin / cos describe the same angle
    for m in range(2):
        d = obs[:, spec.index(f'mate{m}.dyaw')]
        assert torch.allclose(torch.sin(d), obs[:, spec.index(f'mate{m}.sin_dyaw')], atol=1e-5)
        assert torch.allclose(torch.cos(d), obs[:, spec.index(f'mate{m}.cos_dyaw')], atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(a=angles, b=angles)
def test_wrap_angle_lands_in_minus_pi_to_pi_and_keeps_the_angle(a: float, b: float):
    d = wrap_angle(torch.tensor([a - b], dtype=torch.float64))
    assert -math.pi < d.item() <= math.pi
    assert math.isclose(math.cos(d.item()), math.cos(a - b), abs_tol=1e-9)
    assert math.isclose(math.sin(d.item()), math.sin(a - b), abs_tol=1e-9)


@settings(max_examples=40, deadline=None)
@given(task=st.sampled_from(['pushbox', 'gate', 'shepherd']),
       xy=st.lists(coords, min_size=8, max_size=8),
       yaw=st.lists(angles, min_size=4, max_size=4),
       turn=st.floats(-math.pi, math.pi), shift=st.tuples(st.floats(-2, 2), st.floats(-2, 2)))
def test_relative_elements_do_not_change_when_the_whole_scene_moves(task, xy, yaw, turn, shift):
    """Ego-centric: moving everything rigidly changes only the robot's own arena pose."""
    cfg = load_task_config(task, overrides={'num_robots': 3})
    snap = random_snapshot(cfg, xy, yaw)
    c, s = math.cos(turn), math.sin(turn)
    rot = torch.tensor([[c, -s], [s, c]])
    off = torch.tensor(shift)

    def move(p: torch.Tensor | None, has_yaw: bool) -> torch.Tensor | None:
        if p is None:
            return None
        q = p.clone()
        q[..., :2] = p[..., :2] @ rot.T + off
        if has_yaw:
            q[..., 2] = p[..., 2] + turn
        return q

    moved = Snapshot(robots=move(snap.robots, True), box=move(snap.box, True),
                     sheep=move(snap.sheep, True), target=move(snap.target, False),
                     gate=move(snap.gate, False))
    a, b = observe(task, snap, cfg)[0], observe(task, moved, cfg)[0]
    for k, name in enumerate(obs_spec(task, cfg)):
        if name.startswith('self.') and name != 'self.passed':
            continue
        if name.endswith('passed'):     # x past the gate is an arena-frame test
            continue
        if name.startswith(('gate_left', 'gate_right')) and turn != 0.0:
            continue                    # the gate wall runs along the arena's y axis
        assert torch.allclose(a[:, k], b[:, k], atol=1e-3), name


@pytest.mark.parametrize('task', ['pushbox', 'gate', 'shepherd'])
def test_agent_side_observation_from_named_poses_equals_the_simulators(task: str):
    """The agent node path: names + (position, quaternion) -> Snapshot -> observe."""
    cfg = load_task_config(task, overrides={'noise': {'pos_std': 0.0, 'yaw_std': 0.0}})
    env = MultiQuadEnv(cfg, num_envs=1, seed=3)
    for _ in range(5):
        env.step(torch.rand(1, cfg.num_robots, 3) * 2 - 1)
    truth = env.snapshot()
    names = [f'go2w_{k + 1}' for k in range(cfg.num_robots)]
    poses = {}
    bodies = list(zip(names, truth.robots[0]))
    if truth.box is not None:
        bodies.append(('box', truth.box[0]))
    if truth.sheep is not None:
        bodies.append(('sheep', truth.sheep[0]))
    for name, (x, y, yaw) in bodies:
        half = 0.5 * float(yaw)
        quat = (0.0, 0.0, math.sin(half), math.cos(half))          # as mocap delivers it
        poses[name] = pose_from_position_quaternion((float(x), float(y), 0.3), quat)
    target = None if truth.target is None else truth.target[0].tolist()
    gate = None if truth.gate is None else truth.gate[0].tolist()
    online = Snapshot.from_named_poses(task, cfg, names, poses, target=target, gate=gate)
    assert torch.allclose(observe(task, online, cfg), env.observe(), atol=1e-5)


def test_missing_body_is_named_in_the_error():
    cfg = load_task_config('pushbox')
    poses = {'go2w_1': (1.0, 0.0, 0.0), 'go2w_2': (1.0, 1.0, 0.0)}
    with pytest.raises(KeyError, match="'box'"):
        Snapshot.from_named_poses('pushbox', cfg, ['go2w_1', 'go2w_2'], poses)


def test_nominal_task_parameters_fill_in_for_a_fixed_arena():
    cfg = load_task_config('gate')
    poses = {'a': (1.0, -0.75, 0.0), 'b': (1.0, 0.75, 0.0)}
    snap = Snapshot.from_named_poses('gate', cfg, ['a', 'b'], poses)
    assert snap.gate.tolist() == [[cfg.gate_x, cfg.gate_y]]
    assert snap.target.shape == (1, 2, 2)
    assert observe('gate', snap, cfg).shape == (1, 2, len(obs_spec('gate', cfg)))


def test_observe_rejects_params_of_another_task():
    with pytest.raises(ValueError, match='params are for'):
        observe('gate', example_snapshot(load_task_config('pushbox')), load_task_config('pushbox'))
