"""One seamless 10 m image from the products of one datatake: a step above the per-product run.

Sentinel-2 tiles overlap by about 10 km, so an AOI near a tile edge is covered by two to four products of
the same overpass. Here each product is run on its own (``superresolve_product``, AOI-clipped, to a staged
temporary output), then one output is written window by window from those runs:

- **Grouping** (``datatake_of``): products of one datatake share the platform (``S2A`` ...), the UTC date of
  the datatake's sensing start and the relative orbit (``R022``), all three read from the product name
  (``PRODUCT_URI`` of the metadata document, or a STAC Item's ``s2:product_uri``), and the processing level.
- **Grid** (``mosaic_grid``): the UTM zone holding the largest part of the AOI (without one, of the group's
  footprints) wins, on the 10 m grid of a product of that zone. Sentinel-2 tiles of one zone share that grid
  (their corners lie on whole 60 m pixels of one lattice: checked, a product off it is skipped). A product of
  another zone is run on its own grid and its output warped onto the mosaic's (``RESAMPLING``, chosen by
  measurement; its masks nearest), recorded in the Item.
- **Overlaps** (``choose``): per pixel, valid data first; then clear sky by the product's own masks (not
  cloud, cloud shadow or cirrus); then the product where the pixel lies farther from that product's data
  edge (its tile edge or swath edge), where the nets had their full context. Masks follow the same choice.
- **Limits**: memory is bounded by ``WINDOW`` (the mosaic is never held whole); a product that is corrupt,
  outside the AOI or holds only nodata there is skipped with a log line and the rest are written; the output
  is staged and renamed like a product's (whole or absent under a kill, its Item and masks renamed first).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .bands import NODATA_DN, output_bands
from .errors import AoiError, InputParametersError, NoOutputError, ProductError, S2srError
from .footprint import MAX_SIDE
from .masks import LAYERS, NODATA, MaskCompanion, MaskStatus, companion_path, mask_layout, stac_asset
from .metadata import Product
from .options import RunOptions
from .preflight import check_output
from .product import ProductReader, open_product
from .runner import StageTimes
from .storage import staging_prefix, staging_root
from .tiling import Window
from .uncertainty import UncertaintyCompanion, UncertaintyStatus, uncertainty_bands, uncertainty_path
from .writer import CogWriter, staging_bytes

#: 10 m pixels a side of the windows the mosaic is written by: a multiple of 6 (60 m-aligned everywhere) and of
#: 2 (the writer's first overview); 12 bands of uint16 for each product of a window: 25 MB each.
WINDOW = 1020
#: How the output of a product of another UTM zone is warped onto the mosaic's grid (its masks: nearest). Chosen
#: by measurement (``bench/mosaic_resampling.py``): a warp's RMSE on the super-resolved bands of 4 real scenes,
#: lanczos 3.9 - 8.9 DN, cubic 6.5 - 16.2, nearest 10.1 - 24.4, bilinear 15.2 - 37.7; lanczos lowest on all 4.
RESAMPLING = "lanczos"
#: L2A scene classes that are not clear sky: cloud shadow, cloud (medium, high probability), thin cirrus.
SCL_CLOUDY = (3, 8, 9, 10)
#: L1C cloud mask bits that are not clear sky: opaque clouds (1), cirrus (2).
CLOUD_BITS = 1 | 2
#: Tie-breaking of the overlap rule: valid data outranks clear sky, clear sky outranks any distance (m).
_VALID_RANK, _CLEAR_RANK = 4e8, 2e8

_COMPACT = re.compile(r"^(S2[A-D])_MSIL(1C|2A)_(\d{8})T\d{6}_N\d{4}_R(\d{3})_")
_OLD = re.compile(r"^(S2[A-D])_OPER_PRD_MSIL(1C|2A)_\w+?_\d{8}T\d{6}_R(\d{3})_V(\d{8})T\d{6}_")


@dataclass(frozen=True, order=True)
class Datatake:
    """What makes products one datatake: platform, UTC date of the sensing start, relative orbit, level."""

    platform: str
    date: str  # YYYYMMDD
    orbit: str  # "R022"
    level: str

    @property
    def name(self) -> str:
        """The stem of its output, e.g. ``S2B_MSIL2A_20230615_R022``."""
        return f"{self.platform}_MSI{self.level}_{self.date}_{self.orbit}"


def datatake_of(product: Product) -> Datatake:
    """The datatake of a product, from its name (compact or the long names of 2015 - 2016)."""
    name = product.name
    m = _COMPACT.match(name)
    if m:
        return Datatake(m[1], m[3], f"R{m[4]}", product.level)
    m = _OLD.match(name)
    if m:
        return Datatake(m[1], m[4], f"R{m[3]}", product.level)
    raise ProductError(f"{product.source}: its name {name!r} does not say platform, date and relative orbit "
                       "(S2B_MSIL2A_20230615T101559_N0400_R022_...); it cannot be grouped into a datatake")


def group_by_datatake(products: Sequence[str | Path], warn: Callable[[str], None]) -> dict[Datatake, list[Path]]:
    """The products by datatake (in the order given); one that cannot be opened or named is skipped with a line."""
    groups: dict[Datatake, list[Path]] = {}
    for path in products:
        try:
            key = datatake_of(open_product(path))
        except S2srError as exc:
            warn(f"{Path(path).name}: skipped, {exc}")
            continue
        groups.setdefault(key, []).append(Path(path))
    return dict(sorted(groups.items()))


def utm_zone(crs: Any) -> int | None:
    """The UTM zone of a WGS84 / UTM CRS (EPSG 326nn, 327nn), else None."""
    from rasterio.crs import CRS

    epsg = CRS.from_user_input(crs).to_epsg() or 0
    return epsg % 100 if 32601 <= epsg <= 32660 or 32701 <= epsg <= 32760 else None


def _zone_share(zone: int | None, area: Any) -> float:
    """The part of ``area`` (WGS84) inside the longitudes of UTM ``zone``."""
    from shapely.geometry import box

    if zone is None or area is None:
        return 0.0
    west = -180 + 6 * (zone - 1)
    return area.intersection(box(west, -90, west + 6, 90)).area


# ---------------------------------------------------------------------------------------------- the parts


@dataclass(frozen=True)
class _Part:
    """One product's run on the mosaic grid: its output (and masks file), where it sits, its data region."""

    product: Product
    tif: Path
    masks: Path | None
    offset: tuple[int, int]  # row, col of its first pixel on the mosaic's grid (before the mosaic is cropped)
    shape: tuple[int, int]
    region: Any  # where the product holds data, in the mosaic's CRS (for the distance from its data edge)
    tags: dict[str, Any]  # its STAC Item (what its run did: weights, sensor model, adaptation)
    warped_from: Any = None  # the CRS of a product of another UTM zone, warped onto the mosaic's grid

    @property
    def window(self) -> Window:
        return Window(self.offset[0], self.offset[1], *self.shape)


