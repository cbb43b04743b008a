"""One small validation helper for every configuration dataclass of the agent package.

Each check names the key in its message (`planner.horizon must be an integer in [1, 255], got
0`), so a misspelt or out-of-range YAML key, node parameter or manifest value fails loudly at
load time instead of misbehaving later. Used by the core (ModelConfig, PlannerConfig,
CommandLimits, ChainSettings), the simulator's task configs, the trainer's TrainConfig and the
runtime (AgentSettings, LinkConfig). Pure Python.
"""
from __future__ import annotations

import math
from dataclasses import fields
from typing import Any, Iterable, Mapping, TypeVar

T = TypeVar('T')


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range; the message names it."""


def key_values(items: Iterable[str], flag: str = '--set') -> dict[str, Any]:
    """Command-line `KEY=VALUE` overrides as a dict, each VALUE read as YAML (`3`, `0.5`,
    `passed`, `[1, 2]`); a dotted KEY (`reward.on_target=0`) becomes a nested dict."""
    import yaml
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key.strip():
            raise ConfigError(f'{flag} takes KEY=VALUE, got {item!r}')
        *parents, leaf = key.strip().split('.')
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return out


def check(cond: bool, key: str, message: str) -> None:
    """ConfigError('<key> <message>') unless `cond`."""
    if not cond:
        raise ConfigError(f'{key} {message}')


def unknown_keys(cls: type, data: Mapping[str, Any], block: str) -> None:
    """Refuse keys that are not fields of the dataclass `cls`, naming them and the known ones."""
    if not isinstance(data, Mapping):
        raise ConfigError(f'{block}: expected a mapping, got {type(data).__name__}')
    known = {f.name for f in fields(cls) if f.init}   # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f'{block}: unknown key(s) {unknown}; known keys are {sorted(known)}')


def build(cls: type[T], data: Mapping[str, Any], block: str) -> T:
    """cls(**data) with unknown and missing keys reported by name."""
    unknown_keys(cls, data, block)
    try:
        return cls(**dict(data))
    except TypeError as exc:  # a missing required key
        raise ConfigError(f'{block}: {exc}') from None


def _range_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    a = '(' if lo_open else '['
    b = ')' if hi_open else ']'
    return f'{a}{"-inf" if lo is None else lo}, {"inf" if hi is None else hi}{b}'


def number(key: str, value: Any, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False, hi_open: bool = False) -> float:
    """A finite real number (not a bool) inside the bounds; returned as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f'{key} must be a finite number, got {value!r}')
    if (lo is not None and (value < lo or (lo_open and value == lo))) or \
            (hi is not None and (value > hi or (hi_open and value == hi))):
        raise ConfigError(f'{key} must lie in {_range_text(lo, hi, lo_open, hi_open)}, '
                          f'got {value}')
    return float(value)


def integer(key: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """An int (not a bool) inside [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f'{key} must be an integer, got {value!r}')
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f'{key} must be an integer in {_range_text(lo, hi, False, False)}, '
                          f'got {value}')
    return value


def choice(key: str, value: Any, choices: Iterable[Any]) -> Any:
    options = list(choices)
    if value not in options:
        raise ConfigError(f'{key} must be one of {options}, got {value!r}')
    return value


def flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f'{key} must be true or false, got {value!r}')
    return value
