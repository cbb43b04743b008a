"""The mocap bridge node: a frame source -> BridgePipeline -> /mocap/frame, poses, status.

Threads: the source delivers frames on its own thread (SDK callback, replay player, sim latency
line) into a bounded queue; one worker thread runs the pipeline and publishes; the executor
(main thread) runs the status timer and, for the sim source, the /arena/truth subscription.
All the frame logic lives in pipeline.py; this module is wiring.

    python -m seqwm_mocap_bridge.bridge_node --ros-args -p source:=replay -p replay_file:=x.csv
    ros2 run seqwm_mocap_bridge bridge --ros-args --params-file config/bridge.yaml
"""
from __future__ import annotations

import queue
import re
import sys
import threading
import time
from typing import Any, Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion, TransformStamped
from rclpy.node import Node
from seqwm_common.bounds import message_bounds
from seqwm_common.node import (DIAGNOSTICS_QOS, EXIT_STARTUP_FAILED, MOCAP_POSE_TOPIC, MOCAP_QOS,
                               MOCAP_STATUS_TOPIC, MOCAP_TOPIC, TF_QOS, TF_TOPIC, StartupError,
                               declare, log_line, run_node)
from seqwm_common.stamps import time_msg
from seqwm_common.throttled_log import ThrottledLog
from seqwm_msgs.msg import MocapFrame

from .config import PARAMETERS, BridgeConfig, ConfigError
from .conversion import AxisCheckError, BodyMap
from .pipeline import BridgePipeline, ProcessedFrame
from .raw_frame import RawFrame
from .sources import FrameSource, SourceError, make_source

try:   # optional: tf2_msgs is not installable on pip-only machines
    from tf2_msgs.msg import TFMessage
except ImportError:   # pragma: no cover - depends on the machine
    TFMessage = None

# QoS and topic names are the team's (seqwm_common.node): frames best effort keep last 1 (the
# sensor-data profile), status reliable, /tf as tf2_ros broadcasters publish it.
NODE_NAME = 'mocap_bridge'
# MocapFrame.msg's bounds (string<=64[<=256] names), read from the generated class
MAX_BODIES = message_bounds('MocapFrame')['names']
MAX_BODY_NAME = message_bounds('MocapFrame')['names.item']

# Counters always present in the status (stable keys for monitors), in this order.
STATUS_COUNTERS = ('frames_in', 'frames_out', 'dropped_frames', 'duplicate_frames',
                   'out_of_order_frames', 'sequence_resets', 'bad_latency', 'bad_frame_number',
                   'untracked', 'missing', 'non_finite', 'bad_quaternion', 'frozen', 'jump',
                   'rotation_jump', 'reacquired', 'unnamed_body', 'unlisted_body',
                   'duplicate_body', 'queue_overflow', 'internal_errors')
# A change in any of these since the previous status makes the status WARN.
WARN_COUNTERS = ('dropped_frames', 'duplicate_frames', 'out_of_order_frames', 'bad_latency',
                 'non_finite', 'bad_quaternion', 'frozen', 'jump', 'rotation_jump',
                 'queue_overflow', 'internal_errors', 'unnamed_body', 'duplicate_body')



def _topic_safe(name: str) -> str:
    safe = re.sub(r'[^A-Za-z0-9_]', '_', name)
    return safe if safe and not safe[0].isdigit() else 'b_' + safe


class _QueueSink:
    """What sources talk to: thread-safe and never blocking the SDK's thread."""

    def __init__(self, node: 'MocapBridgeNode') -> None:
        self._node = node

    def frame(self, raw: RawFrame, receive_ns: int) -> None:
        self._node.enqueue(('frame', raw, receive_ns))

    def sequence_reset(self, why: str, forget_poses: bool = False) -> None:
        self._node.enqueue(('reset', why, forget_poses))

    def descriptions(self, id_to_name: Mapping[int, str]) -> None:
        self._node.body_map.update(id_to_name)

    def event(self, key: str, level: str, message: str) -> None:
        self._node.events.event(key, level, message)


