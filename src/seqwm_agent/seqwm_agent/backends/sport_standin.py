"""A stand-in Go2 sport service: the robot's side of `SportClient`, for tests on one machine.

The legs of a Go2-W cannot exist on a CI machine, so this process plays the robot on the wire,
using only unitree_sdk2py's own server side (`rpc.server.Server`, the sport service name, API
version and API ids from `go2.sport.sport_api`) and its own `SportModeState_` type. A real
`SportClient` cannot tell it from the robot's sport service, which is what lets the `unitree`
backend be tested end to end over Cyclone DDS on loopback.

What it models (only what the command path depends on):
  * modes as the Go2 reports them in `SportModeState_.mode`: 0 idle/default stand,
    1 balance stand, 3 locomotion, 5 lie down, 7 damping, 8 recovery stand;
  * `BalanceStand` (and `RecoveryStand`/`StandUp`) take `--startup-delay` seconds to complete,
    during which the robot is not in balance stand and ignores `Move`, like the real robot;
  * `Move(vx, vy, vyaw)` sets the velocity and mode 3; the robot stops by itself
    `--move-timeout` s (default 1 s) after the last accepted Move; `StopMove` stops it at once;
  * `rt/sportmodestate` is published at `--state-hz` with mode, velocity = last Move (body
    frame), yaw_speed, and a position/yaw integrated from them.

Every request (accepted or not) is written to `--record` as one JSON line, flushed at once, so
a test in another process can read what the robot saw:
    {"t": wall time, "mono": time.monotonic(), "api": "Move", "api_id": 1008,
     "params": {"x": .., "y": .., "z": ..}, "accepted": true, "mode": 3}
plus {"event": "serving", ...} when the service is up and {"event": "exit", ...} at shutdown.

    sport_standin --domain 101 --interface lo --record /tmp/sport.jsonl --startup-delay 1.0
"""
from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
import time
from typing import Any, Callable, TextIO

from unitree_sdk2py.core.channel import (ChannelFactory, ChannelFactoryInitialize,
                                         ChannelPublisher)
from unitree_sdk2py.go2.sport import sport_api as api
from unitree_sdk2py.idl.default import unitree_go_msg_dds__SportModeState_
from unitree_sdk2py.idl.unitree_go.msg.dds_ import SportModeState_
from unitree_sdk2py.rpc.internal import RPC_ERR_SERVER_API_PARAMETER
from unitree_sdk2py.rpc.server import Server

STATE_TOPIC = 'rt/sportmodestate'

MODE_IDLE = 0
MODE_BALANCE_STAND = 1
MODE_LOCOMOTION = 3
MODE_LIE_DOWN = 5
MODE_DAMPING = 7
MODE_RECOVERY_STAND = 8

API_NAMES = {
    api.SPORT_API_ID_DAMP: 'Damp',
    api.SPORT_API_ID_BALANCESTAND: 'BalanceStand',
    api.SPORT_API_ID_STOPMOVE: 'StopMove',
    api.SPORT_API_ID_STANDUP: 'StandUp',
    api.SPORT_API_ID_STANDDOWN: 'StandDown',
    api.SPORT_API_ID_RECOVERYSTAND: 'RecoveryStand',
    api.SPORT_API_ID_MOVE: 'Move',
}


