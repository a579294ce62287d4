"""After the nets: scene-adaptive detail injection and the consistency projection.

Both are pure functions of arrays over one window (a tile with its context border):

- :func:`regression_detail` fits each coarse band, on the window itself, as a ridge-linear function of finer
  bands degraded to its grid, and returns the fine-scale detail of that fit (prediction at 10 m minus its
  degraded-and-upsampled self). Added to the bicubic upsampling it is an estimate that adapts to every
  scene, where a net only knows the scenes it was trained on.
- :func:`project` makes an estimate consistent with its input: degrading the output reproduces the coarse
  band it came from (iterated back-projection with the sensor model of training, :func:`resample.degrade`).
  A net or a regression can add detail; neither may change the radiometry the sensor measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .resample import degrade, upsample

#: Fewest valid coarse pixels per predictor before a regression is trusted; below it, no detail (bicubic).
MIN_PIXELS_PER_PREDICTOR = 20
#: Ridge penalty on standardised predictors, relative to the pixel count.
RIDGE = 1e-3
#: A fit that explains less of the coarse band's variance than this injects no detail.
MIN_R2 = 0.2


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


def _filter2d(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable convolution of the last two axes with a symmetric 1-D filter, edges mirrored."""
    r = len(g) // 2
    out = a
    for axis in (a.ndim - 2, a.ndim - 1):
        pad = [(0, 0)] * a.ndim
        pad[axis] = (r, r)
        p = np.pad(out, pad, mode="symmetric")
        n = out.shape[axis]
        acc = np.zeros_like(out)
        for i, w in enumerate(g):
            acc += w * np.take(p, np.arange(i, i + n), axis=axis)
        out = acc
    return out


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
        out += upsample(_filter2d(coarse - degrade(out, factor), g), factor)
    return out


def highpass(fine: np.ndarray, factor: int) -> np.ndarray:
    """The detail of ``fine`` that a grid ``factor`` times coarser cannot hold: fine - up(degrade(fine))."""
    return fine - upsample(degrade(fine, factor), factor)


def regression_detail(
    predictors: np.ndarray, coarse: np.ndarray, factor: int, usable: np.ndarray
) -> np.ndarray:
    """Fine-scale detail of ``coarse`` (bands, h, w) predicted from ``predictors`` (p, h*f, w*f).

    Each coarse band is fitted as ridge-linear in the predictors degraded to its grid, on ``usable`` coarse
    pixels (valid and unsaturated in every band involved), with one robust refit that drops residuals beyond
    four MADs (clouds, water edges, glint). A band whose fit is ill-conditioned (too few pixels, too little
    variance explained) gets no detail: its estimate falls back to bicubic. Returns (bands, h*f, w*f).
    """
    n_pred = predictors.shape[0]
    detail = np.zeros((coarse.shape[0], *predictors.shape[1:]), np.float32)
    if usable.sum() < MIN_PIXELS_PER_PREDICTOR * (n_pred + 1):
        return detail
    x = degrade(predictors, factor)[:, usable].astype(np.float64)  # (p, n)
    mean, std = x.mean(axis=1, keepdims=True), x.std(axis=1, keepdims=True)
    keep = std[:, 0] > 1e-3
    if not keep.any():
        return detail
    xs = ((x[keep] - mean[keep]) / std[keep]).T  # (n, k)
    fine_detail = highpass(predictors[keep], factor)  # (k, H, W)
    for b in range(coarse.shape[0]):
        y = coarse[b][usable].astype(np.float64)
        coef = _robust_ridge(xs, y)
        if coef is None:
            continue
        scaled = (coef / std[keep, 0]).astype(np.float32)
        detail[b] = np.tensordot(scaled, fine_detail, axes=1)
    return detail


def _robust_ridge(xs: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Ridge coefficients of standardised predictors, refitted once without outliers; None if unreliable."""
    rows = np.ones(len(y), bool)
    coef = None
    for _ in range(2):
        xr, yr = xs[rows], y[rows]
        if len(yr) < MIN_PIXELS_PER_PREDICTOR * (xs.shape[1] + 1):
            return None
        xc = xr - xr.mean(axis=0)
        yc = yr - yr.mean()
        gram = xc.T @ xc + RIDGE * len(yr) * np.eye(xs.shape[1])
        coef = np.linalg.solve(gram, xc.T @ yc)
        resid = yc - xc @ coef
        mad = np.median(np.abs(resid - np.median(resid))) * 1.4826
        if mad <= 0:
            break
        rows = rows.copy()
        rows[rows] = np.abs(resid - np.median(resid)) <= 4 * mad
    var = yc.var()
    if var <= 0 or 1 - resid.var() / var < MIN_R2:
        return None
    return coef


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
