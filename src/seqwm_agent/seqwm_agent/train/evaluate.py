"""Evaluation in deployment form, and the `seqwm-eval` command.

By default every robot runs what a robot runs (runtime.team.TeamRuntime over runtime.Controller):
its own model (loaded from its own file), planning through its command chain, the chain's
command sent to the simulator; intents travel as on the team's network - each robot waits for
its predecessor as its runtime does (runtime.chain: the deadline of its place in the order, from
the model's measured planning time and the intent hop), a predecessor's intent arrives after its
planning time (drawn around the measured median and p99) and the hop, each lost with probability
`--intent-loss`, then the cache's cached -> masked fallback - and every robot plans alone on what
it received. B episodes run at once (one per environment, no auto-reset);
finished episodes leave the batch when fewer than half are still running (planning is
batch-independent, so this changes no result). Seeded like robots in deterministic mode: the
environments, the loss draws and every planner (per team, per tick) draw from streams derived
from `seed`, so a run is reproducible for a seed, a device and a thread count.

    seqwm-eval models/pushbox --episodes 100 [--seed 2026] [--intent-loss 0.3]
    seqwm-eval models/pushbox --raw-actions      # diagnostic: no command chain (no robot runs it)
    seqwm-eval models/gate_5robots --planner paper   # the paper's sampling settings
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch

from ..core.checkpoint import CheckpointError, load_agent, load_manifest, write_manifest
from ..core.command import ChainSettings, CommandLimits
from ..core.config import PlannerConfig
from ..core.validate import ConfigError, key_values
from ..core.intent import IntentLayout
from ..core.world_model import WorldModel
from ..runtime.chain import LOOPBACK_HOP_MS, measured_plan_ms, preset_planner
from ..runtime.team import LinkConfig, TeamRuntime
from ..sim import MultiQuadEnv, load_task_config
from .diagnostics import CONTROLLERS, FORMS
from .health import Transitions
from .team import ChainedActors, ChainedTeam


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate (sampling noise of the recorded figure)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def chain_settings_of(manifest_chain: dict | None, task_cfg: Any, dt: float) -> ChainSettings:
    """The chain a model's robots run: the manifest's (recorded by the trainer), else the robots'
    defaults (CommandLimits, 2 Hz) at the task's velocity limits and the model's rate."""
    if manifest_chain:
        return ChainSettings.from_dict(manifest_chain)
    vx, vy, wz = task_cfg.action_limits
    return ChainSettings(replace(CommandLimits(), vx=vx, vy=vy, wz=wz), 2.0, 1.0 / dt)


@torch.no_grad()
def run_episodes(models: Sequence[WorldModel], task_cfg: Any, planner_cfg: PlannerConfig,
                 comm: str, episodes: int, seed: int, policy: str = 'planner',
                 device: str | torch.device = 'cpu', record: bool = False,
                 link: LinkConfig = LinkConfig(), chain: ChainSettings | None = None,
                 chain_mode: str = 'plan', action_scale: Sequence[float] | None = None,
                 team: ChainedTeam | None = None,
                 transitions: Transitions | None = None) -> dict[str, Any]:
    """Run `episodes` episodes in parallel; returns metrics (and, with `record`, episode 0's
    frames and the commands every robot sent at each tick). `transitions`: gathers every live
    team transition (for the trainer's health monitor, train/health.py).

    policy 'planner': the deployed controller (chain_mode 'plan'; 'after' and 'off' are the
    diagnostic forms of train/diagnostics.py, which no robot runs); 'actor': each robot's actor mean, through
    the same command chain (the trainer's cheap periodic check). `team`: any other policy acting
    through its robots' chains (a `ChainedTeam` of batch `episodes`, e.g. a model-free baseline;
    `models` may then be empty), scored by the same loop, seeds and success test. Tasks that
    report which robots passed (Gate) add the mean number of robots that got through and how
    often all did: the progress that a 0 % success rate hides."""
    from ..sim.render import EpisodeRecorder
    n = team.n if team is not None else len(models)
    dt = task_cfg.physics.control_dt
    chain = chain or chain_settings_of(None, task_cfg, dt)
    scale = list(action_scale or task_cfg.action_limits)
    env = MultiQuadEnv(task_cfg, episodes, device, seed=seed, auto_reset=False)
    obs = env.reset()
    if team is None:
        mc = models[0].cfg
        layout = IntentLayout(n, planner_cfg.horizon, mc.latent_dim, mc.action_dim)
        if policy == 'planner':
            team = TeamRuntime(models, layout, planner_cfg, chain, scale, episodes, dt, comm,
                               seed, link, device=device, controller=CONTROLLERS[chain_mode])
        else:
            team = ChainedActors(models, layout, chain, scale, episodes, comm, device)
    active = torch.ones(episodes, dtype=torch.bool, device=device)
    rows = torch.arange(episodes, device=device)
    success = torch.zeros(episodes, dtype=torch.bool, device=device)
    ret = torch.zeros(episodes, device=device)
    length = torch.zeros(episodes, dtype=torch.long, device=device)
    passed = None        # Gate: which robots got through the opening (progress where success is 0)
    recorder = EpisodeRecorder(env, 0) if record else None
    sent: list[list[list[float]]] = []      # episode 0: every robot's command (m/s, rad/s) per tick
    if recorder:
        recorder.record()
    plans, tick, t0 = 0, 0, time.perf_counter()
    while bool(active.any()):
        if int(active[rows].sum()) * 2 <= rows.numel():
            keep = active[rows].nonzero().squeeze(1)
            rows = rows[keep]
            team.select(keep)
        commands = torch.zeros(episodes, n, 3, dtype=torch.float64, device=device)
        commands[rows] = team.act(obs[rows], tick)[0]
        if recorder and bool(active[0]):
            sent.append(commands[0].tolist())
        plans += rows.numel() * n
        prev = obs
        obs, reward, term, trunc, info = env.step_commands(commands)
        if transitions is not None:
            scale_t = torch.as_tensor(scale, dtype=torch.float32, device=device)
            transitions.add(prev[rows], commands[rows].float() / scale_t, reward[rows],
                            info['collision'][rows], obs[rows])
        tick += 1
        ended = active & (term | trunc)
        success |= ended & info['success']
        ret = torch.where(ended, info['episode_return'], ret)
        length = torch.where(ended, info['episode_length'], length)
        if 'passed' in info:
            now = info['passed'] & active[:, None]
            passed = now if passed is None else passed | now
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
    if passed is not None:
        count = passed.sum(1).float()
        out.update({'mean_robots_passed': float(count.mean()),
                    'all_passed_rate': float((count == n).float().mean())})
    if isinstance(team, TeamRuntime):
        modes = team.mode_counts.sum(0).tolist()
        total = max(sum(modes), 1)
        per_robot = team.mode_counts.double()
        per_robot = per_robot / per_robot.sum(1, keepdim=True).clamp(min=1)
        ticks = team.mode_counts.sum(1).double().clamp(min=1)
        out.update({'form': FORMS[chain_mode],
                    'chain': chain.to_dict() if chain_mode != 'off' else None,
                    'timing': {**team.timing.to_dict(), 'plan_ms_p50_p99': list(link.plan_ms),
                               'hop_ms_p50_p99': list(link.hop_ms)}, 'intent_loss': link.loss,
                    'intent_deadline_ms': [round(1e3 * team.timing.deadline_s(i), 3)
                                           for i in range(n)],
                    'cache_max_age_ticks': link.cache_max_age_ticks,
                    'mode_fractions': {m: c / total for m, c in zip(('fresh', 'cached', 'masked'),
                                                                   modes)},
                    'robot_mode_fractions': {m: [round(float(v), 4) for v in per_robot[:, j]]
                                             for j, m in enumerate(('fresh', 'cached', 'masked'))},
                    'command_ms': {'mean': [round(float(v), 2) for v in
                                            1e3 * team.command_s_sum / ticks],
                                   'max': [round(float(v), 2) for v in 1e3 * team.command_s_max]}})
    elif policy not in ('planner', 'actor'):       # a baseline's policy: its robots' chains
        out.update({'form': 'deployed', 'chain': team.chain.settings.to_dict()})
    if recorder:
        out['frames'] = recorder.frames
        out['commands'] = sent
    return out


def load_team(model_dir: str | Path, device: str = 'cpu') -> tuple[list[WorldModel], Any]:
    """Every agent's model, each loaded (and verified) from its own file."""
    manifest = load_manifest(model_dir)
    models = [load_agent(model_dir, k, model_set_id=manifest.model_set_id, device=device)[0]
              for k in range(manifest.model.num_agents)]
    return models, manifest


def _losses(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(',') if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f'--intent-loss takes numbers in [0, 1], got {text!r}')
    if not values or not all(0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f'--intent-loss takes numbers in [0, 1], got {text!r}')
    return values


SUMMARY_KEYS = ('intent_loss', 'success_rate', 'success_ci95', 'successes', 'mean_return',
                'mean_length', 'mode_fractions', 'robot_mode_fractions', 'command_ms',
                'mean_robots_passed', 'all_passed_rate')




def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='seqwm-eval', description='Evaluate a SeqWM model dir in '
                                 'deployment form: the robots\' runtime, command chain, intent '
                                 'timing and fallbacks.')
    ap.add_argument('model_dir')
    ap.add_argument('--episodes', type=int, default=100)
    ap.add_argument('--seed', type=int, default=2026, help='evaluation seed (envs and planners)')
    ap.add_argument('--comm', choices=('seq', 'dec'), default=None,
                    help='default: the comm mode the model was trained with')
    ap.add_argument('--policy', choices=('planner', 'actor'), default='planner')
    ap.add_argument('--intent-loss', type=_losses, default=[0.0], metavar='P[,P...]',
                    help='probability that an intent message is lost; a list runs one '
                    'evaluation per value (the robustness table), e.g. 0,0.1,0.3')
    ap.add_argument('--plan-ms', type=float, default=0.0,
                    help="one robot's planning time, ms, taken as fixed (0: the model's "
                    'measured p50 and p99, manifest deployment.plan_ms); the robots budget its p99')
    ap.add_argument('--hop-ms', type=float, default=0.0,
                    help='one intent hop, ms, taken as fixed (0: the loopback measurement)')
    ap.add_argument('--planner', choices=('deployment', 'paper'), default='deployment',
                    help="the manifest's deployment planner (chosen by seqwm-budget) or the "
                    "paper's sampling settings")
    ap.add_argument('--cache-max-age', type=int, default=3, help="the agents' cache_max_age_ticks")
    form = ap.add_mutually_exclusive_group()
    form.add_argument('--raw-actions', action='store_true',
                      help='diagnostic: send the planner\'s raw first action, no command chain '
                      '(no robot runs this)')
    form.add_argument('--chain-after', action='store_true',
                      help='diagnostic: plan without the chain, then send through it')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--threads', type=int, default=1, help='torch threads (results are '
                    'deterministic for a seed and a thread count)')
    ap.add_argument('--out', default=None, help='JSON file (default: <model_dir>/eval.json)')
    ap.add_argument('--render', action='store_true', help='write eval_episode0.png/.gif')
    ap.add_argument('--task-set', action='append', default=[], metavar='KEY=VALUE',
                    help="evaluate in the model's training task changed by KEY=VALUE (YAML "
                    'value, dotted keys nest), e.g. success=passed for a Gate model trained '
                    "with success=targets; recorded beside the results")
    ap.add_argument('--no-manifest', action='store_true',
                    help='do not record the result in manifest.yaml')
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model_dir = Path(args.model_dir)
    try:
        models, manifest = load_team(model_dir, args.device)
    except CheckpointError as e:
        hint = (' (a model-free baseline: evaluate it with seqwm-baseline eval)'
                if 'seqwm-baseline' in str(e) else '')
        print(f'seqwm-eval: {e}{hint}', file=sys.stderr)
        return 2
    comm = args.comm or manifest.training.get('comm', 'seq')
    try:
        task_set = key_values(args.task_set, '--task-set')
        task_cfg = load_task_config(manifest.training.get('task_config') or manifest.task,
                                    task_set)
    except ConfigError as e:
        print(f'seqwm-eval: {e}', file=sys.stderr)
        return 2
    planner, measured = preset_planner(manifest, args.planner)
    planner_cfg = PlannerConfig.from_dict(planner)
    plan_ms = (args.plan_ms, args.plan_ms) if args.plan_ms > 0 else measured_plan_ms(measured)
    if plan_ms is None:
        print(f'seqwm-eval: {model_dir}: no measured planning time for the {args.planner} planner '
              f'(manifest deployment: run seqwm-budget on it), or pass --plan-ms', file=sys.stderr)
        return 2
    hop_ms = (args.hop_ms, args.hop_ms) if args.hop_ms > 0 else LOOPBACK_HOP_MS
    chain = chain_settings_of(manifest.training.get('command_chain'), task_cfg, manifest.dt)
    scale = [manifest.action_scaling[k] for k in ('vx', 'vy', 'wz')]
    chain_mode = 'off' if args.raw_actions else 'after' if args.chain_after else 'plan'
    results, frames, sent = [], None, None
    for k, loss in enumerate(args.intent_loss):
        link = LinkConfig(plan_ms, hop_ms, loss, args.cache_max_age)
        res = run_episodes(models, task_cfg, planner_cfg, comm, args.episodes, args.seed,
                           args.policy, args.device, record=args.render and k == 0, link=link,
                           chain=chain, chain_mode=chain_mode, action_scale=scale)
        frames = res.pop('frames', None) or frames
        sent = res.pop('commands', None) or sent
        results.append(res)
        print(json.dumps({k: res.get(k) for k in ('comm', 'form', 'intent_loss', 'episodes',
                                                  'success_rate', 'success_ci95', 'mean_return',
                                                  'mean_length', 'mean_robots_passed',
                                                  'wall_s') if k in res}), flush=True)
    info = {'model_dir': str(model_dir), 'model_set_id': manifest.model_set_id,
            'task': manifest.task, 'planner': planner_cfg.to_dict(), 'device': args.device,
            'threads': args.threads, 'cpu': platform.processor() or platform.machine(),
            'torch': torch.__version__, 'task_set': task_set}
    doc = {**info, 'results': results}
    out = Path(args.out) if args.out else model_dir / 'eval.json'
    if frames:
        doc['episode0'] = render_episode(frames, sent, task_cfg, manifest.dt, out.parent,
                                         f'{manifest.task} {comm}: episode 0 of eval seed '
                                         f'{args.seed}, {len(frames) - 1} steps')
    out.write_text(json.dumps(doc, indent=2) + '\n')
    if not args.no_manifest and args.out is None:
        record_evaluation(model_dir, manifest, results, args.threads, args.device, task_set)
    return 0


