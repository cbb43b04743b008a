"""Robot backends: where the command chain's (vx, vy, wz) leaves the agent.

    topic    geometry_msgs/Twist on `cmd_vel` (arena simulator, generic drivers)   -> topic.py
    unitree  unitree_sdk2py SportClient.Move/StopMove in a child process (Go2-W)  -> unitree.py

`make_backend(kind, params, node=..., limits=...)` builds one from node parameters. Imports are
lazy so that the unitree worker process (which imports `sport_worker` from this package) never
loads rclpy, and the topic backend never loads the Unitree SDK.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from ..core.command import CommandLimits
    from .base import RobotBackend

BACKEND_KINDS = ('topic', 'unitree')


def make_backend(kind: str, params: Mapping[str, Any] | None = None, *, node: Any = None,
                 limits: 'CommandLimits | None' = None) -> 'RobotBackend':
    """A backend of `kind` from its parameter mapping (see the *BackendConfig dataclasses).

    `node` (an rclpy Node) is required for 'topic'. The backend is not started yet.
    """
    if kind == 'topic':
        if node is None:
            raise ValueError("backend 'topic' needs the agent's rclpy node")
        from .topic import TopicBackend, TopicBackendConfig
        return TopicBackend(node, TopicBackendConfig.from_dict(params), limits)
    if kind == 'unitree':
        from .unitree import UnitreeBackend, UnitreeBackendConfig
        return UnitreeBackend(UnitreeBackendConfig.from_dict(params), limits)
    raise ValueError(f'unknown backend {kind!r}; expected one of {list(BACKEND_KINDS)}')
