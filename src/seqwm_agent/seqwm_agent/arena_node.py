"""`arena` node: the simulated room for `sim:=true` runs.

Subscribes `/<robot>/cmd_vel` (what the topic backend sends), steps `ArenaSession` at the camera
rate and publishes the true poses on `/arena/truth` for the mocap bridge's `sim` source, plus the
episode state as JSON on `/arena/episode`. Agents only ever see the bridge's `/mocap/frame`, so
they cannot tell this room from the real one.

Time: a frame is stamped with this host's clock when it is taken, as a real bridge stamps its
capture times, so the agents' clock rules (ticks = stamp // dt, frames stamped ahead of the host
clock refused, out-of-order refused) are the same in simulation and on robots, and a stranger
cannot game a clock of the simulation's own. Physics advances one camera period per frame: if
the machine cannot keep up, simulated time runs slower than the stamps, and a control tick then
spans fewer camera frames (more control per simulated second, never less).
The episode starts once every robot's agent has published a status (so model loading does not
eat into the episode) and `start_grace_s` has passed, or after `start_timeout_s`. Camera frames
start with the episode: until then agents are up but stopped (no mocap), and every participant,
a recorder included, has had time to discover the others, so a bag holds every planning tick.
"""
from __future__ import annotations

import json
import math
import sys
import time

from geometry_msgs.msg import Twist
from rclpy.node import Node
from seqwm_common.node import (ARENA_EPISODE_TOPIC, ARENA_TRUTH_TOPIC, CMD_TOPIC, COMMAND_QOS,
                               LATCHED_QOS, MOCAP_QOS, STATUS_TOPIC, TRUTH_QOS, StartupError,
                               declare, run_node)
from seqwm_msgs.msg import AgentStatus, MocapFrame
from std_msgs.msg import String

from .arena import ArenaSession, arena_task_config
from .paths import task_config_source
from .runtime.messages import MocapSample, mocap_sample_to_msg

# QoS (seqwm_common.node): truth reliable (the bridge's sim source must see every frame),
# the episode latched (a late subscriber, the demo runner, still gets the final result),
# commands reliable keep last 1, statuses only as a sign of life (best effort).
#: name: (default, description)
PARAMETERS = {
    'task': ('pushbox', 'pushbox | gate | shepherd (loads seqwm_agent config/<task>.yaml)'),
    'task_config': ('', "task YAML or a packaged config's name instead of config/<task>.yaml "
                    "(e.g. gate_paper: the paper's Gate); relative paths: $SEQWM_ROOT, then "
                    "the share directory"),
    'robots': (['go2w_1', 'go2w_2'], 'robot names in order index (mocap body names)'),
    'seed': (0, 'episode seed (start poses when randomize is true)'),
    'randomize': (False, 'domain randomisation of the episode (start poses, target, box)'),
    'frame_rate_hz': (50.0, 'simulated camera rate; also the physics step rate of the arena'),
    'cmd_timeout_s': (1.0, 'a robot whose last cmd_vel is older stops (like the Go2 after Move)'),
    'start_timeout_s': (60.0, 'start the episode even if not every agent reported by then'),
    'start_grace_s': (3.0, 'wait this long after the last agent appeared before starting '
                      '(DDS discovery among all participants)'),
    'episode_s': (math.nan, 'episode length, s; NaN keeps the task config value'),
    'episodes': (1, 'episodes to run (0: without end); episode k uses seed + k'),
    'pause_s': (1.0, 'between episodes the cameras are off this long (the robots stop by their '
                'watchdog, as when a lab resets the room), then the next episode starts'),
    'target_x': (math.nan, 'PushBox target x (m); NaN keeps the task config value'),
    'target_y': (math.nan, 'PushBox target y (m); NaN keeps the task config value'),
}


