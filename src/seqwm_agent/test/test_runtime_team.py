"""Teams in simulation run the robots' runtime: intent timing, loss and fallbacks as deployed."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_team import PLANNER, make_models, model_config  # noqa: E402

from seqwm_agent.core.command import ChainSettings
from seqwm_agent.core.intent import CacheMode, IntentLayout
from seqwm_agent.runtime.scheduler import Trigger
from seqwm_agent.runtime.team import LinkConfig, TeamRuntime

SCALE = (1.0, 0.5, 0.5)


def team(batch: int, link: LinkConfig, seed: int = 0) -> TeamRuntime:
    cfg = model_config()
    layout = IntentLayout(cfg.num_agents, PLANNER.horizon, cfg.latent_dim, cfg.action_dim)
    return TeamRuntime(make_models(), layout, PLANNER, ChainSettings(), SCALE, batch, 0.1,
                       'seq', seed, link)


def run(t: TeamRuntime, ticks: int, obs: torch.Tensor) -> list[torch.Tensor]:
    return [t.act(obs, k)[0] for k in range(ticks)]


def obs(batch: int) -> torch.Tensor:
    return torch.randn(batch, 2, model_config().obs_dim, generator=torch.Generator().manual_seed(4))


# Robots budget planning 20 ms and hops 5 ms: robot 2 waits 25 ms. Planning takes 15 ms: the
# intent arrives at 20 ms.
ON_TIME = LinkConfig(plan_ms=(15.0, 15.0), hop_ms=(5.0, 5.0), budget_ms=(20.0, 5.0))
# The same robots on a computer that plans in 70 ms: the intent arrives at 75 ms, after the wait.
SLOW = LinkConfig(plan_ms=(70.0, 70.0), hop_ms=(5.0, 5.0), budget_ms=(20.0, 5.0))


@pytest.mark.parametrize('link,fresh,cached,masked,trigger', [
    (ON_TIME, 1.0, 0.0, 0.0, Trigger.INTENT),                          # on time: always fresh
    (SLOW, 0.0, 5 / 6, 1 / 6, Trigger.DEADLINE),                       # late: next tick's cache
    (LinkConfig(loss=1.0), 0.0, 0.0, 1.0, Trigger.DEADLINE),           # every intent lost
])
def test_follower_mode_follows_the_intent_timing(link, fresh, cached, masked, trigger):
    t = team(2, link)
    run(t, 6, obs(2))
    counts = t.mode_counts[1].float() / t.mode_counts[1].sum()
    assert counts.tolist() == pytest.approx([fresh, cached, masked])
    assert int(t.trigger_counts[1, trigger]) == 12
    assert int(t.trigger_counts[0, Trigger.FRAME]) == 12               # robot 1 never waits


def test_a_late_intent_is_planned_on_shifted_by_one_tick():
    t = team(1, SLOW)
    run(t, 3, obs(1))
    ctl = t.controllers[1]
    assert ctl.cache.ticks.tolist() == [2]                              # tick 2's, arrived late
    _, mode = ctl.cache.lookup(3)
    assert mode.tolist() == [CacheMode.CACHED]


def test_teams_of_a_batch_equal_teams_run_alone():
    """B teams in one TeamRuntime give the commands each team gets in a runtime of its own."""
    o = obs(3)
    link = LinkConfig(plan_ms=(5.0, 30.0), loss=0.0)        # planning time drawn per team
    together = run(team(3, link), 4, o)
    for b in range(3):
        alone = team(1, link)
        alone.team_ids = torch.tensor([b])                  # the seed stream of team b
        cmds = run(alone, 4, o[b:b + 1])
        for k in range(4):
            assert torch.equal(cmds[k][0], together[k][b]), (b, k)


def test_commands_stay_inside_the_chain_limits():
    t = team(2, LinkConfig(loss=0.5))
    cmds = torch.stack(run(t, 8, obs(2)))                   # (T, B, n, 3)
    lim = torch.tensor(SCALE, dtype=torch.float64)
    assert bool((cmds.abs() <= lim + 1e-12).all())
    step = (cmds[1:] - cmds[:-1]).abs()
    assert bool((step <= torch.tensor([2.0, 1.0, 2.0], dtype=torch.float64) * 0.1 + 1e-9).all())


def test_the_link_alone_predicts_every_mode_the_controllers_plan_on():
    """ChainLink (what training presents) and TeamRuntime's controllers (what robots run) agree
    tick by tick, team by team, on a lossy link whose intents are sometimes late."""
    link = LinkConfig(plan_ms=(15.0, 40.0), hop_ms=(5.0, 5.0), budget_ms=(20.0, 5.0), loss=0.3)
    t = team(6, link, seed=3)
    o = obs(6)
    seen = torch.zeros(3, dtype=torch.long)
    for k in range(12):
        t.act(o, k)
        for i in range(2):
            assert torch.equal(t.last_link.mode[i], t.last_modes[i]), (k, i)
        seen += torch.bincount(t.last_link.mode[1], minlength=3)
    assert (seen > 0).all()          # fresh, cached and masked all occurred


def test_slot_ages_compose_down_the_chain():
    # every intent late: robot 1 plans on robot 0's intent of the previous tick (slot 0 aged 1);
    # robot 2 on robot 1's previous intent, which itself carried slot 0 aged 1: now aged 2
    from seqwm_agent.runtime.team import ChainLink
    slow = LinkConfig(plan_ms=(70.0, 70.0), hop_ms=(5.0, 5.0), budget_ms=(20.0, 5.0))
    link = ChainLink(3, 1, 0.1, slow, horizon=3)
    ticks = [link.tick(k) for k in range(4)]
    assert ticks[0].slot_age[0].tolist() == [[-1, -1, -1]] * 3       # nothing yet
    assert ticks[1].slot_age[0, 1].tolist() == [1, -1, -1]
    assert ticks[2].slot_age[0, 2].tolist() == [2, 1, -1]
    on_time = ChainLink(3, 1, 0.1, ON_TIME, horizon=3).tick(0)
    assert on_time.slot_age[0].tolist() == [[-1, -1, -1], [0, -1, -1], [0, 0, -1]]
