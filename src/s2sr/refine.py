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

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from .resample import degrade, degrade_reach, inner, separable_filter, upsample

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

    ``by_blur``: ``(sigma, net_weight)`` pairs, sigma ascending: the weight as a function of the product's blur
    (the sensor model's mean sigma of the scale's bands, fine pixels), linear between the pairs and constant
    beyond them. A net helps only where the product is blurred as it learnt; a product whose coarse bands are
    sharp gets the regression alone (:meth:`at_blur`). Empty: ``net_weight`` at every blur.

    Travels in the weights manifest (``fusion``), chosen on selection scenes, never on test scenes.
    """

    net_weight: float = 1.0
    projection_steps: int = 1
    by_blur: tuple[tuple[float, float], ...] = ()

    def __post_init__(self):
        sigmas = [s for s, _ in self.by_blur]
        if sigmas != sorted(sigmas) or any(not 0 <= w <= 1 for _, w in self.by_blur):
            raise ValueError(f"by_blur must hold (sigma, weight) pairs, sigma ascending, weight in [0, 1]: {self.by_blur}")

    @classmethod
    def from_dict(cls, raw: dict | None) -> Fusion:
        """From a manifest's ``fusion`` (which also records how it was chosen); missing keys take defaults."""
        raw = raw or {}
        table = raw.get("net_weight_by_blur")
        if table:  # the table replaces the single weight
            by_blur = tuple(zip(table["sigma_px"], table["net_weight"], strict=True))
            return cls(projection_steps=raw.get("projection_steps", 1), by_blur=by_blur)
        return cls(**{k: raw[k] for k in ("net_weight", "projection_steps") if k in raw})

    def to_dict(self) -> dict:
        if not self.by_blur:
            return {"net_weight": self.net_weight, "projection_steps": self.projection_steps}
        return {"net_weight_by_blur": {"sigma_px": [s for s, _ in self.by_blur], "net_weight": [w for _, w in self.by_blur]},
                "projection_steps": self.projection_steps}

    def describe(self) -> str:
        """E.g. ``net weight 0.75, 1 projection step``, or the weight at each blur of a table."""
        if self.by_blur:
            weight = "net weight by blur " + ", ".join(f"{w:g} at {s:g} px" for s, w in self.by_blur)
        else:
            weight = f"net weight {self.net_weight:g}"
        return f"{weight}, {self.projection_steps} projection step{'s' if self.projection_steps != 1 else ''}"

    def at_blur(self, sigma: float) -> Fusion:
        """The fixed fusion of a product whose bands of this scale are blurred by ``sigma`` (fine pixels)."""
        if not self.by_blur:
            return self
        sigmas, weights = zip(*self.by_blur, strict=True)
        return Fusion(round(float(np.interp(sigma, sigmas, weights)), 4), self.projection_steps)


#: Radius (coarse pixels) of the filter that inverts degrade-after-upsample in one projection step.
PRECONDITIONER_RADIUS = 4


def projection_reach(factor: int, steps: int, sigma: float | None = None) -> int:
    """Fine pixels each side that one output pixel of :func:`project` depends on (for the tile border).

    Per step: the blur radius and the s x s block of ``degrade``, the preconditioner's radius, then the two
    coarse pixels each side (and the one it lies in) that bicubic upsampling reads.
    """
    return steps * ((PRECONDITIONER_RADIUS + 4) * factor + degrade_reach(factor, sigma))


