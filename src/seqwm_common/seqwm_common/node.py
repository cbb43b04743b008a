"""What every SeqWM node shares on the ROS side: QoS, topic names, parameters, start-up, main().

QoS decisions, named once for the whole team:

* MOCAP_QOS, INTENT_QOS: freshness beats completeness (a late frame or intent is worse than
  none; consumers hold the latest one and the intent cache covers a lost one), so best effort,
  keep last 1 - the sensor-data profile.
* INBOX_QOS: how the agent subscribes to both. A DDS reader keeps one history for all writers
  of a topic, so with keep last 1 a flood from a stranger (refused later, by publisher) would
  push the real frame or intent out before the agent reads it; 128 covers a 1 kHz flood over
  the longest planning (the agent's `Inbox` thread takes the queue, and the node refuses a
  stranger's message before deserialising it).
* STATUS_QOS: one per tick, every one matters to a monitor or a bag. Transient local with 10 s
  of history: a recorder or monitor that discovers the node late (DDS discovery can take a
  second on a loaded machine) still gets the robot's first ticks, so a bag replays from the start.
  INPUTS_QOS, the robot's record of its inputs that goes with each status, is the same profile:
  replay needs every record.
* MARKER_QOS: only the newest plan is worth drawing.
* DIAGNOSTICS_QOS: low rate, reliable.
* LATCHED_QOS: one state message a late subscriber must still get (episode result).
* COMMAND_QOS: the topic backend's cmd_vel and the arena's input, reliable keep last 1.
* TRUTH_QOS: the simulated arena's ground truth for the bridge's sim source.
* TF_QOS: /tf as tf2_ros broadcasters publish it.

`run_node` is the one `main()` of every node: rclpy without its own signal handler (a node must
publish its final zero command before the context goes down), a signal during start-up aborts,
while spinning a signal only ends the spin loop (an exception raised inside rclpy's message
conversion would come out as an unrelated pybind11 RuntimeError), then `close()` and shutdown.
"""
from __future__ import annotations

import signal
from typing import Any, Callable, Sequence

import rclpy
import rclpy.logging
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              ParameterUninitializedException)
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

# ---- QoS ----------------------------------------------------------------------------------------
MOCAP_QOS = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST,
                       depth=1, durability=DurabilityPolicy.VOLATILE)
INTENT_QOS = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST,
                        depth=1, durability=DurabilityPolicy.VOLATILE)
INBOX_QOS = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST,
                       depth=128, durability=DurabilityPolicy.VOLATILE)
STATUS_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                        depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)
INPUTS_QOS = STATUS_QOS
MARKER_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                        depth=1)
DIAGNOSTICS_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE,
                             history=HistoryPolicy.KEEP_LAST, depth=10)
LATCHED_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                         depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
COMMAND_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                         depth=1)
TRUTH_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                       depth=10)
TF_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                    depth=100)

# ---- topic names: seqwm_common.topics (re-exported for the nodes) ----------------------------
from .topics import (ARENA_EPISODE_TOPIC, ARENA_TRUTH_TOPIC, CMD_TOPIC, FRAME_ID,  # noqa: E402,F401
                     INPUTS_TOPIC, INTENT_TOPIC, MARKER_TOPIC, MOCAP_POSE_TOPIC, MOCAP_STATUS_TOPIC,
                     MOCAP_TOPIC, PREDECESSOR_TOPIC, STATUS_TOPIC, TF_TOPIC)

EXIT_STARTUP_FAILED = 2


class StartupError(RuntimeError):
    """The node cannot start (a parameter, a file, the hardware); `node` names it in the log."""

    def __init__(self, message: str, node: str = '') -> None:
        super().__init__(message)
        self.node = node


def log_line(logger: Any, level: str, message: str) -> None:
    """One call site per severity: rclpy refuses a call site whose severity changes."""
    if level == 'error':
        logger.error(message)
    elif level == 'warn':
        logger.warning(message)
    else:
        logger.info(message)


def declare(node: Node, name: str, default: Any, description: str, constraints: str = '',
            array_type: type | None = None, dynamic: bool = True,
            bounds: tuple[float, float] | None = None) -> Any:
    """Declare one read-only parameter with its description and range text; its value.

    `array_type` (str or int) declares a list parameter (rclpy needs its element type even when
    empty); other types are dynamically typed, so the node's own validation can name the
    parameter in its message. `bounds` (low, high) of a number are declared as its range (tools
    such as rqt show them). Raises StartupError for a value rclpy itself refuses."""
    d = ParameterDescriptor(description=description, read_only=True, dynamic_typing=dynamic)
    if constraints:
        d.additional_constraints = constraints
    if bounds is not None and isinstance(default, float):
        d.floating_point_range = [FloatingPointRange(from_value=float(bounds[0]),
                                                     to_value=float(bounds[1]), step=0.0)]
    elif bounds is not None and isinstance(default, int) and not isinstance(default, bool):
        d.integer_range = [IntegerRange(from_value=int(bounds[0]), to_value=int(bounds[1]),
                                        step=1)]
    try:
        if array_type is not None:
            d.dynamic_typing = False
            ptype = Parameter.Type.STRING_ARRAY if array_type is str else Parameter.Type.INTEGER_ARRAY
            if default:
                node.declare_parameter(name, list(default), d)
            else:
                node.declare_parameter(name, ptype, d)
            try:
                value = node.get_parameter(name).value
            except ParameterUninitializedException:
                value = []
            return list(value) if value is not None else []
        return node.declare_parameter(name, default, d).value
    except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
        raise StartupError(f'parameter {name}: {exc}', node.get_fully_qualified_name()) from None


def _spin(node: Node, stop: list[bool]) -> None:
    executor = SingleThreadedExecutor(context=node.context)   # one wait set, not one per call
    executor.add_node(node)
    try:
        while not stop[0] and node.context.ok() and getattr(node, 'exit_code', None) is None:
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.remove_node(node)
        executor.shutdown()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_node(make_node: Callable[[], Node], name: str,
             args: Sequence[str] | None = None) -> int:
    """Create the node, spin until SIGINT/SIGTERM, external shutdown or `node.exit_code` is
    set, then `node.close()` (if it has one) and shut down. Returns the process exit code:
    EXIT_STARTUP_FAILED when the node raised StartupError, else `node.exit_code` or 0."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, signal.default_int_handler)   # even if started with SIGINT ignored
    signal.signal(signal.SIGTERM, _raise_interrupt)
    node: Node | None = None
    code = 0
    stop = [False]
    try:
        node = make_node()

        def request_stop(signum: int, frame: Any) -> None:
            stop[0] = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        _spin(node, stop)
        code = int(getattr(node, 'exit_code', None) or 0)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except StartupError as exc:
        rclpy.logging.get_logger(exc.node.lstrip('/').replace('/', '.') or name).error(
            f'cannot start: {exc}')
        code = EXIT_STARTUP_FAILED
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # a second Ctrl-C must not cut the stop short
        if node is not None:
            try:
                close = getattr(node, 'close', None)
                if close is not None:
                    close()
            finally:
                node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code
