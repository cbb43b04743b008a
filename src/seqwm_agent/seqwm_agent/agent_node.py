"""The per-robot agent node: ROS wiring around `runtime.AgentRuntime` (all decisions live there).

Topics (relative names resolve in the robot's namespace, e.g. /go2w_2/intent):
  sub /mocap/frame          seqwm_msgs/MocapFrame          INBOX_QOS, only from `mocap_source`
  sub predecessor_intent    seqwm_msgs/Intent              INBOX_QOS (order index > 0; remapped
                                                           to /<predecessor>/intent by the graph),
                                                           only from the predecessor's agent
Both are read by the node's `Inbox` thread, raw with the publisher's GID, and handed over in one
callback: at once from a trusted source, batched from anyone else (a flood must cost the
flooder, not the planner). The node names each GID's node from the ROS graph, the runtime
admits or refuses the publisher (runtime/sources.py), and only an admitted message is
deserialised: of consecutive frames only the newest admitted one is used (a late frame is worse
than none), the admitted intents are all handled, in order.
  pub intent                seqwm_msgs/Intent              INTENT_QOS, one per planned tick
  pub status                seqwm_msgs/AgentStatus         STATUS_QOS, one per tick (and per dt
                                                           while the watchdog holds it stopped)
  pub inputs                seqwm_msgs/AgentInputs         INPUTS_QOS, with each status: the
                                                           runtime's record of its inputs (replay)
  pub plan_markers          visualization_msgs/MarkerArray MARKER_QOS
  pub cmd_vel               geometry_msgs/Twist            (topic backend only)

    python -m seqwm_agent.agent_node --ros-args -r __ns:=/go2w_2 -r __node:=agent \\
        -r predecessor_intent:=/go2w_1/intent --params-file go2w_2.yaml
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

import torch
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from seqwm_common.node import (INBOX_QOS, INPUTS_QOS, INPUTS_TOPIC, INTENT_QOS, INTENT_TOPIC,
                               MARKER_QOS, MARKER_TOPIC, MOCAP_TOPIC, PREDECESSOR_TOPIC,
                               STATUS_QOS, STATUS_TOPIC, StartupError, declare, log_line, run_node)
from seqwm_common.inbox import Inbox, publisher_gid
from seqwm_common.throttled_log import ThrottledLog
from seqwm_msgs.msg import AgentInputs, AgentStatus, Intent, MocapFrame
from visualization_msgs.msg import MarkerArray

from .backends import make_backend
from .core.checkpoint import CheckpointError
from .node_params import PARAMETERS, ParameterError, check_values, model_dir_of, settings_from_values
from .runtime.agent import AgentError, AgentRuntime, TickOutput
from .runtime.journal import InputKind
from .runtime.sources import Publisher
from .runtime.messages import (inputs_to_msgs, intent_message_from_msg, intent_to_msg,
                               markers_to_msg, mocap_sample_from_msg, status_to_msg)


class AgentNode(Node):
    """One robot's agent: see the module docstring. Raises StartupError when it cannot start."""

    def __init__(self, node_name: str = 'agent', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        me = self.get_fully_qualified_name()
        try:
            values = check_values({p.name: declare(self, p.name, p.default, p.description,
                                                   p.range_text, p.array_type) for p in PARAMETERS})
            self.settings, backend_params, task_cfg = settings_from_values(values)
            if values['torch_threads'] > 0:
                torch.set_num_threads(values['torch_threads'])
            model_dir = model_dir_of(values)
            self.runtime = AgentRuntime.load(self.settings, model_dir, task_cfg)
        except (ParameterError, AgentError, CheckpointError, ValueError) as exc:
            raise StartupError(str(exc), me) from None
        s, rt = self.settings, self.runtime
        self.log_event = ThrottledLog(lambda lvl, msg: log_line(self.get_logger(), lvl, msg),
                                      values['log_throttle_s'])
        self.backend = make_backend(values['backend'], backend_params, node=self, limits=s.limits)
        try:   # unitree: readiness is checked before every event
            self.backend.start(wait=False) if values['backend'] == 'unitree' else self.backend.start()
        except Exception as exc:
            self.backend.close()
            raise StartupError(f'{values["backend"]} backend: {exc}', me) from None
        self._backend_watchdog_stops = 0
        self._backend_reported: tuple[bool, str] | None = None
        self._seq = 0          # outputs published: AgentStatus.seq / AgentInputs.seq

        self._intent_pub = self.create_publisher(Intent, INTENT_TOPIC, INTENT_QOS)
        self._status_pub = self.create_publisher(AgentStatus, STATUS_TOPIC, STATUS_QOS)
        self._inputs_pub = self.create_publisher(AgentInputs, INPUTS_TOPIC, INPUTS_QOS)
        self._marker_pub = self.create_publisher(MarkerArray, MARKER_TOPIC, MARKER_QOS)
        self._gid_nodes: dict[bytes, str] = {}       # publisher GID -> its node (ROS graph)
        self._graph_asked: dict[str, float] = {}
        self._inbox = Inbox(self, self._guard(self._on_inbox))
        self._topics = {InputKind.FRAME: self._inbox.open(InputKind.FRAME.name, MocapFrame,
                                                          MOCAP_TOPIC, INBOX_QOS)}
        if s.order_index > 0:
            self._topics[InputKind.INTENT] = self._inbox.open(InputKind.INTENT.name, Intent,
                                                              PREDECESSOR_TOPIC, INBOX_QOS)
        self._inbox.start()
        # one-shot deadline timer (armed when a tick waits) and the periodic watchdog timer
        self._deadline_timer = self.create_timer(1.0, self._guard(self._on_timer))
        self._deadline_timer.cancel()
        self.create_timer(min(0.05, s.stale_timeout_s / 4, rt.dt / 2), self._guard(self._on_timer))
        self._closed = False
        pred = f', predecessor {s.predecessor} on {self.resolve_topic_name(PREDECESSOR_TOPIC)}' \
            if s.order_index else ''
        self.get_logger().info(
            f'{s.robot_name}: order index {s.order_index} of {list(s.team)}{pred}; model set '
            f'{rt.manifest.model_set_id} ({model_dir}, agent_{s.order_index}.pt), horizon '
            f'{rt.layout.horizon}, latent {rt.layout.latent_dim}; dt {rt.dt} s (manifest), '
            f'chain: plan {1e3 * rt.timing.plan_s:.1f} + hop {1e3 * rt.timing.hop_s:.1f} ms a '
            f'step, waits {1e3 * rt.timing.deadline_s(s.order_index):.1f} ms for its '
            f'predecessor, cache {s.cache_max_age_ticks} ticks, stale '
            f'timeout {s.stale_timeout_s} s; backend {values["backend"]}; arena bounds '
            f'{tuple(round(b, 3) for b in rt.arena_bounds)}')

    # ---- callbacks: message -> runtime event -> outputs -----------------------------------------
    def _guard(self, fn: Callable[..., list[TickOutput]]) -> Callable[..., None]:
        """The node never dies on bad input: an exception stops the robot and is logged.
        Every callback first reports a change of the backend's state (an input of the tick)."""
        def wrapped(*args: Any) -> None:
            now = time.monotonic()
            try:
                self._report_backend(now)
                outputs = fn(*args, now)
            except Exception as exc:  # noqa: BLE001
                why = f'{fn.__name__} failed: {type(exc).__name__}: {exc}'
                self.log_event('internal_error', 'error', f'{why}; stopping')
                outputs = [self.runtime.stop(time.monotonic(), 'internal_error', why)]
            for out in outputs:
                self._apply(out)
            self._arm_deadline()
            for e in self.runtime.drain_events():
                self.log_event(e.key, e.level, e.message)
        wrapped.__name__ = fn.__name__
        return wrapped

    def _on_inbox(self, now: float) -> list[TickOutput]:
        """Everything the inbox queued, in order of reception. Of consecutive frames only the
        newest admitted one is used (a late frame is worse than none); every admitted intent is
        handled. Only admitted messages are deserialised."""
        queued = sorted(((info.get('received_timestamp', 0), kind, data, info)
                         for kind in self._topics
                         for data, info in self._inbox.take(kind.name)), key=lambda m: m[0])
        outputs: list[TickOutput] = []
        frame = None
        for _, kind, data, info in queued:
            pub = self._publisher(self._topics[kind], info)
            ok, outs = self.runtime.admit(kind, pub, now)
            outputs += outs
            if not ok:
                continue
            if kind == InputKind.FRAME:
                frame = (data, pub)
                continue
            if frame is not None:
                outputs += self._frame(*frame, now)
                frame = None
            msg = deserialize_message(data, Intent)
            outputs += self.runtime.on_intent(intent_message_from_msg(msg), now, pub)
        if frame is not None:
            outputs += self._frame(*frame, now)
        return outputs

    def _frame(self, data: bytes, pub: Publisher, now: float) -> list[TickOutput]:
        msg = deserialize_message(data, MocapFrame)
        return self.runtime.on_frame(mocap_sample_from_msg(msg), now, time.time_ns(), pub)

    def _publisher(self, topic: str, info: dict) -> Publisher:
        """Who published a message: its GID (message info) and that GID's node (ROS graph,
        asked again at most every 50 ms while a GID or its node is unknown: DDS discovery may
        know an endpoint before the ROS discovery info names its node)."""
        gid = publisher_gid(info)
        node = self._gid_nodes.get(gid)
        if node is None:
            now = time.monotonic()
            if now - self._graph_asked.get(topic, -1.0) >= 0.05:
                self._graph_asked[topic] = now
                for e in self.get_publishers_info_by_topic(topic):
                    if e.node_name and not e.node_name.startswith('_NODE_NAME_UNKNOWN'):
                        ns = e.node_namespace.rstrip('/')
                        self._gid_nodes[bytes(e.endpoint_gid)] = f'{ns}/{e.node_name}'
                sources = {g.node for g in self.runtime.sources.values()}
                self._inbox.trusted = frozenset(g for g, n in self._gid_nodes.items()
                                                if n in sources)
            node = self._gid_nodes.get(gid, '')
        return Publisher(node, gid)

    def _on_timer(self, now: float) -> list[TickOutput]:
        self._deadline_timer.cancel()
        return self.runtime.on_timer(now)

    def _arm_deadline(self) -> None:
        due = self.runtime.next_deadline()
        if due is not None:
            self._deadline_timer.timer_period_ns = max(int((due - time.monotonic()) * 1e9), 1_000_000)
            self._deadline_timer.reset()

    def _report_backend(self, now: float) -> None:
        """The backend's own stops and readiness changes, as runtime events."""
        st = self.backend.state()
        if st.watchdog_stops > self._backend_watchdog_stops:
            self._backend_watchdog_stops = st.watchdog_stops
            self.runtime.robot_stopped(now)
        why = st.error or ', '.join(f'{k} {st.detail[k]}' for k in ('phase', 'robot_mode_name')
                                    if k in st.detail) or 'not started'
        state = (bool(st.ready), '' if st.ready else f'{st.kind} backend not ready: {why}')
        if state != self._backend_reported:
            self._backend_reported = state
            self.runtime.on_backend(*state, now)

    def _apply(self, out: TickOutput) -> None:
        """Intent first (the successor is waiting), then the robot, then status and markers."""
        if out.intent is not None:
            self._intent_pub.publish(intent_to_msg(out.intent))
        refused = None
        if out.stop:
            self.backend.stop()
        else:
            try:
                self.backend.send(*(float(v) for v in out.command))
            except Exception as exc:  # noqa: BLE001 - BackendError, NaN refusal, dying context
                self.backend.stop()
                refused = f'{self.backend.kind} backend refused the command: {exc}'
        self._publish_status(out)     # one status per runtime output, the refused one too
        if refused is not None:
            out = self.runtime.stop(time.monotonic(), 'backend_error', refused)
            self._publish_status(out)
        self._marker_pub.publish(markers_to_msg(out, f'{self.settings.robot_name}/plan',
                                                3.0 * self.runtime.dt))

    def _publish_status(self, out: TickOutput) -> None:
        """The tick's status and the runtime's record of the inputs that led to it."""
        s = self.settings
        self._status_pub.publish(status_to_msg(out, s.robot_name, s.order_index, self._seq))
        for msg in inputs_to_msgs(out, s.robot_name, self._seq):
            self._inputs_pub.publish(msg)
        self._seq += 1

    # ---- shutdown -------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the robot and release the backend; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._inbox.close()
        try:
            out = self.runtime.stop(time.monotonic(), 'shutdown', 'node shutting down')
            if self.context.ok():
                self._publish_status(out)
        except Exception:  # noqa: BLE001
            pass
        self.backend.close()     # topic: zero Twist (acknowledged); unitree: StopMove, worker exit
        self.get_logger().info(f'{self.settings.robot_name}: stopped and closed the '
                               f'{self.backend.kind} backend')


def main(args: list[str] | None = None) -> int:
    return run_node(AgentNode, 'agent', args)


if __name__ == '__main__':
    sys.exit(main())
