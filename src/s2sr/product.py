"""Sentinel-2 SAFE products: find the metadata and band files, check the grids, read windows.

A product is a ``.SAFE`` directory, a zipped SAFE (read in place through GDAL's /vsizip/, with or without
a ``.SAFE/`` folder inside), the path of its metadata document, or a folder that holds exactly one of these
(the layout UP42's data blocks deliver). The metadata document is ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``,
or in the products of Dec 2015 - Dec 2016 ``S2A_OPER_MTD_SAFL1C_PDMC_....xml``. Band files are found by name
under ``GRANULE/*/IMG_DATA``, which covers L1C (``T32TQM_..._B02.jp2``), L2A (``R10m/..._B02_10m.jp2``) and
the old long names (``S2A_OPER_MSI_L1C_TL_SGS__..._B02.jp2``). The mask files it carries (``masks``) are
found the same way, under ``IMG_DATA/R20m`` and ``QI_DATA``.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path, PurePosixPath

import numpy as np

from .bands import BANDS, BANDS_10M, BANDS_20M, BANDS_60M
from .errors import NoInputError, ProductError
from .inference import BandGroup
from .metadata import Product, parse_product_metadata
from .stac import is_stac_item, is_url, open_item
from .tiling import Window

_MTD = re.compile(r"(^|/)(MTD_MSIL(1C|2A)|S2[AB]_(OPER|USER)_MTD_SAFL(1C|2A)_[^/]*)\.xml$", re.IGNORECASE)
_BAND_FILE = re.compile(r"IMG_DATA/(?:R(\d\d)m/)?[^/]*_(B\d\d|B8A)(?:_(\d\d)m)?\.jp2$", re.IGNORECASE)
NEEDED_BANDS = BANDS_10M + BANDS_20M + BANDS_60M
#: The mask files s2sr reads (``masks``): L2A the SCL and the cloud probability at 20 m, L1C the cloud masks,
#: a 60 m raster from baseline 04.00, vector GML before it (``S2A_OPER_MSK_CLOUDS_..._B00_MSIL1C.gml`` in the
#: long names of 2015 - 2016).
_MASK_FILES = (
    ("scl", re.compile(r"(^|/)GRANULE/[^/]+/IMG_DATA/R20m/[^/]*_SCL_20m\.jp2$", re.IGNORECASE)),
    ("cloud_probability", re.compile(r"(^|/)GRANULE/[^/]+/QI_DATA/(MSK_CLDPRB_20m|[^/]*_CLD_20m)\.jp2$", re.IGNORECASE)),
    ("classi", re.compile(r"(^|/)GRANULE/[^/]+/QI_DATA/MSK_CLASSI_B00\.jp2$", re.IGNORECASE)),
    ("gml", re.compile(r"(^|/)GRANULE/[^/]+/QI_DATA/[^/]*MSK_CLOUDS_[^/]*B00[^/]*\.gml$", re.IGNORECASE)),
)


def find_mask_files(names: Iterable[str], level: str) -> dict[str, str]:
    """The mask files among a SAFE's file ``names`` (relative to its root) that s2sr reads, by kind: L2A
    ``scl`` and ``cloud_probability``; L1C ``classi``, else (before baseline 04.00) ``gml``."""
    found: dict[str, str] = {}
    for name in names:
        for kind, pattern in _MASK_FILES:
            if pattern.search(name):
                found.setdefault(kind, name)
    wanted = ("scl", "cloud_probability") if level == "L2A" else ("classi",) if "classi" in found else ("gml",)
    return {kind: found[kind] for kind in wanted if kind in found}


def _pick_band_files(names: list[str], source: Path) -> dict[str, str]:
    """Map each band to its file at native resolution (L2A also ships resampled copies)."""
    found: dict[str, str] = {}
    granules = set()
    for name in names:
        m = _BAND_FILE.search(name)
        if not m:
            continue
        band = "B8A" if m.group(2).upper() == "B8A" else f"B{int(m.group(2)[1:])}"
        res = m.group(1) or m.group(3)
        if res is not None and int(res) != BANDS[band].resolution:
            continue
        granules.add(name[: m.start()])
        found[band] = name
    if len(granules) > 1:
        raise ProductError(f"{source}: holds {len(granules)} granules; s2sr reads single-tile products only")
    missing = [b for b in NEEDED_BANDS if b not in found]
    if missing:
        raise ProductError(f"{source}: band files missing for {', '.join(missing)}; is the product complete?")
    return found


def _product_in_folder(path: Path) -> Path | None:
    """The one ``.SAFE`` directory or SAFE zip a delivery folder holds; None if it holds none."""
    found = sorted(p for p in path.iterdir() if (p.is_dir() and p.suffix.upper() == ".SAFE") or
                   (p.is_file() and p.suffix.lower() == ".zip" and zipfile.is_zipfile(p)))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ProductError(f"{path}: holds {len(found)} products ({names}); point at one of them")
    return found[0] if found else None


def open_product(path: str | Path) -> Product:
    """Locate metadata and band files of a product given as SAFE directory, zip, metadata XML path, STAC
    Item (``.json``, or its http(s) URL, read in place), or a folder that holds exactly one SAFE directory or zip."""
    if isinstance(path, str) and is_url(path):
        return open_item(path)
    path = Path(path)
    if not path.exists():
        raise NoInputError(f"product {path} does not exist")
    if path.is_file() and zipfile.is_zipfile(path):
        return _open_zip(path)
    if path.is_file() and _looks_like_zip(path):
        raise ProductError(f"{path}: a corrupt or truncated zip (no zip directory at its end); download the product again")
    if is_stac_item(path):
        return open_item(path)
    if path.is_file():
        if not _MTD.search(path.name):
            raise ProductError(f"{path}: not a SAFE directory, zip or MTD_MSIL1C/2A.xml; give one of those")
        mtd, root = path, path.parent
    elif path.is_dir():
        candidates = sorted(p for p in path.iterdir() if _MTD.search(p.name))
        if not candidates:
            inner = _product_in_folder(path)
            if inner is not None:
                return open_product(inner)
            raise ProductError(
                f"{path}: no MTD_MSIL1C.xml or MTD_MSIL2A.xml, and no .SAFE or SAFE zip inside; is it a Sentinel-2 product?"
            )
        mtd, root = candidates[0], path
    else:
        raise ProductError(f"{path}: not a file or directory")
    metadata = parse_product_metadata(mtd.read_bytes(), str(mtd))
    names = [p.relative_to(root).as_posix() for p in root.glob("GRANULE/*/IMG_DATA/**/*") if p.suffix.lower() == ".jp2"]
    bands = _pick_band_files(names, root)
    names += [p.relative_to(root).as_posix() for p in root.glob("GRANULE/*/QI_DATA/*")]
    masks = find_mask_files(names, metadata.level)
    return Product(root, metadata, {b: str(root / n) for b, n in bands.items()}, {k: str(root / n) for k, n in masks.items()})


def _looks_like_zip(path: Path) -> bool:
    """A ``.zip`` name, or a file that starts as a zip does (``PK``): meant as a zipped SAFE."""
    if path.suffix.lower() == ".zip":
        return True
    try:
        with path.open("rb") as f:
            return f.read(2) == b"PK"
    except OSError:
        return False


def _open_zip(path: Path) -> Product:
    """A zipped SAFE, its content in a ``.SAFE/`` folder or at the top level; read in place."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            mtds = sorted((n for n in names if _MTD.search(n)), key=lambda n: (n.count("/"), n))
            if not mtds:
                raise ProductError(f"{path}: no MTD_MSIL1C.xml or MTD_MSIL2A.xml in the zip; is it a Sentinel-2 SAFE?")
            metadata = parse_product_metadata(zf.read(mtds[0]), f"{path}!{mtds[0]}")
    except (zipfile.BadZipFile, OSError) as exc:
        raise ProductError(f"{path}: the zip is unreadable ({exc}); download the product again") from None
    parent = PurePosixPath(mtds[0]).parent
    root = "" if str(parent) == "." else f"{parent}/"
    inside = [n[len(root):] for n in names if n.startswith(root)]
    bands = _pick_band_files(inside, path)
    masks = find_mask_files(inside, metadata.level)
    prefix = f"/vsizip/{path.resolve()}/{root}"
    return Product(path, metadata, {b: prefix + n for b, n in bands.items()}, {k: prefix + n for k, n in masks.items()})


