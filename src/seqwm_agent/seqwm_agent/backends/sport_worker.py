"""The child process of the `unitree` backend: the only place that talks to the robot's SDK.

Why a separate process: on ROS installs that use rmw_cyclonedds, rclpy and unitree_sdk2py (its
own Cyclone DDS 0.10.2) in one process are reported to clash. The parent starts this module
with `subprocess` (`python -m seqwm_agent.backends.sport_worker`): a fresh interpreter that
imports only the SDK, never the parent's main module, rclpy or torch.

Protocol (text lines, each shorter than PIPE_BUF so every write is atomic):
  parent -> worker on stdin:
    cmd <vx> <vy> <wz>   latest velocity command; re-sent with Move at `resend_hz`
    stop                 StopMove now, then hold still until the next cmd
    (a worker started to replace a dead one sends StopMove as soon as its SportClient is up)
    close                StopMove, then exit
  worker -> parent on `--status-fd`: one JSON object per line with cumulative counters, sent
    every 0.1 s and at once on events. Writes are non-blocking and dropped when the pipe is full:
    the status is a latest-value snapshot, and the worker must never block on its parent.
The SDK's own prints go to the inherited stdout/stderr (the node's log).

Safety rules kept here, independent of the parent:
  * every command is clamped again to the configured limits (NaN -> 0);
  * Move is re-sent at a fixed rate, because the robot stops ~1 s after its last Move;
  * watchdog: no new command for `watchdog_timeout` s -> StopMove (resumes on the next command);
  * parent gone (stdin EOF, status pipe broken, re-parented), SIGTERM, or close -> StopMove, exit.
    SIGINT is ignored: Ctrl-C reaches the whole process group, and the parent's orderly
    shutdown (which ends in `close`) must decide, not a race between the two processes.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import select
import signal
import sys
import threading
import time
from typing import Any

PHASE_STARTING, PHASE_READY, PHASE_FAILED, PHASE_CLOSED = 'starting', 'ready', 'failed', 'closed'

# SportModeState_.mode as the Go2 reports it (Unitree's sport-mode state documentation).
ROBOT_MODES = {0: 'idle/default stand', 1: 'balance stand', 2: 'pose', 3: 'locomotion',
               5: 'lie down', 6: 'joint lock', 7: 'damping', 8: 'recovery stand', 10: 'sit',
               11: 'front flip', 12: 'front jump', 13: 'front pounce'}

SEND_FAILED = 3102   # RPC_ERR_CLIENT_SEND: no sport service matched within the request timeout
BALANCE_STAND_RETRY_S = 0.5
STATUS_PERIOD_S = 0.1


def mode_name(mode: int) -> str:
    return ROBOT_MODES.get(mode, 'unknown') if mode >= 0 else 'no state received'


class ParentGone(Exception):
    """stdin reached EOF or the status pipe broke: nobody is commanding us any more."""


class Worker:
    def __init__(self, cfg: dict[str, Any], cmd_fd: int, status_fd: int) -> None:
        self.cfg = cfg
        self.cmd_fd = cmd_fd
        self.status_fd = status_fd
        self.v_max = [float(x) for x in cfg['v_max']]
        self.ready_modes = {int(m) for m in cfg['ready_modes']}
        self.ppid = os.getppid()
        self.terminate = False
        self.client: Any = None
        self.command = [0.0, 0.0, 0.0]
        self.moving = False
        self.last_cmd = 0.0
        self._buf = b''
        self._lock = threading.Lock()     # the SDK's reader thread writes robot_* fields
        self._last_status = 0.0
        self.s: dict[str, Any] = {
            'phase': PHASE_STARTING, 'error': '',
            'robot_mode': -1, 'robot_error_code': 0, 'state_count': 0, 'state_mono': 0.0,
            'robot_velocity': [0.0, 0.0, 0.0],
            'balance_stand_code': None, 'balance_stand_calls': 0,
            'commands': 0, 'clamped': 0,
            'moves': 0, 'move_ok': 0, 'move_send_failed': 0, 'move_other_error': 0,
            'move_codes': {}, 'last_move_code': None,
            'stop_moves': 0, 'stop_move_failures': 0, 'last_stop_code': None,
            'watchdog_stops': 0, 'moving': False, 'command': [0.0, 0.0, 0.0],
        }

    # --- status to the parent ------------------------------------------------------------
    def publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < STATUS_PERIOD_S:
            return
        self._last_status = now
        with self._lock:
            self.s['state_age'] = (now - self.s['state_mono']) if self.s['state_count'] else None
            line = (json.dumps(self.s, separators=(',', ':')) + '\n').encode()
        try:
            os.write(self.status_fd, line)
        except BlockingIOError:
            pass                      # parent not reading right now; next snapshot supersedes
        except (BrokenPipeError, OSError) as exc:
            raise ParentGone(str(exc)) from exc

    def fail(self, error: str) -> None:
        self.s.update(phase=PHASE_FAILED, error=error)
        print(f'[sport_worker] {error}', file=sys.stderr, flush=True)

    def on_state(self, msg: Any) -> None:
        """SportModeState_ handler (runs on the SDK's reader thread)."""
        with self._lock:
            self.s['robot_mode'] = int(msg.mode)
            self.s['robot_error_code'] = int(msg.error_code)
            self.s['state_count'] += 1
            self.s['state_mono'] = time.monotonic()
            self.s['robot_velocity'] = [float(msg.velocity[0]), float(msg.velocity[1]),
                                        float(msg.yaw_speed)]

    # --- robot calls ---------------------------------------------------------------------
    def clamp(self, values: list[float]) -> list[float]:
        out = [0.0 if not math.isfinite(v) else min(max(v, -m), m)
               for v, m in zip(values, self.v_max)]
        if out != values:
            self.s['clamped'] += 1
        return out

    def move(self) -> None:
        code = int(self.client.Move(*self.command))
        s = self.s
        s['moves'] += 1
        s['last_move_code'] = code
        s['move_codes'][str(code)] = s['move_codes'].get(str(code), 0) + 1
        if code == 0:
            s['move_ok'] += 1
        elif code == SEND_FAILED:
            s['move_send_failed'] += 1
        else:
            s['move_other_error'] += 1

    def stop_move(self, why: str) -> None:
        self.moving = False
        self.command = [0.0, 0.0, 0.0]
        code = int(self.client.StopMove()) if self.client is not None else -1
        s = self.s
        s.update(moving=False, command=[0.0, 0.0, 0.0], last_stop_code=code,
                 last_stop_reason=why)
        s['stop_moves'] += 1
        if code != 0:
            s['stop_move_failures'] += 1
        if why == 'watchdog':
            s['watchdog_stops'] += 1
        try:
            self.publish(force=True)
        except ParentGone:
            pass

    # --- commands from the parent --------------------------------------------------------
    def receive(self, timeout: float) -> list[list[str]]:
        """Command lines that arrived within `timeout` s (split into words)."""
        if os.getppid() != self.ppid:
            raise ParentGone('re-parented')
        ready, _, _ = select.select([self.cmd_fd], [], [], max(0.0, timeout))
        if not ready:
            return []
        chunk = os.read(self.cmd_fd, 65536)
        if not chunk:
            raise ParentGone('stdin closed')
        self._buf += chunk
        *lines, self._buf = self._buf.split(b'\n')
        return [ln.decode('ascii', 'replace').split() for ln in lines if ln.strip()]

    # --- phases --------------------------------------------------------------------------
    def connect(self) -> None:
        from unitree_sdk2py.core.channel import ChannelFactoryInitialize, ChannelSubscriber
        from unitree_sdk2py.go2.sport.sport_client import SportClient
        from unitree_sdk2py.idl.unitree_go.msg.dds_ import SportModeState_

        ChannelFactoryInitialize(int(self.cfg['domain_id']), self.cfg['network_interface'])
        self.subscriber = ChannelSubscriber(self.cfg['state_topic'], SportModeState_)
        self.subscriber.Init(self.on_state, 10)
        client = SportClient()
        client.SetTimeout(float(self.cfg['request_timeout']))
        client.Init()
        self.client = client

    def start_up(self) -> bool:
        """BalanceStand, then wait for a ready mode on the state topic. False: closed or failed."""
        cfg = self.cfg
        deadline = time.monotonic() + float(cfg['ready_timeout'])
        bs_code, bs_last = (0 if not cfg['balance_stand'] else None), -math.inf
        while True:
            if any(words[0] == 'close' for words in self.receive(0.02)) or self.terminate:
                return False
            self.publish()
            now = time.monotonic()
            with self._lock:
                mode, count = self.s['robot_mode'], self.s['state_count']
            if bs_code != 0 and now - bs_last >= BALANCE_STAND_RETRY_S:
                bs_code, bs_last = int(self.client.BalanceStand()), now
                self.s['balance_stand_code'] = bs_code
                self.s['balance_stand_calls'] += 1
                continue
            if bs_code == 0 and mode in self.ready_modes:
                self.s['phase'] = PHASE_READY
                self.publish(force=True)
                return True
            if now >= deadline:
                topic, domain, nic = cfg['state_topic'], cfg['domain_id'], cfg['network_interface']
                if count == 0:
                    why = (f'no {topic} message received on DDS domain {domain}, interface '
                           f'{nic!r}: is the robot on this network and the interface right?')
                else:
                    why = (f'robot reports mode {mode} ({mode_name(mode)}), not one of '
                           f'{sorted(self.ready_modes)}, after {count} state messages')
                if bs_code not in (0, None):
                    why += (f'; BalanceStand returned {bs_code} (3102/3104: the sport service '
                            f'did not answer)')
                self.fail(f'robot not ready after {cfg["ready_timeout"]} s: {why}')
                return False

    def run_loop(self) -> None:
        """Re-send the latest command at resend_hz until closed; watchdog in between."""
        period = 1.0 / float(self.cfg['resend_hz'])
        watchdog = float(self.cfg['watchdog_timeout'])
        next_move = time.monotonic() + period
        while True:
            fresh = False
            for words in self.receive(next_move - time.monotonic() if self.moving else 0.05):
                if words[0] == 'cmd' and len(words) == 4:
                    try:
                        values = [float(x) for x in words[1:]]
                    except ValueError:
                        continue
                    self.command = self.clamp(values)
                    self.moving = fresh = True
                    self.last_cmd = time.monotonic()
                    self.s['commands'] += 1
                elif words[0] == 'stop':
                    fresh = False
                    self.stop_move('requested')
                elif words[0] == 'close':
                    self.stop_move('close')
                    return
            if self.terminate:
                self.stop_move('terminated')
                return
            now = time.monotonic()
            if self.moving and now - self.last_cmd > watchdog:
                self.stop_move('watchdog')
            elif self.moving and (fresh or now >= next_move):
                self.s.update(moving=True, command=list(self.command))
                self.move()
                # A fresh command goes out at once and restarts the schedule; after a stall
                # (e.g. a send blocked for the request timeout) it restarts instead of bursting.
                next_move = now + period if fresh else next_move + period
                if next_move <= time.monotonic():
                    next_move = time.monotonic() + period
            self.publish()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description='unitree backend worker (started by UnitreeBackend)')
    p.add_argument('--config', required=True, help='JSON object: UnitreeBackendConfig + v_max')
    p.add_argument('--status-fd', type=int, required=True, help='inherited pipe for status lines')
    args = p.parse_args(argv)
    cfg = json.loads(args.config)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.set_blocking(args.status_fd, False)
    worker = Worker(cfg, sys.stdin.fileno(), args.status_fd)

    def on_term(*_: object) -> None:
        worker.terminate = True
    signal.signal(signal.SIGTERM, on_term)

    code = 0
    try:
        worker.publish(force=True)
        try:
            worker.connect()
        except Exception as exc:  # the SDK raises a bare Exception on a bad domain/interface
            worker.fail(f'cannot open DDS domain {cfg["domain_id"]} on interface '
                        f'{cfg["network_interface"]!r}: {exc}')
            code = 2
        else:
            if cfg.get('replaces_worker'):
                # the worker before this one died: the robot may still be moving on its last
                # Move (until its own ~1 s timeout) - stop it before anything else
                worker.stop_move('replacing a dead worker')
            if worker.start_up():
                worker.run_loop()
            elif worker.s['phase'] != PHASE_FAILED:
                worker.stop_move('close during start-up')
            else:
                code = 2
    except ParentGone:
        if worker.client is not None:
            worker.stop_move('parent gone')
    except Exception as exc:  # report, then make sure the robot is not left walking
        worker.fail(f'sport worker crashed: {exc!r}')
        code = 1
        if worker.client is not None:
            try:
                worker.stop_move('crash')
            except Exception:
                pass
    finally:
        if worker.s['phase'] != PHASE_FAILED:
            worker.s['phase'] = PHASE_CLOSED
        try:
            worker.publish(force=True)
        except ParentGone:
            pass
    sys.stdout.flush()
    return code


if __name__ == '__main__':
    sys.exit(main())
