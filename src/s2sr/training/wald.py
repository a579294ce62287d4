"""Wald's protocol: degrade real bands by the net's scale so the original bands become the target.

x2: 10 m -> 20 m and 20 m -> 40 m inputs, the real 20 m bands as target.
x6: 10 m -> 60 m, 20 m -> 120 m, 60 m -> 360 m inputs, the real 60 m bands as target.
All arrays are returned on the target grid, coarse inputs bicubically upsampled to it, exactly as the
nets see them at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bands import BANDS_10M, BANDS_20M, BANDS_60M
from ..resample import degrade_bands, upsample
from ..sensor import protocol_sigma
from .sources import Scene


@dataclass(frozen=True)
class WaldPair:
    """Net inputs (band-first, target grid) and the target, for one scene and one scale."""

    name: str
    inputs: list[np.ndarray]
    target: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return self.target.shape[1], self.target.shape[2]


#: Blur augmentation: each band's Gaussian sigma (its own pixels) drawn from this range per scene and epoch,
#: covering the paper's kernel (1/scale) and every band's documented MTF kernel (``s2sr.sensor``).
BLUR_RANGE = {2: (0.4, 0.9), 6: (0.1, 2.8)}


def draw_blur(rng: np.random.Generator, scale: int) -> dict[str, float]:
    """One blur per band for a Wald pair (blur augmentation)."""
    return {b: float(rng.uniform(*BLUR_RANGE[scale])) for b in BANDS_10M + BANDS_20M + BANDS_60M}


def protocol_blur(scale: int, protocol: str) -> dict[str, float]:
    """Every band's blur under a kernel protocol (``paper`` or ``sensor``)."""
    return {b: protocol_sigma(b, scale, protocol) for b in BANDS_10M + BANDS_20M + BANDS_60M}


def degrade_group(a: np.ndarray, scale: int, bands: tuple[str, ...], blur: dict[str, float]) -> np.ndarray:
    """A band group degraded by ``scale``, each band with its own blur (Wald's protocol, training and evaluation)."""
    return degrade_bands(a, scale, tuple(blur[b] for b in bands))


def wald_pair(scene: Scene, scale: int, blur: dict[str, float] | None = None) -> WaldPair | None:
    """The degraded inputs and real target of a scene, or None when it is too small for this scale.

    ``blur``: each band's Gaussian sigma in its own pixels (default: the paper's, 1/scale for all)."""
    blur = blur or protocol_blur(scale, "paper")

    def degrade(a, bands):
        return degrade_group(a, scale, bands, blur)

    h, w = scene.size10
    if scale == 2:
        h, w = h // 12 * 12, w // 12 * 12  # 20 m input degraded by 2 must stay on the 60 m step
        im10, im20 = scene.im10[:, :h, :w], scene.im20[:, : h // 2, : w // 2]
        inputs = [degrade(im10, BANDS_10M), upsample(degrade(im20, BANDS_20M), 2)]
        target = im20
    elif scale == 6:
        h, w = h // 36 * 36, w // 36 * 36
        if h < 36 * 3 or w < 36 * 3:
            return None
        im10, im20, im60 = scene.im10[:, :h, :w], scene.im20[:, : h // 2, : w // 2], scene.im60[:, : h // 6, : w // 6]
        inputs = [degrade(im10, BANDS_10M), upsample(degrade(im20, BANDS_20M), 2), upsample(degrade(im60, BANDS_60M), 6)]
        target = im60
    else:
        raise ValueError(f"scale must be 2 or 6, got {scale}")
    return WaldPair(scene.name, inputs, np.ascontiguousarray(target, dtype=np.float32))


def bicubic_baseline(pair: WaldPair) -> np.ndarray:
    """What plain bicubic upsampling predicts for the target: the last (target-band) input."""
    return pair.inputs[-1]


#: Range of the additive offset (DN) drawn per band and patch by ``sample_patches(..., offsets=True)``.
OFFSET_RANGE = (-300.0, 1200.0)


def sample_patches(
    pairs: list[WaldPair], count: int, size: int, rng: np.random.Generator, offsets: bool = False
) -> tuple[list[np.ndarray], np.ndarray]:
    """``count`` random patches (channels-last, flips and 90 degree rotations), scenes drawn by sqrt(area).

    With ``offsets`` every band of a patch is shifted by its own random offset (the target bands by the same
    one in input and target): top-of-atmosphere (L1C) and surface (L2A) reflectance differ mostly by such a
    path-radiance offset, strongest in B1, so a net trained this way cannot key on absolute levels.
    """
    usable = [p for p in pairs if min(p.size) >= size]
    weights = np.sqrt([p.size[0] * p.size[1] for p in usable])
    picks = rng.choice(len(usable), size=count, p=weights / weights.sum())
    n_inputs = len(usable[0].inputs)
    xs: list[list[np.ndarray]] = [[] for _ in range(n_inputs)]
    ys = []
    for i in picks:
        pair = usable[i]
        r = rng.integers(0, pair.size[0] - size + 1)
        c = rng.integers(0, pair.size[1] - size + 1)
        k, flip = rng.integers(0, 4), rng.integers(0, 2)

        def aug(a, r=r, c=c, k=k, flip=flip):
            a = np.rot90(a[:, r : r + size, c : c + size], k, axes=(1, 2))
            return (a[:, :, ::-1] if flip else a).transpose(1, 2, 0)

        shifts = [np.zeros((1, 1, a.shape[0]), np.float32) for a in pair.inputs]
        if offsets:
            shifts = [rng.uniform(*OFFSET_RANGE, (1, 1, a.shape[0])).astype(np.float32) for a in pair.inputs]
        for j, a in enumerate(pair.inputs):
            xs[j].append(aug(a) + shifts[j])
        ys.append(aug(pair.target) + shifts[-1])  # the last input is the target bands, upsampled
    return [np.stack(x).astype(np.float32) for x in xs], np.stack(ys).astype(np.float32)
