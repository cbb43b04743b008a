"""Validation of what a robot receives: pure functions that name the reason of a refusal.

`check_frame` (mocap), `validate_intent` and `check_intent_tick` (predecessor intents) either
return what may be used or raise `Rejected` with a key from `REJECT_REASONS`; the runtime counts
refusals per key and logs one throttled line per key (docs/agent.md has the table).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Container, Sequence

import numpy as np

from ..core.intent import IntentError, IntentLayout, IntentSizeError, IntentTensors
from ..sim.geometry import yaw_from_quaternion
from .messages import NS_PER_S, IntentMessage, MocapSample, message_bounds

# Why an input was refused. Order is the order of AgentStatus.reject_reasons (stable for monitors).
REJECT_REASONS: tuple[str, ...] = (
    'mocap_malformed',       # names / poses / tracked of different lengths
    'mocap_missing',         # a needed body is not in the frame
    'mocap_untracked',       # a needed body is flagged untracked
    'mocap_nan',             # a needed body's position or orientation is NaN/inf
    'mocap_bad_quaternion',  # a needed body's quaternion is far from unit length
    'mocap_out_of_order',    # capture time older than an earlier frame's
    'intent_sender',         # not from the configured predecessor (name or order index)
    'intent_model_set',      # from another training run (model_set_id)
    'intent_size',           # sizes differ from this robot's layout (IntentSizeError)
    'intent_nan',            # NaN/inf in a valid slot
    'intent_past_tick',      # for a tick older than the one already planned
    'intent_repeat',         # for a tick whose intent was already received
    'intent_future_tick',    # too far ahead of the mocap clock (or of the first frame)
    'intent_range',          # a valid slot's latents outside [0, 1] or commands outside [-1, 1]
    'intent_valid_flags',    # the sender's own slot marked invalid, or a successor's marked valid
    'mocap_future',          # stamped further ahead of this host's clock than mocap_future_s
    'mocap_duplicate_body',  # a needed body's name appears more than once in the frame
    'mocap_jump',            # a needed body moved faster than max_body_speed_mps since its last pose
    'mocap_foreign_publisher',   # /mocap/frame from a node other than the team's bridge
    'intent_foreign_publisher',  # an intent from a node other than the predecessor's agent
    'mocap_source_conflict',     # two publishers of the bridge's name speak at once: stop
    'intent_source_conflict',    # two publishers of the predecessor agent's name speak at once: stop
)
# A body whose measurements were refused as jumps this many times within stale_timeout_s while
# its track is measured is on two tracks at once: the robot stops (mocap_track_conflict) rather
# than let either become the reference; a single outlier does not.
TRACK_CONFLICT_JUMPS = 3

# Intents may be this many ticks ahead of the latest mocap frame (the predecessor may see the
# first frame of the next tick a moment earlier); further ahead means a broken clock.
MAX_INTENT_AHEAD_TICKS = 1
# Latents are SimNorm outputs (each group a softmax: in [0, 1]); planned commands are the chain's
# output in model units (in [-1, 1]). Slack for float rounding only.
LATENT_RANGE = (0.0, 1.0)
COMMAND_RANGE = (-1.0, 1.0)
RANGE_SLACK = 1e-5
# Frames remembered by observe_frame, so that a tick run a little later (after the intent
# deadline) plans on its own frame's poses and a frame is never counted twice.
RECENT_FRAMES = 16
# Quaternions with a norm outside this band are corrupt, not merely unnormalised.
QUATERNION_NORM_BAND = (0.5, 2.0)


class Rejected(ValueError):
    """An input refused by a validation function: `reason` is a REJECT_REASONS key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def tick_index(stamp_ns: int, dt: float) -> int:
    """tick = floor(stamp / dt), in integer ns so that every robot computes the same index."""
    return int(stamp_ns) // int(round(dt * NS_PER_S))


@dataclass
class FrameCheck:
    """What one frame says about the bodies a robot needs."""

    poses: dict[str, tuple[float, float, float]]   # body -> (x, y, yaw), usable measurements only
    problems: dict[str, str]                       # body -> REJECT_REASONS key
    details: dict[str, str]                        # body -> human-readable cause
    malformed: str = ''                            # non-empty: the whole frame is unusable


