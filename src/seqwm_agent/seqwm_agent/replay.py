"""`seqwm-replay <bag> --robot <name>`: re-run one robot's agent runtime from a recorded bag.

Debugging a team run means asking "would this robot have done the same with these inputs?".
Each agent publishes, with every status, its own record of the inputs its runtime handled
(`<robot>/inputs`, seqwm_msgs/AgentInputs: every frame, intent, timer, outside stop and backend
change, in the order it handled them, on its own monotonic clock, with a digest of each message
and what became of it). Replay feeds a fresh `AgentRuntime` - the very class the node runs -
exactly those calls at exactly those times, taking only the *content* of frames and intents from
the recorder's copies (found by digest). So the scheduler and the controller take their
decisions again, and each output is compared with the recorded status: mode, trigger, frame and
command. An input the robot never received is never delivered; a recorder's timing never counts.
With `deterministic: true` (the default) the planner is seeded per tick, so on the same machine
and torch build any difference is a determinism bug.

Where the bag lacks the content of an input the robot used (the recorder lost a best-effort
frame or intent; an intent is first rebuilt from the robot's own outgoing intent, which forwards
its predecessor's slots, and used only when its digest matches), replay says so: it skips that
input and compares nothing from there until the state it touched is gone - the first recorded
stop at least `cache_max_age_ticks + 1` ticks and `stale_timeout_s` of capture time later (a stop
restarts the filter and the warm start; by then no held pose or cached intent can come from the
missing input). The same holds from the start of a bag that begins mid-run, and across lost
records (a gap in `seq`). Skipped outputs are counted, never guessed.

The robot's parameters come from the run's params file (`runs/<time>/params/<robot>.agent.yaml`,
found next to the bag by default) so the replay uses exactly the settings of the run.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import yaml

from .bag import read_messages
from .node_params import check_values, model_dir_of, settings_from_values
from .runtime.agent import AgentRuntime, Mode, TickOutput
from .runtime.journal import REPEAT, InputKind, InputRecord, frame_digest, intent_digest
from .runtime.messages import (IntentMessage, MocapSample, input_records_from_msg,
                               intent_message_from_msg, mocap_sample_from_msg)
from .runtime.scheduler import Trigger
from .runtime.sources import Publisher, is_source_refusal
from seqwm_common.topics import INPUTS_TOPIC, INTENT_TOPIC, MOCAP_TOPIC, STATUS_TOPIC, robot_topic

NS = 1_000_000_000


@dataclass
class ReplayReport:
    robot: str
    ticks: int = 0                       # recorded ticks of this robot (statuses)
    compared: int = 0
    max_abs_diff: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    mismatched_ticks: list[int] = field(default_factory=list)
    mode_mismatches: list[tuple[int, str, str]] = field(default_factory=list)
    trigger_mismatches: list[tuple[int, str, str]] = field(default_factory=list)
    frame_mismatches: list[int] = field(default_factory=list)   # planned on another frame
    not_replayed: list[int] = field(default_factory=list)       # recorded, no replayed tick
    not_recorded: list[int] = field(default_factory=list)       # replayed, no recorded tick
    # an input handled otherwise than the robot recorded: (index, kind, recorded, replayed)
    input_mismatches: list[tuple] = field(default_factory=list)
    # The bag does not hold this robot's first status: its state is unknown until a sync point.
    started_mid_run: bool = False
    skipped_before_sync: int = 0         # statuses not compared because of that
    skipped_unsynced: int = 0            # statuses not compared (any reason: mid-run, missing input)
    missing_inputs: list[tuple] = field(default_factory=list)   # (seq, kind, number) not in the bag
    lost_records: int = 0                # gaps in the robot's input record
    reconstructed_intents: int = 0       # predecessor intents rebuilt from the robot's own intent
    recorded: list[list[float]] = field(default_factory=list)
    replayed: list[list[float]] = field(default_factory=list)
    tick_index: list[int] = field(default_factory=list)

    def decision_differences(self) -> dict[str, list]:
        """Every kind of scheduling difference that occurred, with its ticks."""
        kinds = {'mode_mismatches': self.mode_mismatches,
                 'trigger_mismatches': self.trigger_mismatches,
                 'frame_mismatches': self.frame_mismatches, 'not_replayed': self.not_replayed,
                 'not_recorded': self.not_recorded, 'input_mismatches': self.input_mismatches}
        return {k: v for k, v in kinds.items() if v}

    @property
    def decisions_identical(self) -> bool:
        return not self.decision_differences()

    def to_json(self) -> dict:
        return {'robot': self.robot, 'ticks': self.ticks, 'compared': self.compared,
                'max_abs_diff': {'vx': self.max_abs_diff[0], 'vy': self.max_abs_diff[1],
                                 'wz': self.max_abs_diff[2]},
                'max_abs_diff_overall': max(self.max_abs_diff),
                'mismatched_ticks': self.mismatched_ticks[:50],
                'n_mismatched_ticks': len(self.mismatched_ticks),
                'decisions_identical': self.decisions_identical,
                'mode_mismatches': self.mode_mismatches[:50],
                'trigger_mismatches': self.trigger_mismatches[:50],
                'frame_mismatches': self.frame_mismatches[:50],
                'not_replayed': self.not_replayed[:50], 'not_recorded': self.not_recorded[:50],
                'input_mismatches': self.input_mismatches[:50],
                'started_mid_run': self.started_mid_run,
                'skipped_before_sync': self.skipped_before_sync,
                'skipped_unsynced': self.skipped_unsynced,
                'missing_inputs': self.missing_inputs[:50], 'lost_records': self.lost_records,
                'reconstructed_intents': self.reconstructed_intents}


def load_params(path: Path, robot: str) -> dict:
    """The `ros__parameters` of the robot's agent from a params file."""
    doc = yaml.safe_load(path.read_text()) or {}
    for key, section in doc.items():
        if key.strip('/') in (f'{robot}/agent', robot, 'agent', '**') and 'ros__parameters' in section:
            return dict(section['ros__parameters'])
    raise ValueError(f'{path}: no ros__parameters section for {robot}')


