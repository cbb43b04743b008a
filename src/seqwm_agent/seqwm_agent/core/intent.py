"""The intent e^i: fixed-size slots of every robot's predicted latents and planned actions.

Paper Eq. 6 and App. A.1 (mask-based concatenation): slot k belongs to the robot with order
index k and holds its predicted latents z^k_0..z^k_H (H+1 of them, z^k_0 = E(o^k)) and planned
actions a^k_0..a^k_{H-1}, plus a valid flag. Robot i fills its own slot and forwards the rest:
e^{i+1} = e^i (+) (z^i, a^i).

Model input. At rollout step h, agent i conditions D, R, Q and pi on the predecessors' slots
for that step: for every slot k the vector [valid_k * z^k_h, valid_k * a^k_h, valid_k], so the
input is n * (dz + da + 1) wide (`input_dim`). A masked slot is all zeros *including its flag*,
while a valid slot whose content happens to be zero still carries flag 1: the two are different
inputs. Slots of the agent itself and of its successors are always masked in its own input.

Terminal step. The critic at step H needs the predecessors' action at H, which nobody planned
(an intent holds H actions). We hold the last planned action: a^k_H := a^k_{H-1} (zero-order
hold). Planned actions come out of a low-pass-filtered search, so the last action is the best
available guess of the next one, and holding keeps the input in the range the model was trained
on (zeros would read as "the predecessor stops"). The trainer builds its inputs with the same
function, so training and planning agree.

Cache. A robot that misses its predecessor's intent for tick t uses the last one it received,
from tick t - s, shifted by s steps: predicted step s..H becomes 0..H-s; the tail is filled by
holding the last prediction, and each slot's `age` grows by s. Once a slot is older than the
configured maximum age it is masked (IntentCache).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Sequence

import numpy as np
import torch


class IntentError(ValueError):
    """An intent (message or tensors) does not fit this layout."""


class IntentSizeError(IntentError):
    """A message field has the wrong number of elements; the message names the field and sizes."""


@dataclass
class IntentTensors:
    """Tensor form of a batch of intents.

    latents (B, n, H+1, dz), actions (B, n, H, da), valid (B, n) bool, age (B, n) int64
    (ticks since the slot's content was predicted; 0 = fresh). Masked slots hold zeros.
    """

    latents: torch.Tensor
    actions: torch.Tensor
    valid: torch.Tensor
    age: torch.Tensor | None = field(default=None)

    def __post_init__(self) -> None:
        if self.age is None:
            self.age = torch.zeros(self.valid.shape, dtype=torch.long, device=self.valid.device)

    @property
    def batch_size(self) -> int:
        return self.valid.shape[0]

    def to(self, device: torch.device | str) -> IntentTensors:
        return IntentTensors(self.latents.to(device), self.actions.to(device),
                             self.valid.to(device), self.age.to(device))

    def clone(self) -> IntentTensors:
        return IntentTensors(self.latents.clone(), self.actions.clone(), self.valid.clone(),
                             self.age.clone())


class IntentLayout:
    """Sizes of the intent shared by a team (n robots, horizon H, latent dz, action da)."""

    def __init__(self, num_agents: int, horizon: int, latent_dim: int, action_dim: int) -> None:
        for name, v in (('num_agents', num_agents), ('horizon', horizon),
                        ('latent_dim', latent_dim), ('action_dim', action_dim)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f'IntentLayout.{name} must be a positive integer, got {v!r}')
        self.num_agents = num_agents
        self.horizon = horizon
        self.latent_dim = latent_dim
        self.action_dim = action_dim

    @property
    def slot_dim(self) -> int:
        """Width of one slot in the model input: latent, action, valid flag."""
        return self.latent_dim + self.action_dim + 1

    @property
    def input_dim(self) -> int:
        """Width of the model input e (= ModelConfig.intent_dim)."""
        return self.num_agents * self.slot_dim

    @property
    def sizes(self) -> dict[str, int]:
        """Flat message sizes: latents n*(H+1)*dz, actions n*H*da, valid n."""
        n, H = self.num_agents, self.horizon
        return {'latents': n * (H + 1) * self.latent_dim, 'actions': n * H * self.action_dim,
                'valid': n}

    def __repr__(self) -> str:
        return (f'IntentLayout(num_agents={self.num_agents}, horizon={self.horizon}, '
                f'latent_dim={self.latent_dim}, action_dim={self.action_dim})')

    # ---- construction -----------------------------------------------------------------------
    def empty(self, batch: int = 1, device: torch.device | str = 'cpu') -> IntentTensors:
        """All slots masked (what robot 1 receives)."""
        n, H = self.num_agents, self.horizon
        return IntentTensors(
            torch.zeros(batch, n, H + 1, self.latent_dim, device=device),
            torch.zeros(batch, n, H, self.action_dim, device=device),
            torch.zeros(batch, n, dtype=torch.bool, device=device))

    def check(self, intent: IntentTensors) -> None:
        """Raise IntentError unless the tensors have this layout's shapes."""
        B, n, H = intent.valid.shape[0], self.num_agents, self.horizon
        want = {'latents': (B, n, H + 1, self.latent_dim), 'actions': (B, n, H, self.action_dim),
                'valid': (B, n), 'age': (B, n)}
        for name, shape in want.items():
            got = tuple(getattr(intent, name).shape)
            if got != shape:
                raise IntentError(f'intent.{name} has shape {got}, expected {shape} for {self}')

    def insert(self, intent: IntentTensors, index: int, latents: torch.Tensor,
               actions: torch.Tensor) -> IntentTensors:
        """e^{i+1} = e^i (+) (z^i, a^i): a copy of `intent` with slot `index` filled and valid.

        latents (B, H+1, dz), actions (B, H, da).
        """
        self.check(intent)
        B, H = intent.batch_size, self.horizon
        if not 0 <= index < self.num_agents:
            raise IntentError(f'slot index {index} outside 0..{self.num_agents - 1}')
        if tuple(latents.shape) != (B, H + 1, self.latent_dim):
            raise IntentError(f'latents have shape {tuple(latents.shape)}, '
                              f'expected {(B, H + 1, self.latent_dim)}')
        if tuple(actions.shape) != (B, H, self.action_dim):
            raise IntentError(f'actions have shape {tuple(actions.shape)}, '
                              f'expected {(B, H, self.action_dim)}')
        out = intent.clone()
        out.latents[:, index] = latents
        out.actions[:, index] = actions
        out.valid[:, index] = True
        out.age[:, index] = 0
        return out

    # ---- model input ------------------------------------------------------------------------
    def model_inputs(self, intent: IntentTensors, agent_index: int | None = None) -> torch.Tensor:
        """Conditioning vectors for every rollout step h = 0..H: (B, H+1, input_dim).

        With `agent_index` i, slots i..n-1 (the agent itself and its successors) are masked
        whatever their valid flag; with None every valid slot is used (e.g. by the trainer,
        which masks with `mask`). Step H uses the held action a_{H-1}.
        """
        self.check(intent)
        B, n, H = intent.batch_size, self.num_agents, self.horizon
        keep = intent.valid.clone()
        if agent_index is not None:
            if not 0 <= agent_index < n:
                raise IntentError(f'agent index {agent_index} outside 0..{n - 1}')
            keep[:, agent_index:] = False
        keep_f = keep.to(intent.latents.dtype)                           # (B, n)
        actions = torch.cat([intent.actions, intent.actions[:, :, -1:]], dim=2)  # hold: (B, n, H+1, da)
        flag = keep_f[:, :, None, None].expand(B, n, H + 1, 1)
        slots = torch.cat([intent.latents, actions, torch.ones_like(flag)], dim=-1) * flag
        return slots.transpose(1, 2).reshape(B, H + 1, n * self.slot_dim)

    def model_input(self, intent: IntentTensors, h: int, agent_index: int | None = None) -> torch.Tensor:
        """Conditioning vector for rollout step h (0..H): (B, input_dim)."""
        if not 0 <= h <= self.horizon:
            raise IntentError(f'step {h} outside 0..{self.horizon}')
        return self.model_inputs(intent, agent_index)[:, h]

    # ---- masking and cache ------------------------------------------------------------------
    def mask(self, intent: IntentTensors, keep: torch.Tensor) -> IntentTensors:
        """Copy with slots where `keep` (B, n) is false masked (flag off, content zeroed)."""
        self.check(intent)
        out = intent.clone()
        keep = keep.to(torch.bool) & out.valid
        out.valid = keep
        out.latents *= keep[:, :, None, None]
        out.actions *= keep[:, :, None, None]
        out.age *= keep
        return out

    def shift(self, intent: IntentTensors, steps: int | torch.Tensor = 1) -> IntentTensors:
        """Cache rule: the intent as seen `steps` ticks later (an int, or (B,) per row).

        Predicted step s..H becomes 0..H-s (latents) and s..H-1 becomes 0..H-1-s (actions);
        the tail holds the last prediction; age of valid slots grows by `steps`.
        """
        self.check(intent)
        B, n, H = intent.batch_size, self.num_agents, self.horizon
        dev = intent.latents.device
        s = torch.as_tensor(steps, dtype=torch.long, device=dev).reshape(-1).expand(B)
        if bool((s < 0).any()):
            raise IntentError(f'cannot shift by {s.min().item()} < 0 steps')
        if not bool(s.any()):
            return intent.clone()
        # step h of the shifted intent is step min(h + s, last) of the original
        iz = torch.clamp(torch.arange(H + 1, device=dev)[None] + s[:, None], max=H)     # (B, H+1)
        ia = torch.clamp(torch.arange(H, device=dev)[None] + s[:, None], max=H - 1)     # (B, H)
        dz, da = self.latent_dim, self.action_dim
        z = intent.latents.gather(2, iz[:, None, :, None].expand(B, n, H + 1, dz))
        a = intent.actions.gather(2, ia[:, None, :, None].expand(B, n, H, da))
        return IntentTensors(z, a, intent.valid.clone(), intent.age + s[:, None] * intent.valid.long())

    def mask_older_than(self, intent: IntentTensors, max_age: int) -> IntentTensors:
        """Copy with every slot whose age exceeds `max_age` ticks masked."""
        return self.mask(intent, intent.age <= max_age)

    # ---- message arrays ---------------------------------------------------------------------
    def check_header(self, num_agents: int, horizon: int, latent_dim: int, action_dim: int) -> None:
        """Compare the size fields of a received message with this layout."""
        for name, got, want in (('num_agents', num_agents, self.num_agents),
                                ('horizon', horizon, self.horizon),
                                ('latent_dim', latent_dim, self.latent_dim),
                                ('action_dim', action_dim, self.action_dim)):
            if int(got) != want:
                raise IntentSizeError(f"intent field '{name}' is {got}, expected {want}")

    def to_arrays(self, intent: IntentTensors, batch_index: int = 0) -> dict[str, np.ndarray]:
        """One intent of the batch as the seqwm_msgs/Intent arrays (row-major, float32 / bool)."""
        self.check(intent)

        def flat(t: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
            return t[batch_index].detach().to('cpu', dtype).reshape(-1).numpy().copy()

        return {'latents': flat(intent.latents, torch.float32),
                'actions': flat(intent.actions, torch.float32),
                'valid': flat(intent.valid, torch.bool)}

    def from_arrays(self, latents: Sequence[float] | np.ndarray,
                    actions: Sequence[float] | np.ndarray, valid: Sequence[bool] | np.ndarray,
                    device: torch.device | str = 'cpu') -> IntentTensors:
        """Message arrays -> IntentTensors with B = 1 (age 0).

        Sizes are checked (IntentSizeError naming the field, its size and the expected
        n x (H+1) x dz etc.); valid slots must be finite; masked slots are zeroed whatever
        was sent in them.
        """
        n, H, dz, da = self.num_agents, self.horizon, self.latent_dim, self.action_dim
        arrays = {'latents': np.asarray(latents, dtype=np.float32).reshape(-1),
                  'actions': np.asarray(actions, dtype=np.float32).reshape(-1),
                  'valid': np.asarray(valid, dtype=bool).reshape(-1)}
        formula = {'latents': f'n*(H+1)*latent_dim = {n}*{H + 1}*{dz}',
                   'actions': f'n*H*action_dim = {n}*{H}*{da}', 'valid': f'n = {n}'}
        for name, want in self.sizes.items():
            got = arrays[name].size
            if got != want:
                raise IntentSizeError(f"intent field '{name}' has {got} elements, expected "
                                      f'{formula[name]} = {want}')
        v = torch.from_numpy(arrays['valid'].copy()).reshape(1, n)
        z = torch.from_numpy(arrays['latents'].copy()).reshape(1, n, H + 1, dz)
        a = torch.from_numpy(arrays['actions'].copy()).reshape(1, n, H, da)
        # where(), not a product: NaN * 0 is NaN, and a masked slot's content must not matter
        z = torch.where(v[:, :, None, None], z, torch.zeros((), dtype=z.dtype))
        a = torch.where(v[:, :, None, None], a, torch.zeros((), dtype=a.dtype))
        if not (torch.isfinite(z).all() and torch.isfinite(a).all()):
            raise IntentError('intent holds non-finite latents or actions in a valid slot')
        return IntentTensors(z, a, v).to(device)


class CacheMode(IntEnum):
    """How a tick's predecessor intent was obtained; values equal seqwm_msgs/AgentStatus MODE_*."""

    FRESH = 0      # received for this tick
    CACHED = 1     # an older one, shifted by the tick difference
    MASKED = 2     # nothing usable: every slot missing or older than max_age


# The robots' default: a cached predecessor intent older than this many ticks is masked.
CACHE_MAX_AGE_TICKS = 3


class IntentCache:
    """The predecessor's last intent of each of B teams, and the rule for a missing one.

    `update` stores the intent received for a tick (for some rows). `lookup` returns, per row,
    the intent to plan with and a mode: fresh (received for this tick), cached (an older one,
    shifted by the tick difference, slots older than `max_age` masked) or masked (nothing
    usable). B = 1 on a robot (`tick`, `lookup_one`), one row per environment in simulation.
    """

    def __init__(self, layout: IntentLayout, max_age: int, batch: int = 1,
                 device: torch.device | str = 'cpu') -> None:
        if max_age < 0:
            raise ValueError(f'max_age must be >= 0, got {max_age}')
        self.layout = layout
        self.max_age = max_age
        self.batch = batch
        self.device = torch.device(device)
        self.clear()

    def clear(self, rows: torch.Tensor | None = None) -> None:
        """Forget everything (or the rows where `rows` (B,) is true)."""
        if rows is None:
            self._intent = self.layout.empty(self.batch, self.device)
            self._ticks = torch.zeros(self.batch, dtype=torch.long, device=self.device)
            self._have = torch.zeros(self.batch, dtype=torch.bool, device=self.device)
            return
        self._have &= ~rows.to(self.device)

    @property
    def tick(self) -> int | None:
        """Tick of the stored intent of row 0 (None before the first one)."""
        return int(self._ticks[0]) if bool(self._have[0]) else None

    @property
    def ticks(self) -> torch.Tensor:
        """(B,) tick of each row's stored intent (meaningless where `have` is false)."""
        return self._ticks

    @property
    def have(self) -> torch.Tensor:
        return self._have

    def update(self, intent: IntentTensors, tick: int | torch.Tensor,
               rows: torch.Tensor | None = None) -> None:
        """Store `intent` (batch B) received for `tick` (int or (B,)) in the rows where `rows`
        (B,) is true (default all)."""
        self.layout.check(intent)
        if intent.batch_size != self.batch:
            raise IntentError(f'intent batch {intent.batch_size} != cache batch {self.batch}')
        t = torch.as_tensor(tick, dtype=torch.long, device=self.device).reshape(-1).expand(self.batch)
        use = torch.ones(self.batch, dtype=torch.bool, device=self.device) if rows is None \
            else rows.to(self.device)
        if bool((use & self._have & (t < self._ticks)).any()):
            raise IntentError(f'intent for tick {t[use].tolist()} is older than the cached one '
                              f'({self._ticks[use].tolist()})')
        new = intent.to(self.device)
        k = use[:, None]
        self._intent = IntentTensors(torch.where(k[..., None, None], new.latents, self._intent.latents),
                                     torch.where(k[..., None, None], new.actions, self._intent.actions),
                                     torch.where(k, new.valid, self._intent.valid),
                                     torch.where(k, new.age, self._intent.age))
        self._ticks = torch.where(use, t, self._ticks)
        self._have = self._have | use

    def lookup(self, ticks: int | torch.Tensor) -> tuple[IntentTensors, torch.Tensor]:
        """(intent (B), mode (B,) CacheMode values) for the tick (int or (B,)) of each row."""
        t = torch.as_tensor(ticks, dtype=torch.long, device=self.device).reshape(-1).expand(self.batch)
        if bool((self._have & (t < self._ticks)).any()):
            raise IntentError(f'lookup for tick {t.tolist()} before the cached tick '
                              f'{self._ticks.tolist()}')
        steps = torch.where(self._have, t - self._ticks, torch.zeros_like(t))
        shifted = self.layout.mask_older_than(self.layout.shift(self._intent, steps), self.max_age)
        shifted = self.layout.mask(shifted, self._have[:, None].expand_as(shifted.valid))
        mode = torch.full((self.batch,), int(CacheMode.MASKED), dtype=torch.long, device=self.device)
        mode = torch.where(shifted.valid.any(dim=1), int(CacheMode.CACHED), mode)
        mode = torch.where(self._have & (steps == 0), int(CacheMode.FRESH), mode)
        return shifted, mode

    def lookup_one(self, tick: int) -> tuple[IntentTensors, CacheMode]:
        """Row 0's intent and mode for `tick` (a robot's cache, B = 1)."""
        intent, mode = self.lookup(tick)
        return intent, CacheMode(int(mode[0]))

    def select(self, rows: torch.Tensor) -> None:
        """Keep only some rows (index tensor)."""
        i = self._intent
        self._intent = IntentTensors(i.latents[rows], i.actions[rows], i.valid[rows], i.age[rows])
        self._ticks, self._have = self._ticks[rows], self._have[rows]
        self.batch = int(self._have.shape[0])
