"""seqwm-replay against a bag whose timing is known exactly: written here, from real runtimes.

The demo's bags (test_demo_runner) cover the live path; this pins replay's timing model on a
case the live path only hits by chance on a loaded machine (seen once in CI): the simulator runs
slower than real time, so capture stamps are closer together than the robot's receive times.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_team import POSES, TEAM, write_team  # noqa: E402

from seqwm_agent.node_params import check_values, settings_from_values
from seqwm_agent.replay import replay
from seqwm_agent.runtime.agent import AgentRuntime, Mode
from seqwm_agent.runtime.messages import (MocapSample, intent_to_msg, mocap_sample_to_msg,
                                          status_to_msg)
from seqwm_agent.runtime.scheduler import Trigger

NS = 1_000_000_000
DT = 0.1                       # the team's control tick
FRAME_DT = 0.02                # capture interval (50 Hz)
WALL_PER_FRAME = 0.06          # the simulator at a third of real time
T0 = 1_795_000_000.0           # capture clock at tick 0
W0 = 1_795_000_100.0           # recorder's (wall) clock at frame 0
M0 = 700.0                     # the robots' monotonic clock at frame 0


def params(k: int, model_dir: Path) -> dict:
    return {'robot_name': TEAM[k], 'order_index': k, 'team': list(TEAM), 'task': 'pushbox',
            'predecessor': TEAM[k - 1] if k else '', 'model_dir': str(model_dir),
            'deterministic': True, 'intent_deadline_s': 0.05, 'stale_timeout_s': 0.3}


def runtime(k: int, model_dir: Path) -> AgentRuntime:
    settings, _, task_cfg = settings_from_values(check_values(params(k, model_dir)))
    return AgentRuntime.load(settings, model_dir, task_cfg)


def slow_simulator_bag(bag: Path, model_dir: Path, ticks: int = 12) -> list:
    """Robot 2's side of a run whose frames reach it 60 ms apart while their stamps are 20 ms
    apart. Robot 1's intent of an even tick arrives 30 ms after the frame (robot 2 plans fresh
    on it); that of an odd tick is lost, and robot 2 misses the first three frames of an odd
    tick (best effort), so it waits on the fourth, until its deadline, 50 ms, while the next
    tick's frame is 40 ms later by stamp but 120 ms by the robot's clock. Returns robot 2's
    tick outputs; the bag holds what a recorder 2 ms behind the robots received."""
    from rclpy.serialization import serialize_message
    from seqwm_agent.bag import BagWriter
    lead, follower = runtime(0, model_dir), runtime(1, model_dir)
    events = []                        # (robot clock, order, kind, payload)
    for k in range(ticks * 5):
        sample = MocapSample.from_planar(T0 + k * FRAME_DT + 0.004, POSES, frame_number=k)
        events.append((M0 + k * WALL_PER_FRAME, k, 'frame', sample))
    records, outputs = [], []          # (robot clock, topic, type, message)

    def deliver(t: float, kind: str, payload) -> None:
        if kind == 'frame':
            records.append((t, '/mocap/frame', 'MocapFrame', mocap_sample_to_msg(payload)))
            for out in lead.on_frame(payload, t):
                if out.intent is not None and (out.tick % 2 == 0):
                    events.append((t + 0.03, -1, 'intent', out.intent))
            tick_index = payload.frame_number % 5
            if (payload.stamp_ns // int(DT * NS)) % 2 == 1 and tick_index < 3:
                return                                  # robot 2 missed it
            run(follower.on_frame(payload, t))
        else:
            records.append((t, f'/{TEAM[0]}/intent', 'Intent', intent_to_msg(payload)))
            run(follower.on_intent(payload, t))

    def run(outs) -> None:
        for out in outs:
            outputs.append(out)
            records.append((out.ran_s, f'/{TEAM[1]}/status', 'AgentStatus',
                            status_to_msg(out, TEAM[1], 1)))
            if out.intent is not None:
                records.append((out.ran_s, f'/{TEAM[1]}/intent', 'Intent',
                                intent_to_msg(out.intent)))

    while events:
        events.sort(key=lambda e: (e[0], e[1]))
        t, _, kind, payload = events.pop(0)
        due = follower.next_deadline()
        if due is not None and due <= t:
            run(follower.on_timer(due))
        deliver(t, kind, payload)
    writer = BagWriter(bag)
    for t, topic, kind, msg in sorted(records, key=lambda r: r[0]):
        writer.add_topic(topic, f'seqwm_msgs/msg/{kind}')
        writer.write(topic, int(round((t - M0 + 0.002 + W0) * NS)), serialize_message(msg))
    writer.close()
    return outputs


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory) -> Path:
    return write_team(tmp_path_factory.mktemp('team'))


def test_replay_times_ticks_by_the_robots_clock_when_the_simulator_runs_slow(tmp_path, model_dir):
    outputs = slow_simulator_bag(tmp_path / 'bag', model_dir)
    triggers = {Trigger(o.trigger) for o in outputs}
    # the case itself: fresh ticks on an intent, and ticks that ran at their deadline although
    # the next tick's frame is closer by capture stamp than the deadline
    assert {Trigger.INTENT, Trigger.DEADLINE} <= triggers, triggers
    waited = [o for o in outputs if o.trigger == Trigger.DEADLINE]
    stamps = sorted({o.stamp_ns for o in outputs})
    gaps = [b - a for a, b in zip(stamps, stamps[1:])
            if a in {o.stamp_ns for o in waited}]
    assert gaps and max(gaps) < 0.05 * NS, gaps
    assert Mode.STOPPED not in {o.mode for o in outputs}

    report = replay(tmp_path / 'bag', TEAM[1], params(1, model_dir))
    assert report.compared == len(outputs), report.to_json()
    assert report.decisions_identical, report.decision_differences()
    assert max(report.max_abs_diff) == 0.0
    np.testing.assert_array_equal(report.replayed, report.recorded)
