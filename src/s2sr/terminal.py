"""The terminal at the edges (CLI and block): TensorFlow quiet, log lines, progress as a bar on a terminal.

Only the ``s2sr`` command and the block use this module; the library itself prints nothing, sets nothing
and reads no environment.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import TextIO

from .progress import ProgressReporter

#: Set (unless the user set them) before TensorFlow loads: its C++ log without INFO and WARNING lines.
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2"}

# What TensorFlow writes while it loads, before absl's logging is initialised (no environment variable
# reaches these): absl INFO lines such as "I0000 00:00:1796154494.53 5691 port.cc:153] oneDNN custom
# operations are on ..." and absl's notice that they go to stderr. Anything else is passed through.
_NOISE = re.compile(
    r"^(I\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] .*"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR)$"
)


def quiet_environment(environ: MutableMapping[str, str]) -> None:
    """Turn TensorFlow's INFO logging off in ``environ`` (the process's, at the edge) unless already set."""
    for name, value in QUIET_ENVIRONMENT.items():
        environ.setdefault(name, value)


def is_noise(line: str) -> bool:
    """True for a line TensorFlow or absl logs at INFO level while loading."""
    return bool(_NOISE.match(line.rstrip("\r\n")))


@contextmanager
def filtered_stderr(keep: Callable[[str], bool]) -> Iterator[None]:
    """Capture file descriptor 2 (where C++ libraries write) and pass on only the lines ``keep`` accepts.

    Where it cannot be captured (no descriptor 2, no writable temporary folder) nothing is filtered.
    """
    sys.stderr.flush()
    try:
        capture = tempfile.TemporaryFile()
    except OSError:
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        capture.close()
        yield
        return
    with capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if keep(line)))
            sys.stderr.flush()


def load_keras_quietly(environ: MutableMapping[str, str]) -> None:
    """Load Keras and its backend now, with TensorFlow's INFO lines off and those of its loading dropped."""
    quiet_environment(environ)
    if "keras" in sys.modules:
        return
    with filtered_stderr(lambda line: not is_noise(line)):
        import keras  # noqa: F401  (loads the backend: TensorFlow logs while its libraries load)


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
