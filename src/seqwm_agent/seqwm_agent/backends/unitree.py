"""The `unitree` backend: a Go2/Go2-W driven through unitree_sdk2py's SportClient.

The SDK runs in its own child process (`python -m seqwm_agent.backends.sport_worker`, started
with subprocess), because rclpy and the SDK's Cyclone DDS must not share a process on robots
using rmw_cyclonedds. This class is the parent's handle: it validates and clamps commands,
writes the latest one to the worker's stdin, and keeps the worker's latest status line. What
the worker does (re-send at 50 Hz, watchdog, StopMove on stop/close/parent death, start-up
BalanceStand + wait for ready) is documented in `sport_worker` and docs/backends.md.

    backend = UnitreeBackend(UnitreeBackendConfig(network_interface='eth0', domain_id=0))
    backend.start()            # blocks until the robot reports balance stand, or raises
    backend.send(0.3, 0.0, 0.1)
    backend.stop(); backend.close()
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from ..core.command import CommandLimits
from . import sport_worker as w
from .base import (BackendError, BackendNotReadyError, BackendStartError, BackendState,
                   RobotBackend)

# Extra time start() waits beyond ready_timeout: spawning the interpreter, importing the SDK,
# and the SDK's own fixed sleeps while creating its channels (about 1 s).
SPAWN_ALLOWANCE_S = 10.0
# The worker reports every 0.1 s, but one SDK call may block it for request_timeout (a Move
# when the robot has gone); silence longer than this bound means it is stuck or gone.
HEARTBEAT_STALE_S = 1.0
# A robot state older than this makes the backend not ready (the robot publishes at 50-500 Hz).
STATE_STALE_S = 1.0
# A dead worker is replaced after a back-off that doubles from the first to the last value per
# failed replacement; a replacement that stays up this long resets it.
RESTART_BACKOFF_S = (0.5, 10.0)
RESTART_HEALTHY_S = 10.0


def heartbeat_limit(config: 'UnitreeBackendConfig') -> float:
    """Longest worker silence that is still normal for this configuration."""
    return max(HEARTBEAT_STALE_S, 2.0 * config.request_timeout + 0.2)


@dataclass(frozen=True)
class UnitreeBackendConfig:
    """Parameters of the `unitree` backend (node parameters `unitree.<name>`)."""

    network_interface: str = field(default='eth0', metadata={'description': (
        'network interface on the robot network (e.g. eth0, enp3s0; lo for the stand-in)')})
    domain_id: int = field(default=0, metadata={'description': (
        "DDS domain of the robot's SDK traffic (0 on a Go2's own network)")})
    resend_hz: float = field(default=50.0, metadata={'description': (
        'rate at which the latest command is re-sent with Move (the robot stops ~1 s after '
        'its last Move)')})
    watchdog_timeout: float = field(default=0.5, metadata={'description': (
        's without a new command before the worker sends StopMove')})
    ready_timeout: float = field(default=10.0, metadata={'description': (
        's allowed for BalanceStand and a ready mode on the state topic at start-up')})
    request_timeout: float = field(default=0.5, metadata={'description': (
        "SportClient timeout for one request or send")})
    state_topic: str = field(default='rt/sportmodestate', metadata={'description': (
        'SportModeState_ topic read for readiness (or rt/lf/sportmodestate)')})
    ready_modes: tuple[int, ...] = field(default=(1, 3), metadata={'description': (
        'SportModeState_.mode values that accept Move (1 balance stand, 3 locomotion)')})
    balance_stand: bool = field(default=True, metadata={'description': (
        'send BalanceStand at start-up')})

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f'unitree backend parameter {name} {why}, got {getattr(self, name)!r}')

        if not isinstance(self.network_interface, str) or not self.network_interface:
            raise bad('network_interface', 'must be a non-empty interface name')
        if isinstance(self.domain_id, bool) or not isinstance(self.domain_id, int) \
                or not 0 <= self.domain_id <= 232:
            raise bad('domain_id', 'must be an integer in [0, 232]')
        for name, lo, hi in (('resend_hz', 1.0, 500.0), ('watchdog_timeout', 0.01, 5.0),
                             ('ready_timeout', 0.1, 120.0), ('request_timeout', 0.01, 5.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not (math.isfinite(value) and lo <= value <= hi):
                raise bad(name, f'must be a number in [{lo}, {hi}]')
        if self.watchdog_timeout <= 1.0 / self.resend_hz:
            raise bad('watchdog_timeout', f'must exceed one re-send period ({1 / self.resend_hz} s)')
        if not isinstance(self.state_topic, str) or not self.state_topic:
            raise bad('state_topic', 'must be a non-empty topic name')
        if not self.ready_modes or not all(isinstance(m, int) and not isinstance(m, bool)
                                           and 0 <= m < 256 for m in self.ready_modes):
            raise bad('ready_modes', 'must be a non-empty list of SportModeState_ modes (0-255)')
        if not isinstance(self.balance_stand, bool):
            raise bad('balance_stand', 'must be true or false')

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> 'UnitreeBackendConfig':
        """From node parameters / YAML; unknown keys are rejected by name."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f'unknown unitree backend parameter(s) {unknown}; known: {sorted(known)}')
        if 'ready_modes' in d:
            d['ready_modes'] = tuple(d['ready_modes'])
        for k in ('resend_hz', 'watchdog_timeout', 'ready_timeout', 'request_timeout'):
            if isinstance(d.get(k), int) and not isinstance(d.get(k), bool):
                d[k] = float(d[k])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d['ready_modes'] = list(self.ready_modes)
        return d


