"""`seqwm-models`: the table of every shipped model, read from the manifests themselves.

Each row is what the model's own manifest records: how it was trained (comm mode, env steps,
training wall time, threads) and how it did in its last `seqwm-eval` (deployment form, success
with its 95 % interval over the episodes run). README's results table is this output, and a
test keeps them equal, so no figure there can drift from the files it describes.

    seqwm-models            # models/ of the workspace
    seqwm-models path/to/models
    seqwm-models --compare  # per task and team: seq / dec / MAPPO / IPPO side by side

`--compare` also reads the model-free baselines under models/baselines/ (their manifests have
the same `training` / `evaluation` records, written by `seqwm-baseline`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import yaml

from ..core.checkpoint import CheckpointError, load_manifest

COLUMNS = ('model', 'task', 'robots', 'comm', 'deployed success (95 % CI)', 'mean episode',
           'env steps', 'training wall time', 'threads')


def _changed_task(evaluation: dict) -> str:
    """' · in task success=passed' when the evaluation ran in a changed task (seqwm-eval
    --task-set): the figure is not for the task the model trained in."""
    changed = evaluation.get('task_set') or {}
    return (' · in task ' + ', '.join(f'{k}={v}' for k, v in changed.items())) if changed else ''


def task_label(task: str, training: dict) -> str:
    """The task with its variant where it is not the realistic one ('gate (paper)'), from the
    task config the model was trained in: a figure must say which Gate it is in."""
    variant = (training.get('task_config') or {}).get('variant', 'realistic')
    return task if variant == 'realistic' else f'{task} ({variant})'


def model_row(model_dir: Path) -> list[str]:
    """One table row from `model_dir`'s manifest ('–' where it records nothing)."""
    m = load_manifest(model_dir)
    t, ev = m.training or {}, m.evaluation or {}
    res = (ev.get('results') or [{}])[0]
    if 'success_rate' in res and ev.get('form') == 'deployed':
        lo, hi = res['success_ci95']
        success = (f"**{100 * res['success_rate']:.0f} %** ({100 * lo:.0f}-{100 * hi:.0f} %), "
                   f"{ev['episodes']} ep.{_changed_task(ev)}")
        episode = f"{res['mean_length'] * m.dt:.1f} s"
    else:
        success, episode = 'not evaluated in deployment form', '–'
    wall = t.get('train_wall_time_s', t.get('wall_time_s'))
    steps = t.get('env_steps')
    note = ''
    if t.get('init_from'):      # trained in segments (seqwm-train --init-from): the totals
        total = t['init_from']['total']
        steps, wall, note = total['env_steps'], total['train_wall_time_s'], ' (all segments)'
    return [f'`models/{model_dir.name}`', task_label(m.task, t), str(m.model.num_agents),
            str(t.get('comm', '–')),
            success, episode, f'{steps:,}{note}' if steps is not None else '–',
            f'{wall:,.0f} s{note}' if wall is not None else '–', str(t.get('torch_threads', '–'))]


def model_table(models_root: str | Path) -> str:
    """The markdown table of every model directory under `models_root` (name order)."""
    root = Path(models_root)
    rows = [model_row(d) for d in sorted(root.iterdir()) if (d / 'manifest.yaml').is_file()]
    lines = ['| ' + ' | '.join(COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
    lines += ['| ' + ' | '.join(r) + ' |' for r in rows]
    return '\n'.join(lines)


METHODS = ('seq', 'dec', 'mappo', 'ippo')


def _cell(training: dict, evaluation: dict) -> str:
    """'**93 %** (86-97 %) · 500,528 steps · 1,107 s' from a manifest's records; in Gate also how
    many robots got through the opening on average."""
    res = (evaluation.get('results') or [{}])[0]
    if 'success_rate' in res and evaluation.get('form') == 'deployed':
        lo, hi = res['success_ci95']
        head = f"**{100 * res['success_rate']:.0f} %** ({100 * lo:.0f}-{100 * hi:.0f} %)"
        if res.get('mean_robots_passed') is not None:
            head += f" · {res['mean_robots_passed']:.1f} robots through on average"
        head += _changed_task(evaluation)
    else:
        head = 'not evaluated'
    total = (training.get('init_from') or {}).get('total') or training
    steps = total.get('env_steps')
    wall = total.get('train_wall_time_s', total.get('wall_time_s'))
    return ' · '.join([head] + ([f'{steps:,} steps'] if steps is not None else [])
                      + ([f'{wall:,.0f} s'] if wall is not None else []))


def comparison_table(models_root: str | Path) -> str:
    """Per (task, team size) with more than one method: seq / dec / MAPPO / IPPO cells
    (deployed success and interval, env steps, training wall time)."""
    root = Path(models_root)
    cells: dict[tuple[str, int], dict[str, str]] = {}
    for d in sorted(root.iterdir()):
        if (d / 'manifest.yaml').is_file():
            m = load_manifest(d)
            t = m.training or {}
            cells.setdefault((task_label(m.task, t), m.model.num_agents), {})[t.get('comm', 'seq')] = \
                _cell(t, m.evaluation or {})
    for f in sorted((root / 'baselines').glob('*/manifest.yaml')):
        doc = yaml.safe_load(f.read_text()) or {}
        cells.setdefault((task_label(doc['task'], doc.get('training') or {}), doc['num_agents']),
                         {})[doc['algo']] = \
            _cell(doc.get('training') or {}, doc.get('evaluation') or {})
    cols = ['task', 'robots'] + [m if m in ('seq', 'dec') else m.upper() for m in METHODS]
    lines = ['| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)]
    for (task, n), c in sorted(cells.items()):
        if len(c) > 1:
            lines.append('| ' + ' | '.join([task, str(n)] + [c.get(m, '–') for m in METHODS])
                         + ' |')
    return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='seqwm-models', description=__doc__.split('\n')[0])
    ap.add_argument('models', nargs='?', default=None,
                    help='directory of model dirs (default: $SEQWM_ROOT/models, else ./models)')
    ap.add_argument('--compare', action='store_true',
                    help='seq / dec / MAPPO / IPPO per task and team size instead')
    args = ap.parse_args(argv)
    if args.models is None:
        import os
        args.models = str(Path(os.environ.get('SEQWM_ROOT', '.')) / 'models')
    try:
        print(comparison_table(args.models) if args.compare else model_table(args.models))
    except (OSError, CheckpointError, KeyError, yaml.YAMLError) as exc:
        print(f'seqwm-models: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
