"""Checkpoints: one file per agent + manifest; bit-identical round trip; every mismatch refused."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

from seqwm_agent.core.checkpoint import (CheckpointError, Manifest, load_agent, load_manifest,
                                         save_agent, save_team, write_manifest)
from seqwm_agent.core.config import ModelConfig, PlannerConfig
from seqwm_agent.core.intent import IntentLayout
from seqwm_agent.core.planner import SequentialPlanner
from seqwm_agent.core.world_model import WorldModel

CFG = ModelConfig(obs_dim=6, num_agents=2, latent_dim=16, hidden_dim=24, critic_dim=16,
                  actor_dim=16, encoder_dim=16)
OBS_SPEC = ['id_0', 'id_1', 'box_dx', 'box_dy', 'target_dx', 'target_dy']


def team(seed: int = 0) -> list[WorldModel]:
    torch.manual_seed(seed)
    models = [WorldModel(CFG) for _ in range(CFG.num_agents)]
    with torch.no_grad():
        for m in models:
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.1)
    return models


def manifest(model_set_id: str = 'pushbox-2026-11-22-a') -> Manifest:
    return Manifest(model_set_id=model_set_id, model=CFG, obs_spec=OBS_SPEC,
                    action_scaling={'vx': 1.0, 'vy': 0.5, 'wz': 0.5}, dt=0.1,
                    order=['go2w_1', 'go2w_2'], task='pushbox', planner=PlannerConfig().to_dict(),
                    training={'env_steps': 1000}, evaluation={'success_rate': 0.5})


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, list[WorldModel]]:
    models = team()
    save_team(tmp_path, models, manifest())
    return tmp_path, models


def test_round_trip_is_bit_identical(saved):
    path, models = saved
    assert sorted(p.name for p in path.iterdir()) == ['agent_0.pt', 'agent_1.pt', 'manifest.yaml']
    for k, original in enumerate(models):
        loaded, man = load_agent(path, k, model_set_id='pushbox-2026-11-22-a', obs_spec=OBS_SPEC)
        assert man.model == CFG and man.order == ['go2w_1', 'go2w_2']
        a, b = original.state_dict(), loaded.state_dict()
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key
    # and a planner on the loaded model plans exactly as on the original
    layout = IntentLayout(2, 3, 16, 3)
    obs = torch.randn(1, 6)
    p0 = SequentialPlanner(models[1], layout, PlannerConfig(), 1, seed=3).plan(obs, layout.empty(1))
    p1 = SequentialPlanner(load_agent(path, 1)[0], layout, PlannerConfig(), 1,
                           seed=3).plan(obs, layout.empty(1))
    assert torch.equal(p0.actions, p1.actions)


def test_each_file_holds_only_its_agent(saved):
    path, models = saved
    payload = torch.load(path / 'agent_1.pt', weights_only=True)
    assert payload['agent_index'] == 1
    assert torch.equal(payload['state_dict']['_reward_head.weight'], models[1]._reward_head.weight)
    assert not torch.equal(payload['state_dict']['_reward_head.weight'], models[0]._reward_head.weight)


def test_manifest_records_the_free_form_sections(saved):
    path, _ = saved
    data = yaml.safe_load((path / 'manifest.yaml').read_text())
    assert data['obs_spec'] == OBS_SPEC and data['dt'] == 0.1
    assert data['training'] == {'env_steps': 1000} and data['evaluation'] == {'success_rate': 0.5}
    assert len(data['files']['agent_0.pt']) == 64
    assert load_manifest(path).planner['num_samples'] == 512


def test_truncated_file_is_refused(saved):
    path, _ = saved
    data = (path / 'agent_0.pt').read_bytes()
    (path / 'agent_0.pt').write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match='agent_0.pt: sha256'):
        load_agent(path, 0)


def test_corrupt_file_with_a_matching_hash_is_still_refused(saved):
    path, _ = saved
    (path / 'agent_0.pt').write_bytes(b'not a checkpoint at all')
    man = load_manifest(path)
    import hashlib
    man.files['agent_0.pt'] = hashlib.sha256(b'not a checkpoint at all').hexdigest()
    write_manifest(path, man)
    with pytest.raises(CheckpointError, match='cannot be read as a checkpoint'):
        load_agent(path, 0)


def test_file_swapped_between_agents_is_refused(saved):
    path, _ = saved
    shutil.copy(path / 'agent_1.pt', path / 'agent_0.pt')
    with pytest.raises(CheckpointError, match='sha256'):
        load_agent(path, 0)


def test_missing_keys_are_refused(saved, tmp_path_factory):
    path, models = saved
    man = load_manifest(path)
    torch_state = models[0].state_dict()
    del torch_state['_pi.2.weight']
    payload = {'format': 'seqwm-checkpoint', 'format_version': 1, 'agent_index': 0,
               'model_set_id': man.model_set_id, 'state_dict': torch_state}
    torch.save(payload, path / 'agent_0.pt')
    import hashlib
    man.files['agent_0.pt'] = hashlib.sha256((path / 'agent_0.pt').read_bytes()).hexdigest()
    write_manifest(path, man)
    with pytest.raises(CheckpointError, match=r"missing \['_pi.2.weight'\]"):
        load_agent(path, 0)


def test_widths_that_contradict_the_state_dict_are_refused(saved):
    path, _ = saved
    data = yaml.safe_load((path / 'manifest.yaml').read_text())
    data['model']['hidden_dim'] = 32
    (path / 'manifest.yaml').write_text(yaml.safe_dump(data))
    with pytest.raises(CheckpointError, match=r'_trunk\.0\..* has shape \(2, .*24\), '
                                              r'the manifest widths give \(2, .*32\)'):
        load_agent(path, 0)


def test_obs_spec_mismatch_is_refused(saved):
    path, _ = saved
    with pytest.raises(CheckpointError, match='expects 6 observation elements.*gives 5'):
        load_agent(path, 0, obs_spec=OBS_SPEC[:5])
    renamed = OBS_SPEC[:3] + ['target_dist'] + OBS_SPEC[4:]
    with pytest.raises(CheckpointError, match="element 3 is 'box_dy'"):
        load_agent(path, 0, obs_spec=renamed)
    data = yaml.safe_load((path / 'manifest.yaml').read_text())
    data['obs_spec'] = OBS_SPEC[:5]
    (path / 'manifest.yaml').write_text(yaml.safe_dump(data))
    with pytest.raises(CheckpointError, match='obs_spec has 5 names but model.obs_dim is 6'):
        load_agent(path, 0)


def test_other_model_set_is_refused(saved, tmp_path_factory):
    path, _ = saved
    with pytest.raises(CheckpointError, match='model_set_id'):
        load_agent(path, 0, model_set_id='gate-run-7')
    # a file saved by another run, with the manifest's hash patched in, is caught by its header
    other = tmp_path_factory.mktemp('other')
    man_other = manifest('another-run')
    save_agent(other, 0, team(1)[0], man_other)
    shutil.copy(other / 'agent_0.pt', path / 'agent_0.pt')
    man = load_manifest(path)
    man.files['agent_0.pt'] = man_other.files['agent_0.pt']
    write_manifest(path, man)
    with pytest.raises(CheckpointError, match="model_set_id 'another-run' differs"):
        load_agent(path, 0)


def test_missing_or_broken_manifest_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match='cannot read manifest'):
        load_agent(tmp_path, 0)
    (tmp_path / 'manifest.yaml').write_text('format: [unclosed')
    with pytest.raises(CheckpointError, match='not valid YAML'):
        load_manifest(tmp_path)
    (tmp_path / 'manifest.yaml').write_text(yaml.safe_dump({'format': 'something-else'}))
    with pytest.raises(CheckpointError, match='format'):
        load_manifest(tmp_path)


def test_agent_index_outside_the_team_is_refused(saved):
    path, _ = saved
    with pytest.raises(CheckpointError, match='agent index 2 outside 0..1'):
        load_agent(path, 2)


@pytest.mark.parametrize('change,words', [
    ({'action_scaling': {'vx': -1.0, 'vy': 0.5, 'wz': 0.5}}, 'action_scaling.vx'),   # inverts vx
    ({'action_scaling': {'vx': float('nan'), 'vy': 0.5, 'wz': 0.5}}, 'action_scaling.vx'),
    ({'action_scaling': {'vx': 1.0, 'vy': 0.5, 'yaw': 0.5}}, "must be exactly ['vx', 'vy', 'wz']"),
    ({'dt': float('inf')}, 'dt'),
    ({'dt': 0.0}, 'dt'),
])
def test_manifest_values_that_would_misdrive_a_robot_are_refused(change, words):
    """Issue 15 hole 6: a scaling of -1 silently inverted vx, NaN scaling loaded and blamed the
    planner every tick, unknown scaling keys fell back to dict order, dt: inf was accepted."""
    fields = dict(model_set_id='x', model=CFG, obs_spec=OBS_SPEC,
                  action_scaling={'vx': 1.0, 'vy': 0.5, 'wz': 0.5}, dt=0.1,
                  order=['go2w_1', 'go2w_2'])
    fields.update(change)
    with pytest.raises(CheckpointError, match=words.replace('[', r'\[').replace(']', r'\]')):
        Manifest(**fields)


def test_nan_weights_with_a_correct_sha256_are_refused(tmp_path):
    """Issue 15 hole 6: a file whose hash matches (written that way) but holds NaN weights
    loaded without complaint; the robot would stop on every tick."""
    models = team()
    with torch.no_grad():
        models[1]._dynamics_head.linear.weight[0, 0] = float('nan')
    save_team(tmp_path, models, manifest())
    load_agent(tmp_path, 0)                                   # the other robot's file is fine
    with pytest.raises(CheckpointError, match='non-finite'):
        load_agent(tmp_path, 1)


def test_a_termination_head_round_trips_and_old_manifests_load_without_one(tmp_path):
    """The head is saved and restored with its flag; a manifest written before the flag existed
    (no `termination` key, like every model shipped before it) loads as a model without it."""
    cfg = ModelConfig(**{**CFG.to_dict(), 'termination': True})
    torch.manual_seed(0)
    models = [WorldModel(cfg) for _ in range(2)]
    with torch.no_grad():
        models[1]._termination_head.bias.fill_(1.5)
    man = manifest()
    man.model = cfg
    save_team(tmp_path / 'new', models, man)
    loaded, got = load_agent(tmp_path / 'new', 1)
    assert got.model.termination and float(loaded._termination_head.bias.detach()) == 1.5

    save_team(tmp_path / 'old', team(), manifest())
    path = tmp_path / 'old' / 'manifest.yaml'
    data = yaml.safe_load(path.read_text())
    data['model'].pop('termination')
    path.write_text(yaml.safe_dump(data))
    old, got = load_agent(tmp_path / 'old', 0)
    assert not got.model.termination and old._termination_head is None


def test_a_non_boolean_termination_flag_is_refused():
    with pytest.raises(Exception, match='termination must be true or false'):
        ModelConfig(obs_dim=6, termination='yes')
