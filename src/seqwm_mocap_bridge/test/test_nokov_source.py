"""The `nokov` path, driven with frames in the SDK's own memory layout.

Frames are built as ctypes `FrameOfMocapData` structures and pushed through the C-callable data
callback (a CFUNCTYPE thunk, exactly what the SDK calls), which decodes them with the same
`decode_frame` and hands them to the real pipeline.
"""
from __future__ import annotations

import ctypes
import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sdk_frames import Body, DescriptionsBuffer, PipelineSink, sdk_frame, yaw_quat_about  # noqa: E402

from seqwm_mocap_bridge.config import BridgeConfig  # noqa: E402
from seqwm_mocap_bridge.raw_frame import UNDEFINED_MM  # noqa: E402
from seqwm_mocap_bridge.sources.nokov import NokovSource  # noqa: E402
from seqwm_mocap_bridge.sources.nokov_layout import DATA_CALLBACK, decode_descriptions  # noqa: E402

NAMES = {1: 'go2w_1', 2: 'go2w_2', 7: 'box'}


class FakeSdkClient:
    """Stands in for the SDK binding: registers the callback as the C binding does."""

    def __init__(self, names: dict[int, str]) -> None:
        self.buffer = DescriptionsBuffer(names)
        self.callback = None
        self.closed = False

    def connect(self, server_ip: str, on_frame) -> None:
        self.callback = DATA_CALLBACK(on_frame)

    def descriptions(self) -> dict[int, str]:
        return decode_descriptions(self.buffer.descriptions)

    def close(self) -> None:
        self.closed = True


class Rig:
    def __init__(self, **params) -> None:
        params.setdefault('bodies', ['go2w_1', 'go2w_2', 'box'])
        self.cfg = BridgeConfig.from_dict(params)
        self.sink = PipelineSink(self.cfg)
        self.client = FakeSdkClient(NAMES)
        self.source = NokovSource('10.1.1.198', client_factory=lambda: self.client,
                                  frame_timeout_s=60.0)
        self.source.start(self.sink)
        wait_for(lambda: self.source._ready.is_set(), 5.0, what='fake SDK connection')

    def push(self, frame) -> tuple[int, int]:
        """Deliver through the C callback; returns wall time just before and after."""
        before = time.time_ns()
        self.client.callback(ctypes.pointer(frame), None)
        return before, time.time_ns()

    def close(self) -> None:
        self.source.stop()


@pytest.fixture
def rig_factory():
    rigs: list[Rig] = []

    def make(**params) -> Rig:
        rigs.append(Rig(**params))
        return rigs[-1]

    yield make
    for r in rigs:
        r.close()


def test_data_descriptions_name_the_sdk_ids():
    buf = DescriptionsBuffer(NAMES)
    assert decode_descriptions(buf.descriptions) == NAMES


def test_z_up_frame_is_published_in_metres_with_yaw(rig_factory):
    rig = rig_factory(axis_up='z')
    yaw = math.radians(30)
    rig.push(sdk_frame(10, [Body(1, 1000.0, 2000.0, 300.0, yaw_quat_about('z', yaw)),
                            Body(2, -1500.0, 250.0, 310.0),
                            Body(7, 2000.0, 0.0, 250.0)], latency=4.0))
    out = rig.sink.out[-1]
    assert out.names == ['go2w_1', 'go2w_2', 'box']
    assert out.tracked.tolist() == [True, True, True]
    np.testing.assert_allclose(out.positions, [[1.0, 2.0, 0.3], [-1.5, 0.25, 0.31],
                                               [2.0, 0.0, 0.25]], atol=1e-6)
    assert out.yaw[0] == pytest.approx(yaw, abs=1e-6)
    assert out.yaw[1] == pytest.approx(0.0, abs=1e-9)
    assert out.frame_number == 10


def test_y_up_frame_maps_to_z_up_arena_and_turn_about_sdk_y_is_yaw(rig_factory):
    rig = rig_factory(axis_up='y')
    yaw = math.radians(-75)
    # Y-up SDK: the floor is x-z; arena (x, y, z) = (x_s, -z_s, y_s).
    rig.push(sdk_frame(10, [Body(1, 1000.0, 300.0, -2000.0, yaw_quat_about('y', yaw)),
                            Body(7, 2000.0, 250.0, 0.0)], latency=4.0))
    out = rig.sink.out[-1]
    np.testing.assert_allclose(out.positions[0], [1.0, 2.0, 0.3], atol=1e-6)
    np.testing.assert_allclose(out.positions[2], [2.0, 0.0, 0.25], atol=1e-6)
    assert out.yaw[0] == pytest.approx(yaw, abs=1e-6)
    # Only a heading: the body stays level in the arena frame (quaternion about z only).
    assert abs(out.quaternions[0][0]) < 1e-6 and abs(out.quaternions[0][1]) < 1e-6
    # go2w_2 is configured but absent: reported untracked, pose undefined (NaN), not invented.
    assert out.tracked.tolist() == [True, False, True]
    assert np.isnan(out.positions[1]).all()


