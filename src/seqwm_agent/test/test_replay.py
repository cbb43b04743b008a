"""seqwm-replay against bags whose timing is known exactly: written here, from two real runtimes.

The demo's bags (test_demo_runner) cover the live path; these pin the cases the live path only
hits by chance on a loaded machine: the simulator slower than real time, and a best-effort
recorder that holds what the robot never got (or lacks what it did get).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_team import POSES, TEAM, write_team  # noqa: E402

from seqwm_agent.node_params import check_values, settings_from_values
from seqwm_agent.replay import replay
from seqwm_agent.runtime.agent import AgentRuntime, Mode, TickOutput
from seqwm_agent.runtime.messages import (MocapSample, inputs_to_msgs, intent_to_msg,
                                          mocap_sample_to_msg, status_to_msg)
from seqwm_agent.runtime.scheduler import Trigger

NS = 1_000_000_000
DT = 0.1                       # the team's control tick
FRAME_DT = 0.02                # capture interval (50 Hz)
T0 = 1_795_000_000.0           # capture clock at tick 0
W0 = 1_795_000_100.0           # recorder's (wall) clock at frame 0
M0 = 700.0                     # the robots' monotonic clock at frame 0
RECORDER_LAG = 0.002           # the recorder receives 2 ms after the robots


def params(k: int, model_dir: Path) -> dict:
    return {'robot_name': TEAM[k], 'order_index': k, 'team': list(TEAM), 'task': 'pushbox',
            'predecessor': TEAM[k - 1] if k else '', 'model_dir': str(model_dir),
            'deterministic': True, 'plan_budget_ms': 25.0, 'hop_budget_ms': 25.0,
            'stale_timeout_s': 0.3}


def runtime(k: int, model_dir: Path) -> AgentRuntime:
    settings, _, task_cfg = settings_from_values(check_values(params(k, model_dir)))
    return AgentRuntime.load(settings, model_dir, task_cfg)


@dataclass
class Link:
    """Who gets what, when: frame k reaches the robots at `frame_time(k)` (their clock); the
    lead's intent of tick t reaches the follower `intent_delay` later unless `follower_loses`,
    and the recorder unless `recorder_loses`; the follower misses frames `follower_misses`,
    the recorder misses frames `recorder_misses`."""

    frame_time: Callable[[int], float]
    intent_delay: float = 0.03
    follower_loses: Callable[[int], bool] = lambda t: False
    recorder_loses: Callable[[int], bool] = lambda t: False
    follower_misses: Callable[[MocapSample], bool] = lambda f: False
    recorder_misses: Callable[[MocapSample], bool] = lambda f: False


@dataclass
class Run:
    outputs: list[TickOutput] = field(default_factory=list)   # the follower's
    recorded_intents: list[tuple[float, object]] = field(default_factory=list)


def two_robot_bag(bag: Path, model_dir: Path, link: Link, ticks: int = 12,
                  lose_records: Callable[[int, int], bool] = lambda seq, last: False) -> Run:
    """Run a lead and a follower runtime over `link`; write what a recorder got into `bag`
    (frames, both robots' intents, the follower's statuses and input records, less those
    `lose_records(seq, last seq)` names) and return the follower's outputs."""
    from rclpy.serialization import serialize_message
    from seqwm_agent.bag import BagWriter
    lead, follower = runtime(0, model_dir), runtime(1, model_dir)
    events = []                        # (robot clock, order, kind, payload)
    for k in range(ticks * 5):
        sample = MocapSample.from_planar(T0 + k * FRAME_DT + 0.004, POSES, frame_number=k)
        events.append((M0 + link.frame_time(k), k, 'frame', sample))
    end = events[-1][0]
    events += [(M0 + 0.013 + 0.05 * k, 0, 'timer', None)      # the node's watchdog timer
               for k in range(int((end - M0) / 0.05) + 2)]
    records = []                       # (robot clock, topic, type, message)
    run = Run()

    def publish(outs) -> None:
        for out in outs:
            seq = len(run.outputs)
            run.outputs.append(out)
            records.append((out.ran_s, f'/{TEAM[1]}/status', 'AgentStatus',
                            status_to_msg(out, TEAM[1], 1, seq)))
            records.extend((out.ran_s, f'/{TEAM[1]}/inputs', 'AgentInputs', m)
                           for m in inputs_to_msgs(out, TEAM[1], seq))
            if out.intent is not None:
                records.append((out.ran_s, f'/{TEAM[1]}/intent', 'Intent',
                                intent_to_msg(out.intent)))

    while events:
        events.sort(key=lambda e: (e[0], e[1]))
        t, _, kind, payload = events.pop(0)
        due = follower.next_deadline()
        if due is not None and due <= t:
            publish(follower.on_timer(due))
        if kind == 'frame':
            if not link.recorder_misses(payload):
                records.append((t, '/mocap/frame', 'MocapFrame', mocap_sample_to_msg(payload)))
            for out in lead.on_frame(payload, t):
                if out.intent is None:
                    continue
                if not link.recorder_loses(out.tick):
                    records.append((t + link.intent_delay, f'/{TEAM[0]}/intent', 'Intent',
                                    intent_to_msg(out.intent)))
                    run.recorded_intents.append((t + link.intent_delay, out.intent))
                if not link.follower_loses(out.tick):
                    events.append((t + link.intent_delay, -1, 'intent', out.intent))
            if not link.follower_misses(payload):
                publish(follower.on_frame(payload, t))
        elif kind == 'timer':
            publish(follower.on_timer(t))
        else:
            publish(follower.on_intent(payload, t))
    last = len(run.outputs) - 1
    records = [r for r in records if r[1] != f'/{TEAM[1]}/inputs' or not lose_records(r[3].seq, last)]
    writer = BagWriter(bag)
    for t, topic, kind, msg in sorted(records, key=lambda r: r[0]):
        writer.add_topic(topic, f'seqwm_msgs/msg/{kind}')
        writer.write(topic, int(round((t - M0 + RECORDER_LAG + W0) * NS)), serialize_message(msg))
    writer.close()
    return run


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory) -> Path:
    return write_team(tmp_path_factory.mktemp('team'))