def render_episode(frames: list, sent: list, task_cfg: Any, dt: float, out_dir: Path,
                   title: str) -> dict:
    """eval_episode0.png / .gif and eval_behaviour.png (every robot's forward command, Gate's
    passing order) of a recorded episode; returns the behaviour summary."""
    from ..sim.render import render_behaviour, render_gif, render_png
    render_png(frames, task_cfg, out_dir / 'eval_episode0.png', title=title)
    render_gif(frames, task_cfg, out_dir / 'eval_episode0.gif', stride=2, title=title)
    return render_behaviour(frames, sent, task_cfg, dt, out_dir / 'eval_behaviour.png',
                            title=f'{title}: forward command sent by each robot')


def record_evaluation(model_dir: Path, manifest: Any, results: Sequence[dict], threads: int,
                      device: str, task_set: dict | None = None) -> None:
    """The manifest's `evaluation`: the settings shared by the runs and one summary per run."""
    first = results[0]
    manifest.evaluation = {
        **{k: first.get(k) for k in ('comm', 'policy', 'form', 'episodes', 'seed', 'timing',
                                     'intent_deadline_ms', 'cache_max_age_ticks', 'chain')},
        'threads': threads, 'device': device, 'task_set': dict(task_set or {}),
        'results': [{k: r.get(k) for k in SUMMARY_KEYS} for r in results]}
    write_manifest(model_dir, manifest)


if __name__ == '__main__':
    raise SystemExit(main())
