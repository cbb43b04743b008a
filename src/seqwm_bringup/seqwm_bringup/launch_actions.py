"""Translate the node graph (graph.py) into launch_ros actions. Imported only by launch files.

This is the one module of seqwm_bringup that imports `launch`/`launch_ros`; they come from a ROS 2
distribution (robot, Docker image) and are not installable from PyPI, so nothing else depends on it.
"""
from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, LogInfo, OpaqueFunction,
                            RegisterEventHandler, TimerAction)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from seqwm_bringup.graph import (NodeSpec, agent_only, build_graph, load_config, robot_names,
                                 split_names)
from seqwm_bringup.runner import resolve_paths
from seqwm_bringup.supervision import ExitPolicy


def _to_node(spec: NodeSpec) -> Node:
    return Node(package=spec.package, executable=spec.executable, name=spec.name,
                namespace=spec.namespace.lstrip('/') or None,
                parameters=[spec.parameters], remappings=list(spec.remappings),
                output='screen', emulate_tty=True)


def _supervised(spec: NodeSpec, policy: ExitPolicy, restarts: int = 0) -> list:
    """The node and its exit handler: the policy restarts it (a fresh Node action after the
    delay) or shuts the launch down with the message naming the robot and its exit reason."""
    node = _to_node(spec)

    def on_exit(event, context):
        if context.is_shutdown:       # Ctrl-C / a shutdown already under way: nothing to decide
            return None
        decision = policy.decide(spec, event.returncode, restarts)
        if decision.restart:
            return [LogInfo(msg=f'[supervision] {decision.message}'),
                    TimerAction(period=decision.delay_s,
                                actions=_supervised(spec, policy, restarts + 1))]
        return [LogInfo(msg=f'[supervision] {decision.message}'),
                EmitEvent(event=Shutdown(reason=decision.message))]

    return [node, RegisterEventHandler(OnProcessExit(target_action=node, on_exit=on_exit))]


def _arguments(task: str) -> list[DeclareLaunchArgument]:
    share = get_package_share_directory('seqwm_bringup')
    return [
        DeclareLaunchArgument('config', default_value=os.path.join(share, 'config', f'{task}.yaml'),
                              description='bringup YAML (team, task, agent, arena, mocap sections)'),
        DeclareLaunchArgument('robots', default_value='',
                              description="robot names, e.g. 'go2w_1,go2w_2', or a team size, e.g. "
                                          "'5' (go2w_1..go2w_5); default: config team.robots"),
        DeclareLaunchArgument('order', default_value='',
                              description='planning order (default: the order of robots)'),
        DeclareLaunchArgument('sim', default_value='true',
                              description='true: arena simulator + simulated mocap; '
                                          'false: NOKOV + Unitree SDK'),
        DeclareLaunchArgument('model_dir', default_value='',
                              description='trained model directory (default: config agent.model_dir)'),
        DeclareLaunchArgument('task_config', default_value='',
                              description="task config shared by arena and agents: a YAML "
                                          "or a packaged config's name, e.g. gate_paper (the "
                                          "paper's Gate; model models/gate_paper_<n>robots)"),
    ]


def _resolve(context, task: str):
    config = load_config(LaunchConfiguration('config').perform(context))
    robots = robot_names(LaunchConfiguration('robots').perform(context)) \
        or list(config.get('team', {}).get('robots', []))
    order = split_names(LaunchConfiguration('order').perform(context)) or None
    sim = LaunchConfiguration('sim').perform(context).lower() in ('1', 'true', 'yes')
    model_dir = LaunchConfiguration('model_dir').perform(context) or None
    task_config = LaunchConfiguration('task_config').perform(context)
    if task_config:
        config['task'] = {**(config.get('task') or {}), 'task_config': task_config}
    return config, robots, order, sim, model_dir


def team_launch_description(task: str) -> LaunchDescription:
    """Whole team (+ arena and bridge) for `task`."""
    def setup(context, *_, **__):
        config, robots, order, sim, model_dir = _resolve(context, task)
        nodes = build_graph(task, robots, config, sim=sim, order=order, model_dir=model_dir)
        policy = ExitPolicy.from_config(config)
        return [a for n in resolve_paths(nodes) for a in _supervised(n, policy)]
    return LaunchDescription(_arguments(task) + [OpaqueFunction(function=setup)])


def agent_launch_description() -> LaunchDescription:
    """One robot's agent only (onboard use): `robot:=go2w_1 task:=pushbox`."""
    def setup(context, *_, **__):
        task = LaunchConfiguration('task').perform(context)
        config, robots, order, sim, model_dir = _resolve(context, task)
        if model_dir:
            config.setdefault('agent', {})['model_dir'] = model_dir
        robot = LaunchConfiguration('robot').perform(context)
        node = agent_only(task, robot, robots, config, sim=sim, order=order)
        return _supervised(resolve_paths([node])[0], ExitPolicy.from_config(config))
    share = get_package_share_directory('seqwm_bringup')
    args = [a for a in _arguments('pushbox') if a.name not in ('config', 'sim')]
    args += [
        DeclareLaunchArgument('robot', description='this robot (its name, namespace and mocap body)'),
        DeclareLaunchArgument('task', default_value='pushbox', description='pushbox | gate | shepherd'),
        DeclareLaunchArgument('sim', default_value='false',
                              description='topic backend instead of the Unitree SDK'),
        DeclareLaunchArgument('config',
                              default_value=[share, '/config/', LaunchConfiguration('task'), '.yaml'],
                              description='bringup YAML'),
    ]
    return LaunchDescription(args + [OpaqueFunction(function=setup)])
