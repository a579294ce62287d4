"""Wald pairs: bands degraded one level down as the nets' input, the real bands as their target.

Training builds them from real scenes (:mod:`s2sr.training.wald`); a run builds them from the product
itself to adapt the nets to it (:mod:`s2sr.adapt`). Both need the same degradation and the same patch
sampling, so both live here, below the run path and the training code alike.

x2: 10 m -> 20 m and 20 m -> 40 m inputs, the 20 m bands as target.
x6: 10 m -> 60 m, 20 m -> 120 m, 60 m -> 360 m inputs, the 60 m bands as target.
Inputs come back on the target grid, the coarse ones bicubically upsampled to it, as the nets see them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bands import BANDS_10M, BANDS_20M, BANDS_60M
from .refine import regression_detail, usable_coarse
from .resample import degrade_bands, upsample


@dataclass(frozen=True)
class WaldPair:
    """Net inputs (band-first, target grid) and the target, for one scene or window and one scale.

    ``usable``: target pixels a patch may cover (valid, unsaturated); None: every pixel. ``detail``: the
    scene-adaptive regression's detail of the target bands (:func:`regression_detail_of`), for nets whose
    output is a residual to the regression; the last input stays the bicubic upsampling either way."""

    name: str
    inputs: list[np.ndarray]
    target: np.ndarray
    usable: np.ndarray | None = None
    detail: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.target.shape[1], self.target.shape[2]

    def net_inputs(self) -> list[np.ndarray]:
        """What the net sees: the inputs, the last one plus the regression's detail where the pair has it."""
        if self.detail is None:
            return self.inputs
        return [*self.inputs[:-1], self.inputs[-1] + self.detail]


def degrade_group(a: np.ndarray, scale: int, bands: tuple[str, ...], blur: dict[str, float]) -> np.ndarray:
    """A band group degraded by ``scale``, each band with its own blur (Gaussian sigma in its own pixels)."""
    return degrade_bands(a, scale, tuple(blur[b] for b in bands))


def pair_inputs(scale: int, im10: np.ndarray, im20: np.ndarray, im60: np.ndarray | None,
                blur: dict[str, float]) -> list[np.ndarray]:
    """The nets' inputs one level down, on the target grid (the 20 m grid for x2, the 60 m grid for x6).

    Sizes must divide: the 10 m side by 12 (x2) or 36 (x6)."""
    if scale == 2:
        return [degrade_group(im10, 2, BANDS_10M, blur), upsample(degrade_group(im20, 2, BANDS_20M, blur), 2)]
    if scale == 6:
        if im60 is None:
            raise ValueError("x6 pairs need the 60 m bands")
        return [degrade_group(im10, 6, BANDS_10M, blur), upsample(degrade_group(im20, 6, BANDS_20M, blur), 2),
                upsample(degrade_group(im60, 6, BANDS_60M, blur), 6)]
    raise ValueError(f"scale must be 2 or 6, got {scale}")


def regression_detail_of(fine: np.ndarray, coarse: np.ndarray, scale: int, bands: tuple[str, ...],
                         blur: dict[str, float], valid_fine: np.ndarray | None = None) -> np.ndarray:
    """The regression's detail of ``coarse`` (bands, h, w) on the ``fine`` predictors (p, h*scale, w*scale), as a
    run computes it (:func:`s2sr.refine.regression_detail`): one fit at the bands' mean blur, from pixels where
    every band holds data (0 is nodata) and ``valid_fine`` (e.g. clear sky) holds."""
    valid_fine = np.all(fine != 0, axis=0) & (True if valid_fine is None else valid_fine)
    valid_coarse = np.all(coarse != 0, axis=0)
    usable = usable_coarse(valid_fine, np.zeros((1, *coarse.shape[1:]), bool), valid_coarse, scale)
    sigma = float(np.mean([blur[b] for b in bands]))
    return regression_detail(fine, coarse, scale, usable, sigma=sigma)


def bicubic_baseline(pair: WaldPair) -> np.ndarray:
    """What plain bicubic upsampling predicts for the target: the last (target-band) input."""
    return pair.inputs[-1]


#: Range of the additive offset (DN) drawn per band and patch by ``sample_patches(..., offsets=True)``.
OFFSET_RANGE = (-300.0, 1200.0)
#: Range of the factor drawn per band and patch, log-uniform, by ``sample_patches(..., gains=True)``.
GAIN_RANGE = (0.8, 1.25)


