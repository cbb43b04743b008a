"""MAPPO and IPPO on the Multi-Quad simulator, assembled from TorchRL's multi-agent parts.

Nothing of the algorithm is written here: TorchRL's `Collector` steps
`MultiQuadTorchRLEnv` (command chain in the loop) with the stochastic actor, its `MAPPOLoss` /
`IPPOLoss` (clipped PPO with the multi-agent GAE that spreads the team reward and done flags over
the robots) computes advantages and losses, and a `ReplayBuffer` with a without-replacement
sampler serves the minibatches of each epoch. What this module adds is the experiment around it,
matched to `seqwm-train` so the two can be compared on equal terms:

* the budget is training wall time (`max_wall_s`, periodic evaluation excluded) or env steps
  (team transitions, the same unit as `seqwm-train`'s);
* every `eval_every_env_steps` the deterministic policy is evaluated in deployment form (each
  robot's own observation, its command chain; `train.evaluate.run_episodes`) and the model dir is
  rewritten when the result is at least as good as the best so far;
* metrics.jsonl records `train` (episode return / success of the collected batch, losses) and
  `eval` events in the trainer's format, so `seqwm-curves` draws both kinds of run on shared axes.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import torch
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.data.replay_buffers.samplers import SamplerWithoutReplacement
from torchrl.objectives import ValueEstimators
from torchrl.objectives.multiagent import IPPOLoss, MAPPOLoss
from tqdm import tqdm

from ..train.evaluate import run_episodes
from ..train.trainer import git_commit
from .env import GROUP, MultiQuadTorchRLEnv
from .policy import ALGOS, NetConfig, PolicyTeam, build_actor, build_critic, save_policy


@dataclass(frozen=True)
class PPOConfig:
    """A baseline run. Defaults follow TorchRL's multi-agent PPO recipe (MAPPO paper values:
    clip 0.2, GAE lambda 0.95, tanh MLPs of 256), with the batch sized to the simulator's
    throughput: 256 environments x 40 steps = 10,240 team transitions per iteration."""
    algo: str = 'mappo'
    seed: int = 1
    num_envs: int = 256
    rollout_steps: int = 40
    epochs: int = 8
    minibatch_size: int = 2560
    lr: float = 3e-4
    gamma: float = 0.99
    lmbda: float = 0.95
    clip_epsilon: float = 0.2
    entropy_coef: float = 1e-3
    critic_coef: float = 1.0
    max_grad_norm: float = 1.0
    hidden: int = 256
    depth: int = 2
    total_env_steps: int = 200_000_000
    max_wall_s: float = 1200.0
    eval_every_env_steps: int = 1_000_000
    eval_episodes: int = 20

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f'algo must be one of {ALGOS}, got {self.algo!r}')
        for k in ('num_envs', 'rollout_steps', 'epochs', 'minibatch_size', 'total_env_steps',
                  'eval_every_env_steps', 'eval_episodes'):
            v = getattr(self, k)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f'{k} must be a positive integer, got {v!r}')
        if not 0 < self.lr < 1 or not 0 < self.gamma <= 1 or not 0 <= self.lmbda <= 1:
            raise ValueError(f'lr {self.lr} must be in (0, 1), gamma {self.gamma} in (0, 1], '
                             f'lmbda {self.lmbda} in [0, 1]')
        if self.max_wall_s < 0:
            raise ValueError(f'max_wall_s must be >= 0 (0: no limit), got {self.max_wall_s}')

    @property
    def frames_per_batch(self) -> int:
        return self.num_envs * self.rollout_steps

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> 'PPOConfig':
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f'unknown baseline setting(s) {unknown}; known: {sorted(known)}')
        return cls(**d)


class PPOTrainer:
    """One MAPPO or IPPO run on a task and team size; `run()` trains and exports."""

    def __init__(self, task_cfg: Any, cfg: PPOConfig, out_dir: str | Path | None = None,
                 device: str = 'cpu', progress: bool = True) -> None:
        self.cfg, self.device, self.progress = cfg, torch.device(device), progress
        torch.manual_seed(cfg.seed)
        self.env = MultiQuadTorchRLEnv(task_cfg, cfg.num_envs, device=device, seed=cfg.seed)
        self.task_cfg = self.env.task_cfg
        self.n = self.env.n_agents
        self.net = NetConfig(self.env.sim.obs_dim, self.n, 3, cfg.hidden, cfg.depth)
        self.actor = build_actor(self.net).to(self.device)
        self.critic = build_critic(self.net, cfg.algo).to(self.device)
        loss_cls = MAPPOLoss if cfg.algo == 'mappo' else IPPOLoss
        self.loss = loss_cls(self.actor, self.critic, clip_epsilon=cfg.clip_epsilon,
                             entropy_coeff=cfg.entropy_coef, critic_coeff=cfg.critic_coef)
        self.loss.set_keys(reward=(GROUP, 'reward'), action=(GROUP, 'action'),
                           value=(GROUP, 'state_value'), done='done', terminated='terminated')
        self.loss.make_value_estimator(ValueEstimators.MAGAE, gamma=cfg.gamma, lmbda=cfg.lmbda)
        self.optim = torch.optim.Adam(self.loss.parameters(), lr=cfg.lr)
        self.buffer = ReplayBuffer(storage=LazyTensorStorage(cfg.frames_per_batch,
                                                             device=self.device),
                                   sampler=SamplerWithoutReplacement(),
                                   batch_size=cfg.minibatch_size)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.env_steps, self.iterations, self.updates = 0, 0, 0
        self.train_wall_s, self.eval_wall_s = 0.0, 0.0
        self.best_score = -float('inf')
        self.best: dict | None = None
        self.next_eval = cfg.eval_every_env_steps
        self._acc = torch.zeros(cfg.num_envs, device=self.device)   # running episode returns
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / 'metrics.jsonl').write_text('')

    # ---- records ------------------------------------------------------------------------------
    def log(self, rec: dict) -> None:
        if self.out_dir is not None:
            with open(self.out_dir / 'metrics.jsonl', 'a') as f:
                f.write(json.dumps(rec) + '\n')

    def manifest(self, extra: dict | None = None) -> dict[str, Any]:
        import tensordict
        import torchrl
        return {
            'algo': self.cfg.algo, 'task': self.task_cfg.name, 'num_agents': self.n,
            'dt': self.task_cfg.physics.control_dt, 'obs_spec': self.env.obs_spec_names,
            'action_scaling': dict(zip(('vx', 'vy', 'wz'), self.task_cfg.action_limits)),
            'training': {
                'algo': self.cfg.algo, 'env_steps': self.env_steps,
                'updates': self.updates, 'iterations': self.iterations,
                'wall_time_s': round(self.train_wall_s + self.eval_wall_s, 1),
                'train_wall_time_s': round(self.train_wall_s, 1),
                'command_chain': self.env.chain_settings.to_dict(),
                'device': str(self.device), 'torch_threads': torch.get_num_threads(),
                'torch': str(torch.__version__), 'torchrl': str(torchrl.__version__),
                'tensordict': str(tensordict.__version__), 'git_commit': git_commit(),
                'seed': self.cfg.seed, 'config': asdict(self.cfg),
                'task_config': _task_dict(self.task_cfg), **(extra or {})}}

    # ---- evaluation ---------------------------------------------------------------------------
    def evaluate(self, episodes: int, seed: int) -> dict:
        """The deterministic policy in deployment form (each robot through its chain)."""
        team = PolicyTeam(self.actor, self.n, self.env.chain_settings,
                          list(self.task_cfg.action_limits), episodes, self.device)
        res = run_episodes([], self.task_cfg, None, 'none', episodes, seed,
                           policy=self.cfg.algo, device=self.device, team=team)
        self.actor.train()
        return res

    def _periodic_eval(self) -> None:
        t0 = time.perf_counter()
        ev = self.evaluate(self.cfg.eval_episodes, seed=20_000)
        wall = time.perf_counter() - t0
        self.eval_wall_s += wall
        self.log({'kind': 'eval', 'env_steps': self.env_steps, 'updates': self.updates,
                  'wall_s': round(self.train_wall_s + self.eval_wall_s, 1),
                  'train_wall_s': round(self.train_wall_s, 1), 'eval_wall_s': round(wall, 1),
                  'policy': {k: ev[k] for k in ('episodes', 'seed', 'success_rate',
                                                'success_ci95', 'mean_return', 'mean_length')}})
        score = ev['success_rate'] + 1e-3 * ev['mean_return'] / 100
        if self.out_dir is not None and score >= self.best_score:
            self.best_score = score
            self.best = {'env_steps': self.env_steps, 'train_wall_s': round(self.train_wall_s, 1),
                         'policy': {k: ev[k] for k in ('success_rate', 'mean_return', 'episodes')}}
            save_policy(self.out_dir, self.actor, self.net,
                        self.manifest({'periodic_policy': self.best}))
        if self.progress:
            tqdm.write(f'eval @ {self.env_steps} steps: success {ev["success_rate"]:.2f} '
                       f'return {ev["mean_return"]:.2f}')

    # ---- training -----------------------------------------------------------------------------
    def run(self) -> dict:
        cfg = self.cfg
        # the policy is memoryless (no recurrent state): no InitTracker transform to register
        collector = Collector(self.env, self.actor, frames_per_batch=cfg.frames_per_batch,
                              total_frames=-1, device=self.device,
                              auto_register_policy_transforms=False)
        bar = tqdm(total=cfg.total_env_steps, unit='step', disable=not self.progress,
                   dynamic_ncols=True, mininterval=5.0)
        seg = time.perf_counter()
        evals_before = self.eval_wall_s
        for data in collector:
            self.env_steps += data.numel()
            stats = self._update(data)
            self.iterations += 1
            self.train_wall_s = time.perf_counter() - seg - (self.eval_wall_s - evals_before)
            ret, succ, eps = self._episode_stats(data)
            self.log({'kind': 'train', 'env_steps': self.env_steps, 'updates': self.updates,
                      'wall_s': round(self.train_wall_s + self.eval_wall_s, 1),
                      'train_wall_s': round(self.train_wall_s, 1), 'train_return': ret,
                      'train_success': succ, 'train_episodes': eps, **stats})
            bar.update(data.numel())
            bar.set_postfix(ret=ret, succ=succ, refresh=False)
            if self.env_steps >= self.next_eval:
                self.next_eval = self.env_steps + cfg.eval_every_env_steps
                self._periodic_eval()
            if self.env_steps >= cfg.total_env_steps or (
                    cfg.max_wall_s and self.train_wall_s >= cfg.max_wall_s):
                break
        collector.shutdown()
        bar.close()
        self._periodic_eval()
        if self.out_dir is not None:
            from ..train.curves import plot_learning_curve, read_metrics
            plot_learning_curve(read_metrics(self.out_dir / 'metrics.jsonl'),
                                self.out_dir / 'learning_curve.png',
                                title=f'{self.task_cfg.name} {self.n} robots, {cfg.algo} '
                                      f'(TorchRL)')
        return {'env_steps': self.env_steps, 'updates': self.updates,
                'train_wall_s': round(self.train_wall_s, 1), 'best': self.best}

    def _episode_stats(self, data) -> tuple[float | None, float | None, int]:
        """Mean return and success of the episodes that ended in a collected batch (B, T);
        returns run across batches (the collector does not reset between them)."""
        done = data.get(('next', 'done')).squeeze(-1)
        r = data.get(('next', GROUP, 'reward'))[..., 0, 0]   # the team reward, every robot's
        rets = []
        for t in range(done.shape[1]):
            self._acc = self._acc + r[:, t]
            rets.append(self._acc[done[:, t]])
            self._acc = torch.where(done[:, t], torch.zeros_like(self._acc), self._acc)
        if not bool(done.any()):
            return None, None, 0
        success = data.get(('next', 'success')).squeeze(-1)[done]
        return float(torch.cat(rets).mean()), float(success.float().mean()), int(done.sum())

    def _update(self, data) -> dict[str, float]:
        """Advantages for the batch, then `epochs` passes of minibatch PPO steps."""
        cfg = self.cfg
        with torch.no_grad():
            self.loss.value_estimator(data, params=self.loss.critic_network_params,
                                      target_params=self.loss.target_critic_network_params)
        self.buffer.empty()
        self.buffer.extend(data.reshape(-1))
        sums: dict[str, float] = {}
        steps = 0
        for _ in range(cfg.epochs):
            for _ in range(max(cfg.frames_per_batch // cfg.minibatch_size, 1)):
                sub = self.buffer.sample()
                out = self.loss(sub)
                total = out['loss_objective'] + out['loss_critic'] + out['loss_entropy']
                self.optim.zero_grad(set_to_none=True)
                total.backward()
                gn = torch.nn.utils.clip_grad_norm_(self.loss.parameters(), cfg.max_grad_norm)
                self.optim.step()
                self.updates += 1
                steps += 1
                for k in ('loss_objective', 'loss_critic', 'loss_entropy'):
                    sums[k] = sums.get(k, 0.0) + float(out[k].detach())
                sums['grad_norm'] = sums.get('grad_norm', 0.0) + float(gn)
        return {k: v / steps for k, v in sums.items()}


def _task_dict(task_cfg: Any) -> dict:
    from ..sim.config import task_config_to_dict
    return task_config_to_dict(task_cfg)
