"""After the nets: scene-adaptive detail injection and the consistency projection.

Both are pure functions of arrays over one window (a tile with its context border):

- :func:`regression_detail` fits each coarse band, around every pixel of the scene itself, as a ridge-linear
  function of finer bands degraded to its grid, and returns the fine-scale detail of that fit (prediction at
  10 m minus its degraded-and-upsampled self). Added to the bicubic upsampling it is an estimate that adapts
  to every scene, where a net only knows the scenes it was trained on.
- :func:`project` makes an estimate consistent with its input: degrading the output reproduces the coarse
  band it came from (iterated back-projection with the sensor model of training, :func:`resample.degrade`).
  A net or a regression can add detail; neither may change the radiometry the sensor measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .resample import degrade, separable_filter, upsample

#: Fewest usable coarse pixels per predictor in a fit window before the fit is trusted.
MIN_PIXELS_PER_PREDICTOR = 20
#: Ridge penalty, relative to each predictor's variance in the window.
RIDGE = 1e-3
#: A fit that explains less of the coarse band's local variance than this injects no detail.
MIN_R2 = 0.2
#: Radius of the regression's fit window in coarse pixels: 25 x 25 at 20 m (500 m), 17 x 17 at 60 m (1 km).
REGRESSION_RADIUS = {2: 12, 6: 8}


@dataclass(frozen=True)
class Fusion:
    """How one scale's output is made: ``net_weight`` x net + (1 - net_weight) x regression, then projected
    (``projection_steps`` times; 0 turns the consistency step off).

    Travels in the weights manifest (``fusion``), chosen on selection scenes, never on test scenes.
    """

    net_weight: float = 1.0
    projection_steps: int = 1

    @classmethod
    def from_dict(cls, raw: dict | None) -> Fusion:
        """From a manifest's ``fusion`` (which also records how it was chosen); missing keys take defaults."""
        raw = raw or {}
        return cls(**{k: raw[k] for k in ("net_weight", "projection_steps") if k in raw})

    def to_dict(self) -> dict:
        return {"net_weight": self.net_weight, "projection_steps": self.projection_steps}


#: Radius (coarse pixels) of the filter that inverts degrade-after-upsample in one projection step.
PRECONDITIONER_RADIUS = 4


def projection_reach(factor: int, steps: int) -> int:
    """Fine pixels each side that one output pixel of :func:`project` depends on (for the tile border).

    Per step: the blur radius and the s x s block of ``degrade``, the preconditioner's radius, then the two
    coarse pixels each side (and the one it lies in) that bicubic upsampling reads.
    """
    blur_radius = max(1, int(np.ceil(3.0 / factor)))
    return steps * ((PRECONDITIONER_RADIUS + 4) * factor + blur_radius)


