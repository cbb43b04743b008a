"""The agent node's parameters, declared once as data (no rclpy import: testable, documentable).

`PARAMETERS` is the table the node declares (name, default, description, range or choices);
`check_values` validates a full set of values and raises ParameterError naming the parameter;
`settings_from_values` turns them into the pipeline's `AgentSettings`, the backend's parameter
mapping and the task config. `python -m seqwm_agent.node_params` prints the table as Markdown
(docs/agent.md embeds it).

Sentinels: a double parameter whose description says "NaN: ..." is unset when NaN (the task
config or the manifest decides); an integer override is unset when 0; `planner.early_stop`
is unset when 'manifest'.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Mapping

from .backends.base import describe_parameters
from .backends.topic import TopicBackendConfig
from .backends.unitree import UnitreeBackendConfig
from .core.command import CUTOFF_HZ, CommandLimits
from .core.intent import CACHE_MAX_AGE_TICKS
from .paths import model_dir_for_team, resolve_data_path, task_config_source, where_searched
from .runtime.chain import PRESETS
from .runtime.sources import BRIDGE_NODE
from .task_registry import TASK_NAMES, position_problem, team_problem

NAN = float('nan')
BACKENDS = ('topic', 'unitree')


class ParameterError(ValueError):
    """A parameter value is out of range or inconsistent; the message names the parameter."""


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter. `kind` is bool, int, float, str, 'str_list' or 'int_list'."""

    name: str
    default: Any
    description: str
    kind: Any
    low: float | None = None          # inclusive bounds (numbers), or minimum list length
    high: float | None = None
    choices: tuple[str, ...] = ()
    unset_nan: bool = False           # double: NaN means "not set"
    required: bool = False            # string / list: must not be empty

    @property
    def array_type(self) -> type | None:
        """Element type of a list parameter (rclpy declares lists statically typed)."""
        return {'str_list': str, 'int_list': int}.get(self.kind) if isinstance(self.kind, str) else None

    @property
    def range_text(self) -> str:
        if self.choices:
            return ' | '.join(self.choices)
        if self.low is None and self.high is None:
            return ''
        lo = '-inf' if self.low is None else _num(self.low)
        hi = 'inf' if self.high is None else _num(self.high)
        text = f'[{lo}, {hi}]'
        return text + ' or NaN' if self.unset_nan else text


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e12 else f'{x:g}'


def _p(name: str, default: Any, description: str, low: float | None = None,
       high: float | None = None, choices: tuple[str, ...] = (), unset_nan: bool = False,
       required: bool = False, kind: Any = None) -> ParamSpec:
    if kind is None:
        kind = type(default)
    return ParamSpec(name, default, description, kind, low, high, choices, unset_nan, required)


def _limits() -> list[ParamSpec]:
    return [_p(f'limits.{k}', float(v), f'{d} (command chain)',
               1e-3, 10.0) for k, (v, d) in describe_parameters(CommandLimits).items()]


def _backend(prefix: str, cls: type) -> list[ParamSpec]:
    """Backend parameters from the backend's own config dataclass (one source of truth)."""
    ranges = {'domain_id': (0, 232), 'resend_hz': (1.0, 500.0), 'watchdog_timeout': (0.01, 5.0),
              'ready_timeout': (0.1, 120.0), 'request_timeout': (0.01, 5.0)}
    out = []
    for name, (default, desc) in describe_parameters(cls).items():
        kind: Any = type(default)
        if isinstance(default, tuple):
            default, kind = list(default), 'int_list'
        lo, hi = ranges.get(name, (None, None))
        out.append(_p(f'{prefix}.{name}', default, desc, lo, hi, kind=kind,
                      required=isinstance(default, str)))
    return out


