"""Writing the output: a uint16 Cloud-Optimized GeoTIFF (or, with a ``Layout``, a uint8 class raster such as
the masks file), block by block, never the whole raster in memory.

Windows go into an uncompressed tiled staging GeoTIFF in a temporary folder outside the output folder (the
system's, or ``staging_dir``; a whole product needs 3.6 GB there), and their 2 x 2 averages into its first
overview (``staging.tif.ovr``), so the full-resolution pixels are never read back to make overviews. On
commit the coarser overviews are built from that one, and GDAL's COG driver copies the staging file with
them into a hidden ``.partial`` file beside the target (``finish``), which is renamed onto the target
(``commit``; leaving the block cleanly does both). Between the two the caller writes what must exist
before the output does (its STAC Item). A failure removes both temporaries, so the target is either
complete or absent. A run killed outright (SIGKILL) can leave only a ``.partial`` of its own target in the
output folder, and the next writer of that target removes it. Faults of the storage (a full disk, a
read-only folder) are raised as ``StorageError`` naming the folder.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .bands import NODATA_DN, SATURATED_DN, description
from .runner import StageTimes
from .storage import short_write, staging_prefix, staging_root, storage_faults
from .tiling import Window

REFLECTANCE_SCALE = 1e-4
BLOCKSIZE = 512
#: DEFLATE at level 1: faster than the default 6 and, measured on real and synthetic output, no larger.
COG_OPTIONS = {
    "COMPRESS": "DEFLATE",
    "LEVEL": "1",
    "PREDICTOR": "2",
    "BLOCKSIZE": str(BLOCKSIZE),
    "OVERVIEWS": "AUTO",
    "RESAMPLING": "AVERAGE",
    "BIGTIFF": "IF_SAFER",
    "NUM_THREADS": "ALL_CPUS",
}
#: GDAL's block cache while the COG is made. The copy walks one row of 512 px blocks at a time, in the
#: staging file and in the output: 2 x 135 MB for 12 bands of a whole 10980 px product. Below that it
#: re-decodes blocks (measured: 256 MiB took over 9 min where 512 MiB took 132 s), and GDAL's default of
#: 5 % of RAM is under it on a 4 GiB machine and needlessly large on a big one.
FINISH_CACHE_BYTES = 512 * 2**20


def overview_factors(height: int, width: int, blocksize: int = BLOCKSIZE) -> tuple[int, ...]:
    """The overview levels GDAL's COG driver makes by default: halve (rounding down) until both sides fit in
    one block. Level sizes themselves round up (1025 px has one overview, of 513 px)."""
    factors: list[int] = []
    while height > blocksize or width > blocksize:
        height, width = height // 2, width // 2
        factors.append(2 ** (len(factors) + 1))
    return tuple(factors)


def tiled_bytes(height: int, width: int, bands: int, blocksize: int = BLOCKSIZE, itemsize: int = 2) -> int:
    """Bytes of the pixels of an uncompressed GeoTIFF (``itemsize`` bytes a sample, 2 for uint16) in
    ``blocksize`` tiles (edge tiles whole)."""
    return -(-height // blocksize) * -(-width // blocksize) * blocksize**2 * bands * itemsize


def staging_bytes(height: int, width: int, bands: int, itemsize: int = 2) -> int:
    """Disk a ``CogWriter`` of that size needs: the staging file and its overviews, uncompressed; also an upper
    bound of the COG it makes (compressed tiles of the same pixels)."""
    levels = [(height, width)] + [(-(-height // f), -(-width // f)) for f in overview_factors(height, width)]
    return sum(tiled_bytes(h, w, bands, itemsize=itemsize) for h, w in levels)


@dataclass(frozen=True)
class Layout:
    """How a file stores its bands: sample type, nodata, scale, overview resampling, and what each band is.

    The default is the reflectance output (uint16, nodata 0, scale 0.0001, averaged overviews, descriptions
    from the band names); a class raster such as the masks companion (``masks``) takes uint8, its own nodata,
    no scale, ``nearest`` overviews (an average of two classes is no class) and its own descriptions and tags.
    """

    dtype: str = "uint16"
    nodata: int = NODATA_DN
    scale: float | None = REFLECTANCE_SCALE
    resampling: str = "average"
    descriptions: tuple[str, ...] | None = None  # None: ``bands.description`` of each band name
    band_tags: tuple[dict[str, str], ...] | None = None  # extra tags per band, beside ``band``

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize


REFLECTANCE = Layout()


def halve(block: np.ndarray) -> np.ndarray:
    """2 x 2 means of a (bands, h, w) uint16 block with even sides, over the valid pixels of each 2 x 2,
    rounded half up; nodata where none is valid.

    GDAL's AVERAGE overview of an image with even sides, bit for bit (tested), computed from the block in
    memory instead of re-read from the written file. (Of an odd side GDAL's source windows overlap.)
    """
    h, w = block.shape[1:]
    if h % 2 or w % 2:
        raise ValueError(f"halve needs even sides, got {h} x {w}")
    corners = [block[:, i::2, j::2] for i in (0, 1) for j in (0, 1)]  # strided adds: 4x faster than a reshape sum
    total = corners[0].astype(np.uint32)
    for corner in corners[1:]:
        total += corner
    if block.all():  # no nodata (most blocks): every mean is over four pixels
        total += 2
        total >>= 2
        return total.astype(np.uint16)
    count = (corners[0] != NODATA_DN).astype(np.uint32)
    for corner in corners[1:]:
        count += corner != NODATA_DN
    mean = (total + count // 2) // np.maximum(count, 1)
    return mean.astype(np.uint16)  # nodata is 0, so where count is 0 the mean is already nodata


def to_dn(values: np.ndarray, valid: np.ndarray, saturated: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Reflectance x 10000 -> uint16: rounded, clipped into 1..65534 (never wrapped), saturation and nodata kept;
    into ``out`` (uint16, shaped like ``values``) if given."""
    rounded = np.rint(values)
    np.clip(rounded, 1, SATURATED_DN - 1, out=rounded)
    if out is None:
        out = rounded.astype(np.uint16)
    else:
        np.copyto(out, rounded, casting="unsafe")  # whole numbers in range: the cast is exact
    if saturated.any():
        out[saturated] = SATURATED_DN
    if not valid.all():
        out *= valid  # nodata is 0
    return out


class CogWriter:
    """Context manager for one output file; ``write`` windows, leave the block cleanly to commit."""

    def __init__(
        self, path: Path, *, crs: Any, transform: Any, height: int, width: int, bands: tuple[str, ...],
        tags: dict[str, str], staging_dir: Path | None = None, times: StageTimes | None = None,
        layout: Layout = REFLECTANCE,
    ):
        self.path = Path(path)
        self.bands = bands
        self.layout = layout
        token = uuid.uuid4().hex[:8]
        self._staging_root = staging_dir
        self._staging_dir: Path | None = None
        self._staging = Path()
        self._partial = self.path.with_name(f".{self.path.name}.{token}.partial.tif")
        self._profile = {
            "driver": "GTiff",
            "dtype": layout.dtype,
            "nodata": layout.nodata,
            "count": len(bands),
            "height": height,
            "width": width,
            "crs": crs,
            "transform": transform,
            "tiled": True,
            "blockxsize": BLOCKSIZE,
            "blockysize": BLOCKSIZE,
            # uncompressed: the pixels are compressed once, into the COG (a third of the writing time saved),
            # at 2 bytes per band and pixel of temporary disk (3.6 GB for a whole product with its overview)
            "interleave": "pixel",
        }
        self._tags = tags
        self._dataset = None
        self._factors = overview_factors(height, width)
        self._overview = None  # the first overview, written with the windows; None: GDAL's COG driver makes them
        # ``halve`` averages uint16 with nodata 0: only the reflectance layout has its first overview made here
        self._own_overview = layout.resampling == "average" and layout.dtype == "uint16" and layout.nodata == NODATA_DN
        self._times = times if times is not None else StageTimes()
        self._finished = self._committed = False

    @property
    def partial(self) -> Path:
        """The finished COG under its hidden name, until ``commit`` renames it onto the target."""
        return self._partial

    def __enter__(self) -> CogWriter:
        try:
            self._open()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def _open(self) -> None:
        import rasterio

        with storage_faults(self.path.parent, "the output folder"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for stale in self.path.parent.glob(f".{self.path.name}.*.partial.tif*"):
                stale.unlink(missing_ok=True)  # left by a run of this target that was killed (with GDAL's .ovr.tmp)
        root = staging_root(self._staging_root)
        with storage_faults(root, "the staging folder"):
            self._staging_dir = Path(tempfile.mkdtemp(prefix=staging_prefix(), dir=root))
            self._staging = self._staging_dir / "staging.tif"
            self._dataset = rasterio.open(self._staging, "w", **self._profile)
            p = self._profile
            if self._own_overview and self._factors and p["height"] % 2 == 0 and p["width"] % 2 == 0:  # 60 m-aligned
                from affine import Affine

                half = {**p, "height": p["height"] // 2, "width": p["width"] // 2,
                        "transform": p["transform"] * Affine.scale(2)}
                self._overview = rasterio.open(self._overview_path, "w", **half)

    @property
    def _overview_path(self) -> Path:
        return self._staging.with_name(self._staging.name + ".ovr")  # where GDAL looks for external overviews

    def write(self, data: np.ndarray, window: Window) -> None:
        """Write a (bands, h, w) block of the layout's type at ``window`` (in output pixel coordinates)."""
        with storage_faults(self._staging_dir, "the staging folder"):
            self._dataset.write(data, window=window.to_rasterio())
            if self._overview is None:
                return
            if any(v % 2 for v in (window.row, window.col, window.height, window.width)):  # off the overview's grid
                self._overview.close()
                self._overview = None
                self._overview_path.unlink()
                return
            self._overview.write(halve(data), window=window.scaled(2).to_rasterio())

    def finish(self) -> Path:
        """Make the COG from the staging file, under its hidden name beside the target (``partial``)."""
        with self._times.timing("finish COG"):
            self._finish()
        self._finished = True
        return self._partial

    def commit(self) -> None:
        """Rename the finished COG onto the target: from here on the output exists."""
        if not self._finished:
            self.finish()
        with storage_faults(self.path.parent, "the output folder"):
            os.replace(self._partial, self.path)
        self._committed = True

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and not self._committed:
                self.commit()
        finally:
            for ds in (self._dataset, self._overview):
                if ds is not None and not ds.closed:
                    try:
                        ds.close()
                    except Exception:  # its flush fails as the write did (a full disk): that error is raised
                        pass
            self._partial.unlink(missing_ok=True)
            if self._staging_dir is not None:
                shutil.rmtree(self._staging_dir, ignore_errors=True)

    def _check_whole(self, path: Path, height: int, width: int) -> None:
        """GDAL writes the cached blocks when a dataset closes and does not raise when that fails (a full disk):
        the file's size says whether all of them got there."""
        if path.stat().st_size < tiled_bytes(height, width, len(self.bands), itemsize=self.layout.itemsize):
            raise short_write(self._staging_dir, "the staging folder", path)

    def _finish(self) -> None:
        import rasterio
        from rasterio.enums import Resampling
        from rasterio.shutil import copy

        ds = self._dataset
        with storage_faults(self._staging_dir, "the staging folder"):
            layout = self.layout
            ds.descriptions = layout.descriptions or tuple(description(b) for b in self.bands)
            if layout.scale is not None:
                ds.scales = (layout.scale,) * len(self.bands)
                ds.offsets = (0.0,) * len(self.bands)
            ds.update_tags(**self._tags)
            for i, band in enumerate(self.bands, start=1):
                ds.update_tags(i, band=band, **(layout.band_tags[i - 1] if layout.band_tags else {}))
            ds.close()
            self._check_whole(self._staging, self._profile["height"], self._profile["width"])
        with rasterio.Env(GDAL_CACHEMAX=FINISH_CACHE_BYTES, GDAL_NUM_THREADS="ALL_CPUS"):
            if self._overview is not None:
                with storage_faults(self._staging_dir, "the staging folder"):
                    self._overview.close()
                    self._check_whole(self._overview_path, self._overview.height, self._overview.width)
                    if len(self._factors) > 1:  # the coarser levels, each from the one before (as GDAL does)
                        with rasterio.open(self._overview_path, "r+") as first:
                            first.build_overviews([f // 2 for f in self._factors[1:]], Resampling.average)
            with storage_faults(self.path.parent, "the output folder"):
                options = {**COG_OPTIONS, "RESAMPLING": self.layout.resampling.upper()}
                copy(self._staging, self._partial, driver="COG", **options)  # uses the staging file's overviews
