"""Super-resolve xarray cubes: Sentinel-2 bands as odc-stac and stackstac load them, 12 bands at 10 m out.

Python users hold imagery as xarray objects, often Dask-backed and many dates of one place. Here the bands
come in at their native grids (10, 20 and 60 m: one odc-stac ``load`` per resolution, stackstac arrays with
a ``band`` dimension, or one Dataset whose groups sit on their own grids), are checked (ratios 1:2:6, one
CRS, pixel edges that meet) and cropped to the whole 60 m pixels all groups cover; each date then goes
through the same per-window functions as the array API: :func:`s2sr.adapt.prepare_nets` once per date (the
sensor model and the x2 net adapted to the date, both on fixed windows of the date's raster), then :func:`s2sr.inference.superresolve_tile`
per chunk, each chunk read with the nets' context border. So a chunked result equals the eager one for the
same reason tiled output equals untiled output.

On a Dask-backed cube nothing is read or computed until asked: one task per date prepares the nets, one
task per chunk super-resolves it and depends on its date's task. Tasks carry a small spec of the nets
(:class:`NetSpec`), never the nets: each worker process loads them once (``inference.load_nets`` is cached
per process), on its GPU where it has one (``device="auto"``).

Values: the cube must hold DN (reflectance x 10000), as odc-stac loads them and stackstac with
``rescale=False``. Whether a date holds harmonised values or raw DN with the +1000 offset of processing
baseline 04.00 depends on the catalogue, so the caller says it (``offset``; :func:`item_offsets` derives
it from the Items).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

try:
    import rioxarray  # noqa: F401  (registers the .rio accessor the output is written with)
    import xarray as xr
except ImportError as exc:  # the optional extra
    raise ImportError(f"s2sr.cube needs the xarray extra ({exc.name} is missing): pip install 's2sr[xarray]'") from None

from .adapt import AdaptOptions, adapted_weights, prepare_nets, with_adapted_weights
from .bands import BANDS, BANDS_10M, BANDS_20M, BANDS_60M, OUTPUT_BANDS, file_token
from .errors import InputParametersError
from .inference import BandGroup, Nets, check_level, load_nets, superresolve_tile
from .model import DEFAULT_PRECISION, LoadedNet, load_manifest, weights_name
from .options import RunOptions
from .sensor import FACTOR, MAX_SIGMA, SensorModel
from .stac import EARTH_SEARCH_KEYS
from .tiling import ALIGN, Window, tile_grid

#: 10 m pixels a side of an output chunk by default: the product pipeline's tile (memory goes with it).
DEFAULT_CHUNK = 1098
#: The output's nodata value (every band), as in the product's GeoTIFF and the array API.
NODATA = 0
#: Names a cube may hold that are not inputs: B10 (cirrus, no surface information, not in the output) and
#: the L2A products' other layers (scene classification, aerosol, water vapour, true colour). They are ignored.
IGNORED = frozenset({"b10", "cirrus", "scl", "aot", "wvp", "tci", "visual", "snw", "cld"})


def _aliases() -> dict[str, str]:
    """Every spelling of a band name the catalogues use, lower case -> the band: B2, B02, B02_10m, blue."""
    out = {}
    for band, info in BANDS.items():
        token = file_token(band)
        for name in (band, token, f"{token}_{info.resolution}m", EARTH_SEARCH_KEYS.get(band)):
            if name:
                out[name.lower()] = band
    return out


_ALIASES = _aliases()


def band_name(name: Hashable) -> str | None:
    """The band a cube's variable or ``band`` label holds (``B2`` for ``blue``, ``B02``, ``B02_10m``), None
    for a layer that is not an input (:data:`IGNORED`); raises for a name no catalogue uses."""
    text = str(name)
    key = text.lower()
    if key in _ALIASES and _ALIASES[key] != "B10":
        return _ALIASES[key]
    stem = key.rsplit("_", 1)[0] if key.rsplit("_", 1)[-1] in ("10m", "20m", "60m") else key
    if stem in IGNORED or key in IGNORED:
        return None
    raise InputParametersError(
        f"band {text!r} is not a Sentinel-2 band name; use Earth Search's (blue, green, red, nir, rededge1-3, nir08, "
        f"swir16, swir22, coastal, nir09) or B01 ... B12, B8A (Planetary Computer, Copernicus Data Space)")


@dataclass(frozen=True)
class NetSpec:
    """What a worker needs to load the nets (small and picklable: tasks carry this, never the nets)."""

    level: str
    with_60m: bool
    weights_dir: Path | None = None
    consistency: bool = True
    device: str = "auto"
    precision: str = DEFAULT_PRECISION

    def load(self) -> Nets:
        """The nets, loaded once per process (``load_nets`` is cached)."""
        return load_nets(self.level, self.with_60m, self.weights_dir, self.consistency, self.device, self.precision)

    def widest_border(self) -> int:
        """The context border under the widest blur any sensor model may have (from the manifests alone, no
        weights): what a chunk is read with before its date's sensor model is known."""
        def manifest(scale: int) -> LoadedNet:
            return LoadedNet(load_manifest(weights_name(scale, self.level, self.weights_dir), self.weights_dir), None)

        widest = SensorModel.from_sigmas({b: MAX_SIGMA[f] for b, f in FACTOR.items()})
        return Nets(manifest(2), manifest(6) if self.with_60m else None, self.consistency, sensor=widest).border


