"""Replay buffer of team transitions from E parallel environments, stored time-major.

One row per control tick of every environment: per-agent observations o (n, obs), actions
a (n, da), the team reward r, the next observations o' (the true last observation where the
episode ended, `info['final_obs']`), and `terminated` / `truncated` kept apart: TD targets
bootstrap through a time-out (truncated) but not through a terminal state.

Storage is a ring (T, E, ...) per field, T = capacity // E, so a window of consecutive rows of
one column is a piece of one environment's history; `sample` returns windows with a per-step
`alive` mask that is false after the first episode end in the window.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class Batch(NamedTuple):
    """L consecutive transitions of B sampled windows; every tensor is time-major (L, B, ...)."""

    obs: torch.Tensor          # (L, B, n, obs_dim)
    action: torch.Tensor       # (L, B, n, da)
    reward: torch.Tensor       # (L, B)
    next_obs: torch.Tensor     # (L, B, n, obs_dim)
    terminated: torch.Tensor   # (L, B) bool
    done: torch.Tensor         # (L, B) bool: terminated or truncated (episode ends after the row)
    alive: torch.Tensor        # (L, B) bool: row l belongs to the window's first episode
    slot_age: torch.Tensor     # (L, B, n, n) int8: the intent forms agent i got (ChainLink)
    prev_obs: torch.Tensor     # (1, B, n, obs_dim): the row before the window (t - 1) ...
    prev_action: torch.Tensor  # (1, B, n, da)
    prev_ok: torch.Tensor      # (1, B) bool: ... exists and is of the window's episode


_FIELDS = ('obs', 'next_obs', 'action', 'reward', 'terminated', 'truncated', 'slot_age')


class ReplayBuffer:
    """Ring buffer (T, E, ...) of team transitions; `add` writes one row for all E envs."""

    def __init__(self, capacity: int, num_envs: int, num_agents: int, obs_dim: int,
                 action_dim: int, device: torch.device | str = 'cpu') -> None:
        self.T = max(capacity // num_envs, 2)
        self.E, self.device = num_envs, torch.device(device)
        T, E, n = self.T, num_envs, num_agents
        self.obs = torch.zeros(T, E, n, obs_dim, device=self.device)
        self.next_obs = torch.zeros(T, E, n, obs_dim, device=self.device)
        self.action = torch.zeros(T, E, n, action_dim, device=self.device)
        self.reward = torch.zeros(T, E, device=self.device)
        self.terminated = torch.zeros(T, E, dtype=torch.bool, device=self.device)
        self.truncated = torch.zeros(T, E, dtype=torch.bool, device=self.device)
        # per agent i and slot j, the age (ticks) of slot j in the intent i planned on at the
        # row's tick under the deployed link (-1: masked); zeros: every slot fresh
        self.slot_age = torch.zeros(T, E, n, n, dtype=torch.int8, device=self.device)
        self.ptr = 0       # next row to write
        self.rows = 0      # rows filled (<= T)

    def __len__(self) -> int:
        """Number of stored transitions (rows x envs)."""
        return self.rows * self.E

    def add(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
            next_obs: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
            slot_age: torch.Tensor | None = None) -> None:
        """One control tick of every env: obs/next_obs (E, n, obs), action (E, n, da), rest (E,);
        slot_age (E, n, n) the intent forms of the tick (runtime.team.ChainLink; None: fresh)."""
        p = self.ptr
        self.slot_age[p] = 0 if slot_age is None else slot_age.to(self.slot_age)
        self.obs[p] = obs
        self.action[p] = action
        self.reward[p] = reward
        self.next_obs[p] = next_obs
        self.terminated[p] = terminated
        self.truncated[p] = truncated
        self.ptr = (p + 1) % self.T
        self.rows = min(self.rows + 1, self.T)

    def sample(self, batch: int, length: int, generator: torch.Generator | None = None) -> Batch:
        """B windows of `length` consecutive rows of one env each, uniformly over start rows."""
        if self.rows < length:
            raise ValueError(f'buffer holds {self.rows} rows per env, a window needs {length}')
        dev = self.device
        oldest = (self.ptr - self.rows) % self.T
        start = torch.randint(0, self.rows - length + 1, (batch,), generator=generator, device=dev)
        env = torch.randint(0, self.E, (batch,), generator=generator, device=dev)
        rows = (oldest + start[None] + torch.arange(length, device=dev)[:, None]) % self.T  # (L, B)
        cols = env[None].expand(length, batch)
        term = self.terminated[rows, cols]
        done = term | self.truncated[rows, cols]
        ended_before = torch.cumsum(done.long(), 0) - done.long()       # episode ends before row l
        prev = (rows[:1] - 1) % self.T
        prev_ok = (start[None] > 0) & ~(self.terminated[prev, cols[:1]]
                                        | self.truncated[prev, cols[:1]])
        return Batch(self.obs[rows, cols], self.action[rows, cols], self.reward[rows, cols],
                     self.next_obs[rows, cols], term, done, ended_before == 0,
                     self.slot_age[rows, cols], self.obs[prev, cols[:1]],
                     self.action[prev, cols[:1]], prev_ok)

    def state_dict(self) -> dict:
        """The filled part, for resumable checkpoints."""
        return {'T': self.T, 'E': self.E, 'ptr': self.ptr, 'rows': self.rows,
                **{k: getattr(self, k)[:self.rows].cpu() for k in _FIELDS}}

    def load_state_dict(self, state: dict) -> None:
        if (state['T'], state['E']) != (self.T, self.E):
            raise ValueError(f"buffer shape (T={state['T']}, E={state['E']}) differs from "
                             f'(T={self.T}, E={self.E}): num_envs or buffer_size changed')
        self.ptr, self.rows = int(state['ptr']), int(state['rows'])
        for k in _FIELDS:
            if k in state:   # rows [0, rows) are the filled ones (all once the ring wrapped)
                getattr(self, k)[:self.rows].copy_(state[k][:self.rows])
