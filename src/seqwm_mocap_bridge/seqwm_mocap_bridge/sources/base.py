"""The one interface every frame source implements.

A source produces `RawFrame`s (SDK layout: mm, SDK axes, reported latency) from its own thread
or callback and hands each one to a `SourceSink` together with the time it was received. It
never converts, filters or publishes: that is the pipeline's job, identical for every source.
"""
from __future__ import annotations

import abc
from typing import Mapping, Protocol

from ..raw_frame import RawFrame


class SourceSink(Protocol):
    """Where a source delivers; implemented by the bridge node (thread-safe, non-blocking)."""

    def frame(self, raw: RawFrame, receive_ns: int) -> None:
        """One frame, with its receive time (ns, system clock, taken on arrival)."""

    def sequence_reset(self, why: str, forget_poses: bool = False) -> None:
        """The frame numbering restarts (reconnect, replay loop)."""

    def descriptions(self, id_to_name: Mapping[int, str]) -> None:
        """Rigid-body names for SDK IDs (the SDK's data descriptions)."""

    def event(self, key: str, level: str, message: str) -> None:
        """A log-worthy event (connection, end of file...); throttled by key."""


class FrameSource(abc.ABC):
    """Start delivering frames to a sink; stop on request. One instance per bridge."""

    kind: str = ''

    @abc.abstractmethod
    def start(self, sink: SourceSink) -> None:
        """Begin delivering (returns at once; delivery happens on the source's thread)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop delivering and release resources; safe to call twice."""

    def describe(self) -> str:
        """Where the frames come from, for the status topic."""
        return self.kind

    @property
    def finished(self) -> bool:
        """True when the source has nothing more to deliver (end of a replay)."""
        return False
