"""The per-robot agent node: mocap frames and the predecessor's intent in, commands and intent out.

A thin rclpy shell around `pipeline.AgentPipeline` (all decisions live there, ROS-free). This
module only decides *when* a tick runs and turns its output into messages:

* ticks are aligned on the mocap capture time: tick = floor(stamp / dt); the first usable frame
  (own body measured) of a new tick starts it;
* order index 0 plans at once; every other robot waits for its predecessor's intent of the same
  tick up to `intent_deadline_s` after that frame arrived, then plans on the cache;
* a watchdog timer stops the robot when no usable frame arrived for `stale_timeout_s`.

Topics (relative names resolve in the robot's namespace, e.g. /go2w_2/intent):
  sub /mocap/frame          seqwm_msgs/MocapFrame          MOCAP_QOS
  sub predecessor_intent    seqwm_msgs/Intent              INTENT_QOS (order index > 0; remapped
                                                           to /<predecessor>/intent by the graph)
  pub intent                seqwm_msgs/Intent              INTENT_QOS, one per planned tick
  pub status                seqwm_msgs/AgentStatus         STATUS_QOS, one per tick (and per dt
                                                           while the watchdog holds it stopped)
  pub plan_markers          visualization_msgs/MarkerArray MARKER_QOS
  pub cmd_vel               geometry_msgs/Twist            (topic backend only)

    python -m seqwm_agent.agent_node --ros-args -r __ns:=/go2w_2 -r __node:=agent \\
        -r predecessor_intent:=/go2w_1/intent --params-file go2w_2.yaml
"""
from __future__ import annotations

import math
import os
import signal
import sys
import time
from typing import Any, Callable

import rclpy
import rclpy.logging
import torch
from builtin_interfaces.msg import Duration as DurationMsg
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Twist
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              ParameterUninitializedException)
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from seqwm_msgs.msg import AgentStatus, Intent, MocapFrame
from visualization_msgs.msg import Marker, MarkerArray

from .backends import make_backend
from .core.checkpoint import CheckpointError
from .node_params import PARAMETERS, ParameterError, ParamSpec, check_values, settings_from_values
from .pipeline import (NS_PER_S, REJECT_REASONS, AgentPipeline, IntentMessage, MocapSample, Mode,
                       PipelineError, TickOutput, intent_message_from_msg, mocap_sample_from_msg)

# QoS decisions. Mocap frames and intents: freshness beats completeness (a late one is worse than
# none; the intent cache covers a lost one), so best effort, keep last 1.
MOCAP_QOS = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST,
                       depth=1, durability=DurabilityPolicy.VOLATILE)
INTENT_QOS = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST,
                        depth=1, durability=DurabilityPolicy.VOLATILE)
# Status: one per tick, every one matters to a monitor or a bag. Transient local with 10 s of
# history: a recorder or monitor that discovers the node late (DDS discovery can take a second on
# a loaded machine) still gets the robot's first ticks, so a bag can be replayed from the start.
STATUS_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                        depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Markers: only the newest plan is worth drawing.
MARKER_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                        depth=1)

MOCAP_TOPIC = '/mocap/frame'
PREDECESSOR_TOPIC = 'predecessor_intent'
INTENT_TOPIC = 'intent'
STATUS_TOPIC = 'status'
MARKER_TOPIC = 'plan_markers'
FRAME_ID = 'arena'
EXIT_STARTUP_FAILED = 2

# Marker colours (r, g, b) per mode.
MODE_COLOURS = {Mode.FRESH: (0.1, 0.8, 0.2), Mode.CACHED: (0.95, 0.8, 0.1),
                Mode.MASKED: (1.0, 0.45, 0.0), Mode.STOPPED: (0.9, 0.1, 0.1)}


class StartupError(RuntimeError):
    """The node cannot start: a parameter, the model files or the backend are wrong."""