class UnitreeBackend(RobotBackend):
    """Parent-side handle of the sport worker process."""

    kind = 'unitree'

    def __init__(self, config: UnitreeBackendConfig | None = None,
                 limits: CommandLimits | None = None) -> None:
        super().__init__(limits)
        self.config = config if config is not None else UnitreeBackendConfig()
        self._proc: subprocess.Popen | None = None
        self._cmd_fd = -1
        self._lock = threading.Lock()
        self._status: dict[str, Any] = {'phase': w.PHASE_STARTING, 'error': ''}
        self._status_time = 0.0       # time.monotonic() when the last status line arrived
        self._reader: threading.Thread | None = None
        self._sent = 0
        self._clamped = 0
        self._stops = 0
        self._last = (0.0, 0.0, 0.0)
        self._error = ''
        self._closed = False
        self.restarts = 0                      # workers started to replace a dead one
        self._backoff = RESTART_BACKOFF_S[0]
        self._restart_at: float | None = None
        self._spawned_at = 0.0

    @property
    def pid(self) -> int | None:
        """Process id of the worker (for logs and tests)."""
        return self._proc.pid if self._proc is not None else None

    # --- life cycle ----------------------------------------------------------------------
    def start(self, wait: bool = True) -> None:
        """Start the worker; with `wait`, block until the robot is ready or raise BackendStartError."""
        if self._proc is not None:
            raise BackendError('unitree backend already started')
        self._spawn(replaces=False)
        if wait:
            self.wait_ready(self.config.ready_timeout + SPAWN_ALLOWANCE_S)

    def _spawn(self, replaces: bool) -> None:
        cfg = self.config.to_dict()
        cfg['v_max'] = [self.limits.vx, self.limits.vy, self.limits.wz]
        cfg['replaces_worker'] = replaces
        with self._lock:
            self._status = {'phase': w.PHASE_STARTING, 'error': ''}
        self._spawned_at = time.monotonic()
        status_r, status_w = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, '-m', 'seqwm_agent.backends.sport_worker',
                 '--config', json.dumps(cfg), '--status-fd', str(status_w)],
                stdin=subprocess.PIPE, pass_fds=(status_w,), close_fds=True)
        finally:
            os.close(status_w)   # only the worker writes; EOF here means it has gone
        assert self._proc.stdin is not None
        self._cmd_fd = self._proc.stdin.fileno()
        # Never block the control loop on a stuck worker: a full pipe is an error, not a wait.
        os.set_blocking(self._cmd_fd, False)
        self._status_time = time.monotonic()
        self._reader = threading.Thread(target=self._read_status_lines, args=(status_r,),
                                        name='unitree-status', daemon=True)
        self._reader.start()

    def supervise(self) -> None:
        """Replace a dead worker (SIGKILL, crash): after a back-off (0.5 s doubling to 10 s), a
        new one starts, sends StopMove as soon as its SportClient is up, and gets ready again;
        until then the backend is not ready and says why (the agent stops, status `stopped`
        with the reason). The robot's own Move timeout (~1 s without a Move) is the last line
        of defence while no worker runs. Called by `state()`, so every tick supervises."""
        if self._closed or self._proc is None:
            return
        now = time.monotonic()
        if self._proc.poll() is None:
            st, _ = self._snapshot()
            if st['phase'] == w.PHASE_READY:
                if self._error.startswith('unitree sport worker'):
                    self._error = ''              # the replacement is up
                if now - self._spawned_at > RESTART_HEALTHY_S:
                    self._backoff = RESTART_BACKOFF_S[0]
            return
        if self._restart_at is None:
            self._restart_at = now + self._backoff
            self._error = (f'unitree sport worker died (exit code {self._proc.returncode}); '
                           f'a new one starts in {self._backoff:.1f} s')
            return
        if now < self._restart_at:
            return
        if self._proc.stdin is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
        self._restart_at = None
        self._backoff = min(2.0 * self._backoff, RESTART_BACKOFF_S[1])
        self.restarts += 1
        self._error = f'unitree sport worker replaced ({self.restarts} so far); getting ready'
        self._spawn(replaces=True)

    def _read_status_lines(self, fd: int) -> None:
        with os.fdopen(fd, 'rb') as stream:
            for line in stream:
                try:
                    status = json.loads(line)
                except ValueError:
                    continue
                with self._lock:
                    self._status, self._status_time = status, time.monotonic()

    def _snapshot(self) -> tuple[dict[str, Any], float]:
        with self._lock:
            return self._status, time.monotonic() - self._status_time

    def wait_ready(self, timeout: float) -> None:
        """Block until the worker reports ready; raise BackendStartError with its reason."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            st, _ = self._snapshot()
            if st['phase'] == w.PHASE_READY:
                return
            exited = self._proc.poll() is not None
            if st['phase'] in (w.PHASE_FAILED, w.PHASE_CLOSED) or exited:
                if self._reader is not None:
                    self._reader.join(1.0)     # the last status line carries the reason
                st, _ = self._snapshot()
                reason = st.get('error') or f'worker exited with code {self._proc.poll()}'
            elif time.monotonic() > deadline:
                reason = f'no ready report within {timeout:.1f} s (worker phase {st["phase"]})'
            else:
                time.sleep(0.02)
                continue
            self._error = reason
            self.close()
            raise BackendStartError(f'unitree backend start-up failed: {reason}')

    def close(self, timeout: float = 3.0) -> None:
        """StopMove and end the worker (SIGTERM, then SIGKILL if it does not leave in time)."""
        if self._closed:
            return
        self._closed = True
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                self._write('close')
            except BackendError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()               # SIGTERM: the worker still sends StopMove
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(1.0)
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        if self._reader is not None:
            self._reader.join(1.0)

    # --- commands ------------------------------------------------------------------------
    def send(self, vx: float, vy: float, wz: float) -> None:
        v, clamped = self._checked(vx, vy, wz)
        self._require_running()
        st, _ = self._snapshot()
        if st['phase'] != w.PHASE_READY:
            raise BackendNotReadyError(f'unitree backend not ready (worker phase {st["phase"]})')
        self._write(f'cmd {float(v[0])!r} {float(v[1])!r} {float(v[2])!r}')
        self._clamped += int(clamped)
        self._sent += 1
        self._last = (float(v[0]), float(v[1]), float(v[2]))

    def stop(self) -> None:
        self._last = (0.0, 0.0, 0.0)
        self._stops += 1
        try:
            self._require_running()
            self._write('stop')
        except BackendError as exc:
            # Nothing re-sends Move any more, so the robot stops by itself within ~1 s.
            self._error = f'stop not delivered ({exc}); the robot stops by its own Move timeout'

    def _require_running(self) -> None:
        if self._proc is None:
            raise BackendError('unitree backend not started')
        if self._closed:
            raise BackendError('unitree backend closed')
        st, age = self._snapshot()
        if self._proc.poll() is not None:
            raise BackendError(f'unitree sport worker exited (code {self._proc.returncode})'
                               + (f': {st["error"]}' if st.get('error') else ''))
        if age > heartbeat_limit(self.config):
            raise BackendError(f'unitree sport worker silent for {age:.1f} s')

    def _write(self, line: str) -> None:
        try:
            os.write(self._cmd_fd, (line + '\n').encode('ascii'))
        except BlockingIOError as exc:
            raise BackendError('unitree sport worker is not reading commands (pipe full)') from exc
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise BackendError(f'unitree sport worker pipe closed: {exc}') from exc

    # --- status --------------------------------------------------------------------------
    def state(self) -> BackendState:
        self.supervise()
        st, age = self._snapshot()
        alive = self._proc is not None and self._proc.poll() is None and not self._closed
        mode = st.get('robot_mode', -1)
        state_age = st.get('state_age')
        robot_fresh = state_age is not None and state_age + age < STATE_STALE_S
        ready = (alive and st['phase'] == w.PHASE_READY and age < heartbeat_limit(self.config)
                 and robot_fresh and mode in self.config.ready_modes)
        detail = {
            'phase': st['phase'],
            'worker_alive': alive,
            'worker_pid': self.pid,
            'status_age_s': age,
            'robot_mode': mode,
            'robot_mode_name': w.mode_name(mode),
            'robot_error_code': st.get('robot_error_code', 0),
            'robot_velocity': tuple(st.get('robot_velocity', (0.0, 0.0, 0.0))),
            'state_messages': st.get('state_count', 0),
            'state_age_s': state_age,
            'balance_stand_code': st.get('balance_stand_code'),
            'moves': st.get('moves', 0),
            'move_ok': st.get('move_ok', 0),
            'move_codes': {int(k): v for k, v in st.get('move_codes', {}).items()},
            'last_move_code': st.get('last_move_code'),
            'stop_moves': st.get('stop_moves', 0),
            'stop_move_failures': st.get('stop_move_failures', 0),
            'last_stop_code': st.get('last_stop_code'),
            'last_stop_reason': st.get('last_stop_reason'),
            'moving': st.get('moving', False),
            'resending': tuple(st.get('command', (0.0, 0.0, 0.0))),
            'worker_clamped': st.get('clamped', 0),
            'commands_from_parent': self._sent,
            'commands_received': st.get('commands', 0),
            'worker_restarts': self.restarts,
        }
        return BackendState(
            kind=self.kind,
            ready=bool(ready),
            commands_sent=int(st.get('moves', 0)),
            send_failures=int(st.get('move_send_failed', 0) + st.get('move_other_error', 0)),
            stops=int(st.get('stop_moves', 0)),
            watchdog_stops=int(st.get('watchdog_stops', 0)),
            clamped=self._clamped,
            last_command=self._last,
            error=(self._error if not alive or self._restart_at is not None
                   else st.get('error') or self._error),
            detail=detail,
        )