class Recorder:
    """Append-only JSONL log, one flushed line per event (readable while being written)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, **record: Any) -> None:
        record.setdefault('t', time.time())
        record.setdefault('mono', time.monotonic())
        line = json.dumps(record, separators=(',', ':'))
        with self._lock:
            self._stream.write(line + '\n')
            self._stream.flush()


class SportStandin(Server):
    """The Go2 `sport` service, served with the SDK's own RPC server."""

    def __init__(self, recorder: Recorder, startup_delay: float, move_timeout: float,
                 initial_mode: int = MODE_IDLE) -> None:
        super().__init__(api.SPORT_SERVICE_NAME)
        self.recorder = recorder
        self.startup_delay = startup_delay
        self.move_timeout = move_timeout
        self._lock = threading.Lock()
        self.mode = initial_mode
        self._target_mode: int | None = None   # mode reached when the transition completes
        self._transition_done = 0.0           # monotonic time it completes
        self.velocity = [0.0, 0.0, 0.0]        # vx, vy, vyaw of the last accepted Move
        self._last_move = 0.0

    def Init(self) -> None:  # noqa: N802 (the SDK's naming)
        self._SetApiVersion(api.SPORT_API_VERSION)
        for api_id in API_NAMES:
            self._RegistHandler(api_id, self._handler(api_id), False)

    def _handler(self, api_id: int) -> Callable[[str], tuple[int, str]]:
        def handle(parameter: str) -> tuple[int, str]:
            return self._handle(api_id, parameter)
        return handle

    def _handle(self, api_id: int, parameter: str) -> tuple[int, str]:
        name = API_NAMES[api_id]
        try:
            params = json.loads(parameter) if parameter else {}
        except json.JSONDecodeError:
            self.recorder.write(api=name, api_id=api_id, raw=parameter, accepted=False,
                                reason='bad json', mode=self.mode)
            return RPC_ERR_SERVER_API_PARAMETER, ''
        now = time.monotonic()
        with self._lock:
            self._advance(now)
            accepted, reason = True, ''
            if name == 'Move':
                vel = [params.get(k) for k in ('x', 'y', 'z')]
                if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in vel):
                    accepted, reason = False, 'bad velocity'
                elif self.mode not in (MODE_BALANCE_STAND, MODE_LOCOMOTION):
                    accepted, reason = False, f'not in balance stand (mode {self.mode})'
                else:
                    self.velocity = [float(v) for v in vel]
                    self._last_move = now
                    self.mode = MODE_LOCOMOTION
            elif name == 'StopMove':
                self.velocity = [0.0, 0.0, 0.0]
                if self.mode == MODE_LOCOMOTION:
                    self.mode = MODE_BALANCE_STAND
            elif name in ('BalanceStand', 'StandUp', 'RecoveryStand'):
                if self.mode in (MODE_BALANCE_STAND, MODE_LOCOMOTION):
                    self.velocity = [0.0, 0.0, 0.0]
                    self.mode = MODE_BALANCE_STAND
                else:
                    # Getting up takes time; until then Move is ignored.
                    self.mode = MODE_RECOVERY_STAND if name == 'RecoveryStand' else MODE_IDLE
                    self._begin(MODE_BALANCE_STAND, now)
            elif name == 'StandDown':
                self.velocity = [0.0, 0.0, 0.0]
                self.mode, self._target_mode = MODE_LIE_DOWN, None
            elif name == 'Damp':
                self.velocity = [0.0, 0.0, 0.0]
                self.mode, self._target_mode = MODE_DAMPING, None
            mode = self.mode
        record: dict[str, Any] = dict(api=name, api_id=api_id, params=params,
                                      accepted=accepted, mode=mode)
        if reason:
            record['reason'] = reason
        self.recorder.write(**record)
        # Move is sent no-reply, so its code never reaches the client; others get 0 like the robot.
        return 0, ''

    def _begin(self, target: int, now: float) -> None:
        if self._target_mode != target:
            self._target_mode = target
            self._transition_done = now + self.startup_delay

    def _advance(self, now: float) -> None:
        """Complete a pending transition and apply the robot's own Move timeout (lock held)."""
        if self._target_mode is not None and now >= self._transition_done:
            self.mode, self._target_mode = self._target_mode, None
            self.recorder.write(event='mode', mode=self.mode)
        if self.mode == MODE_LOCOMOTION and now - self._last_move > self.move_timeout:
            self.velocity = [0.0, 0.0, 0.0]
            self.mode = MODE_BALANCE_STAND
            self.recorder.write(event='move_timeout', mode=self.mode)

    def snapshot(self) -> tuple[int, list[float]]:
        with self._lock:
            self._advance(time.monotonic())
            return self.mode, list(self.velocity)


