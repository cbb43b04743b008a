"""rosbag2 (MCAP) recording and reading without a ROS install, through the `rosbags` library.

The demo records every topic here; `seqwm-replay` reads the bag back. Bags are standard rosbag2
MCAP directories, so `ros2 bag play` on a ROS machine (with seqwm_msgs built) plays them.
Custom types are registered from the installed `seqwm_msgs/msg/*.msg` text, so the bag carries
their full definitions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

SEQWM_MSGS = ('Intent', 'MocapFrame', 'AgentStatus', 'InputEvent', 'AgentInputs')


def _msg_dir() -> Path:
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory('seqwm_msgs')) / 'msg'


def typestore():
    """The ROS 2 typestore plus seqwm_msgs, registered from the installed .msg files."""
    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    for name in SEQWM_MSGS:
        types.update(get_types_from_msg((_msg_dir() / f'{name}.msg').read_text(),
                                        f'seqwm_msgs/msg/{name}'))
    store.register(types)
    return store


class BagWriter:
    """Append already-serialised (CDR) messages to a new rosbag2 MCAP bag."""

    def __init__(self, path: str | Path) -> None:
        self.store = typestore()
        self.writer = Writer(Path(path), version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.connections: dict[str, object] = {}
        self.count = 0

    def add_topic(self, topic: str, msgtype: str, qos_yaml: str = '') -> None:
        """msgtype like 'seqwm_msgs/msg/Intent'."""
        if topic not in self.connections:
            self.connections[topic] = self.writer.add_connection(
                topic, msgtype, typestore=self.store, offered_qos_profiles=qos_yaml)

    def write(self, topic: str, stamp_ns: int, cdr: bytes) -> None:
        self.writer.write(self.connections[topic], stamp_ns, cdr)
        self.count += 1

    def close(self) -> None:
        self.writer.close()


def read_messages(path: str | Path, topics: set[str] | None = None
                  ) -> Iterator[tuple[str, int, object]]:
    """(topic, receive time ns, deserialised message) in recorded order."""
    store = typestore()
    with Reader(Path(path)) as reader:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        for conn, stamp, raw in reader.messages(connections=conns):
            yield conn.topic, stamp, store.deserialize_cdr(raw, conn.msgtype)


def topic_types(path: str | Path) -> dict[str, str]:
    """topic -> message type of a bag."""
    with Reader(Path(path)) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


__all__ = ['BagWriter', 'read_messages', 'topic_types', 'typestore']
