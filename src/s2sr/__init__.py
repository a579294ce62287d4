"""s2sr: Sentinel-2 super-resolution of the 20 m and 60 m bands to 10 m with the DSen2 networks.

    >>> import s2sr
    >>> sr = s2sr.superresolve(b10, b20, b60, level="L2A")      # arrays in, arrays out
    >>> s2sr.superresolve_product("S2B_MSIL2A_....SAFE", "out.tif", aoi=[13.3, 52.4, 13.5, 52.6])
    >>> s2sr.superresolve_mosaic([p1, p2], "out.tif", s2sr.RunOptions(aoi=[13.3, 52.4, 13.5, 52.6]))  # one datatake
    >>> s2sr.read_mask("S2B_MSIL2A_....SAFE", [13.3, 52.4, 13.5, 52.6])["scl"]   # its SCL on the same pixels
"""

from __future__ import annotations

__version__ = "0.5.1"  # the one place: pyproject reads it (a plain literal), `s2sr --version` prints it

from .api import SuperResolved, superresolve  # noqa: E402
from .errors import (  # noqa: E402
    AoiError,
    DeviceError,
    InputParametersError,
    MaskError,
    NoInputError,
    NoOutputError,
    ProductError,
    S2srError,
    WeightsError,
)
from .masks import Masks, read_mask  # noqa: E402
from .mosaic import superresolve_mosaic  # noqa: E402
from .options import RunOptions  # noqa: E402
from .pipeline import superresolve_product  # noqa: E402

__all__ = [
    "AoiError",
    "DeviceError",
    "InputParametersError",
    "MaskError",
    "Masks",
    "NoInputError",
    "NoOutputError",
    "ProductError",
    "RunOptions",
    "S2srError",
    "SuperResolved",
    "WeightsError",
    "__version__",
    "read_mask",
    "superresolve",
    "superresolve_mosaic",
    "superresolve_product",
]
