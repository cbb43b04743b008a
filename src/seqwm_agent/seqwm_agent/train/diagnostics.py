"""Controller forms no robot runs, kept to measure the deployed choice against them.

`seqwm-eval --chain-after` / `--raw-actions`: the same runtime, team timing and evaluation, with
the controller's two chain steps (runtime.controller.Controller._plan_chain / _command)
replaced:

  after  plan on raw actions (no chain inside the plan), then send the first one through the
         robot's command chain: the naive form of low-pass filtering a plan;
  off    plan on raw actions and send the first one scaled, with no command chain at all.
"""
from __future__ import annotations

import torch

from ..core.planner import PlanResult
from ..runtime.controller import Controller

FORMS = {'plan': 'deployed', 'after': 'chain after planning', 'off': 'raw actions (no command chain)'}


class ChainAfterPlanning(Controller):
    """Plans without the chain; the chain filters the first action afterwards."""

    def _plan_chain(self, dt0):
        return None


class RawActions(ChainAfterPlanning):
    """Plans without the chain and sends the first action scaled, unfiltered."""

    def _command(self, plan: PlanResult, dt0, finite: torch.Tensor):
        a0 = torch.where(finite[:, None], plan.actions[:, 0], 0.0).double().clamp(-1, 1)
        return a0 * self.action_scale, finite


CONTROLLERS = {'plan': Controller, 'after': ChainAfterPlanning, 'off': RawActions}
