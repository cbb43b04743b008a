"""`seqwm-replay <bag> --robot <name>`: re-run one robot's tick pipeline from a recorded bag.

Debugging a team run means asking "would this robot have done the same with these inputs?".
Replay feeds the very `AgentPipeline` the node runs with what the robot received, in the order it
received it (bag receive time): every `/mocap/frame`, every predecessor `intent`. For each tick
the robot recorded in its `status` (tick, capture stamp of the frame it planned on, mode), replay
runs that tick on the same frame and compares the command with the recorded one
(`status.command`, which is what went to the backend).

Which intent a tick used depends on wall-clock arrival (deadline), which a bag cannot replay
exactly; replay takes it from the record: a tick recorded `fresh` gets its predecessor's intent of
that tick, a `cached`/`masked` tick does not (the intent, if it came late, is delivered before the
next tick, as online). With `deterministic: true` (the default) the planner is seeded per tick,
so on the same machine and torch build the replayed commands equal the recorded ones.

Replay is exact only from a known state. If the bag lacks the robot's first ticks (its status
`mode_counts` say so) or an intent a fresh tick used (best-effort topic), replay goes on but does
not compare until the next sync point: a stop (which resets planner warm start and filter), or
the first planning tick after nothing but stops. `skipped_before_sync` counts those ticks.

The robot's parameters come from the run's params file (`runs/<time>/params/<robot>.agent.yaml`,
found next to the bag by default) so the replay uses exactly the settings of the run.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import yaml

from .bag import read_messages
from .node_params import check_values, settings_from_values
from .pipeline import AgentPipeline, Mode, intent_message_from_msg, mocap_sample_from_msg

NS = 1_000_000_000


@dataclass
class ReplayReport:
    robot: str
    ticks: int = 0
    compared: int = 0
    max_abs_diff: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    mismatched_ticks: list[int] = field(default_factory=list)
    mode_mismatches: list[tuple[int, str, str]] = field(default_factory=list)
    missing_frames: int = 0
    # The bag does not hold this robot's first tick: the planner warm start, command filter and
    # intent cache start from a different state, so early ticks may differ until it washes out.
    started_mid_run: bool = False
    # Ticks replayed while out of sync (before the first sync point, or after a lost intent until
    # the next stop) build state but are not compared.
    skipped_before_sync: int = 0
    missing_intents: int = 0             # fresh ticks whose predecessor intent the bag lacks
    reconstructed_intents: int = 0       # predecessor intents rebuilt from the robot's own intent
    recorded: list[list[float]] = field(default_factory=list)
    replayed: list[list[float]] = field(default_factory=list)
    tick_index: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        return {'robot': self.robot, 'ticks': self.ticks, 'compared': self.compared,
                'max_abs_diff': {'vx': self.max_abs_diff[0], 'vy': self.max_abs_diff[1],
                                 'wz': self.max_abs_diff[2]},
                'max_abs_diff_overall': max(self.max_abs_diff),
                'mismatched_ticks': self.mismatched_ticks[:50],
                'n_mismatched_ticks': len(self.mismatched_ticks),
                'mode_mismatches': self.mode_mismatches[:50],
                'missing_frames': self.missing_frames, 'started_mid_run': self.started_mid_run,
                'skipped_before_sync': self.skipped_before_sync,
                'missing_intents': self.missing_intents,
                'reconstructed_intents': self.reconstructed_intents}


def load_params(path: Path, robot: str) -> dict:
    """The `ros__parameters` of the robot's agent from a params file."""
    doc = yaml.safe_load(path.read_text()) or {}
    for key, section in doc.items():
        if key.strip('/') in (f'{robot}/agent', robot, 'agent', '**') and 'ros__parameters' in section:
            return dict(section['ros__parameters'])
    raise ValueError(f'{path}: no ros__parameters section for {robot}')


def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * NS + int(header.stamp.nanosec)


