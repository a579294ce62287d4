"""The terminal at the edges (CLI and block): log lines, progress as a bar on a terminal, errors and signals as
one line and an exit code.

Only the ``s2sr`` command and the block use this module; the library itself prints nothing. Keeping
TensorFlow quiet is :mod:`s2sr.quiet`'s, which the library uses too.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import TextIO

from .progress import ProgressReporter
from .quiet import filtered_stderr, is_noise, load_keras_quietly, quiet_environment  # noqa: F401  (the edges' names)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread as Ctrl-C raises KeyboardInterrupt, so that a run cleans up the same
    way (its staging files removed, nothing half-written left) before the process ends."""


#: Exit codes of a run ended by a signal: 128 + the signal's number, as a shell reports it.
INTERRUPT_EXIT_CODES = {KeyboardInterrupt: 128 + signal.SIGINT, Terminated: 128 + signal.SIGTERM}


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def run_at_edge(run: Callable[[], int], log: Callable[[str], None]) -> int:
    """Run a command and return its exit code: an error s2sr names becomes ``error: ...`` and its exit code
    (``errors.EXIT_CODES``), a fault of the storage the library did not name the same with exit 7, and Ctrl-C
    or SIGTERM one line, ``interrupted``, with 130 or 143. Anything else is a bug and keeps its traceback."""
    from .errors import S2srError, StorageError, exit_code_for
    from .storage import FIXES

    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return run()
    except S2srError as exc:
        log(f"error: {exc}")
        return exit_code_for(exc)
    except OSError as exc:  # a fault of the storage the library did not name (it names those it writes)
        if exc.errno not in FIXES:
            raise
        log(f"error: cannot write {exc.filename or 'a file'}: {FIXES[exc.errno]}")
        return exit_code_for(StorageError(exc.errno, str(exc)))
    except (KeyboardInterrupt, Terminated) as exc:
        log("interrupted")
        return INTERRUPT_EXIT_CODES[type(exc)]
    finally:
        signal.signal(signal.SIGTERM, previous)


class Terminal:
    """Log lines (``s2sr: ...``) and progress on a stream: a bar redrawn in place on a terminal, else lines."""

    def __init__(self, stream: TextIO | None = None, prefix: str = "s2sr: "):
        self._stream, self.prefix = stream, prefix
        self._bar_open = False

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    @property
    def is_tty(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def log(self, message: str) -> None:
        self._end_bar()
        self.stream.write(f"{self.prefix}{message}\n")
        self.stream.flush()

    def progress(self, label: str = "", unit: str = "tile") -> Callable[[int, int], None]:
        """A ``progress(done, total)`` callback: a bar on a terminal, today's lines otherwise (logs, pipes)."""
        if not self.is_tty:
            return ProgressReporter(self.log, label, unit=unit)
        reporter = ProgressReporter(self.log, label, unit=unit, bar=True)

        def draw(done: int, total: int) -> None:
            self.stream.write(f"\r{self.prefix}{reporter.describe(done, total)}\x1b[K")
            self._bar_open = done < total
            if not self._bar_open:
                self.stream.write("\n")
            self.stream.flush()

        return draw

    def _end_bar(self) -> None:
        if self._bar_open:
            self.stream.write("\n")
            self._bar_open = False