def _data_region(product: Product) -> Any:
    """Where ``product`` holds data, in its own CRS: its B1 traced at most ``MAX_SIDE`` cells a side."""
    import math

    from affine import Affine
    from rasterio.features import shapes
    from shapely.geometry import shape
    from shapely.ops import unary_union

    with ProductReader(product) as reader:
        ds = reader._datasets["B1"]
        step = max(1, math.ceil(max(ds.height, ds.width) / MAX_SIDE))
        out = (math.ceil(ds.height / step), math.ceil(ds.width / step))
        try:
            valid = ds.read(1, out_shape=out) != 0
        except Exception as exc:  # rasterio raises several types for a corrupt JP2
            raise ProductError(f"{product.band_paths['B1']}: cannot decode B1 ({exc}); download the product again") from None
        transform = ds.transform * Affine.scale(ds.width / out[1], ds.height / out[0])
    polygons = [shape(g) for g, v in shapes(valid.astype(np.uint8), mask=valid, transform=transform) if v]
    cell = max(abs(transform.a), abs(transform.e))  # a traced staircase simplified: distances stay within a cell
    return unary_union(polygons).simplify(cell, preserve_topology=True) if polygons else None


def mosaic_grid(products: Sequence[Product], aoi: Any | None) -> tuple[Any, Any]:
    """CRS and 10 m transform of the mosaic: of the first product of the UTM zone holding the largest part of
    the AOI (without an AOI, of the products' footprints), the products' order breaking ties."""
    from shapely.ops import unary_union

    readers = []
    for p in products:
        with ProductReader(p) as r:
            try:
                footprint = r.footprint() if aoi is None else None
            except ProductError:  # B1 does not decode: the product is skipped when it runs
                footprint = None
            readers.append((r.crs, r.transform, footprint))
    area = aoi if aoi is not None else unary_union([f for *_, f in readers if f is not None] or [None])
    best = max(range(len(readers)), key=lambda i: (_zone_share(utm_zone(readers[i][0]), area), -i))
    return readers[best][0], readers[best][1]


