"""The bridge as a real process over DDS: replay and sim sources, and a refused start-up."""
from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import wait_for

from seqwm_mocap_bridge.recording import RecordedFrame, write_bag, write_csv

BRIDGE = 'seqwm_mocap_bridge.bridge_node'
RECORDED_HZ = 20.0


def recorded(n: int = 30) -> list[RecordedFrame]:
    t0 = 1_700_000_000_000_000_000
    period = int(1e9 / RECORDED_HZ)
    frames = []
    rng = np.random.default_rng(0)
    for i in range(n):
        yaw = 0.03 * i
        noise = rng.normal(0.0, 1e-4, 3)       # a resting box still carries marker noise
        frames.append(RecordedFrame(
            frame_number=1000 + i, stamp_ns=t0 + i * period, latency_ms=5.5,
            names=['go2w_1', 'go2w_2', 'box'],
            positions=np.array([[1.0 + 0.01 * i, 1.25, 0.3], [1.15, -1.25 + 0.005 * i, 0.3],
                                [2.0, 0.0, 0.25] + noise]),
            quaternions=np.array([[0, 0, np.sin(yaw / 2), np.cos(yaw / 2)], [0, 0, 0, 1.0],
                                  [0, 0, 0, 1.0]]),
            tracked=np.array([True, i % 10 != 4, True])))
    return frames


class Listener:
    """A test-process node collecting /mocap/frame (and optionally /mocap/status)."""

    def __init__(self, ctx) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from seqwm_msgs.msg import MocapFrame

        self.node = Node('mocap_listener', context=ctx)
        self.frames: list[tuple[float, MocapFrame]] = []
        self.status: list[DiagnosticArray] = []
        self.node.create_subscription(
            MocapFrame, '/mocap/frame', lambda m: self.frames.append((time.monotonic(), m)),
            QoSProfile(depth=200, reliability=ReliabilityPolicy.BEST_EFFORT))
        self.node.create_subscription(DiagnosticArray, '/mocap/status', self.status.append, 10)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=ctx)
        self.executor.add_node(self.node)

    def spin_until(self, predicate, timeout: float, proc, spawn, what: str) -> None:
        def step() -> bool:
            self.executor.spin_once(timeout_sec=0.02)
            assert proc.poll() is None, spawn.log_text(proc)
            return predicate()
        try:
            wait_for(step, timeout, interval=0.0, what=what)
        except AssertionError as exc:
            raise AssertionError(f'{exc}; received frames '
                                 f'{[m.frame_number for _, m in self.frames]}; bridge log:\n'
                                 f'{spawn.log_text(proc)}') from None

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()

    def status_value(self, key: str) -> str:
        return {kv.key: kv.value for kv in self.status[-1].status[0].values}[key]


def test_replay_process_publishes_the_recording_intact_in_order_at_the_recorded_rate(
        spawn, rclpy_context, tmp_path):
    frames = recorded(30)
    path = tmp_path / 'mocap_bag'
    write_bag(path, frames)   # MCAP rosbag2, as `ros2 bag record` would write
    listener = Listener(rclpy_context)
    try:
        proc = spawn.start([BRIDGE, '--ros-args', '-p', 'source:=replay',
                            '-p', f'replay_file:={path}', '-p', 'replay_wait_subscribers:=1',
                            '-p', 'replay_start_delay_s:=0.5', '-p', 'status_period_s:=0.25'],
                           'bridge', python_module=True)
        listener.spin_until(lambda: any(m.frame_number == 1029 for _, m in listener.frames),
                            30.0, proc, spawn, 'the last recorded frame')
        listener.spin_until(lambda: listener.status and
                            listener.status_value('frames_out') == '30', 5.0, proc, spawn,
                            'status after the replay')
    finally:
        listener.close()

    got = [m for _, m in listener.frames]
    numbers = [m.frame_number for m in got]
    assert numbers == sorted(set(numbers)), 'frames out of order or repeated'
    assert len(got) >= 27, f'only {len(got)} of 30 frames arrived'   # best effort, localhost
    by_number = {f.frame_number: f for f in frames}
    for msg in got:
        rec = by_number[msg.frame_number]
        assert msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec == rec.stamp_ns
        assert msg.header.frame_id == 'arena'
        assert list(msg.names) == rec.names
        assert list(msg.tracked) == rec.tracked.tolist()
        assert msg.latency_ms == pytest.approx(5.5)
        for k, pose in enumerate(msg.poses):
            p = [pose.position.x, pose.position.y, pose.position.z]
            q = [pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]
            if rec.tracked[k]:
                np.testing.assert_allclose(p, rec.positions[k], atol=1e-9)
                np.testing.assert_allclose(q, rec.quaternions[k], atol=1e-9)
            else:
                assert np.isnan(p).all()   # an occluded body never shows its last pose
    times = [t for t, _ in listener.frames]
    rate = (numbers[-1] - numbers[0]) / (times[-1] - times[0])
    assert 10.0 < rate < 40.0, f'received at {rate:.1f} Hz, recorded at {RECORDED_HZ} Hz'
    assert listener.status_value('untracked') == '3'
    assert listener.status_value('dropped_frames') == '0'


