"""Wald's protocol: degrade real bands by the net's scale so the original bands become the target.

x2: 10 m -> 20 m and 20 m -> 40 m inputs, the real 20 m bands as target.
x6: 10 m -> 60 m, 20 m -> 120 m, 60 m -> 360 m inputs, the real 60 m bands as target.
All arrays are returned on the target grid, coarse inputs bicubically upsampled to it, exactly as the
nets see them at inference.
"""

from __future__ import annotations

import numpy as np

from ..bands import BANDS_10M, BANDS_20M, BANDS_60M
from ..pairs import (
    OFFSET_RANGE,
    WaldPair,
    bicubic_baseline,
    degrade_group,
    pair_inputs,
    regression_detail_of,
    sample_patches,
)
from ..resample import upsample
from ..sensor import protocol_sigma
from .sources import LevelDownScene, Scene

__all__ = ["BLUR_RANGE", "OFFSET_RANGE", "WaldPair", "bicubic_baseline", "blended_blur", "degrade_group", "draw_blur", "protocol_blur",
           "sample_patches", "wald_pair"]


#: Blur augmentation: each band's Gaussian sigma (its own pixels) drawn from this range per scene and epoch,
#: covering the paper's kernel (1/scale) and every band's documented MTF kernel (``s2sr.sensor``).
BLUR_RANGE = {2: (0.4, 0.9), 6: (0.1, 2.8)}


def draw_blur(rng: np.random.Generator, scale: int) -> dict[str, float]:
    """One blur per band for a Wald pair (blur augmentation)."""
    return {b: float(rng.uniform(*BLUR_RANGE[scale])) for b in BANDS_10M + BANDS_20M + BANDS_60M}


def protocol_blur(scale: int, protocol: str) -> dict[str, float]:
    """Every band's blur under a kernel protocol (``paper`` or ``sensor``)."""
    return {b: protocol_sigma(b, scale, protocol) for b in BANDS_10M + BANDS_20M + BANDS_60M}


def blended_blur(scale: int, share: float) -> dict[str, float]:
    """Every band's blur ``share`` of the way from the paper's kernel (0) to its documented MTF kernel (1): the
    blurs between the two protocols, at which a fusion weight is chosen per blur."""
    paper, sensor = protocol_blur(scale, "paper"), protocol_blur(scale, "sensor")
    return {b: (1 - share) * paper[b] + share * sensor[b] for b in paper}


def wald_pair(scene: Scene | LevelDownScene, scale: int, blur: dict[str, float] | None = None,
              residual_to: str = "bicubic") -> WaldPair | None:
    """The degraded inputs and real target of a scene, or None when it is too small for this scale.

    ``blur``: each band's Gaussian sigma in its own pixels (default: the paper's, 1/scale for all).
    ``residual_to``: ``regression`` adds the regression's detail of the target bands (x6 only), computed on the
    degraded inputs alone, as a run computes it on the product."""
    blur = blur or protocol_blur(scale, "paper")
    if residual_to == "regression" and scale != 6:
        raise ValueError(f"residual_to regression is for x6 nets only, got x{scale}")
    if isinstance(scene, LevelDownScene):
        return level_down_pair(scene, scale, blur, residual_to)

    h, w = scene.size10
    step = 12 if scale == 2 else 36  # the inputs degraded by the scale must stay on the 60 m step
    h, w = h // step * step, w // step * step
    if scale == 6 and (h < 36 * 3 or w < 36 * 3):
        return None
    im10, im20, im60 = scene.im10[:, :h, :w], scene.im20[:, : h // 2, : w // 2], scene.im60[:, : h // 6, : w // 6]
    inputs = pair_inputs(scale, im10, im20, im60, blur)
    target = im20 if scale == 2 else im60
    detail = None
    if residual_to == "regression":
        detail = regression_detail_of(inputs[0], degrade_group(im60, 6, BANDS_60M, blur), 6, BANDS_60M, blur)
    return WaldPair(scene.name, inputs, np.ascontiguousarray(target, dtype=np.float32), detail=detail)


def level_down_pair(scene: LevelDownScene, scale: int, blur: dict[str, float],
                    residual_to: str = "bicubic") -> WaldPair | None:
    """The x6 pair of a product's 60 m bands one level down (None for x2): the 60 m bands as the fine input, the
    20 m bands degraded by 2 and B1, B9 by 6, each back on the 60 m grid; B1, B9 as the target.

    The 20 m bands, already at 60 m, take a third of the blur ``blur`` gives them for x6 (in 20 m pixels), so
    that their Gaussian is as wide on the ground as in the x6 protocol; B1 and B9 take theirs as it is."""
    if scale != 6:
        return None
    h, w = (n // 6 * 6 for n in scene.size10)
    if h < 36 * 3 or w < 36 * 3:
        return None
    mid_blur = {b: blur[b] / 3 for b in BANDS_20M}
    coarse = degrade_group(scene.coarse[:, :h, :w], 6, BANDS_60M, blur)
    inputs = [np.ascontiguousarray(scene.fine[:, :h, :w]),
              upsample(degrade_group(scene.mid[:, :h, :w], 2, BANDS_20M, mid_blur), 2), upsample(coarse, 6)]
    detail = None
    if residual_to == "regression":
        detail = regression_detail_of(inputs[0], coarse, 6, BANDS_60M, blur, scene.usable[:h, :w])
    return WaldPair(scene.name, inputs, np.ascontiguousarray(scene.coarse[:, :h, :w]), scene.usable[:h, :w], detail)
