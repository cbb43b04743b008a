"""Time stamps as integer nanoseconds, the one representation the nodes and the runtime use.

Integer ns make tick indices exact (tick = stamp_ns // dt_ns on every robot) and survive bag
round trips; `builtin_interfaces/Time` is only built at the message boundary. Pure: the message
class is imported when a message is built.
"""
from __future__ import annotations

from typing import Any

NS_PER_S = 1_000_000_000


def stamp_ns(header: Any) -> int:
    """A std_msgs/Header (rclpy or rosbags deserialised) stamp as integer ns."""
    return int(header.stamp.sec) * NS_PER_S + int(header.stamp.nanosec)


def time_msg(ns: int) -> Any:
    """Integer ns -> builtin_interfaces/Time (negative clipped to 0)."""
    from builtin_interfaces.msg import Time
    sec, nanosec = divmod(max(int(ns), 0), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def duration_msg(seconds: float) -> Any:
    """Seconds -> builtin_interfaces/Duration."""
    from builtin_interfaces.msg import Duration
    sec = int(seconds)
    return Duration(sec=sec, nanosec=int((seconds - sec) * NS_PER_S))