PARAMETERS: tuple[ParamSpec, ...] = (
    # who am I, in which team
    _p('robot_name', '', "this robot's name: its namespace, mocap body and intent sender name",
       required=True),
    _p('order_index', 0, 'position in the planning order, 0-based (0 plans first, no predecessor)',
       0, 254),
    _p('team', [], 'robot names in planning order (team[order_index] == robot_name)',
       kind='str_list', required=True),
    _p('predecessor', '', "team[order_index - 1] ('' for order index 0); intents from anyone "
       'else are rejected'),
    _p('mocap_source', BRIDGE_NODE, 'the only node whose /mocap/frame is used (fully qualified '
       'name); frames from any other publisher are refused, two publishers of this name stop '
       'the robot', required=True),
    _p('predecessor_node', '', "the only node whose intents are used ('' = /<predecessor>/agent)"),
    _p('task', 'pushbox', 'task: selects the observation builder and the object body',
       choices=TASK_NAMES),
    _p('task_config', '', "task YAML (its `task:` section) or a packaged config's name "
       "('gate_paper'); '' = the packaged config/<task>.yaml"),
    _p('model_dir', '', "directory with manifest.yaml and agent_<k>.pt (only agent_<order_index>.pt "
       "is loaded); '' = the shipped model of the task and team size (models/<task>[_<n>robots]); "
       'a relative path is looked up under $SEQWM_ROOT, then the installed share/seqwm_agent'),
    _p('device', 'cpu', "torch device for the model and planner ('cpu', 'cuda', 'cuda:0')"),
    _p('torch_threads', 1, 'torch CPU threads (0: torch default); keep equal for bit-exact replay',
       0, 64),
    # timing
    _p('plan_budget_ms', 0.0, "one robot's planning time, p99, ms, for the chain's timing: "
       "order index k waits k * (plan + hop) after its frame for its predecessor's intent "
       "(runtime/chain.py); 0 = the model's measured figure (manifest deployment.plan_ms, "
       'seqwm-budget); measure it on the robot\'s computer', 0.0, 1000.0),
    _p('hop_budget_ms', 0.0, 'one intent hop between two agents, p99, ms; 0 = the loopback '
       "measurement (runtime/chain.py LOOPBACK_HOP_MS); measure the team's network", 0.0, 1000.0),
    _p('cache_max_age_ticks', CACHE_MAX_AGE_TICKS, 'a cached predecessor intent older than this '
       'many ticks is masked', 0, 100),
    _p('stale_timeout_s', 0.3, 'stop when no usable mocap frame (own body tracked) arrived for '
       'this long, s; other bodies may be held this long', 0.02, 5.0),
    _p('mocap_future_s', 0.5, "refuse mocap frames stamped further ahead of this host's clock, s "
       '(bridge and robots must be clock-synchronised, e.g. chrony, to well within this)',
       0.01, 60.0),
    _p('max_body_speed_mps', 3.0, 'refuse a body pose that moved faster than this since its last '
       'one, m/s (Go2-W top speed and the box are far below)', 0.1, 50.0),
    _p('jump_margin_m', 0.1, 'distance allowed on top of max_body_speed_mps * dt, m (noise)',
       0.0, 5.0),
    # command chain
    *_limits(),
    _p('lowpass_cutoff_hz', CUTOFF_HZ, 'cutoff of the command low-pass filter, Hz (< 0.5 / dt)',
       0.01, 50.0),
    # robot backend
    _p('backend', 'topic', "where commands go: 'topic' (Twist on cmd_vel) or 'unitree' "
       '(SportClient in a worker process)', choices=BACKENDS),
    *_backend('topic', TopicBackendConfig),
    *_backend('unitree', UnitreeBackendConfig),
    # watchdog arena bounds (safety box; the observation always uses the task config's arena)
    _p('arena_min_x', NAN, 'watchdog bound: stop when the own pose leaves it, m (NaN: task arena)',
       -100.0, 100.0, unset_nan=True),
    _p('arena_max_x', NAN, 'watchdog bound, m (NaN: task arena)', -100.0, 100.0, unset_nan=True),
    _p('arena_min_y', NAN, 'watchdog bound, m (NaN: task arena)', -100.0, 100.0, unset_nan=True),
    _p('arena_max_y', NAN, 'watchdog bound, m (NaN: task arena)', -100.0, 100.0, unset_nan=True),
    # task facts the observation builder needs (names follow the task YAML keys)
    _p('target_x', NAN, 'pushbox: box target x; gate: target line x, m (NaN: task config)',
       -100.0, 100.0, unset_nan=True),
    _p('target_y', NAN, 'pushbox: box target y, m (NaN: task config)', -100.0, 100.0,
       unset_nan=True),
    _p('gate_x', NAN, 'gate / shepherd: gate centre x, m (NaN: task config)', -100.0, 100.0,
       unset_nan=True),
    _p('gate_y', NAN, 'gate / shepherd: gate centre y, m (NaN: task config)', -100.0, 100.0,
       unset_nan=True),
    # planner overrides (default: the manifest's planner section)
    _p('planner.preset', 'deployment', "sampling settings: the model's deployment planner "
       "(manifest, chosen by seqwm-budget) or the paper's (512 samples, 64 elites, 6 "
       'iterations; its measured time then sets the chain timing)', choices=PRESETS),
    _p('planner.iterations', 0, 'MPPI iterations K (0: manifest)', 0, 100),
    _p('planner.num_samples', 0, 'Gaussian candidate sequences N_p (0: manifest)', 0, 65536),
    _p('planner.early_stop', 'manifest', 'KL early stop', choices=('manifest', 'on', 'off')),
    _p('planner.kl_threshold', NAN, 'KL early-stop threshold eta (NaN: manifest)', 0.0, 1e6,
       unset_nan=True),
    # reproducibility and logging
    _p('seed', 0, 'planner seed; deterministic mode re-seeds with seed + tick every tick', 0,
       2 ** 31 - 1),
    _p('deterministic', True, 're-seed the planner from the tick index (bag replay reproduces '
       'the commands)'),
    _p('log_throttle_s', 2.0, 'repeated log lines of one kind at most this often, s', 0.0, 3600.0),
)

