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

from seqwm_agent.paths import resolve_data_path, task_config_source, team_model_problem
from seqwm_agent.task_registry import TASK_NAMES

from .graph import (GraphError, NodeSpec, build_graph, load_config, params_yaml, robot_names,
                    ros_args, split_names)
from .supervision import ExitPolicy


def workspace_root() -> Path:
    """$SEQWM_ROOT (set by scripts/env.sh and the Docker image), else the current directory.

    Only where *new* run directories go; models and configs are never looked up here
    (seqwm_agent.paths)."""
    return Path(os.environ.get('SEQWM_ROOT', os.getcwd())).resolve()


def default_config(task: str) -> Path:
    """The installed bringup config for `task` (share/seqwm_bringup/config/<task>.yaml)."""
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory('seqwm_bringup')) / 'config' / f'{task}.yaml'


def resolve_paths(nodes: list[NodeSpec]) -> list[NodeSpec]:
    """Relative model_dir / task_config parameters located by seqwm_agent.paths ($SEQWM_ROOT,
    then the installed share directory; never the working directory), and every agent's model
    checked against its team: GraphError naming the expected and found team sizes, before any
    node starts."""
    out = []
    for n in nodes:
        params = dict(n.parameters)
        if isinstance(params.get('model_dir'), str) and params['model_dir']:
            params['model_dir'] = resolve_data_path(params['model_dir'])
        if isinstance(params.get('task_config'), str) and params['task_config']:
            # a packaged config's name ('gate_paper') stays a name; a YAML path is located
            params['task_config'] = task_config_source(params['task_config'], params['task'])
        if n.executable == 'agent':
            problem = team_model_problem(params['model_dir'], params['task'], params['team'])
            if problem:
                raise GraphError(f'{n.fqn}: {problem}')
        out.append(NodeSpec(n.package, n.executable, n.name, n.namespace, params, n.remappings,
                            n.module))
    return out


@dataclass
class Running:
    node: NodeSpec
    proc: subprocess.Popen
    log: Path
    cmd: list[str]
    restarts: int = 0
    restart_at: float | None = None    # monotonic time of a scheduled restart
    handled: bool = False              # this exit has been decided on


