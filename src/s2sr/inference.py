"""Super-resolution of one window: harmonised band groups in, 10 m bands out.

This is the one place the nets meet data. It fills nodata so it does not smear into valid pixels,
upsamples the coarse groups bicubically, runs the x2 and x6 nets, fuses them with a scene-adaptive
regression, projects the result onto the measured bands (``refine``) and carries validity and saturation
through. Callers (the array API, the product pipeline, evaluation) only decide which windows to read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .bands import BANDS_20M, BANDS_60M, SATURATED_DN
from .errors import InputParametersError
from .model import DEFAULT_PRECISION, LoadedNet, load_net, resolve_device, resolve_precision, run_net, weights_name
from .quiet import load_keras_quietly
from .refine import Fusion, fit_predictors, fuse, project, projection_reach, regression_reach, usable_coarse
from .resample import inner, nearest_upsample, upsample_inner
from .runner import StageTimes
from .sensor import SensorModel
from .tiling import Window

LEVELS = ("L1C", "L2A")
#: Nodata is filled from valid pixels up to this many 10 m pixels away, per pass (rows, then columns).
FILL_REACH = 24

#: The least value a super-resolved band takes (reflectance x 10000): the fusion and projection can
#: undershoot on dark water and shadow next to bright pixels, and a negative reflectance is wrong whatever
#: the truth; 1, not 0, because DN 0 is nodata. Pointwise and last, so tiles and AOI runs still agree.
REFLECTANCE_FLOOR_DN = 1.0


@dataclass(frozen=True)
class BandGroup:
    """Bands of one resolution over a window: reflectance x 10000, and where they hold data or saturate."""

    values: np.ndarray  # (bands, h, w) float32, harmonised (no offset)
    valid: np.ndarray  # (h, w) bool: every band of the group has data here
    saturated: np.ndarray  # (bands, h, w) bool

    @classmethod
    def from_dn(cls, dn: np.ndarray, offsets: Sequence[float] | None = None, quantification: float = 10000.0):
        """Harmonise raw DN: reflectance x 10000 = (DN + offset) / quantification x 10000; DN 0 is nodata."""
        dn = np.asarray(dn)
        valid = np.all(dn != 0, axis=0)
        saturated = dn == SATURATED_DN
        values = dn.astype(np.float32)
        if offsets is not None:
            values += np.asarray(offsets, dtype=np.float32).reshape(-1, 1, 1)
        if quantification != 10000.0:
            values *= np.float32(10000.0 / quantification)
        return cls(values, valid, saturated)

    def pad(self, before: tuple[int, int], after: tuple[int, int]) -> BandGroup:
        """Mirror the group outwards, so edge pixels get a plausible context instead of a cliff."""
        if not any(before + after):
            return self
        pad2 = ((before[0], after[0]), (before[1], after[1]))
        pad3 = ((0, 0), *pad2)
        return BandGroup(
            np.pad(self.values, pad3, mode="symmetric"),
            np.pad(self.valid, pad2, mode="symmetric"),
            np.pad(self.saturated, pad3, mode="symmetric"),
        )

    def filled(self, reach: int) -> np.ndarray:
        """Values with nodata filled from the nearest valid pixel (see :func:`fill_nearest`)."""
        return fill_nearest(self.values, self.valid, reach)


def fill_nearest(values: np.ndarray, valid: np.ndarray, reach: int) -> np.ndarray:
    """Nodata takes the nearest valid value in its row (up to ``reach`` px away), then what is still empty the
    nearest filled value in its column (up to ``reach``); what is left, the band's mean over valid pixels.

    Local and deterministic: a pixel within ``reach`` of data gets the same value whatever window it is read
    in, so output near a swath edge does not depend on the tile grid, and the edge is extended, not smeared
    with a window-wide mean. Beyond ``2 * reach`` from data nothing is valid to write anyway.
    """
    if valid.all():
        return values.copy()
    out, ok = values.copy(), valid.copy()
    for axis in (-1, -2):  # along rows, then along columns (in place, no transposed copies)
        _fill_lines(out, ok, reach, axis)
    if not ok.all():
        count = np.count_nonzero(valid)  # summed in place: no copy of the valid pixels
        means = values.sum(axis=(1, 2), where=valid, dtype=np.float64) / max(count, 1)
        np.copyto(out, means[:, None, None].astype(np.float32), where=~ok)
    return out


def _fill_lines(values: np.ndarray, valid: np.ndarray, reach: int, axis: int) -> None:
    """Fill ``values`` (bands, h, w) in place along ``axis`` (-1: in each row, -2: in each column) from the
    nearest ``valid`` pixel (ties: the one before) within ``reach``; mark what was filled in ``valid``.

    Only the span of lines with a gap is worked on: a swath edge crosses some of a tile's lines, not all.
    """
    gaps = np.flatnonzero(~valid.all(axis=axis))
    if not len(gaps):
        return
    lines = slice(gaps[0], gaps[-1] + 1)
    span = (lines, slice(None)) if axis == -1 else (slice(None), lines)
    v, ok = values[(slice(None), *span)], valid[span]
    n = ok.shape[axis]
    idx = np.arange(n) if axis == -1 else np.arange(n)[:, None]
    before = np.maximum.accumulate(np.where(ok, idx, -1), axis=axis)
    after = np.flip(np.minimum.accumulate(np.flip(np.where(ok, idx, n), axis=axis), axis=axis), axis=axis)
    far = n + reach + 1
    d_before = np.where(before >= 0, idx - before, far)
    d_after = np.where(after < n, after - idx, far)
    source = np.clip(np.where(d_before <= d_after, before, after), 0, n - 1)
    reached = np.minimum(d_before, d_after) <= reach
    filled = np.take_along_axis(v, np.broadcast_to(source, v.shape), axis=axis)
    np.copyto(v, filled, where=reached & ~ok)
    ok |= reached


@dataclass(frozen=True)
class WindowResult:
    """Super-resolved bands of a window at 10 m, with the pixels they are valid at."""

    b10: np.ndarray  # (4, h, w) float32: the 10 m input, harmonised
    saturated10: np.ndarray  # (4, h, w) bool
    b20: np.ndarray  # (6, h, w) float32
    b60: np.ndarray | None  # (2, h, w) float32
    valid: np.ndarray  # (h, w) bool: every input band had data
    saturated20: np.ndarray  # (6, h, w) bool
    saturated60: np.ndarray | None
    u20: np.ndarray | None = None  # (6, h, w) float32: half-widths of the 90 % intervals (DN), with a calibration
    u60: np.ndarray | None = None  # (2, h, w)


@dataclass(frozen=True)
class Nets:
    """The x2 and (optional) x6 nets for one product level, and how their output is refined."""

    x2: LoadedNet
    x6: LoadedNet | None
    consistency: bool = True  # False: no projection (for comparison only)
    overrides: tuple[tuple[int, Fusion], ...] = ()  # (scale, Fusion) replacing the manifests' (evaluation)
    threads: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))  # for the numpy stages, per band
    sensor: SensorModel = field(default_factory=SensorModel.paper)  # the blur every degrading stage assumes
    adaptation: tuple = ()  # what run-time adaptation did to these nets (``adapt.Adaptation`` per net)
    #: Whether the product's own pairs one level down let the x6 net run (``x6_decision.X6Decision``); None: not
    #: judged (the manifest's weight at the product's blur, or the caller's override).
    x6_decision: Any = None
    #: What turns each pixel's error scale into its interval (``uncertainty.Calibration``); None: no uncertainty.
    calibration: Any = None

    def fusion(self, scale: int) -> Fusion:
        """The manifest's fusion for a scale (or an override) at the sensor model's blur of its bands, the x6
        weight as the product's decision has it, the projection dropped without consistency."""
        net = self.x2 if scale == 2 else self.x6
        override = dict(self.overrides).get(scale)
        fusion = override or Fusion.from_dict(net.manifest.fusion if net else None)
        fusion = fusion.at_blur(float(np.mean(self.sensor.sigmas(BANDS_20M if scale == 2 else BANDS_60M))))
        if scale == 6 and override is None and self.x6_decision is not None:
            fusion = replace(fusion, net_weight=self.x6_decision.net_weight)
        return fusion if self.consistency else replace(fusion, projection_steps=0)

    def fusion_record(self) -> dict[str, dict]:
        """The fusion each scale ran with (a manifest's per-blur weight taken at this product's blur, the x6
        weight as the product's decision has it, with its reason), for the output's tags and STAC Item."""
        scales = (2, 6) if self.x6 is not None else (2,)
        record = {f"x{s}": self.fusion(s).to_dict() for s in scales}
        if self.x6 is not None and self.x6_decision is not None:
            record["x6"]["decision"] = self.x6_decision.to_dict()
        return record

    def sigma(self, scale: int) -> float:
        """The widest blur of a scale's bands: what the borders are sized for."""
        return self.sensor.max_sigma(scale)

    def reach(self, scale: int) -> int:
        """Fine pixels each side that the refinement of this scale's output reads beyond the net's output."""
        return projection_reach(scale, self.fusion(scale).projection_steps, self.sigma(scale))

    @property
    def border(self) -> int:
        """Context border in 10 m pixels, a multiple of 6: what the manifests ask, or what refinement needs.

        A pixel's output reads the bicubic upsampling of its 60 m neighbours (18 px) and the nets' receptive
        radius, or the regression's fit window (both, for a net refining the regression), then the projection's
        reach and, near nodata, the fill's; a border that covers them all makes tiled output equal untiled.
        """
        nets = [(2, self.x2)] + ([(6, self.x6)] if self.x6 is not None else [])
        fill = 2 * FILL_REACH  # a filled pixel reads this far

        def estimate_reach(scale: int, net: LoadedNet) -> int:
            radius = net.manifest.architecture.receptive_radius
            if net.manifest.residual_to == "regression":  # the net reads the regression's estimate around it
                return radius + regression_reach(scale, self.sigma(scale))
            # x6: the product's decision may leave the regression alone, so a border fixed before it (a cube's
            # chunks are read with one) holds its reach whatever the decision
            fused = self.fusion(scale).net_weight < 1 or scale == 6
            regression = regression_reach(scale, self.sigma(scale)) if fused else 0
            return max(18 + radius, regression)

        need = max(fill + estimate_reach(s, n) + self.reach(s) for s, n in nets)
        asked = max(n.manifest.context_border for _, n in nets)
        return max(asked, -(-need // 6) * 6)


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise InputParametersError(f"level must be 'L1C' or 'L2A', got {level!r}")
    return level


@lru_cache(maxsize=4)
def _load(level: str, with_60m: bool, weights_dir: Path | None, device: str, precision: str) -> tuple[LoadedNet, LoadedNet | None]:
    x2 = load_net(weights_name(2, level, weights_dir), weights_dir, device, precision)
    x6 = load_net(weights_name(6, level, weights_dir), weights_dir, device, precision) if with_60m else None
    return x2, x6


def load_nets(
    level: str, with_60m: bool = True, weights_dir: str | Path | None = None, consistency: bool = True, device: str = "auto",
    precision: str = DEFAULT_PRECISION,
) -> Nets:
    """The nets for a product level on ``device`` (``auto``, ``cpu`` or ``gpu``) in ``precision`` (``auto``,
    ``float32`` or ``bfloat16``, see ``model.resolve_precision``), loaded once per process."""
    check_level(level)
    weights_dir = None if weights_dir is None else Path(weights_dir)  # a str from a user works as well
    load_keras_quietly()  # TensorFlow's loading and retracing lines kept from the user's stderr (``quiet``)
    placed = resolve_device(device)
    return Nets(*_load(level, with_60m, weights_dir, placed, resolve_precision(precision, placed)), consistency=consistency)


@dataclass(frozen=True)
class _ScaleWork:
    """What one scale (x2 or x6) of a window needs: the net, its inputs, the measured band, what it may learn from."""

    scale: int
    net: LoadedNet
    fusion: Fusion
    inputs: list[np.ndarray]  # the net's: x10, up20 (, up60), the window less crop(border); the last is the estimate the
    # net's output adds to: bicubic, or for a net refining the regression bicubic plus its detail (``on_regression``)
    coarse: np.ndarray  # the measured band, filled, over the whole window
    usable: np.ndarray  # coarse pixels the regression may learn from
    predictors: np.ndarray  # what the regression fits the coarse bands on, over the whole window (10 m grid)
    sigmas: tuple[float, ...]  # each coarse band's blur (the sensor model)
    fit_groups: list[tuple[float, list[int]]]  # bands sharing one regression fit, at their mean blur

    @property
    def sigma(self) -> float:
        return max(self.sigmas)

    @property
    def on_regression(self) -> bool:
        """Whether the net refines the regression's estimate (its manifest's ``residual_to``) instead of bicubic."""
        return self.net.manifest.residual_to == "regression"

    @property
    def needs_regression(self) -> bool:
        """Whether the regression runs: its estimate is fused with the net's, or the net refines it."""
        return self.fusion.net_weight < 1 or self.on_regression

    def crop(self, border: int) -> int:
        """Fine pixels each side the net can skip: its output reaches the kept pixels only through the projection."""
        return net_crop(self.scale, self.net, self.fusion, border, self.sigma)

    def start(self, border: int) -> int:
        """Fine pixels each side that the fused estimate need not cover (whole coarse pixels): the projection
        of the kept pixels reads no further out. The net's output reaches in from ``crop``, so its edge is cut."""
        reach = projection_reach(self.scale, self.fusion.projection_steps, self.sigma)
        return max(self.crop(border), (border - reach) // self.scale * self.scale)



def net_crop(scale: int, net: LoadedNet, fusion: Fusion, border: int, sigma: float | None = None) -> int:
    """Fine pixels each side of a window that a scale's net and its bicubic estimate need not cover (a multiple
    of 6): the net's output reaches the kept pixels only through the projection."""
    reach = projection_reach(scale, fusion.projection_steps, sigma)
    return max(0, (border - reach - net.manifest.architecture.receptive_radius) // 6 * 6)


def _band_chunks(n_bands: int, threads: int) -> list[slice]:
    """Split a group's bands for ``threads`` workers: every per-band stage is independent across bands."""
    parts = min(threads, n_bands)
    edges = [round(i * n_bands / parts) for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


class _PerBand:
    """Runs a function of a band slice over ``threads`` chunks of a group's bands, in threads (numpy releases
    the GIL). Every per-band stage is independent across bands, so the split changes no bit of the output."""

    def __init__(self, threads: int):
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="s2sr-array") if threads > 1 else None

    def __call__(self, fn: Callable[[slice], np.ndarray], n_bands: int) -> np.ndarray:
        chunks = _band_chunks(n_bands, self.threads)
        if self._pool is None or len(chunks) == 1:
            return fn(slice(None))
        return np.concatenate(list(self._pool.map(fn, chunks)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def _estimate_all(work: list[_ScaleWork], border: int, per_band: _PerBand, times: StageTimes) -> list[np.ndarray]:
    """Each scale's bands over the window less ``border``: net and regression fused, then projected.

    Three phases, so no phase competes with another for the cores: the regressions (numpy, bands split over
    the threads), the nets (which use every core themselves), then fusion and projection (bands split again).
    A net that refines the regression takes its estimate as its last input, over the net's whole input extent;
    fusion then mixes the net with that same estimate.
    """
    work = list(work)
    details: list[np.ndarray | None] = [None] * len(work)
    with times.timing("regression"):
        for i, w in enumerate(work):
            if w.needs_regression:
                details[i] = _regression(w, border, per_band, w.crop(border) if w.on_regression else w.start(border))
                if w.on_regression:
                    work[i] = replace(w, inputs=[*w.inputs[:-1], w.inputs[-1] + details[i]])
                    details[i] = None  # in the estimate already
    nets_out: list[np.ndarray | None] = [None] * len(work)
    with times.timing("nets"):
        for i, w in enumerate(work):
            if w.fusion.net_weight > 0:
                nets_out[i] = run_net(w.net, w.inputs)
    with times.timing("fusion and projection"):
        return [per_band(lambda b, w=w, net=net, detail=detail: _refine(w, net, detail, border, b), len(w.coarse))
                for w, net, detail in zip(work, nets_out, details, strict=True)]


def _regression(work: _ScaleWork, border: int, per_band: _PerBand, crop: int) -> np.ndarray:
    """The regression's detail for every band of a scale, the window less ``crop``: one predictor fit per blur
    the bands share."""
    detail = None
    for sigma, idx in work.fit_groups:
        fit = fit_predictors(work.predictors, work.scale, work.usable, crop, planes=per_band, sigma=sigma)
        part = per_band(lambda b, fit=fit, idx=idx: fit.detail(work.coarse[idx][b]), len(idx))
        if detail is None:
            detail = np.empty((len(work.coarse), *part.shape[1:]), np.float32)
        detail[idx] = part
    return detail


def _refine(work: _ScaleWork, net_out: np.ndarray | None, detail: np.ndarray | None, border: int, bands: slice) -> np.ndarray:
    """Fuse net and regression for some bands, project them onto the measured band, cut the border off."""
    start = work.start(border)
    cut = start - work.crop(border)  # the net's input, and so its output and the estimate it adds to, start at crop
    base = inner(work.inputs[-1][bands], cut)  # bicubic, or the regression's estimate for a net refining it
    estimate = fuse(None if net_out is None else inner(net_out[bands], cut), base,
                    np.zeros_like(base) if detail is None else detail[bands], work.fusion)
    if work.fusion.projection_steps:
        coarse = inner(work.coarse[bands], start // work.scale)
        sigmas = work.sigmas[bands]
        for sigma in dict.fromkeys(sigmas):
            idx = [i for i, t in enumerate(sigmas) if t == sigma]
            estimate[idx] = project(estimate[idx], coarse[idx], work.scale, work.fusion.projection_steps, sigma)
    return inner(estimate, border - start)


def superresolve_groups(
    nets: Nets, g10: BandGroup, g20: BandGroup, g60: BandGroup | None, border: int = 0, times: StageTimes | None = None,
) -> WindowResult:
    """Super-resolve one window whose groups share a 60 m-aligned extent; returns it less ``border``.

    Per scale: the net's estimate and the scene-adaptive regression estimate (fitted on this window's valid,
    unsaturated pixels) are fused with the manifest's weights, then projected onto the measured coarse band.
    The net runs only where its output can still reach the kept pixels through the projection, so a wide
    border for the projection costs reading, not convolutions. ``times`` collects the seconds of each phase
    (prepare, regression, nets, fusion and projection).
    """
    if border % 6:
        raise ValueError(f"border must be a multiple of 6 (whole 60 m pixels), got {border}")
    times = times if times is not None else StageTimes()
    with_60m = g60 is not None and nets.x6 is not None
    crops = {2: net_crop(2, nets.x2, nets.fusion(2), border, nets.sigma(2))}
    if with_60m:
        crops[6] = net_crop(6, nets.x6, nets.fusion(6), border, nets.sigma(6))
    lead = min(crops.values())  # no net input reaches further out: the bicubic estimates skip it

    per_band = _PerBand(nets.threads)
    try:
        with times.timing("prepare"):
            x10, c20 = g10.filled(FILL_REACH), g20.filled(FILL_REACH // 2)
            up20 = per_band(lambda b: upsample_inner(c20[b], 2, lead), len(c20))
            net_in = [inner(x10, crops[2]), inner(up20, crops[2] - lead)]
            work = [_ScaleWork(2, nets.x2, nets.fusion(2), net_in, c20, usable_coarse(g10.valid, g20.saturated, g20.valid, 2),
                               x10, nets.sensor.sigmas(BANDS_20M), nets.sensor.fit_groups(BANDS_20M))]
            if with_60m:
                c60 = g60.filled(FILL_REACH // 6)
                usable60 = usable_coarse(g10.valid, g60.saturated, g60.valid, 6)
                up60 = per_band(lambda b: upsample_inner(c60[b], 6, crops[6]), len(c60))
                net_in = [inner(x10, crops[6]), inner(up20, crops[6] - lead), up60]
                work.append(_ScaleWork(6, nets.x6, nets.fusion(6), net_in, c60, usable60, x10, nets.sensor.sigmas(BANDS_60M),
                                       nets.sensor.fit_groups(BANDS_60M)))
        estimates = _estimate_all(work, border, per_band, times)
    finally:
        per_band.close()
    for estimate in estimates:  # reflectance is never negative: the floor the files' DN have too (0 is nodata)
        np.maximum(estimate, REFLECTANCE_FLOOR_DN, out=estimate)
    u20 = u60 = None
    if nets.calibration is not None:
        with times.timing("uncertainty"):
            try:
                u20 = nets.calibration.interval(2, estimates[0], inner(up20, border - lead))
                if with_60m:
                    u60 = nets.calibration.interval(6, estimates[1], inner(up60, border - crops[6]))
            except Exception:  # the intervals never cost the bands: a tile without them drops the file, with a warning
                u20 = u60 = None
    valid = inner(g10.valid, border) & nearest_upsample(inner(g20.valid, border // 2), 2)
    sat60 = None
    if with_60m:
        valid &= nearest_upsample(inner(g60.valid, border // 6), 6)
        sat60 = nearest_upsample(inner(g60.saturated, border // 6), 6)
    return WindowResult(
        inner(g10.values, border), inner(g10.saturated, border), estimates[0], estimates[1] if len(estimates) > 1 else None,
        valid, nearest_upsample(inner(g20.saturated, border // 2), 2), sat60, u20, u60,
    )


Reader = Callable[[Window], tuple[BandGroup, BandGroup, BandGroup | None]]


def superresolve_tile(nets: Nets, read: Reader, raster: Window, tile: Window) -> WindowResult:
    """Super-resolve ``tile`` of ``raster``: read it with its context border, mirror beyond the raster."""
    return superresolve_groups(nets, *read_tile(read, raster, tile, nets.border), border=nets.border)


def read_tile(read: Reader, raster: Window, tile: Window, border: int) -> list[BandGroup | None]:
    """The groups of ``tile`` grown by ``border``: read inside ``raster``, mirrored beyond it."""
    context = tile.grow(border)
    inside = context.intersection(raster)
    assert inside is not None
    before = (inside.row - context.row, inside.col - context.col)
    after = (context.row_stop - inside.row_stop, context.col_stop - inside.col_stop)
    groups = read(inside)
    padded = []
    for group, factor in zip(groups, (1, 2, 6), strict=True):
        if group is None:
            padded.append(None)
            continue
        padded.append(group.pad((before[0] // factor, before[1] // factor), (after[0] // factor, after[1] // factor)))
    return padded
