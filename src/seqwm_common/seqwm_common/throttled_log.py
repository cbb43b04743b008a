"""One log line per event, repeats of the same kind folded into a count (pure Python).

A body flickering out of view at 100 Hz must not flood the log, yet the first occurrence and the
rate of repeats must stay visible: the first event of a key is logged at once, later ones at most
every `period_s`, each saying how many were folded since the previous line.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

LogFn = Callable[[str, str], None]   # (level, message)


class ThrottledLog:
    def __init__(self, log: LogFn, period_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self.period_s = float(period_s)
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def event(self, key: str, level: str, message: str) -> bool:
        """Log `message` unless `key` was logged less than period_s ago; True if logged."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            folded = self._suppressed.pop(key, 0)
            self._last[key] = now
        if folded:
            message = f'{message} [+{folded} similar in the last {now - last:.1f} s]'
        self._log(level, message)
        return True

    __call__ = event
