"""The simulator through TorchRL (`MultiQuadTorchRLEnv`) vs stepped directly, ONE CPU thread.

What a TorchRL user pays for the EnvBase wrapper and the command chain: env-steps/s of
  * the simulator stepped directly with `step_commands` after each robot's command chain (the
    in-run baseline: the same work without TorchRL),
  * `MultiQuadTorchRLEnv.step_and_maybe_reset` (spec'd TensorDicts, partial resets),
  * a TorchRL `Collector` with a random policy (what `seqwm-baseline train` collects with,
    minus the policy network),
for PushBox (2 robots) and Gate (5 robots) at 256 and 4096 environments; each the best of three
timed runs. `*_overhead_ratio` = direct rate / TorchRL rate. Prints one JSON object.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import emit, matmul_peak_gflops  # noqa: E402

from seqwm_agent.baselines.env import GROUP, MultiQuadTorchRLEnv  # noqa: E402
from seqwm_agent.core.command import CommandChain  # noqa: E402


def _best_rate(step, num_envs: int, min_time: float = 0.5) -> float:
    for _ in range(3):
        step()
    best = float('inf')
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while n < 3 or time.perf_counter() - t0 < min_time:
            step()
            n += 1
        best = min(best, (time.perf_counter() - t0) / n)
    return num_envs / best


def rates(task: str, robots: int, B: int) -> dict[str, float]:
    env = MultiQuadTorchRLEnv(task, B, robots, seed=0)
    sim, n = env.sim, env.n_agents
    cs = env.chain_settings
    chain = CommandChain(cs.limits, cs.cutoff_hz, cs.rate_hz, B * n, list(sim.cfg.action_limits))
    g = torch.Generator().manual_seed(0)
    acts = [torch.rand(B, n, 3, generator=g) * 2 - 1 for _ in range(8)]
    k = [0]

    def direct() -> None:
        cmd, _ = chain.step_batch(acts[k[0] % 8].reshape(-1, 3))
        _, _, term, trunc, _ = sim.step_commands(cmd.view(B, n, 3).float())
        done = term | trunc
        if bool(done.any()):
            sim.reset(done)
            chain.stop(done.repeat_interleave(n))
        k[0] += 1

    out = {'direct': _best_rate(direct, B)}
    env2 = MultiQuadTorchRLEnv(task, B, robots, seed=0)
    td = [env2.reset()]

    def wrapped() -> None:
        td[0].set((GROUP, 'action'), acts[k[0] % 8])
        _, td[0] = env2.step_and_maybe_reset(td[0])
        k[0] += 1

    out['torchrl'] = _best_rate(wrapped, B)
    from torchrl.collectors import Collector
    env3 = MultiQuadTorchRLEnv(task, B, robots, seed=0)
    T = 16
    it = iter(Collector(env3, None, frames_per_batch=B * T, total_frames=-1,
                        auto_register_policy_transforms=False))
    out['collector'] = T * _best_rate(lambda: next(it), B, min_time=1.0)
    return out


def main() -> None:
    torch.set_num_threads(1)
    figures: dict = {'threads': 1, 'matmul_peak_gflops': round(matmul_peak_gflops(), 1)}
    for task, robots in (('pushbox', 2), ('gate', 5)):
        for B in (256, 4096):
            r = rates(task, robots, B)
            key = f'{task}{robots}_{B}'
            figures[f'{key}_direct_env_steps_per_s'] = round(r['direct'])
            figures[f'{key}_torchrl_env_steps_per_s'] = round(r['torchrl'])
            figures[f'{key}_collector_env_steps_per_s'] = round(r['collector'])
            figures[f'{key}_torchrl_overhead_ratio'] = round(r['direct'] / r['torchrl'], 3)
    emit('torchrl_env', figures)


if __name__ == '__main__':
    main()