def predecessor_part(own, index: int, predecessor: str, stamp_ns: int):
    """The intent robot `index` received, rebuilt from the one it sent: slots >= index masked,
    its sender and stamp (a candidate only: used when its digest matches the robot's record)."""
    n, H, dz, da = own.num_agents, own.horizon, own.latent_dim, own.action_dim
    latents = np.array(own.latents, dtype=np.float32).reshape(n, H + 1, dz)
    actions = np.array(own.actions, dtype=np.float32).reshape(n, H, da)
    valid = np.array(own.valid, dtype=bool).copy()
    latents[index:] = 0.0
    actions[index:] = 0.0
    valid[index:] = False
    return replace(own, sender=predecessor, sender_index=index - 1, stamp_ns=int(stamp_ns),
                   latents=latents.reshape(-1), actions=actions.reshape(-1), valid=valid)


@dataclass
class _Bag:
    """What replay reads from a bag for one robot."""

    frames: dict[tuple[int, int, int], MocapSample]        # (stamp, number, digest) -> frame
    intents: dict[tuple[str, int, int], IntentMessage]     # (sender, tick, digest) -> intent
    own: dict[int, IntentMessage]                          # the robot's own intents by tick
    statuses: dict[int, object]                            # seq -> AgentStatus
    records: dict[int, list]                               # seq -> its AgentInputs parts


def _read(bag: Path, robot: str, pred: str) -> _Bag:
    status, inputs, own = (robot_topic(robot, t) for t in (STATUS_TOPIC, INPUTS_TOPIC, INTENT_TOPIC))
    topics = {MOCAP_TOPIC, status, inputs}
    if pred:
        topics |= {robot_topic(pred, INTENT_TOPIC), own}
    out = _Bag({}, {}, {}, {}, {})
    for topic, _, msg in read_messages(bag, topics):
        if topic == MOCAP_TOPIC:
            f = mocap_sample_from_msg(msg)
            out.frames.setdefault((f.stamp_ns, f.frame_number, frame_digest(f)), f)
        elif topic == status:
            out.statuses.setdefault(int(msg.seq), msg)
        elif topic == inputs:
            out.records.setdefault(int(msg.seq), []).append(msg)
        elif topic == own:
            im = intent_message_from_msg(msg)
            out.own.setdefault(im.tick, im)
        else:
            im = intent_message_from_msg(msg)
            out.intents.setdefault((im.sender, im.tick, intent_digest(im)), im)
    return out


def _content(rec: InputRecord, bag: _Bag, order_index: int, pred: str):
    """The message a record names, from the bag (None when the bag lacks it); `rebuilt`."""
    if rec.kind == InputKind.FRAME:
        return bag.frames.get((rec.stamp_ns, rec.number, rec.digest)), False
    found = bag.intents.get((rec.source, rec.number, rec.digest))
    if found is not None or not pred or rec.source != pred or rec.number not in bag.own:
        return found, False
    rebuilt = predecessor_part(bag.own[rec.number], order_index, pred, rec.stamp_ns)
    return (rebuilt, True) if intent_digest(rebuilt) == rec.digest else (None, False)


