"""A one-line progress counter on stderr for long runs; silent when stderr is not a terminal."""

import sys
import time
from typing import Optional, TextIO


class Progress:
    """``Progress("sacct", "rows")(n)`` rewrites ``sacct: 120,000 rows (40,000/s)`` at most
    ``every_s`` apart; ``done()`` clears the line. Nothing at all is written unless ``stream`` is
    a terminal (or ``enabled`` is forced)."""

    def __init__(self, label: str, unit: str = "rows", stream: Optional[TextIO] = None,
                 enabled: Optional[bool] = None, every_s: float = 0.5):
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.label = label
        self.unit = unit
        self.every_s = every_s
        self._t0 = time.monotonic()
        self._last = 0.0
        self._shown = False

    def __call__(self, n: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        rate = n / max(now - self._t0, 1e-9)
        self.stream.write(f"\r{self.label}: {n:,} {self.unit} ({rate:,.0f}/s)\x1b[K")
        self.stream.flush()
        self._shown = True

    def done(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
