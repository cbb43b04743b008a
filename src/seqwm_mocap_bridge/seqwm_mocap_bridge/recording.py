"""Recorded seqwm_msgs/MocapFrame streams: read and write CSV and rosbag2 (MCAP / sqlite3).

No rclpy: bags go through the pure-Python `rosbags` library (so a pip-only machine can record
and replay), with the MocapFrame type registered from the installed seqwm_msgs .msg file. A bag
written here plays with `ros2 bag play` on a ROS machine.

CSV layout (one row per body per frame, a header row first; metres, arena frame, z up):
    frame_number,stamp_ns,latency_ms,name,x,y,z,qx,qy,qz,qw,tracked
A frame with no bodies has one row with an empty name.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from seqwm_common.topics import MOCAP_TOPIC

CSV_COLUMNS = ('frame_number', 'stamp_ns', 'latency_ms', 'name',
               'x', 'y', 'z', 'qx', 'qy', 'qz', 'qw', 'tracked')
MOCAP_FRAME_TYPE = 'seqwm_msgs/msg/MocapFrame'


class RecordingError(ValueError):
    """The file cannot be read as a MocapFrame recording."""


@dataclass
class RecordedFrame:
    """One MocapFrame: stamp = capture time (ns); poses in metres, arena frame, z up."""

    frame_number: int
    stamp_ns: int
    latency_ms: float
    names: list[str] = field(default_factory=list)
    positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    quaternions: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    tracked: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


# ---------------------------------------------------------------------------- CSV
def write_csv(path: str | Path, frames: Iterable[RecordedFrame]) -> None:
    with open(path, 'w', newline='') as fh:
        out = csv.writer(fh)
        out.writerow(CSV_COLUMNS)
        for f in frames:
            if not f.names:
                out.writerow([f.frame_number, f.stamp_ns, repr(float(f.latency_ms)), ''] +
                             [''] * 7 + [''])
            for k, name in enumerate(f.names):
                out.writerow([f.frame_number, f.stamp_ns, repr(float(f.latency_ms)), name] +
                             [repr(float(v)) for v in f.positions[k]] +
                             [repr(float(v)) for v in f.quaternions[k]] +
                             [int(bool(f.tracked[k]))])


def read_csv(path: str | Path) -> list[RecordedFrame]:
    frames: list[RecordedFrame] = []
    rows: dict[tuple[int, int], list[dict[str, str]]] = {}
    order: list[tuple[int, int]] = []
    with open(path, newline='') as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise RecordingError(f'{path}: CSV lacks column(s) {missing}; expected {CSV_COLUMNS}')
        for line, row in enumerate(reader, start=2):
            try:
                key = (int(row['frame_number']), int(row['stamp_ns']))
            except ValueError as exc:
                raise RecordingError(f'{path}:{line}: {exc}') from None
            if key not in rows:
                rows[key] = []
                order.append(key)
            rows[key].append(row)
    for key in order:
        group = rows[key]
        bodies = [r for r in group if r['name']]
        try:
            frames.append(RecordedFrame(
                frame_number=key[0], stamp_ns=key[1], latency_ms=float(group[0]['latency_ms']),
                names=[r['name'] for r in bodies],
                positions=np.array([[float(r[c]) for c in ('x', 'y', 'z')] for r in bodies],
                                   dtype=float).reshape(-1, 3),
                quaternions=np.array([[float(r[c]) for c in ('qx', 'qy', 'qz', 'qw')]
                                      for r in bodies], dtype=float).reshape(-1, 4),
                tracked=np.array([r['tracked'].strip().lower() in ('1', 'true')
                                  for r in bodies], dtype=bool)))
        except ValueError as exc:
            raise RecordingError(f'{path}: frame {key[0]}: {exc}') from None
    return frames


# ---------------------------------------------------------------------------- rosbag2
def _msg_definition() -> str:
    from ament_index_python.packages import get_package_share_directory

    path = Path(get_package_share_directory('seqwm_msgs')) / 'msg' / 'MocapFrame.msg'
    return path.read_text()


def _typestore() -> Any:
    from rosbags.typesys import Stores, get_typestore, get_types_from_msg

    store = get_typestore(Stores.ROS2_HUMBLE)
    store.register(get_types_from_msg(_msg_definition(), MOCAP_FRAME_TYPE))
    return store


def write_bag(path: str | Path, frames: Iterable[RecordedFrame], topic: str = MOCAP_TOPIC,
              storage: str = 'mcap') -> None:
    """Write frames as seqwm_msgs/MocapFrame messages (log time = stamp) to a new bag folder."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = _typestore()
    cls = store.types
    Header, Time = cls['std_msgs/msg/Header'], cls['builtin_interfaces/msg/Time']
    Pose, Point = cls['geometry_msgs/msg/Pose'], cls['geometry_msgs/msg/Point']
    Quaternion, Frame = cls['geometry_msgs/msg/Quaternion'], cls[MOCAP_FRAME_TYPE]
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    with Writer(Path(path), version=9, storage_plugin=plugin) as writer:
        conn = writer.add_connection(topic, MOCAP_FRAME_TYPE, typestore=store)
        for f in frames:
            sec, nsec = divmod(int(f.stamp_ns), 1_000_000_000)
            poses = [Pose(position=Point(x=float(p[0]), y=float(p[1]), z=float(p[2])),
                          orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]),
                                                 w=float(q[3])))
                     for p, q in zip(f.positions, f.quaternions)]
            msg = Frame(header=Header(stamp=Time(sec=sec, nanosec=nsec), frame_id='arena'),
                        frame_number=int(f.frame_number), names=list(f.names), poses=poses,
                        tracked=np.asarray(f.tracked, dtype=bool),
                        latency_ms=float(f.latency_ms))
            writer.write(conn, int(f.stamp_ns), store.serialize_cdr(msg, MOCAP_FRAME_TYPE))


