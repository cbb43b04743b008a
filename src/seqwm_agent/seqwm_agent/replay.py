"""`seqwm-replay <bag> --robot <name>`: re-run one robot's agent runtime from a recorded bag.

Debugging a team run means asking "would this robot have done the same with these inputs?".
Replay feeds the very `AgentRuntime` the node runs with what the robot received, at the times
it was received (the bag's receive stamps): every `/mocap/frame` and every predecessor `intent`
becomes an `on_frame` / `on_intent` event, and the runtime's timers (intent deadline, watchdog)
fire at their due times in between (`on_timer`). So the scheduler takes its decisions again -
run at once, wait for the intent, run at the deadline, stop - and they are compared with the
recorded ones, tick by tick, with the mode (fresh / cached / masked / stopped) and the command
(`status.command`, what went to the backend). With `deterministic: true` (the default) the
planner is seeded per tick, so on the same machine and torch build the replayed commands equal
the recorded ones.

Times: frames and the order of events between ticks come from the bag's receive stamps; the
gap between a tick's frame and the intent it planned on comes from the robot's own record
(`AgentStatus.trigger`, `wait_ms`), because the recorder runs late by its own load (up to 20 ms
on the demo's two busy cores, the order of the intent deadline). The scheduler runs a due
deadline before any later event, so its decisions depend only on these times.

Replay is exact only from a known state. If the bag lacks the robot's first ticks (its status
`mode_counts` say so), replay goes on but does not compare until the next sync point: a stop
(which resets planner warm start and filter), or the first planning tick after nothing but
stops. A predecessor intent the recorder lost (best effort) is rebuilt from the robot's own
outgoing intent of that tick (which forwards the predecessors' slots unchanged) and delivered
when the recorded status says the tick ran.

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
from .runtime.messages import MocapSample, intent_message_from_msg, mocap_sample_from_msg
from .runtime.scheduler import Trigger

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
    # The bag does not hold this robot's first tick: the planner warm start, command filter and
    # intent cache start from a different state, so early ticks may differ until it washes out.
    started_mid_run: bool = False
    skipped_before_sync: int = 0
    reconstructed_intents: int = 0       # predecessor intents rebuilt from the robot's own intent
    recorded: list[list[float]] = field(default_factory=list)
    replayed: list[list[float]] = field(default_factory=list)
    tick_index: list[int] = field(default_factory=list)

    def decision_differences(self) -> dict[str, list]:
        """Every kind of scheduling difference that occurred, with its ticks."""
        kinds = {'mode_mismatches': self.mode_mismatches,
                 'trigger_mismatches': self.trigger_mismatches,
                 'frame_mismatches': self.frame_mismatches, 'not_replayed': self.not_replayed,
                 'not_recorded': self.not_recorded}
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
                'started_mid_run': self.started_mid_run,
                'skipped_before_sync': self.skipped_before_sync,
                'reconstructed_intents': self.reconstructed_intents}


def load_params(path: Path, robot: str) -> dict:
    """The `ros__parameters` of the robot's agent from a params file."""
    doc = yaml.safe_load(path.read_text()) or {}
    for key, section in doc.items():
        if key.strip('/') in (f'{robot}/agent', robot, 'agent', '**') and 'ros__parameters' in section:
            return dict(section['ros__parameters'])
    raise ValueError(f'{path}: no ros__parameters section for {robot}')


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


