"""The `unitree` backend end to end: real SportClient in its worker process, real Cyclone DDS on
loopback, and the stand-in sport service (the SDK's own RPC server) in another process that
records every request it receives."""
from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from conftest import wait_for
from seqwm_agent.backends import make_backend
from seqwm_agent.backends.base import BackendStartError
from seqwm_agent.backends.unitree import UnitreeBackend, UnitreeBackendConfig
from seqwm_agent.core.command import CommandLimits

# The SDK gets its own DDS domain next to the test run's ROS domain (no cross-talk with ROS).
DOMAIN = int(os.environ['ROS_DOMAIN_ID']) + 100
LIMITS = CommandLimits()


def backend_config(**overrides) -> UnitreeBackendConfig:
    params = dict(network_interface='lo', domain_id=DOMAIN, resend_hz=50.0,
                  watchdog_timeout=0.5, ready_timeout=8.0, request_timeout=0.2)
    params.update(overrides)
    return UnitreeBackendConfig(**params)


def records(path: Path) -> list[dict]:
    """Complete lines written so far by the stand-in (it flushes one line per request)."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text.split('\n')[:-1] if line]


def calls(path: Path, api: str) -> list[dict]:
    return [r for r in records(path) if r.get('api') == api]


class Standin:
    def __init__(self, spawn, tmp_path: Path, startup_delay: float = 0.3, **extra: str) -> None:
        self.record = tmp_path / 'sport_requests.jsonl'
        args = ['seqwm_agent.backends.sport_standin', '--domain', str(DOMAIN),
                '--interface', 'lo', '--record', str(self.record),
                '--startup-delay', str(startup_delay)]
        for k, v in extra.items():
            args += [f'--{k.replace("_", "-")}', str(v)]
        self.spawn = spawn
        self.proc = spawn.start(args, 'sport_standin', python_module=True)
        wait_for(lambda: any(r.get('event') == 'serving' for r in records(self.record))
                 or self.proc.poll() is not None, timeout=20.0, what='stand-in serving')
        assert self.proc.poll() is None, spawn.log_text(self.proc)

    def calls(self, api: str) -> list[dict]:
        return calls(self.record, api)


@pytest.fixture
def standin(spawn, tmp_path):
    return Standin(spawn, tmp_path)


@pytest.fixture
def backend(standin):
    b = UnitreeBackend(backend_config(), LIMITS)
    try:
        b.start()
        yield b
    finally:
        b.close()


def hold(backend: UnitreeBackend, command: tuple[float, float, float], seconds: float,
         every: float) -> float:
    """Send `command` every `every` s for `seconds` s, like the agent's control tick.

    Returns the monotonic time of the last send."""
    end = time.monotonic() + seconds
    last = time.monotonic()
    while time.monotonic() < end:
        backend.send(*command)
        last = time.monotonic()
        time.sleep(every)
    return last


def settled(standin, api: str, quiet_s: float = 0.3, timeout: float = 5.0) -> int:
    """Wait until the stand-in has handled every `api` request still in flight (its count has
    not changed for `quiet_s`); returns that count. Under load, a request sent before an event
    can be handled after it, so 'after the event' is counted by index, not by clock."""
    end = time.monotonic() + timeout
    count, since = len(standin.calls(api)), time.monotonic()
    while time.monotonic() < end:
        time.sleep(0.05)
        now = len(standin.calls(api))
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return count
    raise AssertionError(f'{api} requests kept arriving for {timeout} s')


def test_start_returns_only_after_robot_reports_balance_stand(spawn, tmp_path):
    standin = Standin(spawn, tmp_path, startup_delay=1.5)
    b = make_backend('unitree', backend_config().to_dict(), limits=LIMITS)
    try:
        b.start()
        returned = time.monotonic()
        reached = [r for r in records(standin.record) if r.get('event') == 'mode' and r['mode'] == 1]
        assert len(standin.calls('BalanceStand')) >= 1
        assert reached and reached[0]['mono'] <= returned
        assert returned - standin.calls('BalanceStand')[0]['mono'] >= 1.5 - 0.05
        st = b.state()
        assert st.ready and st.detail['robot_mode'] == 1 and st.detail['balance_stand_code'] == 0
        b.send(0.2, 0.0, 0.0)
        wait_for(lambda: len(standin.calls('Move')) >= 3, timeout=5.0, what='Moves')
        # Nothing was sent while the robot was still getting up, so nothing was ignored.
        assert all(r['accepted'] for r in standin.calls('Move'))
    finally:
        b.close()


def test_start_fails_with_a_clear_reason_when_no_robot_answers():
    b = UnitreeBackend(backend_config(ready_timeout=1.5), LIMITS)
    t0 = time.monotonic()
    with pytest.raises(BackendStartError) as err:
        b.start()
    message = str(err.value)
    assert 'rt/sportmodestate' in message and f'domain {DOMAIN}' in message and "'lo'" in message
    assert 'BalanceStand returned 3102' in message          # request not deliverable: no server
    assert time.monotonic() - t0 < 15.0
    assert not b.state().ready and b.state().detail['worker_alive'] is False


def test_start_fails_naming_the_mode_when_robot_never_gets_ready(spawn, tmp_path):
    standin = Standin(spawn, tmp_path, startup_delay=30.0)   # still getting up at the deadline
    b = UnitreeBackend(backend_config(ready_timeout=1.5), LIMITS)
    with pytest.raises(BackendStartError, match=r'mode 0 \(idle/default stand\)'):
        b.start()
    assert standin.calls('BalanceStand') and not standin.calls('Move')


def test_latest_command_is_resent_at_about_50_hz(backend, standin):
    # The agent ticks slower than the robot's Move timeout needs; the worker fills the gaps.
    backend.send(0.4, -0.1, 0.2)
    time.sleep(0.3)
    t0 = time.monotonic()
    hold(backend, (0.4, -0.1, 0.2), seconds=1.5, every=0.25)
    t1 = time.monotonic()
    moves = [r for r in standin.calls('Move') if t0 <= r['mono'] <= t1]
    rate = len(moves) / (t1 - t0)
    print(f'measured Move re-send rate: {rate:.1f} Hz over {t1 - t0:.2f} s '
          f'({len(moves)} Moves for {backend.state().detail["commands_from_parent"]} commands)')
    assert 25.0 <= rate <= 75.0
    assert all(r['params'] == {'x': 0.4, 'y': -0.1, 'z': 0.2} and r['accepted'] for r in moves)
    st = backend.state()
    assert st.detail['move_codes'] == {0: st.commands_sent} and st.send_failures == 0
    assert st.detail['robot_velocity'] == pytest.approx((0.4, -0.1, 0.2), abs=1e-6)


def test_commands_never_exceed_limits_even_if_the_parent_check_is_bypassed(backend, standin):
    backend.send(3.0, -2.0, 9.0)                              # clamped by the parent
    wait_for(lambda: len(standin.calls('Move')) >= 2, timeout=5.0, what='Moves')
    backend._write('cmd 5.0 -7.0 nan')                         # raw, past the parent's clamp
    wait_for(lambda: backend.state().detail['worker_clamped'] >= 1, timeout=5.0, what='worker clamp')
    time.sleep(0.1)
    moves = standin.calls('Move')
    for r in moves:
        p = r['params']
        assert abs(p['x']) <= LIMITS.vx and abs(p['y']) <= LIMITS.vy and abs(p['z']) <= LIMITS.wz
        assert all(math.isfinite(p[k]) for k in 'xyz')
    assert {'x': 1.0, 'y': -0.5, 'z': 0.5} in [r['params'] for r in moves]
    assert {'x': 1.0, 'y': -0.5, 'z': 0.0} == moves[-1]['params']
    assert backend.state().clamped == 1
    with pytest.raises(ValueError, match='non-finite'):
        backend.send(math.nan, 0.0, 0.0)


def test_watchdog_stops_robot_when_commands_stop_and_next_command_resumes(backend, standin):
    last_send = hold(backend, (0.3, 0.0, 0.0), seconds=0.5, every=0.1)
    wait_for(lambda: standin.calls('StopMove'), timeout=3.0, what='watchdog StopMove')
    stop = standin.calls('StopMove')[0]
    # Fired after the 0.5 s watchdog (generous upper band for a loaded machine).
    assert 0.45 <= stop['mono'] - last_send <= 1.2
    time.sleep(0.3)
    assert not [r for r in standin.calls('Move') if r['mono'] > stop['mono']]
    st = backend.state()
    assert st.watchdog_stops == 1 and st.detail['last_stop_reason'] == 'watchdog'
    assert st.ready                                           # a watchdog stop is not a failure
    backend.send(0.1, 0.0, 0.0)
    wait_for(lambda: [r for r in standin.calls('Move') if r['mono'] > stop['mono']],
             timeout=3.0, what='Moves after the watchdog stop')


def test_stop_sends_stopmove_at_once_and_moves_cease(backend, standin):
    hold(backend, (0.3, 0.1, 0.0), seconds=0.4, every=0.1)
    t_stop = time.monotonic()
    backend.stop()
    wait_for(lambda: standin.calls('StopMove'), timeout=3.0, what='StopMove')
    assert standin.calls('StopMove')[0]['mono'] - t_stop < 0.5
    # the worker's status reaches the parent with its next heartbeat, after the StopMove
    wait_for(lambda: backend.state().detail['last_stop_reason'] is not None, timeout=3.0,
             what='the stop reported in the status')
    assert backend.state().detail['last_stop_reason'] == 'requested'   # not the watchdog
    time.sleep(0.6)
    stop_t = standin.calls('StopMove')[0]['mono']
    assert not [r for r in standin.calls('Move') if r['mono'] > stop_t]
    st = backend.state()
    assert st.stops == 1 and st.watchdog_stops == 0 and st.last_command == (0.0, 0.0, 0.0)


def test_close_sends_stopmove_and_ends_the_worker(backend, standin):
    hold(backend, (0.5, 0.0, 0.3), seconds=0.4, every=0.1)
    pid = backend.pid
    backend.close()
    assert backend._proc.poll() == 0
    stops = standin.calls('StopMove')
    assert len(stops) == 1
    assert not [r for r in standin.calls('Move') if r['mono'] > stops[0]['mono']]
    assert not os.path.exists(f'/proc/{pid}') or 'zombie' in Path(f'/proc/{pid}/status').read_text()
    st = backend.state()
    assert not st.ready and st.detail['last_stop_reason'] == 'close'
    backend.close()                                           # idempotent


PARENT = '''
import sys, time
from seqwm_agent.backends.unitree import UnitreeBackend, UnitreeBackendConfig
b = UnitreeBackend(UnitreeBackendConfig(network_interface='lo', domain_id={domain},
                                        watchdog_timeout=2.0, request_timeout=0.2))
b.start()
print('worker pid', b.pid, flush=True)
while True:
    b.send(0.2, 0.0, 0.1)
    time.sleep(0.1)
'''


def test_worker_stops_robot_and_exits_when_parent_process_dies(spawn, standin):
    # Watchdog 2 s here, so the stop below can only come from noticing the dead parent.
    parent = spawn.start([sys.executable, '-c', PARENT.format(domain=DOMAIN)], 'agent')
    wait_for(lambda: len(standin.calls('Move')) >= 5 or parent.poll() is not None,
             timeout=30.0, what='Moves from the parent process')
    assert parent.poll() is None, spawn.log_text(parent)
    pid = int(spawn.log_text(parent).split('worker pid')[1].split()[0])
    os.kill(parent.pid, signal.SIGKILL)                       # the parent only, not its group
    killed = time.monotonic()
    wait_for(lambda: standin.calls('StopMove'), timeout=5.0, what='StopMove after parent death')
    assert standin.calls('StopMove')[0]['mono'] - killed < 1.5    # watchdog would take 2 s

    def worker_gone() -> bool:
        try:
            return 'zombie' in Path(f'/proc/{pid}/status').read_text()
        except FileNotFoundError:
            return True
    wait_for(worker_gone, timeout=5.0, what='worker exit')


def test_move_failures_are_counted_when_the_sport_service_goes_away(spawn, backend, standin):
    hold(backend, (0.2, 0.0, 0.0), seconds=0.3, every=0.1)
    assert backend.state().send_failures == 0
    spawn.stop(standin.proc)                                  # service leaves the DDS domain
    hold(backend, (0.2, 0.0, 0.0), seconds=1.5, every=0.1)
    st = backend.state()
    assert st.detail['move_codes'].get(3102, 0) >= 2, st.detail['move_codes']
    assert st.send_failures >= 2 and st.detail['last_move_code'] == 3102
    assert st.detail['worker_alive']                          # failures are reported, not fatal


@pytest.mark.parametrize('params, name', [
    ({'domain_id': 300}, 'domain_id'), ({'network_interface': ''}, 'network_interface'),
    ({'resend_hz': 0.0}, 'resend_hz'), ({'watchdog_timeout': 0.01}, 'watchdog_timeout'),
    ({'ready_modes': []}, 'ready_modes'), ({'balance_stand': 'yes'}, 'balance_stand'),
    ({'resend_hz': float('nan')}, 'resend_hz'), ({'nic': 'eth0'}, 'nic')])
def test_unitree_parameters_are_validated_naming_the_parameter(params, name):
    with pytest.raises(ValueError, match=name):
        UnitreeBackendConfig.from_dict(params)


def test_every_backend_parameter_has_a_default_and_a_description():
    from seqwm_agent.backends.base import describe_parameters
    from seqwm_agent.backends.topic import TopicBackendConfig

    for cls in (UnitreeBackendConfig, TopicBackendConfig, CommandLimits):
        described = describe_parameters(cls)
        assert described and all(desc for _, desc in described.values()), cls
        assert cls.from_dict({k: d for k, (d, _) in described.items()}) == cls()
    assert describe_parameters(UnitreeBackendConfig)['domain_id'][0] == 0


STANDIN_CLIENT = '''
import json, sys, time
from unitree_sdk2py.core.channel import ChannelFactoryInitialize, ChannelSubscriber
from unitree_sdk2py.go2.sport.sport_client import SportClient
from unitree_sdk2py.idl.unitree_go.msg.dds_ import SportModeState_

ChannelFactoryInitialize({domain}, 'lo')
seen = []
sub = ChannelSubscriber('rt/sportmodestate', SportModeState_)
sub.Init(lambda m: seen.append((m.mode, round(m.velocity[0], 3), round(m.yaw_speed, 3))), 10)
client = SportClient()
client.SetTimeout(1.0)
client.Init()
def modes_since(i):
    return sorted(set(s[0] for s in seen[i:]))
out = {{}}
out['move_before_stand'] = client.Move(0.3, 0.0, 0.0)
out['balance_stand'] = client.BalanceStand()
time.sleep(0.2)
out['move_while_getting_up'] = client.Move(0.3, 0.0, 0.0)
time.sleep(1.2)
i = len(seen)
out['move_when_ready'] = client.Move(0.3, 0.0, 0.2)
time.sleep(0.3)
out['state_while_moving'] = seen[-1]
time.sleep(1.3)                     # longer than the robot's own Move timeout
out['state_after_timeout'] = seen[-1]
out['stop_move'] = client.StopMove()
out['unimplemented'] = client.Hello()
print('RESULT ' + json.dumps(out), flush=True)
'''


def test_standin_behaves_like_the_robot_for_the_real_sport_client(spawn, tmp_path):
    standin = Standin(spawn, tmp_path, startup_delay=1.0)
    client = spawn.start([sys.executable, '-c', STANDIN_CLIENT.format(domain=DOMAIN)], 'client')
    wait_for(lambda: 'RESULT' in spawn.log_text(client) or client.poll() is not None,
             timeout=30.0, what='client result')
    out = json.loads(spawn.log_text(client).split('RESULT ')[1].splitlines()[0])
    # Move is fire-and-forget (0 = written); request APIs are answered with 0 like the robot's.
    assert out['move_before_stand'] == out['move_while_getting_up'] == out['move_when_ready'] == 0
    assert out['balance_stand'] == out['stop_move'] == 0
    assert out['unimplemented'] == 3203                       # RPC_ERR_SERVER_API_NOT_IMPL
    assert out['state_while_moving'] == [3, 0.3, 0.2]         # locomotion at the Move velocity
    assert out['state_after_timeout'] == [1, 0.0, 0.0]        # stopped by itself, balance stand
    moves = standin.calls('Move')
    assert [m['accepted'] for m in moves] == [False, False, True]
    assert 'not in balance stand' in moves[1]['reason']
    events = [r.get('event') for r in records(standin.record)]
    assert 'move_timeout' in events and events[-1] != 'exit'
    stops = standin.calls('StopMove')
    assert len(stops) == 1 and stops[0]['t'] > moves[-1]['t']


def test_a_killed_worker_is_replaced_and_the_robot_stopped_before_it_moves_again(backend, standin):
    """Issue 15 hole 5: after SIGKILL of the worker the backend raised forever, the robot coasted
    on its last Move and no StopMove could be sent. Now: not ready with the reason, a new worker
    after the back-off, StopMove as soon as it is up, ready again, commands flow."""
    import os
    import signal

    from seqwm_agent.backends.base import BackendError
    hold(backend, (0.3, 0.0, 0.1), 0.4, 0.1)
    moves_before = settled(standin, 'Move')   # the old worker's Moves, all handled
    old_pid = backend.pid
    os.kill(old_pid, signal.SIGKILL)
    t_kill = time.monotonic()
    wait_for(lambda: not backend.state().ready, timeout=5.0, what='the backend to notice')
    st = backend.state()
    assert 'died' in st.error or 'replaced' in st.error, st.error
    with pytest.raises(BackendError):
        backend.send(0.3, 0.0, 0.1)
    wait_for(lambda: backend.state().ready, timeout=30.0, what='a replacement worker')
    assert backend.restarts == 1 and backend.pid != old_pid
    assert backend.state().detail['worker_restarts'] == 1 and backend.state().error == ''
    stops = [r for r in standin.calls('StopMove') if r['mono'] > t_kill]
    assert stops, 'the replacement sent no StopMove'
    assert not [r for r in standin.calls('Move')[moves_before:] if r['mono'] < stops[0]['mono']]
    hold(backend, (0.2, 0.0, 0.0), 0.3, 0.1)
    wait_for(lambda: [r for r in standin.calls('Move') if r['mono'] > stops[0]['mono']],
             timeout=5.0, what='Moves from the replacement')
