"""Evaluation reports Gate progress (robots through the opening) that a 0 % success rate hides."""
from __future__ import annotations

import torch

from seqwm_agent.baselines.env import default_chain
from seqwm_agent.sim import MultiQuadEnv, load_task_config
from seqwm_agent.train.evaluate import run_episodes
from seqwm_agent.train.team import ChainedTeam


class _MiddleRobotThroughTheOpening(ChainedTeam):
    """Robot 2 of 3 (its lane in line with the opening) heads for the opening's centre, seen in
    its own frame, then straight on; the outer two, whose lanes end at the wall, stay put."""

    def __init__(self, cfg, episodes: int) -> None:
        super().__init__(cfg.num_robots, default_chain(cfg), list(cfg.action_limits), episodes)
        names = MultiQuadEnv(cfg, 1).obs_spec()
        self.dx, self.dy, self.passed = (names.index(k) for k in
                                         ('gate.dx', 'gate.dy', 'self.passed'))

    def act(self, obs, tick=None):
        me = obs[:, 1]
        aim = torch.stack((me[:, self.dx], me[:, self.dy]), -1)
        aim = aim / aim.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        aim = torch.where(me[:, self.passed, None] > 0.5, torch.tensor([1.0, 0.0]), aim)
        a = torch.zeros(obs.shape[0], self.n, 3)
        a[:, 1, 0], a[:, 1, 1] = aim[:, 0], (2 * aim[:, 1]).clamp(-1, 1)   # vy limit is half vx's
        return self._through(a)


def test_gate_evaluation_counts_the_robots_that_got_through_the_opening():
    cfg = load_task_config('gate', {'num_robots': 3})
    res = run_episodes([], cfg, None, 'none', 8, seed=7, policy='scripted',
                       team=_MiddleRobotThroughTheOpening(cfg, 8))
    assert res['success_rate'] == 0.0
    assert res['mean_robots_passed'] == 1.0     # the middle robot, in every episode
    assert res['all_passed_rate'] == 0.0


def test_tasks_without_an_opening_for_robots_report_no_pass_count():
    cfg = load_task_config('pushbox', {'num_robots': 2})

    class Still(ChainedTeam):
        def act(self, obs, tick=None):
            return self._through(torch.zeros(obs.shape[0], self.n, 3))

    res = run_episodes([], cfg, None, 'none', 2, seed=7, policy='scripted',
                       team=Still(2, default_chain(cfg), list(cfg.action_limits), 2))
    assert 'mean_robots_passed' not in res and 'all_passed_rate' not in res
