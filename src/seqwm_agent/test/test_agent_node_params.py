"""The agent node's parameters: declared once as data, checked with messages naming the
parameter, consistent with the bringup graph and with docs/agent.md."""
from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_harness import start_agent  # noqa: E402
from agent_team import TEAM, write_team  # noqa: E402

from seqwm_agent.node_params import (BY_NAME, PARAMETERS, ParameterError, check_value,
                                     check_values, markdown_table, settings_from_values)


def values(**changes):
    v = {'robot_name': 'go2w_2', 'order_index': 1, 'team': list(TEAM), 'predecessor': 'go2w_1',
         'model_dir': '/tmp/m'}
    v.update(changes)
    return v


def test_every_parameter_is_described_and_its_default_passes_its_own_check():
    assert len(BY_NAME) == len(PARAMETERS), 'names must be unique'
    for p in PARAMETERS:
        assert len(p.description) > 10, p.name
        if not p.required:
            check_value(p, p.default)
    for name in ('robot_name', 'order_index', 'team', 'predecessor', 'task', 'model_dir',
                 'device', 'plan_budget_ms', 'hop_budget_ms', 'cache_max_age_ticks', 'stale_timeout_s',
                 'limits.vx', 'limits.ax', 'lowpass_cutoff_hz', 'backend', 'topic.topic',
                 'unitree.network_interface', 'unitree.domain_id', 'arena_min_x', 'target_x',
                 'target_y', 'planner.iterations', 'planner.early_stop', 'planner.kl_threshold',
                 'seed', 'deterministic'):
        assert name in BY_NAME, name


@pytest.mark.parametrize('name,value,words', [
    ('plan_budget_ms', 5000.0, 'parameter plan_budget_ms = 5000.0 is out of range [0, 1000]'),
    ('stale_timeout_s', -1.0, 'parameter stale_timeout_s'),
    ('limits.vx', 0.0, 'parameter limits.vx'),
    ('cache_max_age_ticks', 1000, 'parameter cache_max_age_ticks'),
    ('unitree.domain_id', 300, 'parameter unitree.domain_id'),
    ('backend', 'ros1', "parameter backend must be one of ['topic', 'unitree']"),
    ('task', 'football', 'parameter task'),
    ('order_index', 1.5, 'parameter order_index must be an integer'),
    ('hop_budget_ms', 'fast', 'parameter hop_budget_ms must be a number'),
    ('planner.preset', 'tiny', "parameter planner.preset must be one of ['deployment', 'paper']"),
    ('arena_min_x', math.inf, 'parameter arena_min_x'),
])
def test_out_of_range_values_are_refused_naming_the_parameter(name, value, words):
    with pytest.raises(ParameterError) as err:
        check_values(values(**{name: value}))
    assert words in str(err.value)


@pytest.mark.parametrize('changes,words', [
    (dict(predecessor='go2w_7'), "predecessor 'go2w_7' does not match the team order "
                                 "(expected 'go2w_1'"),
    (dict(robot_name='go2w_1'), "robot_name 'go2w_1' is not team[1] = 'go2w_2'"),
    (dict(order_index=2), 'order_index 2 is outside the team'),
    (dict(team=['go2w_1', 'go2w_1']), 'robot names must be unique'),
    (dict(arena_min_x=1.0), 'arena_min_x / arena_max_x must both be set'),
    (dict(arena_min_x=3.0, arena_max_x=2.0), 'arena_min_x = 3.0 must be below arena_max_x'),
])
def test_inconsistent_values_are_refused_naming_the_parameter(changes, words):
    with pytest.raises(ParameterError, match=re.escape(words)):
        check_values(values(**changes))


def test_values_become_settings_task_config_and_backend_parameters():
    v = check_values(values(**{'target_x': 4.5, 'limits.vx': 0.7, 'seed': 3,
                               'planner.iterations': 2, 'planner.early_stop': 'on',
                               'arena_min_y': -2.0, 'arena_max_y': 2.0, 'backend': 'unitree',
                               'unitree.network_interface': 'lo', 'order_index': 1}))
    s, backend, task = settings_from_values(v)
    assert s.robot_name == 'go2w_2' and s.team == TEAM and s.limits.vx == 0.7 and s.seed == 3
    assert s.planner_overrides == {'iterations': 2, 'early_stop': True}
    assert tuple(task.target) == (4.5, 0.0)              # y from the task config
    assert task.num_robots == 2
    assert s.arena_bounds == (0.0, 8.0, -2.0, 2.0)        # x from the task arena
    assert backend['network_interface'] == 'lo' and backend['ready_modes'] == [1, 3]
    s2, backend2, task2 = settings_from_values(check_values(values()))
    assert s2.arena_bounds is None and s2.planner_overrides == {} and backend2 == {'topic': 'cmd_vel'}
    assert tuple(task2.target) == (4.0, 0.0)


def test_every_parameter_the_bringup_graph_passes_is_declared():
    from seqwm_bringup.graph import build_graph

    cfg = {'task': {'target_x': 4.2, 'target_y': 0.1},
           'agent': {'stale_timeout_s': 0.3, 'model_dir': 'models/pushbox'}}
    for node in build_graph('pushbox', list(TEAM), cfg, sim=False):
        if node.executable == 'agent':
            undeclared = sorted(set(node.parameters) - set(BY_NAME))
            assert not undeclared, undeclared
            check_values(node.parameters)


def test_docs_table_is_the_generated_one():
    text = (REPO_ROOT / 'docs' / 'agent.md').read_text()
    assert markdown_table() in text, 'regenerate with: python -m seqwm_agent.node_params'


def test_node_process_refuses_to_start_with_a_message_naming_the_parameter(spawn, tmp_path):
    model_dir = write_team(tmp_path / 'models')
    bad = start_agent(spawn, tmp_path, 'go2w_1', model_dir, name='bad_budget',
                      plan_budget_ms=5000.0)
    slow = start_agent(spawn, tmp_path, 'go2w_2', model_dir, name='slow_chain',
                       plan_budget_ms=30.0)                    # 30 + 60 + 30 ms > dt 100 ms
    no_model = start_agent(spawn, tmp_path, 'go2w_2', tmp_path / 'nowhere', name='no_model')
    wait_for(lambda: all(p.poll() is not None for p in (bad, slow, no_model)), 60.0,
             what='the agents to exit')
    assert bad.returncode == slow.returncode == no_model.returncode == 2
    assert 'parameter plan_budget_ms = 5000.0 is out of range [0, 1000]' in spawn.log_text(bad)
    assert ('a chain of 2 robots needs 120.0 ms to the last command (1 x (plan 30.0 + hop 60.0 '
            'ms) + plan), more than the 100 ms control period') in spawn.log_text(slow)
    log = spawn.log_text(no_model)
    assert 'manifest' in log and 'Traceback' not in log
    assert '[go2w_2.agent]: cannot start' in log, 'start-up errors are logged under the node name'