def test_stamp_is_receive_time_minus_reported_latency(rig_factory):
    rig = rig_factory()
    before, after = rig.push(sdk_frame(5, [Body(1, 0.0, 0.0, 300.0)], latency=12.5))
    out = rig.sink.out[-1]
    assert out.latency_ms == 12.5
    assert out.stamp_ns == rig.sink.receive_ns[-1] - 12_500_000
    assert before - 12_500_000 <= out.stamp_ns <= after - 12_500_000


def test_implausible_latency_is_not_subtracted_and_is_counted(rig_factory):
    rig = rig_factory(max_latency_ms=200.0)
    rig.push(sdk_frame(5, [Body(1, 0.0, 0.0, 300.0)], latency=-3.0))
    rig.push(sdk_frame(6, [Body(1, 0.0, 0.0, 300.0)], latency=float('nan')))
    assert [o.stamp_ns for o in rig.sink.out] == rig.sink.receive_ns
    assert [o.latency_ms for o in rig.sink.out] == [0.0, 0.0]
    assert rig.sink.counters['bad_latency'] == 2


def test_untracked_bodies_are_flagged_and_never_carry_the_last_good_pose(rig_factory):
    rig = rig_factory(tracking_valid_mask=0x1)
    good = [Body(1, 1000.0, 0.0, 300.0, params=1), Body(2, 0.0, 1000.0, 300.0, params=1),
            Body(7, 2000.0, 0.0, 250.0, params=1)]
    rig.push(sdk_frame(1, good))
    assert rig.sink.out[-1].tracked.all()
    # Frame 2: go2w_1 has no solution (all-zero quaternion), go2w_2 has its tracking flag
    # cleared although its pose looks fine, box carries the SDK's UNDEFINED sentinel.
    rig.push(sdk_frame(2, [Body(1, 0.0, 0.0, 0.0, (0.0, 0.0, 0.0, 0.0), params=1),
                           Body(2, 0.0, 1000.0, 300.0, params=0),
                           Body(7, UNDEFINED_MM, UNDEFINED_MM, UNDEFINED_MM, params=1)]))
    out = rig.sink.out[-1]
    assert out.tracked.tolist() == [False, False, False]
    assert np.isnan(out.positions).all() and np.isnan(out.quaternions).all()
    assert out.reasons == {'go2w_1': 'untracked', 'go2w_2': 'untracked', 'box': 'untracked'}
    assert rig.sink.counters['untracked'] == 3
    rig.push(sdk_frame(3, good))
    assert rig.sink.out[-1].tracked.all()


def test_frozen_pose_resend_is_treated_as_stale(rig_factory):
    rig = rig_factory(frozen_frames=3, bodies=['go2w_1'])
    for n in range(1, 5):   # the same bits four times: the SDK is re-sending a stale solution
        rig.push(sdk_frame(n, [Body(1, 1000.25, 0.5, 300.125)]))
    assert [o.tracked[0] for o in rig.sink.out] == [True, True, False, False]
    assert rig.sink.counters['frozen'] == 2
    rig.push(sdk_frame(5, [Body(1, 1000.5, 0.5, 300.125)]))
    assert rig.sink.out[-1].tracked[0]


def test_jump_beyond_max_speed_is_rejected_for_that_frame_and_counted(rig_factory):
    rig = rig_factory(max_speed_mps=3.0, jump_margin_m=0.02, reacquire_frames=3,
                      bodies=['go2w_1', 'box'])
    t0 = time.time_ns()
    frames = [(1, 1000.0), (2, 1010.0), (3, 6000.0), (4, 1030.0)]   # frame 3: +5 m in one frame
    for n, x in frames:
        frame = sdk_frame(n, [Body(1, x, 0.0, 300.0), Body(7, 2000.0, 0.0, 250.0)])
        # Deliver at a 10 ms camera period so speeds are well defined.
        while time.time_ns() < t0 + n * 10_000_000:
            time.sleep(0.001)
        rig.push(frame)
    tracked = [o.tracked.tolist() for o in rig.sink.out]
    assert tracked == [[True, True], [True, True], [False, True], [True, True]]
    assert rig.sink.out[2].reasons == {'go2w_1': 'jump'}
    assert np.isnan(rig.sink.out[2].positions[0]).all()
    assert rig.sink.out[3].positions[0][0] == pytest.approx(1.03)
    assert rig.sink.counters['jump'] == 1
    assert any('go2w_1 not tracked (jump)' in e[2] and 'm/s > 3 m/s' in e[2]
               for e in rig.sink.events)


