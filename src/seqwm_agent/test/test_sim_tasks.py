"""Task logic: Gate (both variants) for 2-5 robots with contacts, the fleeing sheep, herding, PushBox."""
from __future__ import annotations

import pytest
import torch

from seqwm_agent.sim import MultiQuadEnv, load_task_config
from seqwm_agent.sim.config import ConfigError
from seqwm_agent.sim.geometry import boxes_overlap
from seqwm_agent.sim.observation import obs_spec
from seqwm_agent.sim.scripted import gate_queue, shepherd_herd

QUIET = {'randomize': False, 'noise': {'pos_std': 0.0, 'yaw_std': 0.0, 'delay_max_s': 0.0}}


@pytest.mark.parametrize('n', [2, 3, 4, 5])
def test_gate_is_solved_one_robot_at_a_time_for_2_to_5_robots(n: int):
    # generous time: this pins the task logic (passing, targets, success), not a speed
    cfg = load_task_config('gate', overrides={'num_robots': n, 'episode_s': 45.0})
    env = MultiQuadEnv(cfg, num_envs=3, seed=n, auto_reset=False)
    phase = torch.zeros(3, n, dtype=torch.long)
    done = torch.zeros(3, dtype=torch.bool)
    success = torch.zeros(3, dtype=torch.bool)
    collided = torch.zeros(3, dtype=torch.bool)
    passed_all = torch.zeros(3, dtype=torch.bool)
    for _ in range(cfg.max_steps):
        cmd, phase = gate_queue(env.snapshot(), phase, cfg.robot)
        _, _, term, trunc, info = env.step_commands(cmd)
        live = ~done
        success |= info['success'] & live
        collided |= info['collision'] & live
        passed_all |= info['passed'].all(1) & live
        done |= term | trunc
        if done.all():
            break
    assert success.all() and passed_all.all() and not collided.any()


def test_gate_contact_is_flagged_penalised_and_ends_the_episode():
    env = MultiQuadEnv(load_task_config('gate', overrides=QUIET), num_envs=3, seed=0)
    robots = env.snapshot().robots.clone()
    robots[0, :, :2] = torch.tensor([[2.0, 0.0], [2.7, 0.0]])      # env 0: head-on
    robots[1, 0, :2] = torch.tensor([3.1, 1.2])                     # env 1: at the wall
    env.set_state(robots=robots)
    cmd = torch.zeros(3, 2, 3)
    cmd[0, 0, 0] = 1.0
    cmd[1, 0, 0] = 1.0
    hit = torch.zeros(3, dtype=torch.bool)
    for _ in range(8):
        _, rew, term, trunc, info = env.step_commands(cmd)
        for e in range(3):
            if info['collision'][e] and not hit[e]:
                hit[e] = True
                assert term[e] and not trunc[e]
                # the clipped shaped term and the unclipped contact cost on top
                assert rew[e] <= (-env.cfg.reward.collision_penalty + 0.5
                                  - env.cfg.reward.contact_cost)
        cmd[hit] = 0.0
    assert hit.tolist() == [True, True, False]


def test_gate_contact_cost_is_paid_outside_the_clip_of_the_shaped_reward():
    rewards = []
    for cost in (0.0, 5.0):
        cfg = load_task_config('gate', overrides=QUIET | {'reward': {'contact_cost': cost}})
        env = MultiQuadEnv(cfg, num_envs=1, seed=0)
        robots = env.snapshot().robots.clone()
        robots[0, 0, :2] = torch.tensor([3.1, 1.2])                 # at the wall beside the opening
        env.set_state(robots=robots)
        cmd = torch.zeros(1, 2, 3)
        cmd[0, 0, 0] = 1.0
        for _ in range(8):
            _, rew, term, _, info = env.step_commands(cmd)
            if info['collision'][0]:
                rewards.append(float(rew[0]))
                break
    assert len(rewards) == 2 and rewards[1] == pytest.approx(rewards[0] - 5.0, abs=1e-5)
    assert rewards[0] >= -1.0                     # without it a contact is clipped with the rest