def _offset_on(grid_transform: Any, transform: Any) -> tuple[int, int] | None:
    """Row and column of ``transform``'s origin on the 10 m grid ``grid_transform``, when it lies on its 60 m
    lattice (so that 20 m and 60 m pixels line up too); None when it does not."""
    col = (transform.c - grid_transform.c) / grid_transform.a
    row = (transform.f - grid_transform.f) / grid_transform.e
    if abs(transform.a - grid_transform.a) > 1e-9 or abs(transform.e - grid_transform.e) > 1e-9:
        return None
    r, c = round(row), round(col)
    if abs(row - r) > 1e-6 or abs(col - c) > 1e-6 or r % 6 or c % 6:
        return None
    return r, c


def shares_grid(a: Product, b: Product) -> bool:
    """Whether two products lie on one 10 m grid, their corners on one 60 m lattice (Sentinel-2 tiles of one
    UTM zone do)."""
    with ProductReader(a) as ra, ProductReader(b) as rb:
        return ra.crs == rb.crs and _offset_on(ra.transform, rb.transform) is not None


# ---------------------------------------------------------------------------------------------- the rule


def clear_sky(masks: np.ndarray | None, layers: Sequence[str]) -> np.ndarray | None:
    """True where a masks block (layers, h, w) says clear sky (or says nothing: nodata); None without masks."""
    if masks is None:
        return None
    names = list(layers)
    if "scl" in names:
        scl = masks[names.index("scl")]
        return ~np.isin(scl, SCL_CLOUDY) | (scl == NODATA)
    if "cloud_mask" in names:
        bits = masks[names.index("cloud_mask")]
        return ((bits & CLOUD_BITS) == 0) | (bits == NODATA)
    return np.ones(masks.shape[1:], bool)


