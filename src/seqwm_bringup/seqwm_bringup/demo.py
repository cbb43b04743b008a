"""`make demo`: one simulated episode of a task, the whole team over real ROS 2.

    make demo                                       # PushBox, 2 robots
    make demo DEMO_ARGS="--task gate --robots 5"    # any task and team size with a shipped model

Starts the graph of `<task>.launch.py` (arena, mocap bridge, one agent per robot) as processes,
records every topic into an MCAP bag while the episode runs, stops everything cleanly, and writes
`runs/<time>/` (and the `runs/latest` link):

  summary.json     success, time to goal, per-agent planning latency p50/p99, intent mode counts,
                   rejected inputs, command-limit violations, process exit codes, orphans
  trajectory.png   top view of the episode (robots, objects, targets), from the arena's true poses
  bag/             rosbag2 MCAP of all topics (`ros2 bag play` / `seqwm-replay`)
  logs/, params/   each node's log and parameters file

Exit code 0 only when every process stopped cleanly and the run produced its summary; whether
the task succeeded is in the summary (and printed).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from seqwm_agent.task_registry import TASK_NAMES
from seqwm_common.topics import (ARENA_EPISODE_TOPIC, ARENA_TRUTH_TOPIC, CMD_TOPIC,
                                 INPUTS_TOPIC, INTENT_TOPIC, MARKER_TOPIC, MOCAP_STATUS_TOPIC,
                                 MOCAP_TOPIC, STATUS_TOPIC, robot_topic)

from .graph import GraphError, robot_names
from .runner import TeamRunner, team_config, team_nodes, workspace_root
from .supervision import ExitPolicy

SUMMARY_VERSION = 1


class Recorder:
    """An rclpy node that writes every team topic, serialised, into the bag (and keeps a copy)."""

    def __init__(self, bag_dir: Path, robots: list[str]) -> None:
        import rclpy
        from rclpy.node import Node
        from rclpy.qos import (DurabilityPolicy, QoSProfile, ReliabilityPolicy)
        from rclpy.serialization import deserialize_message

        from seqwm_agent.bag import BagWriter
        from seqwm_common.inbox import Inbox
        from geometry_msgs.msg import Twist
        from seqwm_msgs.msg import AgentInputs, AgentStatus, Intent, MocapFrame
        from std_msgs.msg import String
        from visualization_msgs.msg import MarkerArray
        from diagnostic_msgs.msg import DiagnosticArray

        self._rclpy = rclpy
        self._deserialize = deserialize_message
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.node = Node('seqwm_demo_recorder', context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.inbox = Inbox(self.node, self._store, batch_s=0.05)
        self.bag = BagWriter(bag_dir)
        self.messages: dict[str, list[tuple[int, object]]] = {}
        self._raw: dict[str, list[tuple[int, bytes]]] = {}
        self._types: dict[str, type] = {}
        topics = [(MOCAP_TOPIC, MocapFrame), (ARENA_TRUTH_TOPIC, MocapFrame),
                  (ARENA_EPISODE_TOPIC, String), (MOCAP_STATUS_TOPIC, DiagnosticArray)]
        for r in robots:
            topics += [(robot_topic(r, t), cls) for t, cls in (
                (INTENT_TOPIC, Intent), (STATUS_TOPIC, AgentStatus), (INPUTS_TOPIC, AgentInputs),
                (CMD_TOPIC, Twist), (MARKER_TOPIC, MarkerArray))]
        best_effort = QoSProfile(depth=200, reliability=ReliabilityPolicy.BEST_EFFORT)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        # agent status and inputs keep 10 s of history for late joiners: take it, so the bag
        # holds every robot's first ticks even when discovery is slow
        history = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        for topic, cls in topics:
            msgtype = cls.__module__.split('.')[0] + '/msg/' + cls.__name__
            self.bag.add_topic(topic, msgtype)
            qos = (latched if topic == ARENA_EPISODE_TOPIC else
                   history if topic.endswith((f'/{STATUS_TOPIC}', f'/{INPUTS_TOPIC}'))
                   and topic != MOCAP_STATUS_TOPIC else best_effort)
            self._raw[topic], self._types[topic] = [], cls
            self.inbox.open(topic, cls, topic, qos)
        self.inbox.start()

    def _store(self) -> None:
        # Keep the receive path cheap (keep the bytes, stamped when DDS received them, read by
        # the inbox thread in batches): a recorder that falls behind loses best-effort messages,
        # and a flood on a team topic must not take the team's CPU. The bag is written and
        # messages decoded after the run.
        for topic, store in self._raw.items():
            store += [(info['received_timestamp'], raw) for raw, info in self.inbox.take(topic)]

    def decoded(self, topic: str) -> list:
        """Messages of `topic` received so far, deserialised (cached)."""
        self._store()
        raw, done = self._raw.get(topic, []), self.messages.setdefault(topic, [])
        for now, data in raw[len(done):]:
            done.append((now, self._deserialize(data, self._types[topic])))
        return done

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=min(0.05, max(0.0, deadline - time.monotonic())))

    def last_episode(self) -> dict | None:
        eps = self.decoded(ARENA_EPISODE_TOPIC)
        return json.loads(eps[-1][1].data) if eps else None

    def close(self) -> None:
        self.inbox.close()
        self._store()
        self.executor.shutdown()
        self.node.destroy_node()
        if self.context.ok():
            self._rclpy.shutdown(context=self.context)
        merged = sorted((now, topic, raw) for topic, msgs in self._raw.items() for now, raw in msgs)
        for now, topic, raw in merged:
            self.bag.write(topic, now, raw)
        self.bag.close()


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {'p50': None, 'p99': None, 'n': 0}
    a = np.asarray(values, dtype=float)
    return {'p50': round(float(np.percentile(a, 50)), 3), 'p99': round(float(np.percentile(a, 99)), 3),
            'n': int(a.size)}


def summarise(rec: Recorder, robots: list[str], limits: dict[str, float]) -> dict:
    """The run's figures, computed from what was recorded on the wire."""
    from seqwm_msgs.msg import AgentStatus

    mode_names = {AgentStatus.MODE_FRESH: 'fresh', AgentStatus.MODE_CACHED: 'cached',
                  AgentStatus.MODE_MASKED: 'masked', AgentStatus.MODE_STOPPED: 'stopped'}
    agents = {}
    for r in robots:
        statuses = [m for _, m in rec.decoded(robot_topic(r, STATUS_TOPIC))]
        modes = {name: 0 for name in mode_names.values()}
        for s in statuses:
            modes[mode_names.get(s.mode, str(s.mode))] += 1
        rejected = {}
        if statuses:
            last = statuses[-1]
            rejected = {k: int(v) for k, v in zip(last.reject_reasons, last.reject_counts) if v}
        cmds = [m for _, m in rec.decoded(robot_topic(r, CMD_TOPIC))]
        tol = 1e-6
        violations = sum(1 for c in cmds if abs(c.linear.x) > limits['vx'] + tol
                         or abs(c.linear.y) > limits['vy'] + tol or abs(c.angular.z) > limits['wz'] + tol
                         or not all(math.isfinite(v) for v in (c.linear.x, c.linear.y, c.angular.z)))
        agents[r] = {
            'ticks': len(statuses),
            'planning_ms': _percentiles([s.planning_time_ms for s in statuses
                                         if s.mode != AgentStatus.MODE_STOPPED]),
            # from the tick's frame arriving at this robot to its command: the chain's latency
            'command_ms': _percentiles([s.wait_ms + s.planning_time_ms for s in statuses
                                        if s.mode != AgentStatus.MODE_STOPPED]),
            'planner_iterations_mean': round(float(np.mean([s.planner_iterations for s in statuses])), 2)
            if statuses else None,
            'intent_modes': modes,
            'rejected_inputs': rejected,
            'commands': len(cmds),
            'command_limit_violations': violations,
            'intents_recorded': len(rec._raw.get(robot_topic(r, INTENT_TOPIC), [])),
        }
    return agents