def date_state(nets: Nets, prepared: Nets) -> dict[str, Any]:
    """What :func:`s2sr.adapt.prepare_nets` changed for a date: what a date's task hands to its chunks' tasks
    (each chunk applies it to the nets its worker loaded, :func:`apply_state`). The nets travel as their
    adapted weights only where adaptation kept them."""
    if prepared.x6 is not nets.x6:
        raise NotImplementedError("prepare_nets changed the x6 net; s2sr.cube ships only the x2 net's adapted weights")
    state = {f.name: getattr(prepared, f.name) for f in fields(Nets)
             if f.name not in ("x2", "x6") and getattr(prepared, f.name) is not getattr(nets, f.name)}
    state["x2_weights"] = adapted_weights(prepared)
    return state


def apply_state(nets: Nets, state: dict[str, Any]) -> Nets:
    """A worker's shipped ``nets`` as its date prepared them (:func:`date_state`)."""
    state = dict(state)
    weights = state.pop("x2_weights", None)
    return with_adapted_weights(replace(nets, **state), weights)


# ---------------------------------------------------------------------------------------------------- grids


@dataclass(frozen=True)
class Grid:
    """A band's pixel grid: the outer edges of its first row and column, its steps (``dy`` < 0 for north-up),
    its size and CRS (WKT, or None where the cube has none)."""

    x0: float
    y0: float
    dx: float
    dy: float
    height: int
    width: int
    crs: str | None
    corners: bool = False  # the coordinates are upper-left corners (stackstac's default), not centres

    def describe(self) -> str:
        size = f"{abs(self.dx):g}" if abs(self.dx) == abs(self.dy) else f"{abs(self.dx):g} x {abs(self.dy):g}"
        return f"pixel size {size}, upper-left corner ({self.x0:.10g}, {self.y0:.10g}), {self.height} x {self.width} px"


def _step(coords: np.ndarray, dim: Hashable, name: str) -> float:
    if len(coords) < 2:
        raise InputParametersError(f"{name}: dimension {dim!r} has {len(coords)} pixel; a grid needs at least 2")
    steps = np.diff(coords.astype(np.float64))
    step = float(steps.mean())
    if step == 0 or np.abs(steps - step).max() > 1e-6 * abs(step):
        raise InputParametersError(f"{name}: the {dim!r} coordinates are not evenly spaced; give the bands on their pixel grids")
    return step


def _grid(arr: xr.DataArray, name: str) -> Grid:
    """The grid of a band from its coordinates: pixel centres (rioxarray, odc-stac), or stackstac's upper-left
    corners, which its ``transform`` attribute gives away."""
    ydim, xdim = arr.dims[-2:]
    if ydim not in arr.coords or xdim not in arr.coords:
        raise InputParametersError(f"{name}: no coordinates on {ydim!r} and {xdim!r}; the bands must carry their grid")
    ys, xs = np.asarray(arr.coords[ydim].values), np.asarray(arr.coords[xdim].values)
    dy, dx = _step(ys, ydim, name), _step(xs, xdim, name)
    x_edge, y_edge, corners = float(xs[0]) - dx / 2, float(ys[0]) - dy / 2, False
    transform = arr.attrs.get("transform")
    if transform is not None and len(tuple(transform)) >= 6:  # stackstac: xy_coords="topleft" (its default) or "center"
        tx, ty = float(transform[2]), float(transform[5])
        if math.isclose(tx, float(xs[0]), abs_tol=abs(dx) * 1e-6) and math.isclose(ty, float(ys[0]), abs_tol=abs(dy) * 1e-6):
            x_edge, y_edge, corners = tx, ty, True
    try:
        crs = arr.rio.crs
    except Exception as exc:  # rioxarray raises several types for a malformed spatial_ref
        raise InputParametersError(f"{name}: its CRS cannot be read ({exc})") from None
    return Grid(x_edge, y_edge, dx, dy, arr.shape[-2], arr.shape[-1], None if crs is None else crs.to_wkt(), corners)


