"""Per-pixel uncertainty: the half-width of a central 90 % interval of the true value around every output pixel.

Two parts, both values the tiles receive, like the sensor model and the adapted nets:

- **An error scale per pixel and band** (:func:`error_scale`): the local energy of what the method added to the
  bicubic upsampling of the measured band (its detail), averaged over cells of 6 x 6 output pixels aligned to
  the product grid, with a floor proportional to the band's local level and an absolute one (5 DN). Error sits
  where detail is added (edges, small features, texture) and grows with brightness; a flat field gets little of
  either, but never nothing: dark water's errors are a few DN, not a share of its level. The cells are
  whole 60 m pixels of the product grid, so every tile, AOI and chunk computes the same scale bit for bit.
- **A quantile per band** (:func:`calibrate`): split conformal calibration on the product itself one level down.
  The run's method (adapted nets, regression, projection) super-resolves the product's own bands degraded by
  the scale on the fixed windows of the sensor model and adaptation (:func:`s2sr.blur.estimation_windows`),
  and the ``ceil((n + 1) 0.9) / n`` quantile of |error| / scale over the windows' usable pixels is the factor
  that turns the scale into the interval. x2 uses only the rows adaptation held back (the adapted net never
  trained on them); x6 (not adapted) every row. Where the product gives too few usable pixels (a small or mostly
  nodata product; the 360 m level of x6 on a small raster) the quantiles shipped with the weights (their
  manifests' ``uncertainty``) stand in, and the record says so.

The calibration is as good as DSen2's own assumption: that the bands relate across scales one level down as
they do at the output's. Clouds, water glint and snow break it (``docs/how-it-works.md``, *Uncertainty*).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .bands import BANDS_10M, BANDS_20M, BANDS_60M
from .blur import estimation_windows
from .companion import Companion
from .sensor import SensorModel, mtf_sigma
from .tiling import Window

#: Whether runs compute the uncertainty unless told otherwise: the one default of the library, CLI, batch and block.
DEFAULT_UNCERTAINTY = True
#: Share of true values each interval is meant to hold (its central interval: half-width = this quantile).
COVERAGE = 0.9
#: Fewest usable calibration pixels per scale, one level down, for a product's own calibration.
MIN_PIXELS = 1000
#: Pixels cut off each side of a window's level-down output before calibrating: the level-down run has no
#: context beyond the window, so its edges err more than a tile's (which reads a border).
MARGIN = {2: 18, 6: 6}
#: Share of a window's rows at its bottom that adaptation holds back (``AdaptOptions.holdout``) and x2 calibrates on.
HOLDOUT = 0.25
#: Quantile used where neither the product nor the weights give one (a manifest without ``uncertainty``).
DEFAULT_QUANTILE = 3.0


@dataclass(frozen=True)
class ScaleRule:
    """How the per-pixel error scale is made from the output and the bicubic upsampling of the measured band:
    ``sqrt(cell(d^2) + (floor x cell(|bicubic|))^2 + absolute^2)``, d = output - bicubic, ``cell`` the mean over cells of
    ``cell`` x ``cell`` pixels aligned to the grid (a divisor of 6, so tiles and AOI windows share them), mixed
    with the pixel's own d^2 by ``point``, taken to the ``power`` (below 1: the scale spreads less than the
    detail energy, which spans more than the error). ``absolute`` (DN) keeps dark, flat pixels (water, shadow)
    from an interval of almost nothing. Chosen on the selection scenes (``bench/uncertainty.py``,
    ``bench/uncertainty_floor.py``)."""

    cell: int = 6
    floor: float = 0.01
    power: float = 0.8
    point: float = 0.25
    absolute: float = 0.0  # DN: a floor that does not scale with the level (dark water, shadow)

    def __post_init__(self):
        if self.cell < 1 or 6 % self.cell:
            raise ValueError(f"cell must divide 6, got {self.cell}")


DEFAULT_RULE = ScaleRule(absolute=5.0)


def cell_mean(a: np.ndarray, cell: int) -> np.ndarray:
    """Mean of the last two axes over ``cell`` x ``cell`` cells from the array's origin (partial cells at the far
    edges over what they hold), each pixel given its cell's mean."""
    if cell == 1:
        return a.astype(np.float32, copy=False)
    h, w = a.shape[-2:]
    rows, cols = np.arange(0, h, cell), np.arange(0, w, cell)
    sums = np.add.reduceat(np.add.reduceat(a.astype(np.float32, copy=False), rows, axis=-2), cols, axis=-1)
    counts = np.minimum(cell, h - rows)[:, None] * np.minimum(cell, w - cols)[None, :]
    means = (sums / counts).astype(np.float32)
    return np.repeat(np.repeat(means, cell, axis=-2), cell, axis=-1)[..., :h, :w]


