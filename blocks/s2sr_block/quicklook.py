"""RGB quicklooks of an output file, read from its overviews (bounded memory whatever the AOI)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

TRUE_COLOUR = ("B4", "B3", "B2")
FALSE_COLOUR = ("B12", "B8A", "B5")  # SWIR / red edge, all super-resolved: what s2sr adds
MAX_SIDE = 512


def write_quicklook(tif: Path, png: Path, bands: tuple[str, str, str] | None = None) -> Path:
    """Write an 8-bit RGB PNG (reflectance 0..0.3 stretched) of at most 512 px a side.

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
    rgb = np.clip(data / 3000.0 * 255.0, 0, 255).astype(np.uint8)
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
