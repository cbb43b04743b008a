"""What a stranger's flood costs the team: the 2-robot PushBox demo episode, clean and with
`seqwm_bringup.strangers flood-intent` (1 kHz of stale, repeated and malformed intents on
/go2w_1/intent) beside it, alternated `--pairs` times.

Figures per condition: go2w_2's CPU share over the run (its process, start-up included), its
fresh fraction of planning ticks, the refusals counted, success; and the flood's CPU over the
clean run's (the baseline measured in the same run). Prints one JSON object.

A stranger on a lab network runs on its own computer: only its traffic reaches the team's.
On one 2-core machine it also takes the team's cores. `--stranger-cpu 0.25` caps the stranger
process at a quarter of a core (a cgroup of its own, CFS quota; needs root), so the figure
separates what the flood's *messages* cost the team from what a co-located flooder's *CPU*
costs it; the achieved flood rate is reported either way.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import emit  # noqa: E402


PREFIX = os.environ.get('STRANGER_PREFIX', '').split()
CGROUP_ROOTS = (Path('/sys/fs/cgroup/cpu'), Path('/sys/fs/cgroup'))   # cgroup v1, v2


def cpu_capped_group(fraction: float) -> Path:
    """A cgroup whose processes get at most `fraction` of one core (v1 CFS quota or v2 cpu.max)."""
    period = 100_000
    for root in CGROUP_ROOTS:
        if (root / 'cpu.cfs_quota_us').exists() or (root / 'cpu.max').exists() \
                or (root / 'cgroup.controllers').exists():
            group = root / 'seqwm_stranger'
            group.mkdir(exist_ok=True)
            quota = int(fraction * period)
            if (group / 'cpu.cfs_quota_us').exists():
                (group / 'cpu.cfs_period_us').write_text(str(period))
                (group / 'cpu.cfs_quota_us').write_text(str(quota))
            else:
                (group / 'cpu.max').write_text(f'{quota} {period}')
            return group
    raise SystemExit('--stranger-cpu needs a writable cpu cgroup (run as root)')


def episode(runs: Path, mode: str | None, rate: float, group: Path | None = None) -> dict:
    from seqwm_bringup.demo import run_demo
    proc = None
    report = runs / 'stranger.json'
    if mode:
        def join_group() -> None:        # in the child, before exec: capped from its first line
            if group is not None:
                (group / 'cgroup.procs').write_text(str(os.getpid()))
        proc = subprocess.Popen(PREFIX + [sys.executable, '-m', 'seqwm_bringup.strangers', mode,
                                 '--rate', str(rate), '--report', str(report)],
                                stdout=subprocess.DEVNULL, stderr=open(runs / "stranger.log", "w"),
                                preexec_fn=join_group)
    own = resource.getrusage(resource.RUSAGE_SELF)
    try:
        _, summary = run_demo('pushbox', ['go2w_1', 'go2w_2'], None, None, timeout_s=150.0,
                              runs_dir=runs)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            proc.wait(20)
    if mode and (proc.returncode != 0 or not report.exists()):
        raise SystemExit(f'the stranger failed (exit {proc.returncode}): '
                         f'{(runs / "stranger.log").read_text()[-2000:]}')
    after = resource.getrusage(resource.RUSAGE_SELF)
    recorder_cpu_s = after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime
    f = summary['agents']['go2w_2']
    m = f['intent_modes']
    planning = m['fresh'] + m['cached'] + m['masked']
    return {'cpu_percent': summary['processes']['cpu_percent'].get('/go2w_2/agent'),
            'all_cpu_percent': summary['processes']['cpu_percent'],
            'recorder_cpu_s': round(recorder_cpu_s, 1),
            'planning_ms': {r: summary['agents'][r].get('planning_ms') for r in ('go2w_1', 'go2w_2')},
            'fresh_fraction': round(m['fresh'] / planning, 3) if planning else None,
            'rejected': f['rejected_inputs'], 'success': summary['success'],
            'stranger': json.loads(report.read_text()) if mode and report.exists() else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--pairs', type=int, default=2)
    ap.add_argument('--rate', type=float, default=1000.0)
    ap.add_argument('--stranger-cpu', type=float, default=0.0,
                    help='cap the stranger at this fraction of one core (0: no cap)')
    args = ap.parse_args(argv)
    group = cpu_capped_group(args.stranger_cpu) if args.stranger_cpu > 0 else None
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    runs = {'clean': [], 'flood': []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.pairs):
            for cond in ('clean', 'flood'):
                d = Path(tmp) / f'{cond}{k}'
                d.mkdir()
                runs[cond].append(episode(d, 'flood-intent' if cond == 'flood' else None,
                                          args.rate, group))
    cpu = {c: float(np.mean([r['cpu_percent'] for r in rs])) for c, rs in runs.items()}
    emit('strangers', {
        'flood_rate_hz': args.rate, 'stranger_cpu_cap': args.stranger_cpu or None,
        'achieved_rate_hz': [(r['stranger'] or {}).get('rate_hz') for r in runs['flood']],
        'go2w_2_cpu_percent': {c: round(v, 1) for c, v in cpu.items()},
        'cpu_flood_over_clean': round(cpu['flood'] / cpu['clean'], 3),
        'fresh_fraction': {c: [r['fresh_fraction'] for r in rs] for c, rs in runs.items()},
        'success': {c: [r['success'] for r in rs] for c, rs in runs.items()},
        'runs': runs})
    return 0


if __name__ == '__main__':
    sys.exit(main())
