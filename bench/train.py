"""Trainer throughput on ONE CPU thread (and on CUDA when present), with in-run baselines.

What bounds a `seqwm-train` run is (a) one sequential update of the whole team and (b) one
collection tick (actors for `num_envs` envs + their command chains + a simulator step + a buffer
write, as the trainer collects). Both are timed
with the shipped PushBox config (`config/pushbox.yaml` train:, 2 robots, PushBox-size model,
batch 256), best-of-five medians, and combined into the env-steps/s the config's update ratio
allows (`updates_per_env_step` updates per transition; the planner envs are left out).

Baselines measured in the same run (the machines are shared and noisy, so compare ratios):
  * the single-thread fp32 matmul peak (GFLOP/s), as in every benchmark here;
  * the `dec` update of the same models and batch: `seq_over_dec_update` is what building and
    consuming intents costs the learner (agent i+1 waits for agent i's rollout), and `cen` the
    cost of the joint rollout.
Prints one JSON object.
"""
from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import emit, matmul_peak_gflops  # noqa: E402

from seqwm_agent.core.intent import IntentLayout  # noqa: E402
from seqwm_agent.core.world_model import WorldModel  # noqa: E402
from seqwm_agent.sim import MultiQuadEnv, load_task_config  # noqa: E402
from seqwm_agent.train.buffer import ReplayBuffer  # noqa: E402
from seqwm_agent.train.cli import task_yaml  # noqa: E402
from seqwm_agent.train.config import load_train_config  # noqa: E402
from seqwm_agent.train.evaluate import chain_settings_of  # noqa: E402
from seqwm_agent.train.team import ChainedActors  # noqa: E402
from seqwm_agent.train.update import SequentialUpdate  # noqa: E402


def _sync(device: str) -> None:
    if device != 'cpu':
        torch.cuda.synchronize()


def timed_ms(fn, repeats: int, device: str) -> float:
    """Best of five medians of `repeats` calls, in milliseconds."""
    fn()
    best = float('inf')
    for _ in range(5):
        samples = []
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            samples.append(time.perf_counter() - t0)
        best = min(best, statistics.median(samples))
    return 1000.0 * best


def measure(device: str) -> dict:
    path = task_yaml('pushbox')
    base = load_train_config(path, {'buffer_size': 200_000})
    task = load_task_config(path)
    env = MultiQuadEnv(task, base.num_envs, device, seed=0)
    n, obs_dim = env.num_robots, env.obs_dim
    mcfg = base.model_config(obs_dim, n)
    torch.manual_seed(0)
    models = [WorldModel(mcfg).to(device) for _ in range(n)]
    layout = IntentLayout(n, base.horizon, mcfg.latent_dim, mcfg.action_dim)
    buf = ReplayBuffer(base.buffer_size, base.num_envs, n, obs_dim, mcfg.action_dim, device)
    gen = torch.Generator(device=device).manual_seed(0)
    obs = env.reset()

    chain = chain_settings_of(None, task, task.physics.control_dt)
    scale = torch.tensor(task.action_limits, dtype=torch.float64, device=device)
    actors = ChainedActors(models, layout, chain, task.action_limits, base.num_envs, base.comm,
                           device, base.explore_std, deterministic=False, generator=gen)

    def tick() -> None:       # as the trainer collects: actors -> command chain -> sim -> buffer
        nonlocal obs
        with torch.no_grad():
            cmd = actors.act(obs)[0]
            nxt, r, term, trunc, info = env.step_commands(cmd)
            buf.add(obs, (cmd / scale).float(), r, info['final_obs'], term, trunc)
            actors.reset(term | trunc)
            obs = nxt

    for _ in range(base.horizon + base.td_steps + 8):      # enough rows for update windows
        tick()
    tick_ms = timed_ms(tick, 10, device)
    out = {'num_envs': base.num_envs, 'batch_size': base.batch_size,
           'updates_per_env_step': base.updates_per_env_step, 'collect_tick_ms': round(tick_ms, 2)}
    for comm in ('seq', 'dec', 'cen'):
        learner = SequentialUpdate(models, layout, replace(base, comm=comm),
                                   torch.Generator(device=device).manual_seed(1))
        sample_gen = torch.Generator(device=device).manual_seed(2)
        out[f'{comm}_update_ms'] = round(timed_ms(
            lambda: learner.update(buf.sample(base.batch_size, learner.window, sample_gen)),
            6, device), 2)
    per_tick_updates = base.num_envs * base.updates_per_env_step
    tick_total = tick_ms + per_tick_updates * out['seq_update_ms']
    out['seq_env_steps_per_s'] = round(1000.0 * base.num_envs / tick_total, 1)
    out['seq_updates_per_s'] = round(1000.0 / out['seq_update_ms'], 1)
    out['seq_over_dec_update'] = round(out['seq_update_ms'] / out['dec_update_ms'], 3)
    out['cen_over_dec_update'] = round(out['cen_update_ms'] / out['dec_update_ms'], 3)
    out['update_share_of_training_time'] = round(per_tick_updates * out['seq_update_ms']
                                                 / tick_total, 3)
    return out


def main() -> None:
    torch.set_num_threads(1)
    peak = matmul_peak_gflops()
    cpu = measure('cpu')
    figures = {'threads': 1, **{f'cpu_{k}': v for k, v in cpu.items()},
               'matmul_peak_gflops': round(peak, 1),
               # the update's time as the MFLOP the GEMM peak does in it: a machine-neutral cost
               'cpu_seq_update_in_peak_mflop': round(cpu['seq_update_ms'] * peak)}
    if torch.cuda.is_available():
        gpu = measure('cuda')
        figures.update({f'cuda_{k}': v for k, v in gpu.items()})
        figures['cuda_over_cpu_env_steps_per_s'] = round(gpu['seq_env_steps_per_s']
                                                         / cpu['seq_env_steps_per_s'], 2)
    emit('train', figures)


if __name__ == '__main__':
    main()
