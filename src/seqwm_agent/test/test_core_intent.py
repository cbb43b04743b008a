"""Intent layout: slots, masking, the model input, the cache rule and the message arrays."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from seqwm_agent.core.config import ModelConfig
from seqwm_agent.core.intent import (CacheMode, IntentCache, IntentError, IntentLayout,
                                     IntentSizeError, IntentTensors)
from seqwm_agent.core.world_model import WorldModel

N, H, DZ, DA = 3, 3, 16, 3


@pytest.fixture
def layout() -> IntentLayout:
    return IntentLayout(N, H, DZ, DA)


def random_slot(batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.softmax(torch.randn(batch, H + 1, DZ, generator=g), -1)
    a = torch.rand(batch, H, DA, generator=g) * 2 - 1
    return z, a


def test_insert_fills_one_slot_and_forwards_the_others(layout):
    z0, a0 = random_slot(seed=0)
    z1, a1 = random_slot(seed=1)
    e1 = layout.insert(layout.empty(1), 0, z0, a0)             # e^2 = e^1 (+) (z^1, a^1)
    e2 = layout.insert(e1, 1, z1, a1)                          # e^3 = e^2 (+) (z^2, a^2)
    assert e2.valid.tolist() == [[True, True, False]]
    torch.testing.assert_close(e2.latents[0, 0], z0[0])
    torch.testing.assert_close(e2.actions[0, 1], a1[0])
    assert not e1.valid[0, 1], 'insert must not modify its input'
    assert torch.all(e2.latents[0, 2] == 0)


def test_model_input_masks_the_agent_itself_and_its_successors(layout):
    e = layout.empty(1)
    for k in range(N):
        e = layout.insert(e, k, *random_slot(seed=k))
    x = layout.model_input(e, h=1, agent_index=1).view(N, layout.slot_dim)
    assert x[0, -1] == 1.0                                     # predecessor: flag on
    torch.testing.assert_close(x[0, :DZ], e.latents[0, 0, 1])
    torch.testing.assert_close(x[0, DZ:DZ + DA], e.actions[0, 0, 1])
    assert torch.all(x[1:] == 0)                               # itself and successor: all zero
    assert torch.all(layout.model_input(e, h=0, agent_index=0) == 0)


def test_masked_slot_differs_from_a_zero_valued_slot(layout):
    zero_slot = layout.insert(layout.empty(1), 0, torch.zeros(1, H + 1, DZ), torch.zeros(1, H, DA))
    masked = layout.empty(1)
    x_zero = layout.model_input(zero_slot, 0, agent_index=2)
    x_masked = layout.model_input(masked, 0, agent_index=2)
    assert not torch.equal(x_zero, x_masked)
    # ... and the difference reaches the model output
    cfg = ModelConfig(obs_dim=5, num_agents=N, latent_dim=DZ, hidden_dim=32, critic_dim=32,
                      actor_dim=32, encoder_dim=32)
    torch.manual_seed(0)
    model = WorldModel(cfg)
    z = model.encode(torch.randn(1, 5))
    a = torch.zeros(1, DA)
    with torch.no_grad():
        diff = (model.next(z, a, x_zero) - model.next(z, a, x_masked)).abs().max()
    assert diff > 1e-4


def test_terminal_step_holds_the_last_planned_action(layout):
    z, a = random_slot()
    e = layout.insert(layout.empty(1), 0, z, a)
    x = layout.model_input(e, H, agent_index=1).view(N, layout.slot_dim)
    torch.testing.assert_close(x[0, :DZ], z[0, H])
    torch.testing.assert_close(x[0, DZ:DZ + DA], a[0, H - 1])


def test_model_inputs_stack_every_step(layout):
    e = layout.insert(layout.empty(2), 0, *random_slot(batch=2))
    all_steps = layout.model_inputs(e, agent_index=1)
    assert all_steps.shape == (2, H + 1, layout.input_dim)
    for h in range(H + 1):
        torch.testing.assert_close(all_steps[:, h], layout.model_input(e, h, agent_index=1))


def test_shifted_cache_equals_the_expected_slice(layout):
    z, a = random_slot()
    e = layout.insert(layout.empty(1), 0, z, a)
    s = layout.shift(e, 1)
    torch.testing.assert_close(s.latents[0, 0, :H], z[0, 1:])          # steps 1..H -> 0..H-1
    torch.testing.assert_close(s.latents[0, 0, H], z[0, H])            # tail holds the last
    torch.testing.assert_close(s.actions[0, 0, :H - 1], a[0, 1:])
    torch.testing.assert_close(s.actions[0, 0, H - 1], a[0, H - 1])
    assert s.age[0, 0] == 1 and s.age[0, 1] == 0                       # only valid slots age
    s2 = layout.shift(e, 2)
    torch.testing.assert_close(s2.latents[0, 0, :H - 1], z[0, 2:])
    torch.testing.assert_close(layout.shift(s, 1).latents, s2.latents)
    assert torch.all(layout.shift(e, 10).latents[0, 0] == z[0, H])


def test_mask_older_than_masks_and_zeroes(layout):
    e = layout.insert(layout.empty(1), 0, *random_slot())
    old = layout.shift(e, 3)
    kept = layout.mask_older_than(old, 3)
    assert kept.valid[0, 0]
    gone = layout.mask_older_than(old, 2)
    assert not gone.valid[0, 0]
    assert torch.all(gone.latents == 0) and torch.all(gone.actions == 0)


def test_cache_gives_fresh_then_shifted_then_masked(layout):
    cache = IntentCache(layout, max_age=2)
    _, mode = cache.lookup_one(5)
    assert mode == CacheMode.MASKED
    z, a = random_slot()
    e = layout.insert(layout.empty(1), 0, z, a)
    cache.update(e, tick=10)
    fresh, mode = cache.lookup_one(10)
    assert mode == CacheMode.FRESH
    torch.testing.assert_close(fresh.latents, e.latents)
    late, mode = cache.lookup_one(11)                                   # intent of tick 11 lost
    assert mode == CacheMode.CACHED
    torch.testing.assert_close(late.latents, layout.shift(e, 1).latents)
    _, mode = cache.lookup_one(12)
    assert mode == CacheMode.CACHED
    stale, mode = cache.lookup_one(13)                                  # older than max_age
    assert mode == CacheMode.MASKED and not stale.valid.any()
    with pytest.raises(IntentError):
        cache.update(e, tick=9)


def test_batched_cache_rows_equal_one_cache_per_team(layout):
    """B teams in one cache (simulation) give each row what a robot's own cache gives it."""
    B = 4
    rows_e = [layout.insert(layout.empty(1), 0, *random_slot(seed=b)) for b in range(B)]
    batched = IntentCache(layout, max_age=2, batch=B)
    singles = [IntentCache(layout, max_age=2) for _ in range(B)]
    stacked = IntentTensors(*(torch.cat([getattr(e, f) for e in rows_e])
                              for f in ('latents', 'actions', 'valid', 'age')))
    got = torch.tensor([True, True, False, True])                      # team 2 received nothing
    batched.update(stacked, torch.tensor([10, 9, 0, 7]), rows=got)
    for b, t in ((0, 10), (1, 9), (3, 7)):
        singles[b].update(rows_e[b], t)
    intent, mode = batched.lookup(torch.tensor([10, 11, 11, 11]))     # ages 0, 2, -, 4
    assert mode.tolist() == [CacheMode.FRESH, CacheMode.CACHED, CacheMode.MASKED, CacheMode.MASKED]
    for b, t in enumerate((10, 11, 11, 11)):
        one, m = singles[b].lookup_one(t)
        assert m == mode[b]
        torch.testing.assert_close(intent.latents[b:b + 1], one.latents, rtol=0, atol=0)
        torch.testing.assert_close(intent.actions[b:b + 1], one.actions, rtol=0, atol=0)
        assert torch.equal(intent.valid[b:b + 1], one.valid)