def error_scale(estimate: np.ndarray, bicubic: np.ndarray, rule: ScaleRule = DEFAULT_RULE) -> np.ndarray:
    """(bands, h, w) float32: the error scale of each output pixel (DN), from the detail the method added to the
    bicubic upsampling and the local level (:class:`ScaleRule`)."""
    detail = np.subtract(estimate, bicubic, dtype=np.float32)
    squared = detail * detail
    energy = cell_mean(squared, rule.cell)
    if rule.point:
        energy = energy * np.float32(1 - rule.point) + squared * np.float32(rule.point)
    level = cell_mean(np.abs(bicubic), rule.cell) * np.float32(rule.floor)
    scale = np.sqrt(energy + level * level + np.float32(rule.absolute * rule.absolute + 1e-6))
    return scale if rule.power == 1.0 else np.power(scale, np.float32(rule.power))


def conformal_quantile(ratios: np.ndarray, coverage: float = COVERAGE) -> float:
    """The split-conformal quantile of ``ratios``: the ``ceil((n + 1) coverage)``-th smallest (inf where n is too
    small for the coverage)."""
    n = len(ratios)
    k = math.ceil((n + 1) * coverage)
    if n == 0 or k > n:
        return math.inf
    return float(np.partition(np.asarray(ratios, np.float64), k - 1)[k - 1])


@dataclass(frozen=True)
class ScaleCalibration:
    """The quantiles of one scale's bands and where they come from: ``product`` (this product one level down),
    ``shipped`` (the weights' manifest) or ``default`` (neither)."""

    scale: int
    bands: tuple[str, ...]
    quantiles: tuple[float, ...]
    source: str
    pixels: int = 0  # usable calibration pixels per band, one level down
    reason: str = ""
    level_factors: tuple[float, ...] = ()  # per band, the shipped ratio of output-level to level-down quantiles
    level_down: tuple[float, ...] = ()  # per band, the product's own level-down quantile (recorded where unused)

    def to_dict(self) -> dict:
        out = {"scale": self.scale, "source": self.source, "pixels": self.pixels,
               "quantiles": {b: round(q, 4) for b, q in zip(self.bands, self.quantiles, strict=True)}}
        if self.level_factors:
            out["level_factors"] = {b: round(k, 4) for b, k in zip(self.bands, self.level_factors, strict=True)}
        if self.level_down:
            out["level_down_quantiles"] = {b: round(q, 4) for b, q in zip(self.bands, self.level_down, strict=True)}
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Calibration:
    """What turns a scale into an interval for each super-resolved band of a product (recorded in the tags and
    the STAC Item)."""

    scales: tuple[ScaleCalibration, ...]
    coverage: float = COVERAGE
    rule: ScaleRule = field(default_factory=ScaleRule)

    def of(self, scale: int) -> ScaleCalibration | None:
        return next((s for s in self.scales if s.scale == scale), None)

    def interval(self, scale: int, estimate: np.ndarray, bicubic: np.ndarray) -> np.ndarray:
        """Half-widths (DN) of the ``coverage`` intervals of a scale's output bands."""
        q = np.asarray(self.of(scale).quantiles, np.float32).reshape(-1, 1, 1)
        return error_scale(estimate, bicubic, self.rule) * q

    def to_dict(self) -> dict:
        return {"coverage": self.coverage, "interval": "half-width of the central interval, DN",
                "scale": (f"(({1 - self.rule.point:g} cell{self.rule.cell}(d^2) + {self.rule.point:g} d^2 + ({self.rule.floor:g} "
                          f"cell{self.rule.cell}(bicubic))^2 + {self.rule.absolute:g}^2)^0.5)^{self.rule.power:g}, d = output - bicubic"),
                "level": "one level down (the product's own bands degraded by the scale)",
                "by_scale": {f"x{s.scale}": s.to_dict() for s in self.scales}}

    def describe(self) -> str:
        """One line for people."""
        return "; ".join(f"x{s.scale} {s.source} ({', '.join(f'{b} {q:.2f}' for b, q in zip(s.bands, s.quantiles, strict=True))})"
                         for s in self.scales)


