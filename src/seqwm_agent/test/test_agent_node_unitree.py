"""The agent node driving a Go2 through the `unitree` backend: agent process (rclpy, Fast DDS)
-> its SportClient worker process (Cyclone DDS on loopback) -> the stand-in sport service process,
which records every request the robot would have received.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from conftest import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_harness import START_TIMEOUT, Listener, MocapFeed, alive, start_agent  # noqa: E402
from agent_team import write_team  # noqa: E402

DOMAIN = int(os.environ['ROS_DOMAIN_ID']) + 100     # the SDK's own domain, beside the ROS one
LIMITS = {'limits.vx': 0.4, 'limits.vy': 0.2, 'limits.wz': 0.3}


def records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split('\n')[:-1] if line]


def test_agent_commands_the_robot_within_limits_and_stops_it_on_shutdown(
        spawn, tmp_path, rclpy_context):
    record = tmp_path / 'sport.jsonl'
    standin = spawn.start(['seqwm_agent.backends.sport_standin', '--domain', str(DOMAIN),
                           '--interface', 'lo', '--record', str(record),
                           '--startup-delay', '1.0'], 'sport_standin', python_module=True)
    wait_for(lambda: alive(spawn, standin) and any(r.get('event') == 'serving'
                                                    for r in records(record)),
             30.0, what='stand-in sport service serving')
    mocap = MocapFeed(spawn, tmp_path)
    listener = Listener(rclpy_context, robots=('go2w_1',))
    try:
        agent = start_agent(spawn, tmp_path, 'go2w_1', write_team(tmp_path / 'models'),
                            backend='unitree', **{
                                'unitree.network_interface': 'lo', 'unitree.domain_id': DOMAIN,
                                'unitree.ready_timeout': 20.0, 'unitree.request_timeout': 0.2},
                            **LIMITS)

        def moves() -> list[dict]:
            return [r for r in records(record) if r.get('api') == 'Move']

        wait_for(lambda: alive(spawn, agent, standin, mocap.proc) and len(moves()) >= 100
                 and len(listener.get('status', 'go2w_1')) >= 5,
                 START_TIMEOUT, what='Moves from the agent at the robot')
        ms = moves()
        # nothing reached the robot before it was ready: every Move was accepted
        assert all(r['accepted'] for r in ms), [r for r in ms if not r['accepted']][:3]
        for r in ms:
            p = r['params']
            assert abs(p['x']) <= 0.4 + 1e-6 and abs(p['y']) <= 0.2 + 1e-6 and abs(p['z']) <= 0.3 + 1e-6
        # the model wants vx = 0.6 m/s: the node's limit, not the model, decides what is sent
        assert max(r['params']['x'] for r in ms) > 0.39
        statuses = [m for _, m in listener.get('status', 'go2w_1')]
        assert statuses and statuses[-1].mode == 0, statuses[-1].reason
        assert statuses[-1].command.linear.x <= 0.4 + 1e-9

        t_stop = time.monotonic()
        assert spawn.stop(agent, timeout=15.0) == 0, spawn.log_text(agent)
        wait_for(lambda: any(r.get('api') == 'StopMove' and r['mono'] >= t_stop
                             for r in records(record)), 10.0, what='StopMove after shutdown')
        stop_at = min(r['mono'] for r in records(record)
                      if r.get('api') == 'StopMove' and r['mono'] >= t_stop)
        time.sleep(0.5)
        assert not [r for r in moves() if r['mono'] > stop_at], 'Move after the final StopMove'
        assert 'stopped and closed the unitree backend' in spawn.log_text(agent)
    finally:
        listener.close()
