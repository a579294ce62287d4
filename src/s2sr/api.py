"""The array API: super-resolve DN stacks held in memory, tile by tile."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .adapt import DEFAULT_ADAPT_STEPS, AdaptOptions, prepare_nets
from .bands import BANDS_10M, BANDS_20M, BANDS_60M
from .blur import DEFAULT_SENSOR_MODEL, sensor_model_for
from .errors import InputParametersError
from .inference import BandGroup, Nets, check_level, load_nets, superresolve_tile
from .model import DEFAULT_PRECISION
from .sensor import SensorModel
from .tiling import Window, tile_grid
from .uncertainty import DEFAULT_UNCERTAINTY

DEFAULT_ARRAY_TILE = 504


class SuperResolved(NamedTuple):
    """Super-resolved bands on the 10 m grid: B5,B6,B7,B8A,B11,B12 and (optionally) B1,B9; with each, the
    half-width (DN) of the central 90 % interval of the true value around every pixel (None when off), and
    how the intervals were calibrated (``uncertainty.Calibration``, None when off)."""

    b20: np.ndarray
    b60: np.ndarray | None
    b20_uncertainty: np.ndarray | None = None
    b60_uncertainty: np.ndarray | None = None
    calibration: Any = None


def _check_shapes(b10: np.ndarray, b20: np.ndarray, b60: np.ndarray | None) -> tuple[int, int]:
    if b10.ndim != 3 or b10.shape[0] != len(BANDS_10M):
        raise InputParametersError(f"b10 must have shape (4, H, W) for {','.join(BANDS_10M)}, got {b10.shape}")
    _, h, w = b10.shape
    if h < 6 or w < 6 or h % 6 or w % 6:
        raise InputParametersError(f"H and W must be multiples of 6 (at least 6), got {h} x {w}; crop or pad the arrays")
    if b20.shape != (len(BANDS_20M), h // 2, w // 2):
        raise InputParametersError(f"b20 must have shape (6, {h // 2}, {w // 2}) for {','.join(BANDS_20M)}, got {b20.shape}")
    if b60 is not None and b60.shape != (len(BANDS_60M), h // 6, w // 6):
        raise InputParametersError(f"b60 must have shape (2, {h // 6}, {w // 6}) for {','.join(BANDS_60M)}, got {b60.shape}")
    return h, w


def superresolve(
    b10: np.ndarray,
    b20: np.ndarray,
    b60: np.ndarray | None = None,
    *,
    level: str = "L2A",
    tile_size: int = DEFAULT_ARRAY_TILE,
    weights_dir: Path | None = None,
    consistency: bool = True,
    device: str = "auto",
    precision: str = DEFAULT_PRECISION,
    sensor_model: str | SensorModel = DEFAULT_SENSOR_MODEL,
    adapt_steps: int = DEFAULT_ADAPT_STEPS,
    uncertainty: bool = DEFAULT_UNCERTAINTY,
) -> SuperResolved:
    """Super-resolve 20 m (and 60 m) bands to the 10 m grid.

    Inputs are DN = reflectance x 10000 without offset: ``b10`` (4, H, W) B2,B3,B4,B8; ``b20`` (6, H/2, W/2)
    B5,B6,B7,B8A,B11,B12; ``b60`` (2, H/6, W/6) B1,B9. DN 0 is nodata and stays 0 in the output.
    Returns float32 arrays (6, H, W) and (2, H, W) (None without ``b60``). Work goes tile by tile, so
    memory beyond the inputs and outputs is bounded by ``tile_size``. ``consistency=False`` skips the
    projection that makes degraded output reproduce the input bands (for comparison only). ``device``:
    where the nets run, ``auto`` (a GPU if Keras sees one), ``cpu`` or ``gpu``; ``precision``: ``auto``
    (bfloat16 where that device runs it natively, else float32), ``float32`` or ``bfloat16``.
    ``sensor_model``: the blur every stage assumes, ``estimate`` (measured on these arrays,
    :mod:`s2sr.blur`), ``mtf`` (documented), ``paper`` (Lanaras et al.'s Wald kernel) or a
    :class:`~s2sr.sensor.SensorModel`. ``adapt_steps``: steps the x2 net is fine-tuned on these arrays' own
    bands one level down before it runs, kept only if it then fits held-back pixels better (0: off;
    :mod:`s2sr.adapt`). ``uncertainty``: also return ``b20_uncertainty`` (6, H, W) and ``b60_uncertainty``
    (2, H, W), float32, the half-width in DN of the central 90 % interval of the true value around each output
    pixel, calibrated on these arrays one level down (:mod:`s2sr.uncertainty`; 0 where the output is nodata).
    """
    b10, b20 = np.asarray(b10), np.asarray(b20)
    b60 = None if b60 is None else np.asarray(b60)
    _check_shapes(b10, b20, b60)
    check_level(level)
    options = AdaptOptions.parse(adapt_steps)
    nets = load_nets(level, b60 is not None, weights_dir, consistency, device, precision)
    return superresolve_with(nets, b10, b20, b60, tile_size, sensor_model, options, uncertainty)


def sensor_model_of(b10: np.ndarray, b20: np.ndarray, b60: np.ndarray | None = None) -> SensorModel:
    """The sensor model that :func:`superresolve` estimates on these arrays (DN as it takes them)."""
    h, w = _check_shapes(np.asarray(b10), np.asarray(b20), None if b60 is None else np.asarray(b60))
    return sensor_model_for("estimate", _reader(b10, b20, b60), h, w)


def _reader(b10: np.ndarray, b20: np.ndarray, b60: np.ndarray | None):
    """A window of the arrays' raster -> its harmonised band groups."""

    def read(window: Window):
        def group(a, f):
            rows, cols = window.scaled(f).slices()
            return BandGroup.from_dn(a[:, rows, cols])

        return group(b10, 1), group(b20, 2), None if b60 is None else group(b60, 6)

    return read


def superresolve_with(
    nets: Nets, b10: np.ndarray, b20: np.ndarray, b60: np.ndarray | None, tile_size: int = DEFAULT_ARRAY_TILE,
    sensor_model: str | SensorModel = DEFAULT_SENSOR_MODEL, adapt: AdaptOptions | None = None, uncertainty: bool = False,
) -> SuperResolved:
    """The array path with nets already loaded (evaluation passes nets with other fusion settings); ``adapt``
    None: the default adaptation."""
    h, w = _check_shapes(b10, b20, b60)
    raster = Window(0, 0, h, w)
    read = _reader(b10, b20, b60)
    nets = prepare_nets(nets, read, h, w, sensor_model, adapt or AdaptOptions(), uncertainty=uncertainty)
    out20 = np.zeros((len(BANDS_20M), h, w), np.float32)
    out60 = None if b60 is None else np.zeros((len(BANDS_60M), h, w), np.float32)
    with_u = nets.calibration is not None
    u20 = np.zeros_like(out20) if with_u else None
    u60 = None if out60 is None or not with_u else np.zeros_like(out60)
    for tile in tile_grid(raster, tile_size):
        result = superresolve_tile(nets, read, raster, tile)
        rows, cols = tile.slices()
        for out, got in ((out20, result.b20), (out60, result.b60), (u20, result.u20), (u60, result.u60)):
            if out is not None and got is not None:
                out[:, rows, cols] = np.where(result.valid, got, 0)
    return SuperResolved(out20, out60, u20, u60, nets.calibration)
