"""Who may speak to a robot: each input has one known source, bound by the ROS graph.

A lab network is shared: a colleague replays an old bag of this project, or starts a second
bridge, on the team's domain. Every message a robot plans on must come from the one publisher
its role names - `/mocap/frame` from the team's bridge node, intents from the predecessor's
agent node - identified by the publishing endpoint's node name and GID (rclpy gives the GID with
each message, and the node of a GID through the graph API; the node shell looks them up and
passes a `Publisher` in).

Rules of `SourceGuard` (the guarantees the tests pin):

* a message from a node other than the role's is refused (`<input>_foreign_publisher`) before
  anything in it is read, whatever its content; so no foreign message can become a reference
  (mocap clock, held pose, cached intent) and none can make a real one look out of order;
* the role is bound to the GID that speaks for it; another GID of the same node name takes the
  role over only after the bound one has been silent for `window_s` (a restarted bridge or
  agent), never while both speak;
* two GIDs of the role's node speaking within `window_s` of each other is a conflict, not a vote:
  every message of the role is refused (`<input>_source_conflict`) and the robot stops, until
  only one has spoken for `window_s`; that one is then bound.

Pure: no ROS, no clock (`now` passed in).
"""
from __future__ import annotations

from dataclasses import dataclass

# Node names of the team's graph (bringup/graph.py starts them so): the bridge, and each robot's
# agent in the robot's namespace.
BRIDGE_NODE = '/mocap_bridge'


def agent_node(robot: str) -> str:
    """Fully qualified name of a robot's agent node."""
    return f'/{robot}/agent'


def is_source_refusal(reason: str) -> bool:
    """A refusal by publisher (decided before the message was read)."""
    return reason.endswith(('_foreign_publisher', '_source_conflict'))


@dataclass(frozen=True)
class Publisher:
    """A message's publishing endpoint: its node's fully qualified name ('' when the graph
    does not know it yet) and its GID."""

    node: str
    gid: bytes

    def describe(self) -> str:
        return f'{self.node or "<unknown node>"} (gid {self.gid.hex()[:12]}...)'


@dataclass(frozen=True)
class Verdict:
    """'' reason: accepted. Otherwise the REJECT_REASONS key and a log line."""

    reason: str = ''
    message: str = ''

    @property
    def accepted(self) -> bool:
        return not self.reason


class SourceGuard:
    """The one source of an input (see the module docstring)."""

    def __init__(self, what: str, node: str, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError(f'window_s must be > 0, got {window_s}')
        self.what = what                 # 'mocap' | 'intent': the reason keys' prefix
        self.node = node                 # the role's node, e.g. '/mocap_bridge', '/go2w_1/agent'
        self.window_s = float(window_s)
        self.bound: bytes | None = None
        self._heard: dict[bytes, float] = {}     # role GIDs -> when last heard
        self.conflict_since: float | None = None

    def check(self, pub: Publisher, now: float) -> Verdict:
        """Whether a message from `pub` at `now` may be used."""
        if pub.node != self.node:
            return Verdict(f'{self.what}_foreign_publisher',
                           f'refused {self.what} from {pub.describe()}: only {self.node} may '
                           f'publish it')
        self._heard[pub.gid] = now
        for gid in [g for g, t in self._heard.items() if now - t > self.window_s]:
            del self._heard[gid]
        if len(self._heard) > 1:
            if self.conflict_since is None:
                self.conflict_since = now
            others = ', '.join(g.hex()[:12] for g in self._heard if g != pub.gid)
            return Verdict(f'{self.what}_source_conflict',
                           f'two publishers claim {self.node} on the {self.what} topic (gids '
                           f'{pub.gid.hex()[:12]} and {others}, both within {self.window_s} s): '
                           f'stopped until one remains')
        self.conflict_since = None
        self.bound = pub.gid
        return Verdict()

    def in_conflict(self, now: float) -> bool:
        """Two role GIDs heard within the window (a conflict lasts until one is silent)."""
        live = [g for g, t in self._heard.items() if now - t <= self.window_s]
        if len(live) <= 1:
            self.conflict_since = None
        return len(live) > 1