@lru_cache(maxsize=8)
def _preconditioner(factor: int) -> np.ndarray:
    """1-D coarse-grid filter g with g * k close to a delta, where k is ``degrade(upsample(.))`` along one axis.

    Grids are aligned, so degrade-after-upsample is a small symmetric convolution on the coarse grid; its
    least-squares inverse of radius 4 leaves under 0.1 % of a residual, so one step is a projection.
    """
    n = 41
    delta = np.zeros((1, 12, n), np.float32)
    delta[..., n // 2] = 1.0
    k = degrade(upsample(delta, factor), factor)[0, 6].astype(np.float64)
    k = k[n // 2 - 5 : n // 2 + 6]
    width = 2 * PRECONDITIONER_RADIUS + 1
    rows = len(k) + width - 1
    a = np.zeros((rows, width))
    for j in range(width):
        a[j : j + len(k), j] = k
    target = np.zeros(rows)
    target[rows // 2] = 1.0
    return np.linalg.lstsq(a, target, rcond=None)[0].astype(np.float32)


def project(estimate: np.ndarray, coarse: np.ndarray, factor: int, steps: int = 1) -> np.ndarray:
    """Make ``estimate`` consistent with ``coarse``: afterwards ``degrade(estimate)`` reproduces it.

    Preconditioned back-projection: ``estimate += upsample(g * (coarse - degrade(estimate)))``, where ``g``
    inverts degrade-after-upsample on the coarse grid, so one step removes all but about 0.1 % of the
    residual. The correction is smooth (bicubic), so it moves radiometry, not texture. ``coarse`` must be
    filled (no nodata holes): masked pixels are dropped later.
    """
    out = np.array(estimate, dtype=np.float32, copy=True)
    g = _preconditioner(factor)
    for _ in range(steps):
        out += upsample(separable_filter(coarse - degrade(out, factor), g, "symmetric"), factor)
    return out


def highpass(fine: np.ndarray, factor: int) -> np.ndarray:
    """The detail of ``fine`` that a grid ``factor`` times coarser cannot hold: fine - up(degrade(fine))."""
    return fine - upsample(degrade(fine, factor), factor)


def regression_reach(factor: int) -> int:
    """Fine pixels each side that :func:`regression_detail` reads: its fit window, the predictors' degrading
    and high-pass, and the bicubic upsampling of the coefficient maps."""
    blur_radius = max(1, int(np.ceil(3.0 / factor)))
    return (REGRESSION_RADIUS[factor] + 3 + 2) * factor + blur_radius


def regression_detail(
    predictors: np.ndarray, coarse: np.ndarray, factor: int, usable: np.ndarray, crop: int = 0
) -> np.ndarray:
    """Fine-scale detail of ``coarse`` (bands, h, w) predicted from ``predictors`` (p, h*f, w*f).

    Each coarse band is fitted, around every coarse pixel, as ridge-linear in the predictors degraded to its
    grid, over a square window of ``REGRESSION_RADIUS`` coarse pixels and only its ``usable`` pixels (valid
    and unsaturated in every band involved). The fit is local, so it follows land cover and never depends
    on where a tile starts; where it is ill-conditioned (too few pixels, too little variance explained) the
    detail fades to zero and the estimate falls back to bicubic. Returns (bands, h*f, w*f), less ``crop``
    fine pixels each side (a multiple of ``factor``): the fits use the whole window, the fine-scale work
    only what the caller keeps.
    """
    radius = REGRESSION_RADIUS[factor]
    n_pred = predictors.shape[0]
    degraded = degrade(predictors, factor)
    x = degraded.astype(np.float64)  # (p, h, w)
    weight = usable.astype(np.float64)
    count = _box_sum(weight, radius)
    n = np.maximum(count, 1.0)
    mean_x = _box_sum(weight * x, radius) / n  # (p, h, w)
    cov = np.empty((*usable.shape, n_pred, n_pred))
    for k in range(n_pred):
        for j in range(k + 1):
            c = _box_sum(weight * x[k] * x[j], radius) / n - mean_x[k] * mean_x[j]
            cov[..., k, j] = cov[..., j, k] = c
    diag = np.einsum("...kk->...k", cov)
    cov[..., range(n_pred), range(n_pred)] = diag * (1 + RIDGE) + 1e-6
    inverse = np.linalg.inv(cov)
    h, w = usable.shape
    c0 = max(0, crop // factor - 4)  # four coarse pixels of margin: bicubic reads two each side
    f0, keep = c0 * factor, crop - c0 * factor
    region = (slice(c0, h - c0), slice(c0, w - c0))
    fine = predictors[:, f0 : h * factor - f0, f0 : w * factor - f0]
    fine_detail = fine - upsample(degraded[(slice(None), *region)], factor)  # highpass, its degrade reused
    enough = count >= MIN_PIXELS_PER_PREDICTOR * (n_pred + 1)
    out_h, out_w = h * factor - 2 * crop, w * factor - 2 * crop
    detail = np.zeros((coarse.shape[0], out_h, out_w), np.float32)
    for b in range(coarse.shape[0]):
        y = coarse[b].astype(np.float64)
        mean_y = _box_sum(weight * y, radius) / n
        var_y = _box_sum(weight * y * y, radius) / n - mean_y**2
        cross = np.stack([_box_sum(weight * x[k] * y, radius) / n - mean_x[k] * mean_y for k in range(n_pred)], axis=-1)
        coef = np.einsum("...kj,...j->...k", inverse, cross)  # (h, w, p)
        r2 = np.einsum("...k,...k->...", coef, cross) / np.maximum(var_y, 1e-6)
        gain = np.clip((r2 - MIN_R2) / MIN_R2, 0.0, 1.0) * enough  # fades in between R2 0.2 and 0.4
        coef = (coef * gain[..., None]).transpose(2, 0, 1).astype(np.float32)[(slice(None), *region)]
        full = np.einsum("khw,khw->hw", upsample(coef, factor), fine_detail)
        detail[b] = full[keep : keep + out_h, keep : keep + out_w]
    return detail


def _box_sum(a: np.ndarray, radius: int) -> np.ndarray:
    """Sum of the last two axes over a (2 radius + 1)^2 window around each pixel, cut at the array's edge."""
    padded = np.zeros((*a.shape[:-2], a.shape[-2] + 1, a.shape[-1] + 1))
    padded[..., 1:, 1:] = a
    table = padded.cumsum(axis=-2).cumsum(axis=-1)
    h, w = a.shape[-2:]
    r0, r1 = np.clip(np.arange(h) - radius, 0, h), np.clip(np.arange(h) + radius + 1, 0, h)
    c0, c1 = np.clip(np.arange(w) - radius, 0, w), np.clip(np.arange(w) + radius + 1, 0, w)
    return (table[..., r1[:, None], c1[None, :]] - table[..., r0[:, None], c1[None, :]]
            - table[..., r1[:, None], c0[None, :]] + table[..., r0[:, None], c0[None, :]])


def usable_coarse(valid_fine: np.ndarray, saturated_coarse: np.ndarray, valid_coarse: np.ndarray, factor: int) -> np.ndarray:
    """Coarse pixels a regression may learn from: valid and unsaturated, and every fine pixel under them valid."""
    fine_ok = degrade(valid_fine[None].astype(np.float32), factor)[0] > 0.999
    return valid_coarse & fine_ok & ~saturated_coarse.any(axis=0)


def fuse(net: np.ndarray | None, bicubic: np.ndarray, detail: np.ndarray, fusion: Fusion) -> np.ndarray:
    """``net_weight`` x net + (1 - net_weight) x (bicubic + detail); without a net, the regression alone."""
    regression = bicubic + detail
    if net is None or fusion.net_weight <= 0:
        return regression
    if fusion.net_weight >= 1:
        return net
    return fusion.net_weight * net + (1 - fusion.net_weight) * regression