def test_body_that_really_moved_is_reacquired_after_consistent_frames(rig_factory):
    rig = rig_factory(max_speed_mps=3.0, reacquire_frames=3, bodies=['go2w_1'])
    base = time.time_ns()
    xs = [1000.0, 5000.0, 5001.0, 5002.0, 5003.0]
    for n, x in enumerate(xs, start=1):
        while time.time_ns() < base + n * 10_000_000:
            time.sleep(0.001)
        rig.push(sdk_frame(n, [Body(1, x, 0.0, 300.0)]))
    assert [bool(o.tracked[0]) for o in rig.sink.out] == [True, False, False, True, True]
    assert rig.sink.counters['reacquired'] == 1


def test_nan_and_inf_are_rejected_like_jumps(rig_factory):
    rig = rig_factory(bodies=['go2w_1', 'go2w_2'])
    rig.push(sdk_frame(1, [Body(1, float('nan'), 0.0, 300.0), Body(2, 0.0, 0.0, 300.0)]))
    rig.push(sdk_frame(2, [Body(1, 0.0, 0.0, 300.0),
                           Body(2, 0.0, 0.0, 300.0, (0.0, 0.0, float('inf'), 1.0))]))
    assert [o.tracked.tolist() for o in rig.sink.out] == [[False, True], [True, False]]
    assert rig.sink.out[0].reasons == {'go2w_1': 'non_finite'}
    assert rig.sink.counters['non_finite'] == 2


def test_non_unit_quaternion_is_rejected(rig_factory):
    rig = rig_factory(bodies=['go2w_1'])
    rig.push(sdk_frame(1, [Body(1, 0.0, 0.0, 300.0, (0.0, 0.0, 0.5, 0.5))]))
    assert rig.sink.out[-1].reasons == {'go2w_1': 'bad_quaternion'}


def test_drops_duplicates_and_out_of_order_frames_are_counted_and_not_republished(rig_factory):
    rig = rig_factory(bodies=['go2w_1'])
    for n in (100, 101, 104, 104, 103, 105, 105):
        rig.push(sdk_frame(n, [Body(1, 1000.0 + n, 0.0, 300.0)]))
    assert [o.frame_number for o in rig.sink.out] == [100, 101, 104, 105]
    assert rig.sink.out[2].dropped_before == 2
    c = rig.sink.counters
    assert (c['dropped_frames'], c['duplicate_frames'], c['out_of_order_frames']) == (2, 2, 1)
    assert (c['frames_in'], c['frames_out']) == (7, 4)


def test_frame_counter_restart_is_a_reset_not_a_flood_of_drops(rig_factory):
    rig = rig_factory(bodies=['go2w_1'], frame_reset_gap=1000)
    for n in (500000, 500001, 3, 4):
        rig.push(sdk_frame(n, [Body(1, 1000.0, 0.0, 300.0)]))
    assert [o.frame_number for o in rig.sink.out] == [500000, 500001, 3, 4]
    assert rig.sink.counters['dropped_frames'] == 0
    assert rig.sink.counters['sequence_resets'] >= 1


def test_corrupt_body_count_is_clamped_not_trusted(rig_factory):
    rig = rig_factory(bodies=['go2w_1'])
    frame = sdk_frame(1, [Body(1, 1000.0, 0.0, 300.0)])
    frame.nRigidBodies = 10 ** 6
    rig.push(frame)
    frame.nRigidBodies = -5
    frame.iFrame = 2
    rig.push(frame)
    assert [o.tracked.tolist() for o in rig.sink.out] == [[True], [False]]


def test_unnamed_sdk_id_is_ignored_with_a_message(rig_factory):
    rig = rig_factory(bodies=[])
    rig.push(sdk_frame(1, [Body(1, 0.0, 0.0, 300.0), Body(42, 0.0, 0.0, 300.0)]))
    assert rig.sink.out[-1].names == ['go2w_1']
    assert rig.sink.counters['unnamed_body'] == 1
    assert any('SDK body ID 42 has no name' in e[2] for e in rig.sink.events)


# --------------------------------------------------------------------------------------------
# The ctypes binding against a compiled stand-in for libnokov_sdk.so.

STUB = Path(__file__).resolve().parent / 'fake_nokov_sdk.c'


@pytest.fixture(scope='module')
def stub_library(tmp_path_factory) -> Path:
    import shutil
    import subprocess

    cc = shutil.which('cc') or shutil.which('gcc')
    if cc is None:
        pytest.skip('no C compiler to build the stand-in SDK library')
    out = tmp_path_factory.mktemp('sdk') / 'libnokov_sdk.so'
    subprocess.run([cc, '-shared', '-fPIC', '-O1', '-pthread', '-o', str(out), str(STUB)],
                   check=True, capture_output=True)
    return out


