"""The robot's own record of its inputs: every event its runtime handled, in order, with its time.

Bag replay used to rebuild *what a robot received and when* from a recorder's copies plus
hints; a best-effort recorder holds intents the robot never got and loses some it did, so each
new case needed a new hint. Here the runtime writes down every call it takes (`on_frame`,
`on_intent`, `on_timer`, an outside stop, the backend's readiness) with the robot's own clock,
the identity of the message (a content digest, so a recorder's copy can be matched exactly) and
what became of it (used, or refused and why). Replay feeds the runtime these records and nothing
else; the recorder's copies only supply message content.

The node publishes the records with each tick's status (seqwm_msgs/AgentInputs, an array of
InputEvent, on `<robot>/inputs`). Refusals that change nothing but a counter are the only
records that may be left out when more arrive than a message holds (a flood): they are counted.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np


class InputKind(IntEnum):
    """What the runtime was called with; values equal seqwm_msgs/InputEvent KIND_*."""

    FRAME = 0          # on_frame: a /mocap/frame message
    INTENT = 1         # on_intent: a predecessor intent (or one refused before the runtime)
    TIMER = 2          # on_timer: the node's deadline or watchdog timer
    STOP = 3           # stop(): decided outside the runtime (backend error, shutdown)
    BACKEND = 4        # the backend's readiness changed (number: 1 ready, 0 not)
    ROBOT_STOPPED = 5  # the backend stopped the robot by itself (its own watchdog)


# `outcome` of an input that was used (frame observed, intent kept for its tick).
ACCEPTED = ''
# A frame already observed (the same capture stamp and number): nothing changes.
REPEAT = 'repeat'
# An intent kept although its tick was already planned (late): the cache for the next tick.
LATE = 'late'


@dataclass(frozen=True)
class InputRecord:
    """One call of the runtime. Fields not meaningful for a kind are 0 / ''."""

    kind: InputKind
    time_s: float         # the runtime's clock (`now`): the robot's monotonic clock
    stamp_ns: int = 0     # FRAME: capture stamp; INTENT: the intent's header stamp
    number: int = 0       # FRAME: frame number; INTENT: its tick; BACKEND: 1 ready / 0 not
    source: str = ''      # INTENT: the claimed sender; STOP: the stop key
    digest: int = 0       # FRAME / INTENT: content_digest of the message
    wall_ns: int = -1     # FRAME: this host's wall clock at receipt (-1: not given)
    outcome: str = ''     # ACCEPTED, REPEAT, a REJECT_REASONS key; STOP / BACKEND: why
    publisher: str = ''   # FRAME / INTENT: the publishing node ('' when not known or not given)
    publisher_gid: bytes = b''   # its endpoint GID (b'': no identity given, none checked)

    @property
    def refused(self) -> bool:
        """An input refused as a whole that changed nothing but the refusal counters (a
        source conflict is not one: it times the conflict)."""
        return (self.kind in (InputKind.FRAME, InputKind.INTENT)
                and self.outcome not in (ACCEPTED, REPEAT, LATE)
                and not self.outcome.endswith('_source_conflict'))


def _crc(parts: list[bytes]) -> int:
    c = 0
    for p in parts:
        c = zlib.crc32(p, c)
    return c


def frame_digest(frame: Any) -> int:
    """crc32 of what the runtime reads from a frame, so a record names exactly one message
    (a second source may send the same stamp and number with other poses). `frame`: a
    messages.MocapSample (this module sits below messages.py, which converts records)."""
    return _crc([repr((frame.stamp_ns, frame.frame_number, frame.names, frame.tracked)).encode(),
                 np.ascontiguousarray(frame.positions, dtype=np.float64).tobytes(),
                 np.ascontiguousarray(frame.orientations, dtype=np.float64).tobytes()])


def intent_digest(intent: Any) -> int:
    """crc32 of what the runtime reads from a messages.IntentMessage (everything but the
    planner statistics)."""
    head = (intent.tick, intent.stamp_ns, intent.model_set_id, intent.sender,
            intent.sender_index, intent.num_agents, intent.horizon, intent.latent_dim,
            intent.action_dim)
    return _crc([repr(head).encode(),
                 np.ascontiguousarray(intent.latents, dtype=np.float32).tobytes(),
                 np.ascontiguousarray(intent.actions, dtype=np.float32).tobytes(),
                 np.ascontiguousarray(intent.valid, dtype=bool).tobytes()])


class Journal:
    """Records since the last `drain`. At most `max_refused` whole refusals are kept between
    drains (the rest are only counted): a flood of refused messages cannot grow memory or the
    published record, and leaving them out changes no decision a replay must take again."""

    def __init__(self, max_refused: int = 128) -> None:
        self.max_refused = max_refused
        self._records: list[InputRecord] = []
        self._refused = 0
        self._dropped = 0

    def add(self, record: InputRecord) -> None:
        if record.refused:
            if self._refused >= self.max_refused:
                self._dropped += 1
                return
            self._refused += 1
        self._records.append(record)

    def drain(self) -> tuple[tuple[InputRecord, ...], int]:
        """(records in call order, refusals left out) since the last drain."""
        out, dropped = tuple(self._records), self._dropped
        self._records, self._refused, self._dropped = [], 0, 0
        return out, dropped