def test_gate_pays_for_each_robot_holding_its_target_until_all_are_there():
    # 3 robots past the opening, at rest; env e has its first e robots on their own targets.
    # Standing still earns on_target x the fraction on target (no progress, no contact); the
    # last robot arriving ends the episode with the success bonus (the stricter success).
    cfg = load_task_config('gate', overrides={**QUIET, 'num_robots': 3, 'success': 'targets'})
    env = MultiQuadEnv(cfg, num_envs=4, seed=0)
    target = env.task.target.clone()
    robots = env.snapshot().robots.clone()
    robots[..., :2] = target + torch.tensor([-0.6, 0.0])          # 0.6 m short of every target
    for e in range(4):
        robots[e, :e, :2] = target[e, :e]
    env.set_state(robots=robots)
    _, rew, term, _, info = env.step_commands(torch.zeros(4, 3, 3))
    r = cfg.reward
    expected = torch.tensor([r.on_target * k / 3 - r.time_penalty for k in range(4)])
    expected[3] += r.success_bonus
    assert torch.allclose(rew, expected, atol=1e-4)
    assert info['success'].tolist() == [False, False, False, True] and term[3] and not term[:3].any()


def test_gate_succeeds_when_every_robot_is_through_the_opening_without_contact():
    # The paper's Gate success (the default): all through, no contact, wherever the targets are.
    # env 0: all three through, apart; env 1: one still before the wall; env 2: all through but
    # two of them touching.
    cfg = load_task_config('gate', overrides={**QUIET, 'num_robots': 3})
    assert cfg.success == 'passed'
    env = MultiQuadEnv(cfg, num_envs=3, seed=0)
    gx = cfg.gate_x + cfg.pass_margin
    robots = env.snapshot().robots.clone()
    robots[..., 0] = gx + 0.5
    robots[..., 1] = torch.tensor([-1.5, 0.0, 1.5])
    robots[1, 2, 0] = cfg.start_x
    robots[2, 1, :2] = robots[2, 0, :2] + torch.tensor([0.0, 0.5])   # 0.5 m apart: contact
    env.set_state(robots=robots)
    _, rew, term, _, info = env.step_commands(torch.zeros(3, 3, 3))
    assert info['success'].tolist() == [True, False, False]
    assert info['collision'][2].any() and not info['collision'][:2].any()
    assert term.tolist() == [True, False, True]
    assert rew[0] > cfg.reward.success_bonus - 1.0 and rew[1] < 1.0
    strict = MultiQuadEnv(load_task_config('gate', overrides={**QUIET, 'num_robots': 3,
                                                              'success': 'targets'}), 3, seed=0)
    strict.set_state(robots=robots)
    assert not strict.step_commands(torch.zeros(3, 3, 3))[4]['success'].any()


def test_the_sheep_flees_the_nearest_dog_faster_when_closer():
    cfg = load_task_config('shepherd', overrides=QUIET)
    env = MultiQuadEnv(cfg, num_envs=3, seed=0, auto_reset=False)
    sheep = torch.tensor([[3.0, 0.0, 0.0]]).repeat(3, 1)
    dogs = torch.tensor([[[2.0, 0.0, 0.0], [3.0, -2.5 + 0.35, 0.0]],      # near dog behind
                         [[2.4, 0.0, 0.0], [3.0, -2.5 + 0.35, 0.0]],      # nearer, behind
                         [[0.4, 2.0, 0.0], [0.4, -2.0, 0.0]]])            # both beyond 3 m
    env.set_state(robots=dogs, sheep=sheep)
    for _ in range(10):
        env.step_commands(torch.zeros(3, 2, 3))
    moved = env.snapshot().sheep[:, :2] - sheep[:, :2]
    assert moved[0, 0] > 0.3 and moved[0, 1].abs() < 0.05              # straight away (+x)
    assert moved[1, 0] > moved[0, 0]                                  # closer dog: faster
    assert moved[2].abs().max() == 0.0                                 # nobody near: stays
    speed = env.world.vel[0, 2, :2].norm().item()
    assert speed == pytest.approx(cfg.flee_gain / torch.linalg.vector_norm(
        env.snapshot().sheep[0, :2] - env.snapshot().robots[0, 0, :2]).item(), rel=0.15)


