"""Evaluation exactly as deployment runs, and the `seqwm-eval` command.

Each agent plans with its own model only (loaded from its own file with `load_agent`) and the
intent its predecessor produced in this tick (seq), or with no intent (dec); the first planned
action is executed; no exploration noise. B episodes run at once (one per environment, no
auto-reset). Finished environments stop being planned for: the planning batch is compacted
when fewer than half of its rows are still running (each compaction restarts the planners'
warm start; docs/trainer.md). Seeded: the environments and every planner draw from generators
seeded from `seed`, so a run is deterministic for a seed, a device and a thread count.

    seqwm-eval models/pushbox --episodes 100 [--seed 0] [--comm seq|dec] [--render]
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from ..core.checkpoint import load_agent, load_manifest, write_manifest
from ..core.config import PlannerConfig
from ..core.intent import IntentLayout
from ..core.world_model import WorldModel
from ..sim import MultiQuadEnv, load_task_config
from .team import PlannerTeam, actor_act


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate (sampling noise of the recorded figure)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


@torch.no_grad()
def run_episodes(models: Sequence[WorldModel], task_cfg: Any, planner_cfg: PlannerConfig,
                 comm: str, episodes: int, seed: int, policy: str = 'planner',
                 device: str | torch.device = 'cpu', record: bool = False) -> dict[str, Any]:
    """Run `episodes` episodes in parallel; returns metrics (and the frames of episode 0)."""
    from ..sim.render import EpisodeRecorder
    n = len(models)
    mc = models[0].cfg
    layout = IntentLayout(n, planner_cfg.horizon, mc.latent_dim, mc.action_dim)
    env = MultiQuadEnv(task_cfg, episodes, device, seed=seed, auto_reset=False)
    obs = env.reset()
    team = PlannerTeam(models, layout, planner_cfg, comm, seed) if policy == 'planner' else None
    gen = torch.Generator(device=device).manual_seed(seed)
    active = torch.ones(episodes, dtype=torch.bool, device=device)
    rows = torch.arange(episodes, device=device)
    success = torch.zeros(episodes, dtype=torch.bool, device=device)
    ret = torch.zeros(episodes, device=device)
    length = torch.zeros(episodes, dtype=torch.long, device=device)
    recorder = EpisodeRecorder(env, 0) if record else None
    if recorder:
        recorder.record()
    plans, t0 = 0, time.perf_counter()
    while bool(active.any()):
        if int(active[rows].sum()) * 2 <= rows.numel():
            rows = active.nonzero().squeeze(1)
            if team:
                team.reset()
        actions = torch.zeros(episodes, n, 3, device=device)
        if team:
            actions[rows] = team.act(obs[rows])[0]
            plans += rows.numel() * n
        else:
            actions[rows] = actor_act(models, layout, obs[rows], comm, deterministic=True,
                                      generator=gen)
        obs, _, term, trunc, info = env.step(actions)
        ended = active & (term | trunc)
        success |= ended & info['success']
        ret = torch.where(ended, info['episode_return'], ret)
        length = torch.where(ended, info['episode_length'], length)
        if recorder and bool(active[0]):
            recorder.record()
        active &= ~(term | trunc)
    wall = time.perf_counter() - t0
    k = int(success.sum())
    lo, hi = wilson_interval(k, episodes)
    out = {'comm': comm, 'policy': policy, 'episodes': episodes, 'seed': seed,
           'successes': k, 'success_rate': k / episodes, 'success_ci95': [lo, hi],
           'mean_return': float(ret.mean()), 'std_return': float(ret.std()) if episodes > 1 else 0.0,
           'mean_length': float(length.float().mean()),
           'mean_length_success': float(length[success].float().mean()) if k else None,
           'wall_s': wall, 'plans': plans,
           'ms_per_plan': 1000 * wall / plans if plans else None}
    if recorder:
        out['frames'] = recorder.frames
    return out


def load_team(model_dir: str | Path, device: str = 'cpu') -> tuple[list[WorldModel], Any]:
    """Every agent's model, each loaded (and verified) from its own file."""
    manifest = load_manifest(model_dir)
    models = [load_agent(model_dir, k, model_set_id=manifest.model_set_id, device=device)[0]
              for k in range(manifest.model.num_agents)]
    return models, manifest


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='seqwm-eval', description='Evaluate a SeqWM model dir as '
                                 'deployment runs it (sequential planning, no noise).')
    ap.add_argument('model_dir')
    ap.add_argument('--episodes', type=int, default=100)
    ap.add_argument('--seed', type=int, default=2026, help='evaluation seed (envs and planners)')
    ap.add_argument('--comm', choices=('seq', 'dec'), default=None,
                    help='default: the comm mode the model was trained with')
    ap.add_argument('--policy', choices=('planner', 'actor'), default='planner')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--threads', type=int, default=1, help='torch threads (results are '
                    'deterministic for a seed and a thread count)')
    ap.add_argument('--out', default=None, help='JSON file (default: <model_dir>/eval.json)')
    ap.add_argument('--render', action='store_true', help='write eval_episode0.png/.gif')
    ap.add_argument('--no-manifest', action='store_true',
                    help='do not record the result in manifest.yaml')
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model_dir = Path(args.model_dir)
    models, manifest = load_team(model_dir, args.device)
    comm = args.comm or manifest.training.get('comm', 'seq')
    task_cfg = load_task_config(manifest.training.get('task_config') or manifest.task)
    planner_cfg = PlannerConfig.from_dict(manifest.planner)
    res = run_episodes(models, task_cfg, planner_cfg, comm, args.episodes, args.seed,
                       args.policy, args.device, record=args.render)
    frames = res.pop('frames', None)
    res.update({'model_dir': str(model_dir), 'model_set_id': manifest.model_set_id,
                'task': manifest.task, 'planner': planner_cfg.to_dict(), 'device': args.device,
                'threads': args.threads, 'cpu': platform.processor() or platform.machine(),
                'torch': torch.__version__})
    out = Path(args.out) if args.out else model_dir / 'eval.json'
    out.write_text(json.dumps(res, indent=2) + '\n')
    if frames:
        from ..sim.render import render_gif, render_png
        title = (f'{manifest.task} {comm}: episode 0 of eval seed {args.seed}, '
                 f'{len(frames) - 1} steps')
        render_png(frames, task_cfg, out.parent / 'eval_episode0.png', title=title)
        render_gif(frames, task_cfg, out.parent / 'eval_episode0.gif', stride=2, title=title)
    if not args.no_manifest and args.out is None:
        manifest.evaluation = {k: res[k] for k in ('comm', 'policy', 'episodes', 'seed',
                                                    'success_rate', 'success_ci95', 'mean_return',
                                                    'mean_length', 'threads', 'device')}
        write_manifest(model_dir, manifest)
    print(json.dumps({k: res[k] for k in ('comm', 'episodes', 'success_rate', 'success_ci95',
                                           'mean_return', 'mean_length', 'wall_s')}))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