def publish_state(service: SportStandin, state_hz: float, stop: threading.Event) -> None:
    """Publish `SportModeState_` on rt/sportmodestate until `stop` is set."""
    pub = ChannelPublisher(STATE_TOPIC, SportModeState_)
    pub.Init()
    msg = unitree_go_msg_dds__SportModeState_()
    msg.body_height = 0.32
    period = 1.0 / state_hz
    x = y = yaw = 0.0
    last = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        dt, last = now - last, now
        mode, (vx, vy, wz) = service.snapshot()
        yaw += wz * dt
        x += (vx * math.cos(yaw) - vy * math.sin(yaw)) * dt
        y += (vx * math.sin(yaw) + vy * math.cos(yaw)) * dt
        wall = time.time()
        msg.stamp.sec, msg.stamp.nanosec = int(wall), int((wall % 1.0) * 1e9)
        msg.mode = mode
        msg.gait_type = 1 if mode == MODE_LOCOMOTION else 0
        msg.position = [x, y, 0.0]
        msg.velocity = [vx, vy, 0.0]
        msg.yaw_speed = wz
        msg.imu_state.rpy = [0.0, 0.0, yaw]
        msg.imu_state.quaternion = [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]
        pub.Write(msg)
        stop.wait(max(0.0, period - (time.monotonic() - now)))


def leave_domain() -> None:
    """Delete our DDS participant so clients see the service go away now (as when the robot's
    sport service is switched off), not only when its lease expires (about 10 s)."""
    participant = getattr(ChannelFactory, '_ChannelFactory__participant', None)  # SDK singleton
    if participant is not None:
        participant.__del__()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--domain', type=int, required=True, help='DDS domain id (robot: 0)')
    p.add_argument('--interface', default='lo', help="network interface (default 'lo')")
    p.add_argument('--record', required=True, help='JSONL file of every request (appended)')
    p.add_argument('--startup-delay', type=float, default=1.0,
                   help='seconds from BalanceStand until balance stand is reached (Move ignored)')
    p.add_argument('--move-timeout', type=float, default=1.0,
                   help='the robot stops this long after the last Move')
    p.add_argument('--state-hz', type=float, default=50.0, help='rt/sportmodestate rate')
    p.add_argument('--initial-mode', type=int, default=MODE_IDLE,
                   help='mode at start (0 idle/default stand, 1 balance stand, 5 lie down)')
    args = p.parse_args(argv)
    for name in ('startup_delay', 'move_timeout'):
        if not (getattr(args, name) >= 0 and math.isfinite(getattr(args, name))):
            p.error(f'--{name.replace("_", "-")} must be >= 0')
    if not (args.state_hz > 0 and math.isfinite(args.state_hz)):
        p.error('--state-hz must be > 0')
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    with open(args.record, 'a', encoding='utf-8') as stream:
        recorder = Recorder(stream)
        ChannelFactoryInitialize(args.domain, args.interface)
        service = SportStandin(recorder, args.startup_delay, args.move_timeout,
                               args.initial_mode)
        service.Init()
        service.Start(False)
        publisher = threading.Thread(target=publish_state, args=(service, args.state_hz, stop),
                                     name='sportmodestate', daemon=True)
        publisher.start()
        recorder.write(event='serving', domain=args.domain, interface=args.interface,
                       startup_delay=args.startup_delay, mode=service.mode)
        print(f'sport stand-in serving on domain {args.domain}, interface {args.interface}',
              flush=True)
        while not stop.is_set():
            stop.wait(0.2)
        publisher.join(1.0)
        leave_domain()
        recorder.write(event='exit', mode=service.mode)
    sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
