"""Shared by every benchmark: machine description and an in-run matmul baseline.

These machines are shared and noisy, so absolute times mean little; every benchmark reports its
figures next to a baseline measured in the same run (ratios). The common baseline is the
single-thread fp32 GEMM rate, which bounds what any MLP code can reach on this CPU.
"""
from __future__ import annotations

import json
import os
import platform
import time

import torch


def machine_info() -> dict:
    """CPU model, core count, torch build and thread settings of this run."""
    cpu = platform.processor() or ''
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        'cpu': cpu,
        'cores': os.cpu_count(),
        'torch': torch.__version__,
        'torch_threads': torch.get_num_threads(),
        'python': platform.python_version(),
        'cuda': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        'loadavg_1min': os.getloadavg()[0],
    }
    return info


def matmul_peak_gflops(n: int = 512, repeats: int = 30, device: str = 'cpu') -> float:
    """Best-of fp32 GEMM rate (GFLOP/s) for n x n matrices: the in-run compute baseline."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = float('inf')
    for _ in range(repeats):
        if device != 'cpu':
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device != 'cpu':
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def percentile_ms(samples_s: list[float], q: float) -> float:
    """q-th percentile of a list of durations in seconds, in milliseconds."""
    ordered = sorted(samples_s)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return 1000.0 * ordered[k]


def emit(name: str, figures: dict) -> None:
    """Print the benchmark's one JSON object."""
    print(json.dumps({'benchmark': name, **figures, 'machine': machine_info()}, sort_keys=False))
