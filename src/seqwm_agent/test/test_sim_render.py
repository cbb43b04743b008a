"""Pictures of an episode: a PNG of the trajectories and an animated GIF."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from seqwm_agent.sim import MultiQuadEnv
from seqwm_agent.sim.render import EpisodeRecorder, render_gif, render_png


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
