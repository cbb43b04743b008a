"""The trainer's learning-health monitor: the contact AUC and prediction errors (train/health.py)."""
from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqwm_agent.core.config import ModelConfig
from seqwm_agent.core.world_model import WorldModel
from seqwm_agent.train.health import Transitions, contact_auc, learning_health


def test_auc_is_one_when_every_contact_is_predicted_below_every_ordinary_step():
    pred = torch.tensor([-3.0, -2.0, 0.1, 0.2, 0.3])
    contact = torch.tensor([True, True, False, False, False])
    assert contact_auc(pred, contact) == 1.0
    assert contact_auc(-pred, contact) == 0.0


def test_auc_is_one_half_when_the_model_cannot_tell_contacts_apart():
    pred = torch.zeros(6)
    contact = torch.tensor([True, False, True, False, False, False])
    assert contact_auc(pred, contact) == 0.5


def test_auc_needs_both_kinds_of_transition():
    assert contact_auc(torch.randn(4), torch.zeros(4, dtype=torch.bool)) is None
    assert contact_auc(torch.randn(4), torch.ones(4, dtype=torch.bool)) is None


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 5), st.booleans()), min_size=2, max_size=30))
def test_auc_equals_the_fraction_of_correctly_ranked_pairs(rows):
    pred = torch.tensor([float(p) for p, _ in rows])
    contact = torch.tensor([c for _, c in rows])
    pairs = [(a, b) for a, ca in zip(pred.tolist(), contact.tolist()) if ca
             for b, cb in zip(pred.tolist(), contact.tolist()) if not cb]
    if not pairs:
        assert contact_auc(pred, contact) is None
        return
    expected = sum(1.0 if a < b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)
    assert abs(contact_auc(pred, contact) - expected) < 1e-9


def test_learning_health_reports_every_agent_on_gathered_transitions():
    torch.manual_seed(0)
    cfg = ModelConfig(obs_dim=5, num_agents=3, latent_dim=16, encoder_dim=16, hidden_dim=16,
                      critic_dim=16, actor_dim=16)
    models = [WorldModel(cfg) for _ in range(3)]
    seen = Transitions()
    for _ in range(4):
        seen.add(torch.randn(8, 3, 5), torch.rand(8, 3, 3) * 2 - 1, torch.randn(8),
                 torch.rand(8) < 0.3, torch.randn(8, 3, 5))
    h = learning_health(models, 'seq', seen)
    assert h['transitions'] == 32 and 0 < h['contacts'] < 32
    assert len(h['contact_auc']) == 3 and all(0.0 <= a <= 1.0 for a in h['contact_auc'])
    assert all(e > 0 for e in h['dynamics_error'])
    assert learning_health(models, 'seq', Transitions())['contact_auc'] == [None] * 3
