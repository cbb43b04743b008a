"""The node graph of a SeqWM team, computed without importing any launch module.

One function, `build_graph`, decides which nodes run, in which namespaces, with which parameters
and remappings. The launch files translate its result into launch_ros `Node` actions; the pip-only
demo runner translates it into processes. Both therefore start exactly the same graph, and the
graph itself is unit-tested on machines without `launch_ros`.

Topology (docs/architecture.md), for robots r_0..r_{n-1} in order:
  arena (sim only):  /<r_k>/cmd_vel  ->  /arena/truth
  mocap_bridge:      NOKOV SDK | /arena/truth  ->  /mocap/frame, /mocap/<body>/pose
  /<r_k>/agent:      /mocap/frame + /<r_{k-1}>/intent (remapped from `predecessor_intent`)
                     -> /<r_k>/intent, /<r_k>/status, /<r_k>/plan_markers, /<r_k>/cmd_vel
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from seqwm_agent.paths import model_dir_for_team
from seqwm_agent.runtime.sources import BRIDGE_NODE, agent_node
from seqwm_agent.task_registry import TASKS, team_problem
from seqwm_common.topics import INTENT_TOPIC, PREDECESSOR_TOPIC, robot_topic



class GraphError(ValueError):
    """A team description that cannot be turned into a valid node graph."""


@dataclass(frozen=True)
class NodeSpec:
    """One node to start: what a launch_ros `Node` action or a `ros2 run` command needs."""

    package: str
    executable: str
    name: str
    namespace: str = ''
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    # The Python module whose `main()` is the executable (for the pip-only runner).
    module: str = ''

    @property
    def fqn(self) -> str:
        """Fully qualified node name, e.g. /go2w_1/agent."""
        return f'{self.namespace}/{self.name}' if self.namespace else f'/{self.name}'


def _check_robots(task: str, robots: list[str]) -> None:
    problem = team_problem(task, robots)
    if problem:
        raise GraphError(problem)


def load_config(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a bringup YAML (sections: team, task, agent, sim_agent, arena, mocap, supervision)
    into a dict. `extends: <file>` (relative to this file) reads that one first; each section
    given here merges over the base's key by key, so a task's file holds only what differs."""
    path = Path(path).resolve()
    if path in _seen:
        raise GraphError(f'{path}: extends itself through {[str(p) for p in _seen]}')
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise GraphError(f'{path}: top level must be a mapping')
    base_name = data.pop('extends', None)
    if base_name is None:
        return data
    base = load_config(path.parent / base_name, _seen + (path,))
    for section, values in data.items():
        if isinstance(values, dict) and isinstance(base.get(section), dict):
            base[section] = {**base[section], **values}
        else:
            base[section] = values
    return base


