"""World-model prediction error of seq / cen / dec on the same data (paper Sec. 5.4, Fig. 8).

The paper: random-action data, each architecture trained with Eq. 3 for a fixed number of
updates, then dynamics and reward errors on fresh data against the prediction horizon. Here:
`data_steps` random team transitions (one buffer shared by the three runs), `updates`
sequential updates per mode from the same initial weights and the same sampling seed, random
masking and order shuffles off (the comparison is of the architectures), then windows of
`horizon` steps from `test_steps` fresh transitions of other seeds. For each mode every agent
rolls out stepwise along the recorded actions, conditioned on its visible agents' own
predictions (`team.joint_rollout`); errors per horizon h:
  dynamics  mean over agents, samples of mean_j (z^_h - E(o_h))_j^2   (latent MSE, Eq. 3's term)
  reward    mean over agents, samples of |R^_h - r_h|                 (team reward units)
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..core.intent import IntentLayout
from ..core.world_model import WorldModel
from ..sim import MultiQuadEnv
from .buffer import ReplayBuffer
from .config import TrainConfig
from .curves import plot_prediction_error
from .team import joint_rollout, visible
from .update import SequentialUpdate


def random_data(task_cfg: Any, steps: int, num_envs: int, seed: int, device: str) -> ReplayBuffer:
    """`steps` team transitions with uniformly random actions."""
    env = MultiQuadEnv(task_cfg, num_envs, device, seed=seed)
    ticks = max(steps // num_envs, 2)
    buf = ReplayBuffer(ticks * num_envs, num_envs, env.num_robots, env.obs_dim, 3, device)
    g = torch.Generator(device=device).manual_seed(seed)
    obs = env.reset()
    for _ in range(ticks):
        a = torch.rand(num_envs, env.num_robots, 3, generator=g, device=device) * 2 - 1
        nxt, r, term, trunc, info = env.step(a)
        buf.add(obs, a, r, info['final_obs'], term, trunc)
        obs = nxt
    return buf


@torch.no_grad()
def prediction_errors(models: list[WorldModel], comm: str, test: ReplayBuffer, horizon: int,
                      samples: int, seed: int) -> dict[str, list[float]]:
    """Errors per horizon 1..H on windows lying inside one episode."""
    g = torch.Generator(device=test.device).manual_seed(seed)
    b = test.sample(samples * 4, horizon, g)
    ok = b.alive[horizon - 1]
    idx = ok.nonzero().squeeze(1)[:samples]
    obs, act, rew, nxt = (b.obs[:, idx], b.action[:, idx], b.reward[:, idx], b.next_obs[:, idx])
    n, B = len(models), idx.numel()
    keep = visible(comm, list(range(n))).to(obs.device)[None].expand(B, n, n)
    lat, r_logits = joint_rollout(models, obs[0], act, keep)          # (H+1, B, n, dz), (H, B, n, bins)
    dyn, rwd = [], []
    for h in range(1, horizon + 1):
        z_true = torch.stack([models[i].encode(nxt[h - 1, :, i]) for i in range(n)], 1)
        dyn.append(float((lat[h] - z_true).pow(2).mean(-1).mean()))
        r_hat = torch.stack([models[i].two_hot.decode(r_logits[h - 1, :, i]) for i in range(n)], 1)
        rwd.append(float((r_hat - rew[h - 1][:, None]).abs().mean()))
    return {'dynamics': dyn, 'reward': rwd, 'windows': B}


def run_prediction_error(task_cfg: Any, cfg: TrainConfig, out_dir: Path, device: str = 'cpu',
                         data_steps: int = 50_000, updates: int = 600, test_steps: int = 4_096,
                         horizon: int = 8, samples: int = 1024, progress: bool = True) -> dict:
    """Train seq, cen and dec on the same random data; write prediction_error.json and .png."""
    t0 = time.perf_counter()
    data = random_data(task_cfg, data_steps, 256, cfg.seed + 500, device)
    test = random_data(task_cfg, test_steps, 64, cfg.seed + 600, device)
    n, obs_dim = data.obs.shape[2], data.obs.shape[3]
    table: dict[str, Any] = {'task': getattr(task_cfg, 'name', ''), 'data_steps': len(data),
                             'test_steps': len(test), 'updates': updates, 'horizon': horizon,
                             'batch_size': cfg.batch_size, 'errors': {}}
    for comm in ('seq', 'cen', 'dec'):
        c = dataclasses.replace(cfg, comm=comm, mask_prob=0.0, shuffle_prob=0.0)
        torch.manual_seed(cfg.seed)
        mc = c.model_config(obs_dim, n)
        models = [WorldModel(mc).to(device) for _ in range(n)]
        layout = IntentLayout(n, c.horizon, mc.latent_dim, mc.action_dim)
        learner = SequentialUpdate(models, layout, c,
                                   torch.Generator(device=device).manual_seed(cfg.seed))
        for _ in tqdm(range(updates), desc=f'prediction-error {comm}', unit='upd',
                      disable=not progress, mininterval=5.0):
            learner.update(data.sample(c.batch_size, learner.window, learner.generator))
        for m in models:
            m.eval()
        table['errors'][comm] = prediction_errors(models, comm, test, horizon, samples, cfg.seed)
    table['wall_s'] = round(time.perf_counter() - t0, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / 'prediction_error.json').write_text(json.dumps(table, indent=2) + '\n')
    plot_prediction_error(table, out_dir / 'prediction_error.png')
    return table