def edge_distance(region: Any, transform: Any, window: Window, step: int = 6) -> np.ndarray:
    """Metres from each pixel of ``window`` (on the grid ``transform``) to the edge of ``region`` (0 outside
    it), measured at the centres of ``step`` x ``step`` cells (60 m by default) and repeated to their pixels;
    plus up to 1 m, more the nearer the pixel is to the region's centre (float64: the tie-break survives)."""
    import shapely

    if region is None:
        return np.zeros((window.height, window.width))
    rows = -(-window.height // step)
    cols = -(-window.width // step)
    r, c = np.mgrid[0:rows, 0:cols]
    r = window.row + (r + 0.5) * step
    c = window.col + (c + 0.5) * step
    x = transform.c + c * transform.a + r * transform.b
    y = transform.f + c * transform.d + r * transform.e
    points = shapely.points(x.ravel(), y.ravel())
    inside = shapely.contains(region, points)
    # exact ties (two products sharing an edge: the pixel equally near it in both) go to the product whose
    # centre is nearer, by less than a metre, so a tie never outweighs a real difference
    centre = shapely.distance(region.centroid, points) / 1e6
    dist = np.where(inside, shapely.distance(region.boundary, points) + 1.0 - np.minimum(centre, 1.0), 0.0)
    dist = dist.reshape(rows, cols)
    return np.repeat(np.repeat(dist, step, axis=0), step, axis=1)[: window.height, : window.width]


def choose(valid: Sequence[np.ndarray], clear: Sequence[np.ndarray | None], distance: Sequence[np.ndarray]) -> np.ndarray:
    """Per pixel, the index of the product that wins: valid data, then clear sky, then the larger distance from
    its data edge; on a tie the first. -1 where none holds data."""
    scores = np.stack([
        v * _VALID_RANK + (np.ones_like(v) if c is None else c) * _CLEAR_RANK + np.minimum(d, _CLEAR_RANK / 2)
        for v, c, d in zip(valid, clear, distance, strict=True)
    ])
    winner = np.argmax(scores, axis=0)
    return np.where(np.any(np.stack(valid), axis=0), winner, -1)


# ---------------------------------------------------------------------------------------------- the call


def superresolve_mosaic(
    products: Sequence[str | Path],
    output: str | Path,
    options: RunOptions | None = None,
    *,
    warn: Callable[[str], None] | None = None,
    progress: Callable[[str], Callable[[int, int], None]] | None = None,
    **overrides: Any,
) -> Path:
    """Super-resolve the products of one datatake into one 10 m COG over the AOI and return its path.

    ``options``/``overrides``: as :func:`~s2sr.pipeline.superresolve_product` (each product is run with them).
    ``warn`` gets one line per product skipped (corrupt, outside the AOI, only nodata there, off the grid) and
    per masks file left out; ``progress(label)`` gives a progress callback per product.
    Products of more than one datatake are an InputParametersError (``group_by_datatake`` splits them).
    The STAC Item beside it links every product it was made of (``derived_from``); its masks file takes the
    product chosen per pixel, like the bands.
    """
    from .pipeline import superresolve_product

    opts = RunOptions.parse(options, **overrides)
    output = check_output(output, overwrite=opts.overwrite)
    say = warn or (lambda message: None)
    groups = group_by_datatake(products, say)
    if not groups:
        raise ProductError(f"none of the {len(products)} product(s) can be read; see the lines above")
    if len(groups) > 1:
        names = ", ".join(k.name for k in groups)
        raise InputParametersError(f"the products belong to {len(groups)} datatakes ({names}); a mosaic is of one: "
                                   "give the products of one, or run `s2sr batch --mosaic` to write one per datatake")
    (datatake, paths), = groups.items()
    located = []
    for path in paths:
        product = open_product(path)
        try:
            with ProductReader(product):  # every band file opens (headers): else skipped before the grid is chosen
                located.append(product)
        except ProductError as exc:
            say(f"{product.name}: skipped, {exc}")
    if not located:
        raise ProductError(f"no product of {datatake.name} can be read; see the lines above")
    aoi = opts.aoi.geometry if opts.aoi is not None else None
    crs, grid = mosaic_grid(located, aoi)
    per_product = RunOptions.parse(opts, stac_item=True, mosaic=False)  # each part's Item: what its run did
    work = Path(tempfile.mkdtemp(prefix=staging_prefix(), dir=staging_root()))
    try:
        parts: list[_Part] = []
        missed = empty = 0
        for n, product in enumerate(located):
            label = f"{product.name}"
            with ProductReader(product) as reader:
                same_crs = reader.crs == crs
                on_grid = same_crs and _offset_on(grid, reader.transform) is not None
            if same_crs and not on_grid:
                say(f"{label}: skipped, its grid is not on the 60 m lattice of the mosaic's")
                continue
            target = work / f"part{n}.tif"
            try:
                superresolve_product(product.source, target, per_product,
                                     warn=lambda m, label=label: say(f"{label}: {m}"),
                                     progress=progress(label) if progress else None)
                region = _data_region(product)
            except AoiError as exc:
                say(f"{label}: skipped, {exc}")
                missed += 1
                continue
            except NoOutputError as exc:
                say(f"{label}: skipped, {exc}")
                empty += 1
                continue
            except ProductError as exc:
                say(f"{label}: skipped, {exc}")
                continue
            parts.append(_part(product, target, crs, grid, region))
        if not parts:
            if empty:
                raise NoOutputError(f"no product of {datatake.name} holds valid pixels in the AOI")
            if missed:
                raise AoiError(f"the AOI overlaps none of the {len(located)} product(s) of {datatake.name}; "
                               "give an AOI inside their footprints")
            raise ProductError(f"no product of {datatake.name} could be run; see the lines above")
        return _write_mosaic(parts, output, crs, grid, datatake, opts)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _part(product: Product, tif: Path, crs: Any, grid: Any, region: Any) -> _Part:
    """A product's run placed on the mosaic's grid: where its pixels fall (another zone's: the 60 m-aligned
    window around its bounds there, to be warped), and its data region in the mosaic's CRS."""
    import rasterio

    from .stac_item import item_path

    with rasterio.open(tif) as ds:
        own_crs, bounds = ds.crs, ds.bounds
        offset, shape, warped = _offset_on(grid, ds.transform), ds.shape, None
    if own_crs != crs:
        from rasterio.warp import transform_bounds

        from .tiling import align_outward

        left, bottom, right, top = transform_bounds(own_crs, crs, *bounds, densify_pts=21)
        inv = ~grid
        col0, row0 = inv * (left, top)
        col1, row1 = inv * (right, bottom)
        box = align_outward(Window(math.floor(row0), math.floor(col0), math.ceil(row1) - math.floor(row0),
                                   math.ceil(col1) - math.floor(col0)))
        offset, shape, warped = (box.row, box.col), (box.height, box.width), own_crs
        region = _reprojected(region, own_crs, crs) if region is not None else None
    masks = companion_path(tif)
    item = json.loads(item_path(tif).read_text())
    return _Part(product, tif, masks if masks.is_file() else None, offset, shape, region, item, warped)


def _reprojected(geom: Any, src: Any, dst: Any) -> Any:
    """A geometry from one CRS to another, densified first (every 100 m) so its edges stay true."""
    import shapely
    import shapely.ops
    from pyproj import CRS, Transformer

    transformer = Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)
    return shapely.ops.transform(transformer.transform, shapely.segmentize(geom, 100.0))


class _MosaicMasks(MaskCompanion):
    """The mosaic's masks file: the masks of the product chosen per pixel, a companion of the mosaic (its
    staging, finishing, renaming and clean-up those of :class:`~s2sr.companion.Companion`)."""

    def __init__(self, output: Path, crs: Any, grid: Any, area: Window, parts: Sequence[_Part], enabled: bool):
        import rasterio

        from .companion import Companion
        from .masks import Grid

        Companion.__init__(self, output, area, Grid(crs, grid, area.row_stop, area.col_stop))
        self.reader = None
        self.layers: tuple[str, ...] = ()
        self.sources: tuple[str, ...] = ()
        with_masks = [p for p in parts if p.masks is not None]
        if enabled and with_masks:
            with rasterio.open(with_masks[0].masks) as ds:
                self.layers = tuple(ds.tags(i)["band"] for i in range(1, ds.count + 1))
                self.sources = tuple(ds.tags(i).get("source", "") for i in range(1, ds.count + 1))
        self.status = (MaskStatus("off", "not asked for (masks=False)") if not enabled else
                       MaskStatus("written", "", self.layers, self.sources) if self.layers else
                       MaskStatus("unavailable", "no product of the mosaic carries masks"))
        self._tags = {"s2sr_version": __version__, "masks": ", ".join(self.layers),
                      "nodata": f"{NODATA}: outside the AOI polygon or where the bands are nodata"}
        self.resolution = abs(grid.a)

    def layers_of(self, part: _Part) -> bool:
        """Whether ``part``'s masks file holds the mosaic's layers (else its pixels get NODATA masks)."""
        import rasterio

        if part.masks is None or not self.layers:
            return False
        with rasterio.open(part.masks) as ds:
            return tuple(ds.tags(i)["band"] for i in range(1, ds.count + 1)) == self.layers

    @property
    def staging_bytes(self) -> int:
        return staging_bytes(self.area.height, self.area.width, len(self.layers), 1) if self.layers else 0

    def __enter__(self) -> _MosaicMasks:
        if self.layers:
            by_name = {layer.name: layer for layer in LAYERS.values()}
            self.open(self.layers, self._tags, mask_layout(tuple(by_name[name] for name in self.layers), self.sources))
        return self

    def stac(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status.to_dict()}
        if self.written:
            by_name = {layer.name: layer for layer in LAYERS.values()}
            out["asset"] = stac_asset(self.path.name, tuple(by_name[n] for n in self.layers), self.resolution)
        return out


class _MosaicUncertainty(UncertaintyCompanion):
    """The mosaic's uncertainty file: the intervals of the product chosen per pixel (each calibrated on its own
    product, recorded per source), written and published like a product run's uncertainty companion."""

    def __init__(self, output: Path, crs: Any, grid: Any, area: Window, parts: Sequence[_Part], enabled: bool):
        from .masks import Grid

        have = [uncertainty_path(p.tif).is_file() for p in parts]
        tags = {"s2sr_version": __version__, "source_product": ", ".join(p.product.name for p in parts)}
        super().__init__(output, area, Grid(crs, grid, area.row_stop, area.col_stop), enabled and all(have), tags)
        if enabled and not all(have):
            missing = ", ".join(p.product.name for p, ok in zip(parts, have, strict=True) if not ok)
            self.status = UncertaintyStatus("failed", f"the run of {missing} wrote none")
        elif enabled:
            sources = [{"product": p.product.name,
                        "calibration": p.tags["properties"].get("s2sr:uncertainty", {}).get("calibration")}
                       for p in parts]
            self.status = UncertaintyStatus("written", "", {"mosaic_of": sources, "resampling": "nearest"})
            self._tags = {**tags, "calibration": json.dumps(self.status.calibration)}


def _write_mosaic(parts: Sequence[_Part], output: Path, crs: Any, grid: Any, datatake: Datatake,
                  opts: RunOptions) -> Path:
    """The mosaic of the parts' outputs, window by window, staged and published like a product's output."""
    from contextlib import ExitStack
    from types import SimpleNamespace

    import rasterio
    from affine import Affine

    from .pipeline import _check_folders, _publish
    from .tiling import tile_grid

    row0, col0 = min(p.window.row for p in parts), min(p.window.col for p in parts)
    row1, col1 = max(p.window.row_stop for p in parts), max(p.window.col_stop for p in parts)
    area = Window(row0, col0, row1 - row0, col1 - col0)
    transform = grid * Affine.translation(col0, row0)
    bands = output_bands(opts.copy_original_bands)
    masks = _MosaicMasks(output, crs, grid, area, parts, opts.masks)
    with_masks = [masks.layers_of(p) for p in parts]
    intervals = _MosaicUncertainty(output, crs, grid, area, parts, opts.uncertainty)
    _check_folders(output, staging_bytes(area.height, area.width, len(bands)) + masks.staging_bytes
                   + intervals.staging_bytes, opts.stac_item)
    times = StageTimes()
    first = parts[0].tags["properties"]
    record = {
        "datatake": {"platform": datatake.platform, "date": datatake.date, "relative_orbit": datatake.orbit,
                     "level": datatake.level},
        "grid": {"crs": str(crs), "utm_zone": utm_zone(crs),
                 "rule": "the UTM zone holding the largest part of the AOI, on the 10 m grid of a product of that zone"},
        "overlap_rule": "valid data, then clear sky by the product's own masks, then the larger distance from the "
                        "product's data edge",
        "resampling": (f"{RESAMPLING} (masks: nearest) for the products of another UTM zone, warped onto the "
                       "mosaic's grid; none for the others" if any(p.warped_from is not None for p in parts)
                       else "none: every product on the mosaic's grid"),
        "sources": [{"product": p.product.name, **({"warped_from": str(p.warped_from)} if p.warped_from else {}),
                     **{k.removeprefix("s2sr:"): p.tags["properties"][k] for k in
                     ("s2sr:sensor_model", "s2sr:adaptation", "s2sr:fusion") if k in p.tags["properties"]}}
                    for p in parts],
    }
    tags = {"s2sr_version": __version__, "source_product": ", ".join(p.product.name for p in parts),
            "processing_level": datatake.level,
            "processing_baseline": ", ".join(dict.fromkeys(p.product.metadata.baseline for p in parts)),
            "weights": ", ".join(w["name"] for w in first.get("s2sr:weights", [])),
            "reflectance": "DN x 0.0001 (offsets of baseline 04.00+ removed)", "mosaic": json.dumps(record)}
    with ExitStack() as stack:
        sources = [stack.enter_context(_on_grid(rasterio.open(p.tif), p, crs, grid, RESAMPLING, NODATA_DN, stack))
                   for p in parts]
        mask_sources = [stack.enter_context(_on_grid(rasterio.open(p.masks), p, crs, grid, "nearest", NODATA, stack))
                        if ok else None for p, ok in zip(parts, with_masks, strict=True)]
        unc_sources = [stack.enter_context(_on_grid(rasterio.open(uncertainty_path(p.tif)), p, crs, grid, "nearest",
                                                    NODATA_DN, stack)) for p in parts] if intervals.enabled else None
        with CogWriter(output, crs=crs, transform=transform, height=area.height, width=area.width, bands=bands,
                       tags=tags, times=times) as writer, masks, intervals:
            holds_data = False
            for window in tile_grid(area, WINDOW):
                block, mask_block, unc_block = _mosaic_window(window, parts, sources, mask_sources, grid, len(bands),
                                                              len(masks.layers), masks.layers, unc_sources)
                holds_data |= bool(block[0].any())
                writer.write(block, window.relative_to(area))
                if mask_block is not None:
                    masks.write_block(mask_block, window)
                if unc_block is not None:
                    intervals.write_block(unc_block, window)
            if not holds_data:
                raise NoOutputError(f"the products of {datatake.name} hold only nodata in the AOI; nothing to write")
            item = None if not opts.stac_item else dict(
                source=parts[0].product.source, source_name=parts[0].product.name, level=datatake.level,
                sensing_time=min(p.product.metadata.sensing_time for p in parts), version=__version__,
                weights=[SimpleNamespace(**w) for w in first.get("s2sr:weights", [])],
                aoi=opts.aoi.geometry if opts.aoi is not None and opts.clip_to_aoi else None,
                derived_from=[(p.product.source, p.product.name) for p in parts[1:]],
            )
            _publish(writer, output, item, times, (masks, intervals))
    return output


def _on_grid(ds: Any, part: _Part, crs: Any, grid: Any, resampling: str, nodata: int, stack: Any) -> Any:
    """``ds`` as read on the mosaic's grid over ``part.window``: itself for a product of the mosaic's zone, a
    ``WarpedVRT`` (``resampling``, ``nodata`` never blended in) onto that window for one of another zone."""
    if part.warped_from is None:
        return ds
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    stack.enter_context(ds)
    return WarpedVRT(ds, crs=crs, transform=grid * Affine.translation(part.window.col, part.window.row),
                     width=part.window.width, height=part.window.height, resampling=getattr(Resampling, resampling),
                     src_nodata=nodata, nodata=nodata)


def _mosaic_window(window: Window, parts: Sequence[_Part], sources: Sequence[Any], mask_sources: Sequence[Any],
                   grid: Any, nbands: int, nlayers: int, layers: Sequence[str], unc_sources: Sequence[Any] | None = None,
                   ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The mosaic's bands (and masks, and uncertainty) over ``window`` of its grid: each part read where it
    covers the window, the winner of the overlap rule taken per pixel."""
    shape = (window.height, window.width)
    nunc = len(uncertainty_bands()) if unc_sources is not None else 0
    blocks, mask_blocks, unc_blocks, valid, clear, distance = [], [], [], [], [], []
    for i, (part, src, msrc) in enumerate(zip(parts, sources, mask_sources, strict=True)):
        inter = window.intersection(part.window)
        if inter is None:
            continue
        rows, cols = inter.relative_to(window).slices()
        block = np.zeros((nbands, *shape), np.uint16)
        block[:, rows, cols] = src.read(window=inter.relative_to(part.window).to_rasterio())
        mblock = None
        if nlayers:
            mblock = np.full((nlayers, *shape), NODATA, np.uint8)
            if msrc is not None:
                mblock[:, rows, cols] = msrc.read(window=inter.relative_to(part.window).to_rasterio())
        if nunc:
            ublock = np.zeros((nunc, *shape), np.uint16)
            ublock[:, rows, cols] = unc_sources[i].read(window=inter.relative_to(part.window).to_rasterio())
            unc_blocks.append(ublock)
        blocks.append(block)
        mask_blocks.append(mblock)
        valid.append(block[0] != 0)
        clear.append(clear_sky(mblock, layers) if msrc is not None else None)
        distance.append(edge_distance(part.region, grid, window))
    out = np.zeros((nbands, *shape), np.uint16)
    out_masks = np.full((nlayers, *shape), NODATA, np.uint8) if nlayers else None
    out_unc = np.zeros((nunc, *shape), np.uint16) if nunc else None
    if not blocks:
        return out, out_masks, out_unc
    winner = choose(valid, clear, distance)
    for i, block in enumerate(blocks):
        take = winner == i
        out[:, take] = block[:, take]
        if out_masks is not None:
            out_masks[:, take] = mask_blocks[i][:, take]
        if out_unc is not None:
            out_unc[:, take] = unc_blocks[i][:, take]
    return out, out_masks, out_unc
