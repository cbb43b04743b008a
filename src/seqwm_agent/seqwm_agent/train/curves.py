"""Learning-curve and prediction-error plots (matplotlib Agg, PNG), and `seqwm-curves`.

    seqwm-curves models/pushbox models/pushbox_dec --out models/pushbox/seq_vs_dec.png

compares runs (model or run dirs holding `metrics.jsonl`) by their periodic evaluations against
env steps and against training wall time: equal-budget comparisons are what the baselines are for.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import matplotlib
import yaml

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path: str | Path) -> list[dict]:
    """metrics.jsonl: one JSON object per logged event."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def _steps_axis(ax) -> None:
    """Env-step ticks as 250k / 1.5M: six-digit labels run into each other."""
    from matplotlib.ticker import FuncFormatter
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda x, _: f'{x / 1e6:g}M' if abs(x) >= 1e6 else f'{x / 1e3:g}k' if x else '0'))


def _finish(fig, axes, title: str, path: str | Path, legend_size: int | None = 7,
            legend_on: Sequence | None = None) -> Path:
    """Grid and title on every panel, a legend on each of `legend_on` (default: every panel);
    write the PNG and free the figure."""
    for ax in axes:
        if 'env steps' in ax.get_xlabel():
            _steps_axis(ax)
        ax.grid(alpha=0.3)
        if legend_on is None or ax in legend_on:
            ax.legend(fontsize=legend_size)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _train_wall(m: dict) -> float:
    """Training wall time of a record (periodic evaluation excluded where the run logged it)."""
    return m.get('train_wall_s', m['wall_s'])


def plot_learning_curve(metrics: list[dict], path: str | Path, title: str = '') -> Path:
    """Training returns and periodic evaluations (actor and planner) against env steps, and
    success against training wall time."""
    train = [m for m in metrics if m.get('kind') == 'train' and m.get('train_return') is not None]
    evals = [m for m in metrics if m.get('kind') == 'eval']
    health = [m for m in evals if m.get('health') and any(
        a is not None for a in m['health']['contact_auc'])]
    ncol = 4 if health else 3
    fig, axes = plt.subplots(1, ncol, figsize=(4.7 * ncol, 3.8))
    ax1, ax2, ax3 = axes[:3]
    if train:
        ax1.plot([m['env_steps'] for m in train], [m['train_return'] for m in train],
                 color='tab:gray', lw=1, label='training episodes (actor + noise)')
    for key, col, lab in (('actor', 'tab:blue', 'actor (deterministic)'),
                          ('planner', 'tab:red', 'planner (eval settings)'),
                          ('policy', 'tab:green', 'policy (deterministic)')):
        pts = [m for m in evals if m.get(key)]
        if pts:
            x = [m['env_steps'] for m in pts]
            ax1.plot(x, [m[key]['mean_return'] for m in pts], 'o-', color=col, label=lab)
            ax2.plot(x, [m[key]['success_rate'] for m in pts], 'o-', color=col, label=lab)
            ax3.plot([_train_wall(m) for m in pts], [m[key]['success_rate'] for m in pts], 'o-',
                     color=col, label=lab)
    ax1.set_xlabel('env steps (team transitions)')
    ax1.set_ylabel('episode return')
    ax2.set_xlabel('env steps (team transitions)')
    ax3.set_xlabel('training wall time (s, evaluation excluded)')
    for ax in (ax2, ax3):
        ax.set_ylabel('success rate')
        ax.set_ylim(-0.02, 1.02)
    if health:      # does each world model see contacts coming (train/health.py)
        ax4 = axes[3]
        x = [m['env_steps'] for m in health]
        for i in range(len(health[-1]['health']['contact_auc'])):
            ax4.plot(x, [m['health']['contact_auc'][i] for m in health], 'o-', ms=3,
                     label=f'agent {i + 1}')
        ax4.axhline(0.5, color='k', ls=':', lw=1, label='chance')
        ax4.set_xlabel('env steps (team transitions)')
        ax4.set_ylabel('contact AUC of the reward head')
        ax4.set_ylim(0.0, 1.02)
    for seg in (m for m in metrics if m.get('kind') == 'segment'):
        for ax in (ax1, ax2):      # where a continued run refilled its buffer
            ax.axvline(seg['env_steps'], color='tab:purple', ls='--', lw=1)
    return _finish(fig, tuple(axes), title, path)