def _offset_px(a: float, b: float, step: float, what: str) -> int:
    """Whole pixels of ``step`` from edge ``b`` to edge ``a``; raises where the edges do not meet."""
    n = (a - b) / step
    if abs(n - round(n)) > 1e-3:
        raise InputParametersError(what.format(shift=abs((n - round(n)) * step)))
    return round(n)


@dataclass(frozen=True)
class Layout:
    """Where the groups meet: the 10 m window (rows, cols of the 10 m input) every group covers in whole 60 m
    pixels, and each group's first row and column of it."""

    fine: Grid
    rows: int
    cols: int
    height: int
    width: int
    starts: dict[int, tuple[int, int]]  # factor -> (row, col) of the window's first pixel in that group


def _layout(grids: dict[int, Grid], names: dict[int, str]) -> Layout:
    """Check the groups' grids against each other (1:2:6, one CRS, edges that meet) and find their common
    window in whole 60 m pixels; every error names the groups and what to change."""
    fine = grids[1]
    for f, g in grids.items():
        if f == 1:
            continue
        what = f"{names[f]} ({g.describe()}) and {names[1]} ({fine.describe()})"
        if g.crs != fine.crs:
            raise InputParametersError(f"{what} are in different CRSs; load every group in the same CRS")
        ratio_x, ratio_y = g.dx / fine.dx, g.dy / fine.dy
        if not (math.isclose(ratio_x, f, rel_tol=1e-6) and math.isclose(ratio_y, f, rel_tol=1e-6)):
            raise InputParametersError(
                f"{what}: pixel sizes are not 1:{f} (got 1:{ratio_x:g}); load each group at its native resolution "
                f"(e.g. odc.stac.load(..., resolution={10 * f}) for {10 * f} m with 10 m bands at resolution=10)")
        for edge, fine_edge, step, axis in ((g.x0, fine.x0, fine.dx, "x"), (g.y0, fine.y0, fine.dy, "y")):
            _offset_px(edge, fine_edge, step, f"{what} are not aligned: their pixel edges are {{shift:g}} apart in {axis}; "
                       f"load every group on grids whose pixel edges meet (the products' own grids do)")
    # the window: whole 60 m pixels (of the 60 m grid, else anchored on the 20 m grid) inside every group
    anchor = grids[6] if 6 in grids else grids[2]
    step_x, step_y = ALIGN * fine.dx, ALIGN * fine.dy
    if 6 in grids:
        _offset_px(grids[6].x0, grids[2].x0, grids[2].dx, f"{names[6]} and {names[2]} are not aligned: their pixel edges "
                   "are {shift:g} apart in x")
        _offset_px(grids[6].y0, grids[2].y0, grids[2].dy, f"{names[6]} and {names[2]} are not aligned: their pixel edges "
                   "are {shift:g} apart in y")

    starts_x = [(g.x0 - anchor.x0) / step_x for g in grids.values()]
    stops_x = [(g.x0 + g.width * g.dx - anchor.x0) / step_x for g in grids.values()]
    starts_y = [(g.y0 - anchor.y0) / step_y for g in grids.values()]
    stops_y = [(g.y0 + g.height * g.dy - anchor.y0) / step_y for g in grids.values()]
    c0, c1 = math.ceil(max(starts_x) - 1e-6), math.floor(min(stops_x) + 1e-6)
    r0, r1 = math.ceil(max(starts_y) - 1e-6), math.floor(min(stops_y) + 1e-6)
    if c1 <= c0 or r1 <= r0:
        raise InputParametersError(f"the groups share no whole 60 m pixel ({', '.join(f'{names[f]}: {g.describe()}' for f, g in grids.items())}); "
                                   "load them over the same area")
    left, top = anchor.x0 + c0 * step_x, anchor.y0 + r0 * step_y
    starts = {f: (round((top - g.y0) / g.dy), round((left - g.x0) / g.dx)) for f, g in grids.items()}
    row, col = starts[1]
    return Layout(fine, row, col, (r1 - r0) * ALIGN, (c1 - c0) * ALIGN, starts)


# ---------------------------------------------------------------------------------------------------- inputs


