"""`seqwm-train`: train every agent of a team on one task and write the model dir robots load.

    seqwm-train --task pushbox --out models/pushbox [--comm seq|dec|cen] [--run-dir runs/x]
    seqwm-train --task gate --robots 5               # writes models/gate_5robots
                [--resume] [--device cuda] [--set key=value ...]
    seqwm-train --task gate_paper --robots 5 --continue models/gate_paper_5robots --max-wall-s 9000
    seqwm-train --task pushbox --out models/pushbox --export-only   # model dir from the checkpoint
    seqwm-train --task pushbox --prediction-error models/pushbox/prediction_error

The task YAML (`--task` name or path) gives the simulator's `task:` section and the trainer's
`train:` section; `--set` overrides `train:` keys (YAML values: `--set num_envs=64`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import torch

from ..core.checkpoint import CheckpointError
from ..core.validate import key_values
from ..sim import load_task_config
from ..task_registry import TASK_NAMES, task_info
from ..sim.config import config_dir
from .config import COMM_MODES, load_train_config


def task_yaml(task: str) -> Path:
    p = Path(task)
    return p if p.exists() else config_dir() / f'{task}.yaml'


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='seqwm-train', description=__doc__.split('\n')[0])
    ap.add_argument('--task', default='pushbox', help=f'task name ({", ".join(TASK_NAMES)}: '
                    'config/<task>.yaml) or a task YAML path')
    ap.add_argument('--robots', type=int, default=None,
                    help="team size (default: the task YAML's num_robots)")
    ap.add_argument('--out', default=None, help="model dir to write (default: the task "
                    "registry's for the team size and comm: models/<task>[_<n>robots][_dec])")
    ap.add_argument('--run-dir', default=None,
                    help='checkpoints and logs (default runs/<model dir name>)')
    ap.add_argument('--comm', choices=COMM_MODES, default=None, help='override train.comm')
    ap.add_argument('--seed', type=int, default=None)
    ap.add_argument('--total-env-steps', type=int, default=None)
    ap.add_argument('--max-wall-s', type=float, default=None)
    ap.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                    help='override a train: key (YAML value)')
    ap.add_argument('--resume', action='store_true', help='continue from <run-dir>/checkpoint.pt')
    ap.add_argument('--init-from', metavar='MODEL_DIR', default=None,
                    help="start from a model dir's weights (fresh optimizers and buffer), e.g. "
                         'to train a shipped model further in a later session; the manifest '
                         'records the totals over both')
    ap.add_argument('--continue', dest='continue_from', metavar='MODEL_DIR', default=None,
                    help="continue the run a model dir was exported from (its trainer_state.pt: "
                         'weights, optimizers, counters, RNG) on any machine; the replay buffer '
                         'is refilled with the current policy. Raise --max-wall-s / '
                         '--total-env-steps past the recorded totals')
    ap.add_argument('--export-only', action='store_true',
                    help='write --out from <run-dir>/checkpoint.pt as it stands, no training')
    ap.add_argument('--device', default='cpu', help="'cpu' or 'cuda' (when present)")
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--no-progress', action='store_true')
    ap.add_argument('--prediction-error', metavar='OUT_DIR', default=None,
                    help='run the Fig. 8 comparison (seq / cen / dec world models on the same '
                         'random data) instead of training')
    ap.add_argument('--pe-data-steps', type=int, default=50_000, help='random transitions (Fig. 8)')
    ap.add_argument('--pe-updates', type=int, default=600, help='updates per comm mode (Fig. 8)')
    ap.add_argument('--pe-horizon', type=int, default=8, help='longest prediction horizon (Fig. 8)')
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        print('seqwm-train: --device cuda requested but CUDA is not available', file=sys.stderr)
        return 2
    path = task_yaml(args.task)
    try:
        overrides = key_values(args.set)
    except ValueError as e:                     # ConfigError: names the bad item
        print(f'seqwm-train: {e}', file=sys.stderr)
        return 2
    for key, value in (('comm', args.comm), ('seed', args.seed),
                       ('total_env_steps', args.total_env_steps), ('max_wall_s', args.max_wall_s)):
        if value is not None:
            overrides[key] = value
    cfg = load_train_config(path, overrides)
    task_cfg = load_task_config(path, {'num_robots': args.robots} if args.robots else None)
    if args.prediction_error:
        from .prediction_error import run_prediction_error
        table = run_prediction_error(task_cfg, cfg, Path(args.prediction_error), args.device,
                                     data_steps=args.pe_data_steps, updates=args.pe_updates,
                                     horizon=args.pe_horizon, progress=not args.no_progress)
        print(json.dumps({c: {k: [round(x, 5) for x in e[k]] for k in ('dynamics', 'reward')}
                          for c, e in table['errors'].items()}))
        return 0
    from .trainer import Trainer
    out = Path(args.out or task_info(task_cfg.name).model_dir_for(
        task_cfg.num_robots, cfg.comm, getattr(task_cfg, 'variant', 'realistic')))
    run_dir = Path(args.run_dir or f'runs/{out.name}')
    trainer = Trainer(task_cfg, cfg, run_dir, out, args.device, progress=not args.no_progress)
    if args.export_only:
        try:
            manifest = trainer.export_checkpoint()
        except FileNotFoundError as e:
            print(f'seqwm-train: {e}', file=sys.stderr)
            return 2
        print(json.dumps({'model_set_id': manifest.model_set_id, 'env_steps': trainer.env_steps,
                          'wall_s': round(trainer.wall_s, 1), 'out': str(out)}))
        return 0
    if sum(map(bool, (args.init_from, args.resume, args.continue_from))) > 1:
        print('seqwm-train: --init-from, --resume and --continue exclude each other',
              file=sys.stderr)
        return 2
    if args.continue_from:
        try:
            seg = trainer.continue_from(args.continue_from)
        except (ValueError, FileNotFoundError, CheckpointError) as e:
            print(f'seqwm-train: --continue: {e}', file=sys.stderr)
            return 2
        print(f"seqwm-train: continuing {args.continue_from} at {seg['env_steps']} env steps, "
              f"{seg['train_wall_s']:.0f} s; {seg['buffer']}")
    if args.init_from:
        try:
            rec = trainer.init_from(args.init_from)
        except (ValueError, CheckpointError) as e:
            print(f'seqwm-train: --init-from: {e}', file=sys.stderr)
            return 2
        print(f"seqwm-train: starting from {rec['model_set_id']} ({args.init_from}: "
              f"{rec['before']['env_steps']} env steps, {rec['before']['train_wall_time_s']:.0f} s)")
    if args.resume:
        if trainer.resume():
            print(f'seqwm-train: resumed from {run_dir}/checkpoint.pt at {trainer.env_steps} env steps')
        else:
            print(f'seqwm-train: nothing to resume in {run_dir}; starting fresh')
    summary = trainer.run()
    print(json.dumps({k: summary[k] for k in ('env_steps', 'updates', 'wall_s')} |
                     {'best': summary['best'], 'out': str(out)}))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
