"""Trainer: buffer targets, losses, sequential update order, masking (tiny models, seconds)."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch

from seqwm_agent.train.buffer import ReplayBuffer
from seqwm_agent.train.team import visible

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_fixtures import TINY, N, OBS, filled_buffer, team, tiny_cfg  # noqa: E402


def test_nstep_targets_bootstrap_through_truncation_not_termination():
    buf = ReplayBuffer(5, 1, N, OBS, 3)
    for t in range(5):
        buf.add(torch.zeros(1, N, OBS), torch.zeros(1, N, 3), torch.tensor([1.0]),
                torch.zeros(1, N, OBS), torch.tensor([t == 1]), torch.tensor([t == 4]))
    cfg = tiny_cfg(td_steps=3, discount=0.5, horizon=3)
    _, _, learner = team(cfg)
    b = buf.sample(1, 5)                                  # only one window fits: rows 0..4
    assert torch.equal(b.done[:, 0], torch.tensor([False, True, False, False, True]))
    ret, last, boot = learner.nstep(b)
    # h=0: rows 0,1 (terminated at 1): 1 + 0.5, no bootstrap
    assert ret[0, 0] == pytest.approx(1.5) and boot[0, 0] == 0 and last[0, 0] == 1
    # h=2: rows 2,3,4 (truncated at 4): 1 + .5 + .25, bootstrap gamma^3 from row 4's o'
    assert ret[2, 0] == pytest.approx(1.75) and boot[2, 0] == pytest.approx(0.125)
    assert last[2, 0] == 4
    assert b.alive[:, 0].tolist() == [True, True, False, False, False]


def test_losses_decrease_on_a_fixed_batch():
    cfg = tiny_cfg(lr=3e-3)
    _, _, learner = team(cfg)
    batch = filled_buffer().sample(32, learner.window, torch.Generator().manual_seed(1))
    first = learner.update(batch)
    for _ in range(60):
        last = learner.update(batch)
    assert last['dynamics'] < 0.5 * first['dynamics']
    assert last['reward'] < 0.7 * first['reward']
    assert last['loss'] < 0.7 * first['loss']


def test_the_termination_head_learns_which_steps_end_the_episode():
    """Rows that terminate in the buffer get a high P(end) and the others a low one; a model
    without the head reports a termination loss of 0 and has no such parameters."""
    cfg = tiny_cfg(lr=3e-3, model={**TINY, 'termination': True})
    models, layout, learner = team(cfg)
    batch = filled_buffer(episode=3).sample(64, learner.window, torch.Generator().manual_seed(1))
    first = learner.update(batch)
    for _ in range(80):
        last = learner.update(batch)
    assert last['termination'] < 0.5 * first['termination']
    m = models[0]
    e = learner.last_inputs[0]
    with torch.no_grad():
        z = m.encode(batch.obs[0, :, 0])
        p_end = torch.sigmoid(m.step(z, batch.action[0, :, 0], e[0]).termination)
    ended = batch.terminated[0]
    assert ended.any() and (~ended).any()
    assert float(p_end[ended].mean()) > float(p_end[~ended].mean()) + 0.3

    plain_models, _, plain = team(tiny_cfg())
    assert plain.update(batch)['termination'] == 0.0
    assert plain_models[0]._termination_head is None


def test_successor_is_trained_on_the_updated_predecessor_prediction():
    cfg = tiny_cfg()
    models, layout, learner = team(cfg)
    batch = filled_buffer().sample(32, learner.window, torch.Generator().manual_seed(2))
    before = [p.clone() for p in models[0].parameters()]
    learner.update(batch)
    assert learner.last_order == [0, 1]
    assert any(not torch.equal(a, b) for a, b in zip(before, models[0].parameters()))
    H, m0 = cfg.horizon, models[0]
    with torch.no_grad():                     # agent 0's post-update prediction along a^0
        e0 = learner.last_inputs[0]
        z = m0.encode(batch.obs[0, :, 0])
        zs = [z]
        for h in range(H):
            z = m0.next(z, batch.action[h, :, 0], e0[h])
            zs.append(z)
    e1 = learner.last_inputs[1]                               # (H+1, B, n * slot)
    slot = layout.slot_dim
    dz = layout.latent_dim
    for h in range(H + 1):
        torch.testing.assert_close(e1[h, :, :dz], zs[h], rtol=0, atol=1e-6)
        a_h = batch.action[min(h, H - 1), :, 0]
        torch.testing.assert_close(e1[h, :, dz:dz + 3], a_h)
        assert torch.all(e1[h, :, slot - 1] == 1)             # slot 0 valid for agent 1
        assert torch.all(e1[h, :, slot:] == 0)                # agent 1 never sees its own slot
    assert torch.all(learner.last_inputs[0] == 0)             # agent 0 receives an empty intent


def test_mask_probability_is_honoured():
    cfg = tiny_cfg(mask_prob=0.3, batch_size=400)
    _, layout, learner = team(cfg)
    buf = filled_buffer(rows=60, envs=8)
    kept = total = 0
    for k in range(5):
        learner.update(buf.sample(400, learner.window, torch.Generator().manual_seed(k)))
        flag = learner.last_inputs[1][0, :, layout.slot_dim - 1]     # agent 1's view of slot 0
        kept += int(flag.sum())
        total += flag.numel()
    rate = 1 - kept / total                                           # 2000 draws: sd ~ 0.01
    assert abs(rate - 0.3) < 0.05


def test_order_shuffle_probability_and_comm_modes():
    cfg = tiny_cfg(shuffle_prob=0.5)
    _, _, learner = team(cfg)
    buf = filled_buffer()
    orders = []
    for k in range(60):
        learner.update(buf.sample(8, learner.window, torch.Generator().manual_seed(k)))
        orders.append(tuple(learner.last_order))
    # a random permutation of 2 is the reverse half the time: P(reversed) = 0.25
    frac = orders.count((1, 0)) / len(orders)
    assert 0.08 < frac < 0.45
    assert visible('dec', [0, 1]).sum() == 0
    assert visible('cen', [0, 1]).tolist() == [[False, True], [True, False]]
    assert visible('seq', [1, 0]).tolist() == [[False, True], [False, False]]


@pytest.mark.parametrize('comm', ['dec', 'cen'])
def test_baseline_inputs(comm):
    cfg = dataclasses.replace(tiny_cfg(), comm=comm)
    _, layout, learner = team(cfg)
    learner.update(filled_buffer().sample(16, learner.window, torch.Generator().manual_seed(0)))
    flags = [learner.last_inputs[i][0, :, layout.slot_dim * k + layout.slot_dim - 1]
             for i in range(N) for k in range(N)]
    if comm == 'dec':
        assert all(torch.all(f == 0) for f in flags)
    else:   # cen: agent 0 sees slot 1 and agent 1 sees slot 0, never their own
        assert torch.all(flags[1] == 1) and torch.all(flags[2] == 1)
        assert torch.all(flags[0] == 0) and torch.all(flags[3] == 0)


def _with_ages(batch, age: int, prev_ok: bool):
    ages = torch.full_like(batch.slot_age, -1)
    ages[..., 1, 0] = age                       # agent 1's view of agent 0's slot
    return batch._replace(slot_age=ages, prev_ok=torch.full_like(batch.prev_ok, prev_ok))


@pytest.mark.parametrize('age,prev_ok,valid', [
    (0, True, True),        # fresh: the prediction of the window's own tick
    (1, True, True),        # cached: the previous tick's prediction, shifted one step
    (1, False, False),      # cached, but the tick before was another episode: masked
    (-1, True, False),      # masked by the link
    (2, True, False),       # older than one tick: presented masked
])
def test_the_update_presents_the_intent_form_the_link_recorded(age, prev_ok, valid):
    cfg = tiny_cfg()
    models, layout, learner = team(cfg)
    batch = filled_buffer().sample(16, learner.window, torch.Generator().manual_seed(2))
    learner.update(_with_ages(batch, age, prev_ok))
    e = learner.last_inputs[1]                                        # (H+1, B, de)
    slot = layout.slot_dim
    flag = e[..., slot - 1]                                           # slot 0's valid flag
    assert bool((flag == 1).all()) if valid else bool((flag == 0).all())


def test_a_cached_form_is_the_previous_ticks_prediction_shifted_not_the_fresh_one():
    cfg = tiny_cfg()
    _, layout, learner = team(cfg)
    batch = filled_buffer().sample(16, learner.window, torch.Generator().manual_seed(2))
    state = [m.state_dict() for m in learner.models]
    learner.update(_with_ages(batch, 0, True))
    fresh = learner.last_inputs[1].clone()
    for m, s in zip(learner.models, state):
        m.load_state_dict(s)
    _, _, learner2 = team(cfg)
    for m, s in zip(learner2.models, state):
        m.load_state_dict(s)
    learner2.update(_with_ages(batch, 1, True))
    cached = learner2.last_inputs[1]
    dz = layout.latent_dim
    # the cache's step h is the previous tick's step h + 1, so the two differ in content
    assert not torch.allclose(fresh[..., :dz], cached[..., :dz])
    # and its last latent repeats (the shift's tail holds the last prediction)
    assert torch.equal(cached[-1, :, :dz], cached[-2, :, :dz])


def test_the_buffer_records_the_row_before_each_window():
    buf = filled_buffer(rows=10, envs=1, episode=100)
    b = buf.sample(64, 4, torch.Generator().manual_seed(0))
    for k in range(64):
        if b.prev_ok[0, k]:
            # the window's first obs is the row after the previous one in the buffer
            rows = (buf.obs[:, 0] == b.prev_obs[0, k]).all(-1).all(-1).nonzero().flatten()
            assert torch.equal(buf.obs[int(rows[0]) + 1, 0], b.obs[0, k])
    assert not bool(b.prev_ok.all()) and bool(b.prev_ok.any())      # the first row has none
