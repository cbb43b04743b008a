"""torch.compile where it is available, the same function run eagerly where it is not.

A compiled function (Inductor's CPU code generation, or CUDA kernels on a GPU) fuses the many
small element-wise ops of a world model's forward and backward passes; on one CPU core that is
most of their cost. Compilation needs a C++ compiler and a supported platform, and it happens at
the first call, so a robot or CI image without a compiler must still run: `Compiled` tries the
compiled form, and on any failure to build it logs one line saying why and runs the plain
function from then on. The plain function is always the reference: the compiled form must give
the same results within float tolerance (tests pin it), and `mode='off'` runs it directly.

Random draws are made outside compiled functions (their noise is an argument), so the two forms
consume a generator identically.
"""
from __future__ import annotations

import logging
import shutil
from typing import Any, Callable

import torch

log = logging.getLogger('seqwm.compile')

COMPILE_MODES = ('auto', 'on', 'off')   # auto: compile when available; on: require it


def compile_unavailable_reason() -> str | None:
    """Why torch.compile cannot run here, or None when it can (checked without compiling)."""
    try:
        import torch._dynamo as dynamo
        if not dynamo.is_dynamo_supported():
            return 'torch.compile is not supported on this Python / platform'
    except Exception as exc:                                   # noqa: BLE001 (any import failure)
        return f'torch._dynamo is unavailable ({exc})'
    try:
        from torch._inductor import config as inductor_config
        cxx = inductor_config.cpp.cxx[-1] if isinstance(inductor_config.cpp.cxx, tuple) \
            else inductor_config.cpp.cxx
    except Exception:                                          # noqa: BLE001
        cxx = 'g++'
    if not torch.cuda.is_available() and shutil.which(cxx or 'g++') is None \
            and shutil.which('c++') is None:
        return f'no C++ compiler ({cxx or "g++"}) on PATH for Inductor\'s CPU code generation'
    return None


def _reason(exc: BaseException) -> str:
    """One line naming what failed: the backend's own error where Dynamo wrapped it."""
    inner = getattr(exc, 'inner_exception', None) or exc.__cause__ or exc
    text = str(inner).strip().splitlines()
    return f'{type(inner).__name__}: {text[0][:200]}' if text else type(inner).__name__


class Compiled:
    """`fn` compiled on first use, or `fn` itself when compiling is off, unavailable or fails.

    `mode`: 'auto' falls back with one log line; 'on' raises instead (a benchmark that must
    measure the compiled form); 'off' never compiles. `backend` is torch.compile's (tests pass
    a failing one to exercise the fallback).
    """

    def __init__(self, fn: Callable, name: str, mode: str = 'auto',
                 backend: str | Callable = 'inductor', **options: Any) -> None:
        if mode not in COMPILE_MODES:
            raise ValueError(f'compile mode must be one of {COMPILE_MODES}, got {mode!r}')
        self.fn, self.name, self.mode = fn, name, mode
        self.fallback_reason: str | None = None
        self._compiled: Callable | None = None
        if mode == 'off':
            return
        reason = compile_unavailable_reason() if backend == 'inductor' else None
        if reason is not None:
            self._fall_back(reason)
            return
        self._compiled = torch.compile(fn, backend=backend, **options)

    @property
    def active(self) -> bool:
        """True while calls go through the compiled form."""
        return self._compiled is not None

    def _fall_back(self, reason: str, failed: bool = False) -> None:
        what = 'the compiled form failed' if failed else 'torch.compile unavailable'
        if self.mode == 'on':
            raise RuntimeError(f'{self.name}: torch.compile is required but {what}: {reason}')
        self.fallback_reason = reason
        self._compiled = None
        log.warning('%s: running eagerly (%s: %s)', self.name, what, reason)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._compiled is not None:
            try:
                return self._compiled(*args, **kwargs)
            except Exception as exc:                           # noqa: BLE001
                # A build failure (no compiler, unsupported op, ...). A genuine error in fn
                # itself is raised again by the eager call below, with its own traceback.
                self._fall_back(_reason(exc), failed=True)
        return self.fn(*args, **kwargs)