def _band_arrays(cube: Any) -> dict[str, xr.DataArray]:
    """Every input band of the cube as a DataArray (time?, y, x), keyed by band (B2, ...)."""
    parts = list(cube) if isinstance(cube, (list, tuple)) else [cube]
    out: dict[str, xr.DataArray] = {}

    def add(label: Hashable, arr: xr.DataArray) -> None:
        band = band_name(label)
        if band is None:
            return
        if band in out:
            raise InputParametersError(f"band {band} is given twice (as {label!r} and before); give each band once")
        out[band] = arr

    for part in parts:
        if isinstance(part, xr.Dataset):
            for name, var in part.data_vars.items():
                if "band" in var.dims:
                    raise InputParametersError(f"variable {name!r} has a 'band' dimension; give one variable per band, "
                                               "or the DataArray itself")
                add(name, var)
        elif isinstance(part, xr.DataArray):
            if "band" in part.dims:
                for label in part.coords["band"].values if "band" in part.coords else range(part.sizes["band"]):
                    add(label, part.sel(band=label) if "band" in part.coords else part.isel(band=label))
            elif part.name is not None:
                add(part.name, part)
            else:
                raise InputParametersError("a DataArray without a 'band' dimension needs a name (its band, e.g. 'B05' or 'rededge1')")
        else:
            raise InputParametersError(f"give xarray Datasets or DataArrays (odc-stac, stackstac), or a list of them; "
                                       f"got {type(part).__name__}")
    for band, arr in out.items():
        extra = [d for d in arr.dims[:-2] if d != "time"]
        if arr.ndim not in (2, 3) or extra:
            raise InputParametersError(f"band {band} has dimensions {arr.dims}; s2sr takes (time, y, x) or (y, x)")
    return out


def _check_bands(bands: dict[str, xr.DataArray]) -> bool:
    """Raise for missing bands; True when the 60 m bands are there."""
    missing = [b for b in BANDS_10M + BANDS_20M if b not in bands]
    has60 = [b for b in BANDS_60M if b in bands]
    if len(has60) == 1:
        missing.append(next(b for b in BANDS_60M if b not in bands))
    if missing:
        keys = ", ".join(f"{b} ({EARTH_SEARCH_KEYS[b]} or {file_token(b)})" for b in missing)
        raise InputParametersError(f"the cube lacks {keys}; load every band of B2-B8A, B11, B12 (and B1 with B9, or neither)")
    return len(has60) == 2


def _offsets(offset: Any, times: np.ndarray | None) -> list[float]:
    """One DN offset per date from a number, a sequence in the cube's date order, or a DataArray along time."""
    n = 1 if times is None else len(times)
    if isinstance(offset, (bool, str, bytes)) or offset is None:
        raise InputParametersError(f"offset must be a number of DN (0 or -1000) or one per date, got {offset!r}")
    if isinstance(offset, (int, float, np.integer, np.floating)):
        values = [float(offset)] * n
    elif isinstance(offset, xr.DataArray):
        if times is None or offset.dims != ("time",):
            raise InputParametersError("an offset DataArray must have the one dimension 'time', and the cube a time dimension")
        try:
            values = [float(v) for v in offset.sel(time=times, method="nearest", tolerance=np.timedelta64(12, "h")).values]
        except KeyError:
            have = {str(t)[:19] for t in offset.time.values}
            lacking = [str(t)[:19] for t in times if str(t)[:19] not in have]
            raise InputParametersError(f"offset has no value within 12 h of the cube's date(s) {', '.join(lacking[:3])}; "
                                       "give one per date (s2sr.cube.item_offsets(items))") from None
    elif isinstance(offset, Sequence) or isinstance(offset, np.ndarray):
        values = [float(v) for v in offset]
        if len(values) != n:
            raise InputParametersError(f"offset has {len(values)} values for {n} date(s); give one per date or one number")
    else:
        raise InputParametersError(f"offset must be a number of DN (0 or -1000) or one per date, got {type(offset).__name__}")
    for v in values:
        if not math.isfinite(v):
            raise InputParametersError(f"offset must be finite DN, got {v}")
    return values


def item_offsets(items: Any) -> xr.DataArray:
    """The DN offset of each date of a cube loaded from these Items (pystac Items or an ItemCollection), by
    the rules ``s2sr run`` applies to an Item: 0 where the catalogue removed it (Earth Search's
    ``earthsearch:boa_offset_applied``), ``raster:bands`` offset / scale where given (Copernicus Data Space),
    -1000 from processing baseline 04.00 (Planetary Computer), else 0. A DataArray along ``time`` (UTC, no
    time zone, as odc-stac and stackstac give it), for ``superresolve_cube(..., offset=item_offsets(items))``."""
    import pystac

    from .stac import _offset, asset_key

    by_time: dict[np.datetime64, float] = {}
    for item in items:
        when = np.datetime64(item.datetime.replace(tzinfo=None), "ns")
        key = asset_key(item.assets, "B2")
        asset = item.assets[key] if key else pystac.Asset("")  # no band asset: the Item's fields decide
        value, _ = _offset(asset, item.properties, str(item.properties.get("s2:processing_baseline", "")))
        if when in by_time and by_time[when] != value:
            raise InputParametersError(f"Items of {str(when)[:19]} have different offsets ({by_time[when]}, {value}); "
                                       "load them as separate cubes")
        by_time[when] = value
    order = sorted(by_time)
    return xr.DataArray([by_time[t] for t in order], coords={"time": np.array(order, dtype="datetime64[ns]")}, dims=("time",))