def plot_comparison(runs: dict[str, list[dict]], path: str | Path, title: str = '') -> Path:
    """Periodic evaluation success (top) and mean return (bottom; where every run is still at
    0 % success the return is what tells them apart) of several runs, against env steps and
    against training wall time. Planner or a baseline's policy solid, actor dashed."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex='col', sharey='row')
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for (label, metrics), col in zip(runs.items(), colours):
        evals = [m for m in metrics if m.get('kind') == 'eval']
        for key, style in (('planner', 'o-'), ('policy', 'o-'), ('actor', '--')):
            pts = [m for m in evals if m.get(key)]
            if not pts:
                continue
            xs = ([m['env_steps'] for m in pts], [_train_wall(m) for m in pts])
            for row, metric in enumerate(('success_rate', 'mean_return')):
                y = [m[key][metric] for m in pts]
                for ax, x in zip(axes[row], xs):
                    ax.plot(x, y, style, color=col, ms=4, label=f'{label} {key}')
    axes[1, 0].set_xlabel('env steps (team transitions)')
    axes[1, 1].set_xlabel('training wall time (s, evaluation excluded)')
    axes[0, 0].set_ylabel('success rate (periodic evaluation)')
    axes[1, 0].set_ylabel('mean episode return (periodic evaluation)')
    axes[0, 0].set_ylim(-0.02, 1.02)
    _steps_axis(axes[0, 0])   # _finish formats the panels labelled 'env steps': the bottom row
    # One legend: the four panels share runs and colours.
    return _finish(fig, axes.ravel(), title, path, legend_on=[axes[0, 0]])


def _run_label(d: Path) -> str:
    """The comm mode (SeqWM) or algorithm (baseline) from a model dir's manifest, else the
    dir name."""
    manifest = d / 'manifest.yaml'
    if manifest.exists():
        training = yaml.safe_load(manifest.read_text()).get('training') or {}
        kind = training.get('comm') or training.get('algo')
        if kind:
            return f'{kind} ({d.name})'
    return d.name


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='seqwm-curves', description=__doc__.split('\n')[0])
    ap.add_argument('dirs', nargs='+', help='model or run dirs holding metrics.jsonl')
    ap.add_argument('--out', required=True, help='PNG to write')
    ap.add_argument('--title', default='')
    args = ap.parse_args(argv)
    runs: dict[str, list[dict]] = {}
    for d in map(Path, args.dirs):
        metrics = read_metrics(d / 'metrics.jsonl')
        if not any(m.get('kind') == 'eval' for m in metrics):
            print(f'seqwm-curves: no evaluations in {d / "metrics.jsonl"}', file=sys.stderr)
            return 2
        runs[_run_label(d)] = metrics
    print(plot_comparison(runs, args.out, args.title))
    return 0


def plot_prediction_error(table: dict, path: str | Path) -> Path:
    """Fig. 8 style: dynamics and reward prediction error vs horizon for each comm mode."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for comm, col in (('seq', 'tab:red'), ('cen', 'tab:blue'), ('dec', 'tab:gray')):
        if comm not in table['errors']:
            continue
        e = table['errors'][comm]
        h = list(range(1, len(e['dynamics']) + 1))
        axes[0].plot(h, e['dynamics'], 'o-', color=col, label=comm)
        axes[1].plot(h, e['reward'], 'o-', color=col, label=comm)
    axes[0].set_ylabel('latent dynamics error (MSE)')
    axes[1].set_ylabel('reward error (MAE)')
    for ax in axes:
        ax.set_xlabel('prediction horizon (steps)')
    return _finish(fig, axes, f"{table.get('task', '')}: world-model prediction error on held-out "
                   'data', path, legend_size=None)


if __name__ == '__main__':
    raise SystemExit(main())