def test_dogs_can_herd_the_sheep_through_the_gate():
    cfg = load_task_config('shepherd')
    env = MultiQuadEnv(cfg, num_envs=16, seed=2, auto_reset=False)
    done = torch.zeros(16, dtype=torch.bool)
    success = torch.zeros(16, dtype=torch.bool)
    for _ in range(cfg.max_steps):
        _, rew, term, trunc, info = env.step_commands(
            shepherd_herd(env.snapshot(), cfg.robot, cfg.pass_margin))
        success |= info['success'] & ~done
        done |= term | trunc
        if done.all():
            break
    assert success.float().mean() >= 0.9
    assert (env.snapshot().sheep[success, 0] > cfg.gate_x).all()


def test_shepherd_does_not_end_on_a_dog_touching_the_sheep_by_default():
    cfg = load_task_config('shepherd', overrides=QUIET)
    env = MultiQuadEnv(cfg, num_envs=1, seed=0)
    env.set_state(robots=torch.tensor([[[2.6, 0.0, 0.0], [1.0, 1.0, 0.0]]]),
                  sheep=torch.tensor([[3.0, 0.0, 0.0]]))
    _, _, term, _, info = env.step_commands(torch.zeros(1, 2, 3))
    assert info['collision_robot'].tolist() == [[True, False]]
    assert not term.item()


def test_pushbox_progress_is_rewarded_and_the_far_side_attracts():
    env = MultiQuadEnv(load_task_config('pushbox', overrides=QUIET), num_envs=1, seed=0)
    _, r_still, _, _, _ = env.step(torch.zeros(1, 2, 3))
    env.world.pose[0, 2, 0] += 0.1                     # the box moved 10 cm towards the target
    _, r_progress, _, _, _ = env.step(torch.zeros(1, 2, 3))
    assert r_progress.item() == pytest.approx(
        r_still.item() + env.cfg.reward.progress * 0.1, abs=0.02)
    # robots heading for the box's far side earn more than robots heading away from it
    env = MultiQuadEnv(load_task_config('pushbox', overrides=QUIET), num_envs=2, seed=0)
    toward = torch.tensor([[1.0, 0.4, 0.0], [1.0, -0.4, 0.0]])       # body frame, yaw 0
    _, rew, _, _, _ = env.step_commands(torch.stack((toward, -toward)))
    penalty = env.cfg.reward.time_penalty            # what standing still would earn
    assert rew[0] > -penalty > rew[1]


# ---- the paper variant (config/gate_paper.yaml) --------------------------------------------------
def test_oriented_boxes_overlap_only_where_they_share_area():
    h = torch.tensor([0.2, 0.05])
    c0, z = torch.zeros(2), torch.zeros(())
    # side by side just apart / just touching / overlapping
    assert not boxes_overlap(c0, z, h, torch.tensor([0.0, 0.11]), z, h)
    assert boxes_overlap(c0, z, h, torch.tensor([0.0, 0.09]), z, h)
    # a box turned 90 degrees: its long side now spans y
    assert boxes_overlap(c0, z, h, torch.tensor([0.0, 0.2]), torch.tensor(1.5708), h)
    # diagonal neighbours whose bounding circles overlap but the boxes do not (SAT needed)
    turned = torch.tensor(0.7854)
    assert not boxes_overlap(c0, turned, h, torch.tensor([0.2, -0.2]), turned, h)


def test_the_paper_variant_counts_only_trunk_contacts():
    cfg = load_task_config('gate_paper', overrides={'noise': QUIET['noise']})
    env = MultiQuadEnv(cfg, num_envs=3, seed=0, auto_reset=False)
    robots = env.snapshot().robots.clone()
    gx, hw = cfg.gate_x, cfg.gate_width / 2
    # env 0: legs (the footprint disc) against the post, trunk 0.11 m clear of it: not a contact
    robots[0, 0] = torch.tensor([gx, hw - 0.155 + 0.01, 0.0])
    # env 1: driving nose first into the wall beside the opening: a contact
    robots[1, 0] = torch.tensor([gx - 0.05 - 0.155 - 0.01, hw + 0.4, 0.0])
    # env 2: two robots side by side 0.32 m apart: legs clear, trunks clear
    robots[2, 0] = torch.tensor([2.0, 0.0, 0.0])
    robots[2, 1] = torch.tensor([2.0, 0.32, 0.0])
    env.set_state(robots=robots)
    cmd = torch.zeros(3, 2, 3)
    cmd[0, 0, 1] = 0.5                   # press sideways into the post
    cmd[1, 0, 0] = 1.0                   # drive into the wall
    hit = torch.zeros(3, dtype=torch.bool)
    for _ in range(10):
        _, rew, term, _, info = env.step_commands(cmd)
        hit |= info['collision']
        assert (term == info['collision']).all()
        if info['collision'][1]:
            assert rew[1] <= -cfg.paper_reward.contact * cfg.num_robots + 1.0
            cmd[1] = 0.0
    assert hit.tolist() == [False, True, False]