class ArenaNode(Node):
    def __init__(self) -> None:
        super().__init__('arena')
        try:
            self._setup()
        except ValueError as exc:
            raise StartupError(str(exc), self.get_fully_qualified_name()) from None

    def _setup(self) -> None:
        p = {name: declare(self, name, default, desc, array_type=str if isinstance(default, list)
                           else None) for name, (default, desc) in PARAMETERS.items()}
        if p['frame_rate_hz'] <= 0 or p['frame_rate_hz'] > 1000:
            raise ValueError(f"parameter frame_rate_hz={p['frame_rate_hz']} outside (0, 1000]")
        self.robots = list(p['robots'])
        overrides = {'randomize': bool(p['randomize'])}
        if math.isfinite(p['episode_s']):
            if p['episode_s'] <= 0:
                raise ValueError(f"parameter episode_s={p['episode_s']} must be > 0")
            overrides['episode_s'] = float(p['episode_s'])
        if math.isfinite(p['target_x']) and math.isfinite(p['target_y']):
            overrides['target'] = [float(p['target_x']), float(p['target_y'])]
        source = task_config_source(p['task_config'], p['task'])
        cfg = arena_task_config(source, len(self.robots), 1.0 / p['frame_rate_hz'], overrides)
        if cfg.name != p['task']:
            raise ValueError(f"parameter task_config {source!r} is a {cfg.name} config, but "
                             f"task = {p['task']!r}")
        self.session = ArenaSession(cfg, self.robots, seed=int(p['seed']),
                                    cmd_timeout_s=float(p['cmd_timeout_s']))
        if int(p['episodes']) < 0 or not p['pause_s'] >= 0:
            raise ValueError(f"parameters episodes={p['episodes']} and pause_s={p['pause_s']} "
                             'must be >= 0')
        self.seed, self.episodes, self.pause_s = int(p['seed']), int(p['episodes']), float(p['pause_s'])
        self.episode_index = 0
        self.done_at: float | None = None
        self.start_timeout_s = float(p['start_timeout_s'])
        self.start_grace_s = float(p['start_grace_s'])
        self.t0 = time.time()
        self.frame_number = 0
        self.seen_status: dict[str, float] = {}
        self.all_seen_at: float | None = None

        self.truth_pub = self.create_publisher(MocapFrame, ARENA_TRUTH_TOPIC, TRUTH_QOS)
        self.episode_pub = self.create_publisher(String, ARENA_EPISODE_TOPIC, LATCHED_QOS)
        for robot in self.robots:
            self.create_subscription(Twist, f'/{robot}/{CMD_TOPIC}',
                                     lambda msg, r=robot: self._on_cmd(r, msg), COMMAND_QOS)
            self.create_subscription(AgentStatus, f'/{robot}/{STATUS_TOPIC}',
                                     lambda msg, r=robot: self._on_status(r), MOCAP_QOS)
        self.timer = self.create_timer(self.session.dt, self._on_frame)
        self.get_logger().info(
            f'arena: {p["task"]} with {self.robots}, camera {p["frame_rate_hz"]:.0f} Hz, '
            f'task params {self.session.task_params()}; waiting for agents')

    def _on_cmd(self, robot: str, msg: Twist) -> None:
        if not self.session.set_command(robot, msg.linear.x, msg.linear.y, msg.angular.z,
                                        self.session.sim_time()):
            self.get_logger().warn(f'non-finite cmd_vel from {robot} ignored',
                                   throttle_duration_sec=1.0)

    def _on_status(self, robot: str) -> None:
        self.seen_status.setdefault(robot, time.monotonic())

    def _maybe_start(self) -> None:
        res = self.session.result
        if res.running or res.done:
            return
        now = time.monotonic()
        if self.all_seen_at is None and len(self.seen_status) == len(self.robots):
            self.all_seen_at = now
        waited = time.time() - self.t0
        if (self.all_seen_at is not None and now - self.all_seen_at >= self.start_grace_s) \
                or waited > self.start_timeout_s:
            self.session.start()
            self.get_logger().info(
                f'episode started after {waited:.1f} s (agents seen: {sorted(self.seen_status)})')

    def _next_episode_due(self) -> bool:
        """After a finished episode, when more are to run: cameras off for pause_s, then the
        next episode (True while paused)."""
        if not self.session.result.done or 0 < self.episodes <= self.episode_index + 1:
            return False
        now = time.monotonic()
        if self.done_at is None:
            self.done_at = now
        if now - self.done_at < self.pause_s:
            self.frame_number += 1          # frame numbers run on while the cameras are off
            return True
        self.episode_index += 1
        self.done_at = None
        self.session.next_episode(self.seed + self.episode_index)
        self.session.start()
        self.get_logger().info(f'episode {self.episode_index} started (seed '
                               f'{self.seed + self.episode_index})')
        return False

    def _on_frame(self) -> None:
        self._maybe_start()
        if not (self.session.result.running or self.session.result.done):
            return      # the cameras come on with the episode: agents idle (stopped) until then
        if self._next_episode_due():
            return
        was_running = self.session.result.running
        res = self.session.step()
        self._publish_truth()
        if was_running or res.done:
            self.episode_pub.publish(String(data=json.dumps({
                **res.__dict__, 'episode': self.episode_index, 'robots': self.robots,
                'task_params': self.session.task_params(),
                'bodies': self.session.bodies()})))
        if was_running and res.done:
            self.get_logger().info(
                f'episode finished: success={res.success} time_to_goal={res.time_to_goal_s} '
                f'sim_time={res.sim_time_s:.2f} s collision={res.collision}')

    def _publish_truth(self) -> None:
        self.frame_number += 1
        sample = MocapSample.from_planar(0.0, self.session.bodies(), self.frame_number)
        sample.stamp_ns = time.time_ns()       # the host's clock, as a real bridge stamps
        msg = mocap_sample_to_msg(sample)
        self.truth_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    return run_node(ArenaNode, 'arena', args)


if __name__ == '__main__':
    sys.exit(main())
