"""Soak: the simulated 2-robot PushBox team running episode after episode, for a long time.

What a lab does on a robot day: the team runs for an hour. This runs the real graph as processes
over DDS (arena restarting episodes with a new seed each, the mocap bridge, one agent per robot
with the shipped model) and watches it from outside, as a monitor on the same domain would:

* per robot, per window (default 5 minutes): planning p50/p99 of its planning ticks, tick rate
  (planning ticks per second of the window), intent modes, inputs rejected (by reason), watchdog
  stops while an episode ran (stops while the cameras are off between episodes are by design),
  CPU share and RSS of its process at the window's end;
* RSS at start (after the first minute of episodes: model loaded, allocator warm) and at the
  end, and the growth between them; the last window's planning p99 against the first's (the
  baseline of this run: machines are noisy, so the figure is a ratio);
* episodes run and succeeded.

    python bench/soak.py                       # 3 minutes, 1-minute windows (make bench)
    python bench/soak.py --minutes 60 --window-min 5 --plot docs/img/soak.png

Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import emit  # noqa: E402

ROBOTS = ['go2w_1', 'go2w_2']
PAGE = os.sysconf('SC_PAGE_SIZE')
TICKS_PER_S = os.sysconf('SC_CLK_TCK')


def rss_mb(pid: int) -> float | None:
    try:
        with open(f'/proc/{pid}/statm') as f:
            return int(f.read().split()[1]) * PAGE / 2**20
    except OSError:
        return None


def cpu_s(pid: int) -> float | None:
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS_PER_S
    except OSError:
        return None


@dataclass
class Robot:
    pid: int
    statuses: list[tuple[float, int, int, float, dict]] = field(default_factory=list)
    samples: list[tuple[float, float | None, float | None]] = field(default_factory=list)


class Monitor:
    """An rclpy node on the team's domain: statuses of every robot, the arena's episodes."""

    def __init__(self, robots: list[str]) -> None:
        import rclpy
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from seqwm_msgs.msg import AgentStatus
        from std_msgs.msg import String
        self.rclpy = rclpy
        self.context = rclpy.context.Context()
        from rclpy.signals import SignalHandlerOptions
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node('seqwm_soak_monitor', context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.statuses: dict[str, list] = {r: [] for r in robots}
        self.episodes: list[tuple[float, dict]] = []     # (wall, state) on each change
        history = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        for r in robots:
            self.node.create_subscription(AgentStatus, f'/{r}/status',
                                          lambda m, r=r: self._status(r, m), history)
        self.node.create_subscription(String, '/arena/episode', self._episode, 10)
        self._last_episode: tuple | None = None

    def _status(self, robot: str, m) -> None:
        rejected = dict(zip(m.reject_reasons, (int(c) for c in m.reject_counts)))
        self.statuses[robot].append((time.monotonic(), int(m.mode), int(m.trigger),
                                     float(m.planning_time_ms), rejected))

    def _episode(self, m) -> None:
        state = json.loads(m.data)
        key = (state.get('episode'), state.get('running'), state.get('done'))
        if key != self._last_episode:
            self._last_episode = key
            self.episodes.append((time.monotonic(), state))

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(0.0, end - time.monotonic())))

    def running_at(self, t: float) -> bool:
        """Whether an episode ran at monotonic time t (the arena's last change before t)."""
        state = None
        for w, s in self.episodes:
            if w > t:
                break
            state = s
        return bool(state and state.get('running'))

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


def window_figures(statuses: list, samples: list, start: float, end: float,
                   monitor: Monitor, rejected_before: dict) -> dict:
    from seqwm_msgs.msg import AgentStatus
    inside = [s for s in statuses if start <= s[0] < end]
    planning = [s for s in inside if s[1] != AgentStatus.MODE_STOPPED]
    ms = np.array([s[3] for s in planning]) if planning else np.array([np.nan])
    names = ('fresh', 'cached', 'masked', 'stopped')
    modes = {n: sum(1 for s in inside if s[1] == k) for k, n in enumerate(names)}
    watchdog = [s for s in inside if s[2] == AgentStatus.TRIGGER_WATCHDOG]
    in_episode = sum(1 for s in watchdog
                     if monitor.running_at(s[0] - 0.5) and monitor.running_at(s[0] + 0.1))
    rejected_now = inside[-1][4] if inside else rejected_before
    rejected = {k: v - rejected_before.get(k, 0) for k, v in rejected_now.items()
                if v - rejected_before.get(k, 0)}
    sam = [x for x in samples if start <= x[0] < end]
    cpu = (100.0 * (sam[-1][2] - sam[0][2]) / (sam[-1][0] - sam[0][0])
           if len(sam) > 1 and sam[0][2] is not None and sam[-1][2] is not None else None)
    return {'start_s': round(start, 1), 'end_s': round(end, 1),
            'planning_ms_p50': round(float(np.percentile(ms, 50)), 3),
            'planning_ms_p99': round(float(np.percentile(ms, 99)), 3),
            'planning_ticks': len(planning),
            'tick_rate_hz': round(len(planning) / (end - start), 3),
            'modes': modes, 'rejected': rejected, 'watchdog_stops_in_episode': in_episode,
            'watchdog_stops_between_episodes': len(watchdog) - in_episode,
            'cpu_percent': None if cpu is None else round(cpu, 1),
            'rss_mb': None if not sam or sam[-1][1] is None else round(sam[-1][1], 1)}, rejected_now


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    for robot, r in result['robots'].items():
        mid = [(w['start_s'] + w['end_s']) / 120 for w in r['windows']]
        axes[0].plot(mid, [w['rss_mb'] for w in r['windows']], 'o-', label=robot)
        axes[1].plot(mid, [w['planning_ms_p50'] for w in r['windows']], 'o-', label=f'{robot} p50')
        axes[1].plot(mid, [w['planning_ms_p99'] for w in r['windows']], 's--', label=f'{robot} p99')
        axes[2].plot(mid, [w['tick_rate_hz'] for w in r['windows']], 'o-', label=robot)
    for ax, label in zip(axes, ('RSS [MB]', 'planning [ms]', 'planning ticks [Hz]')):
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[-1].set_xlabel('minutes since the team started')
    axes[0].set_title(f"soak: {result['minutes']} min, {result['episodes']} episodes, "
                      f"{result['successes']} succeeded")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--minutes', type=float, default=3.0)
    ap.add_argument('--window-min', type=float, default=1.0)
    ap.add_argument('--task', default='pushbox')
    ap.add_argument('--plot', type=Path, default=None)
    ap.add_argument('--run-dir', type=Path, default=None, help='node logs (default: a temp dir)')
    args = ap.parse_args(argv)
    from tqdm import tqdm

    from seqwm_bringup.runner import TeamRunner, team_nodes
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix='seqwm-soak-'))
    nodes = team_nodes(args.task, ROBOTS, None, None, None, sim=True,
                       overrides={'arena': {'episodes': 0, 'randomize': True}})
    monitor = Monitor(ROBOTS)
    monitor.spin_for(1.0)
    runner = TeamRunner(nodes, run_dir)
    runner.start()
    t0 = time.monotonic()
    pids = {r.node.namespace.strip('/'): r.proc.pid for r in runner.running
            if r.node.executable == 'agent'}
    samples: dict[str, list] = {r: [] for r in ROBOTS}
    total = args.minutes * 60.0
    crashed: list = []
    try:
        with tqdm(total=round(total), unit='s', desc='soak', file=sys.stderr) as bar:
            while (elapsed := time.monotonic() - t0) < total:
                monitor.spin_for(min(10.0, total - elapsed))
                now = time.monotonic()
                for r, pid in pids.items():
                    samples[r].append((now - t0, rss_mb(pid), cpu_s(pid)))
                bar.update(round(now - t0) - bar.n)
                crashed = runner.crashed()
                if crashed:
                    break
    finally:
        codes = runner.stop()
        monitor.close()

    first_episode = next((w for w, s in monitor.episodes if s.get('running')), None)
    warm = (first_episode - t0 + 60.0) if first_episode is not None else 60.0
    starts = [s for _, s in monitor.episodes if s.get('running')]
    finished = [s for _, s in monitor.episodes if s.get('done')]
    window = args.window_min * 60.0
    edges = list(np.arange(warm - 60.0 if first_episode else 0.0, total, window))
    result = {'task': args.task, 'robots': {}, 'minutes': args.minutes,
              'window_min': args.window_min, 'episodes': len({s.get('episode') for s in starts}),
              'successes': sum(1 for s in finished if s.get('success')),
              'crashed': crashed, 'exit_codes': codes}
    for r in ROBOTS:
        st = [(w - t0, *rest) for w, *rest in monitor.statuses[r]]
        wins, before = [], {}
        for a, b in zip(edges, edges[1:] + [total]):
            if b - a < 0.5 * window and wins:
                break        # a last short window says little
            fig, before = window_figures(st, samples[r], a, b, _Shifted(monitor, t0), before)
            wins.append(fig)
        rss = [(t, m) for t, m, _ in samples[r] if m is not None]
        start = next((m for t, m in rss if t >= warm), rss[0][1] if rss else None)
        end = rss[-1][1] if rss else None
        p99 = [w['planning_ms_p99'] for w in wins]
        result['robots'][r] = {
            'rss_mb_first_sample': round(rss[0][1], 1) if rss else None,
            'rss_mb_start': None if start is None else round(start, 1),
            'rss_mb_end': None if end is None else round(end, 1),
            'rss_growth_pct': None if not start else round(100.0 * (end - start) / start, 2),
            'planning_ms_p99_first_window': p99[0] if p99 else None,
            'planning_ms_p99_last_window': p99[-1] if p99 else None,
            'p99_last_over_first': round(p99[-1] / p99[0], 3) if len(p99) > 1 and p99[0] else None,
            'watchdog_stops_in_episode': sum(w['watchdog_stops_in_episode'] for w in wins),
            'windows': wins}
    if args.plot:
        plot(result, args.plot)
    emit('soak', result)
    return 0 if not crashed else 1


class _Shifted:
    """The monitor's episode timeline on the bench's clock (seconds since the team started)."""

    def __init__(self, monitor: Monitor, t0: float) -> None:
        self.monitor, self.t0 = monitor, t0

    def running_at(self, t: float) -> bool:
        return self.monitor.running_at(t + self.t0)


if __name__ == '__main__':
    sys.exit(main())
