"""Task configs: the shipped YAML files load, bad values fail naming the key, round trips."""
from __future__ import annotations

import pytest
import yaml

from seqwm_agent.sim import (ConfigError, GateConfig, PushBoxConfig, ShepherdConfig,
                             load_task_config, task_config_to_dict)
from seqwm_agent.sim.config import config_dir


@pytest.mark.parametrize('name, cls', [('pushbox', PushBoxConfig), ('gate', GateConfig),
                                       ('shepherd', ShepherdConfig)])
def test_the_shipped_yaml_equals_the_dataclass_defaults(name: str, cls):
    path = config_dir() / f'{name}.yaml'
    with open(path) as f:
        doc = yaml.safe_load(f)
    assert set(doc) <= {'task', 'train'}               # train: belongs to the trainer
    cfg = load_task_config(path)
    assert isinstance(cfg, cls)
    assert cfg == cls()                                # YAML documents the defaults
    assert load_task_config(name) == cfg               # by name too


def test_a_train_section_beside_task_is_ignored(tmp_path):
    path = tmp_path / 'pushbox.yaml'
    path.write_text('task:\n  name: pushbox\n  num_robots: 3\ntrain:\n  steps: 10\n')
    assert load_task_config(path).num_robots == 3


@pytest.mark.parametrize('task', ['pushbox', 'gate', 'shepherd'])
def test_config_round_trips_through_its_dict(task: str):
    cfg = load_task_config(task, overrides={'num_robots': 3, 'noise': {'pos_std': 0.02}})
    again = load_task_config(task_config_to_dict(cfg))
    assert again == cfg and again.noise.pos_std == 0.02 and again.num_robots == 3


@pytest.mark.parametrize('overrides, key', [
    ({'box_mas': 6.0}, 'box_mas'),
    ({'robot': {'vx_max': -1.0}}, 'robot.vx_max'),
    ({'physics': {'substeps': 0}}, 'physics.substeps'),
    ({'num_robots': 9}, 'num_robots'),
    ({'target': [9.5, 0.0]}, 'target'),
    ({'box_friction_range': [0.6, 0.4]}, 'box_friction_range'),
    ({'noise': {'yaw_std': float('nan')}}, 'noise.yaw_std'),
])
def test_bad_values_fail_with_the_key_in_the_message(overrides: dict, key: str):
    with pytest.raises(ConfigError, match=key.replace('.', r'\.')):
        load_task_config('pushbox', overrides=overrides)


def test_gate_defaults_follow_the_reference_and_fit_five_robots_in_the_room():
    two = load_task_config('gate')
    five = load_task_config('gate', overrides={'num_robots': 5})
    assert two.episode_seconds == 15.0 and five.episode_seconds == 30.0
    assert two.target_x_resolved == 5.5 and five.target_x_resolved == 7.0
    lanes = five.lane_offsets
    assert min(b - a for a, b in zip(lanes, lanes[1:])) >= 2 * five.robot.radius + 0.2
    a = five.arena
    assert a.y_min + five.robot.radius < min(lanes) and max(lanes) < a.y_max - five.robot.radius


def test_gate_lane_fit_widen_gives_the_reference_track_and_keeps_small_teams_in_the_room():
    room = load_task_config('gate').arena
    for n in (2, 3, 4, 5):
        wide = load_task_config('gate', overrides={'num_robots': n, 'lane_fit': 'widen'})
        lanes = wide.lane_offsets
        assert all(abs((b - a) - 1.5) < 1e-9 for a, b in zip(lanes, lanes[1:]))
        a = wide.arena
        if n <= 3:
            assert a == room
        else:
            assert a.y_max - a.y_min == pytest.approx(1.5 * n) and a.centre == room.centre
        assert a.y_min + wide.robot.radius < min(lanes) and max(lanes) < a.y_max - wide.robot.radius
        # the widened arena is what a manifest records; loading it again changes nothing
        assert load_task_config(task_config_to_dict(wide)).arena == a


def test_gate_lane_fit_rejects_an_unknown_mode():
    with pytest.raises(ConfigError, match='lane_fit'):
        load_task_config('gate', overrides={'lane_fit': 'stretch'})


def test_unknown_task_name_is_rejected():
    with pytest.raises(ConfigError, match='name'):
        load_task_config({'name': 'football'})
