"""RGB quicklooks of an output file, read from its overviews (bounded memory whatever the AOI)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

TRUE_COLOUR = ("B4", "B3", "B2")
FALSE_COLOUR = ("B12", "B8A", "B5")  # SWIR / red edge, all super-resolved: what s2sr adds
MAX_SIDE = 512


#: Percentiles of each band's valid pixels mapped to 0 and 255.
STRETCH_PERCENTILES = (2, 98)


def stretch(data: np.ndarray) -> np.ndarray:
    """(3, h, w) DN -> uint8, band by band from the 2nd to the 98th percentile of the valid (non-zero) pixels."""
    valid = np.all(data > 0, axis=0)
    rgb = np.zeros(data.shape, np.uint8)
    if not valid.any():
        return rgb
    for i, band in enumerate(data):
        lo, hi = np.percentile(band[valid], STRETCH_PERCENTILES)
        scaled = (band - lo) / max(float(hi - lo), 1.0) * 254.0 + 1.0  # 1..255: 0 is left to nodata
        rgb[i] = np.where(valid, np.clip(scaled, 1, 255), 0).astype(np.uint8)
    return rgb


def write_quicklook(tif: Path, png: Path, bands: tuple[str, str, str] | None = None) -> Path:
    """Write an 8-bit RGB PNG of at most 512 px a side, each band stretched from its 2nd to its 98th percentile
    over the valid pixels (as image viewers show a scene; nodata stays black).

    ``bands``: red, green and blue; by default true colour, or the false colour of super-resolved bands
    when the file holds no B4, B3, B2.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with rasterio.open(tif) as ds:
        names = [ds.tags(i).get("band") for i in range(1, ds.count + 1)]
        wanted = bands or (TRUE_COLOUR if all(b in names for b in TRUE_COLOUR) else FALSE_COLOUR)
        indexes = [names.index(b) + 1 for b in wanted]
        scale = max(1.0, max(ds.height, ds.width) / MAX_SIDE)
        shape = (3, max(1, round(ds.height / scale)), max(1, round(ds.width / scale)))
        data = ds.read(indexes, out_shape=shape).astype(np.float32)
    rgb = stretch(data)
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(f".{png.name}.{os.getpid()}.tmp.png")
    profile = {"driver": "PNG", "width": shape[2], "height": shape[1], "count": 3, "dtype": "uint8"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a PNG quicklook has no georeference
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write(rgb)
        tmp.replace(png)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".aux.xml").unlink(missing_ok=True)
    return png