def plot_trajectory(rec: Recorder, task: str, robots: list[str], episode: dict | None, path: Path,
                    task_config: str = '') -> None:
    """Top view from the arena's true poses, drawn by the simulator's own renderer."""
    from seqwm_agent.paths import task_config_source
    from seqwm_agent.sim.config import load_task_config
    from seqwm_agent.sim.observation import Snapshot
    from seqwm_agent.sim.render import render_png

    source = task_config_source(task_config, task)
    cfg = load_task_config(source, overrides={'num_robots': len(robots)})
    target = (episode or {}).get('task_params', {}).get('target')
    frames = []
    truth = [m for _, m in rec.decoded(ARENA_TRUTH_TOPIC)]
    for msg in truth[::5]:
        poses = {}
        for name, pose in zip(msg.names, msg.poses):
            yaw = 2 * math.atan2(pose.orientation.z, pose.orientation.w)
            poses[name] = (pose.position.x, pose.position.y, yaw)
        frames.append(Snapshot.from_named_poses(task, cfg, robots, poses, target=target))
    if frames:
        title = f'{task}: success={episode.get("success") if episode else None}'
        render_png(frames, cfg, path, title=title)


def run_demo(task: str, robots: list[str] | None, model_dir: str | None, config: str | None,
             timeout_s: float, runs_dir: Path, overrides: dict | None = None) -> tuple[int, dict]:
    run_dir = runs_dir / time.strftime('%Y%m%d-%H%M%S')
    run_dir.mkdir(parents=True, exist_ok=False)
    latest = runs_dir / 'latest'
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(run_dir.name)

    nodes = team_nodes(task, robots, config, None, model_dir, sim=True, overrides=overrides)
    policy = ExitPolicy.from_config(team_config(task, config, overrides))
    team = next(n for n in nodes if n.executable == 'agent').parameters['team']
    agent_params = next(n for n in nodes if n.executable == 'agent').parameters
    limits = {k: float(agent_params.get(f'limits.{k}', d)) for k, d in
              (('vx', 1.0), ('vy', 0.5), ('wz', 0.5))}
    print(f'[demo] {task} with {team}; run dir {run_dir}', flush=True)
    rec = Recorder(run_dir / 'bag', team)
    rec.spin_for(1.0)   # the recorder is up (and discoverable) before the first node starts,
    # so the bag holds every robot's first tick and seqwm-replay can start from the same state
    runner = TeamRunner(nodes, run_dir, policy=policy,
                        report=lambda msg: print(f'[demo] {msg}', file=sys.stderr, flush=True))
    t_start = time.monotonic()
    runner.start()
    shutdown: str | None = None
    episode = None
    cpu: dict[str, float | None] = {}
    try:
        while time.monotonic() - t_start < timeout_s:
            rec.spin_for(0.5)
            episode = rec.last_episode()
            shutdown = runner.supervise()
            if shutdown or (episode and episode.get('done')):
                break
        rec.spin_for(0.5)  # the last statuses of the final tick
    finally:
        used, wall = runner.cpu_seconds(), time.monotonic() - t_start
        cpu = {k: None if v is None else round(100.0 * v / wall, 1) for k, v in used.items()}
        exit_codes = runner.stop()
        orphans = runner.orphans()
        rec.spin_for(0.5)  # what the nodes published while shutting down (final stop, record)
        rec.close()
    episode = rec.last_episode() or episode
    summary = {
        'version': SUMMARY_VERSION,
        'task': task,
        'robots': team,
        'model_dir': agent_params.get('model_dir'),
        'success': bool(episode and episode.get('success')),
        'episode_done': bool(episode and episode.get('done')),
        'time_to_goal_s': episode.get('time_to_goal_s') if episode else None,
        'sim_time_s': episode.get('sim_time_s') if episode else None,
        'collision': episode.get('collision') if episode else None,
        'final_box_distance_m': (episode or {}).get('metrics', {}).get('box_distance'),
        'final_metrics': (episode or {}).get('metrics'),
        'wall_time_s': round(time.monotonic() - t_start, 2),
        'agents': summarise(rec, team, limits),
        'command_limit_violations': 0,
        'messages_recorded': rec.bag.count,
        'processes': {'exit_codes': exit_codes, 'cpu_percent': cpu,
                      'crashed_during_run': [(e['node'], e['exit_code']) for e in runner.events],
                      'supervision': runner.events, 'team_shut_down': shutdown,
                      'orphans': orphans},
    }
    summary['command_limit_violations'] = sum(a['command_limit_violations']
                                              for a in summary['agents'].values())
    try:
        plot_trajectory(rec, task, team, episode, run_dir / 'trajectory.png',
                        ((overrides or {}).get('task') or {}).get('task_config', ''))
    except Exception as exc:  # a plot must never hide the run's result
        summary['plot_error'] = repr(exc)
    (run_dir / 'summary.json').write_text(json.dumps(summary, indent=2))
    clean = not runner.events and not orphans and summary['episode_done']
    return (0 if clean else 1), summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description='Run one simulated SeqWM episode over real ROS 2.')
    ap.add_argument('--task', default='pushbox', choices=TASK_NAMES)
    ap.add_argument('--robots', default='', help="names ('go2w_1,go2w_2') or a team size ('5'); "
                    "default: the task config's team")
    ap.add_argument('--model-dir', default=None, help='default: config agent.model_dir')
    ap.add_argument('--config', default=None)
    ap.add_argument('--timeout', type=float, default=120.0, help='wall-clock limit, s')
    ap.add_argument('--runs-dir', default=None)
    ap.add_argument('--episode-s', type=float, default=None, help='episode length (default: task config)')
    ap.add_argument('--seed', type=int, default=None, help='arena seed (default: config)')
    ap.add_argument('--task-config', default='', help="task config for arena and agents: a YAML "
                    "or a packaged config's name, e.g. gate_paper (the paper's Gate; model "
                    "models/gate_paper_<n>robots)")
    args = ap.parse_args(argv)
    arena = {}
    if args.episode_s is not None:
        arena['episode_s'] = args.episode_s
    if args.seed is not None:
        arena['seed'] = args.seed
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    runs_dir = Path(args.runs_dir) if args.runs_dir else workspace_root() / 'runs'
    runs_dir.mkdir(parents=True, exist_ok=True)
    try:
        code, summary = run_demo(args.task, robot_names(args.robots) or None, args.model_dir,
                                 args.config, args.timeout, runs_dir,
                                 {'arena': arena} | ({'task': {'task_config': args.task_config}}
                                                     if args.task_config else {}))
    except GraphError as exc:
        print(f'[demo] {exc}', file=sys.stderr)
        return 2
    a = summary['agents']
    print(json.dumps({k: summary[k] for k in ('success', 'time_to_goal_s', 'sim_time_s',
                                                'final_box_distance_m', 'command_limit_violations')}))
    for r, s in a.items():
        print(f'[demo] {r}: planning p50 {s["planning_ms"]["p50"]} ms p99 {s["planning_ms"]["p99"]} ms, '
              f'modes {s["intent_modes"]}, rejected {s["rejected_inputs"]}')
    verdict = 'success' if summary['success'] else 'NO success'
    print(f'[demo] {args.task} with {len(a)} robots: {verdict}; '
          f'see {runs_dir / "latest"}/summary.json and trajectory.png', flush=True)
    if summary['processes']['crashed_during_run'] or summary['processes']['orphans']:
        print(f'[demo] process problems: {summary["processes"]}', file=sys.stderr)
    return code


if __name__ == '__main__':
    sys.exit(main())