# ---------------------------------------------------------------------------------------------------- windows


def _is_dask(data: Any) -> bool:
    return hasattr(data, "dask") and hasattr(data, "chunks")


def _clean(a: np.ndarray) -> np.ndarray:
    """DN of a window as the nets take them: NaN (stackstac's fill) is nodata, 0."""
    a = np.asarray(a)
    if a.dtype.kind == "f":
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    return a


def _reader(fetched: Window, arrays: Sequence[np.ndarray | None], offset: float):
    """A reader of any window inside ``fetched`` (raster coordinates) from the groups read over it."""
    arrays = [None if a is None else _clean(a) for a in arrays]

    def read(window: Window):
        inner = window.relative_to(fetched)
        groups = []
        for a, f in zip(arrays, (1, 2, 6), strict=True):
            if a is None:
                groups.append(None)
                continue
            rows, cols = inner.scaled(f).slices()
            dn = a[:, rows, cols]
            groups.append(BandGroup.from_dn(dn, [offset] * len(dn) if offset else None))
        _check_dn(groups[0])
        return tuple(groups)

    return read


def _check_dn(g10: BandGroup) -> None:
    """Reflectance in 0..1 (stackstac's default rescale) instead of DN would go through silently: refuse it."""
    valid = g10.values[:, g10.valid]
    if valid.size >= 400 and float(np.abs(valid).max()) < 2.0:
        raise InputParametersError("the cube holds reflectance (0-1), not DN (reflectance x 10000); load it with "
                                   "stackstac.stack(..., rescale=False) or multiply it by 10000")


def _prepare_date(spec: NetSpec, sensor_model: str | SensorModel, adapt: AdaptOptions, uncertainty: bool, raster: Window,
                  windows: Sequence[Window], offset: float, *arrays: np.ndarray | None) -> dict[str, Any]:
    """One date's task: the nets' per-date state (``prepare_nets``), from its estimation windows' groups."""
    nets = spec.load()
    per_window = {w: arrays[3 * i: 3 * i + 3] for i, w in enumerate(windows)}

    def read(window: Window):
        return _reader(window, per_window[window], offset)(window)

    return date_state(nets, prepare_nets(nets, read, raster.height, raster.width, sensor_model, adapt, uncertainty=uncertainty))


def _chunk(nets: Nets, read, raster: Window, tile: Window, with_60m: bool) -> np.ndarray:
    """The output bands of one tile (B1 ... B12 in spectral order, B1 and B9 only with the 60 m bands), 0 where
    any input band lacks data; with a calibration, then as many planes of their intervals' half-widths (NaN for
    the 10 m bands and where a tile's intervals failed, 0 where the bands are nodata)."""
    result = superresolve_tile(nets, read, raster, tile)
    by_band = dict(zip(BANDS_10M, result.b10, strict=True)) | dict(zip(BANDS_20M, result.b20, strict=True))
    if with_60m:
        by_band |= dict(zip(BANDS_60M, result.b60, strict=True))
    planes = [np.where(result.valid, by_band[b], np.float32(NODATA)) for b in output_bands(with_60m)]
    if nets.calibration is not None:
        nan = np.full(result.valid.shape, np.nan, np.float32)
        half = {b: nan for b in BANDS_10M + BANDS_20M + BANDS_60M}
        if result.u20 is not None:
            half |= dict(zip(BANDS_20M, result.u20, strict=True))
        if with_60m and result.u60 is not None:
            half |= dict(zip(BANDS_60M, result.u60, strict=True))
        planes += [np.where(result.valid, half[b], np.float32(NODATA)) for b in output_bands(with_60m)]
    return np.stack(planes)


def _chunk_task(spec: NetSpec, state: dict[str, Any], raster: Window, tile: Window, fetched: Window, border: int,
                offset: float, planes: int, a10: np.ndarray, a20: np.ndarray, a60: np.ndarray | None) -> np.ndarray:
    """One chunk's task: the worker's nets (loaded once per process) with its date's state, on the chunk read
    with the widest border; the date's own border is what it uses, never wider than what was read."""
    nets = apply_state(spec.load(), state)
    if nets.border > border:
        raise InputParametersError(f"the sensor model needs a context border of {nets.border} px, more than the "
                                   f"{border} px read; give blurs within s2sr.sensor.MAX_SIGMA")
    return _padded(_chunk(nets, _reader(fetched, (a10, a20, a60), offset), raster, tile, spec.with_60m), planes)


