"""Start a node graph as plain processes: what `ros2 launch` does, for machines without launch_ros.

Each node of `graph.build_graph` becomes `python -m <module> --ros-args ...` with its own params
file (explicit per-node section), its own log file and its own process group, so stopping it
also stops anything it spawned (e.g. the Unitree SDK worker). `stop()` sends SIGINT (clean
shutdown: agents send a stop command), waits, then SIGKILLs what is left and reports orphans.

`run_team` (console script) runs a team until Ctrl-C; `--only` starts a subset (e.g. one robot
per container in docker/compose.yaml).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

from seqwm_agent.task_registry import TASK_NAMES

from .graph import NodeSpec, build_graph, load_config, params_yaml, ros_args, split_names


def workspace_root() -> Path:
    """$SEQWM_ROOT (set by scripts/env.sh and the Docker image), else the current directory."""
    return Path(os.environ.get('SEQWM_ROOT', os.getcwd())).resolve()


def default_config(task: str) -> Path:
    """The installed bringup config for `task` (share/seqwm_bringup/config/<task>.yaml)."""
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory('seqwm_bringup')) / 'config' / f'{task}.yaml'


def resolve_paths(nodes: list[NodeSpec], root: Path) -> list[NodeSpec]:
    """Relative model_dir / file parameters resolve against the workspace root."""
    out = []
    for n in nodes:
        params = dict(n.parameters)
        for key in ('model_dir', 'replay_file', 'task_config'):
            v = params.get(key)
            if isinstance(v, str) and v and not os.path.isabs(v):
                params[key] = str(root / v)
        out.append(NodeSpec(n.package, n.executable, n.name, n.namespace, params, n.remappings,
                            n.module))
    return out


@dataclass
class Running:
    node: NodeSpec
    proc: subprocess.Popen
    log: Path


class TeamRunner:
    """The processes of one node graph."""

    def __init__(self, nodes: list[NodeSpec], run_dir: Path, env: dict[str, str] | None = None,
                 wrap: Callable[[NodeSpec], list[str]] | None = None):
        """`wrap(node)`: a command prefix per node, e.g. `ip netns exec <host>` to run each
        node on its own (network-namespace) host."""
        self.nodes = nodes
        self.run_dir = run_dir
        self.env = {**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})}
        self.wrap = wrap
        self.running: list[Running] = []

    def start(self) -> None:
        (self.run_dir / 'params').mkdir(parents=True, exist_ok=True)
        (self.run_dir / 'logs').mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            tag = node.fqn.strip('/').replace('/', '.')
            params = self.run_dir / 'params' / f'{tag}.yaml'
            params.write_text(params_yaml(node))
            log = self.run_dir / 'logs' / f'{tag}.log'
            cmd = [sys.executable, '-m', node.module, *ros_args(node, str(params))]
            if self.wrap is not None:
                cmd = [*self.wrap(node), *cmd]
            with open(log, 'wb') as fh:
                proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env,
                                        start_new_session=True)
            self.running.append(Running(node, proc, log))

    def crashed(self) -> list[tuple[str, int]]:
        """(node, exit code) of every process that has exited."""
        return [(r.node.fqn, r.proc.returncode) for r in self.running if r.proc.poll() is not None]

    def stop(self, timeout: float = 10.0) -> dict[str, int | None]:
        """SIGINT all, wait up to `timeout`, SIGKILL the rest; returns exit codes per node."""
        for r in self.running:
            if r.proc.poll() is None:
                _signal_group(r.proc.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        for r in self.running:
            try:
                r.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for r in self.running:
            # The whole group: children the node spawned die with it.
            _signal_group(r.proc.pid, signal.SIGKILL)
            try:
                r.proc.wait(2.0)
            except subprocess.TimeoutExpired:
                pass
        return {r.node.fqn: r.proc.returncode for r in self.running}

    def orphans(self) -> list[int]:
        """Pids still alive in any of the node process groups (should be empty after stop)."""
        alive = []
        for r in self.running:
            for pid_dir in Path('/proc').iterdir():
                if not pid_dir.name.isdigit():
                    continue
                try:
                    fields = (pid_dir / 'stat').read_text().rsplit(')', 1)[1].split()
                except OSError:
                    continue
                # fields[0] = state, fields[2] = pgid
                if int(fields[2]) == r.proc.pid and fields[0] != 'Z':
                    alive.append(int(pid_dir.name))
        return alive


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def team_nodes(task: str, robots: list[str] | None, config_path: str | None,
               order: list[str] | None, model_dir: str | None, sim: bool = True,
               only: list[str] | None = None,
               overrides: dict | None = None) -> list[NodeSpec]:
    """The graph a user asked for, with paths resolved and `--only` applied.

    `overrides` maps a config section to values merged over it, e.g. {'arena': {'episode_s': 5}}.
    """
    config = load_config(config_path or default_config(task))
    for section, values in (overrides or {}).items():
        config[section] = {**(config.get(section) or {}), **values}
    robots = robots or list(config.get('team', {}).get('robots', []))
    nodes = resolve_paths(build_graph(task, robots, config, sim=sim, order=order,
                                      model_dir=model_dir), workspace_root())
    if only:
        keep = set(only)
        nodes = [n for n in nodes if n.name in keep or n.namespace.strip('/') in keep]
    return nodes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description='Run a SeqWM team as processes (no launch_ros needed).')
    ap.add_argument('--task', default='pushbox', choices=TASK_NAMES)
    ap.add_argument('--robots', default='', help="e.g. 'go2w_1,go2w_2' (default: config)")
    ap.add_argument('--order', default='', help='planning order (default: robots)')
    ap.add_argument('--config', default=None, help='bringup YAML (default: installed config)')
    ap.add_argument('--model-dir', default=None)
    ap.add_argument('--real', action='store_true', help='NOKOV + Unitree SDK instead of the arena')
    ap.add_argument('--only', default='', help="start only these nodes/robots, e.g. 'arena,mocap_bridge'")
    ap.add_argument('--run-dir', default=None)
    args = ap.parse_args(argv)
    nodes = team_nodes(args.task, split_names(args.robots), args.config,
                       split_names(args.order) or None, args.model_dir, sim=not args.real,
                       only=split_names(args.only))
    run_dir = Path(args.run_dir or workspace_root() / 'runs' / time.strftime('team-%Y%m%d-%H%M%S'))
    runner = TeamRunner(nodes, run_dir)
    runner.start()
    print(f'started {[n.fqn for n in nodes]}; logs in {run_dir}/logs; Ctrl-C to stop', flush=True)
    stop = {'now': False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        while not stop['now']:
            dead = runner.crashed()
            if dead:
                print(f'node(s) exited: {dead}; stopping the team', file=sys.stderr)
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    codes = runner.stop()
    print(f'stopped: {codes}')
    return 1 if runner.orphans() else 0


if __name__ == '__main__':
    sys.exit(main())
