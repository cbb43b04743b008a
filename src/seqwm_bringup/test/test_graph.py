"""The node graph the launch files and the demo runner start (built without launch_ros)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from seqwm_bringup.graph import (GraphError, agent_only, build_graph, params_yaml, robot_names,
                                 ros_args, split_names)

PKG = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('n', [2, 3, 4, 5])
def test_gate_graph_chains_every_agent_to_its_predecessor(n):
    robots = [f'go2w_{k + 1}' for k in range(n)]
    nodes = build_graph('gate', robots, {'agent': {'hop_budget_ms': 3.0}}, sim=True)
    agents = [x for x in nodes if x.executable == 'agent']
    assert [a.namespace for a in agents] == [f'/{r}' for r in robots]
    assert [a.parameters['order_index'] for a in agents] == list(range(n))
    assert agents[0].remappings == () and agents[0].parameters['predecessor'] == ''
    for k in range(1, n):
        assert agents[k].remappings == (('predecessor_intent', f'/{robots[k - 1]}/intent'),)
        assert agents[k].parameters['predecessor'] == robots[k - 1]
    assert all(a.parameters['team'] == robots and a.parameters['hop_budget_ms'] == 3.0
               for a in agents)
    assert len({a.fqn for a in nodes}) == len(nodes), 'node names must be unique'
    # each agent admits frames and intents only from these nodes (runtime/sources.py)
    from seqwm_agent.runtime.sources import BRIDGE_NODE, agent_node
    assert [a.fqn for a in agents] == [agent_node(r) for r in robots]
    assert [x.fqn for x in nodes if x.executable == 'bridge'] == [BRIDGE_NODE]


def test_order_argument_changes_the_chain_not_the_namespaces():
    nodes = build_graph('pushbox', ['a', 'b', 'c'], order=['c', 'a', 'b'])
    agents = {x.namespace: x for x in nodes if x.executable == 'agent'}
    assert agents['/c'].parameters['order_index'] == 0
    assert agents['/a'].remappings == (('predecessor_intent', '/c/intent'),)
    assert agents['/b'].parameters['predecessor'] == 'a'


def test_sim_graph_has_arena_and_sim_mocap_real_graph_has_neither():
    sim = build_graph('pushbox', ['go2w_1', 'go2w_2'], sim=True)
    real = build_graph('pushbox', ['go2w_1', 'go2w_2'], {'mocap': {'source': 'nokov'}}, sim=False)
    assert [x.name for x in sim][:2] == ['arena', 'mocap_bridge']
    assert 'arena' not in [x.name for x in real]
    bridge = next(x for x in sim if x.name == 'mocap_bridge')
    assert bridge.parameters['source'] == 'sim'
    assert bridge.parameters['bodies'] == ['go2w_1', 'go2w_2', 'box']
    assert {x.parameters['backend'] for x in sim if x.executable == 'agent'} == {'topic'}
    assert {x.parameters['backend'] for x in real if x.executable == 'agent'} == {'unitree'}


def test_shared_task_section_reaches_arena_and_agents_alike():
    cfg = {'task': {'target_x': 4.2}, 'agent': {'model_dir': 'm'}, 'arena': {'seed': 3}}
    nodes = build_graph('pushbox', ['r1', 'r2'], cfg)
    assert {x.parameters.get('target_x') for x in nodes if x.name in ('arena', 'agent')} == {4.2}


@pytest.mark.parametrize('task,robots,msg', [
    ('pushbox', list('abcdef'), 'needs 1..5'),
    ('gate', ['a'], 'needs 2..5'),
    ('shepherd', list('abcdef'), 'needs 1..5'),
    ('gate', ['a', 'a'], 'unique'),
    ('gate', ['a', 'bad-name'], 'valid ROS name'),
    ('pushbox', ['a', 'box'], 'clashes'),
    ('football', ['a', 'b'], 'unknown task'),
])
def test_invalid_teams_are_refused_with_a_reason(task, robots, msg):
    with pytest.raises(GraphError, match=msg):
        build_graph(task, robots)


@pytest.mark.parametrize('task', ['pushbox', 'gate', 'shepherd'])
def test_graph_and_simulator_accept_the_same_team_sizes(task):
    """One task registry: a team the launch files start is one the simulator (and so the
    trainer and the agents' observation builder) can build, and vice versa."""
    from seqwm_agent.sim.config import ConfigError, load_task_config
    for n in range(0, 8):
        robots = [f'r{k}' for k in range(n)]
        try:
            build_graph(task, robots)
            graph_ok = True
        except GraphError:
            graph_ok = False
        try:
            load_task_config(task, overrides={'num_robots': n})
            sim_ok = True
        except ConfigError:
            sim_ok = False
        assert graph_ok == sim_ok, (task, n, graph_ok, sim_ok)


def test_order_must_be_a_permutation_of_robots():
    with pytest.raises(GraphError, match='permutation'):
        build_graph('pushbox', ['a', 'b'], order=['a', 'c'])


def test_agent_only_returns_that_robots_node():
    node = agent_only('pushbox', 'go2w_2', ['go2w_1', 'go2w_2'], sim=False)
    assert node.namespace == '/go2w_2' and node.parameters['order_index'] == 1
    with pytest.raises(GraphError):
        agent_only('pushbox', 'go2w_9', ['go2w_1', 'go2w_2'])


def test_process_arguments_and_params_file_name_the_node_explicitly():
    node = build_graph('pushbox', ['go2w_1', 'go2w_2'])[-1]
    args = ros_args(node, '/tmp/p.yaml')
    assert args[:3] == ['--ros-args', '-r', '__node:=agent']
    assert '__ns:=/go2w_2' in args and 'predecessor_intent:=/go2w_1/intent' in args
    doc = yaml.safe_load(params_yaml(node))
    assert list(doc) == ['/go2w_2/agent'], 'explicit section, never a /** wildcard'
    assert doc['/go2w_2/agent']['ros__parameters']['order_index'] == 1


def test_split_names_accepts_commas_and_spaces():
    assert split_names(' go2w_1, go2w_2  go2w_3 ') == ['go2w_1', 'go2w_2', 'go2w_3']


def test_a_team_size_names_the_robots_as_the_configs_do():
    assert robot_names('3') == ['go2w_1', 'go2w_2', 'go2w_3']
    assert robot_names('a,b') == ['a', 'b'] and robot_names(' ') == []
    with pytest.raises(GraphError, match='at least one robot'):
        robot_names('0')


@pytest.mark.parametrize('task,n,expected', [('gate', 2, 'models/gate'),
                                             ('gate', 5, 'models/gate_5robots'),
                                             ('shepherd', 2, 'models/shepherd')])
def test_agents_get_the_shipped_model_of_their_task_and_team_size(task, n, expected):
    agents = [x for x in build_graph(task, robot_names(str(n)), {'agent': {'model_dir': ''}})
              if x.executable == 'agent']
    assert len(agents) == n and {a.parameters['model_dir'] for a in agents} == {expected}
    mine = build_graph(task, robot_names(str(n)), {'agent': {'model_dir': 'x'}}, model_dir='y')
    assert {a.parameters['model_dir'] for a in mine if a.executable == 'agent'} == {'y'}


def test_the_papers_gate_reaches_arena_and_agents_and_selects_its_model():
    cfg = {'task': {'task_config': 'gate_paper'}, 'agent': {'model_dir': ''}}
    nodes = build_graph('gate', robot_names('5'), cfg)
    arena = next(x for x in nodes if x.executable == 'arena')
    agents = [x for x in nodes if x.executable == 'agent']
    assert arena.parameters['task_config'] == 'gate_paper'
    assert {a.parameters['task_config'] for a in agents} == {'gate_paper'}
    assert {a.parameters['model_dir'] for a in agents} == {'models/gate_paper_5robots'}


def test_a_task_config_holds_only_what_differs_from_the_shared_base(tmp_path):
    from seqwm_bringup.graph import load_config
    gate = load_config(PKG / 'config' / 'gate.yaml')
    base = load_config(PKG / 'config' / 'team.yaml')
    assert gate['agent'] == base['agent'] and gate['sim_agent'] == base['sim_agent']
    assert gate['team']['robots'] == ['go2w_1', 'go2w_2', 'go2w_3']
    assert load_config(PKG / 'config' / 'pushbox.yaml')['task']['target_x'] == 4.0
    # a section merges key by key over the base's; a loop is refused by name
    (tmp_path / 'mine.yaml').write_text(f"extends: {PKG / 'config' / 'gate.yaml'}\n"
                                        "agent: {stale_timeout_s: 0.5}\n")
    mine = load_config(tmp_path / 'mine.yaml')
    assert mine['agent']['stale_timeout_s'] == 0.5 and mine['agent']['deterministic'] is True
    (tmp_path / 'a.yaml').write_text('extends: b.yaml\n')
    (tmp_path / 'b.yaml').write_text('extends: a.yaml\n')
    with pytest.raises(GraphError, match='extends itself'):
        load_config(tmp_path / 'a.yaml')


@pytest.mark.parametrize('name', ['pushbox', 'gate', 'shepherd', 'agent'])
def test_launch_files_are_valid_python_that_define_generate_launch_description(name):
    tree = ast.parse((PKG / 'launch' / f'{name}.launch.py').read_text())
    assert 'generate_launch_description' in {f.name for f in tree.body if isinstance(f, ast.FunctionDef)}
    ast.parse((PKG / 'seqwm_bringup' / 'launch_actions.py').read_text())


def test_a_team_on_one_host_takes_the_sim_agent_values_and_robots_do_not():
    config = {'agent': {'cache_max_age_ticks': 3},
              'sim_agent': {'plan_budget_ms': 15.0, 'hop_budget_ms': 3.0}}
    sim = [x for x in build_graph('gate', ['go2w_1', 'go2w_2'], config, sim=True)
           if x.executable == 'agent']
    real = [x for x in build_graph('gate', ['go2w_1', 'go2w_2'], config, sim=False)
            if x.executable == 'agent']
    assert all(a.parameters['plan_budget_ms'] == 15.0 for a in sim)
    assert all('plan_budget_ms' not in a.parameters for a in real)
    config['agent']['plan_budget_ms'] = 9.0               # the agent section still wins
    sim = [x for x in build_graph('gate', ['go2w_1', 'go2w_2'], config, sim=True)
           if x.executable == 'agent']
    assert all(a.parameters['plan_budget_ms'] == 9.0 and a.parameters['hop_budget_ms'] == 3.0
               for a in sim)
