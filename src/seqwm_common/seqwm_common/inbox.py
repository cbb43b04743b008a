"""Subscriptions read by one small thread instead of the executor, so a flood costs the flooder.

A message taken by the rclpy executor costs a full executor iteration (the wait set of every
timer, service and subscription of the node, rebuilt in Python): about 0.3 ms, a third of a core
at 1 kHz, which is what a stranger flooding a topic on the lab network would take from a robot's
planner (measured: bench/strangers.py). An `Inbox` waits on just its subscriptions in its own
thread (the wait itself in C, without the GIL), takes every queued message raw with its rmw
message info, and wakes the executor through a guard condition:

* at once when a message comes from a publisher in `trusted` (the agent sets the GIDs whose
  node is the team's bridge or its predecessor's agent), so real inputs are as prompt as before;
* otherwise at most every `batch_s`: messages from anyone else wait in the queue and are handled
  together, in one callback (the agent refuses them there; the demo recorder stores them).

The owner decides everything; the inbox only moves bytes. (A DDS content filter on the intent's
tick would drop stale intents earlier still, but updating a filter's parameters while messages
arrive crashed Fast DDS here, in the reader and in the writer: Fast-DDS issue 4878.)
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable

from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.type_support import check_is_valid_msg_type

Message = tuple[bytes, dict]        # serialised message, rmw message info


class Inbox:
    """Subscriptions taken off the executor: see the module docstring.

    `open` one per topic, `start` the thread, `take(key)` the queued messages from the executor's
    callback (`on_ready`, called through a guard condition of `node`), `close` before the node
    is destroyed. Messages beyond `capacity` per topic push the oldest out (`overflowed`)."""

    def __init__(self, node: Any, on_ready: Callable[[], None], batch_s: float = 0.02,
                 capacity: int = 1024) -> None:
        self._node = node
        self._subs: dict[str, tuple[Any, type]] = {}
        self._queues: dict[str, deque[Message]] = {}
        self._capacity = capacity
        self._lock = threading.Lock()
        self.trusted: frozenset[bytes] = frozenset()     # set by the node (reassigned, not mutated)
        self.batch_s = float(batch_s)
        self.overflowed = 0          # messages dropped because the executor fell this far behind
        self._wake = node.create_guard_condition(on_ready)
        with node.context.handle:
            self._stop_gc = _rclpy.GuardCondition(node.context.handle)
        self._running = False
        self._thread: threading.Thread | None = None

    def open(self, key: str, msg_type: type, topic: str, qos: Any) -> str:
        """Subscribe to `topic` (relative names and remappings resolve as for the node's own
        subscriptions); returns the resolved topic name."""
        check_is_valid_msg_type(msg_type)        # imports the type support
        with self._node.handle:
            handle = _rclpy.Subscription(self._node.handle, msg_type, topic,
                                         qos.get_c_qos_profile(), None)
        self._subs[key] = (handle, msg_type)
        self._queues[key] = deque(maxlen=self._capacity)
        return handle.get_topic_name()

    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self._run, name='agent-inbox', daemon=True)
        self._thread.start()

    def take(self, key: str) -> list[Message]:
        """Every message of `key` queued since the last call, oldest first."""
        q = self._queues[key]
        with self._lock:
            out = list(q)
            q.clear()
        return out

    def close(self) -> None:
        """Stop the thread and destroy the subscriptions (safe to call more than once)."""
        if self._thread is not None and self._running:
            self._running = False
            self._stop_gc.trigger_guard_condition()
            self._thread.join(2.0)
        for handle, _ in self._subs.values():
            handle.destroy_when_not_in_use()
        self._subs.clear()

    # ---- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # noqa: BLE001 - the context shutting down under the wait
            if self._running and self._node.context.ok():
                self._node.get_logger().error(f'inbox thread stopped: {type(exc).__name__}: '
                                              f'{exc}; no further input is read')
                self._running = False
                self._wake.trigger()     # the watchdog stops the robot: no frames arrive

    def _loop(self) -> None:
        subs = list(self._subs.items())
        wait_set = _rclpy.WaitSet(len(subs), 1, 0, 0, 0, 0, self._node.context.handle)
        pending_since: float | None = None     # untrusted messages queued, executor not woken
        while self._running:
            timeout = -1 if pending_since is None else max(
                int((pending_since + self.batch_s - time.monotonic()) * 1e9), 0)
            wait_set.clear_entities()
            for _, (handle, _) in subs:
                wait_set.add_subscription(handle)
            wait_set.add_guard_condition(self._stop_gc)
            wait_set.wait(timeout)
            if not self._running:
                break
            urgent = False
            for key, (handle, msg_type) in subs:
                taken = []
                with handle:
                    while (got := handle.take_message(msg_type, True)) is not None:
                        taken.append(got)
                if not taken:
                    continue
                trusted = self.trusted
                urgent = urgent or any(publisher_gid(info) in trusted for _, info in taken)
                q = self._queues[key]
                with self._lock:
                    room = q.maxlen - len(q)
                    self.overflowed += max(len(taken) - room, 0)
                    q.extend(taken)
                if pending_since is None:
                    pending_since = time.monotonic()
            if pending_since is not None and (
                    urgent or time.monotonic() - pending_since >= self.batch_s):
                pending_since = None
                self._wake.trigger()


def publisher_gid(info: dict) -> bytes:
    """The publishing endpoint's GID from rmw message info."""
    return bytes((info.get('publisher_gid') or {}).get('data', b''))
