"""The SROS2 policy covers exactly what the team's nodes really publish and subscribe."""
from __future__ import annotations

import sys
import time
import xml.dom.minidom
from pathlib import Path

from conftest import wait_for

from seqwm_bringup.graph import build_graph
from seqwm_bringup.runner import TeamRunner, team_nodes
from seqwm_bringup.security import COMMON_PUBLISH, team_policy

PACKAGE = Path(__file__).resolve().parents[1]
AGENT_TEST = PACKAGE.parent / 'seqwm_agent' / 'test'


def allowed(policy: str) -> dict[str, dict[str, set[str]]]:
    """enclave -> {'publish': topics, 'subscribe': topics}."""
    doc = xml.dom.minidom.parseString(policy)
    out = {}
    for enc in doc.getElementsByTagName('enclave'):
        rules = {'publish': set(), 'subscribe': set()}
        for block in enc.getElementsByTagName('topics'):
            for kind in rules:
                if block.getAttribute(kind) == 'ALLOW':
                    rules[kind] |= {t.firstChild.data for t in block.getElementsByTagName('topic')}
        out[enc.getAttribute('path')] = rules
    return out


def test_the_shipped_policy_is_the_generated_one():
    nodes = build_graph('pushbox', ['go2w_1', 'go2w_2'])
    shipped = (PACKAGE / 'security' / 'pushbox_policy.xml').read_text()
    assert shipped == team_policy(build_graph('pushbox', ['go2w_1', 'go2w_2'], sim=False)), \
        'regenerate: python -m seqwm_bringup.security --task pushbox > security/pushbox_policy.xml'
    rules = allowed(team_policy(nodes))
    assert set(rules) == {'/seqwm/arena', '/seqwm/mocap_bridge', '/seqwm/go2w_1/agent',
                          '/seqwm/go2w_2/agent'}
    writers = {e for e, r in rules.items() if '/mocap/frame' in r['publish']}
    assert writers == {'/seqwm/mocap_bridge'}             # nobody else may stamp a frame
    assert '/go2w_1/intent' in rules['/seqwm/go2w_2/agent']['subscribe']
    assert '/go2w_1/intent' not in rules['/seqwm/go2w_2/agent']['publish']


def test_every_topic_a_running_team_uses_is_allowed_to_its_node(tmp_path, rclpy_context):
    """Start the simulated team and read each node's publishers and subscriptions from the ROS
    graph: all of them must be in that node's enclave (and none beyond the common ones)."""
    from rclpy.node import Node

    sys.path.insert(0, str(AGENT_TEST))
    from agent_team import write_team
    model_dir = write_team(tmp_path / 'models')
    nodes = team_nodes('pushbox', ['go2w_1', 'go2w_2'], None, None, str(model_dir), sim=True)
    rules = allowed(team_policy(nodes))
    runner = TeamRunner(nodes, tmp_path / 'run')
    probe = Node('policy_probe', context=rclpy_context)
    runner.start()
    try:
        def seen() -> set:
            return {(ns.rstrip('/') + '/' + name).replace('//', '/')
                    for name, ns in probe.get_node_names_and_namespaces()}
        wait_for(lambda: {n.fqn for n in nodes} <= seen(), 60.0, what='every node on the graph')

        def ready(node) -> bool:         # a node is on the graph before its publishers exist
            pubs = {t for t, _ in probe.get_publisher_names_and_types_by_node(
                node.name, node.namespace or '/')}
            return bool(pubs - set(COMMON_PUBLISH))
        wait_for(lambda: all(ready(n) for n in nodes), 60.0, what='every node publishing')
        time.sleep(1.0)                  # the last subscriptions of a constructor
        checked = 0
        for node in nodes:
            name, ns = node.name, node.namespace or '/'
            used = {'publish': {t for t, _ in
                                probe.get_publisher_names_and_types_by_node(name, ns)},
                    'subscribe': {t for t, _ in
                                  probe.get_subscriber_names_and_types_by_node(name, ns)}}
            enc = rules[f'/seqwm{node.fqn}']
            for kind in ('publish', 'subscribe'):
                missing = used[kind] - enc[kind]
                assert not missing, (node.fqn, kind, missing)
                checked += len(used[kind])
            assert used['publish'] - set(COMMON_PUBLISH), node.fqn
        assert checked >= 20
    finally:
        runner.stop(timeout=10.0)
        probe.destroy_node()
