"""Error hierarchy: one root, each class also a builtin so callers can catch either way.

The block maps these to UP42 exit codes; the library only raises them.
"""

from __future__ import annotations


class S2srError(Exception):
    """Root of every error s2sr raises on purpose."""


class InputParametersError(S2srError, ValueError):
    """A parameter is missing, malformed or contradicts another (UP42 exit code 2)."""


class NoInputError(S2srError, FileNotFoundError):
    """There is nothing to process: no data.json, no features, a missing product (exit code 3)."""


class ProductError(S2srError, ValueError):
    """The product is unreadable or not a supported Sentinel-2 L1C/L2A SAFE product (exit code 4)."""


class AoiError(InputParametersError):
    """The area of interest is invalid or misses the product (exit code 2)."""


class NoOutputError(S2srError, RuntimeError):
    """Processing finished but produced nothing to write (exit code 6)."""


class WeightsError(S2srError, RuntimeError):
    """A weight file or its manifest is missing, corrupt or does not match the model."""