def test_shift_by_a_step_per_row_equals_shifting_each_row(layout):
    e = layout.empty(3)
    for k in range(2):
        z, a = random_slot(seed=k)
        e = layout.insert(e, k, z.expand(3, *z.shape[1:]), a.expand(3, *a.shape[1:]))
    steps = torch.tensor([0, 1, 5])
    per_row = layout.shift(e, steps)
    for b, s in enumerate(steps.tolist()):
        one = layout.shift(IntentTensors(e.latents[b:b + 1], e.actions[b:b + 1], e.valid[b:b + 1],
                                         e.age[b:b + 1]), s)
        assert torch.equal(per_row.latents[b:b + 1], one.latents)
        assert torch.equal(per_row.actions[b:b + 1], one.actions)
        assert torch.equal(per_row.age[b:b + 1], one.age)


def test_message_arrays_round_trip(layout):
    e = layout.empty(1)
    for k in range(2):
        e = layout.insert(e, k, *random_slot(seed=k))
    arrays = layout.to_arrays(e)
    assert arrays['latents'].dtype == np.float32 and arrays['latents'].size == N * (H + 1) * DZ
    assert arrays['actions'].size == N * H * DA and arrays['valid'].tolist() == [True, True, False]
    back = layout.from_arrays(arrays['latents'].tolist(), arrays['actions'].tolist(),
                              arrays['valid'].tolist())
    torch.testing.assert_close(back.latents, e.latents)
    torch.testing.assert_close(back.actions, e.actions)
    assert torch.equal(back.valid, e.valid)
    # row-major: latents[k][h] of the message is slot k's z at tick + h
    np.testing.assert_array_equal(arrays['latents'].reshape(N, H + 1, DZ)[1, 2], e.latents[0, 1, 2].numpy())