def replay(bag: Path, robot: str, params: dict, model_dir: str | None = None,
           tolerance: float = 1e-6) -> ReplayReport:
    """Re-run `robot`'s runtime from its own input record in `bag`; compare each output with
    the recorded status."""
    values = check_values({**params, **({'model_dir': model_dir} if model_dir else {})})
    settings, _, task_cfg = settings_from_values(values)
    rt = AgentRuntime.load(settings, model_dir_of(values), task_cfg)
    data = _read(bag, robot, settings.predecessor)
    report = ReplayReport(robot)
    report.ticks = len(data.statuses)
    seqs = sorted(data.records)
    report.started_mid_run = bool(seqs) and seqs[0] > 0

    # 1. the robot's calls, in its order and at its times
    fed: list[tuple[int, InputRecord]] = []      # (seq, record) of every call made again
    outputs: list[TickOutput] = []
    # from where nothing is compared: (seq, tick, capture stamp) of the state it may have touched
    tainted: list[tuple[int, int, int]] = []
    if report.started_mid_run:
        tainted.append(_status_taint(data.statuses, seqs[0]))
    # records the recorder lost: a gap in seq, a part missing, the last ones at shutdown
    last = max([*seqs, *data.statuses]) if seqs else -1
    for seq in range(seqs[0] if seqs else 0, last + 1):
        parts = data.records.get(seq, [])
        if not parts or len(parts) != int(parts[0].parts):
            tainted.append(_status_taint(data.statuses, seq))
            report.lost_records += 1
    for seq in seqs:
        parts = sorted(data.records[seq], key=lambda m: int(m.part))
        for msg in parts:
            for rec in input_records_from_msg(msg):
                outputs += _feed(rt, rec, data, settings, report, tainted, seq, fed)
    skip = _unsynced(data.statuses, tainted, settings)
    # every call adds one record to the replayed runtime's journal: the two lists align
    replayed_records = [r for o in outputs for r in o.inputs] + list(rt.journal.drain()[0])
    report.input_mismatches = _input_differences(fed, replayed_records, skip)

    # 2. compare: the k-th replayed output of a tick with the k-th recorded status of that tick
    recorded: dict[int, list] = {}
    for seq in sorted(data.statuses):
        recorded.setdefault(int(data.statuses[seq].tick), []).append((seq, data.statuses[seq]))
    ours: dict[int, list[TickOutput]] = {}
    for out in outputs:
        ours.setdefault(max(int(out.tick), 0), []).append(out)
    for t in sorted(recorded):
        mine = ours.get(t, [])
        for k, (seq, st) in enumerate(recorded[t]):
            if seq in skip:
                report.skipped_unsynced += 1
                continue
            if k >= len(mine):
                report.not_replayed.append(t)
                continue
            _compare(report, t, st, mine[k], tolerance)
    first, last = (min(recorded), max(recorded)) if recorded else (0, -1)
    report.not_recorded = sorted(t for t, outs in ours.items()
                                 if first <= t <= last and len(outs) > len(recorded.get(t, []))
                                 and not any(s in skip for s, _ in recorded.get(t, [])))
    report.skipped_before_sync = report.skipped_unsynced if report.started_mid_run else 0
    return report


