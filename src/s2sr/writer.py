"""Writing the output: a uint16 Cloud-Optimized GeoTIFF, block by block, never the whole raster in memory.

Windows go into a tiled staging GeoTIFF beside the target; on commit GDAL's COG driver copies it with
overviews into a second temporary file, which is renamed onto the target. A failure at any point removes
both temporaries, so the target is either complete or absent.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from .bands import NODATA_DN, SATURATED_DN, description
from .tiling import Window

REFLECTANCE_SCALE = 1e-4
COG_OPTIONS = {
    "COMPRESS": "DEFLATE",
    "PREDICTOR": "2",
    "BLOCKSIZE": "512",
    "OVERVIEWS": "AUTO",
    "RESAMPLING": "AVERAGE",
    "BIGTIFF": "IF_SAFER",
    "NUM_THREADS": "ALL_CPUS",
}


def to_dn(values: np.ndarray, valid: np.ndarray, saturated: np.ndarray) -> np.ndarray:
    """Reflectance x 10000 -> uint16: rounded, clipped into 1..65534 (never wrapped), saturation and nodata kept."""
    dn = np.clip(np.rint(values), 1, SATURATED_DN - 1).astype(np.uint16)
    dn[saturated] = SATURATED_DN
    dn[:, ~valid] = NODATA_DN
    return dn


class CogWriter:
    """Context manager for one output file; ``write`` windows, leave the block cleanly to commit."""

    def __init__(self, path: Path, *, crs: Any, transform: Any, height: int, width: int, bands: tuple[str, ...], tags: dict[str, str]):
        self.path = Path(path)
        self.bands = bands
        token = uuid.uuid4().hex[:8]
        self._staging = self.path.with_name(f".{self.path.name}.{token}.staging.tif")
        self._partial = self.path.with_name(f".{self.path.name}.{token}.partial.tif")
        self._profile = {
            "driver": "GTiff",
            "dtype": "uint16",
            "nodata": NODATA_DN,
            "count": len(bands),
            "height": height,
            "width": width,
            "crs": crs,
            "transform": transform,
            "tiled": True,
            "blockxsize": 512,
            "blockysize": 512,
            "compress": "deflate",
            "zlevel": 1,
            "bigtiff": "IF_SAFER",
            "interleave": "pixel",
        }
        self._tags = tags
        self._dataset = None

    def __enter__(self) -> CogWriter:
        import rasterio

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._dataset = rasterio.open(self._staging, "w", **self._profile)
        return self

    def write(self, data: np.ndarray, window: Window) -> None:
        """Write a (bands, h, w) uint16 block at ``window`` (in output pixel coordinates)."""
        self._dataset.write(data, window=window.to_rasterio())

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._finish()
        finally:
            if self._dataset is not None and not self._dataset.closed:
                self._dataset.close()
            for tmp in (self._staging, self._partial):
                tmp.unlink(missing_ok=True)

    def _finish(self) -> None:
        from rasterio.shutil import copy

        ds = self._dataset
        ds.descriptions = tuple(description(b) for b in self.bands)
        ds.scales = (REFLECTANCE_SCALE,) * len(self.bands)
        ds.offsets = (0.0,) * len(self.bands)
        ds.update_tags(**self._tags)
        for i, band in enumerate(self.bands, start=1):
            ds.update_tags(i, band=band)
        ds.close()
        copy(self._staging, self._partial, driver="COG", **COG_OPTIONS)
        os.replace(self._partial, self.path)
