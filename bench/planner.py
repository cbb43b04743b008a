"""Per-agent planning latency at the paper's sampling settings, on ONE CPU thread.

One agent of a 2-robot PushBox-size team (obs 33, action 3, default widths of ModelConfig)
plans with 512 Gaussian + 24 actor sequences, 64 elites, 6 iterations, H = 3, conditioned on
its predecessor's intent (agent index 1, so the intent slot of robot 0 is valid). The reward
network is the hand-built tracking reward of core/toy.py (follow robot 0), so the search has a
real optimum and the KL early stop has something to converge to; all other networks are
randomly initialised. Timing does not depend on the weights, only the early-stop count does.

Figures: plan latency p50/p99 without and with the KL early stop, and planning through the
command chain as a robot does (`through_chain`: candidates valued as the commands the chain
executes from a moving state; the three are interleaved, so machine noise hits all alike, and
`chain_overhead` is its p50 over the plain one), matmul FLOPs per plan counted from the layer shapes, achieved
GFLOP/s at the p50 latency, and the single-thread fp32 matmul peak measured in the same run.
Prints one JSON object.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import emit, matmul_peak_gflops, percentile_ms  # noqa: E402

from seqwm_agent.core.command import ChainParams, ChainSettings, ChainState  # noqa: E402
from seqwm_agent.core.config import ModelConfig, PlannerConfig  # noqa: E402
from seqwm_agent.core.intent import IntentLayout  # noqa: E402
from seqwm_agent.core.planner import PlanChain, SequentialPlanner  # noqa: E402
from seqwm_agent.core.toy import tracking_model  # noqa: E402

WARMUP = 15
PLANS = 250            # per mode; about 2 x 250 x 25 ms


def plan_flops(mc: ModelConfig, pc: PlannerConfig, iterations: float) -> float:
    """Matmul FLOPs (2 x multiply-adds) of one plan for one problem, from the layer shapes.

    Mirrors rollout.py: first layers read [z, 1, a] (the bias / intent row included), except at
    h = 0 where z_0 is shared and folded into the bias, so only [1, a_0] is multiplied. Not
    counted: SimNorm's group-sum matmul and the two-hot decoding dot products (implementation
    details, not layers), elementwise work.
    """
    dz, da, h, c, p = mc.latent_dim, mc.action_dim, mc.hidden_dim, mc.critic_dim, mc.actor_dim
    bins, de, H = mc.num_bins, mc.intent_dim, pc.horizon
    K = dz + 1 + da
    trunk = 2 * (1 + da) * 2 * h + (H - 1) * 2 * K * 2 * h             # D and R first layers
    trunk += H * (2 * 2 * h * h + 2 * h * dz + 2 * h * bins)            # second layers, heads
    pi_layers = 2 * ((dz + 1) * p + p * p)
    terminal = pi_layers + 2 * p * da + 2 * (K * 2 * c + 2 * c * c + 2 * c * bins)
    row = trunk + terminal
    actor_sampling = H * (pi_layers + 2 * p * 2 * da)
    rollouts = (iterations * pc.num_samples + pc.num_pi_trajs + 1) * row + pc.num_pi_trajs * actor_sampling
    encoder = 2 * (mc.obs_dim * mc.encoder_dim + mc.encoder_dim * dz)
    intent_bias = 2 * de * (H * 2 * h + (H + 1) * p + 2 * c) + 2 * dz * 2 * h
    return float(rollouts + encoder + intent_bias)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    mc = ModelConfig(obs_dim=33, num_agents=2)
    pc = PlannerConfig()
    layout = IntentLayout(mc.num_agents, pc.horizon, mc.latent_dim, mc.action_dim)
    model = tracking_model(mc, follow=0).eval()
    g = torch.Generator().manual_seed(1)
    intent = layout.insert(layout.empty(1), 0,
                           torch.softmax(torch.randn(1, pc.horizon + 1, mc.latent_dim, generator=g), -1),
                           torch.rand(1, pc.horizon, mc.action_dim, generator=g) * 1.6 - 0.8)
    obs = torch.randn(1, mc.obs_dim, generator=g)
    planners = {'full': SequentialPlanner(model, layout, pc, agent_index=1, seed=0),
                'early_stop': SequentialPlanner(model, layout, pc, agent_index=1, seed=0),
                'through_chain': SequentialPlanner(model, layout, pc, agent_index=1, seed=0)}
    early = {'full': False, 'early_stop': True, 'through_chain': False}
    moving = ChainState(*(torch.tensor([[0.3, -0.1, 0.2]], dtype=torch.float64) for _ in range(3)))
    chain = PlanChain(ChainParams(ChainSettings(), (1.0, 0.5, 0.5)), moving, 0.1)
    chains = {'full': None, 'early_stop': None, 'through_chain': chain}

    peak_before = matmul_peak_gflops()
    for name, pl in planners.items():
        for _ in range(WARMUP):
            pl.plan(obs, intent, early_stop=early[name], chain=chains[name])
    times: dict[str, list[float]] = {k: [] for k in planners}
    iterations: dict[str, list[int]] = {k: [] for k in planners}
    t_start = time.perf_counter()
    for _ in range(PLANS):
        for name, pl in planners.items():
            t0 = time.perf_counter()
            result = pl.plan(obs, intent, early_stop=early[name], chain=chains[name])
            times[name].append(time.perf_counter() - t0)
            iterations[name].append(result.iterations)
    wall = time.perf_counter() - t_start
    peak = max(peak_before, matmul_peak_gflops())

    figures: dict = {
        'settings': {'num_samples': pc.num_samples, 'num_pi_trajs': pc.num_pi_trajs,
                     'num_elites': pc.num_elites, 'iterations': pc.iterations, 'horizon': pc.horizon,
                     'kl_threshold': pc.kl_threshold, 'lowpass_cutoff_hz': pc.lowpass_cutoff_hz,
                     'control_hz': pc.control_hz, 'batch': 1, 'torch_threads': torch.get_num_threads()},
        'model': {k: getattr(mc, k) for k in ('obs_dim', 'num_agents', 'action_dim', 'latent_dim',
                                              'encoder_dim', 'hidden_dim', 'critic_dim', 'actor_dim',
                                              'num_bins')},
        'matmul_peak_gflops': round(peak, 1),
        'plans_per_mode': PLANS,
    }
    for name in planners:
        p50 = percentile_ms(times[name], 50)
        mean_it = statistics.mean(iterations[name])
        flops = plan_flops(mc, pc, mean_it)
        gflops = flops / (p50 / 1000) / 1e9
        figures[name] = {
            'p50_ms': round(p50, 2), 'p99_ms': round(percentile_ms(times[name], 99), 2),
            'min_ms': round(percentile_ms(times[name], 0), 2),
            'iterations_mean': round(mean_it, 2),
            'iterations_min': min(iterations[name]), 'iterations_max': max(iterations[name]),
            'mflop_per_plan': round(flops / 1e6, 1),
            'gflops_at_p50': round(gflops, 1),
            'fraction_of_matmul_peak': round(gflops / peak, 3),
        }
    figures['chain_overhead'] = round(figures['through_chain']['p50_ms'] / figures['full']['p50_ms'], 3)
    figures['target'] = {'p50_ms_max': 20.0, 'fraction_of_peak_min': 0.5,
                         'met_full': figures['full']['p50_ms'] <= 20.0
                         and figures['full']['fraction_of_matmul_peak'] >= 0.5}
    figures['bench_wall_s'] = round(wall, 1)
    emit('planner', figures)


if __name__ == '__main__':
    main()
