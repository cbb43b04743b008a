"""Element-wise cost of one hidden layer's LayerNorm + Mish, three ways, on ONE CPU thread.

Why this benchmark exists: the planner's rollout (core/rollout.py) and the update spend most of
their non-matmul time in LayerNorm + Mish. The planner runs a hand-fused eager form; the update
runs torch.compile's (Inductor's generated C++). This measures, at the planner's trunk shape
(536 sequences x 2 members x 80 hidden units) and the update's (256 x 2 x 80 rows per step, and
768 x 128 for the encoder on a window), the time per element of
  * `eager`: F.layer_norm + F.mish, one ATen kernel each plus the affine;
  * `hand_fused`: the planner's own `_ln_mish` (centred weights: LayerNorm is one norm and a
    scale; Mish as u - 2u / (1 + sigmoid(u)^2), all in preallocated buffers);
  * `compiled`: torch.compile of F.layer_norm + the model's Mish (`layers.mish`, one exp).
If `compiled` is not faster than `hand_fused` here, compiling the planner's rollout would not
pay on this CPU, which is what docs/core.md reports. Prints one JSON object.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import emit  # noqa: E402

from seqwm_agent.core.config import ModelConfig  # noqa: E402
from seqwm_agent.core.layers import mish  # noqa: E402
from seqwm_agent.core.rollout import LatentRollout, _Normed  # noqa: E402
from seqwm_agent.core.world_model import WorldModel  # noqa: E402

SHAPES = {'planner_trunk': (536, 160), 'update_trunk': (512, 80), 'update_encoder': (768, 128)}


def per_element_ns(fn, elements: int, repeats: int = 200) -> float:
    """Best of five medians, nanoseconds per element."""
    for _ in range(10):
        fn()
    best = float('inf')
    for _ in range(5):
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        best = min(best, statistics.median(samples))
    return best / elements * 1e9


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ro = LatentRollout(WorldModel(ModelConfig(obs_dim=24)), horizon=3, discount=0.99)
    ro.one = torch.ones(())                           # what _load_weights sets for _ln_mish
    figures: dict = {'threads': 1}
    for name, (rows, width) in SHAPES.items():
        x = torch.randn(rows, width)
        g, b = torch.rand(width) + 0.5, torch.randn(width) * 0.1
        L = _Normed(None, None, -g, -b, torch.tensor(1e-5))
        y, nrm = torch.empty_like(x), torch.empty(rows, 1)
        u, out = torch.empty_like(x), torch.empty_like(x)
        xc = x - x.mean(-1, keepdim=True)             # the hand-fused form assumes centred rows

        def hand() -> None:
            y.copy_(xc)
            ro._ln_mish(y, L, nrm, u, out)

        compiled = torch.compile(lambda t: mish(F.layer_norm(t, (width,), g, b)))
        fig = {'eager_ns': per_element_ns(lambda: F.mish(F.layer_norm(x, (width,), g, b)), x.numel()),
               'hand_fused_ns': per_element_ns(hand, x.numel()),
               'compiled_ns': per_element_ns(lambda: compiled(x), x.numel())}
        ref = F.mish(F.layer_norm(xc, (width,), g, b))
        hand()
        fig['hand_fused_max_abs_error'] = float((out - ref).abs().max())
        fig = {k: round(v, 3) if k.endswith('_ns') else v for k, v in fig.items()}
        fig['compiled_over_hand_fused'] = round(fig['compiled_ns'] / fig['hand_fused_ns'], 2)
        figures[name] = {'rows': rows, 'width': width, **fig}
    emit('kernels', figures)


if __name__ == '__main__':
    main()
