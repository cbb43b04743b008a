"""Trainer throughput on ONE CPU thread (and on CUDA when present), with in-run baselines.

What bounds a `seqwm-train` run is (a) one sequential update of the whole team and (b) one
collection tick (actors for `num_envs` envs + their command chains + a simulator step + a buffer
write, as the trainer collects). Both are timed with the task's shipped `train:` config (batch
256, the PushBox-size model), as best-of-five medians, and combined into the env-steps/s the
config's update ratio allows (`updates_per_env_step` updates per transition).

Compared in the same run (the machines are shared and noisy, so compare ratios):
  * the update compiled with torch.compile (what the trainer runs) against the eager update
    (the same functions, its reference and fallback): `compiled_speedup`; likewise the
    collection tick (compiled actors and physics): `compiled_collect_speedup`;
  * the update's matmul FLOPs (counted by torch's FlopCounterMode on the eager update) as a
    fraction of the single-thread fp32 GEMM peak measured in this run: `fraction_of_peak`;
  * the first compiled update (compilation included, Inductor's on-disk cache as it stands);
  * team size: the same figures for 2, 3 and 5 robots on Gate, the paper's scalability task,
    and their ratio to 2 robots.
Prints one JSON object.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

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

TEAM_SIZES = (2, 3, 5)


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


def measure(device: str, task_name: str, robots: int, peak: float, modes=('off', 'on')) -> dict:
    """Collection tick and sequential update (each compile mode) of one team on one device."""
    path = task_yaml(task_name)
    base = load_train_config(path, {'buffer_size': 100_000})
    task = load_task_config(path, overrides={'num_robots': robots})
    env = MultiQuadEnv(task, base.num_envs, device, seed=0)
    n, obs_dim = env.num_robots, env.obs_dim
    mcfg = base.model_config(obs_dim, n)
    torch.manual_seed(0)
    models = [WorldModel(mcfg).to(device) for _ in range(n)]
    layout = IntentLayout(n, base.horizon, mcfg.latent_dim, mcfg.action_dim)
    buf = ReplayBuffer(base.buffer_size, base.num_envs, n, obs_dim, mcfg.action_dim, device)
    chain = chain_settings_of(None, task, task.physics.control_dt)
    scale = torch.tensor(task.action_limits, dtype=torch.float64, device=device)

    def collector(mode: str):
        """One collection tick as the trainer runs it: actors -> command chain -> sim -> buffer."""
        e = env if mode == 'off' else MultiQuadEnv(task, base.num_envs, device, seed=0,
                                                    compile=mode)
        actors = ChainedActors(models, layout, chain, task.action_limits, base.num_envs,
                               base.comm, device, base.explore_std, deterministic=False,
                               generator=torch.Generator(device=device).manual_seed(0),
                               compile_mode=mode)
        state = {'obs': e.reset()}

        def tick() -> None:
            with torch.no_grad():
                obs = state['obs']
                cmd = actors.act(obs)[0]
                nxt, r, term, trunc, info = e.step_commands(cmd)
                buf.add(obs, (cmd / scale).float(), r, info['final_obs'], term, trunc)
                actors.reset(term | trunc)
                state['obs'] = nxt
        return tick

    out: dict = {'task': task_name, 'robots': n, 'num_envs': base.num_envs,
                 'batch_size': base.batch_size}
    for mode in modes:
        tick = collector(mode)
        if mode == 'off':
            for _ in range(base.horizon + base.td_steps + 8):   # enough rows for update windows
                tick()
        key = 'compiled' if mode == 'on' else 'eager'
        out[f'{key}_collect_tick_ms'] = round(timed_ms(tick, 10, device), 2)
    if 'compiled_collect_tick_ms' in out:
        out['compiled_collect_speedup'] = round(out['eager_collect_tick_ms']
                                                / out['compiled_collect_tick_ms'], 2)
    sample_gen = torch.Generator(device=device).manual_seed(2)
    batch = buf.sample(base.batch_size, base.horizon + base.td_steps - 1, sample_gen)
    for mode in modes:
        learner = SequentialUpdate(models, layout, base,
                                   torch.Generator(device=device).manual_seed(1), compile_mode=mode)
        t0 = time.perf_counter()
        learner.update(batch)
        first = time.perf_counter() - t0
        key = 'compiled' if mode == 'on' else 'eager'
        out[f'{key}_update_ms'] = round(timed_ms(lambda: learner.update(batch), 6, device), 2)
        if mode == 'on':
            out['compiled_first_update_s'] = round(first, 1)
        else:
            with FlopCounterMode(display=False) as fc:
                learner.update(batch)
            out['update_gflop'] = round(fc.get_total_flops() / 1e9, 3)
    if 'eager_update_ms' in out and 'compiled_update_ms' in out:
        out['compiled_speedup'] = round(out['eager_update_ms'] / out['compiled_update_ms'], 2)
    best = out.get('compiled_update_ms', out['eager_update_ms'])
    tick_ms = out.get('compiled_collect_tick_ms', out['eager_collect_tick_ms'])
    if device == 'cpu':
        out['fraction_of_peak'] = round(out['update_gflop'] / (best / 1000) / peak, 3)
    per_tick_updates = base.num_envs * base.updates_per_env_step
    out['env_steps_per_s'] = round(1000.0 * base.num_envs
                                   / (tick_ms + per_tick_updates * best), 1)
    return out


def main() -> None:
    torch.set_num_threads(1)
    peak = matmul_peak_gflops()
    figures: dict = {'threads': 1, 'matmul_peak_gflops': round(peak, 1)}
    figures['pushbox'] = measure('cpu', 'pushbox', 2, peak)
    scaling = {n: measure('cpu', 'gate', n, peak) for n in TEAM_SIZES}
    figures['gate'] = {str(n): v for n, v in scaling.items()}
    two = scaling[TEAM_SIZES[0]]
    figures['gate_scaling_vs_2'] = {
        str(n): {k: round(scaling[n][k] / two[k], 2)
                 for k in ('eager_collect_tick_ms', 'compiled_collect_tick_ms', 'eager_update_ms',
                           'compiled_update_ms', 'update_gflop')}
        for n in TEAM_SIZES[1:]}
    figures['matmul_peak_gflops_after'] = round(matmul_peak_gflops(), 1)
    if torch.cuda.is_available():
        figures['cuda'] = {'pushbox': measure('cuda', 'pushbox', 2, peak),
                           'gate_5': measure('cuda', 'gate', 5, peak)}
    emit('train', figures)


if __name__ == '__main__':
    main()
