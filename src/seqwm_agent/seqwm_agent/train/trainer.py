"""The training loop: collect, store, update sequentially, evaluate, checkpoint, export.

Data collection (docs/trainer.md says why): planning every tick in hundreds of environments is
too slow on a CPU, so `num_envs` environments act with the actors (the planner's own proposal
distribution, each conditioned on its predecessors' actor proposals as the planner's intent
would carry them) plus Gaussian exploration noise, and `plan_envs` environments act with the
deployed controllers (runtime.team.TeamRuntime, `collect_planner` settings) once every
`plan_every` actor steps. The first `warmup_env_steps` transitions are uniformly random.

The command chain is in the loop everywhere: every action (random, actor or planner) is the
input of the robot's command chain (low-pass, acceleration limit, clamp; one chain state per
environment and robot, reset with the episode), the simulator executes the chain's command, and
the buffer stores that command (in model units, command / action_scale) as the action taken. So
the world model learns the dynamics of what robots execute, and the planner plans through the
chain (core/planner.py). The chain's settings are recorded in the manifest
(`training.command_chain`).

Every `eval_every_env_steps` the team is evaluated with the deterministic actors and with the
planner (`eval_planner` settings); the model dir (`--out`) is rewritten whenever the planner
evaluation is at least as good as the best so far, so it always holds the best model the run
produced. `checkpoint.pt` in the run dir holds everything needed to `--resume`.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..core.checkpoint import Manifest, save_team
from .budget import measure_deployment
from ..core.intent import IntentLayout
from ..core.world_model import WorldModel
from ..sim import MultiQuadEnv, task_config_to_dict
from .buffer import Batch, ReplayBuffer
from .config import TrainConfig
from .curves import plot_learning_curve, read_metrics
from ..runtime.team import ChainLink, TeamRuntime
from .evaluate import chain_settings_of, run_episodes
from .grow import grow_agent, source_index
from .health import Transitions, learning_health
from .team import ChainedActors
from .update import SequentialUpdate


def git_commit() -> str:
    try:
        root = Path(__file__).resolve().parents[4]
        out = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=root, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or 'unknown'
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


STATE_FILE = 'trainer_state.pt'     # state() beside an exported model: what continue_from reads


def cat_batches(a: Batch, b: Batch) -> Batch:
    return Batch(*(torch.cat([x, y], 1) for x, y in zip(a, b)))


class Trainer:
    """One training run of a team on one task (all agents, one process)."""

    def __init__(self, task_cfg: Any, cfg: TrainConfig, run_dir: str | Path,
                 out_dir: str | Path | None = None, device: str = 'cpu',
                 progress: bool = True) -> None:
        self.cfg, self.device = cfg, torch.device(device)
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = Path(out_dir) if out_dir else None
        self.progress = progress
        torch.manual_seed(cfg.seed)
        self.env = MultiQuadEnv(task_cfg, cfg.num_envs, self.device, seed=cfg.seed,
                                compile=cfg.compile)
        self.task_cfg = self.env.cfg
        n, obs_dim = self.env.num_robots, self.env.obs_dim
        self.n = n
        self.model_cfg = cfg.model_config(obs_dim, n)
        self.models = [WorldModel(self.model_cfg).to(self.device) for _ in range(n)]
        mc = self.model_cfg
        self.layout = IntentLayout(n, cfg.horizon, mc.latent_dim, mc.action_dim)
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 7)
        self.learner = SequentialUpdate(self.models, self.layout, cfg,
                                        torch.Generator(device=self.device).manual_seed(cfg.seed + 11))
        use_plan = cfg.plan_envs > 0 and cfg.plan_every > 0
        total_envs = cfg.num_envs + (cfg.plan_envs if use_plan else 0)
        cap = cfg.buffer_size
        self.buffer = ReplayBuffer(cap * cfg.num_envs // total_envs, cfg.num_envs, n, obs_dim,
                                   mc.action_dim, self.device)
        dt = self.task_cfg.physics.control_dt
        self.chain = chain_settings_of(None, self.task_cfg, dt)
        self.action_scale = list(self.task_cfg.action_limits)
        self.actors = ChainedActors(self.models, self.layout, self.chain, self.action_scale,
                                    cfg.num_envs, cfg.comm, self.device, cfg.explore_std,
                                    deterministic=False, generator=self.gen,
                                    compile_mode=cfg.compile)
        self.plan_env = self.plan_buffer = self.plan_team = self.plan_actors = None
        self.plan_tick = 0
        if use_plan:
            self.plan_env = MultiQuadEnv(task_cfg, cfg.plan_envs, self.device, seed=cfg.seed + 1,
                                         compile=cfg.compile)
            self.plan_buffer = ReplayBuffer(max(cap * cfg.plan_envs // total_envs, 4 * cfg.plan_envs),
                                            cfg.plan_envs, n, obs_dim, mc.action_dim, self.device)
            self.plan_actors = ChainedActors(self.models, self.layout, self.chain,
                                             self.action_scale, cfg.plan_envs, cfg.comm,
                                             self.device, cfg.explore_std, deterministic=False,
                                             generator=self.gen, compile_mode=cfg.compile)
            if cfg.comm != 'cen':      # cen has no planning form: its extra envs use the actor
                self.plan_team = TeamRuntime(self.models, self.layout,
                                             cfg.planner_config('collect_planner'), self.chain,
                                             self.action_scale, cfg.plan_envs, dt, cfg.comm,
                                             cfg.seed + 3, cfg.link_config(), deterministic=False,
                                             device=self.device)
        # the actor envs' link: which intent forms each agent would have planned on (seq)
        self.link = ChainLink(n, cfg.num_envs, dt, cfg.link_config(), cfg.horizon,
                              seed=cfg.seed + 5) if cfg.comm == 'seq' else None
        self.obs = self.env.reset()
        self.plan_obs = self.plan_env.reset() if self.plan_env else None
        self.env_steps = 0
        self.iteration = 0
        self.wall_s = 0.0           # accumulated over resumed segments
        self.eval_wall_s = 0.0      # of which periodic evaluation (a measurement, not training)
        self.update_credit = 0.0
        self.best_success = -1.0
        self.best: dict[str, Any] = {}
        self.next_eval = cfg.eval_every_env_steps
        self.metrics_path = self.run_dir / 'metrics.jsonl'
        self.checkpoint_config: dict[str, Any] | None = None   # set by resume()
        self.init_record: dict[str, Any] | None = None          # set by init_from()
        self._recent: list[tuple[float, bool]] = []
        self.health: dict[str, Any] | None = None   # the last periodic evaluation's (health.py)
        self.segments: list[dict[str, Any]] = []     # continue_from() records, oldest first
        self.updates_from = cfg.warmup_env_steps     # env steps before updates (re)start

    # ---- persistence ---------------------------------------------------------------------------
    _COUNTERS = ('env_steps', 'iteration', 'wall_s', 'eval_wall_s', 'update_credit',
                 'best_success', 'best', 'next_eval', 'updates_from')

    def state(self) -> dict[str, Any]:
        """Everything a run is, but its replay buffers: config, weights, optimizers, Q scales,
        counters, RNG, provenance. Exported with the model (trainer_state.pt), so a run can be
        continued on another machine from what is committed (continue_from)."""
        return {'config': self.cfg.to_dict(), 'models': [m.state_dict() for m in self.models],
                'learner': self.learner.state_dict(), 'gen': self.gen.get_state(),
                **{k: getattr(self, k) for k in self._COUNTERS},
                # a run started --init-from keeps its provenance (and its curve's offsets)
                # across --resume: without it a resumed segment's manifest forgets the source
                'init_record': self.init_record, 'health': self.health,
                'segments': self.segments}

    def _load_state(self, state: dict[str, Any]) -> None:
        for m, s in zip(self.models, state['models']):
            m.load_state_dict(s)
        self.learner.load_state_dict(state['learner'])
        for k in self._COUNTERS:
            if k in state:
                setattr(self, k, state[k])
        self.eval_wall_s = float(self.eval_wall_s)
        self.init_record = state.get('init_record')
        self.health = state.get('health')
        self.segments = list(state.get('segments') or [])
        self.gen.set_state(state['gen'])
        self.checkpoint_config = state['config']

    def checkpoint(self) -> Path:
        """Everything needed to resume here: state() plus the replay buffers (filled rows)."""
        state = {**self.state(), 'buffer': self.buffer.state_dict(),
                 'plan_buffer': self.plan_buffer.state_dict() if self.plan_buffer else None}
        path = self.run_dir / 'checkpoint.pt'
        tmp = path.with_suffix('.tmp')
        torch.save(state, tmp)
        os.replace(tmp, path)
        if self.out_dir is not None and (self.out_dir / 'manifest.yaml').is_file():
            self.save_state(self.out_dir)
        return path

    def save_state(self, out_dir: Path) -> None:
        """trainer_state.pt beside the exported model: the run's latest state() (the agent
        files are its best evaluation), what --continue resumes on another machine; and the
        run's whole curve so far (metrics.jsonl), which a continued run extends."""
        tmp = out_dir / (STATE_FILE + '.tmp')
        torch.save(self.state(), tmp)
        os.replace(tmp, out_dir / STATE_FILE)
        (out_dir / 'metrics.jsonl').write_text(self.metrics_path.read_text()
                                               if self.metrics_path.exists() else '')

    def resume(self) -> bool:
        """Continue from <run_dir>/checkpoint.pt, buffers included (the same machine)."""
        path = self.run_dir / 'checkpoint.pt'
        if not path.exists():
            return False
        # weights only: a run directory is data, and a crafted pickle must not run code here
        state = torch.load(path, map_location=self.device, weights_only=True)
        self._load_state(state)
        self.buffer.load_state_dict(state['buffer'])
        if self.plan_buffer and state['plan_buffer']:
            self.plan_buffer.load_state_dict(state['plan_buffer'])
        self._restart_envs()
        return True

    def continue_from(self, model_dir: str | Path) -> dict[str, Any]:
        """Continue the run a model dir was exported from (its trainer_state.pt), on any
        machine: the replay buffer does not travel, so it is refilled with the current policy
        (warmup_env_steps transitions, no updates meanwhile) and the log and manifest say so.
        The counters, the curve (the model's metrics.jsonl) and the wall time go on."""
        path = Path(model_dir) / STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(f'{path}: the model dir holds no trainer state (exported '
                                    'before runs could be continued); use --init-from')
        state = torch.load(path, map_location=self.device, weights_only=True)
        # keys added since the run started count with their defaults
        saved, now = TrainConfig.from_dict(state['config']).to_dict(), self.cfg.to_dict()
        if saved != now:
            changed = sorted(k for k in saved if saved[k] != now.get(k))
            if set(changed) - {'max_wall_s', 'total_env_steps'}:
                raise ValueError(f'{model_dir}: trained with other settings ({", ".join(changed)});'
                                 ' a continued run keeps its config (only the budgets may grow)')
        self._load_state(state)
        self.updates_from = self.env_steps + self.cfg.warmup_env_steps
        prior = Path(model_dir) / 'metrics.jsonl'     # one curve over every segment
        if prior.is_file() and not (self.metrics_path.exists() and self.metrics_path.stat().st_size):
            self.metrics_path.write_text(prior.read_text())
        segment = {'continued_from': str(model_dir), 'env_steps': self.env_steps,
                   'updates': self.learner.num_updates, 'train_wall_s': round(self.train_wall_s, 1),
                   'buffer': f'refilled with the current policy: {self.cfg.warmup_env_steps} '
                             'transitions before updates resume'}
        self.segments.append(segment)
        self.log({'kind': 'segment', **segment})
        self._restart_envs()
        return segment

    def _restart_envs(self) -> None:
        # environments restart their episodes from a seed derived from the resume point
        self.obs = self.env.reset(seed=self.cfg.seed + 100 + self.iteration)
        if self.plan_env:
            self.plan_obs = self.plan_env.reset(seed=self.cfg.seed + 200 + self.iteration)

    def init_from(self, model_dir: str | Path) -> dict[str, Any]:
        """Start from a shipped model's weights (fresh optimizers and buffer): the way to train
        a model further than one session allows, since a run directory (its buffer) does not
        travel but the model directory does. The model must be this task's with this run's
        widths; a smaller team of it seeds a larger one (a team-size curriculum, grow.py),
        otherwise the team size and observation must match. The manifest records where the run
        started and the totals (a smaller source's training included: it is part of the cost)."""
        from ..core.checkpoint import load_agent, load_manifest
        source = load_manifest(model_dir)
        m_src = source.model.num_agents
        grow = m_src != self.n      # a smaller team of the same task seeds this one (grow.py)
        if not grow and source.model != self.model_cfg:
            raise ValueError(f'{model_dir}: model widths {source.model} differ from this run\'s '
                             f'{self.model_cfg}')
        team = [f'go2w_{k + 1}' for k in range(m_src)]
        for k, m in enumerate(self.models):
            if not grow:
                loaded, _ = load_agent(model_dir, k, model_set_id=source.model_set_id,
                                       obs_spec=self.env.obs_spec(), task=self.task_cfg.name,
                                       team=team)
                m.load_state_dict(loaded.state_dict())
                continue
            s = source_index(k, m_src)
            loaded, _ = load_agent(model_dir, s, model_set_id=source.model_set_id,
                                   task=self.task_cfg.name, team=team)
            m.load_state_dict(grow_agent(loaded.state_dict(), source.model, source.obs_spec, s,
                                         m.state_dict(), self.model_cfg, self.env.obs_spec()))
        t = source.training or {}
        keys = ('env_steps', 'updates', 'train_wall_time_s')
        # what went into the source model over all its segments (its own total if it was
        # itself started from another model)
        before = (t.get('init_from') or {}).get('total') or {k: t.get(k, 0) for k in keys}
        self.init_record = {'model_dir': str(model_dir), 'model_set_id': source.model_set_id,
                            'num_agents': m_src,
                            'before': {'env_steps': int(before.get('env_steps', 0)),
                                       'updates': int(before.get('updates', 0)),
                                       'train_wall_time_s': float(before.get('train_wall_time_s', 0))}}
        prior = Path(model_dir) / 'metrics.jsonl'     # the source's curve comes first
        if prior.is_file() and not (self.metrics_path.exists() and self.metrics_path.stat().st_size):
            self.metrics_path.write_text(prior.read_text())
        return self.init_record

    def export_checkpoint(self) -> Manifest:
        """Write the model dir from the run's checkpoint as it stands, without training.

        The manifest records the config the checkpoint was trained under (not this command
        line's), so a model picked after a run ends says truthfully how it was made; its
        `evaluation` starts empty for `seqwm-eval` to fill.
        """
        if self.out_dir is None:
            raise ValueError('export_checkpoint needs an out dir')
        if not self.resume():
            raise FileNotFoundError(f'no checkpoint.pt in {self.run_dir}')
        self.cfg = TrainConfig.from_dict(self.checkpoint_config)
        return self.export(self.out_dir)

    @property
    def train_wall_s(self) -> float:
        """Wall time spent training: collection, updates, compilation, checkpoints; not the
        periodic evaluation (`max_wall_s` budgets this)."""
        return self.wall_s - self.eval_wall_s

    def log(self, record: dict) -> None:
        """Append a record to metrics.jsonl; after init_from() its counters continue the
        source model's (so one learning curve spans every segment)."""
        if self.init_record is not None:
            before = self.init_record['before']
            record = dict(record)
            for key in ('env_steps', 'updates'):
                if key in record:
                    record[key] += before[key]
            for key in ('train_wall_s', 'wall_s'):     # the source's evaluation time is not known
                if key in record:
                    record[key] = round(record[key] + before['train_wall_time_s'], 1)
        with open(self.metrics_path, 'a') as f:
            f.write(json.dumps(record) + '\n')

    def export(self, out_dir: Path, evaluation: dict | None = None) -> Manifest:
        """Write agent_<k>.pt + manifest.yaml (+ learning curve) to `out_dir`."""
        buf = io.BytesIO()
        torch.save([m.state_dict() for m in self.models], buf)
        digest = hashlib.sha256(buf.getvalue()).hexdigest()[:10]
        lim = self.task_cfg.action_limits
        manifest = Manifest(
            model_set_id=f'{self.task_cfg.name}-{self.cfg.comm}-s{self.cfg.seed}-{digest}',
            model=self.model_cfg, obs_spec=self.env.obs_spec(),
            action_scaling={'vx': lim[0], 'vy': lim[1], 'wz': lim[2]},
            dt=self.task_cfg.physics.control_dt,
            order=[f'go2w_{k + 1}' for k in range(self.n)], task=self.task_cfg.name,
            planner=self.cfg.planner_config().to_dict(),
            training={'comm': self.cfg.comm, 'command_chain': self.chain.to_dict(),
                      'env_steps': self.env_steps,
                      'updates': self.learner.num_updates, 'wall_time_s': round(self.wall_s, 1),
                      'train_wall_time_s': round(self.train_wall_s, 1),
                      'compiled_update': self.learner.compiled,
                      'device': str(self.device), 'torch_threads': torch.get_num_threads(),
                      'git_commit': git_commit(), 'seed': self.cfg.seed,
                      'health': self.health, 'segments': self.segments,
                      'config': self.cfg.to_dict(),
                      'task_config': task_config_to_dict(self.task_cfg)}
            | ({'init_from': self._init_totals()} if self.init_record else {}),
            evaluation=evaluation or {})
        manifest.deployment = measure_deployment(self.models, manifest, self.task_cfg,
                                                 seed=self.cfg.seed)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_team(out_dir, [m.cpu() for m in self.models], manifest)
        for m in self.models:
            m.to(self.device)
        self.save_state(out_dir)
        plot_learning_curve(read_metrics(self.metrics_path), out_dir / 'learning_curve.png',
                            title=f'{self.task_cfg.name} ({self.cfg.comm}), {self.n} robots')
        return manifest

    def _init_totals(self) -> dict[str, Any]:
        """The manifest's `init_from`: the source model and the totals over every segment."""
        rec = dict(self.init_record or {})
        before = rec['before']
        rec['total'] = {'env_steps': before['env_steps'] + self.env_steps,
                        'updates': before['updates'] + self.learner.num_updates,
                        'train_wall_time_s': round(before['train_wall_time_s']
                                                   + self.train_wall_s, 1)}
        return rec

    # ---- one iteration -------------------------------------------------------------------------
    def _act(self, obs: torch.Tensor, actors: ChainedActors) -> torch.Tensor:
        """Commands (B, n, 3) m/s: random in the warm-up (the actors, noisy, when the run
        started from a trained model), else the actors, through the chain."""
        if self.env_steps < self.cfg.warmup_env_steps and self.init_record is None \
                and not self.segments:
            return actors.random(obs.shape[0], self.gen)[0]
        return actors.act(obs)[0]

    def _step(self, env: MultiQuadEnv, buffer: ReplayBuffer, obs: torch.Tensor,
              commands: torch.Tensor, resets: list,
              slot_age: torch.Tensor | None = None) -> torch.Tensor:
        """Execute the chain's commands, store them (model units) as the actions taken with the
        tick's intent forms, and restart the chains (controllers, links) of the environments
        whose episode ended."""
        nxt, r, term, trunc, info = env.step_commands(commands)
        scale = torch.as_tensor(self.action_scale, dtype=commands.dtype, device=commands.device)
        buffer.add(obs, (commands / scale).float(), r, info['final_obs'], term, trunc, slot_age)
        done = term | trunc
        if bool(done.any()):
            for who in resets:
                who.reset(done)
            for R, s in zip(info['episode_return'][done].tolist(), info['success'][done].tolist()):
                self._recent.append((R, s))
        self.env_steps += obs.shape[0]
        return nxt

    def sample(self) -> Batch:
        cfg, L = self.cfg, self.learner.window
        if not self.plan_buffer or self.plan_buffer.rows < L:
            return self.buffer.sample(cfg.batch_size, L, self.learner.generator)
        n_plan = round(cfg.batch_size * len(self.plan_buffer) /
                       (len(self.plan_buffer) + len(self.buffer)))
        n_plan = min(max(n_plan, 1), cfg.batch_size - 1)
        return cat_batches(self.buffer.sample(cfg.batch_size - n_plan, L, self.learner.generator),
                           self.plan_buffer.sample(n_plan, L, self.learner.generator))

    def evaluate(self) -> dict:
        cfg = self.cfg
        out: dict[str, Any] = {'kind': 'eval', 'env_steps': self.env_steps,
                               'updates': self.learner.num_updates, 'wall_s': round(self.wall_s, 1),
                               'train_wall_s': round(self.train_wall_s, 1)}
        for m in self.models:
            m.eval()
        seen = Transitions()
        out['actor'] = run_episodes(self.models, self.task_cfg, cfg.planner_config('eval_planner'),
                                    cfg.comm, max(cfg.eval_episodes, 32), seed=10_000,
                                    policy='actor', device=self.device, transitions=seen)
        out['health'] = self.health = learning_health(self.models, cfg.comm, seen)
        if cfg.comm != 'cen':
            out['planner'] = run_episodes(self.models, self.task_cfg,
                                          cfg.planner_config('eval_planner'), cfg.comm,
                                          cfg.eval_episodes, seed=20_000, policy='planner',
                                          device=self.device)
        for m in self.models:
            m.train()
        return out

    def _maybe_eval(self, final: bool = False) -> None:
        if not final and self.env_steps < self.next_eval:
            return
        self.next_eval = self.env_steps + self.cfg.eval_every_env_steps
        t0 = time.perf_counter()
        ev = self.evaluate()
        ev['eval_wall_s'] = round(time.perf_counter() - t0, 1)
        self.eval_wall_s += ev['eval_wall_s']
        self.wall_s += ev['eval_wall_s']   # so the export below counts training time exactly
        self.log(ev)
        key = 'planner' if 'planner' in ev else 'actor'
        score = ev[key]['success_rate'] + 1e-3 * ev[key]['mean_return'] / 100
        if self.out_dir is not None and score >= self.best_success:
            self.best_success = score
            self.best = {'env_steps': self.env_steps, 'wall_s': round(self.wall_s, 1),
                         'train_wall_s': round(self.train_wall_s, 1),
                         key: {k: ev[key][k] for k in ('success_rate', 'mean_return', 'episodes')}}
            self.export(self.out_dir, {'periodic_' + key: self.best})
        if self.progress:
            tqdm.write(f"eval @ {self.env_steps} steps: actor success {ev['actor']['success_rate']:.2f} "
                       f"return {ev['actor']['mean_return']:.2f}"
                       + (f"; planner success {ev['planner']['success_rate']:.2f} return "
                          f"{ev['planner']['mean_return']:.2f}" if 'planner' in ev else '')
                       + f"; contact AUC {ev['health']['contact_auc']}")

    def run(self) -> dict:
        cfg = self.cfg
        seg_start = time.perf_counter()
        wall0 = self.wall_s
        last_ckpt = time.perf_counter()
        bar = tqdm(total=cfg.total_env_steps, initial=self.env_steps, unit='step',
                   disable=not self.progress, dynamic_ncols=True, mininterval=5.0)
        stats: dict[str, float] = {}
        n_upd = 0
        while self.env_steps < cfg.total_env_steps:
            if cfg.max_wall_s and self.train_wall_s >= cfg.max_wall_s:
                break
            before = self.env_steps
            with torch.no_grad():
                ages = self.link.tick(self.iteration).slot_age if self.link else None
                self.obs = self._step(self.env, self.buffer, self.obs,
                                      self._act(self.obs, self.actors),
                                      [self.actors] + ([self.link] if self.link else []), ages)
                if self.plan_env is not None and self.iteration % cfg.plan_every == 0:
                    ages = None
                    if self.env_steps < self.updates_from or self.plan_team is None:
                        cmd = self._act(self.plan_obs, self.plan_actors)
                    else:
                        # the deployed controllers (MPPI is their exploration)
                        cmd = self.plan_team.act(self.plan_obs, self.plan_tick)[0]
                        ages = self.plan_team.last_link.slot_age
                        self.plan_tick += 1
                    resets = [self.plan_actors] + ([self.plan_team] if self.plan_team else [])
                    self.plan_obs = self._step(self.plan_env, self.plan_buffer, self.plan_obs, cmd,
                                               resets, ages)
            self.iteration += 1
            if self.env_steps >= self.updates_from and self.buffer.rows >= self.learner.window:
                if self.learner.num_updates == 0:
                    self.update_credit += cfg.pretrain_updates
                self.update_credit += (self.env_steps - before) * cfg.updates_per_env_step
                while self.update_credit >= 1.0:
                    s = self.learner.update(self.sample())
                    for k, v in s.items():
                        stats[k] = stats.get(k, 0.0) + v
                    n_upd += 1
                    self.update_credit -= 1.0
            self.wall_s = wall0 + time.perf_counter() - seg_start
            bar.update(self.env_steps - before)
            if self.iteration % 50 == 0:
                rec = {'kind': 'train', 'env_steps': self.env_steps,
                       'updates': self.learner.num_updates, 'wall_s': round(self.wall_s, 1),
                       'train_wall_s': round(self.train_wall_s, 1),
                       'train_return': None, 'train_success': None}
                if self._recent:
                    rec['train_return'] = sum(r for r, _ in self._recent) / len(self._recent)
                    rec['train_success'] = sum(s for _, s in self._recent) / len(self._recent)
                    rec['train_episodes'] = len(self._recent)
                    self._recent = []
                if n_upd:
                    rec.update({k: v / n_upd for k, v in stats.items()})
                    stats, n_upd = {}, 0
                self.log(rec)
                bar.set_postfix(ret=rec['train_return'], upd=self.learner.num_updates,
                                refresh=False)
            self._maybe_eval()
            if time.perf_counter() - last_ckpt >= cfg.checkpoint_every_s:
                self.checkpoint()
                last_ckpt = time.perf_counter()
        bar.close()
        self._maybe_eval(final=True)
        self.checkpoint()
        if self.out_dir is not None and not (self.out_dir / 'manifest.yaml').exists():
            self.export(self.out_dir)
        return {'env_steps': self.env_steps, 'updates': self.learner.num_updates,
                'wall_s': self.wall_s, 'train_wall_s': self.train_wall_s, 'best': self.best}
