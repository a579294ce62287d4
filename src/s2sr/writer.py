"""Writing the output: a uint16 Cloud-Optimized GeoTIFF, block by block, never the whole raster in memory.

Windows go into a tiled staging GeoTIFF in a temporary folder outside the output folder; on commit GDAL's
COG driver copies it with overviews into a hidden ``.partial`` file beside the target, which is renamed onto
the target. A failure removes both temporaries, so the target is either complete or absent. A run killed
outright (SIGKILL) can leave only a ``.partial`` of its own target in the output folder, and the next
writer of that target removes it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from .bands import NODATA_DN, SATURATED_DN, description
from .runner import StageTimes
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

    def __init__(
        self, path: Path, *, crs: Any, transform: Any, height: int, width: int, bands: tuple[str, ...],
        tags: dict[str, str], staging_dir: Path | None = None, times: StageTimes | None = None,
    ):
        self.path = Path(path)
        self.bands = bands
        token = uuid.uuid4().hex[:8]
        self._staging_root = staging_dir
        self._staging_dir: Path | None = None
        self._staging = Path()
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
        self._times = times if times is not None else StageTimes()

    def __enter__(self) -> CogWriter:
        import rasterio

        self.path.parent.mkdir(parents=True, exist_ok=True)
        for stale in self.path.parent.glob(f".{self.path.name}.*.partial.tif"):
            stale.unlink(missing_ok=True)  # left by a run of this target that was killed
        self._staging_dir = Path(tempfile.mkdtemp(prefix="s2sr-staging-", dir=self._staging_root))
        self._staging = self._staging_dir / "staging.tif"
        self._dataset = rasterio.open(self._staging, "w", **self._profile)
        return self

    def write(self, data: np.ndarray, window: Window) -> None:
        """Write a (bands, h, w) uint16 block at ``window`` (in output pixel coordinates)."""
        self._dataset.write(data, window=window.to_rasterio())

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                with self._times.timing("finish COG"):
                    self._finish()
        finally:
            if self._dataset is not None and not self._dataset.closed:
                self._dataset.close()
            self._partial.unlink(missing_ok=True)
            if self._staging_dir is not None:
                shutil.rmtree(self._staging_dir, ignore_errors=True)

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