BY_NAME: dict[str, ParamSpec] = {p.name: p for p in PARAMETERS}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def coerce(spec: ParamSpec, value: Any) -> Any:
    """Value as the spec's type (ints accepted for doubles); ParameterError naming the parameter."""
    name = spec.name
    if spec.kind is float:
        if not _is_number(value):
            raise ParameterError(f'parameter {name} must be a number, got {value!r}')
        return float(value)
    if spec.kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ParameterError(f'parameter {name} must be an integer, got {value!r}')
        return value
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise ParameterError(f'parameter {name} must be true or false, got {value!r}')
        return value
    if spec.kind is str:
        if not isinstance(value, str):
            raise ParameterError(f'parameter {name} must be a string, got {value!r}')
        return value
    item = str if spec.kind == 'str_list' else int
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, item) and not isinstance(v, bool) for v in value):
        raise ParameterError(f'parameter {name} must be a list of {item.__name__}, got {value!r}')
    return list(value)


def check_value(spec: ParamSpec, value: Any) -> Any:
    """Coerce and range-check one value."""
    v = coerce(spec, value)
    name = spec.name
    if spec.choices and v not in spec.choices:
        raise ParameterError(f'parameter {name} must be one of {list(spec.choices)}, got {v!r}')
    if spec.required and not v:
        raise ParameterError(f'parameter {name} must be set (got {v!r})')
    if spec.kind in (int, float):
        if spec.kind is float and math.isnan(v) and spec.unset_nan:
            return v
        if not math.isfinite(v) or (spec.low is not None and v < spec.low) or \
                (spec.high is not None and v > spec.high):
            raise ParameterError(f'parameter {name} = {v!r} is out of range {spec.range_text}')
    return v


def check_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """All parameters, coerced and checked one by one and together (defaults for missing ones)."""
    v = {p.name: check_value(p, values.get(p.name, p.default)) for p in PARAMETERS}
    problem = (team_problem(v['task'], v['team'])
               or position_problem(v['team'], v['robot_name'], v['order_index'], v['predecessor']))
    if problem:
        raise ParameterError(f'parameters: {problem}')
    for axis in ('x', 'y'):
        lo, hi = v[f'arena_min_{axis}'], v[f'arena_max_{axis}']
        if math.isnan(lo) != math.isnan(hi):
            raise ParameterError(f'parameters arena_min_{axis} / arena_max_{axis} must both be set '
                                 f'or both NaN, got {lo} / {hi}')
        if not math.isnan(lo) and not lo < hi:
            raise ParameterError(f'parameter arena_min_{axis} = {lo} must be below arena_max_{axis} = {hi}')
    return v


