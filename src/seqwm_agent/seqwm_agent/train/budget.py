"""`seqwm-budget`: choose a model's deployment planner by measurement, and record it.

The paper's sampling settings (512 samples, 64 elites, 6 iterations) are far more than small
models need, and a sequential chain of five robots cannot afford them inside a 100 ms tick. For
each point of a grid of samples x elites x iterations (KL early stop on and off) this measures

* the planning time of one robot at B = 1 (the deployed `Controller`: planner and command chain,
  one torch thread), p50 and p99 over real observations, on this machine;
* the deployed-form success over `--episodes` episodes (seqwm-eval's loop: every robot's own
  model, the chain's timing from *that point's* planning time, intents fresh / cached / masked
  as the robots' schedulers decide);

then picks the cheapest point (lowest p99) whose chain fits the control period and whose success
is inside the 95 % interval of the paper settings' success, writes `planner_budget.json` and
`planner_budget.png` (success against planning time) beside the model, and records the choice in
the manifest: `planner` becomes the deployment planner, `deployment` holds its measured
planning time (what the robots' chain timing reads) and the paper settings' (one option away:
`seqwm-eval --planner paper`, agent parameter `planner.preset: paper`).

    seqwm-budget models/gate_5robots [--episodes 50] [--no-manifest]
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..core.checkpoint import CheckpointError, write_manifest
from ..core.config import PlannerConfig
from ..core.validate import key_values
from ..core.intent import IntentLayout
from ..runtime.chain import LOOPBACK_HOP_MS, chain_timing, preset_planner
from ..runtime.controller import Controller
from ..runtime.team import LinkConfig
from ..sim import MultiQuadEnv, load_task_config
from .evaluate import chain_settings_of, load_team, run_episodes


@dataclass(frozen=True)
class Point:
    """One sampling budget."""

    num_samples: int
    num_elites: int
    iterations: int
    early_stop: bool = False

    @property
    def label(self) -> str:
        return (f'{self.num_samples}x{self.num_elites}x{self.iterations}'
                + (' KL' if self.early_stop else ''))

    def config(self, base: PlannerConfig) -> PlannerConfig:
        pi = min(base.num_pi_trajs, max(self.num_samples // 2, 1))
        return replace(base, num_samples=self.num_samples, num_elites=self.num_elites,
                       iterations=self.iterations, early_stop=self.early_stop, num_pi_trajs=pi)


_DEFAULTS = PlannerConfig()       # the paper's sampling settings (App. A.1, Table 2)
PAPER = Point(_DEFAULTS.num_samples, _DEFAULTS.num_elites, _DEFAULTS.iterations)
GRID = (PAPER, Point(512, 64, 6, True), Point(256, 32, 4), Point(256, 32, 4, True),
        Point(128, 16, 3), Point(64, 8, 2), Point(32, 8, 2))


@torch.no_grad()
def plan_times_ms(models, manifest, task_cfg, cfg: PlannerConfig, plans: int, seed: int) -> np.ndarray:
    """Wall time of `plans` deployed plans at B = 1 (the last robot of the order: it plans on
    the longest intent), on observations of a scripted rollout of the task."""
    n = len(models)
    k = n - 1
    dt = manifest.dt
    layout = IntentLayout(n, cfg.horizon, models[0].cfg.latent_dim, models[0].cfg.action_dim)
    chain = chain_settings_of(manifest.training.get('command_chain'), task_cfg, dt)
    scale = [manifest.action_scaling[a] for a in ('vx', 'vy', 'wz')]
    ctl = Controller(models[k], layout, cfg, k, chain, scale, batch=1, seed=seed)
    env = MultiQuadEnv(task_cfg, 1, 'cpu', seed=seed)
    obs = env.reset()
    gen = torch.Generator().manual_seed(seed)
    out = []
    for t in range(plans + 10):
        t0 = time.perf_counter()
        step = ctl.step(obs[:, k], t, dt, [seed + t])
        ms = 1e3 * (time.perf_counter() - t0)
        if t >= 10:                                   # warm-up plans are not counted
            out.append(ms)
        cmd = torch.zeros(1, n, 3, dtype=torch.float64)
        cmd[:, :, :] = (torch.rand(1, n, 3, generator=gen, dtype=torch.float64) * 2 - 1) * 0.3
        cmd[:, k] = step.commands
        obs = env.step_commands(cmd)[0]
    return np.asarray(out)


def percentiles(ms: np.ndarray) -> dict:
    return {'p50': round(float(np.percentile(ms, 50)), 3),
            'p99': round(float(np.percentile(ms, 99)), 3), 'n': int(ms.size)}


def machine() -> dict:
    return {'cpu': platform.processor() or platform.machine(), 'torch': str(torch.__version__),
            'threads': 1}


def measure_deployment(models, manifest, task_cfg, plans: int = 60, seed: int = 0) -> dict:
    """The manifest's `deployment` for its own planner, measured now (the trainer's export and
    `--measure-only`: the chain timing of a model whose planner was not searched)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ms = plan_times_ms([copy.deepcopy(m).cpu() for m in models], manifest, task_cfg,
                           PlannerConfig.from_dict(manifest.planner), plans, seed)
    finally:
        torch.set_num_threads(threads)
    return {'chosen': 'the manifest\'s planner (not searched: run seqwm-budget)',
            'plan_ms': percentiles(ms), 'machine': machine()}


