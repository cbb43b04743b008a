"""Multi-Quad simulator throughput (env-steps/s) on ONE CPU thread, with in-run baselines.

PushBox (2 robots, default config: 4 physics sub-steps x 4 solver iterations per 0.1 s step,
randomisation, noise, delay and auto-reset on) is stepped with random actions at 1, 256 and
4096 environments; Gate (5 robots) and Shepherd at 4096. Each figure is the best of three timed
runs (the machines are shared). Target: >= 1e5 env-steps/s for PushBox at 4096.

Baselines measured in the same run, so that figures compare across machines as ratios:
  * the single-thread fp32 matmul peak (GFLOP/s), as in every benchmark here;
  * the cost of one plain torch elementwise op (a + b) on a (4096, 8) tensor and on a
    1-element tensor: the simulator is a few thousand such small ops per step, so
    `pushbox_4096_step_in_elementwise_ops` (step time / op time) is its machine-independent cost.
On a machine with CUDA the same is measured on the GPU for 4096 and 65536 environments.
Prints one JSON object.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import emit, matmul_peak_gflops  # noqa: E402

from seqwm_agent.sim import MultiQuadEnv, load_task_config  # noqa: E402

TARGET = 1e5


def _sync(device: str) -> None:
    if device != 'cpu':
        torch.cuda.synchronize()


def env_steps_per_s(task: str, num_envs: int, overrides: dict | None = None,
                    device: str = 'cpu', min_time: float = 0.6) -> float:
    """Best of three timed runs of at least `min_time` seconds each."""
    cfg = load_task_config(task, overrides=overrides)
    env = MultiQuadEnv(cfg, num_envs=num_envs, device=device, seed=0)
    g = torch.Generator(device=device).manual_seed(0)
    actions = [torch.rand(num_envs, cfg.num_robots, 3, generator=g, device=device) * 2 - 1
               for _ in range(8)]
    for k in range(3):
        env.step(actions[k])
    best = float('inf')
    for _ in range(3):
        steps, t0 = 0, time.perf_counter()
        _sync(device)
        while True:
            env.step(actions[steps % len(actions)])
            steps += 1
            if steps >= 3 and time.perf_counter() - t0 >= min_time:
                break
        _sync(device)
        best = min(best, (time.perf_counter() - t0) / steps)
    return num_envs / best


def elementwise_op_us(shape: tuple, repeats: int = 3000) -> float:
    """Best-of time (microseconds) of one out-of-place a + b on tensors of `shape`."""
    a, b = torch.rand(shape), torch.rand(shape)
    best = float('inf')
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeats):
            a + b
        best = min(best, (time.perf_counter() - t0) / repeats)
    return best * 1e6


def main() -> None:
    torch.set_num_threads(1)
    peak = matmul_peak_gflops()
    op_big, op_small = elementwise_op_us((4096, 8)), elementwise_op_us((1,))
    push = {n: env_steps_per_s('pushbox', n) for n in (1, 256, 4096)}
    gate5 = env_steps_per_s('gate', 4096, {'num_robots': 5})
    shepherd = env_steps_per_s('shepherd', 4096)
    step_ms_4096 = 1000.0 * 4096 / push[4096]
    figures = {
        'threads': 1,
        'pushbox_env_steps_per_s_1': round(push[1], 1),
        'pushbox_env_steps_per_s_256': round(push[256]),
        'pushbox_env_steps_per_s_4096': round(push[4096]),
        'pushbox_step_ms_4096': round(step_ms_4096, 2),
        'gate5_env_steps_per_s_4096': round(gate5),
        'shepherd_env_steps_per_s_4096': round(shepherd),
        'target_env_steps_per_s_4096': TARGET,
        'meets_target': push[4096] >= TARGET,
        'matmul_peak_gflops': round(peak, 1),
        'pushbox_4096_env_steps_per_s_per_gflops': round(push[4096] / peak, 1),
        'elementwise_op_us_4096x8': round(op_big, 2),
        'elementwise_op_us_1': round(op_small, 2),
        'pushbox_4096_step_in_elementwise_ops': round(step_ms_4096 * 1000.0 / op_big),
        'pushbox_1_step_in_elementwise_ops': round(1e6 / push[1] / op_small),
    }
    if torch.cuda.is_available():
        figures['cuda_pushbox_env_steps_per_s_4096'] = round(
            env_steps_per_s('pushbox', 4096, device='cuda'))
        figures['cuda_pushbox_env_steps_per_s_65536'] = round(
            env_steps_per_s('pushbox', 65536, device='cuda'))
    emit('sim', figures)


if __name__ == '__main__':
    main()
