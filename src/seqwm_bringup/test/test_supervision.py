"""When a node of the team exits, the team restarts it by policy or shuts down saying who and
why: the pure policy, then the pip-only runner with real agent processes over DDS."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from conftest import wait_for

from seqwm_bringup.graph import GraphError, NodeSpec
from seqwm_bringup.runner import TeamRunner, team_nodes
from seqwm_bringup.supervision import ExitPolicy, exit_reason
from seqwm_common.node import EXIT_STARTUP_FAILED

AGENT_TEST = Path(__file__).resolve().parents[2] / 'seqwm_agent' / 'test'
AGENT = NodeSpec('seqwm_agent', 'agent', 'agent', '/go2w_2')
ARENA = NodeSpec('seqwm_agent', 'arena', 'arena')


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory) -> Path:
    sys.path.insert(0, str(AGENT_TEST))
    from agent_team import write_team
    return write_team(tmp_path_factory.mktemp('models'))


@pytest.mark.parametrize('code,words', [
    (0, 'exited cleanly (exit 0)'), (EXIT_STARTUP_FAILED, 'start-up failed (exit 2)'),
    (-9, 'killed by SIGKILL'),
    (137, 'killed by SIGKILL (exit 137)'), (1, 'failed (exit 1)'), (-200, 'killed by signal 200'),
])
def test_exit_codes_are_told_in_words(code, words):
    assert exit_reason(code) == words


def test_a_failed_start_is_never_restarted_whatever_the_policy():
    d = ExitPolicy('restart', max_restarts=5).decide(AGENT, EXIT_STARTUP_FAILED, 0)
    assert not d.restart
    assert 'robot go2w_2 (/go2w_2/agent) start-up failed' in d.message and 'shutting' in d.message


def test_restart_policy_restarts_an_agent_up_to_max_restarts_then_shuts_down():
    p = ExitPolicy('restart', max_restarts=2, restart_delay_s=0.5)
    first, second, third = (p.decide(AGENT, -9, k) for k in range(3))
    assert first.restart and second.restart and not third.restart
    assert first.delay_s == 0.5 and 'restart 1 of 2' in first.message
    assert 'after 2 restarts' in third.message and 'killed by SIGKILL' in third.message


def test_shutdown_policy_and_any_exit_of_the_arena_shut_the_team_down():
    assert not ExitPolicy('shutdown').decide(AGENT, -9, 0).restart
    d = ExitPolicy('restart').decide(ARENA, 1, 0)
    assert not d.restart and d.message.startswith('/arena failed (exit 1); every robot depends')


@pytest.mark.parametrize('section,words', [
    ({'agent_exit': 'respawn'}, 'agent_exit must be one of'),
    ({'max_restarts': -1}, 'max_restarts must be an integer'),
    ({'restart_delay_s': 600}, 'restart_delay_s must be in'),
    ({'restarts': 3}, 'unknown keys'),
])
def test_a_bad_supervision_section_is_refused_naming_the_key(section, words):
    with pytest.raises(GraphError, match=words):
        ExitPolicy.from_config({'supervision': section})


def _until_shutdown(runner: TeamRunner, timeout: float) -> str:
    """Supervise until the runner decides to shut the team down; that decision's message."""
    said: list = []
    wait_for(lambda: said.append(runner.supervise()) or said[-1] is not None, timeout,
             interval=0.1, what='the team to be shut down')
    return said[-1]


def _agents_up(runner: TeamRunner) -> dict:
    agents = {r.node.fqn: r for r in runner.running if r.node.executable == 'agent'}
    for k, (name, r) in enumerate(agents.items()):
        wait_for(lambda: f'order index {k}'.encode() in r.log.read_bytes(), 60.0, what=f'{name} up')
    return agents


def test_a_killed_agent_is_restarted_by_the_restart_policy(tmp_path, model_dir):
    nodes = team_nodes('pushbox', ['go2w_1', 'go2w_2'], None, None, str(model_dir), sim=True)
    said: list[str] = []
    runner = TeamRunner(nodes, tmp_path, policy=ExitPolicy('restart', 1, 0.2), report=said.append)
    runner.start()
    try:
        agent = _agents_up(runner)['/go2w_2/agent']
        old = agent.proc.pid
        os.killpg(old, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while agent.proc.pid == old and time.monotonic() < deadline:
            assert runner.supervise() is None
            time.sleep(0.1)
        assert agent.proc.pid != old and agent.restarts == 1
        wait_for(lambda: agent.log.read_bytes().count(b'order index 1') == 2, 60.0,
                 what='the restarted agent up')
        assert said == ['robot go2w_2 (/go2w_2/agent) killed by SIGKILL; restarting it in 0.2 s '
                        '(restart 1 of 1)']
        os.killpg(agent.proc.pid, signal.SIGKILL)          # restarts used up: the team stops
        assert 'after 1 restarts' in _until_shutdown(runner, 10.0) == said[-1]
    finally:
        runner.stop(timeout=10.0)
    assert runner.orphans() == []


def test_an_agent_that_cannot_start_shuts_the_team_down_with_its_logged_reason(tmp_path,
                                                                              model_dir):
    nodes = team_nodes('pushbox', ['go2w_1', 'go2w_2'], None, None, str(model_dir), sim=True)
    for n in nodes:
        if n.namespace == '/go2w_2':
            n.parameters['plan_budget_ms'] = 500.0     # the chain cannot fit the tick: refused
    said: list[str] = []
    runner = TeamRunner(nodes, tmp_path, policy=ExitPolicy('restart'), report=said.append)
    runner.start()
    try:
        _until_shutdown(runner, 60.0)
    finally:
        runner.stop(timeout=10.0)
    assert len(said) == 1 and said[0].startswith('robot go2w_2 (/go2w_2/agent) start-up failed')
    # the agent logged its start-up error under its own node name, and the message quotes it
    assert '[go2w_2.agent]: cannot start:' in said[0] and 'control period' in said[0]


@pytest.mark.parametrize('task', ['pushbox', 'gate', 'shepherd'])
def test_every_shipped_bringup_config_has_a_valid_supervision_section(task):
    from seqwm_bringup.graph import load_config
    config = load_config(Path(__file__).resolve().parents[1] / 'config' / f'{task}.yaml')
    assert 'supervision' in config
    assert ExitPolicy.from_config(config).agent_exit in ('shutdown', 'restart')