def _padded(chunk: np.ndarray, planes: int) -> np.ndarray:
    """A chunk with ``planes`` planes: where a date's calibration failed (no intervals), NaN planes stand in."""
    if len(chunk) >= planes:
        return chunk
    return np.concatenate([chunk, np.full((planes - len(chunk), *chunk.shape[1:]), np.nan, np.float32)])


def _sigmas(state: dict[str, Any], with_60m: bool) -> np.ndarray:
    """The sensor model of a date as one sigma (10 m pixels) per output band, NaN for the 10 m bands."""
    sensor: SensorModel = state["sensor"]
    return np.array([sensor.kernel(b).sigma if b in FACTOR else np.nan for b in output_bands(with_60m)])


def _adapted(state: dict[str, Any]) -> np.ndarray:
    """Whether a date's x2 net ran adapted (its adapted weights kept), as a 0-d array."""
    return np.array(state.get("x2_weights") is not None)


def output_bands(with_60m: bool) -> tuple[str, ...]:
    """The output's bands: B1 ... B12 less B10 (and less B1, B9 without the 60 m bands)."""
    return OUTPUT_BANDS if with_60m else tuple(b for b in OUTPUT_BANDS if b not in BANDS_60M)


# ---------------------------------------------------------------------------------------------------- the call


def superresolve_cube(
    cube: xr.Dataset | xr.DataArray | Sequence[xr.Dataset | xr.DataArray],
    *,
    offset: float | Sequence[float] | xr.DataArray,
    level: str = "L2A",
    chunk_size: int = DEFAULT_CHUNK,
    options: RunOptions | None = None,
    **overrides: Any,
) -> xr.DataArray:
    """Super-resolve a Sentinel-2 cube to 10 m: a DataArray (time, band, y, x), bands B1 ... B12 (no B10).

    ``cube``: the bands at their native grids, as odc-stac (one ``load`` per resolution: a list of Datasets)
    or stackstac (one DataArray with a ``band`` dimension per resolution) give them, or one Dataset whose
    10, 20 and 60 m variables sit on their own dimensions; with or without ``time``. Names: Earth Search's
    (``blue`` ... ``nir09``) or ``B02`` ... ``B8A``; B10 and SCL, AOT, WVP, TCI are ignored. Values: DN
    (reflectance x 10000), DN 0 (or NaN) nodata.
    ``offset``: DN added to every value for reflectance x 10000: 0 where the cube holds harmonised values
    (Earth Search), -1000 for raw DN of processing baseline 04.00 and later (Planetary Computer, Copernicus
    Data Space), or one per date (a sequence in the cube's order, or :func:`item_offsets`).
    ``chunk_size``: 10 m pixels a side of each output chunk (a multiple of 6); a chunk is read with the nets'
    context border, so memory goes with it. A Dask-backed cube gives a Dask-backed result, computed when
    asked; a NumPy-backed one is computed now. ``level``: as :func:`s2sr.superresolve`. ``options`` (a
    :class:`~s2sr.options.RunOptions`) and ``overrides`` (its fields by name): ``sensor_model``,
    ``weights_dir``, ``consistency``, ``device``, ``precision``, ``adapt_steps`` are used, as
    :func:`s2sr.superresolve` uses them (adaptation, like the sensor model, once per date on its fixed windows).

    The result has the 10 m grid's coordinates and CRS (rioxarray: ``.rio.crs``, ``.rio.transform()``), the
    cropping to whole 60 m pixels every group covers, float32 reflectance x 10000, ``_FillValue`` 0 where any
    input band lacks data; the coordinate ``sensor_sigma`` (time, band) holds each date's sensor model (the
    blur of each super-resolved band in 10 m pixels, NaN for the 10 m bands) and the attribute
    ``sensor_model`` how it was chosen; the coordinate ``adapted`` (time) says whether the date's x2 net ran
    adapted to it (:mod:`s2sr.adapt`: kept only where it fitted the date's held-back pixels better). With
    ``uncertainty`` the coordinate ``uncertainty`` (time, band, y, x), as lazy as the data, holds the half-width
    (reflectance x 10000) of each super-resolved pixel's central 90 % interval, calibrated per date one level
    down (:mod:`s2sr.uncertainty`; NaN for the 10 m bands), and the attribute ``uncertainty`` says so.
    """
    check_level(level)
    opts = RunOptions.parse(options, **overrides)
    adapt, sensor_model, uncertainty = opts.adaptation, opts.sensor_model, opts.uncertainty
    if not isinstance(chunk_size, int) or chunk_size <= 0 or chunk_size % ALIGN:
        raise InputParametersError(f"chunk_size must be a positive multiple of 6 (10 m pixels), got {chunk_size!r}")
    bands = _band_arrays(cube)
    with_60m = _check_bands(bands)
    groups = {1: BANDS_10M, 2: BANDS_20M} | ({6: BANDS_60M} if with_60m else {})
    grids: dict[int, Grid] = {}
    names = {1: "the 10 m bands", 2: "the 20 m bands", 6: "the 60 m bands"}
    for f, members in groups.items():
        first = members[0]
        grids[f] = _grid(bands[first], first)
        for b in members[1:]:
            g = _grid(bands[b], b)
            if g != grids[f]:
                raise InputParametersError(f"{b} ({g.describe()}) is not on the grid of {first} ({grids[f].describe()}); "
                                           f"load {', '.join(members)} at one resolution over one area")
    layout = _layout(grids, names)
    times = _times(bands)
    offsets = _offsets(offset, times)

    reference = bands[BANDS_10M[0]]
    ydim, xdim = reference.dims[-2:]
    lazy = any(_is_dask(bands[b].data) for m in groups.values() for b in m)
    stacks = {f: _stack([bands[b] for b in members], layout, f, times is not None, lazy) for f, members in groups.items()}
    spec = NetSpec(level, with_60m, opts.weights_dir, opts.consistency, opts.device, opts.precision)
    raster = Window(0, 0, layout.height, layout.width)
    run = _lazy if lazy else _eager
    data, sigmas, adapted = run(spec, stacks, raster, offsets, sensor_model, adapt, chunk_size, uncertainty)
    n_out = len(output_bands(with_60m))
    half = data[:, n_out:] if uncertainty else None
    out = _wrap(data[:, :n_out], sigmas, adapted, reference, layout, times, ydim, xdim, with_60m, sensor_model, level)
    if half is not None:
        out = out.assign_coords(uncertainty=(out.dims, half[0] if times is None else half))
        out.attrs["uncertainty"] = "half-width of the central 90 % interval, reflectance x 10000, calibrated one level down"
    return out