class TeamRunner:
    """The processes of one node graph, supervised by an ExitPolicy (supervision.py)."""

    def __init__(self, nodes: list[NodeSpec], run_dir: Path, env: dict[str, str] | None = None,
                 wrap: Callable[[NodeSpec], list[str]] | None = None,
                 policy: ExitPolicy | None = None,
                 report: Callable[[str], None] | None = None):
        """`wrap(node)`: a command prefix per node, e.g. `ip netns exec <host>` to run each
        node on its own (network-namespace) host. `report(message)`: where supervision
        decisions go (default: stderr)."""
        self.nodes = nodes
        self.run_dir = run_dir
        self.env = {**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})}
        self.wrap = wrap
        self.policy = policy or ExitPolicy()
        self.report = report or (lambda msg: print(f'[supervision] {msg}', file=sys.stderr,
                                                   flush=True))
        self.running: list[Running] = []
        self.events: list[dict] = []     # every exit and what was decided, for run summaries

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
            self.running.append(Running(node, self._spawn(cmd, log, 'wb'), log, cmd))

    def _spawn(self, cmd: list[str], log: Path, mode: str) -> subprocess.Popen:
        with open(log, mode) as fh:
            return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env,
                                    start_new_session=True)

    def crashed(self) -> list[tuple[str, int]]:
        """(node, exit code) of every process that has exited."""
        return [(r.node.fqn, r.proc.returncode) for r in self.running if r.proc.poll() is not None]

    def supervise(self, now: float | None = None) -> str | None:
        """One supervision step: decide on each new exit by the policy, start the restarts that
        are due, and return the shutdown message once the team must stop (None while it runs).
        Call it periodically (the runner's main loop, the demo's episode loop)."""
        now = time.monotonic() if now is None else now
        for r in self.running:
            if r.restart_at is not None and now >= r.restart_at:
                r.restart_at, r.handled = None, False
                with open(r.log, 'ab') as fh:
                    fh.write(f'\n[supervision] restart {r.restarts} of {r.node.fqn}\n'.encode())
                r.proc = self._spawn(r.cmd, r.log, 'ab')
                continue
            code = r.proc.poll()
            if code is None or r.handled:
                continue
            r.handled = True
            decision = self.policy.decide(r.node, code, r.restarts)
            detail = last_error_line(r.log)
            message = decision.message + (f'; last error: {detail}' if detail else '')
            self.events.append({'node': r.node.fqn, 'exit_code': code, 'restart': decision.restart,
                                'message': message})
            self.report(message)
            if not decision.restart:
                return message
            r.restarts += 1
            r.restart_at = now + decision.delay_s
        return None

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

    def cpu_seconds(self) -> dict[str, float | None]:
        """CPU time (user + system, s) each node's process has used so far (None once gone)."""
        out: dict[str, float | None] = {}
        for r in self.running:
            try:
                fields = Path(f'/proc/{r.proc.pid}/stat').read_text().rsplit(')', 1)[1].split()
                out[r.node.fqn] = (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
            except (OSError, IndexError, ValueError):
                out[r.node.fqn] = None
        return out

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


def last_error_line(log: Path, limit: int = 65536) -> str:
    """The last ERROR/FATAL line of a node's log (rclpy's `[ERROR] [t] [name]: ...`), '' if none,
    so an exit message can say why without the user opening the log."""
    try:
        with open(log, 'rb') as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            lines = fh.read().decode(errors='replace').splitlines()
    except OSError:
        return ''
    for line in reversed(lines):
        if '[ERROR]' in line or '[FATAL]' in line or line.startswith('Traceback'):
            return line.strip()
    return ''


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def team_config(task: str, config_path: str | None = None,
                overrides: dict | None = None) -> dict:
    """The bringup config a user asked for (`config_path` or the installed one for `task`), with
    `overrides` ({section: {key: value}}) merged over its sections."""
    config = load_config(config_path or default_config(task))
    for section, values in (overrides or {}).items():
        config[section] = {**(config.get(section) or {}), **values}
    return config


def team_nodes(task: str, robots: list[str] | None, config_path: str | None,
               order: list[str] | None, model_dir: str | None, sim: bool = True,
               only: list[str] | None = None,
               overrides: dict | None = None) -> list[NodeSpec]:
    """The graph a user asked for, with paths resolved and `--only` applied.

    `overrides` maps a config section to values merged over it, e.g. {'arena': {'episode_s': 5}}.
    """
    config = team_config(task, config_path, overrides)
    robots = robots or list(config.get('team', {}).get('robots', []))
    nodes = build_graph(task, robots, config, sim=sim, order=order, model_dir=model_dir)
    if only:
        keep = set(only)
        nodes = [n for n in nodes if n.name in keep or n.namespace.strip('/') in keep]
    return resolve_paths(nodes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description='Run a SeqWM team as processes (no launch_ros needed).')
    ap.add_argument('--task', default='pushbox', choices=TASK_NAMES)
    ap.add_argument('--robots', default='', help="names ('go2w_1,go2w_2') or a team size ('5': "
                    "go2w_1..go2w_5); default: the config's team.robots")
    ap.add_argument('--order', default='', help='planning order (default: robots)')
    ap.add_argument('--config', default=None, help='bringup YAML (default: installed config)')
    ap.add_argument('--model-dir', default=None)
    ap.add_argument('--real', action='store_true', help='NOKOV + Unitree SDK instead of the arena')
    ap.add_argument('--only', default='', help="start only these nodes/robots, e.g. 'arena,mocap_bridge'")
    ap.add_argument('--run-dir', default=None)
    args = ap.parse_args(argv)
    try:
        nodes = team_nodes(args.task, robot_names(args.robots), args.config,
                           split_names(args.order) or None, args.model_dir, sim=not args.real,
                           only=split_names(args.only))
        policy = ExitPolicy.from_config(team_config(args.task, args.config))
    except GraphError as exc:
        print(f'run_team: {exc}', file=sys.stderr)
        return 2
    run_dir = Path(args.run_dir or workspace_root() / 'runs' / time.strftime('team-%Y%m%d-%H%M%S'))
    runner = TeamRunner(nodes, run_dir, policy=policy)
    runner.start()
    print(f'started {[n.fqn for n in nodes]}; logs in {run_dir}/logs; Ctrl-C to stop', flush=True)
    stop = {'now': False}
    # Ctrl-C and SIGTERM stop the team the same way. Both handlers are set explicitly: a runner
    # started from a script's background job inherits SIGINT *ignored* (POSIX shells do that),
    # and would otherwise never stop on Ctrl-C / `kill -INT` (found by a test run so started).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.update(now=True))
    reason = None
    while not stop['now'] and reason is None:
        reason = runner.supervise()
        time.sleep(0.2)
    codes = runner.stop()
    print(f'stopped: {codes}')
    if reason is not None:
        print(f'run_team: the team was shut down: {reason}', file=sys.stderr)
        return 1
    return 1 if runner.orphans() else 0


if __name__ == '__main__':
    sys.exit(main())