def patch_origins(pair: WaldPair, size: int, rows: int | None = None) -> np.ndarray:
    """(n, 2) upper-left corners of the ``size`` px patches of ``pair`` that lie wholly on usable pixels
    within its first ``rows`` rows (all rows by default)."""
    h, w = pair.size
    rows = h if rows is None else min(rows, h)
    if rows < size or w < size:
        return np.empty((0, 2), np.int64)
    if pair.usable is None:
        r, c = np.mgrid[0 : rows - size + 1, 0 : w - size + 1]
        return np.stack([r.ravel(), c.ravel()], axis=1)
    bad = np.pad((~pair.usable[:rows]).astype(np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    count = bad[size:, size:] - bad[:-size, size:] - bad[size:, :-size] + bad[:-size, :-size]
    return np.argwhere(count == 0)


def sample_patches(
    pairs: list[WaldPair], count: int, size: int, rng: np.random.Generator, offsets: bool = False,
    origins: list[np.ndarray] | None = None, gains: bool = False,
) -> tuple[list[np.ndarray], np.ndarray]:
    """``count`` random patches (channels-last, flips and 90 degree rotations), pairs drawn by sqrt(area).

    ``origins``: per pair, the corners patches may start at (:func:`patch_origins`); by default anywhere
    they fit. With ``offsets`` every band of a patch is shifted by its own random offset (the target bands
    by the same one in input and target): top-of-atmosphere (L1C) and surface (L2A) reflectance differ
    mostly by such a path-radiance offset, strongest in B1, so a net trained this way cannot key on
    absolute levels. With ``gains`` every band is first scaled by its own factor (log-uniform in
    ``GAIN_RANGE``, the target bands by the same one in input and target): how bright B9 is beside B8A
    (water vapour) or B1 beside B2 (aerosol) changes from scene to scene, so a net trained this way must
    read each band's level from its own input instead of the training scenes' typical ratios.
    """
    if origins is None:
        usable = [p for p in pairs if min(p.size) >= size]
        weights = np.sqrt([p.size[0] * p.size[1] for p in usable])
        corners = [None] * len(usable)
    else:
        keep = [i for i, o in enumerate(origins) if len(o)]
        usable, corners = [pairs[i] for i in keep], [origins[i] for i in keep]
        weights = np.sqrt([len(o) for o in corners]).astype(np.float64)
    picks = rng.choice(len(usable), size=count, p=weights / weights.sum())
    n_inputs = len(usable[0].inputs)
    seen = {i: usable[i].net_inputs() for i in set(picks.tolist())}
    xs: list[list[np.ndarray]] = [[] for _ in range(n_inputs)]
    ys = []
    for i in picks:
        pair = usable[i]
        if corners[i] is None:
            r = rng.integers(0, pair.size[0] - size + 1)
            c = rng.integers(0, pair.size[1] - size + 1)
        else:
            r, c = corners[i][rng.integers(0, len(corners[i]))]
        k, flip = rng.integers(0, 4), rng.integers(0, 2)

        def aug(a, r=r, c=c, k=k, flip=flip):
            a = np.rot90(a[:, r : r + size, c : c + size], k, axes=(1, 2))
            return (a[:, :, ::-1] if flip else a).transpose(1, 2, 0)

        inputs = seen[i]
        shifts = [np.zeros((1, 1, a.shape[0]), np.float32) for a in inputs]
        if offsets:
            shifts = [rng.uniform(*OFFSET_RANGE, (1, 1, a.shape[0])).astype(np.float32) for a in inputs]
        factors = [np.ones((1, 1, a.shape[0]), np.float32) for a in inputs]
        if gains:
            factors = [np.exp(rng.uniform(*np.log(GAIN_RANGE), (1, 1, a.shape[0]))).astype(np.float32) for a in inputs]
        for j, a in enumerate(inputs):
            xs[j].append(aug(a) * factors[j] + shifts[j])
        ys.append(aug(pair.target) * factors[-1] + shifts[-1])  # the last input is the target bands, upsampled
    return [np.stack(x).astype(np.float32) for x in xs], np.stack(ys).astype(np.float32)
