"""Pictures of an episode: a PNG of the trajectories and an animated GIF."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from seqwm_agent.sim import MultiQuadEnv
from seqwm_agent.sim import load_task_config
from seqwm_agent.sim.observation import Snapshot
from seqwm_agent.sim.render import (EpisodeRecorder, gate_passes, render_behaviour, render_gif,
                                    render_png)


@pytest.mark.parametrize('task', ['pushbox', 'gate', 'shepherd'])
def test_an_episode_renders_to_png_and_gif(task: str, tmp_path):
    env = MultiQuadEnv(task, num_envs=2, seed=0)
    rec = EpisodeRecorder(env, env_index=1)
    rec.record()
    for _ in range(12):
        env.step(torch.rand(2, env.num_robots, 3) * 2 - 1)
        rec.record()
    png = render_png(rec.frames, env.cfg, tmp_path / f'{task}.png')
    gif = render_gif(rec.frames, env.cfg, tmp_path / f'{task}.gif', stride=2)
    with Image.open(png) as im:
        assert im.format == 'PNG' and im.width > 300 and im.height > 200
    with Image.open(gif) as im:
        assert im.format == 'GIF' and im.n_frames == 7


def test_rendering_nothing_is_an_error(tmp_path):
    env = MultiQuadEnv('pushbox', num_envs=1)
    with pytest.raises(ValueError, match='no frames'):
        render_png([], env.cfg, tmp_path / 'x.png')


def test_the_behaviour_figure_marks_each_robot_passing_the_gate_in_order(tmp_path):
    """Fig. 6: robot 3 is fastest, robot 1 never passes; the passing order says so."""
    cfg = load_task_config('gate', overrides={'num_robots': 3})
    speeds = torch.tensor([0.0, 0.1, 0.3])            # m per tick
    gate = torch.tensor([[cfg.gate_x, 0.0]])
    frames = [Snapshot(robots=torch.stack([1.0 + speeds * i, torch.zeros(3), torch.zeros(3)],
                                          -1)[None], gate=gate) for i in range(40)]
    commands = [[[float(v) * 10, 0.0, 0.0] for v in speeds] for _ in frames]
    first = [next(i for i in range(40) if 1.0 + float(v) * i > cfg.gate_x + cfg.pass_margin)
             * 0.1 for v in speeds[1:]]
    assert gate_passes(frames, cfg, 0.1) == [None, pytest.approx(first[0]),
                                               pytest.approx(first[1])]
    data = render_behaviour(frames, commands, cfg, 0.1, tmp_path / 'b.png', title='t')
    assert data['pass_order'] == [3, 2] and data['ticks'] == 40
    with Image.open(tmp_path / 'b.png') as im:
        assert im.format == 'PNG' and im.height > 300