def test_sim_process_turns_arena_truth_into_the_same_frames_at_the_truth_stamps(
        spawn, rclpy_context):
    import rclpy  # noqa: F401
    from geometry_msgs.msg import Point, Pose, Quaternion
    from seqwm_msgs.msg import MocapFrame

    listener = Listener(rclpy_context)
    truth_pub = listener.node.create_publisher(MocapFrame, '/arena/truth', 10)
    try:
        proc = spawn.start([BRIDGE, '--ros-args', '-p', 'source:=sim',
                            '-p', "axis_up:='y'",          # quoted: a bare y is a YAML boolean
                            '-p', 'latency_ms:=15.0', '-p', 'bodies:=[go2w_1,box]',
                            '-p', 'max_speed_mps:=3.0', '-p', 'status_period_s:=0.25',
                            '-p', 'sim_noise_mm:=0.0'],         # exact poses to compare
                           'bridge', python_module=True)
        listener.spin_until(lambda: truth_pub.get_subscription_count() >= 1 and
                            listener.node.count_publishers('/mocap/frame') >= 1,
                            30.0, proc, spawn, 'the bridge to subscribe to /arena/truth')
        time.sleep(0.3)
        sent: dict[int, MocapFrame] = {}
        t0 = 1_234_000_000_000   # simulated capture times, unrelated to the wall clock
        for i in range(20):
            yaw = -0.05 * i
            box_x = 12.0 if i == 12 else 2.0 + 0.002 * i   # frame 12: a 10 m teleport
            msg = MocapFrame()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t0 + i * 50_000_000,
                                                                    1_000_000_000)
            msg.header.frame_id = 'arena'
            msg.frame_number = 1 + i
            msg.names = ['go2w_1', 'box', 'sheep']
            msg.poses = [Pose(position=Point(x=1.0 + 0.01 * i, y=-1.25, z=0.3),
                              orientation=Quaternion(z=float(np.sin(yaw / 2)),
                                                     w=float(np.cos(yaw / 2)))),
                         Pose(position=Point(x=box_x, y=0.0, z=0.25),
                              orientation=Quaternion(w=1.0)),
                         Pose(position=Point(x=3.0, y=1.0, z=0.2), orientation=Quaternion(w=1.0))]
            msg.tracked = [i != 5, True, True]
            if i == 15:
                msg.poses[0].position.y = float('nan')      # bad input: rejected, not fatal
            if i == 8:
                broken = MocapFrame(names=['go2w_1', 'box'], poses=[Pose()], frame_number=99)
                truth_pub.publish(broken)                    # lengths disagree: ignored
            truth_pub.publish(msg)
            sent[msg.frame_number] = msg
            listener.spin_until(lambda: True, 1.0, proc, spawn, 'spin')
            time.sleep(0.05)
        listener.spin_until(lambda: any(m.frame_number == 20 for _, m in listener.frames),
                            10.0, proc, spawn, 'the last simulated frame')
        listener.spin_until(lambda: listener.status and
                            listener.status_value('frames_out') == '20', 5.0, proc, spawn,
                            'status after the last frame')
    finally:
        listener.close()

    got = {m.frame_number: m for _, m in listener.frames}
    assert len(got) >= 18
    for n, msg in got.items():
        truth = sent[n]
        assert msg.header.stamp == truth.header.stamp   # capture time = truth stamp, exactly
        assert msg.latency_ms == pytest.approx(15.0)
        assert list(msg.names) == ['go2w_1', 'box']      # configured bodies only, in order
        for k, name in enumerate(msg.names):
            t = truth.poses[truth.names.index(name)]
            p = msg.poses[k]
            if msg.tracked[k]:
                np.testing.assert_allclose(
                    [p.position.x, p.position.y, p.position.z, p.orientation.z,
                     p.orientation.w],
                    [t.position.x, t.position.y, t.position.z, t.orientation.z,
                     t.orientation.w], atol=1e-9)
    if 6 in got:
        assert list(got[6].tracked) == [False, True]     # occluded in the arena
    if 13 in got:
        assert list(got[13].tracked) == [True, False]    # the teleport is rejected as a jump
    if 16 in got:
        assert list(got[16].tracked) == [False, True]    # NaN in the truth
    assert listener.status_value('jump') == '1'
    assert listener.status_value('untracked') == '1'
    assert listener.status_value('non_finite') == '1'
    assert listener.status_value('frames_in') == '20'    # the malformed message never got in


def test_bridge_refuses_to_start_when_the_axis_convention_is_wrong(spawn, tmp_path):
    frames = recorded(5)
    path = tmp_path / 'rec.csv'
    write_csv(path, frames)
    # The box lies on the floor plane at 0.25 m; claim it is at 1.5 m.
    proc = spawn.start([BRIDGE, '--ros-args', '-p', 'source:=replay',
                        '-p', f'replay_file:={path}', '-p', 'reference_body:=box',
                        '-p', 'reference_up_m:=1.5', '-p', 'reference_tolerance_m:=0.1'],
                       'bridge', python_module=True)
    wait_for(lambda: proc.poll() is not None, 30.0, what='the bridge to exit')
    log = spawn.log_text(proc)
    assert proc.returncode == 2, log
    assert "reference body 'box': up coordinate 0.250 m" in log
    assert 'Refusing to start' in log
