"""The `topic` backend: Twists published through the agent's node arrive in another process."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from conftest import wait_for
from seqwm_agent.backends import make_backend
from seqwm_agent.backends.base import BackendError
from seqwm_agent.core.command import CommandLimits

LISTENER = '''
import json, sys
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from geometry_msgs.msg import Twist

rclpy.init()
node = Node('twist_listener')
out = open(sys.argv[1], 'a')

def on_twist(m):
    out.write(json.dumps([m.linear.x, m.linear.y, m.linear.z,
                          m.angular.x, m.angular.y, m.angular.z]) + '\\n')
    out.flush()

node.create_subscription(Twist, sys.argv[2], on_twist, 10)
try:
    rclpy.spin(node)
except (KeyboardInterrupt, ExternalShutdownException):
    pass
'''


def received(path: Path) -> list[list[float]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split('\n')[:-1] if line]


def test_twist_reaches_a_subscriber_in_another_process(spawn, rclpy_context, tmp_path):
    from rclpy.node import Node

    out = tmp_path / 'twists.jsonl'
    listener = spawn.start([sys.executable, '-c', LISTENER, str(out), '/go2w_7/cmd_vel'],
                           'listener')
    node = Node('agent', namespace='go2w_7', context=rclpy_context)
    backend = make_backend('topic', {}, node=node, limits=CommandLimits())
    try:
        with pytest.raises(BackendError, match='not started'):
            backend.send(0.1, 0.0, 0.0)
        backend.start()
        assert backend.ready()
        st = backend.state()
        assert st.detail['topic'] == '/go2w_7/cmd_vel'        # relative name, node's namespace

        def matched() -> bool:
            assert listener.poll() is None, spawn.log_text(listener)
            return backend.state().detail['subscribers'] >= 1
        wait_for(matched, timeout=30.0, what='listener subscription')

        # One at a time: the publisher keeps only the newest command (depth 1).
        expected = []
        for command, sent in (((0.3, -0.2, 0.1), (0.3, -0.2, 0.1)),
                              ((5.0, -9.0, 0.7), (1.0, -0.5, 0.5))):   # clamped to the limits
            backend.send(*command)
            expected.append([sent[0], sent[1], 0.0, 0.0, 0.0, sent[2]])
            wait_for(lambda: len(received(out)) >= len(expected), timeout=10.0, what='Twist')
        backend.stop()
        expected.append([0.0] * 6)
        wait_for(lambda: len(received(out)) >= len(expected), timeout=10.0, what='zero Twist')
        with pytest.raises(ValueError, match='non-finite'):
            backend.send(math.inf, 0.0, 0.0)
        assert received(out) == expected                       # float64 fields: exact

        st = backend.state()
        assert (st.commands_sent, st.stops, st.clamped, st.send_failures) == (3, 1, 1, 0)
        assert st.last_command == (0.0, 0.0, 0.0)
    finally:
        backend.close()
        node.destroy_node()
    assert not backend.ready()
    # close() sent one more zero Twist on the way out.
    wait_for(lambda: len(received(out)) >= 4, timeout=10.0, what='zero Twist on close')
    assert received(out)[-1] == [0.0] * 6


def test_topic_backend_needs_the_agents_node():
    with pytest.raises(ValueError, match='node'):
        make_backend('topic', {})
    with pytest.raises(ValueError, match='unknown backend'):
        make_backend('serial', {})
    with pytest.raises(ValueError, match='queue'):
        make_backend('topic', {'queue': 3}, node=object())
