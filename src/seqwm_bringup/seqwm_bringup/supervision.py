"""What the team does when one of its nodes exits: restart it or shut the team down, and say why.

A team whose agents have died must not look alive: the arena and the bridge would keep running
and nothing would say that robots are gone. One pure policy decides for both front ends, the
launch files (launch_actions.py, an OnProcessExit handler per node) and the pip-only runner
(runner.TeamRunner.supervise), from the bringup YAML's `supervision:` section:

    supervision:
      agent_exit: shutdown     # shutdown | restart
      max_restarts: 3          # per agent, restart only
      restart_delay_s: 2.0

Rules, whatever the mode: a node that failed to *start* (exit code EXIT_STARTUP_FAILED: a bad
parameter, a missing or mismatched model) is never restarted, since the same parameters fail
the same way; an exit of the arena or the mocap bridge always shuts the team down (every robot
depends on them); a clean exit (code 0) while the team is running is still an exit.
"""
from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any, Mapping

from seqwm_common.node import EXIT_STARTUP_FAILED

from .graph import GraphError, NodeSpec

AGENT_EXIT_MODES = ('shutdown', 'restart')


def exit_reason(code: int | None) -> str:
    """A process exit code in words ('start-up failed (exit 2)', 'killed by SIGKILL')."""
    if code is None:
        return 'still running'
    if code == 0:
        return 'exited cleanly (exit 0)'
    if code == EXIT_STARTUP_FAILED:
        return f'start-up failed (exit {code})'
    if code < 0:
        try:
            return f'killed by {signal.Signals(-code).name}'
        except ValueError:
            return f'killed by signal {-code}'
    if code > 128:   # a shell or launch wrapper reports signals as 128 + n
        try:
            return f'killed by {signal.Signals(code - 128).name} (exit {code})'
        except ValueError:
            pass
    return f'failed (exit {code})'


def robot_of(node: NodeSpec) -> str:
    """The robot a node belongs to ('' for the team-wide arena and bridge)."""
    return node.namespace.strip('/') if node.executable == 'agent' else ''


@dataclass(frozen=True)
class Decision:
    restart: bool
    delay_s: float
    message: str


@dataclass(frozen=True)
class ExitPolicy:
    """See the module docstring."""

    agent_exit: str = 'shutdown'
    max_restarts: int = 3
    restart_delay_s: float = 2.0

    def __post_init__(self) -> None:
        if self.agent_exit not in AGENT_EXIT_MODES:
            raise GraphError(f'supervision.agent_exit must be one of {list(AGENT_EXIT_MODES)}, '
                             f'got {self.agent_exit!r}')
        if not (isinstance(self.max_restarts, int) and 0 <= self.max_restarts <= 100):
            raise GraphError(f'supervision.max_restarts must be an integer in 0..100, '
                             f'got {self.max_restarts!r}')
        if not 0.0 <= float(self.restart_delay_s) <= 60.0:
            raise GraphError(f'supervision.restart_delay_s must be in 0..60 s, '
                             f'got {self.restart_delay_s!r}')

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> ExitPolicy:
        """The policy of a bringup config dict (its `supervision:` section; defaults if none)."""
        section = dict((config or {}).get('supervision') or {})
        unknown = set(section) - {'agent_exit', 'max_restarts', 'restart_delay_s'}
        if unknown:
            raise GraphError(f'supervision: unknown keys {sorted(unknown)}')
        return cls(**section)

    def decide(self, node: NodeSpec, code: int | None, restarts: int) -> Decision:
        """What to do now that `node` exited with `code`, after `restarts` earlier restarts."""
        robot = robot_of(node)
        who = f'robot {robot} ({node.fqn})' if robot else node.fqn
        why = exit_reason(code)
        if not robot:
            return Decision(False, 0.0, f'{who} {why}; every robot depends on it: shutting the '
                                        f'team down')
        if code == EXIT_STARTUP_FAILED:
            return Decision(False, 0.0, f'{who} {why} (its log says why); restarting cannot '
                                        f'help: shutting the team down')
        if self.agent_exit == 'restart' and restarts < self.max_restarts:
            return Decision(True, float(self.restart_delay_s),
                            f'{who} {why}; restarting it in {self.restart_delay_s:g} s '
                            f'(restart {restarts + 1} of {self.max_restarts})')
        if self.agent_exit == 'restart':
            return Decision(False, 0.0, f'{who} {why} after {restarts} restarts '
                                        f'(max_restarts {self.max_restarts}): shutting the team down')
        return Decision(False, 0.0, f'{who} {why}; supervision.agent_exit is shutdown: shutting '
                                    f'the team down')