def assert_replays_identically(bag: Path, model_dir: Path, run: Run):
    report = replay(bag, TEAM[1], params(1, model_dir))
    assert report.compared == len(run.outputs), report.to_json()
    assert report.decisions_identical, report.decision_differences()
    assert max(report.max_abs_diff) == 0.0
    np.testing.assert_array_equal(report.replayed, [o.command.tolist() for o in run.outputs])
    return report


def test_replay_times_ticks_by_the_robots_clock_when_the_simulator_runs_slow(tmp_path, model_dir):
    """Frames reach the robots 60 ms apart while their stamps are 20 ms apart (the simulator at
    a third of real time). The lead's intent of an odd tick is lost, and robot 2 misses the
    first three frames of an odd tick, so it waits on the fourth until its 50 ms deadline while
    the next tick's frame is 40 ms later by stamp but 120 ms by the robot's clock."""
    odd = lambda f: (f.stamp_ns // int(DT * NS)) % 2 == 1          # noqa: E731
    link = Link(frame_time=lambda k: k * 0.06, follower_loses=lambda t: t % 2 == 1,
                recorder_loses=lambda t: t % 2 == 1,
                follower_misses=lambda f: odd(f) and f.frame_number % 5 < 3)
    run = two_robot_bag(tmp_path / 'bag', model_dir, link)
    triggers = {Trigger(o.trigger) for o in run.outputs}
    assert {Trigger.INTENT, Trigger.DEADLINE} <= triggers, triggers
    waited = {o.stamp_ns for o in run.outputs if o.trigger == Trigger.DEADLINE}
    stamps = sorted({o.stamp_ns for o in run.outputs})
    gaps = [b - a for a, b in zip(stamps, stamps[1:]) if a in waited]
    assert gaps and max(gaps) < 0.05 * NS, gaps
    assert Mode.STOPPED not in {o.mode for o in run.outputs}
    assert_replays_identically(tmp_path / 'bag', model_dir, run)


def naive_replay(bag: Path, model_dir: Path) -> list[TickOutput]:
    """What replay did before robots recorded their inputs: every frame and predecessor intent
    of the recorder, at the recorder's receive time (deadline timers in between)."""
    from seqwm_agent.bag import read_messages
    from seqwm_agent.runtime.messages import intent_message_from_msg, mocap_sample_from_msg
    rt, outs = runtime(1, model_dir), []
    for topic, recv_ns, msg in read_messages(bag, {'/mocap/frame', f'/{TEAM[0]}/intent'}):
        now = recv_ns / NS - W0 + M0
        due = rt.next_deadline()
        if due is not None and due <= now:
            outs += rt.on_timer(due)
        outs += (rt.on_frame(mocap_sample_from_msg(msg), now) if topic == '/mocap/frame'
                 else rt.on_intent(intent_message_from_msg(msg), now))
    return outs


def test_an_intent_the_recorder_holds_but_the_robot_lost_is_never_delivered(tmp_path, model_dir):
    """The recorder gets every one of the lead's intents; the follower loses those of ticks
    3, 6 and 9 (best effort) and plans them at the deadline on the shifted cache. Replayed from
    the recorder's copies at the recorder's times (the old timing, `naive_replay`), those ticks
    run fresh on an intent the robot never had; replayed from the robot's own record, every
    decision and command is the robot's."""
    link = Link(frame_time=lambda k: k * FRAME_DT, follower_loses=lambda t: t % 3 == 0 and t > 0)
    run = two_robot_bag(tmp_path / 'bag', model_dir, link)
    modes = {o.tick: Mode(o.mode) for o in run.outputs}
    lost = [t for t in modes if t % 3 == 0 and t > 0 and t - int(T0 / DT) > 0]
    assert lost and all(modes[t] == Mode.CACHED for t in lost), modes
    assert len(run.recorded_intents) > len([o for o in run.outputs if o.mode == Mode.FRESH])

    old = {o.tick: Mode(o.mode) for o in naive_replay(tmp_path / 'bag', model_dir)}
    assert any(old[t] == Mode.FRESH for t in lost), old       # the mismatch of the old timing
    report = assert_replays_identically(tmp_path / 'bag', model_dir, run)
    assert report.missing_inputs == [] and report.skipped_unsynced == 0


def test_inputs_the_bag_lacks_are_rebuilt_when_exact_and_otherwise_skipped_until_a_stop(
        tmp_path, model_dir):
    """The recorder loses the lead's intents of ticks 2 and 13 (the robot got them) and the
    frames of tick 3; mocap then stops reaching the robot for 0.36 s (ticks 8-11: a watchdog
    stop), and frames return. The intents are rebuilt from the follower's own outgoing intent
    (its digest proves the content); the lost frames cannot be: replay says so, compares nothing
    from there to the stop, and everything after it."""
    base = int(T0 / DT)
    link = Link(frame_time=lambda k: k * FRAME_DT,
                recorder_loses=lambda t: (t - base) in (2, 13),
                recorder_misses=lambda f: (f.stamp_ns // int(DT * NS) - base) == 3,
                follower_misses=lambda f: 40 <= f.frame_number < 58)
    run = two_robot_bag(tmp_path / 'bag', model_dir, link, ticks=16)
    assert Mode.STOPPED in {o.mode for o in run.outputs}
    report = replay(tmp_path / 'bag', TEAM[1], params(1, model_dir))
    assert report.reconstructed_intents == 2, report.to_json()
    assert [k for _, k, _ in report.missing_inputs] == ['frame'] * 5, report.missing_inputs
    # compared: up to the lost frames, and from the first tick after the stop; not between
    assert [t - base for t in report.tick_index] == [0, 1, 2, 11, 12, 13, 14, 15]
    assert report.compared + report.skipped_unsynced == len(run.outputs)
    assert report.decisions_identical, report.decision_differences()
    assert report.mismatched_ticks == []


def test_intents_after_the_deadline_are_recorded_late_and_replay_as_the_cache(tmp_path,
                                                                             model_dir):
    """Every lead intent reaches the follower 70 ms after the frame, past its 50 ms deadline:
    each is kept as the next tick's cache and recorded `late`; replay plans the same ticks on
    the same shifted cache."""
    link = Link(frame_time=lambda k: k * FRAME_DT, intent_delay=0.07)
    run = two_robot_bag(tmp_path / 'bag', model_dir, link)
    outcomes = [r.outcome for o in run.outputs for r in o.inputs if r.kind == 1]
    assert outcomes and set(outcomes) == {'late'}, outcomes
    assert {Mode(o.mode) for o in run.outputs[2:]} == {Mode.CACHED}
    used = [o.intent_used for o in run.outputs[2:]]
    assert all(u is not None and u[1] == o.tick - 1 for u, o in zip(used, run.outputs[2:]))
    assert_replays_identically(tmp_path / 'bag', model_dir, run)


def test_records_the_recorder_lost_are_skipped_with_their_status_never_reported_as_different(
        tmp_path, model_dir):
    """The recorder lost the follower's input record of one tick mid-run and its last one (at
    shutdown the status may get through and the record not): those statuses are counted as
    lost and not compared, everything from the next stop on is, and no difference is reported."""
    link = Link(frame_time=lambda k: k * FRAME_DT,
                follower_misses=lambda f: 45 <= f.frame_number < 65)
    run = two_robot_bag(tmp_path / 'bag', model_dir, link, ticks=16,
                        lose_records=lambda seq, last: seq in (3, last))
    report = replay(tmp_path / 'bag', TEAM[1], params(1, model_dir))
    assert report.lost_records == 2, report.to_json()
    assert report.decisions_identical, report.decision_differences()
    assert report.skipped_unsynced >= 2 and report.compared >= 5
    assert report.compared + report.skipped_unsynced == len(run.outputs)
