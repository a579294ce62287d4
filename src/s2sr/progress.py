"""Progress as text: tiles done, rate and time left. The edges (CLI, block) decide where it goes."""

from __future__ import annotations

import time
from collections.abc import Callable


class ProgressReporter:
    """A ``progress(done, total)`` callback that hands a one-line summary to ``emit``."""

    def __init__(self, emit: Callable[[str], None], label: str = "", clock: Callable[[], float] = time.monotonic,
                 unit: str = "tile"):
        self.emit, self.label, self.clock, self.unit = emit, label, clock, unit
        self.started = clock()

    def __call__(self, done: int, total: int) -> None:
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = done / elapsed
        left = (total - done) / rate if rate > 0 else float("inf")
        eta = "?" if left == float("inf") else _hms(left)
        prefix = f"{self.label}: " if self.label else ""
        self.emit(f"{prefix}{self.unit} {done}/{total}  {rate * 60:.1f} {self.unit}s/min  {eta} left")


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
