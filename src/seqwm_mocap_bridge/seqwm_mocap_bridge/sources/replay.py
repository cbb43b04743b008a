"""A recorded MocapFrame stream (CSV or rosbag2) played back as SDK frames at the recorded pace.

Each recorded frame is turned back into what the SDK would have delivered (mm, `axis_up`
convention, SDK IDs, reported latency) and delivered with receive time = recorded stamp +
recorded latency, so the bridge's stamp (receive - latency) is the recorded capture time; with
`replay_restamp` the whole recording is shifted to start now (spacing kept, divided by the rate).
Pacing follows the recorded stamps divided by `replay_rate`, on a monotonic clock.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from ..conversion import BodyMap
from ..recording import RecordedFrame, RecordingError, read_recording
from ..timing import LATENCY_UNIT_TO_MS, latency_ns
from .base import FrameSource, SourceSink
from .nokov import SourceError
from .sim import arena_to_raw_frame


class ReplaySource(FrameSource):
    kind = 'replay'

    def __init__(self, path: str, body_map: BodyMap, axis_up: str = 'z',
                 latency_unit: str = 'ms', rate: float = 1.0, loop: bool = False,
                 restamp: bool = False, topic: str = '', start_delay_s: float = 0.0,
                 ready: Callable[[], bool] | None = None) -> None:
        self.path = path
        self.body_map = body_map
        self.axis_up = axis_up
        self.latency_unit = latency_unit
        self.rate = rate
        self.loop = loop
        self.restamp = restamp
        self.start_delay_s = start_delay_s
        self.ready = ready
        try:
            self.frames: list[RecordedFrame] = read_recording(path, topic)
        except RecordingError as exc:
            raise SourceError(f'replay_file: {exc}') from None
        if not self.frames:
            raise SourceError(f'replay_file {path}: no frames')
        for f in self.frames:   # IDs in order of first appearance, like a fresh SDK session
            for name in f.names:
                body_map.assign(name)
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def describe(self) -> str:
        return f'replay {self.path} x{self.rate:g}'

    def start(self, sink: SourceSink) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(sink,), name='replay',
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def _run(self, sink: SourceSink) -> None:
        try:
            self._play(sink)
        except Exception as exc:   # noqa: BLE001 - report, never crash the node
            sink.event('replay_error', 'error', f'replay of {self.path} stopped: {exc!r}')
        finally:
            self._done.set()

    def _play(self, sink: SourceSink) -> None:
        if self.ready is not None:
            while not self._stop.is_set() and not self.ready():
                self._stop.wait(0.05)
        if self._stop.wait(self.start_delay_s):
            return
        first = self.frames[0].stamp_ns
        span = self.frames[-1].stamp_ns - first
        period = span // max(1, len(self.frames) - 1)
        per_ms = LATENCY_UNIT_TO_MS[self.latency_unit]
        passes = 0
        sink.event('replay_start', 'info',
                   f'replaying {len(self.frames)} frames ({span * 1e-9:.2f} s) from {self.path} '
                   f'at x{self.rate:g}')
        while not self._stop.is_set():
            t0 = time.monotonic()
            wall0 = time.time_ns()
            offset = passes * (span + period)   # keeps stamps increasing across loops
            for f in self.frames:
                due = t0 + (f.stamp_ns - first) * 1e-9 / self.rate
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
                if self.restamp:
                    capture = wall0 + int((f.stamp_ns - first) / self.rate)
                else:
                    capture = f.stamp_ns + offset
                raw = arena_to_raw_frame(f.frame_number, f.names, f.positions, f.quaternions,
                                         f.tracked, self.body_map, self.axis_up,
                                         f.latency_ms / per_ms)
                sink.frame(raw, capture + latency_ns(f.latency_ms))
                self.delivered += 1
            if not self.loop:
                sink.event('replay_end', 'info',
                           f'replay of {self.path} finished ({self.delivered} frames)')
                return
            passes += 1
            sink.sequence_reset('replay loop', forget_poses=True)
