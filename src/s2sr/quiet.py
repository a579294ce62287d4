"""TensorFlow kept quiet for the library and the edges alike: its C++ INFO and WARNING lines off before it
loads, the absl lines it writes while loading dropped, and Keras's warning about retracing its predict function
(s2sr's windows come in a few shapes by design) filtered out of the ``tensorflow`` logger.

The one place s2sr touches the environment: ``TF_CPP_MIN_LOG_LEVEL`` is set to 2 when the user has not set it
and TensorFlow has not loaded yet, because TensorFlow reads no other switch before it loads.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager

from .errors import BackendError

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


#: How to install what runs the nets.
BACKEND_FIX = 'pip install "s2sr[cpu]" (TensorFlow for CPUs) or "s2sr[tensorflow]" (GPUs too)'


class _ExpectedRetracing(logging.Filter):
    """Drops TensorFlow's warning that a function was traced again: Keras traces its predict function once per
    input shape, and s2sr's windows come in several shapes by design."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def load_keras_quietly(environ: MutableMapping[str, str] | None = None) -> None:
    """Load Keras and its backend now, with TensorFlow's INFO lines off and those of its loading dropped."""
    if "tensorflow" not in sys.modules:
        quiet_environment(os.environ if environ is None else environ)
    if sys.modules.get("keras") is None:  # not loaded yet (or its import blocked: then the error below)
        try:
            with filtered_stderr(lambda line: not is_noise(line)):
                import keras  # noqa: F401  (loads the backend: TensorFlow logs while its libraries load)
        except ModuleNotFoundError as exc:  # Keras is a dependency; its backend is an extra
            raise BackendError(f"Keras or its backend is not installed here (no module {exc.name!r}): {BACKEND_FIX}") from None
    tf_logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _ExpectedRetracing) for f in tf_logger.filters):
        tf_logger.addFilter(_ExpectedRetracing())