def check_frame(frame: MocapSample, bodies: Sequence[str]) -> FrameCheck:
    """Usable (x, y, yaw) of each of `bodies` in `frame`, and why the others are not usable.

    A body is usable when present, tracked, finite, and its quaternion is near unit length
    (it is normalised before the yaw is taken)."""
    k = len(frame.names)
    shapes = (frame.positions.shape, frame.orientations.shape, len(frame.tracked))
    bound = message_bounds('MocapFrame').get('names')
    if bound is not None and k > bound:
        msg = f'frame {frame.frame_number}: {k} bodies, MocapFrame.msg allows {bound}'
        return FrameCheck({}, {b: 'mocap_malformed' for b in bodies}, {b: msg for b in bodies}, msg)
    if shapes != ((k, 3), (k, 4), k):
        msg = (f'frame {frame.frame_number}: {k} names, {frame.positions.shape[0]} poses, '
               f'{len(frame.tracked)} tracked flags')
        return FrameCheck({}, {b: 'mocap_malformed' for b in bodies}, {b: msg for b in bodies}, msg)
    index: dict[str, int] = {}
    repeated: set[str] = set()
    for j, name in enumerate(frame.names):
        if name in index:
            repeated.add(name)
        index.setdefault(name, j)
    poses: dict[str, tuple[float, float, float]] = {}
    problems: dict[str, str] = {}
    details: dict[str, str] = {}
    lo, hi = QUATERNION_NORM_BAND
    for body in bodies:
        j = index.get(body)
        if j is None:
            problems[body], details[body] = 'mocap_missing', f'body {body} not in frame'
            continue
        if body in repeated:     # which entry is the body? neither can be trusted
            problems[body] = 'mocap_duplicate_body'
            details[body] = (f'body {body} appears {frame.names.count(body)} times in frame '
                             f'{frame.frame_number}')
            continue
        if not frame.tracked[j]:
            problems[body], details[body] = 'mocap_untracked', f'body {body} untracked'
            continue
        p, q = frame.positions[j], frame.orientations[j]
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
            problems[body] = 'mocap_nan'
            details[body] = f'body {body} pose not finite: position {p.tolist()} quaternion {q.tolist()}'
            continue
        norm = float(np.linalg.norm(q))
        if not lo <= norm <= hi:
            problems[body] = 'mocap_bad_quaternion'
            details[body] = f'body {body} quaternion norm {norm:.3g} outside [{lo}, {hi}]'
            continue
        qx, qy, qz, qw = (float(v) / norm for v in q)
        poses[body] = (float(p[0]), float(p[1]), yaw_from_quaternion(qx, qy, qz, qw))
    return FrameCheck(poses, problems, details)


def check_stamp(stamp_ns: int, received_ns: int | None, max_future_s: float) -> str:
    """'' when a frame's capture stamp is plausible against this host's clock at receipt, else
    why not. A stamp ahead of the receive time can only come from a clock that stepped forward
    (the bridge stamps from its host's clock: one forward step there would put every robot's
    later, real frames out of order and stop them all as stale)."""
    if received_ns is None:
        return ''
    ahead = (int(stamp_ns) - int(received_ns)) / NS_PER_S
    if ahead > max_future_s:
        return (f'mocap frame stamped {ahead:.3f} s after its receipt (more than mocap_future_s '
                f'{max_future_s}): the clocks of bridge and robot disagree')
    return ''


def check_jump(body: str, pose: tuple[float, float, float], held: tuple[float, float, float],
               dt_s: float, max_speed_mps: float, margin_m: float) -> str:
    """'' when `body` moving from `held` to `pose` in dt_s is physically possible, else why not
    (any node may publish on /mocap/frame: the agent does not rely on the bridge's own check)."""
    dist = math.hypot(pose[0] - held[0], pose[1] - held[1])
    allowed = max_speed_mps * max(dt_s, 0.0) + margin_m
    if dist > allowed:
        return (f'body {body} moved {dist:.2f} m in {dt_s:.3f} s (more than {max_speed_mps} m/s '
                f'+ {margin_m} m)')
    return ''


@dataclass(frozen=True)
class IntentExpectation:
    """What this robot accepts from its predecessor."""

    layout: IntentLayout
    model_set_id: str
    predecessor: str          # '' for order index 0: nobody may send to it
    predecessor_index: int    # -1 for order index 0


