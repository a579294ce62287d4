"""Progress as text: tiles done, rate and time left. The edges (CLI, block) decide where it goes."""

from __future__ import annotations

import time
from collections.abc import Callable

BAR_WIDTH = 24


class ProgressReporter:
    """A ``progress(done, total)`` callback that hands a one-line summary to ``emit``.

    With ``bar`` the line starts with a bar of ``done/total`` (for a terminal that redraws one line).
    """

    def __init__(self, emit: Callable[[str], None], label: str = "", clock: Callable[[], float] = time.monotonic,
                 unit: str = "tile", bar: bool = False):
        self.emit, self.label, self.clock, self.unit, self.bar = emit, label, clock, unit, bar
        self.started = clock()

    def describe(self, done: int, total: int) -> str:
        """The line for ``done`` of ``total``: count, rate and time left (and the bar, if asked for)."""
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = done / elapsed
        left = (total - done) / rate if rate > 0 else float("inf")
        eta = "?" if left == float("inf") else _hms(left)
        prefix = f"{self.label}: " if self.label else ""
        if self.bar:
            filled = BAR_WIDTH * done // total if total > 0 else BAR_WIDTH
            prefix += f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
        return f"{prefix}{self.unit} {done}/{total}  {rate * 60:.1f} {self.unit}s/min  {eta} left"

    def __call__(self, done: int, total: int) -> None:
        self.emit(self.describe(done, total))


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