def read_bag(path: str | Path, topic: str = '') -> list[RecordedFrame]:
    """MocapFrame messages of `topic` (default: the first MocapFrame topic) in log order."""
    from rosbags.rosbag2 import Reader

    store = _typestore()
    frames: list[RecordedFrame] = []
    try:
        reader = Reader(Path(path))
        reader.open()
    except Exception as exc:   # noqa: BLE001 - rosbags raises several kinds
        raise RecordingError(f'{path}: not a readable rosbag2 ({exc})') from None
    try:
        conns = [c for c in reader.connections if c.msgtype == MOCAP_FRAME_TYPE and
                 (not topic or c.topic == topic)]
        if not conns:
            have = sorted({f'{c.topic} [{c.msgtype}]' for c in reader.connections})
            raise RecordingError(f'{path}: no {MOCAP_FRAME_TYPE} messages'
                                 f'{" on " + topic if topic else ""}; bag has {have}')
        conns = [c for c in conns if c.topic == conns[0].topic]
        for conn, _t, data in reader.messages(connections=conns):
            msg = store.deserialize_cdr(data, conn.msgtype)
            frames.append(RecordedFrame(
                frame_number=int(msg.frame_number),
                stamp_ns=int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec),
                latency_ms=float(msg.latency_ms), names=list(msg.names),
                positions=np.array([[p.position.x, p.position.y, p.position.z]
                                    for p in msg.poses], dtype=float).reshape(-1, 3),
                quaternions=np.array([[p.orientation.x, p.orientation.y, p.orientation.z,
                                       p.orientation.w] for p in msg.poses],
                                     dtype=float).reshape(-1, 4),
                tracked=np.asarray(msg.tracked, dtype=bool).reshape(-1)))
    finally:
        reader.close()
    return frames


def read_recording(path: str | Path, topic: str = '') -> list[RecordedFrame]:
    """CSV by extension, otherwise a rosbag2 folder (or a .mcap / .db3 file inside one)."""
    p = Path(path)
    if not p.exists():
        raise RecordingError(f'{path}: no such file or folder')
    if p.suffix.lower() == '.csv':
        frames = read_csv(p)
    else:
        frames = read_bag(p.parent if p.is_file() else p, topic)
    for f in frames:
        if not (len(f.names) == len(f.positions) == len(f.quaternions) == len(f.tracked)):
            raise RecordingError(f'{path}: frame {f.frame_number}: names/poses/tracked lengths '
                                 f'differ')
    return frames
