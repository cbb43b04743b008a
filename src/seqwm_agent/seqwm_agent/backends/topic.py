"""The `topic` backend: velocity commands as geometry_msgs/Twist on `cmd_vel`.

Used with the arena simulator and with any robot driver that takes a Twist. The agent node owns
the rclpy node and passes it in; the topic name is relative, so a node in namespace
`/go2w_1` publishes on `/go2w_1/cmd_vel` (architecture §4). Each `send` publishes exactly one
Twist (linear.x = vx, linear.y = vy, angular.z = wz); `stop` publishes a zero Twist. Nothing is
re-sent: the subscriber decides what a silent topic means (the arena holds the last command for a
bounded time, a real driver should time out).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from geometry_msgs.msg import Twist
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..core.command import CommandLimits
from .base import BackendError, BackendState, RobotBackend

# Reliable, keep last 1: a command is small and only the newest matters, and a reliable
# publisher matches both reliable (default) and best-effort subscribers.
CMD_VEL_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE)

# How long close() waits for subscribers to acknowledge the final zero Twist.
CLOSE_ACK_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class TopicBackendConfig:
    """Parameters of the `topic` backend (node parameters `topic.<name>`)."""

    topic: str = field(default='cmd_vel', metadata={'description': (
        "Twist topic; relative names resolve in the agent node's namespace")})

    def __post_init__(self) -> None:
        if not isinstance(self.topic, str) or not self.topic.strip('/'):
            raise ValueError(f'topic backend parameter topic must be a topic name, got {self.topic!r}')

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> 'TopicBackendConfig':
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f'unknown topic backend parameter(s) {unknown}; known: {sorted(known)}')
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def twist(vx: float, vy: float, wz: float) -> Twist:
    msg = Twist()
    msg.linear.x, msg.linear.y, msg.angular.z = float(vx), float(vy), float(wz)
    return msg


class TopicBackend(RobotBackend):
    """Publishes Twist on `cmd_vel` through the caller's node."""

    kind = 'topic'

    def __init__(self, node: Node, config: TopicBackendConfig | None = None,
                 limits: CommandLimits | None = None) -> None:
        super().__init__(limits)
        self.node = node
        self.config = config if config is not None else TopicBackendConfig()
        self._pub: Any = None
        self._sent = 0
        self._failures = 0
        self._stops = 0
        self._clamped = 0
        self._last = (0.0, 0.0, 0.0)
        self._error = ''
        self._closed = False

    def start(self) -> None:
        if self._pub is None and not self._closed:
            self._pub = self.node.create_publisher(Twist, self.config.topic, CMD_VEL_QOS)

    def _publish(self, vx: float, vy: float, wz: float) -> None:
        if self._pub is None:
            raise BackendError('topic backend not started' if not self._closed else 'topic backend closed')
        try:
            self._pub.publish(twist(vx, vy, wz))
        except Exception as exc:  # rclpy raises RCLError / InvalidHandle on a dying context
            self._failures += 1
            self._error = f'publish on {self.topic_name} failed: {exc}'
            raise BackendError(self._error) from exc
        self._sent += 1
        self._last = (float(vx), float(vy), float(wz))

    def send(self, vx: float, vy: float, wz: float) -> None:
        v, clamped = self._checked(vx, vy, wz)
        self._clamped += int(clamped)
        self._publish(*v)

    def stop(self) -> None:
        self._stops += 1
        try:
            self._publish(0.0, 0.0, 0.0)
        except BackendError:
            pass   # recorded in state().error; a stop never raises

    def close(self) -> None:
        """Publish a zero Twist, give subscribers a moment to acknowledge it, then leave."""
        if self._closed:
            return
        if self._pub is not None:
            self.stop()
            try:
                # Destroying the writer at once can drop the final zero command unsent.
                self._pub.wait_for_all_acked(Duration(seconds=CLOSE_ACK_TIMEOUT_S))
            except Exception:
                pass
            try:
                self.node.destroy_publisher(self._pub)
            except Exception:
                pass
        self._pub = None
        self._closed = True

    @property
    def topic_name(self) -> str:
        """The resolved name (e.g. /go2w_1/cmd_vel) once started."""
        name = getattr(self._pub, 'topic_name', None) if self._pub is not None else None
        return name or self.config.topic

    def state(self) -> BackendState:
        subscribers = self._pub.get_subscription_count() if self._pub is not None else 0
        return BackendState(
            kind=self.kind,
            ready=self._pub is not None,
            commands_sent=self._sent,
            send_failures=self._failures,
            stops=self._stops,
            clamped=self._clamped,
            last_command=self._last,
            error=self._error,
            detail={'topic': self.topic_name, 'subscribers': subscribers},
        )