def choose(rows: list[dict]) -> dict:
    """The cheapest fitting point whose success lies in the paper point's 95 % interval (the
    paper point itself when none does)."""
    paper = next(r for r in rows if r['point'] == PAPER.label)
    lo = paper['success_ci95'][0]
    ok = [r for r in rows if r['fits'] and r['success_rate'] >= lo]
    return min(ok, key=lambda r: r['plan_ms']['p99']) if ok else paper


def plot(rows: list[dict], chosen: dict, title: str, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    from matplotlib.ticker import NullFormatter, ScalarFormatter
    for i, r in enumerate(sorted(rows, key=lambda r: r['plan_ms']['p99'])):
        x = r['plan_ms']['p99']
        y = r['success_rate']
        lo, hi = r['success_ci95']
        colour = 'tab:green' if r is chosen else 'tab:blue' if r['fits'] else 'tab:gray'
        # grey: the chain of this team would not fit the control period at this planning time
        ax.errorbar([x], [y], yerr=[[y - lo], [hi - y]], fmt='o', color=colour, capsize=3)
        ax.annotate(r['point'], (x, y), textcoords='offset points', xytext=(4, -14 - 9 * (i % 4)),
                    fontsize=7)
    ax.set_xscale('log')
    ax.set_xticks([t for t in (2, 5, 10, 20, 50, 100, 200) if t <= 2 * max(
        r['plan_ms']['p99'] for r in rows)])
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel('planning time p99 at B = 1, ms (log)')
    ax.set_ylabel('deployed success (95 % CI)')
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='seqwm-budget', description=__doc__.split('\n')[0])
    ap.add_argument('model_dir')
    ap.add_argument('--episodes', type=int, default=50)
    ap.add_argument('--plans', type=int, default=300, help='timed plans per point')
    ap.add_argument('--seed', type=int, default=2026)
    ap.add_argument('--points', default='', help="comma-separated labels to run (default: all), "
                    "e.g. '512x64x6,128x16x3'")
    ap.add_argument('--task-set', action='append', default=[], metavar='KEY=VALUE',
                    help="as seqwm-eval's (default: the task_set of the model's recorded "
                    'evaluation)')
    ap.add_argument('--no-manifest', action='store_true', help='do not update manifest.yaml')
    ap.add_argument('--measure-only', action='store_true',
                    help="only measure the manifest planner's planning time and record it as "
                    'the deployment timing (no search, no episodes)')
    ap.add_argument('--retime', action='store_true',
                    help="measure the planning times of planner_budget.json's points again, "
                    'keep their success (e.g. on a quiet machine, or on the robot\'s computer), '
                    'choose again')
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model_dir = Path(args.model_dir)
    try:
        models, manifest = load_team(model_dir)
    except CheckpointError as e:
        print(f'seqwm-budget: {e}', file=sys.stderr)
        return 2
    if args.measure_only:
        task_cfg = load_task_config(manifest.training.get('task_config') or manifest.task)
        manifest.deployment = measure_deployment(models, manifest, task_cfg, args.plans,
                                                 args.seed)
        print(json.dumps(manifest.deployment))
        if not args.no_manifest:
            write_manifest(model_dir, manifest)
        return 0
    # the task as the model's recorded evaluation ran it (e.g. Gate's success=passed)
    task_set = dict((manifest.evaluation or {}).get('task_set') or {})
    task_set.update(key_values(args.task_set, '--task-set'))
    task_cfg = load_task_config(manifest.training.get('task_config') or manifest.task, task_set)
    comm = manifest.training.get('comm', 'seq')
    base = PlannerConfig.from_dict(preset_planner(manifest, 'paper')[0])
    chain = chain_settings_of(manifest.training.get('command_chain'), task_cfg, manifest.dt)
    scale = [manifest.action_scaling[a] for a in ('vx', 'vy', 'wz')]
    wanted = {s.strip() for s in args.points.split(',') if s.strip()}
    grid = [p for p in GRID if not wanted or p.label.replace(' KL', '+KL') in wanted
            or p.label in wanted or p == PAPER]
    n = len(models)
    rows = []
    if args.retime:
        old = json.loads((model_dir / 'planner_budget.json').read_text())
        for row in old['points']:
            cfg = PlannerConfig.from_dict(row['planner'])
            plan = percentiles(plan_times_ms(models, manifest, task_cfg, cfg, args.plans,
                                             args.seed))
            timing = chain_timing(manifest.dt, {'plan_ms': plan})
            rows.append({**row, 'plan_ms': plan, 'fits': timing.check(n) is None,
                         'last_command_ms': round(1e3 * timing.command_s(n - 1), 2),
                         'success_plan_ms': row.get('success_plan_ms', row['plan_ms'])})
            print(json.dumps({k: rows[-1][k] for k in ('point', 'plan_ms', 'fits')}), flush=True)
        args.episodes, args.seed = old['episodes'], old['seed']
    for p in grid if not args.retime else []:
        cfg = p.config(base)
        plan = percentiles(plan_times_ms(models, manifest, task_cfg, cfg, args.plans, args.seed))
        timing = chain_timing(manifest.dt, {'plan_ms': plan})
        link = LinkConfig((plan['p50'], plan['p99']), LOOPBACK_HOP_MS)
        res = run_episodes(models, task_cfg, cfg, comm, args.episodes, args.seed, 'planner',
                           'cpu', link=link, chain=chain, action_scale=scale)
        row = {'point': p.label, 'planner': cfg.to_dict(), 'plan_ms': plan,
               'fits': timing.check(n) is None, 'last_command_ms': round(1e3 * timing.command_s(n - 1), 2),
               **{k: res.get(k) for k in ('episodes', 'success_rate', 'success_ci95',
                                          'mean_return', 'mean_robots_passed',
                                          'robot_mode_fractions', 'command_ms', 'wall_s')}}
        rows.append(row)
        print(json.dumps({k: row[k] for k in ('point', 'plan_ms', 'fits', 'success_rate',
                                              'success_ci95', 'wall_s')}), flush=True)
    chosen = choose(rows)
    paper = next(r for r in rows if r['point'] == PAPER.label)
    host = machine()
    doc = {'model_dir': str(model_dir), 'model_set_id': manifest.model_set_id,
           'task': manifest.task, 'task_set': task_set, 'robots': n, 'episodes': args.episodes,
           'seed': args.seed,
           'machine': host, 'hop_ms': dict(zip(('p50', 'p99'), LOOPBACK_HOP_MS)),
           'rule': 'cheapest point (planning p99) whose chain fits the control period and whose '
                   'success is inside the paper settings\' 95 % interval',
           'chosen': chosen['point'], 'points': rows}
    (model_dir / 'planner_budget.json').write_text(json.dumps(doc, indent=2) + '\n')
    plot(rows, chosen, f'{model_dir.name}: deployed success against planning time '
         f'({args.episodes} episodes a point; chosen {chosen["point"]})',
         model_dir / 'planner_budget.png')
    print(json.dumps({'chosen': chosen['point'], 'plan_ms': chosen['plan_ms'],
                      'success_rate': chosen['success_rate'],
                      'paper_success_rate': paper['success_rate']}))
    if not args.no_manifest:
        manifest.planner = {**manifest.planner, **chosen['planner']}
        manifest.deployment = {'chosen': chosen['point'], 'plan_ms': chosen['plan_ms'],
                               'machine': host, 'grid': 'planner_budget.json',
                               'paper': {'plan_ms': paper['plan_ms']}}
        write_manifest(model_dir, manifest)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
