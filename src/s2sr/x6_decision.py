"""Whether B1 and B9 use the x6 net: judged per product on its own bands one level down, before the tiles.

The x6 net learnt from few and small scenes; measured on scenes no choice saw, it beats the regression alone
on some and loses on others by more than a quarter (``docs/how-it-works.md``, *B1 and B9*). Which one a product
is cannot be read off its blur, so each product is asked directly: its 10, 20 and 60 m bands degraded by 6
(each with the run's blur: the documented MTF for the 10 and 20 m bands, the sensor model's for B1 and B9) are
a product one level down, its own 60 m bands the truth. The fused estimate (the net at the weight the
manifest gives this product's blur) is compared with the regression alone on those pairs; the net is used
only if it wins by :data:`MARGIN`, otherwise its weight is 0 and it does not run. Every usable pixel is
judged, none held back: nothing is fitted to the truth, only chosen between two fixed estimators.

- **Fixed windows** of the product grid (:func:`decision_windows`), so an AOI run, a whole-product run and
  any tile size decide the same; each window is read, judged and dropped (memory bounded by one window).
- **Falls back to the regression** where the pairs are too few to judge (:data:`MIN_PIXELS` usable 60 m
  pixels: a product under about 920 px a side, or one whose 60 m bands are mostly nodata or saturated).
- **What it decided**, and why, is a value, :class:`X6Decision`, recorded with the fusion in the GeoTIFF tags
  and the STAC Item (``Nets.fusion_record``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import numpy as np

from .bands import BANDS_10M, BANDS_20M, BANDS_60M
from .inference import FILL_REACH, BandGroup, Nets, superresolve_groups
from .refine import Fusion, usable_coarse
from .resample import degrade_bands
from .sensor import SensorModel, mtf_sigma
from .tiling import Window

#: Side of a decision window in 10 m pixels (a multiple of 36): 168 px at 60 m, 28 px at 360 m one level down.
WINDOW_SIZE = 1008
WINDOWS_PER_SIDE = 3
#: Side of the one window of a raster smaller than three windows a side (10 m pixels): as many pixels as four.
SMALL_WINDOW_SIZE = 2 * WINDOW_SIZE
#: Window origins on a product-sized raster (10 m pixels, 36 x 114): each lies 0, 8 or 16 px into a 1024 px JP2
#: block of the 10 m bands (blocks 0, 4 and 8), and of the 20 and 60 m bands, so a 1008 px window decodes one
#: block per band; measured on the bench product under load, 46.5 s for the nine windows against 108.5 s for
#: windows centred in the raster's thirds, which straddle blocks.
PRODUCT_ORIGINS = (0, 4104, 8208)
#: Fewest usable 60 m pixels (pooled over the windows, the margins cut off) to judge by; fewer: the regression.
MIN_PIXELS = 20000
#: The fused estimate's RMSE on the level-down pairs must be below ``1 - MARGIN`` times the regression's for the
#: net to run: the largest loss on a scene issue 44 tolerates, set once (no scene here is large enough to tune it).
MARGIN = 0.02
#: 60 m pixels cut off each window's edge before judging: there the level-down inputs read reflected edges.
EDGE = 6


@dataclass(frozen=True)
class X6Decision:
    """What the per-product judge decided for the x6 net (recorded in the GeoTIFF tags and the STAC Item)."""

    net_weight: float  # the weight the run uses: the manifest's at this blur, or 0 (the net does not run)
    fused_weight: float  # the manifest's weight at this product's blur, before the judge
    reason: str
    windows: int = 0
    pixels: int = 0  # usable 60 m pixels judged
    rmse_regression: float | None = None  # DN, the regression alone on the level-down pairs
    rmse_fused: float | None = None  # DN, the net at ``fused_weight`` on the same pairs
    seconds: float = 0.0

    @property
    def uses_net(self) -> bool:
        return self.net_weight > 0

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("rmse_regression", "rmse_fused"):
            out[key] = None if out[key] is None else round(float(out[key]), 3)
        out["seconds"] = round(self.seconds, 1)
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> X6Decision:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})

    def describe(self) -> str:
        """One line for people."""
        verdict = f"x6 net at weight {self.net_weight:g}" if self.uses_net else "B1/B9 by the regression alone"
        if self.rmse_regression is None:
            return f"{verdict}: {self.reason}"
        return (f"{verdict}: level-down RMSE regression {self.rmse_regression:.1f}, fused {self.rmse_fused:.1f} DN "
                f"({self.pixels} px); {self.reason}")


def decision_windows(height: int, width: int) -> list[Window]:
    """Fixed product-grid windows the decision is made on: on a product-sized raster a 3 x 3 grid of 1008 px
    windows at :data:`PRODUCT_ORIGINS` (inside the JP2 blocks), on a smaller one centred in equal parts of the
    raster (aligned to 36 px, one 360 m pixel); a raster smaller than three windows a side gives one window at
    its centre, at most :data:`SMALL_WINDOW_SIZE` a side (whole 360 m pixels)."""
    size = WINDOW_SIZE
    if min(height, width) >= PRODUCT_ORIGINS[-1] + size:
        return [Window(r, c, size, size) for r in PRODUCT_ORIGINS for c in PRODUCT_ORIGINS]
    if height >= size * WINDOWS_PER_SIDE and width >= size * WINDOWS_PER_SIDE:
        n = WINDOWS_PER_SIDE
        return [Window(((2 * i + 1) * height // (2 * n) - size // 2) // 36 * 36,
                       ((2 * j + 1) * width // (2 * n) - size // 2) // 36 * 36, size, size)
                for i in range(n) for j in range(n)]
    h, w = min(height, SMALL_WINDOW_SIZE) // 36 * 36, min(width, SMALL_WINDOW_SIZE) // 36 * 36
    if not h or not w:
        return []
    return [Window((height - h) // 2 // 36 * 36, (width - w) // 2 // 36 * 36, h, w)]


def level_down_blur(sensor: SensorModel) -> dict[str, float]:
    """Each band's blur one level down (sigma in its own pixels, degraded by 6): the 10 and 20 m bands their
    documented MTF's, B1 and B9 what the sensor model gives them on the 10 m grid (by scale invariance)."""
    blur = {b: float(mtf_sigma(b, 6)) for b in BANDS_10M + BANDS_20M}
    blur.update({b: sensor.kernel(b).sigma for b in BANDS_60M})
    return blur