def validate_intent(intent: IntentMessage, expect: IntentExpectation) -> IntentTensors:
    """The intent as tensors (B = 1), or `Rejected` naming the reason.

    Checked in this order: sender (name and order index), model-set id, sizes (header fields and
    array lengths, via the layout's IntentSizeError), valid flags (the sender's own slot valid,
    no successor's slot), finite values in valid slots, their ranges (latents in [0, 1],
    commands in [-1, 1])."""
    who = intent.sender or '<unnamed>'
    if expect.predecessor_index < 0:
        raise Rejected('intent_sender', f'rejected intent from {who}: order index 0 has no predecessor')
    if intent.sender != expect.predecessor or intent.sender_index != expect.predecessor_index:
        raise Rejected('intent_sender', f'rejected intent from {who} (index {intent.sender_index}): '
                                        f'predecessor is {expect.predecessor} '
                                        f'(index {expect.predecessor_index})')
    if intent.model_set_id != expect.model_set_id:
        raise Rejected('intent_model_set', f'rejected intent from {who}: model set '
                                           f'{intent.model_set_id!r} != {expect.model_set_id!r}')
    lay = expect.layout
    for name, got, want in (('num_agents', intent.num_agents, lay.num_agents),
                            ('horizon', intent.horizon, lay.horizon),
                            ('latent size', intent.latent_dim, lay.latent_dim),
                            ('action size', intent.action_dim, lay.action_dim)):
        if int(got) != want:
            raise Rejected('intent_size', f'rejected intent from {who}: {name} {got} != {want}')
    latents = np.asarray(intent.latents, dtype=np.float32).reshape(-1)
    actions = np.asarray(intent.actions, dtype=np.float32).reshape(-1)
    valid = np.asarray(intent.valid, dtype=bool).reshape(-1)
    sizes = lay.sizes
    if (latents.size, actions.size, valid.size) == (sizes['latents'], sizes['actions'], sizes['valid']):
        # A masked slot's content means nothing, NaN included: zero it before the layout
        # multiplies by the mask (NaN * 0 would still be NaN).
        n = lay.num_agents
        latents = np.where(np.repeat(valid, sizes['latents'] // n), latents, np.float32(0))
        actions = np.where(np.repeat(valid, sizes['actions'] // n), actions, np.float32(0))
    if valid.size == sizes['valid']:
        k = expect.predecessor_index
        if not valid[k]:
            raise Rejected('intent_valid_flags', f'rejected intent from {who}: its own slot {k} '
                                                 f'is marked invalid')
        if valid[k + 1:].any():
            raise Rejected('intent_valid_flags', f'rejected intent from {who}: slots '
                                                 f'{(np.flatnonzero(valid[k + 1:]) + k + 1).tolist()} '
                                                 f'of its successors are marked valid')
    try:
        tensors = lay.from_arrays(latents, actions, valid)
    except IntentSizeError as exc:
        raise Rejected('intent_size', f'rejected intent from {who}: {exc}') from None
    except IntentError as exc:
        raise Rejected('intent_nan', f'rejected intent from {who}: {exc}') from None
    for name, t, (lo, hi) in (('latents', tensors.latents, LATENT_RANGE),
                              ('commands', tensors.actions, COMMAND_RANGE)):
        worst_lo, worst_hi = float(t.min()), float(t.max())
        if worst_lo < lo - RANGE_SLACK or worst_hi > hi + RANGE_SLACK:
            raise Rejected('intent_range', f'rejected intent from {who}: {name} span '
                                           f'[{worst_lo:.4g}, {worst_hi:.4g}], outside '
                                           f'[{lo}, {hi}]')
    return tensors


def check_intent_tick(tick: int, last_planned: int | None, held: Container[int],
                      current: int | None, max_ahead: int = MAX_INTENT_AHEAD_TICKS) -> None:
    """Refuse an intent whose tick cannot help any more, repeats one, or lies in the future.

    An intent for the tick just planned (it arrived after the deadline) is accepted: shifted by
    one, it is the best cache for the next tick. `held`: ticks whose intent is already in hand.
    Without a mocap clock yet (`current` None) the future cannot be judged here: the runtime
    keeps the intent aside and drops it, as future, if the first frame shows it too far ahead,
    so no intent can block later ones."""
    if last_planned is not None and tick < last_planned:
        raise Rejected('intent_past_tick', f'intent for tick {tick} arrived after tick '
                                           f'{last_planned} was planned')
    if tick in held:
        raise Rejected('intent_repeat', f'intent for tick {tick} repeats one already received')
    if current is not None and tick > current + max_ahead:
        raise Rejected('intent_future_tick', f'intent for tick {tick} but mocap is at tick '
                                             f'{current} (more than {max_ahead} ahead)')