class ProductReader:
    """Open band files of a product and read harmonised windows of all three grids.

    Checks on open that the 20 m and 60 m grids cover exactly the 10 m grid, so windows aligned to
    60 m read the same ground in every band.
    """

    def __init__(self, product: Product):
        self.product = product
        self._stack = ExitStack()
        self._datasets: dict = {}

    def __enter__(self) -> ProductReader:
        import rasterio
        from rasterio.errors import RasterioError

        for band, gdal_path in self.product.band_paths.items():
            if band not in NEEDED_BANDS:
                continue
            try:
                self._datasets[band] = self._stack.enter_context(rasterio.open(gdal_path))
            except (RasterioError, OSError) as exc:
                self._stack.close()
                raise ProductError(f"{gdal_path}: cannot open {band} ({exc}); the file is truncated or corrupt") from None
        ref = self._datasets["B2"]
        self.crs, self.transform = ref.crs, ref.transform
        self.height, self.width = ref.height, ref.width
        if self.height % 6 or self.width % 6:
            self._stack.close()
            raise ProductError(f"{self.product.source}: 10 m grid {self.height}x{self.width} is not a whole number of 60 m pixels")
        for band, ds in self._datasets.items():
            f = BANDS[band].resolution // 10
            same_origin = abs(ds.transform.c - ref.transform.c) < 1e-6 and abs(ds.transform.f - ref.transform.f) < 1e-6
            if (ds.height * f, ds.width * f) != (self.height, self.width) or ds.crs != self.crs or not same_origin:
                self._stack.close()
                raise ProductError(
                    f"{self.product.source}: {band} ({ds.width}x{ds.height}) does not cover the 10 m grid "
                    f"({self.width}x{self.height}) of B2"
                )
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def footprint(self):
        """Where the product holds data, traced on its 60 m band B1 (at most ``footprint.MAX_SIDE`` cells)."""
        import math

        from affine import Affine

        from .footprint import MAX_SIDE, mask_footprint

        ds = self._datasets["B1"]
        step = max(1, math.ceil(max(ds.height, ds.width) / MAX_SIDE))
        shape = (math.ceil(ds.height / step), math.ceil(ds.width / step))
        try:
            b1 = ds.read(1, out_shape=shape)
        except Exception as exc:  # rasterio raises several types for a corrupt JP2
            raise ProductError(f"{self.product.band_paths['B1']}: cannot decode B1 ({exc}); download the product again") from None
        transform = ds.transform * Affine.scale(ds.width / shape[1], ds.height / shape[0])
        return mask_footprint(b1 != 0, transform, ds.crs)

    @property
    def raster(self) -> Window:
        return Window(0, 0, self.height, self.width)

    def _read_band(self, band: str, window: Window):
        from rasterio.errors import RasterioError

        try:
            return self._datasets[band].read(1, window=window.to_rasterio())
        except (RasterioError, OSError) as exc:
            path = self.product.band_paths[band]
            raise ProductError(f"{path}: cannot decode {band} ({exc}); the file is truncated or corrupt, download the product again") from None

    def _group(self, bands: tuple[str, ...], window: Window, factor: int) -> BandGroup:
        w = window.scaled(factor)
        dn = np.stack([self._read_band(b, w) for b in bands])
        md = self.product.metadata
        return BandGroup.from_dn(dn, [md.offset(b) for b in bands], md.quantification)

    def read(self, window: Window) -> tuple[BandGroup, BandGroup, BandGroup]:
        """Harmonised 10, 20 and 60 m groups over a 60 m-aligned window of the 10 m grid."""
        return self._group(BANDS_10M, window, 1), self._group(BANDS_20M, window, 2), self._group(BANDS_60M, window, 6)