@lru_cache(maxsize=32)
def _preconditioner(factor: int, sigma: float | None = None) -> np.ndarray:
    """1-D coarse-grid filter g with g * k close to a delta, where k is ``degrade(upsample(.))`` along one axis.

    Grids are aligned, so degrade-after-upsample is a small symmetric convolution on the coarse grid; its
    least-squares inverse of radius 4 leaves under 0.1 % of a residual, so one step is a projection.
    """
    n = 41
    delta = np.zeros((1, 12, n), np.float32)
    delta[..., n // 2] = 1.0
    k = degrade(upsample(delta, factor), factor, sigma)[0, 6].astype(np.float64)
    k = k[n // 2 - 5 : n // 2 + 6]
    width = 2 * PRECONDITIONER_RADIUS + 1
    rows = len(k) + width - 1
    a = np.zeros((rows, width))
    for j in range(width):
        a[j : j + len(k), j] = k
    target = np.zeros(rows)
    target[rows // 2] = 1.0
    return np.linalg.lstsq(a, target, rcond=None)[0].astype(np.float32)


def project(
    estimate: np.ndarray, coarse: np.ndarray, factor: int, steps: int = 1, sigma: float | None = None,
) -> np.ndarray:
    """Make ``estimate`` consistent with ``coarse``: afterwards ``degrade(estimate)`` reproduces it.

    Preconditioned back-projection: ``estimate += upsample(g * (coarse - degrade(estimate)))``, where ``g``
    inverts degrade-after-upsample on the coarse grid, so one step removes all but about 0.1 % of the
    residual. The correction is smooth (bicubic), so it moves radiometry, not texture. ``coarse`` must be
    filled (no nodata holes): masked pixels are dropped later.
    """
    out = np.array(estimate, dtype=np.float32, copy=True)
    g = _preconditioner(factor, sigma)
    for _ in range(steps):
        out += upsample(separable_filter(coarse - degrade(out, factor, sigma), g, "symmetric"), factor)
    return out


def highpass(fine: np.ndarray, factor: int) -> np.ndarray:
    """The detail of ``fine`` that a grid ``factor`` times coarser cannot hold: fine - up(degrade(fine))."""
    return fine - upsample(degrade(fine, factor), factor)


def regression_reach(factor: int, sigma: float | None = None) -> int:
    """Fine pixels each side that :func:`regression_detail` reads: its fit window, the predictors' degrading
    and high-pass, and the bicubic upsampling of the coefficient maps."""
    return (REGRESSION_RADIUS[factor] + 3 + 2) * factor + degrade_reach(factor, sigma)


#: Maps a function of a plane slice over a stack of ``n`` planes, concatenating the results along axis 0
#: (``inference._PerBand`` splits it over threads). The default runs it once on all planes.
PlaneMap = Callable[[Callable[[slice], np.ndarray], int], np.ndarray]


def _all_planes(fn: Callable[[slice], np.ndarray], n: int) -> np.ndarray:
    return fn(slice(None))


@dataclass(frozen=True)
class PredictorFit:
    """What every coarse band of one scale shares in :func:`regression_detail`: the predictors' window
    statistics, their Cholesky factor and fine-scale detail. Fitted once per window and scale, so bands
    split over threads do not each repeat it."""

    factor: int
    skip: int  # coarse pixels each side that no fit window reads: cut off the inputs before fitting
    c0: int  # coarse pixels each side (of what is left) that need no fit
    keep: int  # fine pixels each side of the fitted region that the caller does not keep
    out_shape: tuple[int, int]
    weight: np.ndarray  # (h, w) float64: 1 where the pixel is usable
    weighted_x: np.ndarray  # (p, h, w) float64: weight x degraded predictors
    n: np.ndarray  # (h', w') usable pixels in each fit window, at least 1
    mean_x: np.ndarray  # (p, h', w')
    chol: list[list[np.ndarray]]  # lower Cholesky factor of the predictors' ridge covariance, (h', w') planes
    enough: np.ndarray  # (h', w') bool: enough usable pixels to trust a fit
    fine_detail: np.ndarray  # (p, H, W) float32: the predictors' high-pass over the fitted region

    def window_sum(self, a: np.ndarray, times: np.ndarray | None = None) -> np.ndarray:
        return _box_sum(a, REGRESSION_RADIUS[self.factor], self.c0, times)

    def detail(self, coarse: np.ndarray) -> np.ndarray:
        """Fine-scale detail of ``coarse`` (bands, h, w): its local fit on the predictors, high-passed."""
        n_pred = len(self.mean_x)
        y = inner(coarse, self.skip).astype(np.float64)
        weighted_y = self.weight * y
        mean_y = self.window_sum(weighted_y) / self.n  # (bands, h', w')
        cross = np.empty((len(y), *self.mean_x.shape))  # (bands, p, h', w')
        for b in range(len(y)):
            np.subtract(self.window_sum(self.weighted_x, y[b]) / self.n, self.mean_x * mean_y[b], out=cross[b])
        coef = _solve_cholesky(self.chol, cross)  # (bands, p, h', w')
        var_y = self.window_sum(weighted_y, y) / self.n - mean_y**2
        r2 = np.einsum("bkhw,bkhw->bhw", coef, cross) / np.maximum(var_y, 1e-6)
        gain = np.clip((r2 - MIN_R2) / MIN_R2, 0.0, 1.0) * self.enough  # fades in between R2 0.2 and 0.4
        out_h, out_w = self.out_shape
        rows, cols = slice(self.keep, self.keep + out_h), slice(self.keep, self.keep + out_w)
        detail = np.empty((len(y), out_h, out_w), np.float32)
        for b in range(len(y)):
            maps = upsample((coef[b] * gain[b]).astype(np.float32), self.factor)[:, rows, cols]  # (p, out_h, out_w)
            np.multiply(maps, self.fine_detail[:, rows, cols], out=maps)
            np.copyto(detail[b], maps[0])
            for k in range(1, n_pred):
                detail[b] += maps[k]
        return detail


def fit_predictors(
    predictors: np.ndarray, factor: int, usable: np.ndarray, crop: int = 0, planes: PlaneMap = _all_planes,
    sigma: float | None = None,
) -> PredictorFit:
    """The band-independent part of :func:`regression_detail`; ``planes`` may split its stacks of planes
    over threads (each plane is computed alone, so the split changes no bit)."""
    radius = REGRESSION_RADIUS[factor]
    n_pred = predictors.shape[0]
    h, w = usable.shape
    c0 = max(0, crop // factor - 4)  # fits needed: the kept pixels and four coarse pixels (bicubic's reach)
    # the fit windows of those pixels, and the degrading of theirs, leave an outer margin unread: cut it off
    # first (about a quarter of a production tile's float64 work at x2; the same sums up to rounding)
    skip = max(0, c0 - radius - -(-degrade_reach(factor, sigma) // factor))
    if skip:
        fit = fit_predictors(inner(predictors, skip * factor), factor, inner(usable, skip), crop - skip * factor, planes, sigma)
        return replace(fit, skip=skip)
    f0, keep = c0 * factor, crop - c0 * factor
    degraded = planes(lambda s: degrade(predictors[s], factor, sigma), n_pred)
    x = degraded.astype(np.float64)  # (p, h, w)
    weight = usable.astype(np.float64)
    weighted_x = weight * x
    pairs = [(k, j) for k in range(n_pred) for j in range(k + 1)]
    # every window sum the bands share: count, sums of x, sums of the products x_k x_j; each plane is made
    # where it is summed, so a thread's working set stays one plane (faster than one big stack)
    shared = [(weight, None)] + [(weighted_x[k], None) for k in range(n_pred)]
    shared += [(weighted_x[k], x[j]) for k, j in pairs]
    sums = planes(lambda s: np.stack([_box_sum(a, radius, c0, times) for a, times in shared[s]]), len(shared))
    count = sums[0]
    n = np.maximum(count, 1.0)
    mean_x = sums[1 : 1 + n_pred] / n  # (p, h', w'): the fit region only
    cov = [[None] * n_pred for _ in range(n_pred)]  # planes (h', w'), lower triangle
    for (k, j), total in zip(pairs, sums[1 + n_pred :], strict=True):
        cov[k][j] = total / n - mean_x[k] * mean_x[j]
    for k in range(n_pred):
        cov[k][k] = cov[k][k] * (1 + RIDGE) + 1e-6
    region = (slice(c0, h - c0), slice(c0, w - c0))
    fine = predictors[:, f0 : h * factor - f0, f0 : w * factor - f0]
    fine_detail = planes(lambda s: fine[s] - upsample(degraded[s][(slice(None), *region)], factor), n_pred)
    return PredictorFit(
        factor, 0, c0, keep, (h * factor - 2 * crop, w * factor - 2 * crop), weight, weighted_x, n, mean_x,
        _cholesky(cov), count >= MIN_PIXELS_PER_PREDICTOR * (n_pred + 1), fine_detail,
    )


def regression_detail(
    predictors: np.ndarray, coarse: np.ndarray, factor: int, usable: np.ndarray, crop: int = 0,
    sigma: float | None = None,
) -> np.ndarray:
    """Fine-scale detail of ``coarse`` (bands, h, w) predicted from ``predictors`` (p, h*f, w*f).

    Each coarse band is fitted, around every coarse pixel, as ridge-linear in the predictors degraded to its
    grid, over a square window of ``REGRESSION_RADIUS`` coarse pixels and only its ``usable`` pixels (valid
    and unsaturated in every band involved). The fit is local, so it follows land cover and never depends
    on where a tile starts; where it is ill-conditioned (too few pixels, too little variance explained) the
    detail fades to zero and the estimate falls back to bicubic. Returns (bands, h*f, w*f), less ``crop``
    fine pixels each side (a multiple of ``factor``): the fits use the whole window, the fine-scale work
    only what the caller keeps. The same as ``fit_predictors(...).detail(coarse)``.
    """
    return fit_predictors(predictors, factor, usable, crop, sigma=sigma).detail(coarse)


def _cholesky(lower: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Cholesky factor of a small symmetric positive definite matrix at every pixel, all pixels at once.

    ``lower[k][j]`` (j <= k) holds A's lower triangle as (h, w) planes. Plane by plane: for p = 4 that is a
    few dozen whole-array operations, where a batched LAPACK call pays its per-matrix overhead hundreds of
    thousands of times.
    """
    p = len(lower)
    chol = [[None] * p for _ in range(p)]
    for k in range(p):
        for j in range(k + 1):
            s = lower[k][j] - _sum([chol[k][i] * chol[j][i] for i in range(j)], lower[k][j])
            chol[k][j] = np.sqrt(np.maximum(s, 1e-12)) if j == k else s / chol[j][j]
    return chol


def _solve_cholesky(chol: list[list[np.ndarray]], rhs: np.ndarray) -> np.ndarray:
    """Solve ``L L^T c = r`` at every pixel; ``rhs`` is (bands, p, h, w), the result too."""
    p = len(chol)
    z = [None] * p
    for k in range(p):  # forward: L z = r
        z[k] = _less_terms(rhs[:, k], [chol[k][i] * z[i] for i in range(k)])
        z[k] /= chol[k][k]
    c = np.empty_like(rhs)
    for k in reversed(range(p)):  # back: L^T c = z
        np.divide(_less_terms(z[k], [chol[i][k] * c[:, i] for i in range(k + 1, p)]), chol[k][k], out=c[:, k])
    return c


def _less_terms(a: np.ndarray, terms: list[np.ndarray]) -> np.ndarray:
    """``a - sum(terms)`` as a new array, into the sum's own memory (with no terms: a copy, as ``a - 0`` is)."""
    if not terms:
        return a.copy()
    total = _sum(terms, a)  # the terms are products made for this call: their memory may be reused
    return np.subtract(a, total, out=total)


def _sum(terms: list[np.ndarray], like: np.ndarray) -> np.ndarray:
    """``sum(terms)`` from the first term on (no pass over a zero array); zeros shaped like ``like`` if none."""
    if len(terms) < 2:
        return terms[0] if terms else np.zeros_like(like)
    total = terms[0] + terms[1]
    for term in terms[2:]:
        total += term
    return total


def _box_sum(a: np.ndarray, radius: int, inner: int = 0, times: np.ndarray | None = None) -> np.ndarray:
    """Sum of the last two axes over a (2 radius + 1)^2 window around each pixel, cut at the array's edge;
    returned for the pixels at least ``inner`` from the edge (the sums still see the whole array). With
    ``times``, the window sums of ``a * times`` (the product is written straight into the table).

    A summed-area table, built in place inside its own edge padding (zeros before, its last row and column
    repeated after), so that the window's clipped corners are plain shifted slices of it.
    """
    lead = np.broadcast_shapes(a.shape, times.shape)[:-2] if times is not None else a.shape[:-2]
    h, w = a.shape[-2:]
    r, d = radius, 2 * radius + 1
    t = np.empty((*lead, h + d + 1, w + d + 1))
    t[..., : r + 1, :] = 0
    t[..., r + 1 :, : r + 1] = 0
    core = t[..., r + 1 : r + 1 + h, r + 1 : r + 1 + w]
    if times is None:
        core[...] = a
    else:
        np.multiply(a, times, out=core)
    np.cumsum(core, axis=-2, out=core)
    np.cumsum(core, axis=-1, out=core)
    t[..., r + 1 + h :, r + 1 : r + 1 + w] = t[..., r + h : r + 1 + h, r + 1 : r + 1 + w]
    t[..., r + 1 + w :] = t[..., r + w : r + 1 + w]
    lo, hi = slice(inner, h - inner), slice(d + inner, d + h - inner)
    lo_c, hi_c = slice(inner, w - inner), slice(d + inner, d + w - inner)
    out = t[..., hi, hi_c] - t[..., lo, hi_c]
    out -= t[..., hi, lo_c]
    out += t[..., lo, lo_c]
    return out


def usable_coarse(valid_fine: np.ndarray, saturated_coarse: np.ndarray, valid_coarse: np.ndarray, factor: int) -> np.ndarray:
    """Coarse pixels a regression may learn from: valid and unsaturated, and every fine pixel under them valid."""
    usable = valid_coarse & ~saturated_coarse.any(axis=0)
    if valid_fine.all():  # most tiles: nothing to degrade
        return usable
    return usable & (degrade(valid_fine[None].astype(np.float32), factor)[0] > 0.999)


def fuse(net: np.ndarray | None, bicubic: np.ndarray, detail: np.ndarray, fusion: Fusion) -> np.ndarray:
    """``net_weight`` x net + (1 - net_weight) x (bicubic + detail); without a net, the regression alone."""
    if net is not None and fusion.net_weight >= 1:
        return net
    regression = np.add(bicubic, detail)
    if net is None or fusion.net_weight <= 0:
        return regression
    regression *= 1 - fusion.net_weight  # in place: the same operations, one array fewer
    regression += fusion.net_weight * net
    return regression