@pytest.mark.parametrize('field, cut', [('latents', 1), ('actions', DA), ('valid', 1)])
def test_wrong_array_size_is_refused_naming_the_field(layout, field, cut):
    arrays = layout.to_arrays(layout.empty(1))
    arrays[field] = arrays[field][:-cut]
    with pytest.raises(IntentSizeError, match=f"'{field}'.*{arrays[field].size}"):
        layout.from_arrays(**arrays)


def test_header_sizes_are_checked(layout):
    layout.check_header(N, H, DZ, DA)
    with pytest.raises(IntentSizeError, match="'latent_dim' is 96, expected 16"):
        layout.check_header(N, H, 96, DA)


def test_masked_slot_content_is_ignored_on_receipt(layout):
    arrays = layout.to_arrays(layout.empty(1))
    arrays['latents'][:] = 7.0                                          # garbage in masked slots
    e = layout.from_arrays(**arrays)
    assert torch.all(e.latents == 0)


def test_non_finite_valid_slot_is_refused(layout):
    arrays = layout.to_arrays(layout.insert(layout.empty(1), 0, *random_slot()))
    arrays['actions'][0] = np.nan
    with pytest.raises(IntentError, match='non-finite'):
        layout.from_arrays(**arrays)


def test_round_trip_through_the_real_intent_message(layout):
    """The arrays fit seqwm_msgs/Intent's fields as generated (array.array / list)."""
    msg_mod = pytest.importorskip('seqwm_msgs.msg')
    e = layout.insert(layout.empty(1), 1, *random_slot(seed=4))
    arrays = layout.to_arrays(e)
    msg = msg_mod.Intent(num_agents=N, horizon=H, latent_dim=DZ, action_dim=DA)
    msg.latents = arrays['latents']
    msg.actions = arrays['actions']
    msg.valid = arrays['valid'].tolist()
    layout.check_header(msg.num_agents, msg.horizon, msg.latent_dim, msg.action_dim)
    back = layout.from_arrays(msg.latents, msg.actions, msg.valid)
    assert torch.equal(back.latents, e.latents) and torch.equal(back.actions, e.actions)
    assert torch.equal(back.valid, e.valid)


def test_non_finite_content_in_a_masked_slot_is_ignored_not_rejected():
    import numpy as np

    from seqwm_agent.core.intent import IntentLayout

    layout = IntentLayout(2, 3, 8, 3)
    sizes = layout.sizes
    latents = np.zeros(sizes['latents'], np.float32)
    actions = np.zeros(sizes['actions'], np.float32)
    latents[sizes['latents'] // 2:] = np.nan        # slot 1 (masked) holds garbage
    actions[sizes['actions'] // 2:] = np.inf
    e = layout.from_arrays(latents, actions, [True, False])
    assert bool(e.latents.isfinite().all()) and bool((e.latents[0, 1] == 0).all())
    assert bool(e.actions.isfinite().all())