@dataclass(frozen=True)
class Sample:
    """One window's level-down output of one scale: estimate, bicubic, truth (the product's own band) and the
    pixels to calibrate on."""

    estimate: np.ndarray
    bicubic: np.ndarray
    target: np.ndarray
    mask: np.ndarray


Read = Callable[[Window], tuple]


def level_down_blur(sensor: SensorModel, scale: int) -> dict[str, float]:
    """Each band's blur one level down (its own pixels), by scale invariance: a target band keeps the blur the
    sensor model gives it; the finer bands take their documented MTF at the scale."""
    blur = {b: float(mtf_sigma(b, scale)) for b in BANDS_10M + BANDS_20M + BANDS_60M}
    blur.update({b: sensor.kernel(b).sigma for b in (BANDS_20M if scale == 2 else BANDS_60M)})
    return blur


def level_down_samples(nets, read: Read, height: int, width: int, scale: int) -> list[Sample]:
    """The run's method on the product one level down, window by window (:func:`s2sr.blur.estimation_windows`).

    x2: 10 m bands degraded to 20 m and 20 m bands to 40 m, the 20 m bands the truth; x6: every group degraded by
    6, the 60 m bands the truth. ``nets``: prepared (sensor model, adapted x2 net), without a calibration."""
    from .inference import FILL_REACH, BandGroup, superresolve_groups
    from .pairs import degrade_group
    from .refine import usable_coarse
    from .resample import upsample

    blur = level_down_blur(nets.sensor, scale)
    step = 12 if scale == 2 else 36
    margin = MARGIN[scale]
    out = []
    for window in estimation_windows(height, width):
        h, w = window.height // step * step, window.width // step * step
        if h < step or w < step:
            continue
        g10, g20, g60 = read(window)
        if scale == 6 and g60 is None:
            return []
        im10, im20 = g10.filled(FILL_REACH)[:, :h, :w], g20.filled(FILL_REACH // 2)[:, : h // 2, : w // 2]
        groups = [degrade_group(im10, scale, BANDS_10M, blur), degrade_group(im20, scale, BANDS_20M, blur)]
        if scale == 2:
            target, coarse = im20, groups[1]
            usable = usable_coarse(g10.valid[:h, :w], g20.saturated[:, : h // 2, : w // 2], g20.valid[: h // 2, : w // 2], 2)
            groups.append(None)
        else:
            target = g60.filled(FILL_REACH // 6)[:, : h // 6, : w // 6]
            usable = usable_coarse(g10.valid[:h, :w], g60.saturated[:, : h // 6, : w // 6], g60.valid[: h // 6, : w // 6], 6)
            coarse = degrade_group(target, 6, BANDS_60M, blur)
            groups.append(coarse)
        bands = [None if g is None else BandGroup(g, np.ones(g.shape[1:], bool), np.zeros(g.shape, bool)) for g in groups]
        result = superresolve_groups(nets, *bands, border=0)
        estimate = result.b20 if scale == 2 else result.b60
        mask = np.zeros(usable.shape, bool)
        rows = mask.shape[0]
        first = rows - max(1, round(rows * HOLDOUT)) if scale == 2 else 0
        mask[max(first, margin) : rows - margin, margin:-margin] = True
        out.append(Sample(estimate, upsample(coarse, scale), target, mask & usable))
    return out


def sample_ratios(samples: list[Sample], rule: ScaleRule = DEFAULT_RULE) -> np.ndarray:
    """(bands, n) |error| / scale over the samples' calibration pixels."""
    parts = [np.abs(s.estimate - s.target)[:, s.mask] / error_scale(s.estimate, s.bicubic, rule)[:, s.mask] for s in samples]
    return np.concatenate(parts, axis=1) if parts else np.zeros((0, 0), np.float32)


def _manifest_record(net) -> dict:
    """A net's manifest ``uncertainty`` as written ({} without a net or without one)."""
    return (getattr(net.manifest, "uncertainty", None) or {}) if net is not None else {}


def _fits_rule(record: dict, rule: ScaleRule) -> bool:
    """Whether a shipped record was made for ``rule`` (a record without ``rule`` predates it: taken as made for it)."""
    made_for = record.get("rule")
    if made_for is None:
        return True
    try:
        return ScaleRule(**made_for) == rule  # a field the record lacks has the rule's default
    except (TypeError, ValueError):
        return False


def shipped_record(net, rule: ScaleRule = DEFAULT_RULE) -> dict:
    """A net's shipped calibration (its manifest's ``uncertainty``), or {} where there is none or it was made
    for another scale rule (its quantiles would not fit this rule's scale)."""
    record = _manifest_record(net)
    return record if _fits_rule(record, rule) else {}


def shipped(net, scale: int, bands: tuple[str, ...], reason: str, rule: ScaleRule = DEFAULT_RULE) -> ScaleCalibration:
    """The quantiles in a net's manifest (``uncertainty.quantiles``), or :data:`DEFAULT_QUANTILE` without them
    (or where they were made for another scale rule)."""
    full = _manifest_record(net)
    record = full if _fits_rule(full, rule) else {}
    raw = record.get("quantiles", {})
    if all(b in raw for b in bands):
        return ScaleCalibration(scale, bands, tuple(float(raw[b]) for b in bands), "shipped", 0, reason)
    why = ("the weights carry no calibration" if not full else
           "the weights' calibration is for another scale rule" if not record else "the weights' calibration lacks a band")
    return ScaleCalibration(scale, bands, (DEFAULT_QUANTILE,) * len(bands), "default", 0, f"{reason}; {why}")


def level_factors(net, bands: tuple[str, ...], rule: ScaleRule = DEFAULT_RULE) -> tuple[float, ...] | None:
    """Per band, how much wider the output's errors run than the level-down errors, relative to their scales: the
    shipped ``uncertainty.level_factors`` of the net's manifest (measured on the training scenes, where both levels
    have truth); None where the manifest has none for every band."""
    raw = shipped_record(net, rule).get("level_factors", {})
    return tuple(float(raw[b]) for b in bands) if all(b in raw for b in bands) else None


def calibrate_from(samples: list[Sample], net, scale: int, rule: ScaleRule = DEFAULT_RULE) -> ScaleCalibration:
    """One scale's quantiles from its level-down samples (each band's conformal quantile times its level factor),
    or the shipped ones where the samples hold too few usable pixels, or where the weights carry no level factor
    for the scale: one level down the quantiles run smaller than at the output's level (x2: by about 1.5), so
    an unscaled product calibration would under-cover; its level-down quantiles are then recorded, not used."""
    bands = BANDS_20M if scale == 2 else BANDS_60M
    ratios = sample_ratios(samples, rule)
    n = ratios.shape[1] if ratios.size else 0
    if n < MIN_PIXELS:
        return shipped(net, scale, bands, f"too few usable pixels one level down ({n}; needs {MIN_PIXELS})", rule)
    raw = tuple(conformal_quantile(r) for r in ratios)
    factors = level_factors(net, bands, rule)
    if factors is None:
        return replace(shipped(net, scale, bands, f"no level factor for x{scale} in the weights (the level-down "
                                                  "quantiles are recorded, not used)", rule), pixels=n, level_down=raw)
    qs = tuple(q * k for q, k in zip(raw, factors, strict=True))
    return ScaleCalibration(scale, bands, qs, "product", n, level_factors=factors)


def calibrate_scale(nets, read: Read, height: int, width: int, scale: int, rule: ScaleRule = DEFAULT_RULE) -> ScaleCalibration:
    """One scale's quantiles from the product one level down, or the shipped ones where it gives too few pixels."""
    net = nets.x2 if scale == 2 else nets.x6
    return calibrate_from(level_down_samples(nets, read, height, width, scale), net, scale, rule)


def calibrate(nets, read: Read, height: int, width: int, rule: ScaleRule = DEFAULT_RULE) -> Calibration:
    """The calibration of every scale the nets run (x6 where there is an x6 net), on the product behind ``read``."""
    scales = (2, 6) if nets.x6 is not None else (2,)
    uncalibrated = replace(nets, calibration=None)
    return Calibration(tuple(calibrate_scale(uncalibrated, read, height, width, s, rule) for s in scales), rule=rule)


# -- a product run's uncertainty file

#: The uncertainty file is ``<output stem>_uncertainty.tif``.
SUFFIX = "uncertainty"


def uncertainty_path(output: Path) -> Path:
    """The uncertainty file beside an output GeoTIFF: ``out.tif`` -> ``out_uncertainty.tif``."""
    from .companion import companion_path

    return companion_path(output, SUFFIX)


def uncertainty_bands() -> tuple[str, ...]:
    """The file's bands: every super-resolved band, in spectral order (B1 B5 B6 B7 B8A B9 B11 B12)."""
    from .bands import output_bands

    return output_bands(False)


@dataclass(frozen=True)
class UncertaintyStatus:
    """What became of a run's uncertainty: ``written``, ``off`` (not asked for) or ``failed`` (``reason``), and the
    calibration it used (recorded in the STAC Item and the block's data.json)."""

    state: str
    reason: str = ""
    calibration: dict | None = None

    def to_dict(self) -> dict:
        out: dict = {"status": self.state}
        if self.reason:
            out["reason"] = self.reason
        if self.calibration is not None:
            out["calibration"] = self.calibration
        return out


class UncertaintyCompanion(Companion):
    """The uncertainty file of one product run, ``<output stem>_uncertainty.tif`` (a
    :class:`~s2sr.companion.Companion`): per super-resolved band, the half-width in DN of the central 90 % interval
    of the true value around the output, on the output's grid, nodata and saturation where the bands have them.
    Without a calibration (turned off, or it failed) or when a tile comes without intervals, there is no file:
    the bands are written all the same, ``warn`` says it once and the Item records it."""

    suffix = SUFFIX

    def __init__(self, output: Path, area: Window, grid: Any, enabled: bool, tags: dict[str, str],
                 warn: Callable[[str], None] | None = None):
        super().__init__(output, area, grid, warn)
        self.enabled, self._tags = enabled, tags
        self.status = UncertaintyStatus("off", "not asked for (uncertainty=False)") if not enabled else UncertaintyStatus("written")
        self.resolution = abs(grid.transform.a)

    @property
    def staging_bytes(self) -> int:
        from .writer import staging_bytes

        return staging_bytes(self.area.height, self.area.width, len(uncertainty_bands())) if self.enabled else 0

    def calibrated(self, calibration: Calibration | None) -> UncertaintyCompanion:
        """Take the run's calibration (before entering); None where it could not be made."""
        if self.enabled and calibration is None:
            self.status = UncertaintyStatus("failed", "no calibration (it failed; see the run's warning)")
        elif self.enabled:
            self.status = UncertaintyStatus("written", "", calibration.to_dict())
            self._tags = {**self._tags, "calibration": json.dumps(self.status.calibration)}
        return self

    def __enter__(self) -> UncertaintyCompanion:
        from .bands import description
        from .writer import Layout

        if self.status.state == "written":
            bands = uncertainty_bands()
            descriptions = tuple(f"{description(b)}: half-width of the 90 % interval, DN" for b in bands)
            self.open(bands, self._tags, Layout(descriptions=descriptions))
        return self

    def write(self, part: Window, rows: slice, cols: slice, u20: np.ndarray | None, u60: np.ndarray | None,
              valid: np.ndarray, saturated: dict[str, np.ndarray]) -> None:
        """The intervals of a tile's ``rows``, ``cols`` over ``part``; nodata where ``valid`` is False, the
        saturated value where the band saturates (no interval holds its truth)."""
        from .writer import to_dn

        if self._writer is None:
            return
        if u20 is None or u60 is None:
            self.drop("a tile came without intervals (computing them failed)")
            return
        by_band = dict(zip(BANDS_20M, u20, strict=True)) | dict(zip(BANDS_60M, u60, strict=True))
        bands = uncertainty_bands()
        block = np.empty((len(bands), *valid.shape), np.uint16)
        for i, band in enumerate(bands):
            to_dn(by_band[band][rows, cols][None], valid, saturated[band][None], out=block[i : i + 1])
        self.write_block(block, part)

    def dropped(self, reason: str) -> None:
        self.status = UncertaintyStatus("failed", reason, self.status.calibration)
        self._warn(f"uncertainty not written: {reason}")

    def stac(self) -> dict:
        """``status`` (the Item's ``s2sr:uncertainty``) and, when written, ``asset`` (its ``uncertainty`` asset)."""
        out: dict = {"status": self.status.to_dict()}
        if self.written:
            from .stac_item import COG_TYPE

            bands = [{"name": b, "description": f"half-width of the central 90 % interval of the true {b} around the output",
                      "data_type": "uint16", "nodata": 0, "scale": 1e-4, "offset": 0.0, "unit": "reflectance",
                      "spatial_resolution": self.resolution} for b in uncertainty_bands()]
            out["asset"] = {"href": f"./{self.path.name}", "type": COG_TYPE, "roles": ["metadata", "uncertainty"],
                            "title": "Per-pixel uncertainty of the super-resolved bands: half-width of the 90 % interval",
                            "raster:bands": bands, "s2sr:calibration": self.status.calibration}
        return out
