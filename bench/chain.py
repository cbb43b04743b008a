"""The sequential chain inside one control tick: from a tick's frame to the last robot's command.

One process per robot over real DDS on this machine (`seqwm_bringup.demo`: arena, bridge, one
agent process per robot, the recorder), the shipped Gate models of 2, 3 and 5 robots with their
deployment planners and chain timing (manifest `deployment`, runtime/chain.py). Per team: each
robot's frame-to-command latency (wait for its predecessor + its own planning, from its status)
p50 / p99, its fresh / cached / masked fractions, command-limit violations, success. Target: the
last robot of five at p99 <= 60 ms, every robot fresh on >= 90 % of its planning ticks.

The baseline measured in the same run is the first robot's own planning time (no wait): the
ratio last/first says how much of the chain's latency is the chain.

    python bench/chain.py [--teams 2,3,5] [--repeat 1]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import emit  # noqa: E402


def team_run(n: int, runs: Path) -> dict:
    from seqwm_bringup.demo import run_demo
    robots = [f'go2w_{k + 1}' for k in range(n)]
    code, summary = run_demo('gate', robots, None, None, timeout_s=200.0, runs_dir=runs)
    agents = summary['agents']
    out = {'exit_code': code, 'success': summary.get('success'), 'robots': {}}
    for r in robots:
        a = agents[r]
        m = a['intent_modes']
        planning = m['fresh'] + m['cached'] + m['masked']
        out['robots'][r] = {
            'command_ms': a['command_ms'], 'planning_ms': a['planning_ms'],
            'fresh_fraction': round(m['fresh'] / planning, 3) if planning else None,
            'modes': m, 'command_limit_violations': a['command_limit_violations']}
    first, last = out['robots'][robots[0]], out['robots'][robots[-1]]
    out['last_command_ms'] = last['command_ms']
    out['last_over_first_p50'] = (round(last['command_ms']['p50'] / first['planning_ms']['p50'], 2)
                                  if first['planning_ms']['p50'] else None)
    out['min_fresh_fraction'] = min(v['fresh_fraction'] or 0.0 for v in out['robots'].values())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--teams', default='2,3,5')
    ap.add_argument('--repeat', type=int, default=1)
    args = ap.parse_args(argv)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.teams.split(',')):
            runs = [team_run(n, Path(tmp) / f'n{n}_{k}') for k in range(args.repeat)]
            result[f'robots_{n}'] = runs if args.repeat > 1 else runs[0]
    emit('chain', result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