def _times(bands: dict[str, xr.DataArray]) -> np.ndarray | None:
    """The cube's dates (every band must have the same), None without a time dimension."""
    have = {b: ("time" in a.dims) for b, a in bands.items()}
    if not any(have.values()):
        return None
    if not all(have.values()):
        raise InputParametersError(f"{', '.join(b for b, t in have.items() if not t)} have no time dimension and the others do")
    ref_band = BANDS_10M[0]
    times = bands[ref_band].coords["time"].values if "time" in bands[ref_band].coords else np.arange(bands[ref_band].sizes["time"])
    for b, a in bands.items():
        other = a.coords["time"].values if "time" in a.coords else np.arange(a.sizes["time"])
        if len(other) != len(times) or not np.array_equal(other, times):
            raise InputParametersError(f"{b} has other dates than {ref_band} ({len(other)} against {len(times)}); "
                                       "load every group from the same Items with the same grouping")
    return times


def _stack(arrays: list[xr.DataArray], layout: Layout, factor: int, has_time: bool, lazy: bool):
    """One group as (time, bands, h, w) over the common window, lazily where ``lazy``."""
    row, col = layout.starts[factor]
    h, w = layout.height // factor, layout.width // factor
    parts = []
    for a in arrays:
        data = a.data
        if not has_time:
            data = data[None]
        parts.append(data[:, row:row + h, col:col + w])
    if lazy:
        import dask.array as da

        return da.stack([da.asarray(p) for p in parts], axis=1)
    return np.stack([np.asarray(p) for p in parts], axis=1)


def _eager(spec, stacks, raster, offsets, sensor_model, adapt, chunk_size, uncertainty):
    """NumPy in, NumPy out: per date, prepare the nets once, then every chunk, in this process."""
    base = spec.load()
    n_out = len(output_bands(spec.with_60m)) * (2 if uncertainty else 1)
    out = np.zeros((len(offsets), n_out, raster.height, raster.width), np.float32)
    sigmas, adapted = [], []
    for t, offset in enumerate(offsets):
        read = _reader(raster, [stacks[f][t] if f in stacks else None for f in (1, 2, 6)], offset)
        nets = prepare_nets(base, read, raster.height, raster.width, sensor_model, adapt, uncertainty=uncertainty)
        state = date_state(base, nets)
        sigmas.append(_sigmas(state, spec.with_60m))
        adapted.append(_adapted(state))
        for tile in tile_grid(raster, chunk_size):
            rows, cols = tile.slices()
            out[t, :, rows, cols] = _padded(_chunk(nets, read, raster, tile, spec.with_60m), n_out)
    return out, np.stack(sigmas), np.stack(adapted)


