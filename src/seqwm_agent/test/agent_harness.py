"""Test helper: agent processes started the way the bringup graph starts them, a mocap feed
process steered through a control file, and a listener node in the test process.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from agent_team import MODEL_SET_ID, PLANNER, TEAM, model_config  # noqa: E402

# Generous for a loaded 2-core machine: agent 1 plans in ~5 ms alone, much slower when a
# trainer shares the cores; go2w_2 waits plan + hop = 80 ms for go2w_1's intent and the chain
# of two still fits the 100 ms tick (80 + 20).
AGENT_PARAMS = {'plan_budget_ms': 20.0, 'hop_budget_ms': 60.0, 'cache_max_age_ticks': 3,
                'stale_timeout_s': 0.5, 'torch_threads': 1, 'log_throttle_s': 1.0}
START_TIMEOUT = 90.0


def start_agent(spawn, tmp_path: Path, robot: str, model_dir: Path, name: str | None = None,
                **params: Any):
    """`python -m seqwm_agent.agent_node` with the graph's remappings and a params file."""
    from seqwm_bringup.graph import build_graph, params_yaml, ros_args

    nodes = build_graph('pushbox', list(TEAM), {'agent': dict(AGENT_PARAMS)}, sim=True,
                        model_dir=str(model_dir))
    spec = next(n for n in nodes if n.executable == 'agent' and n.namespace == f'/{robot}')
    spec = dataclasses.replace(spec, parameters={**spec.parameters, **params})
    name = name or f'agent_{robot}'
    path = tmp_path / f'{name}.yaml'
    path.write_text(params_yaml(spec))
    return spawn.start(['seqwm_agent.agent_node', *ros_args(spec, str(path))], name,
                       python_module=True)


class MocapFeed:
    """The mocap_publisher.py process and its control file."""

    def __init__(self, spawn, tmp_path: Path, *extra: str) -> None:
        self.control = tmp_path / 'mocap_control.json'
        self.events = tmp_path / 'mocap_events.jsonl'
        self.set()
        self.proc = spawn.start([sys.executable, str(HERE / 'mocap_publisher.py'), '--control',
                                 str(self.control), '--events', str(self.events), *extra],
                                'mocap_publisher')

    def set(self, **control: Any) -> None:
        tmp = self.control.with_suffix('.tmp')
        tmp.write_text(json.dumps(control))
        os.replace(tmp, self.control)

    def event_times(self, key: str, value: Any) -> list[float]:
        if not self.events.exists():
            return []
        out = []
        for line in self.events.read_text().split('\n'):
            if line:
                e = json.loads(line)
                if e.get('event') == key and e.get('value') == value:
                    out.append(e['t'])
        return out


class Listener:
    """A node in the test process recording status, cmd_vel and intent of every robot.

    Entries are (wall time, message); a background thread spins the executor."""

    def __init__(self, context, robots=TEAM) -> None:
        import rclpy
        from geometry_msgs.msg import Twist
        from rclpy.node import Node
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from seqwm_msgs.msg import AgentStatus, Intent

        reliable = QoSProfile(reliability=ReliabilityPolicy.RELIABLE,
                              history=HistoryPolicy.KEEP_LAST, depth=200)
        best_effort = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT,
                                 history=HistoryPolicy.KEEP_LAST, depth=10)
        self.node = Node('agent_test_listener', context=context)
        self.lock = threading.Lock()
        self.status: dict[str, list] = {r: [] for r in robots}
        self.cmd: dict[str, list] = {r: [] for r in robots}
        self.intent: dict[str, list] = {r: [] for r in robots}
        for r in robots:
            self.node.create_subscription(AgentStatus, f'/{r}/status',
                                          partial(self._add, self.status[r]), reliable)
            self.node.create_subscription(Twist, f'/{r}/cmd_vel', partial(self._add, self.cmd[r]),
                                          reliable)
            self.node.create_subscription(Intent, f'/{r}/intent',
                                          partial(self._add, self.intent[r]), best_effort)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _add(self, store: list, msg: Any) -> None:
        with self.lock:
            store.append((time.time(), msg))

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - context shut down at teardown
            pass

    def get(self, store: str, robot: str, since: float = 0.0) -> list:
        with self.lock:
            return [(t, m) for t, m in getattr(self, store)[robot] if t >= since]

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.thread.join(3.0)
        self.node.destroy_node()


def alive(spawn, *procs) -> bool:
    """Fail with the process log if one of `procs` has exited."""
    for p in procs:
        assert p.poll() is None, spawn.log_text(p)
    return True


def reject_counts(status_msg) -> dict[str, int]:
    return dict(zip(status_msg.reject_reasons, status_msg.reject_counts))


def make_intent_msg(tick: int, **changes: Any):
    """A seqwm_msgs/Intent from go2w_1 for `tick` with the test team's sizes, fields overridable."""
    from seqwm_agent.runtime.messages import NS_PER_S, IntentMessage, intent_to_msg

    cfg = model_config()
    n, H, dz, da = cfg.num_agents, PLANNER.horizon, cfg.latent_dim, cfg.action_dim
    dz = changes.pop('latent_dim', dz)
    rng = np.random.default_rng(tick)
    fields = dict(tick=tick, stamp_ns=int(tick * 0.1 * NS_PER_S), model_set_id=MODEL_SET_ID,
                  sender='go2w_1', sender_index=0, num_agents=n, horizon=H, latent_dim=dz,
                  action_dim=da,
                  latents=rng.uniform(0, 0.2, n * (H + 1) * dz).astype(np.float32),
                  actions=rng.uniform(-0.5, 0.5, n * H * da).astype(np.float32),
                  valid=np.array([True] + [False] * (n - 1)))
    fields.update(changes)
    return intent_to_msg(IntentMessage(**fields))


def within_limits(twist, vx: float = 1.0, vy: float = 0.5, wz: float = 0.5) -> bool:
    eps = 1e-9
    return (abs(twist.linear.x) <= vx + eps and abs(twist.linear.y) <= vy + eps
            and abs(twist.angular.z) <= wz + eps and twist.linear.z == 0.0
            and twist.angular.x == 0.0 and twist.angular.y == 0.0)
