"""Task logic: Gate for 2-5 robots with collision flags, the fleeing sheep, herding, PushBox."""
from __future__ import annotations

import pytest
import torch

from seqwm_agent.sim import MultiQuadEnv, load_task_config
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
