"""The pip-only team runner and `make demo`'s episode runner, with real processes over DDS."""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

from conftest import wait_for

from seqwm_bringup.demo import run_demo
from seqwm_bringup.runner import TeamRunner, team_nodes

AGENT_TEST = Path(__file__).resolve().parents[2] / 'seqwm_agent' / 'test'


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory) -> Path:
    """A real two-robot PushBox model set (random weights) written by the checkpoint code."""
    sys.path.insert(0, str(AGENT_TEST))
    from agent_team import write_team
    return write_team(tmp_path_factory.mktemp('models'))


def test_runner_stops_every_process_cleanly_even_after_one_crashed(tmp_path, model_dir):
    nodes = team_nodes('pushbox', ['go2w_1', 'go2w_2'], None, None, str(model_dir), sim=True)
    runner = TeamRunner(nodes, tmp_path)
    runner.start()
    try:
        agents = {r.node.fqn: r for r in runner.running if r.node.executable == 'agent'}
        for k, name in enumerate(('/go2w_1/agent', '/go2w_2/agent')):
            wait_for(lambda: f'order index {k}'.encode() in agents[name].log.read_bytes(), 60.0,
                     what=f'{name} up')
        agent1 = agents['/go2w_1/agent']
        os.killpg(agent1.proc.pid, signal.SIGKILL)          # a node dies mid-run
        wait_for(lambda: runner.crashed(), 10.0, what='the crash to be noticed')
        assert [name for name, _ in runner.crashed()] == ['/go2w_1/agent']
    finally:
        codes = runner.stop(timeout=10.0)
    assert runner.orphans() == []
    survivors = {k: v for k, v in codes.items() if k != '/go2w_1/agent'}
    assert all(code == 0 for code in survivors.values()), codes   # SIGINT -> clean exit
    assert (tmp_path / 'params' / 'go2w_2.agent.yaml').exists()


def test_demo_episode_writes_summary_plot_and_a_bag_that_replays_to_the_same_commands(tmp_path, model_dir):
    code, summary = run_demo('pushbox', None, str(model_dir), None, timeout_s=120.0,
                             runs_dir=tmp_path, overrides={'arena': {'episode_s': 3.0}})
    run = tmp_path / 'latest'
    assert code == 0, summary['processes']
    assert json.loads((run / 'summary.json').read_text()) == summary
    assert summary['episode_done'] and summary['sim_time_s'] == pytest.approx(3.0, abs=0.05)
    assert summary['processes']['orphans'] == [] and not summary['processes']['crashed_during_run']
    assert summary['command_limit_violations'] == 0
    for robot in ('go2w_1', 'go2w_2'):
        agent = summary['agents'][robot]
        assert agent['ticks'] >= 20 and agent['planning_ms']['p50'] > 0
        assert sum(agent['intent_modes'].values()) == agent['ticks']
    assert summary['agents']['go2w_2']['intent_modes']['fresh'] > 0
    assert (run / 'trajectory.png').stat().st_size > 10_000
    assert (run / 'bag' / 'metadata.yaml').exists()

    from seqwm_agent.bag import topic_types
    from seqwm_agent.replay import load_params, replay
    assert topic_types(run / 'bag')['/go2w_2/intent'] == 'seqwm_msgs/msg/Intent'
    for robot in ('go2w_1', 'go2w_2'):
        params = load_params(run / 'params' / f'{robot}.agent.yaml', robot)
        report = replay(run / 'bag', robot, params)
        # best-effort topics can lose messages on a loaded machine; ticks whose inputs the bag
        # lacks are not compared, every compared one must match exactly
        assert report.compared >= 10, report.to_json()
        # DDS may lose a robot's very first statuses to discovery; replay then syncs at the
        # robot's first planning tick after its start-up stops, which must exist in the bag
        assert report.skipped_before_sync == 0, report.to_json()
        assert report.mode_mismatches == [], report.to_json()
        assert report.decisions_identical, report.decision_differences()   # scheduling too
        assert max(report.max_abs_diff) <= 1e-6, report.to_json()
    # the scheduler really decides again: with a deadline too short for any intent, the
    # replayed robot 2 runs its ticks at the deadline, on the cache, and replay says so
    params = load_params(run / 'params' / 'go2w_2.agent.yaml', 'go2w_2')
    hurried = replay(run / 'bag', 'go2w_2', {**params, 'plan_budget_ms': 0.0004,
                                             'hop_budget_ms': 0.0001})
    assert not hurried.decisions_identical
    pairs = {(rec, got) for _, rec, got in hurried.trigger_mismatches}
    assert ('intent', 'deadline') in pairs and {got for _, got in pairs} == {'deadline'}, pairs


@pytest.mark.parametrize('task,robots', [('gate', 5), ('shepherd', 2)])
def test_every_task_runs_a_shortened_episode_of_its_shipped_model_over_dds(tmp_path, task,
                                                                            robots):
    """The path `make demo DEMO_ARGS="--task gate --robots 5"` takes: the graph picks the
    shipped model of the task and team size, every agent plans every tick over DDS, the team
    stops cleanly and nothing exceeds the command limits. (Success over a full episode is what
    seqwm-eval and `make demo` measure; 3 s is too short for it.)"""
    from seqwm_bringup.graph import robot_names
    code, summary = run_demo(task, robot_names(str(robots)), None, None, timeout_s=120.0,
                             runs_dir=tmp_path, overrides={'arena': {'episode_s': 3.0}})
    assert code == 0, summary['processes']
    name = task if robots == 2 else f'{task}_{robots}robots'
    assert summary['model_dir'].endswith(f'models/{name}')
    assert summary['episode_done'] and summary['command_limit_violations'] == 0
    assert len(summary['agents']) == robots
    for agent in summary['agents'].values():
        assert agent['ticks'] >= 20 and agent['planning_ms']['p50'] > 0