class MocapBridgeNode(Node):
    """Publishes one MocapFrame per camera frame, stamped with capture time.

    `source` can be injected (tests, tools); by default it is built from the parameters.
    Start-up failures raise StartupError; failures found later (axis check, reference timeout)
    set `exit_code` and stop the worker, and main() exits with it.
    """

    def __init__(self, node_name: str = NODE_NAME, source: FrameSource | None = None,
                 **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.exit_code: int | None = None
        self.cfg = self._read_parameters()
        cfg = self.cfg
        self.events = ThrottledLog(self._log_line, cfg.log_throttle_s)
        self.body_map = BodyMap(cfg.bodies, cfg.body_ids,
                                on_conflict=lambda m: self.events.event('id:' + m, 'warn', m))
        self.pipeline = BridgePipeline(cfg, self.body_map, on_event=self.events.event)
        self._lock = threading.Lock()   # pipeline state vs the status timer

        self._frame_pub = self.create_publisher(MocapFrame, MOCAP_TOPIC, MOCAP_QOS)
        self._pose_pubs: dict[str, Any] = {}
        self._status_pub = self.create_publisher(DiagnosticArray, MOCAP_STATUS_TOPIC, DIAGNOSTICS_QOS)
        self._tf_pub = None
        if cfg.publish_tf:
            if TFMessage is None:
                self.get_logger().warning('publish_tf is true but tf2_msgs is not installed; '
                                          'TF is skipped (frames and poses are published)')
            else:
                self._tf_pub = self.create_publisher(TFMessage, TF_TOPIC, TF_QOS)

        # Start-up axis check on the reference body, before anything is published.
        self._reference_pending = bool(cfg.reference_body)
        self._reference_deadline = time.monotonic() + cfg.reference_timeout_s

        # Status window.
        self._started = time.monotonic()
        self._window_start = self._started
        self._window_frames = 0
        self._window_latency: list[float] = []
        self._last_publish = None
        self._last_frame: ProcessedFrame | None = None
        self._last_counters: dict[str, int] = {}

        self._queue: queue.Queue = queue.Queue(maxsize=cfg.queue_size)
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._work, name='mocap-bridge', daemon=True)
        self._worker.start()
        self.create_timer(cfg.status_period_s, self._publish_status)

        try:
            self.source = source or make_source(cfg, self.body_map, node=self,
                                                ready=self._replay_ready)
            self.source.start(_QueueSink(self))
        except SourceError as exc:
            self.close()
            raise StartupError(str(exc), self.get_fully_qualified_name()) from None
        self.get_logger().info(
            f'mocap bridge: source {self.source.describe()}, axis_up={cfg.axis_up}, bodies='
            f'{cfg.bodies or "all named"}, publishing {MOCAP_TOPIC} (frame_id {cfg.frame_id})')

    # ------------------------------------------------------------------ parameters
    def _read_parameters(self) -> BridgeConfig:
        values: dict[str, Any] = {}
        for spec in PARAMETERS:
            text = spec.description + (f" (one of: {', '.join(spec.choices)})" if spec.choices
                                       else '')
            bounds = (spec.low, spec.high) if spec.low is not None else None
            # strings and doubles dynamically typed: a bare `y` arrives as a bool and
            # `-p max_speed_mps:=5` as an int, and BridgeConfig then names the parameter
            values[spec.name] = declare(
                self, spec.name, spec.default, text,
                'one of: ' + ', '.join(spec.choices) if spec.choices else '',
                array_type=spec.item if spec.kind is list else None,
                dynamic=spec.kind in (str, float), bounds=bounds)
        try:
            return BridgeConfig.from_dict(values)
        except ConfigError as exc:
            raise StartupError(str(exc), self.get_fully_qualified_name()) from None

    # ------------------------------------------------------------------ logging
    def _log_line(self, level: str, message: str) -> None:
        try:
            log_line(self.get_logger(), level, message)
        except Exception as exc:   # noqa: BLE001 - logging must never take the bridge down
            print(f'[mocap_bridge] {level}: {message} (logger failed: {exc!r})', file=sys.stderr)

    # ------------------------------------------------------------------ queue / worker
    def enqueue(self, item: tuple) -> None:
        """Called from source threads: never blocks; when full, the oldest item is dropped."""
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    with self._lock:
                        self.pipeline.counters['queue_overflow'] += 1
                    self.events.event('queue_overflow', 'warn',
                                      f'frame queue full ({self.cfg.queue_size}); oldest frame '
                                      f'dropped (publishing slower than the camera rate)')
                except queue.Empty:
                    pass

    def _replay_ready(self) -> bool:
        return self._frame_pub.get_subscription_count() >= self.cfg.replay_wait_subscribers

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                item = None
            try:
                if item is None:
                    self._check_reference_timeout()
                elif item[0] == 'frame':
                    self._handle_frame(item[1], item[2])
                elif item[0] == 'reset':
                    with self._lock:
                        self.pipeline.reset_sequence(item[1], item[2])
            except Exception as exc:   # noqa: BLE001 - the bridge never dies on bad input
                if self._stopping.is_set() or not self.context.ok():
                    break          # shutting down: publishers are gone, nothing to report
                with self._lock:
                    self.pipeline.counters['internal_errors'] += 1
                self.events.event('internal_error', 'error',
                                  f'frame processing failed: {exc!r}')

    def _fail(self, message: str) -> None:
        self.get_logger().error(message)
        self.exit_code = EXIT_STARTUP_FAILED
        self._stopping.set()

    def _check_reference_timeout(self) -> None:
        if self._reference_pending and time.monotonic() > self._reference_deadline:
            self._fail(f"reference body '{self.cfg.reference_body}' was not tracked within "
                       f'{self.cfg.reference_timeout_s:g} s (known bodies: '
                       f'{self.body_map.items() or "none"}); cannot check the axis convention. '
                       f'Refusing to start.')

    def _handle_frame(self, raw: RawFrame, receive_ns: int) -> None:
        """One frame: start-up axis check until it passes, then pipeline and publish."""
        if self._reference_pending:
            try:
                up = self.pipeline.reference_check(raw)
            except AxisCheckError as exc:
                self._fail(str(exc))
                return
            if up is None:
                self._check_reference_timeout()
                return
            self._reference_pending = False
            self.get_logger().info(
                f"axis check passed: reference body '{self.cfg.reference_body}' up coordinate "
                f'{up:.3f} m (expected {self.cfg.reference_up_m:.3f} +- '
                f"{self.cfg.reference_tolerance_m:.3f} m, axis_up='{self.cfg.axis_up}')")
        with self._lock:
            out = self.pipeline.process(raw, receive_ns)
            if out is None:
                return
            self._window_frames += 1
            self._window_latency.append(out.latency_ms)
            self._last_publish = time.monotonic()
            self._last_frame = out
        self._publish(out)

    # ------------------------------------------------------------------ output
    def _publish(self, out: ProcessedFrame) -> None:
        stamp = time_msg(out.stamp_ns)
        msg = MocapFrame()
        msg.header.stamp = stamp
        msg.header.frame_id = self.cfg.frame_id
        msg.frame_number = int(out.frame_number)
        # MocapFrame.msg bounds the arrays (a flood must not starve the agents' executors):
        # bodies beyond them are left out, once logged
        keep = [k for k, name in enumerate(out.names) if len(name) <= MAX_BODY_NAME][:MAX_BODIES]
        if len(keep) < len(out.names):
            self.events.event('message_bound', 'warn',
                              f'{len(out.names) - len(keep)} of {len(out.names)} bodies left out '
                              f'of /mocap/frame (at most {MAX_BODIES} bodies, names of at most '
                              f'{MAX_BODY_NAME} characters)')
        msg.names = [out.names[k] for k in keep]
        msg.poses = [Pose(position=Point(x=float(p[0]), y=float(p[1]), z=float(p[2])),
                          orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]),
                                                 w=float(q[3])))
                     for p, q in (zip(out.positions[keep], out.quaternions[keep]))]
        msg.tracked = [bool(out.tracked[k]) for k in keep]
        msg.latency_ms = float(out.latency_ms)
        self._frame_pub.publish(msg)

        if not (self.cfg.publish_body_poses or self._tf_pub is not None):
            return
        transforms = []
        for k, name in enumerate(msg.names):
            if not msg.tracked[k]:
                continue   # no pose at all beats a stale one
            pose = msg.poses[k]
            if self.cfg.publish_body_poses:
                ps = PoseStamped()
                ps.header = msg.header
                ps.pose = pose
                self._pose_publisher(name).publish(ps)
            if self._tf_pub is not None:
                t = TransformStamped()
                t.header = msg.header
                t.child_frame_id = name
                t.transform.translation.x = pose.position.x
                t.transform.translation.y = pose.position.y
                t.transform.translation.z = pose.position.z
                t.transform.rotation = pose.orientation
                transforms.append(t)
        if transforms:
            self._tf_pub.publish(TFMessage(transforms=transforms))

    def _pose_publisher(self, name: str) -> Any:
        pub = self._pose_pubs.get(name)
        if pub is None:
            safe = _topic_safe(name)
            if safe != name:
                self.events.event(f'topic_name:{name}', 'warn',
                                  f"body name '{name}' is not a valid topic name; poses go to "
                                  f'{MOCAP_POSE_TOPIC.format(body=safe)}')
            pub = self.create_publisher(PoseStamped, MOCAP_POSE_TOPIC.format(body=safe), MOCAP_QOS)
            self._pose_pubs[name] = pub
        return pub

    def _publish_status(self) -> None:
        now = time.monotonic()
        with self._lock:
            counters = dict(self.pipeline.counters)
            frames, latencies = self._window_frames, list(self._window_latency)
            last_publish, last = self._last_publish, self._last_frame
            self._window_frames, self._window_latency = 0, []
        elapsed = max(now - self._window_start, 1e-6)
        self._window_start = now
        rate = frames / elapsed
        changed = [k for k in WARN_COUNTERS if counters.get(k, 0) != self._last_counters.get(k, 0)]
        self._last_counters = counters
        silent = now - (last_publish if last_publish is not None else self._started)

        level, message = DiagnosticStatus.OK, f'{rate:.1f} Hz'
        if latencies:
            message += f', latency {sum(latencies) / len(latencies):.1f} ms'
        if self.exit_code is not None:
            level, message = DiagnosticStatus.ERROR, 'start-up check failed; stopping'
        elif self._reference_pending:
            level, message = (DiagnosticStatus.WARN,
                              f"waiting for reference body '{self.cfg.reference_body}'")
        elif self.source.finished:
            message = f'replay finished; {message}'
        elif silent > self.cfg.stale_timeout_s:
            level, message = DiagnosticStatus.ERROR, f'no frame for {silent:.1f} s'
        elif changed:
            level = DiagnosticStatus.WARN
            message += '; ' + ', '.join(f'{k} {counters.get(k, 0)}' for k in changed)

        values = [('source', self.source.describe()), ('rate_hz', f'{rate:.2f}'),
                  ('latency_ms_mean',
                   f'{sum(latencies) / len(latencies):.3f}' if latencies else 'nan'),
                  ('latency_ms_max', f'{max(latencies):.3f}' if latencies else 'nan'),
                  ('seconds_since_last_frame', f'{silent:.3f}'),
                  ('last_frame_number', str(last.frame_number) if last else ''),
                  ('tracked', ','.join(n for n, t in zip(last.names, last.tracked) if t)
                   if last else ''),
                  ('not_tracked', ','.join(f'{n}:{last.reasons.get(n, "?")}'
                                           for n, t in zip(last.names, last.tracked) if not t)
                   if last else '')]
        values += [(k, str(counters.get(k, 0))) for k in STATUS_COUNTERS]
        status = DiagnosticStatus(level=level, name=f'{self.get_name()}: mocap',
                                  message=message, hardware_id=self.source.describe(),
                                  values=[KeyValue(key=k, value=v) for k, v in values])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(array)

    # ------------------------------------------------------------------ shutdown
    def close(self) -> None:
        """Stop the source and the worker (idempotent); call before destroy_node."""
        source = getattr(self, 'source', None)
        if source is not None:
            try:
                source.stop()
            except Exception as exc:   # noqa: BLE001
                self.get_logger().warning(f'stopping the source failed: {exc!r}')
        self._stopping.set()
        if self._worker.is_alive():
            self._worker.join(timeout=2.0)


def main(args: list[str] | None = None) -> int:
    """Run the bridge until Ctrl-C / external shutdown or a failed start-up check."""
    return run_node(MocapBridgeNode, NODE_NAME, args)


if __name__ == '__main__':
    sys.exit(main())
