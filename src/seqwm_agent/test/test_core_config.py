"""Configuration blocks: defaults, YAML round trip, validation messages naming the parameter."""
from __future__ import annotations

import pytest
import yaml

from seqwm_agent.core.config import ConfigError, ModelConfig, PlannerConfig


def test_planner_defaults_are_the_paper_settings():
    cfg = PlannerConfig()
    assert (cfg.horizon, cfg.iterations, cfg.num_samples, cfg.num_pi_trajs,
            cfg.num_elites) == (3, 6, 512, 24, 64)
    assert cfg.temperature == 0.5 and (cfg.min_std, cfg.max_std) == (0.05, 2.0)


@pytest.mark.parametrize('cls, kwargs', [
    (ModelConfig, {'obs_dim': 33, 'num_agents': 2, 'latent_dim': 64, 'hidden_dim': 128}),
    (PlannerConfig, {'horizon': 5, 'early_stop': True, 'kl_threshold': 0.1, 'lowpass_cutoff_hz': None}),
])
def test_yaml_round_trip(cls, kwargs):
    cfg = cls(**kwargs)
    again = cls.from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict())))
    assert again == cfg


@pytest.mark.parametrize('cls, data, name', [
    (ModelConfig, {'obs_dim': 33, 'num_agents': 2, 'latent_dim': 36}, 'latent_dim'),
    (ModelConfig, {'obs_dim': 0, 'num_agents': 2}, 'obs_dim'),
    (ModelConfig, {'obs_dim': 33, 'num_agents': 2, 'vmin': 5.0, 'vmax': 5.0}, 'vmin'),
    (PlannerConfig, {'num_elites': 1000}, 'num_elites'),
    (PlannerConfig, {'min_std': 3.0}, 'min_std'),
    (PlannerConfig, {'lowpass_cutoff_hz': 6.0, 'control_hz': 10.0}, 'lowpass_cutoff_hz'),
    (PlannerConfig, {'temperature': 0.0}, 'temperature'),
    (PlannerConfig, {'horizon': 2.5}, 'horizon'),
    (PlannerConfig, {'early_stop': 'yes'}, 'early_stop'),
    (PlannerConfig, {'horizn': 3}, 'horizn'),
])
def test_invalid_values_are_refused_naming_the_parameter(cls, data, name):
    with pytest.raises(ConfigError, match=name):
        cls.from_dict(data)


def test_intent_width_follows_the_slot_layout():
    cfg = ModelConfig(obs_dim=33, num_agents=3, latent_dim=32, action_dim=3)
    assert cfg.slot_dim == 32 + 3 + 1
    assert cfg.intent_dim == 3 * 36