def _planner_overrides(v: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if v['planner.iterations'] > 0:
        out['iterations'] = v['planner.iterations']
    if v['planner.num_samples'] > 0:
        out['num_samples'] = v['planner.num_samples']
    if v['planner.early_stop'] != 'manifest':
        out['early_stop'] = v['planner.early_stop'] == 'on'
    if not math.isnan(v['planner.kl_threshold']):
        out['kl_threshold'] = v['planner.kl_threshold']
    return out


def task_overrides(v: Mapping[str, Any]) -> dict[str, Any]:
    """Task-config keys set by parameters (merged into the task YAML's `task:` section)."""
    out: dict[str, Any] = {'num_robots': len(v['team'])}
    tx, ty = v['target_x'], v['target_y']
    if v['task'] == 'pushbox' and not (math.isnan(tx) and math.isnan(ty)):
        out['target'] = [tx, ty]          # completed from the config below when one is NaN
    if v['task'] == 'gate' and not math.isnan(tx):
        out['target_x'] = tx
    if v['task'] in ('gate', 'shepherd'):
        for key in ('gate_x', 'gate_y'):
            if not math.isnan(v[key]):
                out[key] = v[key]
    return out


def model_dir_of(v: Mapping[str, Any]) -> str:
    """The model directory these checked values select, located by the one data-path rule
    (paths.py: $SEQWM_ROOT, then the installed share directory; never the working directory).
    ParameterError naming where it looked when there is no model there."""
    wanted = model_dir_for_team(v['model_dir'], v['task'], len(v['team']), v['task_config'])
    found = resolve_data_path(wanted)
    if not os.path.isfile(os.path.join(found, 'manifest.yaml')):
        where = where_searched(wanted)
        raise ParameterError(f'model_dir: no model at {found!r} (no manifest.yaml)'
                             + (f'; {where}' if where else ''))
    return found


def settings_from_values(v: Mapping[str, Any]):
    """(AgentSettings, backend parameter mapping, TaskConfig) from checked values."""
    from .runtime.agent import AgentSettings
    from .sim.config import load_task_config

    source = task_config_source(v['task_config'], v['task'])
    overrides = task_overrides(v)
    if 'target' in overrides:
        base = load_task_config(source, overrides={'num_robots': len(v['team'])})
        overrides['target'] = [base.target[i] if math.isnan(x) else x
                               for i, x in enumerate(overrides['target'])]
    task_cfg = load_task_config(source, overrides=overrides)
    if task_cfg.name != v['task']:
        raise ParameterError(f'parameter task_config {source!r} is a {task_cfg.name} config, '
                             f'but task = {v["task"]!r}')
    bounds = None
    given = tuple(v[f'arena_{e}'] for e in ('min_x', 'max_x', 'min_y', 'max_y'))
    if not all(math.isnan(b) for b in given):
        a = task_cfg.arena
        bounds = tuple(d if math.isnan(b) else b
                       for b, d in zip(given, (a.x_min, a.x_max, a.y_min, a.y_max)))
    limits = CommandLimits(**{k: v[f'limits.{k}'] for k in describe_parameters(CommandLimits)})
    settings = AgentSettings(
        robot_name=v['robot_name'], order_index=v['order_index'], team=tuple(v['team']),
        task=v['task'], predecessor=v['predecessor'], plan_budget_ms=v['plan_budget_ms'],
        hop_budget_ms=v['hop_budget_ms'], planner_preset=v['planner.preset'],
        cache_max_age_ticks=v['cache_max_age_ticks'], stale_timeout_s=v['stale_timeout_s'],
        mocap_future_s=v['mocap_future_s'], max_body_speed_mps=v['max_body_speed_mps'],
        jump_margin_m=v['jump_margin_m'], mocap_source=v['mocap_source'],
        predecessor_node=v['predecessor_node'], limits=limits,
        lowpass_cutoff_hz=v['lowpass_cutoff_hz'], arena_bounds=bounds,
        planner_overrides=_planner_overrides(v), seed=v['seed'],
        deterministic=v['deterministic'], device=v['device'])
    kind = v['backend']
    prefix = f'{kind}.'
    backend_params = {k[len(prefix):]: val for k, val in v.items() if k.startswith(prefix)}
    return settings, backend_params, task_cfg


def markdown_table() -> str:
    """The parameter table for docs/agent.md."""
    rows = ['| name | type | default | range | description |', '|---|---|---|---|---|']
    names = {bool: 'bool', int: 'int', float: 'double', str: 'string', 'str_list': 'string[]',
             'int_list': 'int[]'}
    for p in PARAMETERS:
        d = p.default
        default = ('NaN' if isinstance(d, float) and math.isnan(d) else
                   f"'{d}'" if isinstance(d, str) else str(d).lower() if isinstance(d, bool) else
                   f'{d:g}' if isinstance(d, float) else str(d))
        desc = p.description.replace('|', '\\|')
        rows.append(f'| `{p.name}` | {names[p.kind]} | {default} | {p.range_text.replace("|", "/")} '
                    f'| {desc} |')
    return '\n'.join(rows)


if __name__ == '__main__':
    print(markdown_table())
