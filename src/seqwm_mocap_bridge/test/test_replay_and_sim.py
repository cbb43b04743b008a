"""Recorded files and the simulated arena become SDK frames that the real pipeline turns back
into exactly what was recorded / simulated (in-process; the cross-process tests are elsewhere)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sdk_frames import PipelineSink  # noqa: E402

from seqwm_mocap_bridge.config import BridgeConfig  # noqa: E402
from seqwm_mocap_bridge.conversion import BodyMap  # noqa: E402
from seqwm_mocap_bridge.recording import (RecordedFrame, RecordingError, read_recording,  # noqa: E402
                                          write_bag, write_csv)
from seqwm_mocap_bridge.sources.nokov import SourceError  # noqa: E402
from seqwm_mocap_bridge.sources.replay import ReplaySource  # noqa: E402
from seqwm_mocap_bridge.sources.sim import arena_to_raw_frame  # noqa: E402


def recording(n: int = 20, period_ns: int = 50_000_000, first: int = 500) -> list[RecordedFrame]:
    """A robot driving a slow arc next to a box that is occluded every 7th frame."""
    t0 = 1_700_000_000_123_456_789
    frames = []
    for i in range(n):
        yaw = 0.05 * i
        frames.append(RecordedFrame(
            frame_number=first + i, stamp_ns=t0 + i * period_ns, latency_ms=4.25 + 0.01 * i,
            names=['go2w_1', 'box'],
            positions=np.array([[1.0 + 0.02 * i, -0.5 + 0.01 * i, 0.31], [2.0, 0.1, 0.25]]),
            quaternions=np.array([[0, 0, np.sin(yaw / 2), np.cos(yaw / 2)], [0, 0, 0, 1.0]]),
            tracked=np.array([True, i % 7 != 3])))
    return frames


def assert_same_frame(out, rec: RecordedFrame) -> None:
    assert out.frame_number == rec.frame_number
    assert out.stamp_ns == rec.stamp_ns
    assert out.names == rec.names
    assert out.tracked.tolist() == rec.tracked.tolist()
    np.testing.assert_allclose(out.positions[rec.tracked], rec.positions[rec.tracked],
                               atol=1e-12)
    np.testing.assert_allclose(out.quaternions[rec.tracked], rec.quaternions[rec.tracked],
                               atol=1e-12)
    assert np.isnan(out.positions[~rec.tracked]).all()


@pytest.mark.parametrize('kind', ['csv', 'mcap', 'sqlite3'])
def test_recording_round_trips_through_csv_and_rosbag2(tmp_path, kind):
    frames = recording(8)
    path = tmp_path / ('rec.csv' if kind == 'csv' else 'bag')
    if kind == 'csv':
        write_csv(path, frames)
    else:
        write_bag(path, frames, topic='/mocap/frame', storage=kind)
    back = read_recording(path)
    assert [f.frame_number for f in back] == [f.frame_number for f in frames]
    for a, b in zip(back, frames):
        assert (a.stamp_ns, a.names, a.tracked.tolist()) == (b.stamp_ns, b.names,
                                                              b.tracked.tolist())
        np.testing.assert_array_equal(a.positions, b.positions)
        assert a.latency_ms == pytest.approx(b.latency_ms, abs=1e-5)   # float32 in the message


def test_unreadable_recordings_are_refused_with_the_reason(tmp_path):
    bad = tmp_path / 'bad.csv'
    bad.write_text('frame,stamp\n1,2\n')
    with pytest.raises(RecordingError, match='lacks column'):
        read_recording(bad)
    with pytest.raises(SourceError, match='no such file'):
        ReplaySource(str(tmp_path / 'missing.csv'), BodyMap())


@pytest.mark.parametrize('axis_up', ['z', 'y'])
def test_replay_reproduces_the_recording_through_the_sdk_layout(tmp_path, axis_up):
    frames = recording(20, period_ns=20_000_000)   # 50 Hz, 0.4 s
    path = tmp_path / 'rec.csv'
    write_csv(path, frames)
    cfg = BridgeConfig.from_dict({'source': 'replay', 'replay_file': str(path),
                                  'axis_up': axis_up, 'replay_rate': 2.0})
    sink = PipelineSink(cfg)
    source = ReplaySource(str(path), sink.body_map, axis_up=axis_up, rate=2.0)
    start = time.monotonic()
    source.start(sink)
    try:
        wait_for(lambda: source.finished, 10.0, what='end of replay')
    finally:
        source.stop()
    elapsed = time.monotonic() - start
    assert len(sink.out) == 20
    for out, rec in zip(sink.out, frames):
        assert_same_frame(out, rec)
    assert elapsed >= 0.38 / 2.0   # paced by the recorded stamps, not dumped at once
    assert sink.counters['untracked'] == 3 and sink.counters['dropped_frames'] == 0


def test_replay_loop_restarts_the_sequence_and_keeps_stamps_increasing(tmp_path):
    frames = recording(5, period_ns=10_000_000)
    path = tmp_path / 'rec.csv'
    write_csv(path, frames)
    cfg = BridgeConfig.from_dict({'source': 'replay', 'replay_file': str(path)})
    sink = PipelineSink(cfg)
    source = ReplaySource(str(path), sink.body_map, rate=1.0, loop=True)
    source.start(sink)
    try:
        wait_for(lambda: len(sink.out) >= 12, 10.0, what='two loops')
    finally:
        source.stop()
    stamps = [o.stamp_ns for o in sink.out]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert [o.frame_number for o in sink.out[:7]] == [500, 501, 502, 503, 504, 500, 501]
    assert sink.resets and sink.counters['out_of_order_frames'] == 0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-9, 9), st.floats(-9, 9), st.floats(0, 2),
                          st.floats(-3.14, 3.14)), min_size=1, max_size=4),
       st.sampled_from(['z', 'y']), st.sampled_from(['ms', 's', 'us']))
def test_sim_frames_round_trip_through_the_pipeline(bodies, axis_up, unit):
    names = [f'b{k}' for k in range(len(bodies))]
    p = np.array([[x, y, z] for x, y, z, _ in bodies])
    q = np.array([[0, 0, np.sin(a / 2), np.cos(a / 2)] for *_, a in bodies])
    cfg = BridgeConfig.from_dict({'axis_up': axis_up, 'latency_unit': unit})
    sink = PipelineSink(cfg)
    latency_ms = 7.3
    raw = arena_to_raw_frame(42, names, p, q, [True] * len(names), sink.body_map, axis_up,
                             latency_ms / {'ms': 1.0, 's': 1000.0, 'us': 0.001}[unit])
    stamp = 1_000_000_000_000
    sink.frame(raw, stamp + 7_300_000)
    out = sink.out[0]
    assert out.stamp_ns == stamp and out.names == names
    at_origin = np.all(p == 0.0, axis=1)           # exactly the origin: the SDK's no-solution form
    assert out.tracked.tolist() == (~at_origin).tolist()
    np.testing.assert_allclose(out.positions[~at_origin], p[~at_origin], atol=1e-9)
    np.testing.assert_allclose(np.asarray(out.yaw)[~at_origin],
                               np.array([a for *_, a in bodies])[~at_origin], atol=1e-9)


def test_sim_noise_and_dropouts_are_seeded_and_dropouts_look_like_sdk_occlusion():
    bm = BodyMap()
    rng = np.random.default_rng(3)
    p = np.tile([1.0, 2.0, 0.3], (200, 1))
    q = np.tile([0, 0, 0, 1.0], (200, 1))
    names = [f'b{k}' for k in range(200)]
    raw = arena_to_raw_frame(1, names, p, q, [True] * 200, bm, 'z', 5.0, rng,
                             noise_mm=2.0, dropout_prob=0.25)
    occluded = [b for b in raw.bodies if (b.qx, b.qy, b.qz, b.qw) == (0, 0, 0, 0)]
    assert 25 < len(occluded) < 80
    xs = np.array([b.x for b in raw.bodies if b.qw != 0])
    assert 1.0 < xs.std() < 3.0 and abs(xs.mean() - 1000.0) < 1.0


def _stream(positions_per_frame, rate_hz: float = 100.0):
    """Frames of one body 'go2w_1' (z up, metres) through the pipeline with default settings."""
    cfg = BridgeConfig.from_dict({})
    sink = PipelineSink(cfg)
    q = np.array([[0.0, 0.0, 0.0, 1.0]])
    t0 = 2_000_000_000_000
    for i, pos in enumerate(positions_per_frame):
        raw = arena_to_raw_frame(100 + i, ['go2w_1'], np.array([pos]), q, [True], sink.body_map,
                                 'z', 5.0)
        sink.frame(raw, t0 + int(i * 1e9 / rate_hz) + 5_000_000)
    return sink


def test_a_pose_re_sent_unchanged_is_untracked_by_default():
    """Issue 15 hole 4: frozen-pose detection was off by default; a stream that froze one robot
    for 1 s was published tracked for 100 of 100 frames, up to 1 m off. Default now: 10
    bit-identical frames (0.1 s at 100 Hz) make it untracked."""
    rng = np.random.default_rng(1)
    moving = [[1.0 + 0.01 * i + rng.normal(0, 1e-4), 1.0, 0.3] for i in range(20)]
    frozen = [moving[-1]] * 100                                 # the SDK re-sends its last pose
    sink = _stream(moving + frozen)
    tracked = [bool(f.tracked[0]) for f in sink.out]
    assert all(tracked[:28])                  # moving; its last pose then 9 times in all: ok
    assert not any(tracked[28:]), tracked.index(False)      # the 10th identical one: frozen
    assert sink.pipeline.counters['frozen'] >= 90


def test_a_body_reported_exactly_at_the_origin_is_never_published_as_tracked():
    """Issue 15 hole 4: (0, 0, 0) with a unit quaternion was rejected as a jump for a few frames,
    then re-acquired and published as tracked at the origin."""
    rng = np.random.default_rng(2)
    moving = [[3.0 + rng.normal(0, 1e-4), 1.0, 0.3] for _ in range(10)]
    sink = _stream(moving + [[0.0, 0.0, 0.0]] * 50)
    assert all(bool(f.tracked[0]) for f in sink.out[:10])
    assert not any(bool(f.tracked[0]) for f in sink.out[10:])