def test_ctypes_structures_have_the_c_compilers_layout(stub_library):
    from seqwm_mocap_bridge.sources import nokov_layout as L

    lib = ctypes.CDLL(str(stub_library))
    lib.stub_layout.argtypes = [ctypes.POINTER(ctypes.c_size_t)]
    out = (ctypes.c_size_t * 9)()
    lib.stub_layout(out)
    expected = [ctypes.sizeof(L.FrameOfMocapData), L.FrameOfMocapData.RigidBodies.offset,
                L.FrameOfMocapData.fLatency.offset, L.FrameOfMocapData.iTimeStamp.offset,
                L.FrameOfMocapData.params.offset, ctypes.sizeof(L.RigidBodyData),
                L.RigidBodyData.params.offset, ctypes.sizeof(L.DataDescriptions),
                ctypes.sizeof(L.RigidBodyDescription)]
    assert list(out) == expected


def test_ctypes_client_reconnects_with_backoff_and_delivers_named_frames(stub_library):
    from seqwm_mocap_bridge.sources.nokov import CtypesClient

    lib = CtypesClient.load(str(stub_library))
    lib.stub_configure.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_float]
    lib.stub_configure(2, 20, 3.0)   # refuse 2 connections, then stream 20 frames and go quiet
    cfg = BridgeConfig.from_dict({'bodies': ['go2w_1', 'box']})
    sink = PipelineSink(cfg)
    source = NokovSource('127.0.0.1', str(stub_library), reconnect_initial_s=0.05,
                         reconnect_max_s=0.2, frame_timeout_s=0.3,
                         client_factory=lambda: CtypesClient(lib))
    source.start(sink)
    try:
        wait_for(lambda: len(sink.out) >= 20, 10.0, what='20 frames from the stand-in SDK')
        # The stream went quiet: the source gives up on the connection and connects again.
        wait_for(lambda: source.connect_attempts >= 4, 10.0, what='reconnect after silence')
    finally:
        source.stop()
    assert source.delays[:2] == [0.05, 0.1]           # back-off doubled after each refusal
    assert any('error code 3' in e[2] for e in sink.events)
    first = sink.out[0]
    assert first.names == ['go2w_1', 'box']             # names from the data descriptions
    assert first.tracked.tolist() == [True, True]
    np.testing.assert_allclose(first.positions[1], [2.0, 0.0, 0.25], atol=1e-6)
    assert first.latency_ms == pytest.approx(3.0)
    numbers = [o.frame_number for o in sink.out[:20]]
    assert numbers == list(range(numbers[0], numbers[0] + 20))
    assert sink.counters['dropped_frames'] == 0


def test_vendor_python_wrapper_is_preferred_and_feeds_the_same_decoder(monkeypatch):
    """A stand-in for the nokovpy module (its PySDKClient surface), found by module name."""
    import types

    from seqwm_mocap_bridge.sources import nokov_layout as L
    from seqwm_mocap_bridge.sources.nokov import WrapperClient

    buffer = DescriptionsBuffer(NAMES)

    class PySDKClient:
        instances: list['PySDKClient'] = []

        def __init__(self) -> None:
            self.handler = None
            PySDKClient.instances.append(self)

        def PySetDataCallback(self, handler, user):   # noqa: N802 - the vendor's names
            self.handler = L.DATA_CALLBACK(handler)   # the wrapper wraps it in a CFUNCTYPE

        def Initialize(self, ip: bytes) -> int:       # noqa: N802
            return 0 if ip == b'10.1.1.198' else 3

        def PyGetDataDescriptions(self, pointer) -> int:   # noqa: N802
            ctypes.pointer(pointer)[0] = ctypes.pointer(buffer.descriptions)
            return 0

    module = types.ModuleType('nokov.nokovsdk')
    module.PySDKClient = PySDKClient
    module.DataDescriptions = L.DataDescriptions
    monkeypatch.setitem(sys.modules, 'nokov', types.ModuleType('nokov'))
    monkeypatch.setitem(sys.modules, 'nokov.nokovsdk', module)

    assert WrapperClient.find() is module
    cfg = BridgeConfig.from_dict({'bodies': ['go2w_1', 'box']})
    sink = PipelineSink(cfg)
    source = NokovSource('10.1.1.198', frame_timeout_s=60.0)
    source.start(sink)
    try:
        wait_for(lambda: source._ready.is_set(), 5.0, what='wrapper connection')
        assert source.describe() == 'nokov 10.1.1.198 via nokovpy (nokov.nokovsdk)'
        PySDKClient.instances[-1].handler(
            ctypes.pointer(sdk_frame(3, [Body(7, 2000.0, 0.0, 250.0)], latency=2.0)), None)
    finally:
        source.stop()
    assert sink.out[-1].names == ['go2w_1', 'box']
    assert sink.out[-1].tracked.tolist() == [False, True]