def predecessor_part(own, index: int, predecessor: str):
    """The intent robot `index` received, rebuilt from the one it sent: slots >= index masked."""
    n, H, dz, da = own.num_agents, own.horizon, own.latent_dim, own.action_dim
    latents = np.array(own.latents, dtype=np.float32).reshape(n, H + 1, dz)
    actions = np.array(own.actions, dtype=np.float32).reshape(n, H, da)
    valid = np.array(own.valid, dtype=bool).copy()
    latents[index:] = 0.0
    actions[index:] = 0.0
    valid[index:] = False
    return replace(own, sender=predecessor, sender_index=index - 1, latents=latents.reshape(-1),
                   actions=actions.reshape(-1), valid=valid)


def replay(bag: Path, robot: str, params: dict, model_dir: str | None = None,
           tolerance: float = 1e-6) -> ReplayReport:
    """Re-run `robot`'s ticks from `bag`; compare with its recorded commands."""
    values = check_values({**params, **({'model_dir': model_dir} if model_dir else {})})
    settings, _, task_cfg = settings_from_values(values)
    pipe = AgentPipeline.load(settings, values['model_dir'], task_cfg)
    pred = settings.predecessor
    topics = {'/mocap/frame', f'/{robot}/status'} | ({f'/{pred}/intent', f'/{robot}/intent'}
                                                      if pred else set())
    report = ReplayReport(robot)

    # Pass 1: everything by key. The recorder is one more subscriber: its receive order across
    # topics is not causal (it may get a predecessor intent after the status of the tick that
    # used it), so ticks are matched by tick index and capture stamp, not by arrival order.
    frames: dict[int, object] = {}         # capture stamp ns -> MocapSample
    intents: dict[int, object] = {}        # tick -> IntentMessage
    own_intents: dict[int, object] = {}    # tick -> this robot's outgoing IntentMessage
    statuses: list[tuple[float, object]] = []
    for topic, recv_ns, msg in read_messages(bag, topics):
        if topic == '/mocap/frame':
            sample = mocap_sample_from_msg(msg)
            frames[sample.stamp_ns] = sample
        elif topic == f'/{robot}/intent':
            im = intent_message_from_msg(msg)
            own_intents.setdefault(im.tick, im)
        elif topic.endswith('/intent'):
            im = intent_message_from_msg(msg)
            intents.setdefault(im.tick, im)
        else:
            statuses.append((recv_ns / NS, msg))

    # A predecessor intent the recorder lost (best effort) is inside this robot's own outgoing
    # intent of that tick, which forwards the predecessors' slots unchanged (e^{i+1} = e^i + own).
    # Only for ticks it planned fresh on: a cached tick forwards the shifted cache instead.
    fresh_ticks = {int(st.tick) for _, st in statuses if int(st.mode) == Mode.FRESH}
    for t, own in own_intents.items():
        if t not in intents and t in fresh_ticks:
            intents[t] = predecessor_part(own, settings.order_index, pred)
            report.reconstructed_intents += 1

    # Pass 2: the robot's ticks in order.
    delivered: set[int] = set()
    for now, status in statuses:
        t, mode = int(status.tick), Mode(int(status.mode))
        counts = [int(c) for c in status.mode_counts]
        if report.ticks == 0:
            report.started_mid_run = sum(counts) > 1
            synced = not report.started_mid_run
        report.ticks += 1
        if not synced and mode != Mode.STOPPED and sum(counts[:Mode.STOPPED]) == 1:
            # the robot's first planning tick, after nothing but stops (e.g. no mocap yet):
            # a stop put its planner and filter in the state the replay starts from
            pipe.stop(now, 'replay', 'sync with a recording that starts after the first tick')
            synced = True
        # Which earlier intents had arrived by this tick follows from what the tick recorded:
        # fresh -> all earlier ones; cached with age k -> those up to t - k (newer ones were
        # still in flight); masked -> none within the cache age.
        if mode == Mode.CACHED:
            limit = t - int(round(status.intent_age_s / settings.dt))
        elif mode == Mode.MASKED:
            limit = t - settings.cache_max_age_ticks - 1
        else:
            limit = t - 1
        for k in sorted(x for x in intents if x <= limit and x not in delivered):
            pipe.receive_intent(intents[k], now)
            delivered.add(k)
        frame = frames.get(_stamp_ns(status.header))
        recorded = np.array([status.command.linear.x, status.command.linear.y,
                             status.command.angular.z])
        if frame is None:
            report.missing_frames += 1
            if mode == Mode.STOPPED:
                out = pipe.stop(now, 'replay', status.reason)
            else:
                continue
        elif mode == Mode.STOPPED:
            out = pipe.stop_tick(frame, now, 'replay', status.reason)
        else:
            fresh = intents.get(t) if mode == Mode.FRESH and t not in delivered else None
            if fresh is not None:
                delivered.add(t)
            elif mode == Mode.FRESH and pred and t not in delivered:
                # planned on an intent the bag lost (best-effort topic): state diverges here
                report.missing_intents += 1
                synced = False
            out = pipe.tick(frame, fresh, now)
        if not synced:
            report.skipped_before_sync += 1
            synced = mode == Mode.STOPPED          # a stop resets the planner and the filter
            continue
        if out.mode != mode:
            report.mode_mismatches.append((t, mode.name.lower(), out.mode.name.lower()))
        diff = np.abs(np.asarray(out.command, dtype=float) - recorded)
        report.compared += 1
        report.max_abs_diff = [max(a, float(b)) for a, b in zip(report.max_abs_diff, diff)]
        if not float(diff.max()) <= tolerance:
            report.mismatched_ticks.append(t)
        report.tick_index.append(t)
        report.recorded.append(recorded.tolist())
        report.replayed.append(np.asarray(out.command, dtype=float).tolist())
    return report