def test_a_realistic_footprint_contact_is_no_paper_contact():
    # the same pose against the post: a contact of the 0.3 m disc, not of the trunk
    for name, expected in (('gate', True), ('gate_paper', False)):
        cfg = load_task_config(name, overrides={'randomize': False, 'noise': QUIET['noise'],
                                                'robot': {'radius': 0.3}})
        env = MultiQuadEnv(cfg, num_envs=1, seed=0, auto_reset=False)
        robots = env.snapshot().robots.clone()
        robots[0, 0] = torch.tensor([cfg.gate_x, cfg.gate_width / 2 - 0.3 + 0.02, 0.0])
        env.set_state(robots=robots)
        cmd = torch.zeros(1, 2, 3)
        cmd[0, 0, 1] = 0.5
        seen = False
        for _ in range(5):
            seen |= bool(env.step_commands(cmd)[4]['collision'][0])
        assert seen == expected, name


def test_the_paper_variant_pays_progress_towards_the_opening_and_all_through_at_once():
    cfg = load_task_config('gate_paper', overrides={'noise': QUIET['noise']})
    env = MultiQuadEnv(cfg, num_envs=2, seed=0, auto_reset=False)
    cmd = torch.zeros(2, 2, 3)
    cmd[0, :, 0] = 0.5                   # env 0: both drive forward, 3 m apart: no crowding
    total = torch.zeros(2)
    for _ in range(5):
        total += env.step_commands(cmd)[1]
    assert total[0] > 0.5 and total[1].abs() < 1e-3
    # everyone placed through the opening: success on the next step, paid n per step left
    robots = env.snapshot().robots[:1].clone()
    robots[0, :, 0] = cfg.gate_x + cfg.pass_margin + 0.5
    env = MultiQuadEnv(cfg, num_envs=1, seed=0, auto_reset=False)
    env.set_state(robots=robots)
    _, r, term, _, info = env.step_commands(torch.zeros(1, 2, 3))
    left = cfg.max_steps - 1
    assert info['success'].item() and term.item()
    assert r.item() == pytest.approx(cfg.num_robots * left * cfg.paper_reward.all_through, abs=1.0)


def test_the_paper_variant_starts_every_episode_from_the_same_poses_on_a_1_5n_m_track():
    cfg = load_task_config('gate_paper', overrides={'num_robots': 5})
    assert cfg.arena.y_max - cfg.arena.y_min == pytest.approx(7.5)
    assert cfg.lane_offsets == pytest.approx([-3.0, -1.5, 0.0, 1.5, 3.0])
    assert cfg.episode_seconds == 30.0
    a = MultiQuadEnv(cfg, num_envs=4, seed=1).snapshot().robots
    b = MultiQuadEnv(cfg, num_envs=4, seed=2).snapshot().robots
    assert torch.equal(a, b) and torch.equal(a[0], a[3])
    assert (a[0, :, 0] == cfg.start_x).all()


def test_the_paper_variant_observes_an_id_and_no_target():
    spec = obs_spec('gate', load_task_config('gate_paper', overrides={'num_robots': 5}))
    assert 'self.id' in spec and not any(k.startswith('target') for k in spec)
    assert 'self.passed' in spec and 'gate_left.dx' in spec
    real = obs_spec('gate', load_task_config('gate', overrides={'num_robots': 5}))
    assert 'self.id' not in real and 'target.dx' in real


def test_an_unknown_gate_variant_is_refused_by_name():
    with pytest.raises(ConfigError, match='variant'):
        load_task_config('gate', overrides={'variant': 'easy'})
    with pytest.raises(ConfigError, match='success'):
        load_task_config('gate_paper', overrides={'success': 'targets'})
