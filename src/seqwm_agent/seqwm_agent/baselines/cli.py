"""`seqwm-baseline`: train MAPPO / IPPO (TorchRL) on a task, and evaluate it as robots would run it.

    seqwm-baseline train --algo mappo --task gate --robots 5 --max-wall-s 1800
        # -> models/baselines/gate_5robots_mappo (best periodic checkpoint, curves, manifest)
    seqwm-baseline eval models/baselines/gate_5robots_mappo --episodes 100 --render

Evaluation is `seqwm-eval`'s loop and seeds (default 2026, 100 episodes): every robot acts on
its own observation with the policy's deterministic action through its own command chain, and
the result goes into the manifest's `evaluation` and eval.json beside it.
"""
from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Sequence

import torch

from ..core.command import ChainSettings
from ..core.validate import key_values
from ..sim import load_task_config
from ..task_registry import task_info
from ..train.evaluate import SUMMARY_KEYS, render_episode, run_episodes
from .policy import ALGOS, PolicyTeam, load_policy, write_baseline_manifest
from .ppo import PPOConfig, PPOTrainer


def default_out(task: str, robots: int, algo: str, variant: str = 'realistic') -> Path:
    """models/baselines/<the SeqWM model's name>_<algo>: gate_5robots_mappo, pushbox_ippo,
    gate_paper_5robots_ippo."""
    name = Path(task_info(task).model_dir_for(robots, variant=variant)).name
    return Path('models/baselines') / f'{name}_{algo}'


def _train(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    task_cfg = load_task_config(args.task, {'num_robots': args.robots} if args.robots else None)
    overrides = key_values(args.set)
    for key, value in (('algo', args.algo), ('seed', args.seed), ('max_wall_s', args.max_wall_s),
                       ('total_env_steps', args.total_env_steps)):
        if value is not None:
            overrides[key] = value
    cfg = PPOConfig.from_dict(overrides)
    out = Path(args.out) if args.out else default_out(
        task_cfg.name, task_cfg.num_robots, cfg.algo, getattr(task_cfg, 'variant', 'realistic'))
    print(f'seqwm-baseline: {cfg.algo} on {task_cfg.name}, {task_cfg.num_robots} robots -> '
          f'{out} ({args.threads} threads, budget {cfg.max_wall_s:g} s / '
          f'{cfg.total_env_steps} env steps)', flush=True)
    result = PPOTrainer(task_cfg, cfg, out, args.device, progress=not args.no_progress).run()
    print(json.dumps(result), flush=True)
    return 0


def _eval(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    d = Path(args.model_dir)
    actor, doc = load_policy(d, args.device)
    training = doc.get('training') or {}
    task_set = key_values(args.task_set, '--task-set')
    task_cfg = load_task_config(training.get('task_config') or doc['task'], task_set)
    chain = ChainSettings.from_dict(training['command_chain'])
    scale = [doc['action_scaling'][k] for k in ('vx', 'vy', 'wz')]
    team = PolicyTeam(actor, doc['num_agents'], chain, scale, args.episodes, args.device)
    res = run_episodes([], task_cfg, None, 'none', args.episodes, args.seed, policy=doc['algo'],
                       device=args.device, record=args.render, chain=chain, action_scale=scale,
                       team=team)
    frames, sent = res.pop('frames', None), res.pop('commands', None)
    print(json.dumps({k: res.get(k) for k in ('policy', 'form', 'episodes', 'success_rate',
                                              'success_ci95', 'mean_return', 'mean_length',
                                              'mean_robots_passed', 'wall_s') if k in res}),
          flush=True)
    out = {'model_dir': str(d), 'algo': doc['algo'], 'task': doc['task'], 'device': args.device,
           'threads': args.threads, 'cpu': platform.processor() or platform.machine(),
           'torch': torch.__version__, 'task_set': task_set, 'results': [res]}
    if frames:
        out['episode0'] = render_episode(frames, sent, task_cfg, doc['dt'], d,
                                         f'{doc["task"]} {doc["algo"]}: episode 0 of eval seed '
                                         f'{args.seed}, {len(frames) - 1} steps')
    (d / 'eval.json').write_text(json.dumps(out, indent=2) + '\n')
    doc['evaluation'] = {**{k: res.get(k) for k in ('policy', 'form', 'episodes', 'seed',
                                                    'chain')},
                         'threads': args.threads, 'device': args.device, 'task_set': task_set,
                         'results': [{k: res.get(k) for k in SUMMARY_KEYS if k in res}]}
    write_baseline_manifest(d, doc)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='seqwm-baseline', description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    tr = sub.add_parser('train', help='train MAPPO or IPPO and write a baseline model dir')
    tr.add_argument('--algo', choices=ALGOS, default='mappo')
    tr.add_argument('--task', default='pushbox', help='task name or task YAML')
    tr.add_argument('--robots', type=int, default=None, help="team size (default: the task's)")
    tr.add_argument('--out', default=None, help='model dir (default models/baselines/<name>)')
    tr.add_argument('--seed', type=int, default=None)
    tr.add_argument('--max-wall-s', type=float, default=None,
                    help='training wall-time budget, periodic evaluation excluded (0: none)')
    tr.add_argument('--total-env-steps', type=int, default=None)
    tr.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                    help='any PPOConfig field, e.g. --set lr=1e-4 --set num_envs=512')
    tr.add_argument('--threads', type=int, default=1)
    tr.add_argument('--device', default='cpu')
    tr.add_argument('--no-progress', action='store_true')
    ev = sub.add_parser('eval', help='evaluate a baseline model dir in deployment form')
    ev.add_argument('model_dir')
    ev.add_argument('--episodes', type=int, default=100)
    ev.add_argument('--seed', type=int, default=2026, help='evaluation seed (as seqwm-eval)')
    ev.add_argument('--threads', type=int, default=1)
    ev.add_argument('--device', default='cpu')
    ev.add_argument('--render', action='store_true', help='write eval_episode0.png/.gif')
    ev.add_argument('--task-set', action='append', default=[], metavar='KEY=VALUE',
                    help="evaluate in a changed task (as seqwm-eval's --task-set)")
    args = ap.parse_args(argv)
    try:
        return _train(args) if args.cmd == 'train' else _eval(args)
    except ValueError as e:
        print(f'seqwm-baseline: {e}', flush=True)
        return 2


if __name__ == '__main__':
    raise SystemExit(main())
