"""Learning-curve and prediction-error plots (matplotlib Agg, PNG)."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path: str | Path) -> list[dict]:
    """metrics.jsonl: one JSON object per logged event."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def plot_learning_curve(metrics: list[dict], path: str | Path, title: str = '') -> Path:
    """Training returns and periodic evaluations (actor and planner) against env steps."""
    train = [m for m in metrics if m.get('kind') == 'train' and m.get('train_return') is not None]
    evals = [m for m in metrics if m.get('kind') == 'eval']
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    if train:
        ax1.plot([m['env_steps'] for m in train], [m['train_return'] for m in train],
                 color='tab:gray', lw=1, label='training episodes (actor + noise)')
    for key, col, lab in (('actor', 'tab:blue', 'actor (deterministic)'),
                          ('planner', 'tab:red', 'planner (eval settings)')):
        pts = [m for m in evals if m.get(key)]
        if pts:
            x = [m['env_steps'] for m in pts]
            ax1.plot(x, [m[key]['mean_return'] for m in pts], 'o-', color=col, label=lab)
            ax2.plot(x, [m[key]['success_rate'] for m in pts], 'o-', color=col, label=lab)
    ax1.set_xlabel('env steps (team transitions)')
    ax1.set_ylabel('episode return')
    ax2.set_xlabel('env steps (team transitions)')
    ax2.set_ylabel('success rate')
    ax2.set_ylim(-0.02, 1.02)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{table.get('task', '')}: world-model prediction error on held-out data")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