def _events(bag: Path, robot: str, pred: str, order_index: int, dt: float):
    """The robot's input events in receive order, its recorded statuses by tick, and the
    predecessor intents rebuilt for fresh ticks the recorder lost."""
    topics = {'/mocap/frame', f'/{robot}/status'} | ({f'/{pred}/intent', f'/{robot}/intent'}
                                                      if pred else set())
    events: list[tuple[float, int, str, object]] = []      # (time s, seq, kind, payload)
    statuses: dict[int, list] = {}
    pred_ticks: set[int] = set()
    own: dict[int, object] = {}
    first_counts = None
    for seq, (topic, recv_ns, msg) in enumerate(read_messages(bag, topics)):
        now = recv_ns / NS
        if topic == '/mocap/frame':
            events.append((now, seq, 'frame', mocap_sample_from_msg(msg)))
        elif topic == f'/{robot}/status':
            if first_counts is None:
                first_counts = [int(c) for c in msg.mode_counts]
            statuses.setdefault(int(msg.tick), []).append((now, msg))
        elif topic == f'/{robot}/intent':
            im = intent_message_from_msg(msg)
            own.setdefault(im.tick, im)
        else:
            im = intent_message_from_msg(msg)
            pred_ticks.add(im.tick)
            events.append((now, seq, 'intent', im))
    # When each predecessor intent reached the robot. The bag's stamps are the recorder's, late
    # by its own load (on the demo's two busy cores, up to 20 ms behind the robot), which is of
    # the order of the intent deadline; the robot records its own timing in each status: the
    # tick's trigger and wait_ms since its frame arrived. An intent the robot ran on (trigger
    # intent) arrived wait_ms after that frame; any other intent of a planned tick came after
    # the tick ran. Between ticks, the recorder's stamps order the events.
    # Frames: a tick starts on the first usable frame the robot got, so frames of a recorded
    # tick older than the one it ran on never reached it (discovery at start-up, a best-effort
    # drop), nor did the frames of a tick it skipped (busy planning, its subscription keeps only
    # the newest frame): they are left out.
    tick_frame = {t: _stamp_ns(recs[0][1].header) for t, recs in statuses.items()}
    dt_ns = int(round(dt * NS))
    lo, hi = (min(statuses), max(statuses)) if statuses else (0, -1)

    def reached(frame: MocapSample) -> bool:
        t = frame.stamp_ns // dt_ns
        if lo < t < hi and t not in tick_frame:
            return False          # a tick the robot never ran: busy (KEEP_LAST 1) or its frames lost
        return frame.stamp_ns >= tick_frame.get(t, 0)
    events = [e for e in events if e[2] != 'frame' or reached(e[3])]
    # Frame times on the robot's own clock: each status says when its tick's frame reached the
    # robot (frame_arrival_s). The recorder's stamps carry its own load (a 0.39 s stall was seen
    # on the demo's two busy cores), and capture stamps run slow against the robot's clock when
    # the simulator runs slower than real time (CI: 0.2 s of frames over 0.5 s): timed by
    # either, a replayed deadline fired in another order than the robot's. Frames of no
    # recorded tick go between their neighbours by capture stamp (outside the robot's ticks, at
    # the recorder's time); the robot's clock is shifted onto the bag's (no tick frame reached
    # the robot after the recorder), which places the intents that only the recorder timed.
    received = {e[3].stamp_ns: e[0] for e in events if e[2] == 'frame'}
    arrival = sorted((tick_frame[t], float(recs[0][1].frame_arrival_s))
                     for t, recs in statuses.items()
                     if int(recs[0][1].trigger) not in (Trigger.WATCHDOG, Trigger.EXTERNAL))
    if arrival:
        shift = min((received[k] - a for k, a in arrival if k in received), default=0.0)
        base = arrival[0][0]
        known_s = np.array([(k - base) / NS for k, _ in arrival])
        known_t = np.array([a + shift for _, a in arrival])

        def when(stamp_ns: int) -> float:
            x = (stamp_ns - base) / NS
            if known_s[0] <= x <= known_s[-1]:
                return float(np.interp(x, known_s, known_t))
            if x < known_s[0]:           # before the robot's ticks, after them: the recorder's
                return min(received[stamp_ns], float(known_t[0]) - 1e-6)
            return max(received[stamp_ns], float(known_t[-1]) + 1e-6)
    else:                                       # no tick of this robot: nothing to compare
        when = received.__getitem__
    frames = {k: when(k) for k in received}
    events = [(frames[e[3].stamp_ns], *e[1:]) if e[2] == 'frame' else e for e in events]
    ran: dict[int, tuple[float, bool]] = {}          # tick -> (when its intent came, planned on it)
    for t, recs in statuses.items():
        st = recs[0][1]
        arrived = frames.get(_stamp_ns(st.header))
        if arrived is None or int(st.mode) == Mode.STOPPED:
            continue
        trigger = int(st.trigger)
        if trigger == Trigger.INTENT:           # it came while the tick waited
            ran[t] = (arrived + float(st.wait_ms) / 1000.0, True)
        elif trigger == Trigger.FRAME and order_index > 0:   # it was in hand before the frame
            ran[t] = (arrived - 1e-6, True)
        else:                                   # after the tick ran (or never)
            ran[t] = (arrived + float(st.wait_ms) / 1000.0 + 1e-6, False)
    rebuilt = 0

    def in_time_for_next(t: int) -> bool:
        """Whether the intent of tick t, late for t, reached the robot before tick t + 1 ran:
        t + 1 planned fresh, or cached on exactly it (age one tick)."""
        nxt = statuses.get(t + 1)
        if nxt is None:
            return True
        st = nxt[0][1]
        return int(st.mode) == Mode.FRESH or (
            int(st.mode) == Mode.CACHED and round(float(st.intent_age_s) / dt) == 1)
    kept = []
    for now, seq, kind, payload in events:
        if kind == 'intent' and payload.tick in ran:
            when, on_it = ran[payload.tick]
            if not on_it and not in_time_for_next(payload.tick):
                continue                          # it came after tick + 1 ran: refused there
            now = when                            # the robot's timing, not the recorder's
        kept.append((now, seq, kind, payload))
    events = kept
    # A tick planned masked with no intent ever received (age 0) says that no predecessor intent
    # had reached the robot before it ran (at start-up its subscription may match after the
    # recorder's): those in the bag are left out.
    deaf_until = None
    for t in sorted(statuses):                    # the start-up ticks, before any intent helped
        st = statuses[t][0][1]
        if int(st.mode) in (Mode.FRESH, Mode.CACHED):
            break
        arrived = frames.get(_stamp_ns(st.header))
        if int(st.mode) == Mode.MASKED and float(st.intent_age_s) == 0.0 and arrived is not None:
            deaf_until = arrived + float(st.wait_ms) / 1000.0
    if pred and deaf_until is not None:
        events = [e for e in events if e[2] != 'intent' or e[0] >= deaf_until]
    # A fresh tick that ran on an intent the recorder lost: the robot's own outgoing intent of
    # that tick forwards the predecessor's slots unchanged.
    for t, (when, on_it) in ran.items():
        if pred and on_it and t not in pred_ticks and t in own:
            events.append((when, -1, 'intent', predecessor_part(own[t], order_index, pred)))
            rebuilt += 1
    events.sort(key=lambda e: (e[0], e[1]))
    return events, statuses, first_counts or [0, 0, 0, 0], rebuilt


