"""When each robot of a sequential chain waits for its predecessor: one measured fact, one place.

In a sequential team robot k plans after robot k-1's intent arrived, so the chain's latency grows
by one step per robot: a step is one robot's planning plus one intent hop. From the measured p99
of both (the planner's on the robot's computer, for the model's deployment planner: manifest
`deployment`, written by `seqwm-budget`; the hop's on the team's network) and the control
period follow

* the wait of order index k: `deadline_s(k) = k * step` after its frame arrived, the time by
  which its predecessor's intent comes when every robot before it is on time (a robot that
  planned at its own deadline sends no later than the next one expects);
* the latest command of order index k: `deadline_s(k) + plan`; the chain fits the tick when
  the last robot's is inside it (`check`).

The robot's scheduler (`AgentRuntime`), the simulated team (`TeamRuntime`: evaluation and
training collection), `seqwm-eval` and replay all take their timing from this class.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..core.validate import number

# The intent hop between two agents, ms (p50, p99), measured on this machine's loopback by
# bench/intent_latency.py (Intent of 5 robots, the agents' QoS; docs/agent.md §9): used where a
# team's own network has not been measured. Measure yours and set hop_budget_ms.
LOOPBACK_HOP_MS = (0.6, 4.5)


@dataclass(frozen=True)
class ChainTiming:
    """The chain's timing (see the module docstring). Times in seconds."""

    dt_s: float            # control period
    plan_s: float          # one robot's planning, p99
    hop_s: float           # one intent hop, p99

    def __post_init__(self) -> None:
        number('chain: dt_s', self.dt_s, 0.0, lo_open=True)
        for name in ('plan_s', 'hop_s'):
            number(f'chain: {name}', getattr(self, name), 0.0)

    @property
    def step_s(self) -> float:
        """One link of the chain at p99: plan, then hop."""
        return self.plan_s + self.hop_s

    def deadline_s(self, order_index: int) -> float:
        """How long order index k waits for its predecessor's intent after its frame."""
        return order_index * self.step_s

    def command_s(self, order_index: int) -> float:
        """When order index k has sent its command at the latest (after its frame)."""
        return self.deadline_s(order_index) + self.plan_s

    def check(self, n: int) -> str | None:
        """Why a chain of `n` robots does not fit the control period (None: it does)."""
        last = self.command_s(n - 1)
        if last <= self.dt_s:
            return None
        return (f'a chain of {n} robots needs {1e3 * last:.1f} ms to the last command '
                f'({n - 1} x (plan {1e3 * self.plan_s:.1f} + hop {1e3 * self.hop_s:.1f} ms) '
                f'+ plan), more than the {1e3 * self.dt_s:.0f} ms control period: choose a '
                f'cheaper planner budget (seqwm-budget), fewer robots, or measure the plan time '
                f'on this computer and set plan_budget_ms')

    def to_dict(self) -> dict[str, float]:
        return {'dt_ms': round(1e3 * self.dt_s, 6), 'plan_ms': round(1e3 * self.plan_s, 6),
                'hop_ms': round(1e3 * self.hop_s, 6)}


PRESETS = ('deployment', 'paper')
# The paper's sampling settings (App. A.1, Table 2) - PlannerConfig's defaults; a preset replaces
# these keys of the manifest's deployment planner and keeps the rest (horizon, init, ...).
SAMPLING_KEYS = ('num_samples', 'num_elites', 'iterations', 'num_pi_trajs', 'early_stop')


def preset_planner(manifest: Any, preset: str = 'deployment') -> tuple[dict, dict | None]:
    """(planner settings, their measured timing or None) of a model for a preset: the
    manifest's deployment planner (`planner`, chosen by seqwm-budget) or the paper's sampling
    settings at the model's horizon and initialisation."""
    if preset not in PRESETS:
        raise ValueError(f'planner preset must be one of {PRESETS}, got {preset!r}')
    dep = dict(getattr(manifest, 'deployment', None) or {})
    if preset == 'paper':
        from ..core.config import PlannerConfig
        paper = PlannerConfig()
        return ({**manifest.planner, **{k: getattr(paper, k) for k in SAMPLING_KEYS}},
                dep.get('paper'))
    return dict(manifest.planner), dep


class TimingError(ValueError):
    """No measured planning time for a model (and none given)."""


def measured_plan_ms(deployment: Mapping[str, Any] | None) -> tuple[float, float] | None:
    """(p50, p99) of a model's measured planning time (manifest `deployment.plan_ms`), or None."""
    plan = dict((deployment or {}).get('plan_ms') or {})
    if not plan:
        return None
    return float(plan.get('p50', plan['p99'])), float(plan['p99'])


def chain_timing(dt: float, deployment: Mapping[str, Any] | None, plan_budget_ms: float = 0.0,
                 hop_budget_ms: float = 0.0) -> ChainTiming:
    """The timing of a team running a model: `plan_budget_ms` / `hop_budget_ms` when given (> 0),
    else the model's measured planning p99 (manifest `deployment.plan_ms`) and the loopback
    hop. TimingError when neither a budget nor a measurement gives the plan time."""
    measured = measured_plan_ms(deployment)
    if plan_budget_ms > 0:
        plan = float(plan_budget_ms)
    elif measured is not None:
        plan = measured[1]
    else:
        raise TimingError('the model has no measured planning time (manifest deployment.plan_ms: '
                          'run seqwm-budget on it) and no plan_budget_ms was given')
    hop = float(hop_budget_ms) if hop_budget_ms > 0 else LOOPBACK_HOP_MS[1]
    return ChainTiming(float(dt), plan / 1e3, hop / 1e3)
