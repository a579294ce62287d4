"""Error hierarchy: one root, each class also a builtin so callers can catch either way.

The block maps these to UP42 exit codes; the library only raises them.
"""

from __future__ import annotations


class S2srError(Exception):
    """Root of every error s2sr raises on purpose."""


class InputParametersError(S2srError, ValueError):
    """A parameter is missing, malformed or contradicts another (UP42 exit code 2)."""


class OutputExistsError(InputParametersError, FileExistsError):
    """An output (or a file a run writes beside it) exists and replacing it was not asked for (exit code 2).

    Raised before any work; ``overwrite=True`` (``--overwrite``, the block's ``"overwrite": true``) replaces it."""


class NoInputError(S2srError, FileNotFoundError):
    """There is nothing to process: no data.json, no features, a missing product (exit code 3)."""


class ProductError(S2srError, ValueError):
    """The product is unreadable or not a supported Sentinel-2 L1C/L2A SAFE product (exit code 4)."""


class MaskError(ProductError):
    """A mask file of the product (SCL, cloud probability, cloud masks) is corrupt or does not fit its grid.

    ``read_mask`` raises it; a product run records it, warns in one line and writes the bands without masks."""


class AoiError(InputParametersError):
    """The area of interest is invalid or misses the product (exit code 2)."""


class NoOutputError(S2srError, RuntimeError):
    """Processing finished but produced nothing to write (exit code 6)."""


class DeviceError(InputParametersError):
    """The device asked for does not exist here: ``gpu`` where the backend sees none (exit code 2)."""


class StorageError(S2srError, OSError):
    """A fault of the machine's storage: a folder that is not writable (read-only, no permission) or has no
    room (disk full, quota), found before the first tile or met while writing (exit code 7).

    Built with an errno (``StorageError(errno.ENOSPC, message)``) so that code catching ``OSError`` reads it."""

    def __str__(self) -> str:
        return str(self.strerror or super().__str__())


class BackendError(S2srError, ImportError):
    """Keras has no backend here (TensorFlow is the ``cpu`` or ``tensorflow`` extra): exit code 1."""


class WeightsError(S2srError, RuntimeError):
    """A weight file or its manifest is missing, corrupt or does not match the model."""


#: UP42 block exit codes of each error class; anything else is 1. The block and CLI exit with these, and a
#: batch records them per product.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (InputParametersError, 2),
    (NoInputError, 3),
    (ProductError, 4),
    (NoOutputError, 6),
    (StorageError, 7),
)


def exit_code_for(exc: BaseException) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return 1