class ThrottledLog:
    """One line per event; repeats of one key at most every `period_s`, folded into a count."""

    def __init__(self, logger: Any, period_s: float, clock: Callable[[], float] = time.monotonic):
        self._logger = logger
        self.period_s = period_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._folded: dict[str, int] = {}

    def __call__(self, key: str, level: str, message: str) -> None:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            self._folded[key] = self._folded.get(key, 0) + 1
            return
        folded = self._folded.pop(key, 0)
        self._last[key] = now
        if folded:
            message += f' [+{folded} similar in the last {now - last:.1f} s]'
        # One call site per severity: rclpy refuses a call site whose severity changes.
        if level == 'error':
            self._logger.error(message)
        elif level == 'warn':
            self._logger.warning(message)
        else:
            self._logger.info(message)


def _stamp(ns: int) -> Time:
    sec, nanosec = divmod(max(int(ns), 0), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def _finite32(x: float) -> float:
    """A float32 message field cannot carry what the planner may produce (inf); clip it."""
    return max(-3.0e38, min(3.0e38, x)) if math.isfinite(x) else 0.0


def intent_to_msg(m: IntentMessage) -> Intent:
    msg = Intent()
    msg.header.stamp = _stamp(m.stamp_ns)
    msg.header.frame_id = FRAME_ID
    msg.tick = int(m.tick)
    msg.model_set_id = m.model_set_id
    msg.sender = m.sender
    msg.sender_index = int(m.sender_index)
    msg.num_agents, msg.horizon = int(m.num_agents), int(m.horizon)
    msg.latent_dim, msg.action_dim = int(m.latent_dim), int(m.action_dim)
    msg.latents = m.latents.astype('float32')
    msg.actions = m.actions.astype('float32')
    msg.valid = [bool(v) for v in m.valid]
    msg.planner_iterations = min(int(m.planner_iterations), 255)
    msg.planner_value = _finite32(m.planner_value)
    msg.planner_time_ms = _finite32(m.planner_time_ms)
    return msg


def status_to_msg(out: TickOutput, robot: str, order_index: int) -> AgentStatus:
    msg = AgentStatus()
    msg.header.stamp = _stamp(out.stamp_ns)
    msg.header.frame_id = FRAME_ID
    msg.robot = robot
    msg.order_index = order_index
    msg.tick = max(int(out.tick), 0)
    msg.mode = int(out.mode)
    msg.reason = out.reason
    msg.intent_age_s = _finite32(out.intent_age_s)
    msg.planning_time_ms = _finite32(out.planning_time_ms)
    msg.planner_iterations = min(int(out.planner_iterations), 255)
    msg.planner_value = _finite32(out.planner_value)
    msg.command = Twist()
    msg.command.linear.x, msg.command.linear.y, msg.command.angular.z = (
        float(v) for v in out.command)
    msg.mode_counts = [int(c) for c in out.mode_counts]
    msg.reject_reasons = list(REJECT_REASONS)
    msg.reject_counts = [int(out.reject_counts[r]) for r in REJECT_REASONS]
    return msg


def markers_to_msg(out: TickOutput, ns: str, lifetime_s: float) -> MarkerArray:
    """The predicted trajectory: a line strip and one sphere per step; deleted when stopped."""
    array = MarkerArray()
    for marker_id, kind in ((0, Marker.LINE_STRIP), (1, Marker.SPHERE_LIST)):
        m = Marker()
        m.header.stamp = _stamp(out.stamp_ns)
        m.header.frame_id = FRAME_ID
        m.ns, m.id, m.type = ns, marker_id, kind
        if out.trajectory is None:
            m.action = Marker.DELETE
        else:
            m.action = Marker.ADD
            m.pose.orientation.w = 1.0
            m.points = [Point(x=float(x), y=float(y), z=0.05) for x, y, _ in out.trajectory]
            size = 0.04 if kind == Marker.LINE_STRIP else 0.08
            m.scale.x = m.scale.y = m.scale.z = size
            r, g, b = MODE_COLOURS[out.mode]
            m.color.r, m.color.g, m.color.b, m.color.a = r, g, b, 0.9
            sec = int(lifetime_s)
            m.lifetime = DurationMsg(sec=sec, nanosec=int((lifetime_s - sec) * NS_PER_S))
        array.markers.append(m)
    return array


def resolve_path(path: str) -> str:
    """A relative path as given if it exists from the working directory, else under
    $SEQWM_ROOT (the workspace; `ros2 launch` may start nodes anywhere)."""
    if not path or os.path.isabs(path) or os.path.exists(path):
        return path
    root = os.environ.get('SEQWM_ROOT', '')
    candidate = os.path.join(root, path) if root else ''
    return candidate if candidate and os.path.exists(candidate) else path


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(description=spec.description, read_only=True)
    if spec.range_text:
        d.additional_constraints = spec.range_text
    # Lists keep static typing (rclpy needs their type); everything else is checked by
    # node_params so that a wrong type gets the same message naming the parameter.
    d.dynamic_typing = spec.kind not in ('str_list', 'int_list')
    return d


class AgentNode(Node):
    """One robot's agent: see the module docstring. Raises StartupError when it cannot start."""

    def __init__(self, node_name: str = 'agent', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        try:
            values = check_values(self._declare_parameters())
            self.settings, backend_params, task_cfg = settings_from_values(values)
        except (ParameterError, ValueError) as exc:
            raise StartupError(str(exc)) from None
        s = self.settings
        self.values = values
        self.deadline_s = values['intent_deadline_s']
        self.log_event = ThrottledLog(self.get_logger(), values['log_throttle_s'])
        if values['torch_threads'] > 0:
            torch.set_num_threads(values['torch_threads'])
        model_dir = resolve_path(values['model_dir'])
        try:
            self.pipeline = AgentPipeline.load(s, model_dir, task_cfg)
        except (PipelineError, CheckpointError, ValueError) as exc:
            raise StartupError(f'cannot load the model: {exc}') from None

        self.backend = make_backend(values['backend'], backend_params, node=self, limits=s.limits)
        try:
            if values['backend'] == 'unitree':
                self.backend.start(wait=False)   # readiness is checked every tick
            else:
                self.backend.start()
        except Exception as exc:
            self.backend.close()
            raise StartupError(f'{values["backend"]} backend: {exc}') from None
        self._backend_watchdog_stops = 0

        self._intent_pub = self.create_publisher(Intent, INTENT_TOPIC, INTENT_QOS)
        self._status_pub = self.create_publisher(AgentStatus, STATUS_TOPIC, STATUS_QOS)
        self._marker_pub = self.create_publisher(MarkerArray, MARKER_TOPIC, MARKER_QOS)
        self.create_subscription(MocapFrame, MOCAP_TOPIC, self._guard(self._on_frame), MOCAP_QOS)
        if s.order_index > 0:
            self.create_subscription(Intent, PREDECESSOR_TOPIC, self._guard(self._on_intent),
                                     INTENT_QOS)
        # The tick waiting for its predecessor's intent: (frame, tick, deadline in monotonic s).
        self._pending: tuple[MocapSample, int, float] | None = None
        self._deadline_timer = self.create_timer(max(self.deadline_s, 1e-3),
                                                 self._guard(self._on_deadline))
        self._deadline_timer.cancel()
        self._watchdog_timer = self.create_timer(min(0.05, s.stale_timeout_s / 4, s.dt / 2),
                                                 self._guard(self._on_watchdog))
        self._closed = False
        pred = f', predecessor {s.predecessor} on {self._resolved(PREDECESSOR_TOPIC)}' \
            if s.order_index else ''
        m = self.pipeline.manifest
        self.get_logger().info(
            f'{s.robot_name}: order index {s.order_index} of {list(s.team)}{pred}; model set '
            f'{m.model_set_id} ({model_dir}, agent_{s.order_index}.pt), horizon '
            f'{self.pipeline.layout.horizon}, latent {self.pipeline.layout.latent_dim}; dt {s.dt} s, '
            f'intent deadline {self.deadline_s} s, cache {s.cache_max_age_ticks} ticks, stale '
            f'timeout {s.stale_timeout_s} s; backend {values["backend"]}; arena bounds '
            f'{tuple(round(b, 3) for b in self.pipeline.arena_bounds)}')

    # ---- parameters -----------------------------------------------------------------------------
    def _declare_parameters(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for spec in PARAMETERS:
            desc = _descriptor(spec)
            try:
                if spec.kind == 'str_list' and not spec.default:
                    self.declare_parameter(spec.name, Parameter.Type.STRING_ARRAY, desc)
                else:
                    self.declare_parameter(spec.name, spec.default, desc)
                value = self.get_parameter(spec.name).value
            except ParameterUninitializedException:
                value = list(spec.default)
            except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
                raise ParameterError(f'parameter {spec.name}: {exc}') from None
            values[spec.name] = value
        return values

    def _resolved(self, topic: str) -> str:
        try:
            return self.resolve_topic_name(topic)
        except Exception:   # older rclpy without resolve_topic_name
            return topic

    # ---- callbacks ------------------------------------------------------------------------------
    def _guard(self, fn: Callable[..., None]) -> Callable[..., None]:
        """The node never dies on bad input: an exception stops the robot and is logged."""
        def wrapped(*args: Any) -> None:
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001
                self.log_event('internal_error', 'error',
                               f'{fn.__name__} failed: {type(exc).__name__}: {exc}; stopping')
                self._pending = None
                try:
                    self._apply(self.pipeline.stop(time.monotonic(), 'internal_error',
                                                   f'internal error: {type(exc).__name__}: {exc}'))
                except Exception:  # noqa: BLE001
                    self.backend.stop()
        wrapped.__name__ = fn.__name__
        return wrapped

    def _on_frame(self, msg: MocapFrame) -> None:
        now = time.monotonic()
        frame = mocap_sample_from_msg(msg)
        seen = self.pipeline.observe_frame(frame, now)
        self._flush_events()
        if not seen.usable:
            return
        if self._pending is not None and seen.tick > self._pending[1]:
            self._run_pending()      # a frame of the next tick: the deadline is moot
        last = self.pipeline.last_tick
        if last is not None and seen.tick <= last:
            return                   # not the first usable frame of its tick
        if self.settings.order_index == 0 or self.pipeline.has_intent_for(seen.tick):
            self._run(frame, now)
        elif self._pending is None:
            self._pending = (frame, seen.tick, now + self.deadline_s)
            if self.deadline_s <= 0:
                self._run_pending()
            else:
                self._deadline_timer.reset()

    def _on_intent(self, msg: Intent) -> None:
        now = time.monotonic()
        intent = intent_message_from_msg(msg)
        reason = self.pipeline.receive_intent(intent, now)
        self._flush_events()
        if reason is None and self._pending is not None and intent.tick == self._pending[1]:
            self._run_pending()

    def _on_deadline(self) -> None:
        self._deadline_timer.cancel()
        if self._pending is not None:
            self._run_pending()

    def _on_watchdog(self) -> None:
        now = time.monotonic()
        if self._pending is not None and now >= self._pending[2]:
            self._run_pending()      # backstop for a late deadline timer
        out = self.pipeline.check_watchdog(now)
        if out is not None:
            self._pending = None
            self._deadline_timer.cancel()
            self._apply(out)

    # ---- one tick -------------------------------------------------------------------------------
    def _run_pending(self) -> None:
        assert self._pending is not None
        frame = self._pending[0]
        self._run(frame, time.monotonic())

    def _run(self, frame: MocapSample, now: float) -> None:
        """Run the tick of `frame` now (the pipeline decides fresh / cached / masked)."""
        self._pending = None
        self._deadline_timer.cancel()
        st = self.backend.state()
        if st.watchdog_stops > self._backend_watchdog_stops:
            self._backend_watchdog_stops = st.watchdog_stops
            self.pipeline.robot_stopped()
        if not st.ready:
            why = st.error or ', '.join(f'{k} {st.detail[k]}' for k in ('phase', 'robot_mode_name')
                                        if k in st.detail) or 'not started'
            out = self.pipeline.stop_tick(frame, now, 'backend_not_ready',
                                          f'{st.kind} backend not ready: {why}')
        else:
            out = self.pipeline.tick(frame, None, now)
        self._apply(out)

    def _apply(self, out: TickOutput) -> None:
        """Intent first (the successor is waiting), then the robot, then status and markers."""
        if out.intent is not None:
            self._intent_pub.publish(intent_to_msg(out.intent))
        if out.stop:
            self.backend.stop()
        else:
            try:
                self.backend.send(*(float(v) for v in out.command))
            except Exception as exc:  # noqa: BLE001 - BackendError, NaN refusal, dying context
                self.backend.stop()
                out = self.pipeline.stop(time.monotonic(), 'backend_error',
                                         f'{self.backend.kind} backend refused the command: {exc}')
        self._status_pub.publish(status_to_msg(out, self.settings.robot_name,
                                               self.settings.order_index))
        self._marker_pub.publish(markers_to_msg(out, f'{self.settings.robot_name}/plan',
                                                3.0 * self.settings.dt))
        self._flush_events()

    def _flush_events(self) -> None:
        for e in self.pipeline.drain_events():
            self.log_event(e.key, e.level, e.message)

    # ---- shutdown -------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the robot and release the backend; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        for timer in (self._deadline_timer, self._watchdog_timer):
            try:
                timer.cancel()
            except Exception:  # noqa: BLE001
                pass
        try:
            out = self.pipeline.stop(time.monotonic(), 'shutdown', 'node shutting down')
            if self.context.ok():
                self._status_pub.publish(status_to_msg(out, self.settings.robot_name,
                                                       self.settings.order_index))
        except Exception:  # noqa: BLE001
            pass
        self.backend.close()     # topic: zero Twist (acknowledged); unitree: StopMove, worker exit
        self.get_logger().info(f'{self.settings.robot_name}: stopped and closed the '
                               f'{self.backend.kind} backend')


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _spin_until_signal(node: Node) -> None:
    """Spin until SIGINT/SIGTERM or an external shutdown.

    While spinning a signal only sets a flag. Python runs signal handlers between bytecodes,
    which includes the message conversion inside rclpy's C++ `take_message`; an exception
    raised there comes out as an unrelated pybind11 RuntimeError ("Unable to convert call
    argument") and the node would exit with a crash instead of its clean stop.
    """
    stop = [False]

    def request_stop(signum: int, frame: Any) -> None:
        stop[0] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    executor = SingleThreadedExecutor(context=node.context)   # one wait set, not one per call
    executor.add_node(node)
    try:
        while not stop[0] and node.context.ok():
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.remove_node(node)
        executor.shutdown()


def main(args: list[str] | None = None) -> int:
    # Our own SIGINT/SIGTERM handling: rclpy's handler would shut the context down before we
    # could publish the final zero command. During start-up a signal aborts at once; while
    # spinning it ends the spin loop (`_spin_until_signal`).
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, signal.default_int_handler)   # even if started with SIGINT ignored
    signal.signal(signal.SIGTERM, _sigterm)
    node: AgentNode | None = None
    code = 0
    try:
        node = AgentNode()
        _spin_until_signal(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except StartupError as exc:
        rclpy.logging.get_logger('agent').error(f'agent cannot start: {exc}')
        code = EXIT_STARTUP_FAILED
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # a second Ctrl-C must not cut the stop short
        if node is not None:
            try:
                node.close()
            finally:
                node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())