def _blocks(mask: np.ndarray, factor: int, how: Callable) -> np.ndarray:
    h, w = mask.shape[-2] // factor, mask.shape[-1] // factor
    return how(mask.reshape(*mask.shape[:-2], h, factor, w, factor), axis=(-3, -1))


def _level_down(group: BandGroup, bands: tuple[str, ...], blur: dict[str, float], reach: int) -> BandGroup:
    """A band group degraded by 6 with each band's blur: valid where every pixel under it is, saturated where any is."""
    values = degrade_bands(group.filled(reach), 6, tuple(blur[b] for b in bands))
    return BandGroup(values, _blocks(group.valid, 6, np.all), _blocks(group.saturated, 6, np.any))


Read = Callable[[Window], tuple[BandGroup, BandGroup, BandGroup | None]]


def judge_window(nets: Nets, g10: BandGroup, g20: BandGroup, g60: BandGroup, weight: float
                 ) -> tuple[float, float, int]:
    """Squared errors of the regression alone and of the fused estimate (the net at ``weight``), over a window's
    usable 60 m pixels less :data:`EDGE`, and their count (values, both bands)."""
    blur = level_down_blur(nets.sensor)
    down = (_level_down(g10, BANDS_10M, blur, FILL_REACH), _level_down(g20, BANDS_20M, blur, FILL_REACH // 2),
            _level_down(g60, BANDS_60M, blur, FILL_REACH // 6))
    x2_off = (2, Fusion(0.0, 0))  # the x2 output is not judged: no net, no projection

    def b60(net_weight: float) -> np.ndarray:
        variant = replace(nets, overrides=(x2_off, (6, replace(nets.fusion(6), net_weight=net_weight))))
        return superresolve_groups(variant, *down).b60

    regression, net = b60(0.0), b60(1.0)
    # the projection is linear in its estimate, so the fused output is the same mix of the two projected ones
    fused = weight * net + (1 - weight) * regression
    target = g60.filled(FILL_REACH // 6)
    usable = usable_coarse(g10.valid, g60.saturated, g60.valid, 6)
    keep = np.zeros_like(usable)
    keep[EDGE:-EDGE, EDGE:-EDGE] = True
    keep &= usable
    err_r = (regression[:, keep] - target[:, keep]).astype(np.float64)
    err_f = (fused[:, keep] - target[:, keep]).astype(np.float64)
    return float((err_r**2).sum()), float((err_f**2).sum()), int(err_r.size)


def decide_x6(nets: Nets, read: Read, height: int, width: int) -> Nets:
    """``nets`` with the x6 net's weight decided on the product behind ``read`` (a raster of ``height`` x ``width``
    10 m pixels), the decision in ``nets.x6_decision``. Unchanged where there is no x6 net or the caller fixed
    its fusion (``nets.overrides``, evaluation)."""
    if nets.x6 is None or 6 in dict(nets.overrides):
        return nets
    started = time.monotonic()
    weight = nets.fusion(6).net_weight

    def decided(net_weight: float, reason: str, **record) -> Nets:
        choice = X6Decision(net_weight, weight, reason, seconds=time.monotonic() - started, **record)
        return replace(nets, x6_decision=choice)

    if weight <= 0:
        return decided(0.0, "the manifest gives the net weight 0 at this product's blur")
    windows = decision_windows(height, width)
    room = sum(max(0, w.height // 6 - 2 * EDGE) * max(0, w.width // 6 - 2 * EDGE) for w in windows)
    if room < MIN_PIXELS:  # too small whatever its pixels hold: nothing read, no net run
        return decided(0.0, _too_few(room), windows=len(windows))
    sq_r = sq_f = 0.0
    values = 0
    for window in windows:
        g10, g20, g60 = read(window)
        if g60 is None:
            return decided(0.0, "no 60 m bands to judge by")
        if not usable_coarse(g10.valid, g60.saturated, g60.valid, 6).any():
            continue
        r, f, n = judge_window(nets, g10, g20, g60, weight)
        sq_r, sq_f, values = sq_r + r, sq_f + f, values + n
    pixels = values // len(BANDS_60M)
    if pixels < MIN_PIXELS:
        return decided(0.0, _too_few(pixels), windows=len(windows), pixels=pixels)
    rmse_r, rmse_f = float(np.sqrt(sq_r / values)), float(np.sqrt(sq_f / values))
    record = dict(windows=len(windows), pixels=pixels, rmse_regression=rmse_r, rmse_fused=rmse_f)
    if rmse_f < (1 - MARGIN) * rmse_r:
        return decided(weight, f"the net wins on the product's level-down pairs by more than {MARGIN:.0%}", **record)
    return decided(0.0, f"the net does not win on the product's level-down pairs by {MARGIN:.0%}; the regression alone",
                   **record)


def _too_few(pixels: int) -> str:
    return (f"too few usable 60 m pixels to judge the net ({pixels}, needs {MIN_PIXELS}: a small, nodata or saturated "
            "product); the regression alone")