def build_graph(task: str, robots: list[str], config: dict[str, Any] | None = None,
                sim: bool = True, order: list[str] | None = None,
                model_dir: str | None = None) -> list[NodeSpec]:
    """Nodes for one team.

    task      -- 'pushbox' | 'gate' | 'shepherd'
    robots    -- robot names (also their namespaces and mocap body names)
    config    -- bringup config dict (sections `task` (shared by arena and agents), `agent`,
                 `arena`, `mocap`; see config/*.yaml)
    sim       -- True: arena simulator feeds the bridge; False: NOKOV cameras, Unitree SDK
    order     -- planning order (defaults to `robots` as given); robot order[0] plans first
    model_dir -- overrides config agent.model_dir; when both are empty, the shipped model of the
                 task and team size (models/gate_5robots for five Gate robots)
    """
    config = config or {}
    order = list(order) if order is not None else list(robots)
    _check_robots(task, robots)
    if sorted(order) != sorted(robots):
        raise GraphError(f'order {order} must be a permutation of robots {robots}')
    task_cfg = dict(config.get('task', {}))  # facts both the arena and the agents must share
    # sim: the whole team on this host (`sim_agent`: what differs from robots on their own
    # computers); `agent` (and overrides of it) still win
    agent_cfg = {**task_cfg, **(config.get('sim_agent', {}) if sim else {}),
                 **config.get('agent', {})}
    arena_cfg = dict(config.get('arena', {}))
    mocap_cfg = dict(config.get('mocap', {}))
    agent_cfg['model_dir'] = model_dir_for_team(model_dir or agent_cfg.get('model_dir') or '',
                                                task, len(order), task_cfg.get('task_config', ''))
    bodies = order + list(TASKS[task].object_bodies)

    nodes: list[NodeSpec] = []
    if sim:
        nodes.append(NodeSpec(
            package='seqwm_agent', executable='arena', name='arena', module='seqwm_agent.arena_node',
            parameters={**task_cfg, **arena_cfg, 'task': task, 'robots': order}))
    bridge_params = {**mocap_cfg, 'bodies': bodies}
    bridge_params['source'] = 'sim' if sim else mocap_cfg.get('source', 'nokov')
    nodes.append(NodeSpec(
        package='seqwm_mocap_bridge', executable='bridge', name=BRIDGE_NODE.strip('/'),
        module='seqwm_mocap_bridge.bridge_node', parameters=bridge_params))

    for k, robot in enumerate(order):
        params = {**agent_cfg, 'robot_name': robot, 'order_index': k, 'team': order, 'task': task,
                  'predecessor': order[k - 1] if k > 0 else ''}
        params['backend'] = 'topic' if sim else agent_cfg.get('backend', 'unitree')
        remaps: tuple[tuple[str, str], ...] = ()
        if k > 0:
            remaps = ((PREDECESSOR_TOPIC, robot_topic(order[k - 1], INTENT_TOPIC)),)
        namespace, name = agent_node(robot).rsplit('/', 1)   # the node its successor listens to
        nodes.append(NodeSpec(
            package='seqwm_agent', executable='agent', name=name, namespace=namespace,
            module='seqwm_agent.agent_node', parameters=params, remappings=remaps))
    return nodes


def agent_only(task: str, robot: str, robots: list[str], config: dict[str, Any] | None = None,
               sim: bool = False, order: list[str] | None = None) -> NodeSpec:
    """The agent node of one robot, for onboard use (`agent.launch.py robot:=...`)."""
    for node in build_graph(task, robots, config, sim=sim, order=order):
        if node.executable == 'agent' and node.namespace == f'/{robot}':
            return node
    raise GraphError(f'robot {robot!r} is not in the team {robots}')


def ros_args(node: NodeSpec, params_file: str | None = None) -> list[str]:
    """`--ros-args` for running `node` as a plain process (what launch_ros would pass)."""
    args = ['--ros-args', '-r', f'__node:={node.name}']
    if node.namespace:
        args += ['-r', f'__ns:={node.namespace}']
    for src, dst in node.remappings:
        args += ['-r', f'{src}:={dst}']
    if params_file:
        args += ['--params-file', params_file]
    return args


def params_yaml(node: NodeSpec) -> str:
    """A ROS 2 parameters file for exactly this node (explicit section, no `/**` wildcard)."""
    return yaml.safe_dump({node.fqn: {'ros__parameters': node.parameters}}, sort_keys=True)


ROBOT_PREFIX = 'go2w_'


def robot_names(text: str) -> list[str]:
    """Robot names from a launch/CLI argument: names ('go2w_1,go2w_2') or a team size ('5' ->
    go2w_1..go2w_5, the names the bringup configs use); '' -> [] (the config's team)."""
    text = text.strip()
    if text.isdigit():
        n = int(text)
        if n < 1:
            raise GraphError(f'a team needs at least one robot, got {text!r}')
        return [f'{ROBOT_PREFIX}{k}' for k in range(1, n + 1)]
    return split_names(text)


def split_names(text: str) -> list[str]:
    """'go2w_1,go2w_2' or 'go2w_1 go2w_2' -> ['go2w_1', 'go2w_2'] (launch argument parsing)."""
    return [t for t in re.split(r'[,\s]+', text.strip()) if t]
