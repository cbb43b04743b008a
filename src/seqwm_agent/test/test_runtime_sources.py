"""Who may speak to a robot (runtime/sources.py and the runtime around it), as a spec.

The guarantees, each pinned below:
1. a frame or intent from a node other than its role's is refused before it is read, counted
   under `<input>_foreign_publisher`, and changes nothing the robot decides (property);
2. a restarted source (new GID, same node, the old one silent) takes the role over;
3. two GIDs of the role's node speaking at once stop the robot with `<input>_source_conflict`
   until one has been silent for the window; no vote;
4. one source showing a body on two tracks stops the robot (`mocap_track_conflict`) instead of
   letting either become the reference; a single outlier does not (property for the fake track
   never being planned on).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_team import DT, POSES, TEAM, make_manifest, make_models  # noqa: E402

from seqwm_agent.runtime.agent import AgentRuntime, AgentSettings, Mode
from seqwm_agent.runtime.journal import InputKind
from seqwm_agent.runtime.messages import MocapSample
from seqwm_agent.runtime.sources import BRIDGE_NODE, Publisher, SourceGuard, agent_node

MODELS = make_models()
MANIFEST = make_manifest()
T0 = 1_795_000_000.0
NS = 1_000_000_000
FRAME_DT = 0.02
BRIDGE = Publisher(BRIDGE_NODE, b'\x01' * 16)
RESTARTED_BRIDGE = Publisher(BRIDGE_NODE, b'\x02' * 16)
STRANGER = Publisher('/rosbag2_player', b'\x03' * 16)
LEAD = Publisher(agent_node(TEAM[0]), b'\x04' * 16)


def runtime(k: int = 1) -> AgentRuntime:
    s = AgentSettings(robot_name=TEAM[k], order_index=k, team=TEAM, task='pushbox',
                      predecessor=TEAM[k - 1] if k else '')
    return AgentRuntime(s, MODELS[k], MANIFEST)


def frame(i: int, shift: float = 0.0, stamp_shift: float = 0.0) -> MocapSample:
    poses = {b: (x + shift, y, yaw) for b, (x, y, yaw) in POSES.items()}
    return MocapSample.from_planar(T0 + i * FRAME_DT + 0.004 + stamp_shift, poses, frame_number=i)


def deliver(rt: AgentRuntime, pub: Publisher, msg, now: float) -> list:
    """What the node does with a message: admit its publisher, then (only then) read it."""
    ok, outs = rt.admit(InputKind.FRAME if isinstance(msg, MocapSample) else InputKind.INTENT,
                        pub, now)
    if not ok:
        return outs
    if isinstance(msg, MocapSample):
        return outs + rt.on_frame(msg, now, None, pub)
    return outs + rt.on_intent(msg, now, pub)


# ---- the guard alone ------------------------------------------------------------------------------
def test_a_stranger_is_refused_by_node_name_whatever_it_sends():
    g = SourceGuard('mocap', BRIDGE_NODE, 0.3)
    assert g.check(BRIDGE, 0.0).accepted
    v = g.check(STRANGER, 0.01)
    assert v.reason == 'mocap_foreign_publisher' and '/rosbag2_player' in v.message
    assert g.check(Publisher('', b'\x05' * 16), 0.02).reason == 'mocap_foreign_publisher'
    assert g.check(BRIDGE, 0.03).accepted and g.bound == BRIDGE.gid


def test_a_restarted_source_takes_the_role_over_once_the_old_one_is_silent():
    g = SourceGuard('mocap', BRIDGE_NODE, 0.3)
    assert g.check(BRIDGE, 0.0).accepted
    assert g.check(RESTARTED_BRIDGE, 0.31).accepted and g.bound == RESTARTED_BRIDGE.gid
    assert not g.in_conflict(0.32)


def test_two_speakers_of_one_role_are_a_conflict_until_one_is_silent_for_the_window():
    g = SourceGuard('intent', agent_node('go2w_1'), 0.3)
    assert g.check(LEAD, 0.0).accepted
    twin = Publisher(LEAD.node, b'\x06' * 16)
    assert g.check(twin, 0.1).reason == 'intent_source_conflict'
    assert g.check(LEAD, 0.2).reason == 'intent_source_conflict'     # no vote: both refused
    assert g.in_conflict(0.35)
    assert g.check(LEAD, 0.45).accepted                              # twin silent since 0.1
    assert not g.in_conflict(0.46)


# ---- the runtime -----------------------------------------------------------------------------------
def planned(outs) -> list:
    return [o for o in outs if o.mode != Mode.STOPPED]


def test_foreign_frames_are_counted_and_never_reach_the_robots_clock_or_poses():
    """The measured attack: displaced poses from a second source, stamped on the wall clock
    (ahead of the arena's), used to push every real frame out of order."""
    rt = runtime(0)
    outs = []
    for i in range(40):
        now = 100.0 + i * FRAME_DT
        outs += deliver(rt, STRANGER, frame(i, shift=2.0, stamp_shift=5.0), now)
        outs += deliver(rt, BRIDGE, frame(i), now + 0.001)
    assert rt.reject_counts['mocap_foreign_publisher'] == 40
    assert rt.reject_counts['mocap_out_of_order'] == 0
    assert len(planned(outs)) == 8 and all(o.mode == Mode.FRESH for o in outs)
    assert all(abs(o.trajectory[0][0] - POSES[TEAM[0]][0]) < 1e-9 for o in outs)


def test_a_spoofed_intent_of_the_predecessors_name_is_refused_and_the_real_one_used():
    lead, follower = runtime(0), runtime(1)
    spoofed = 0
    for i in range(25):
        now = 100.0 + i * FRAME_DT
        for out in lead.on_frame(frame(i), now):
            if out.intent is not None:
                fake = out.intent.__class__(**{**out.intent.__dict__,
                                               'actions': -out.intent.actions})
                deliver(follower, Publisher('/intruder', b'\x07' * 16), fake, now + 0.001)
                spoofed += 1
                deliver(follower, LEAD, out.intent, now + 0.002)
        deliver(follower, BRIDGE, frame(i), now)
    outs = deliver(follower, BRIDGE, frame(25), 100.0 + 25 * FRAME_DT)
    assert spoofed and follower.reject_counts['intent_foreign_publisher'] == spoofed
    assert follower.reject_counts['intent_repeat'] == 0
    assert follower.mode_counts[Mode.FRESH] >= 4 and follower.mode_counts[Mode.CACHED] == 0, \
        (follower.mode_counts, outs)


def test_a_second_bridge_stops_the_robot_with_the_conflict_and_it_resumes_when_one_remains():
    rt = runtime(0)
    twin = Publisher(BRIDGE_NODE, b'\x08' * 16)
    outs = []
    for i in range(80):
        now = 100.0 + i * FRAME_DT
        outs += deliver(rt, BRIDGE, frame(i), now)
        if 10 <= i < 30:                                # the twin speaks from 0.2 s to 0.6 s
            outs += deliver(rt, twin, frame(i, shift=2.0), now + 0.001)
        outs += rt.on_timer(now + 0.01)
    conflict = [o for o in outs if o.stop_key == 'mocap_source_conflict']
    assert conflict and all(o.mode == Mode.STOPPED for o in conflict)
    during = [o for o in outs if 100.2 + 0.01 <= o.ran_s <= 100.6 + 0.3]
    assert during and all(o.mode == Mode.STOPPED for o in during)
    after = [o for o in outs if o.ran_s > 100.6 + 0.3 + 0.2]
    assert planned(after), 'planning resumes once the twin is silent'
    assert all(abs(o.trajectory[0][0] - POSES[TEAM[0]][0]) < 1e-9 for o in planned(outs))


def test_one_source_showing_a_body_on_two_tracks_stops_the_robot_and_a_single_outlier_does_not():
    rt = runtime(0)
    outs = []
    for i in range(50):
        now = 100.0 + i * FRAME_DT
        two_tracks = 15 <= i < 30 and i % 2 == 1
        outlier = i == 5
        outs += deliver(rt, BRIDGE, frame(i, shift=1.5 if (two_tracks or outlier) else 0.0), now)
        outs += rt.on_timer(now + 0.01)
    by_tick = {o.tick - int(round(T0 / DT)): o for o in outs if o.trigger != 4}
    assert by_tick[0].mode == Mode.FRESH and by_tick[1].mode == Mode.FRESH   # outlier at frame 5
    assert any(o.stop_key == 'mocap_track_conflict' for o in outs)
    assert all(abs(o.trajectory[0][0] - POSES[TEAM[0]][0]) < 1e-9 for o in planned(outs))
    assert by_tick[9].mode == Mode.FRESH, 'one track again for stale_timeout_s: plans again'


# ---- properties --------------------------------------------------------------------------------
stranger_frames = st.lists(st.tuples(
    st.integers(0, 59),                            # after which real frame it arrives
    st.floats(-4.0, 4.0), st.floats(-4.0, 4.0),    # displacement
    st.sampled_from([0.0, -3.0, -0.05, 0.01, 0.3, 5.0]),   # its stamp against the real clock
    st.sampled_from(['/rosbag2_player', '/mocap_bridge_2', '', '/go2w_1/agent']),
), max_size=40)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stranger_frames)
def test_no_stranger_frame_changes_what_the_robot_does(strangers):
    """Whatever a stranger sends, whenever: the robot's outputs equal those of a run without
    it (same ticks, modes, commands), and every stranger frame is counted."""
    def run(with_strangers: bool):
        rt, outs = runtime(0), []
        for i in range(60):
            now = 100.0 + i * FRAME_DT
            outs += deliver(rt, BRIDGE, frame(i), now)
            for k, (after, dx, dy, ds, node) in enumerate(strangers):
                if with_strangers and after == i:
                    fake = frame(i, shift=dx, stamp_shift=ds)
                    fake.positions[:, 1] += dy
                    outs += deliver(rt, Publisher(node, bytes([9, k]) * 8), fake, now + 0.0005)
            outs += rt.on_timer(now + 0.01)
        return rt, outs
    rt_a, clean = run(False)
    rt_b, attacked = run(True)
    assert [(o.tick, o.mode, o.command.tolist()) for o in clean] == \
        [(o.tick, o.mode, o.command.tolist()) for o in attacked]
    assert rt_b.reject_counts['mocap_foreign_publisher'] == len(strangers)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 40), st.integers(3, 25), st.sampled_from([1, 2, 3]),
       st.floats(0.6, 5.0))
