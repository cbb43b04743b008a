"""Shipped data is found by one rule ($SEQWM_ROOT, then the installed share directory), never
from the working directory, and a model that does not fit the team is refused by name."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from seqwm_agent.paths import (model_dir_for_team, resolve_data_path, team_mismatch,
                               team_model_problem, where_searched)
from seqwm_agent.task_registry import TASKS, task_info


def _model(root: Path, rel: str, task: str = 'gate', n: int = 2) -> Path:
    d = root / rel
    d.mkdir(parents=True)
    (d / 'manifest.yaml').write_text(f'task: {task}\nnum_agents: {n}\nmodel: {{num_agents: {n}}}\n')
    return d


@pytest.fixture
def share(tmp_path, monkeypatch) -> Path:
    """A fake install prefix with share/seqwm_agent on AMENT_PREFIX_PATH, SEQWM_ROOT unset."""
    prefix = tmp_path / 'install'
    (prefix / 'share' / 'seqwm_agent').mkdir(parents=True)
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(prefix))
    monkeypatch.delenv('SEQWM_ROOT', raising=False)
    return prefix / 'share' / 'seqwm_agent'


def test_a_relative_model_dir_is_never_taken_from_the_working_directory(tmp_path, share,
                                                                         monkeypatch):
    cwd = tmp_path / 'elsewhere'
    _model(cwd, 'models/gate')              # a decoy where the process happens to run
    installed = _model(share, 'models/gate')
    monkeypatch.chdir(cwd)
    assert resolve_data_path('models/gate') == str(installed.resolve())


def test_seqwm_root_comes_before_the_installed_share_directory(tmp_path, share, monkeypatch):
    _model(share, 'models/gate')
    ws = _model(tmp_path / 'ws', 'models/gate')
    monkeypatch.setenv('SEQWM_ROOT', str(tmp_path / 'ws'))
    assert resolve_data_path('models/gate') == str(ws.resolve())


def test_absolute_paths_are_used_as_given_and_misses_name_where_they_looked(tmp_path, share):
    assert resolve_data_path(str(tmp_path / 'x')) == str(tmp_path / 'x')
    missing = resolve_data_path('models/nothing')
    assert missing == str(share / 'models/nothing')
    assert str(share) in where_searched('models/nothing')


def test_with_nothing_sourced_the_message_says_what_to_source(monkeypatch):
    monkeypatch.delenv('SEQWM_ROOT', raising=False)
    monkeypatch.setenv('AMENT_PREFIX_PATH', '')
    assert resolve_data_path('models/gate') == 'models/gate'
    assert 'install/setup.bash' in where_searched('models/gate')


@pytest.mark.parametrize('task,n,comm,expected', [
    ('pushbox', 2, 'seq', 'models/pushbox'),
    ('gate', 2, 'seq', 'models/gate'),
    ('gate', 5, 'seq', 'models/gate_5robots'),
    ('gate', 5, 'dec', 'models/gate_5robots_dec'),
    ('shepherd', 2, 'dec', 'models/shepherd_dec'),
])
def test_model_directories_are_named_by_task_team_size_and_comm(task, n, comm, expected):
    assert task_info(task).model_dir_for(n, comm) == expected
    if comm == 'seq':
        assert model_dir_for_team('', task, n) == expected
        assert model_dir_for_team('my/model', task, n) == 'my/model'


def test_a_task_variant_names_its_model_directory():
    assert task_info('gate').model_dir_for(5, 'seq', 'paper') == 'models/gate_paper_5robots'
    assert task_info('gate').model_dir_for(2, 'dec', 'paper') == 'models/gate_paper_dec'


def test_a_team_size_outside_the_task_range_has_no_model_directory():
    with pytest.raises(ValueError, match='gate supports 2..5 robots'):
        TASKS['gate'].model_dir_for(6)


def test_a_model_of_another_team_size_is_refused_naming_both_sizes(tmp_path):
    d = _model(tmp_path, 'models/gate', 'gate', 2)
    team = [f'go2w_{k}' for k in range(1, 6)]
    msg = team_model_problem(str(d), 'gate', team)
    assert 'team size mismatch' in msg and 'for 2 robots' in msg and 'has 5' in msg
    assert 'models/gate_5robots' in msg and 'seqwm-train --task gate --robots 5' in msg
    assert team_model_problem(str(d), 'gate', team[:2]) == ''


def test_a_model_of_another_task_is_refused(tmp_path):
    d = _model(tmp_path, 'models/pushbox', 'pushbox', 2)
    assert 'holds a pushbox model; this is a gate team' in team_model_problem(
        str(d), 'gate', ['a', 'b'])
    assert team_mismatch(d, 'pushbox', 2, 'pushbox', ['a', 'b']) == ''


def test_a_missing_model_says_how_to_train_it(tmp_path):
    msg = team_model_problem(str(tmp_path / 'models/gate_3robots'), 'gate', ['a', 'b', 'c'])
    assert 'no model at' in msg and 'seqwm-train --task gate --robots 3' in msg


def test_the_installed_share_directory_holds_every_shipped_model():
    """The colcon build installs models/ into share/seqwm_agent/models (the real install)."""
    repo = Path(__file__).resolve().parents[3]
    shipped = sorted(d.name for d in (repo / 'models').iterdir() if (d / 'manifest.yaml').is_file())
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    installed = [Path(p) / 'share' / 'seqwm_agent' / 'models' for p in prefixes]
    found = next((d for d in installed if d.is_dir()), None)
    assert found is not None, f'no share/seqwm_agent/models on AMENT_PREFIX_PATH {prefixes}'
    assert shipped and sorted(d.name for d in found.iterdir()) == shipped
