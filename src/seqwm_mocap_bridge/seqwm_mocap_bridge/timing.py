"""Capture-time stamps and frame-number bookkeeping (pure Python).

Stamp rule (the whole point of this package): a frame is stamped with the time the cameras
captured it, not the time we publish it:

    capture_time = receive_time - reported_latency

`receive_time` is read from the system clock in the SDK's callback, before any queueing or
processing; `reported_latency` is the SDK's per-frame latency (XINGYING: "time delta between
capture and send"). What it does not cover, the network transfer and the SDK's own decoding on
our side, makes the stamp late by that much (well under a millisecond on a wired LAN; not
measurable without the hardware). Consumers derive the control tick from this stamp.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# Multiply an SDK latency value by this to get milliseconds.
LATENCY_UNIT_TO_MS = {'ms': 1.0, 's': 1000.0, 'us': 0.001}


def latency_to_ms(value: float, unit: str) -> float:
    """SDK latency in its unit -> milliseconds."""
    return float(value) * LATENCY_UNIT_TO_MS[unit]


def latency_ns(latency_ms: float) -> int:
    """Milliseconds -> integer nanoseconds (rounded, so sim and replay round-trip exactly)."""
    return int(round(latency_ms * 1e6))


def capture_time_ns(receive_ns: int, latency_ms: float) -> int:
    """Capture time = receive time - reported latency, in integer nanoseconds."""
    return int(receive_ns) - latency_ns(latency_ms)


def plausible_latency(latency_ms: float, max_latency_ms: float) -> bool:
    """A latency we trust enough to subtract: finite, non-negative, not absurdly large."""
    return math.isfinite(latency_ms) and 0.0 <= latency_ms <= max_latency_ms


@dataclass
class OrderResult:
    """What one frame number means relative to the frames before it."""

    kind: str            # 'first' | 'next' | 'gap' | 'duplicate' | 'out_of_order' | 'reset'
    dropped: int = 0     # frames missing before this one (kind == 'gap')
    previous: int | None = None


class FrameOrder:
    """Classifies SDK frame numbers: next, gap (drops), duplicate, out of order, counter reset.

    Frame numbers must increase by one per camera frame. A jump of more than `reset_gap` frames
    in either direction is taken as a counter reset (server restart, reconnect, replay loop), not
    as millions of drops or a permanently "old" stream; sources also call `reset()` explicitly
    when they know the sequence restarts.
    """

    def __init__(self, reset_gap: int = 1000) -> None:
        self.reset_gap = int(reset_gap)
        self.last: int | None = None

    def reset(self) -> None:
        self.last = None

    def classify(self, frame_number: int) -> OrderResult:
        """Classify and, for frames to be used, advance the expected sequence."""
        previous = self.last
        if previous is None:
            self.last = frame_number
            return OrderResult('first')
        delta = frame_number - previous
        if delta == 1:
            self.last = frame_number
            return OrderResult('next', previous=previous)
        if delta == 0:
            return OrderResult('duplicate', previous=previous)
        if abs(delta) > self.reset_gap:
            self.last = frame_number
            return OrderResult('reset', previous=previous)
        if delta < 0:
            return OrderResult('out_of_order', previous=previous)
        self.last = frame_number
        return OrderResult('gap', dropped=delta - 1, previous=previous)