def test_a_second_track_in_the_bridges_frames_is_never_planned_on(start, length, every, dx):
    """After the real track is established (frame 0), the bridge's frames carry, from frame
    `start` for `length` frames, every `every`-th frame with the robot displaced by dx: no tick
    ever plans on a displaced pose, and from the third refused jump until stale_timeout_s after
    the last one, no tick plans at all. (A source whose very first frames are the fake track
    cannot be told from the real one: that is what the publisher binding is for.)"""
    rt, outs, fakes = runtime(0), [], []
    for i in range(80):
        now = 100.0 + i * FRAME_DT
        fake = start <= i < start + length and (i - start) % every == 0
        if fake:
            fakes.append(i)
        outs += deliver(rt, BRIDGE, frame(i, shift=dx if fake else 0.0), now)
        outs += rt.on_timer(now + 0.01)
    for o in planned(outs):
        assert math.isclose(o.trajectory[0][0], POSES[TEAM[0]][0], abs_tol=1e-9)
    jumps = [i for i in fakes if i > 0]
    if len(jumps) >= 3:
        quiet_from = 100.0 + jumps[-1] * FRAME_DT + rt.settings.stale_timeout_s
        blocked = [o for o in outs
                   if 100.0 + jumps[2] * FRAME_DT < o.ran_s < quiet_from - FRAME_DT]
        assert all(o.mode == Mode.STOPPED for o in blocked), [(o.tick, o.mode) for o in blocked]