def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * NS + int(header.stamp.nanosec)


def replay(bag: Path, robot: str, params: dict, model_dir: str | None = None,
           tolerance: float = 1e-6) -> ReplayReport:
    """Re-run `robot`'s runtime from `bag`; compare decisions and commands with the record."""
    values = check_values({**params, **({'model_dir': model_dir} if model_dir else {})})
    settings, _, task_cfg = settings_from_values(values)
    rt = AgentRuntime.load(settings, model_dir_of(values), task_cfg)
    events, statuses, first_counts, rebuilt = _events(bag, robot, settings.predecessor,
                                                      settings.order_index, rt.dt)
    report = ReplayReport(robot, reconstructed_intents=rebuilt)
    report.ticks = len(statuses)
    report.started_mid_run = sum(first_counts) > 1
    period = min(0.05, settings.stale_timeout_s / 4, rt.dt / 2)    # the node's watchdog timer

    # 1. the events, timers in between, collecting what the runtime did
    outputs: list[TickOutput] = []
    next_timer = events[0][0] + period if events else 0.0
    for now, _, kind, payload in events:
        while True:   # timers due before this event, in time order
            due = rt.next_deadline()
            when = min(next_timer, due) if due is not None else next_timer
            if when > now:
                break
            outputs += rt.on_timer(when)
            if when == next_timer:
                next_timer += period
        outputs += (rt.on_frame(payload, now, int(now * NS)) if kind == 'frame'
                    else rt.on_intent(payload, now))

    # 2. compare tick by tick (watchdog stops repeat their tick: they are not tick decisions)
    replayed: dict[int, TickOutput] = {}
    for out in outputs:
        if out.trigger not in (Trigger.WATCHDOG, Trigger.EXTERNAL) or out.tick not in replayed:
            replayed.setdefault(out.tick, out)
    synced = not report.started_mid_run
    for t in sorted(statuses):
        st = statuses[t][0][1]
        mode, trigger = Mode(int(st.mode)), Trigger(int(st.trigger))
        if not synced:
            # a bag that starts mid-run: compare after the first stop (planner warm start and
            # command filter restart from rest on both sides)
            report.skipped_before_sync += 1
            synced = mode == Mode.STOPPED
            continue
        if trigger in (Trigger.WATCHDOG, Trigger.EXTERNAL):
            continue            # stops without a tick of their own (no frame) or from outside
        out = replayed.get(t)
        if out is None:
            report.not_replayed.append(t)
            continue
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
    # replayed ticks the robot did not record, between its first and last recorded ones (the
    # bag's ends cut anywhere: the recorder may stop before the robot's last statuses arrive)
    recorded_ticks = set(statuses)
    first, last = (min(recorded_ticks), max(recorded_ticks)) if recorded_ticks else (0, -1)
    report.not_recorded = sorted(t for t, o in replayed.items()
                                 if t not in recorded_ticks and first < t < last
                                 and o.trigger not in (Trigger.WATCHDOG, Trigger.EXTERNAL))
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
                                              'started_mid_run', 'skipped_before_sync')}))
    if report.started_mid_run:
        print(f'note: the bag starts after this robot\'s first tick; {report.skipped_before_sync} '
              'ticks before the first sync point (a stop) were replayed but not compared',
              file=sys.stderr)
    if summary['n_mismatched_ticks']:
        print(f'commands differ at ticks {summary["mismatched_ticks"][:10]} ...', file=sys.stderr)
    for key, ticks in report.decision_differences().items():
        print(f'{key}: {ticks[:10]}', file=sys.stderr)
    ok = report.compared and not summary['n_mismatched_ticks'] and report.decisions_identical
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