def _feed(rt: AgentRuntime, rec: InputRecord, data: _Bag, settings, report: ReplayReport,
          tainted: list[tuple[int, int, int]], seq: int, fed: list[tuple[int, InputRecord]]
          ) -> list[TickOutput]:
    """One recorded call, made again; an input whose content the bag lacks is skipped and, when
    the robot used it, taints what follows."""
    t = rec.time_s
    if rec.kind in (InputKind.FRAME, InputKind.INTENT):
        pub = Publisher(rec.publisher, rec.publisher_gid) if rec.publisher_gid else None
        if is_source_refusal(rec.outcome):      # refused by its publisher, never read
            fed.append((seq, rec))
            return rt.admit(rec.kind, pub or Publisher('', b''), t)[1]
        admitted = rt.admit(rec.kind, pub, t)[1] if pub is not None else []
        msg, rebuilt = _content(rec, data, settings.order_index, settings.predecessor)
        if msg is None:
            if not rec.refused and rec.outcome != REPEAT:
                report.missing_inputs.append((seq, rec.kind.name.lower(), rec.number))
                tick = (rec.number if rec.kind == InputKind.INTENT
                        else rec.stamp_ns // int(round(rt.dt * NS)))
                tainted.append((seq, tick, rec.stamp_ns))
            return admitted    # a refused or repeated one changed nothing but a counter
        report.reconstructed_intents += int(rebuilt)
        fed.append((seq, rec))
        if rec.kind == InputKind.FRAME:
            return admitted + rt.on_frame(msg, t, None if rec.wall_ns < 0 else rec.wall_ns, pub)
        return admitted + rt.on_intent(msg, t, pub)
    fed.append((seq, rec))
    if rec.kind == InputKind.TIMER:
        return rt.on_timer(t)
    if rec.kind == InputKind.STOP:
        return [rt.stop(t, rec.source, rec.outcome)]
    if rec.kind == InputKind.BACKEND:
        rt.on_backend(bool(rec.number), rec.outcome, t)
    else:
        rt.robot_stopped(t)
    return []


def _input_differences(fed: list[tuple[int, InputRecord]], replayed: list[InputRecord],
                       skip: set[int]) -> list:
    """Inputs the replayed runtime handled otherwise than the robot (outside unsynced spans):
    (seq, kind, recorded outcome, replayed outcome)."""
    out = [(seq, a.kind.name.lower(), a.outcome, b.outcome)
           for (seq, a), b in zip(fed, replayed) if a != b and seq not in skip]
    if len(fed) != len(replayed):
        out.append((-1, 'count', str(len(fed)), str(len(replayed))))
    return out


def _status_taint(statuses: dict[int, object], seq: int) -> tuple[int, int, int]:
    """(seq, tick, stamp) of the first recorded status from `seq` on (unknown state there)."""
    later = [q for q in sorted(statuses) if q >= seq]
    st = statuses[later[0]] if later else None
    return (seq, int(st.tick), _stamp_ns(st.header)) if st is not None else (seq, 0, 0)


def _unsynced(statuses: dict[int, object], tainted: list[tuple[int, int, int]], settings
              ) -> set[int]:
    """Status seqs not comparable: from each tainted seq to the first stop far enough after
    its input that nothing the runtime holds can come from it (see the module docstring)."""
    skip: set[int] = set()
    order = sorted(statuses)
    for start, t0, stamp0 in tainted:
        later = [q for q in order if q >= start]
        for q in later:
            st = statuses[q]
            skip.add(q)
            if (int(st.mode) == Mode.STOPPED
                    and int(st.tick) >= t0 + settings.cache_max_age_ticks + 1
                    and _stamp_ns(st.header) - stamp0 >= settings.stale_timeout_s * NS):
                break
    return skip


def _compare(report: ReplayReport, t: int, st, out: TickOutput, tolerance: float) -> None:
    mode, trigger = Mode(int(st.mode)), Trigger(int(st.trigger))
    if out.mode != mode:
        report.mode_mismatches.append((t, mode.name.lower(), out.mode.name.lower()))
    if out.trigger != trigger:
        report.trigger_mismatches.append((t, trigger.name.lower(), out.trigger.name.lower()))
    if out.stamp_ns != _stamp_ns(st.header):
        report.frame_mismatches.append(t)
    recorded = np.array([st.command.linear.x, st.command.linear.y, st.command.angular.z])
    diff = np.abs(np.asarray(out.command, dtype=float) - recorded)
    report.compared += 1
    report.max_abs_diff = [max(a, float(b)) for a, b in zip(report.max_abs_diff, diff)]
    if not float(diff.max()) <= tolerance:
        report.mismatched_ticks.append(t)
    report.tick_index.append(t)
    report.recorded.append(recorded.tolist())
    report.replayed.append(np.asarray(out.command, dtype=float).tolist())


def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * NS + int(header.stamp.nanosec)


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
    ap.add_argument('--model-dir', type=lambda p: str(Path(p).resolve()) if Path(p).exists() else p,
                    default=None, help='override the params file model_dir (a path typed here '
                    'is taken from the working directory when it exists there)')
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
                                              'n_mismatched_ticks', 'decisions_identical',
                                              'started_mid_run', 'skipped_unsynced')}))
    if report.skipped_unsynced:
        why = ('the bag starts after this robot\'s first status' if report.started_mid_run else
               f'the bag lacks {len(report.missing_inputs)} inputs the robot used and '
               f'{report.lost_records} of its records')
        print(f'note: {why}; {report.skipped_unsynced} statuses until the next sync point (a '
              'stop) were replayed but not compared', file=sys.stderr)
    if summary['n_mismatched_ticks']:
        print(f'commands differ at ticks {summary["mismatched_ticks"][:10]} ...', file=sys.stderr)
    for key, ticks in report.decision_differences().items():
        print(f'{key}: {ticks[:10]}', file=sys.stderr)
    ok = report.compared and not summary['n_mismatched_ticks'] and report.decisions_identical
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
