"""The one small interface every robot backend implements, and what it reports.

The agent node holds exactly one `RobotBackend` and calls, per control tick, `send(vx, vy, wz)`
with the output of the command chain (or `stop()` when its watchdog fires); `state()` feeds the
node's status message. A backend never moves the robot outside `CommandLimits`, whatever it is
given: it clamps again (defence in depth) and refuses NaN/inf.
"""
from __future__ import annotations

import abc
import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np

from ..core.command import CommandLimits


def describe_parameters(config_cls: type) -> dict[str, tuple[Any, str]]:
    """{name: (default, description)} of a config dataclass, for declaring node parameters.

    Works for UnitreeBackendConfig, TopicBackendConfig and CommandLimits.
    """
    out = {}
    for f in fields(config_cls):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        out[f.name] = (default, f.metadata.get('description', ''))
    return out


class BackendError(RuntimeError):
    """The backend cannot command the robot (not started, worker gone, ...)."""


class BackendStartError(BackendError):
    """Start-up failed or timed out; the message says which step and what the robot reported."""


class BackendNotReadyError(BackendError):
    """A command was sent before the robot reported ready."""


@dataclass(frozen=True)
class BackendState:
    """A snapshot of a backend, for status messages, logs and tests.

    `ready`: commands sent now reach a robot that can execute them. `commands_sent`: commands
    written to the robot (Move calls, Twist messages), including the unitree backend's re-sends.
    `send_failures`: writes that failed (for unitree: Move returned non-zero, 3102 = send failed).
    `stops`: stop commands issued on request or shutdown; `watchdog_stops`: stops the backend
    issued by itself because commands stopped arriving. `clamped`: commands that had to be
    clamped to the limits. `detail`: backend-specific numbers (e.g. robot mode, return codes).
    """

    kind: str
    ready: bool
    commands_sent: int = 0
    send_failures: int = 0
    stops: int = 0
    watchdog_stops: int = 0
    clamped: int = 0
    last_command: tuple[float, float, float] = (0.0, 0.0, 0.0)
    error: str = ''
    detail: dict[str, Any] = field(default_factory=dict)


class RobotBackend(abc.ABC):
    """Sends velocity commands (vx, vy in m/s, wz in rad/s, robot base frame) to one robot."""

    kind: str = ''

    def __init__(self, limits: CommandLimits | None = None) -> None:
        self.limits = limits if limits is not None else CommandLimits()

    @abc.abstractmethod
    def start(self) -> None:
        """Connect and bring the robot to a state where it accepts velocity commands."""

    @abc.abstractmethod
    def send(self, vx: float, vy: float, wz: float) -> None:
        """Command a velocity; it holds until the next send/stop (within the backend's watchdog)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the robot now. Never raises: a stop must always be attempted."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop the robot and release everything. Idempotent."""

    @abc.abstractmethod
    def state(self) -> BackendState:
        """Current snapshot (cheap; call it every tick if needed)."""

    def ready(self) -> bool:
        return self.state().ready

    def __enter__(self) -> 'RobotBackend':
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _checked(self, vx: float, vy: float, wz: float) -> tuple[np.ndarray, bool]:
        """(clamped command, whether clamping changed it); raises ValueError on NaN/inf."""
        v = np.array([vx, vy, wz], dtype=np.float64)
        if not all(math.isfinite(x) for x in v):
            raise ValueError(f'{self.kind} backend refused non-finite command {v.tolist()}')
        c = self.limits.clamp(v)
        return c, bool(np.any(c != v))
