"""Start a larger team from a trained smaller one (a team-size curriculum).

A 5-robot Gate team trained from scratch learns to send two robots through and stops there
(docs/simulator.md); a 3-robot team already queues. `grow_agent` maps a trained agent of an
m-robot team onto a fresh agent of an n-robot team (n > m) so that, at the start, the new agent
computes exactly what its source computes on the inputs the source knew:

- observation columns are matched by name (`obs_spec`): `mate0.dx` feeds the same weights;
  columns the source never had (`mate2.*`, `mate3.passed`, ...) get zero weights;
- intent slots of the predecessors the source saw (slots 0..s-1 for source agent s) keep their
  weights; every other slot gets zero weights, since the source only ever saw them masked
  (zero) and their weights there are untrained noise;
- every other parameter (widths equal) is copied.

Zero-weight columns leave the first layer's output, and so its LayerNorm, unchanged; training
then learns to read the new teammates. Which source agent seeds which new one is
`source_index`: the new robots beyond the source's team copy its last robot, the one that has
learned to wait for every predecessor.

Measured (docs/trainer.md §5.1): 5-robot Gate grown from the 3-robot model did not beat
training from scratch at 4,200 s; the tool stays for longer budgets and other tasks.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from ..core.config import ModelConfig

# first layers and which input each reads; their weight is (out, in) or (members, in, out)
_FIRST_LAYERS = {'_encoder.0.linear.weight': 'obs', '_trunk.0.linear.weight': 'zae',
                 '_Qs.0.linear.weight': 'zae', '_target_Qs.0.linear.weight': 'zae',
                 '_pi.0.linear.weight': 'ze'}


def source_index(agent: int, source_agents: int) -> int:
    """The agent of the smaller team that seeds `agent` of the larger one."""
    return min(agent, source_agents - 1)


def _column_map(kind: str, src: ModelConfig, dst: ModelConfig, src_spec: Sequence[str],
                dst_spec: Sequence[str], src_agent: int) -> list[int]:
    """For every input column of the new layer, the source column it takes (-1: zero)."""
    if kind == 'obs':
        where = {name: k for k, name in enumerate(src_spec)}
        return [where.get(name, -1) for name in dst_spec]
    head = src.latent_dim + (src.action_dim if kind == 'zae' else 0)   # z (, a) come first
    cols = list(range(head))
    for slot in range(dst.num_agents):
        seen = slot < src_agent          # the source saw this predecessor's intent
        cols += [head + slot * src.slot_dim + c if seen else -1 for c in range(dst.slot_dim)]
    return cols


def grow_agent(src_state: Mapping[str, torch.Tensor], src_cfg: ModelConfig,
               src_spec: Sequence[str], src_agent: int, dst_state: Mapping[str, torch.Tensor],
               dst_cfg: ModelConfig, dst_spec: Sequence[str]) -> dict[str, torch.Tensor]:
    """The state dict for a new-team agent seeded from `src_agent` of the source team."""
    same = ('latent_dim', 'action_dim', 'encoder_dim', 'hidden_dim', 'critic_dim', 'actor_dim',
            'simnorm_dim', 'num_bins')
    diff = [k for k in same if getattr(src_cfg, k) != getattr(dst_cfg, k)]
    if diff:
        raise ValueError(f'cannot grow a team across different widths ({", ".join(diff)})')
    if dst_cfg.num_agents < src_cfg.num_agents:
        raise ValueError(f'cannot grow a {src_cfg.num_agents}-robot team into '
                         f'{dst_cfg.num_agents} robots')
    out: dict[str, torch.Tensor] = {}
    for name, dst in dst_state.items():
        src = src_state[name]
        kind = _FIRST_LAYERS.get(name)
        if kind is None:
            if src.shape != dst.shape:
                raise ValueError(f'{name}: shape {tuple(src.shape)} vs {tuple(dst.shape)}')
            out[name] = src.clone()
            continue
        cols = torch.tensor(_column_map(kind, src_cfg, dst_cfg, src_spec, dst_spec, src_agent))
        axis = -1 if src.dim() == 2 else 1             # (out, in) or (members, in, out)
        take = cols.clamp(min=0)
        grown = src.index_select(axis % src.dim(), take).clone()
        zero = (cols < 0)
        if axis == -1:
            grown[:, zero] = 0.0
        else:
            grown[:, zero, :] = 0.0
        if grown.shape != dst.shape:
            raise ValueError(f'{name}: grown to {tuple(grown.shape)}, expected {tuple(dst.shape)}')
        out[name] = grown
    return out