def plot(report: ReplayReport, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rec, rep = np.asarray(report.recorded), np.asarray(report.replayed)
    t = np.asarray(report.tick_index) - (report.tick_index[0] if report.tick_index else 0)
    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    for k, (ax, name, unit) in enumerate(zip(axes, ('vx', 'vy', 'wz'), ('m/s', 'm/s', 'rad/s'))):
        if len(t):
            ax.plot(t, rec[:, k], label='recorded', lw=2, alpha=0.6)
            ax.plot(t, rep[:, k], '--', label='replayed', lw=1)
        ax.set_ylabel(f'{name} [{unit}]')
        ax.grid(alpha=0.3)
    axes[0].legend(loc='upper right')
    axes[0].set_title(f'{report.robot}: replayed vs recorded commands '
                      f'(max |diff| {max(report.max_abs_diff):.2e})')
    axes[-1].set_xlabel('tick')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Re-run one robot's tick pipeline from a bag.")
    ap.add_argument('bag', type=Path, help='rosbag2 directory (e.g. runs/latest/bag)')
    ap.add_argument('--robot', required=True)
    ap.add_argument('--params', type=Path, default=None,
                    help='params file of the run (default: <bag>/../params/<robot>.agent.yaml)')
    ap.add_argument('--model-dir', default=None, help='override the params file model_dir')
    ap.add_argument('--tolerance', type=float, default=1e-6)
    ap.add_argument('--out', type=Path, default=None, help='where to write replay_<robot>.json/.png')
    args = ap.parse_args(argv)
    params_file = args.params or args.bag.parent / 'params' / f'{args.robot}.agent.yaml'
    if not params_file.exists():
        print(f'seqwm-replay: no params file {params_file}; pass --params', file=sys.stderr)
        return 2
    report = replay(args.bag, args.robot, load_params(params_file, args.robot), args.model_dir,
                    args.tolerance)
    out = args.out or args.bag.parent
    out.mkdir(parents=True, exist_ok=True)
    (out / f'replay_{args.robot}.json').write_text(json.dumps(report.to_json(), indent=2))
    plot(report, out / f'replay_{args.robot}.png')
    summary = report.to_json()
    print(json.dumps({k: summary[k] for k in ('robot', 'ticks', 'compared', 'max_abs_diff',
                                              'n_mismatched_ticks', 'missing_frames',
                                              'started_mid_run', 'skipped_before_sync')}))
    if report.started_mid_run:
        print(f'note: the bag starts after this robot\'s first tick; {report.skipped_before_sync} '
              'ticks before the first sync point (a stop) were replayed but not compared',
              file=sys.stderr)
    if summary['n_mismatched_ticks']:
        print(f'commands differ at ticks {summary["mismatched_ticks"][:10]} ...', file=sys.stderr)
    return 0 if report.compared and not summary['n_mismatched_ticks'] else 1


if __name__ == '__main__':
    sys.exit(main())
