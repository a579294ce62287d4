"""Estimate a product's sensor model from the product itself.

A coarse band is, up to noise and what no 10 m band predicts, a linear mix of the 10 m bands seen through
its own blur. So for each candidate blur the 10 m bands are degraded to the coarse grid and every coarse
band is fitted as ridge-linear in them; the blur under which the fit explains most of the band (the highest
R^2, pooled over a fixed set of windows) is the one the product has. The windows sit at fixed places of the
product grid (:func:`estimation_windows`), so an AOI run, a whole-product run and any tile size share the
same model. Where the estimate cannot be trusted (few usable pixels, a fit that explains little, a flat
criterion) the documented MTF kernel stays.

The criterion runs high for bands the 10 m bands predict poorly (SWIR: the wider blur smooths away what no
predictor explains), so B11 and B12 are bounded by the red-edge estimate and the documented ratio between
the groups' blurs. B1 and B9 (whose fits on a small scene rest on a few dozen coarse pixels) share one
estimate, from their pooled curve, spread by their documented ratio.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .bands import BANDS_20M, BANDS_60M
from .resample import degrade
from .sensor import GROUPS, MAX_SIGMA, SensorModel, mtf_sigma
from .tiling import Window

#: Candidate blurs (fine pixels) per factor; the best is refined between its neighbours by a parabola.
SIGMA_STEP = {2: 0.1, 6: 0.25}
#: Side of an estimation window in 10 m pixels (a multiple of 36), and windows per product side.
WINDOW_SIZE = 360
WINDOWS_PER_SIDE = 3
#: Fewest usable coarse pixels, pooled, for an estimate; a best fit must explain at least this much.
MIN_PIXELS = {2: 400, 6: 80}
MIN_R2 = 0.5
#: R^2 must vary at least this much over the candidates, or the blur is not identifiable here.
MIN_R2_RANGE = 1e-3
RIDGE = 1e-3


def estimation_windows(height: int, width: int) -> list[Window]:
    """Fixed product-grid windows the blur is measured on: a 3 x 3 grid of 360 px windows centred in equal
    parts of the raster (aligned to 36 px); a raster too small for that gives one window, all of it (whole
    60 m pixels)."""
    size = WINDOW_SIZE
    if height < size * WINDOWS_PER_SIDE or width < size * WINDOWS_PER_SIDE:
        h, w = height // 6 * 6, width // 6 * 6
        return [Window(0, 0, h, w)] if h and w else []
    out = []
    for i in range(WINDOWS_PER_SIDE):
        for j in range(WINDOWS_PER_SIDE):
            row = ((2 * i + 1) * height // (2 * WINDOWS_PER_SIDE) - size // 2) // 36 * 36
            col = ((2 * j + 1) * width // (2 * WINDOWS_PER_SIDE) - size // 2) // 36 * 36
            out.append(Window(row, col, size, size))
    return out


@dataclass(frozen=True)
class Sample:
    """One estimation window: filled 10 m bands, a coarse group, and which coarse pixels may be fitted."""

    fine: np.ndarray  # (4, h, w) float32, nodata filled
    coarse: np.ndarray  # (bands, h/f, w/f) float32
    usable: np.ndarray  # (h/f, w/f) bool
    factor: int


def r2_curves(samples: Sequence[Sample], sigmas: np.ndarray) -> np.ndarray:
    """(len(sigmas), bands) R^2 of the ridge-linear fit of each coarse band, pooled over the samples (each
    window has its own coefficients)."""
    n_bands = samples[0].coarse.shape[0]
    sse = np.zeros((len(sigmas), n_bands))
    sst = np.zeros(n_bands)
    for s in samples:
        y = s.coarse[:, s.usable].astype(np.float64).T  # (n, bands)
        if len(y) < 10:
            continue
        y = y - y.mean(axis=0)
        sst += (y**2).sum(axis=0)
        for i, sigma in enumerate(sigmas):
            x = degrade(s.fine, s.factor, float(sigma))[:, s.usable].astype(np.float64).T
            x = x - x.mean(axis=0)
            gram = x.T @ x
            gram[np.diag_indices_from(gram)] *= 1 + RIDGE
            coef = np.linalg.solve(gram + 1e-6 * np.eye(len(gram)), x.T @ y)
            sse[i] += ((y - x @ coef) ** 2).sum(axis=0)
    return 1.0 - sse / np.maximum(sst, 1e-9)


def _best(sigmas: np.ndarray, score: np.ndarray) -> float:
    """The candidate with the highest score, refined by a parabola through it and its neighbours."""
    i = int(np.argmax(score))
    if 0 < i < len(sigmas) - 1:
        a, b, c = score[i - 1], score[i], score[i + 1]
        denom = a - 2 * b + c
        if denom < 0:
            return float(sigmas[i] + 0.5 * (a - c) / denom * (sigmas[1] - sigmas[0]))
    return float(sigmas[i])


def estimate_sensor_model(windows: Iterable[dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]) -> SensorModel:
    """The sensor model of a product from its estimation windows.

    Each window is ``{factor: (fine, coarse, usable)}``: the filled 10 m bands, the coarse group (all its
    bands, in the nets' order) and its usable pixels. The R^2 curves are computed once per factor for all its
    bands; each group's estimate is then taken from its bands' curves. Groups that cannot be estimated (too
    few usable pixels, a fit explaining less than ``MIN_R2``, a flat criterion) keep the documented MTF
    kernel (source ``mtf``).
    """
    by_factor: dict[int, list[Sample]] = {2: [], 6: []}
    for window in windows:
        for factor, (fine, coarse, usable) in window.items():
            by_factor[factor].append(Sample(fine, coarse, usable, factor))
    sigmas: dict[str, float] = {}
    for factor, bands in ((2, BANDS_20M), (6, BANDS_60M)):
        samples = by_factor[factor]
        if sum(int(s.usable.sum()) for s in samples) < MIN_PIXELS[factor]:
            continue
        grid = np.round(np.arange(0.0, MAX_SIGMA[factor] + 1e-9, SIGMA_STEP[factor]), 4)
        curves = r2_curves(samples, grid)  # (candidates, bands)
        for group in (g for g in GROUPS if g[0] in bands):
            group_curves = curves[:, [bands.index(b) for b in group]]
            score = group_curves.mean(axis=1)
            if score.max() < MIN_R2 or score.max() - score.min() < MIN_R2_RANGE:
                continue
            if group == BANDS_60M:  # one blur for both, from their pooled curve, spread by the documented ratio
                shared = min(max(_best(grid, score), 0.0), MAX_SIGMA[factor])
                doc = np.mean([mtf_sigma(b, 6) for b in group])
                found = [shared * mtf_sigma(b, 6) / doc for b in group]
            else:
                found = [min(max(_best(grid, group_curves[:, i]), 0.0), MAX_SIGMA[factor]) for i in range(len(group))]
            if group == BANDS_20M[4:]:  # SWIR: bounded by the red-edge estimate and the documented ratio
                red_edge = BANDS_20M[:4]
                base = np.mean([sigmas.get(b, mtf_sigma(b, 2)) for b in red_edge])
                doc = np.mean([mtf_sigma(b, 2) for b in red_edge])
                found = [float(np.clip(s, base, base * mtf_sigma(b, 2) / doc)) for s, b in zip(found, group, strict=True)]
            sigmas.update(zip(group, found, strict=True))
    return SensorModel.from_sigmas(sigmas)


#: How a product's sensor model is chosen: measured on the product, the documented MTF, or the paper's.
CHOICES = ("estimate", "mtf", "paper")
#: The one default of every entry point (library, CLI, batch, block).
DEFAULT_SENSOR_MODEL = "estimate"


def sensor_model_for(choice: str | SensorModel, read, height: int, width: int) -> SensorModel:
    """The sensor model a run uses: ``estimate`` measures it on the product's estimation windows through
    ``read`` (a window of the raster -> its 10, 20 and 60 m band groups), ``mtf`` and ``paper`` are fixed."""
    if isinstance(choice, SensorModel):
        return choice
    if choice == "paper":
        return SensorModel.paper()
    if choice == "mtf":
        return SensorModel.documented()
    if choice != "estimate":
        from .errors import InputParametersError

        raise InputParametersError(f"sensor_model must be one of {', '.join(CHOICES)}, got {choice!r}")
    from .inference import FILL_REACH
    from .refine import usable_coarse

    def window(w: Window):
        g10, g20, g60 = read(w)
        fine = g10.filled(FILL_REACH)
        groups = {2: (fine, g20.filled(FILL_REACH // 2), usable_coarse(g10.valid, g20.saturated, g20.valid, 2))}
        if g60 is not None:
            groups[6] = (fine, g60.filled(FILL_REACH // 6), usable_coarse(g10.valid, g60.saturated, g60.valid, 6))
        return groups

    return estimate_sensor_model(window(w) for w in estimation_windows(height, width))
