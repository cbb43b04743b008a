"""The inbox moves messages from its own thread to the executor: at once from trusted publishers,
in batches from anyone else (real rclpy nodes over DDS, in one process)."""
from __future__ import annotations

import time

import pytest

rclpy = pytest.importorskip('rclpy')
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from seqwm_common.inbox import Inbox, publisher_gid  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from conftest import wait_for  # noqa: E402

QOS = QoSProfile(depth=128, reliability=ReliabilityPolicy.BEST_EFFORT)


@pytest.fixture
def ros():
    """An owner node with its executor, and two talkers: 'inbox_stranger' and 'inbox_friend'."""
    context = rclpy.context.Context()
    rclpy.init(context=context)
    nodes = [rclpy.create_node(n, context=context)
             for n in ('inbox_owner', 'inbox_stranger', 'inbox_friend')]
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(nodes[0])
    yield (*nodes, executor)
    executor.shutdown()
    for n in nodes:
        n.destroy_node()
    rclpy.shutdown(context=context)


def spin(executor, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.01)


def gid_of(owner, topic: str, node_name: str) -> bytes:
    """The GID the graph gives for `node_name`'s publisher (what message info carries)."""
    found: list[bytes] = []

    def look() -> bool:
        found[:] = [bytes(e.endpoint_gid) for e in owner.get_publishers_info_by_topic(topic)
                    if e.node_name == node_name]
        return bool(found)
    wait_for(look, 10.0, what=f'{node_name} in the graph')
    return found[0]


def test_strangers_wait_for_the_batch_and_a_trusted_message_wakes_the_owner_at_once(ros):
    owner, stranger_node, friend_node, executor = ros
    wakes: list[int] = []
    received: list[tuple[bytes, dict]] = []

    def on_ready() -> None:
        got = inbox.take('t')
        wakes.append(len(got))
        received.extend(got)
    inbox = Inbox(owner, on_ready, batch_s=60.0)        # strangers: far longer than this test
    topic = inbox.open('t', String, 'chatter', QOS)
    inbox.start()
    stranger = stranger_node.create_publisher(String, topic, QOS)
    friend = friend_node.create_publisher(String, topic, QOS)
    try:
        wait_for(lambda: stranger.get_subscription_count() >= 1
                 and friend.get_subscription_count() >= 1, 10.0, what='discovery')
        for k in range(200):
            stranger.publish(String(data=f's{k}'))
        spin(executor, 0.5)
        assert wakes == []                     # 200 strangers' messages: not one wake-up

        friend_gid = gid_of(owner, topic, 'inbox_friend')
        inbox.trusted = frozenset({friend_gid})
        friend.publish(String(data='friend'))
        wait_for(lambda: (executor.spin_once(timeout_sec=0.01), bool(wakes))[1], 10.0,
                 what='the trusted message to wake the owner')
        assert len(wakes) == 1                 # one wake-up carried the whole queue, in order
        gids = [publisher_gid(info) for _, info in received]
        assert gids.count(friend_gid) == 1 and gids[-1] == friend_gid
        assert len(received) >= QOS.depth      # a burst: at least what the DDS history keeps
    finally:
        inbox.close()


def counting_inbox(owner, stranger_node, batch_s: float):
    """An inbox whose owner counts its wake-ups (messages taken per wake-up), and a stranger's
    publisher on its topic, discovered."""
    wakes: list[int] = []
    inbox = Inbox(owner, lambda: wakes.append(len(inbox.take('t'))), batch_s=batch_s)
    topic = inbox.open('t', String, 'chatter', QOS)
    inbox.start()
    stranger = stranger_node.create_publisher(String, topic, QOS)
    wait_for(lambda: stranger.get_subscription_count() >= 1, 10.0, what='discovery')
    return inbox, wakes, stranger


def test_a_flood_from_a_stranger_costs_one_wake_up_per_batch_not_per_message(ros):
    owner, stranger_node, _, executor = ros
    inbox, wakes, stranger = counting_inbox(owner, stranger_node, 0.25)
    try:
        start, sent = time.monotonic(), 0
        while time.monotonic() - start < 1.5:          # about 1 kHz for 1.5 s
            stranger.publish(String(data='x'))
            sent += 1
            executor.spin_once(timeout_sec=0.001)
        spin(executor, 0.6)
        assert sum(wakes) >= 0.9 * sent
        assert len(wakes) <= 1.5 / 0.25 + 3            # batches, not one per message
    finally:
        inbox.close()


def test_close_stops_the_thread_and_the_owner_is_not_woken_again(ros):
    owner, stranger_node, _, executor = ros
    inbox, wakes, stranger = counting_inbox(owner, stranger_node, 0.05)
    inbox.close()
    assert not inbox._thread.is_alive()
    stranger.publish(String(data='late'))
    spin(executor, 0.3)
    assert wakes == []