def _lazy(spec, stacks, raster, offsets, sensor_model, adapt, chunk_size, uncertainty):
    """Dask in, Dask out: one task per date prepares the nets' state, one task per chunk depends on it."""
    import dask
    import dask.array as da

    from .blur import estimation_windows

    border = spec.widest_border()
    n_bands = len(output_bands(spec.with_60m))
    n_out = n_bands * (2 if uncertainty else 1)
    needs_windows = sensor_model == "estimate" or adapt.steps > 0 or uncertainty
    windows = estimation_windows(raster.height, raster.width) if needs_windows else []
    tiles = list(tile_grid(raster, chunk_size))
    n_rows = len({t.row for t in tiles})
    prepare = dask.delayed(_prepare_date, pure=True)
    run = dask.delayed(_chunk_task, pure=True)
    dates, sigmas, adapted = [], [], []

    def groups(t: int, window: Window):
        return [stacks[f][t, :, window.scaled(f).row:window.scaled(f).row_stop, window.scaled(f).col:window.scaled(f).col_stop]
                if f in stacks else None for f in (1, 2, 6)]

    for t, offset in enumerate(offsets):
        arrays = [a for w in windows for a in groups(t, w)]
        state = prepare(spec, sensor_model, adapt, uncertainty, raster, windows, offset, *arrays)
        sigmas.append(da.from_delayed(dask.delayed(_sigmas, pure=True)(state, spec.with_60m), (n_bands,), np.float64))
        adapted.append(da.from_delayed(dask.delayed(_adapted, pure=True)(state), (), bool))
        blocks = []
        for tile in tiles:
            fetched = tile.grow(border).intersection(raster)
            chunk = run(spec, state, raster, tile, fetched, border, offset, n_out, *groups(t, fetched))
            blocks.append(da.from_delayed(chunk, (n_out, tile.height, tile.width), np.float32))
        per_row = len(blocks) // n_rows
        dates.append(da.block([blocks[i * per_row:(i + 1) * per_row] for i in range(n_rows)]))
    return da.stack(dates), da.stack(sigmas), da.stack(adapted)


def _wrap(data, sigmas, adapted, reference: xr.DataArray, layout: Layout, times, ydim, xdim, with_60m, sensor_model, level):
    """The result as a georeferenced DataArray on the 10 m grid (rioxarray conventions)."""
    from affine import Affine

    fine = layout.fine
    left, top = fine.x0 + layout.cols * fine.dx, fine.y0 + layout.rows * fine.dy
    if fine.corners:  # rioxarray's convention: pixel centres
        ys = top + (np.arange(layout.height) + 0.5) * fine.dy
        xs = left + (np.arange(layout.width) + 0.5) * fine.dx
    else:  # the input's own values, so that the result aligns with it exactly
        ys = reference.coords[ydim].values[layout.rows:layout.rows + layout.height]
        xs = reference.coords[xdim].values[layout.cols:layout.cols + layout.width]
    names = list(output_bands(with_60m))
    coords: dict[str, Any] = {"band": names, ydim: ys, xdim: xs}
    dims: tuple[str, ...] = ("band", ydim, xdim)
    sigma_dims: tuple[str, ...] = ("band",)
    date_dims: tuple[str, ...] = ()
    if times is None:
        data, sigmas, adapted = data[0], sigmas[0], adapted[0]
    else:
        dims, sigma_dims, date_dims = ("time", *dims), ("time", "band"), ("time",)
        coords["time"] = times
        for name, coord in reference.coords.items():  # per-date labels (stackstac: id, eo:cloud_cover, ...)
            if coord.dims == ("time",) and name != "time":
                coords[name] = coord
    out = xr.DataArray(data, coords=coords, dims=dims, name="superresolved")
    out = out.assign_coords(sensor_sigma=(sigma_dims, sigmas), adapted=(date_dims, adapted))
    out = out.rio.set_spatial_dims(x_dim=xdim, y_dim=ydim, inplace=False)
    if fine.crs is not None:
        out = out.rio.write_crs(fine.crs)
    out = out.rio.write_transform(Affine(fine.dx, 0.0, left, 0.0, fine.dy, top))
    out = out.rio.write_nodata(NODATA, encoded=False)
    model = sensor_model if isinstance(sensor_model, str) else "given"
    out.attrs.update({"level": level, "sensor_model": model, "units": "reflectance x 10000 (DN, no offset)"})
    return out

