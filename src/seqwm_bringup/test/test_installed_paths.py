"""A team started from any working directory finds its models and configs in the installed
package (share/), as `ros2 launch` after sourcing install/setup.bash does on a robot: the same
path resolution the launch files call (runner.resolve_paths), with cwd = / and no $SEQWM_ROOT."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import wait_for

REPO = Path(__file__).resolve().parents[3]


def _env_without_workspace() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != 'SEQWM_ROOT'}
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    return env


def test_graph_paths_resolve_from_the_installed_share_directory_with_cwd_at_root():
    code = ('import json\n'
            'from seqwm_bringup.runner import default_config, team_nodes\n'
            'nodes = team_nodes("pushbox", None, None, None, None)\n'
            'print(json.dumps({"config": str(default_config("pushbox")), "models": '
            '[n.parameters["model_dir"] for n in nodes if n.executable == "agent"]}))\n')
    out = subprocess.run([sys.executable, '-c', code], cwd='/', env=_env_without_workspace(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert '/share/seqwm_bringup/config/pushbox.yaml' in got['config']
    assert len(got['models']) == 2
    for m in got['models']:
        assert m.endswith('/share/seqwm_agent/models/pushbox'), m
        assert (Path(m) / 'manifest.yaml').is_file()


def test_a_team_size_without_a_model_is_refused_before_any_node_starts(tmp_path):
    out = subprocess.run([sys.executable, '-m', 'seqwm_bringup.runner', '--task', 'pushbox',
                          '--robots', '4', '--run-dir', str(tmp_path)], cwd='/',
                         env=_env_without_workspace(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert 'pushbox_4robots' in out.stderr and 'seqwm-train --task pushbox --robots 4' in out.stderr
    assert not (tmp_path / 'logs').exists()


def test_the_runner_started_at_root_runs_agents_on_the_installed_model(tmp_path):
    proc = subprocess.Popen([sys.executable, '-m', 'seqwm_bringup.runner', '--task', 'pushbox',
                             '--run-dir', str(tmp_path)], cwd='/', env=_env_without_workspace(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        logs = [tmp_path / 'logs' / f'go2w_{k}.agent.log' for k in (1, 2)]
        wait_for(lambda: all(p.exists() and b'order index' in p.read_bytes() for p in logs), 90.0,
                 what='both agents to load their model')
        for p in logs:
            assert b'/share/seqwm_agent/models/pushbox' in p.read_bytes()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()
