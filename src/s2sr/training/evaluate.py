"""``s2sr evaluate``: Wald-protocol quality of what ``s2sr run`` produces, against bicubic, x2 and x6.

Each scene's bands are degraded by the scale (the sensor model of training), fed through the same array path
as a product (tiling, nodata fill, nets, regression fusion, projection), and the output is compared with the
real bands. Figures are pooled per product level and scale over whole scenes: the RMSE over every pixel of
every scene, so a large scene counts by its pixels and a small patch cannot dominate. x6 is judged only on
scenes of at least 400 px at 10 m (below that the 60 m input is a handful of pixels).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..adapt import AdaptOptions
from ..api import superresolve_with
from ..bands import BANDS_10M, BANDS_20M, BANDS_60M
from ..inference import load_nets
from ..refine import Fusion
from ..resample import upsample
from ..sensor import PROTOCOLS
from ..tiling import Window
from .metrics import band_interval_scores, summary
from .sources import Scene, make_scene
from .wald import blended_blur, degrade_group, protocol_blur

METRICS = ("rmse", "sre", "sam", "uiq", "ergas")
MIN_X6_SIDE = 400
NET_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 0.6, 0.75, 1.0)
#: Scales whose net weight is chosen per blur (``Fusion.by_blur``): at x6 the paper's kernel (sigma 1/6, almost
#: a box) and the documented MTF (sigma 2.2 - 2.3) are far apart, and the net helps only towards the latter.
BY_BLUR_SCALES = (6,)
#: Where between the paper's kernel (0) and the documented MTF (1) a per-blur weight is chosen.
BLUR_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Method:
    """A way to make the output: ``overrides`` replace the manifests' fusion, per scale."""

    name: str
    overrides: tuple[tuple[int, Fusion], ...] = ()
    bicubic: bool = False
    adapt_steps: int | None = None  # run-time adaptation steps (None: the run's default, 0: none)
    intervals: bool = False  # also the per-pixel uncertainty, scored (``uncertainty``)


BICUBIC = Method("bicubic", bicubic=True)
NET_ONLY = Method("dsen2 net only", ((2, Fusion(1.0, 0)), (6, Fusion(1.0, 0))))
SHIPPED = Method("s2sr", intervals=True)
#: The output without run-time adaptation: the shipped nets as they are (``--no-adapt``).
NOT_ADAPTED = Method("s2sr, no adaptation", adapt_steps=0)
DEFAULT_METHODS = (BICUBIC, NET_ONLY, NOT_ADAPTED, SHIPPED)


@dataclass(frozen=True)
class Row:
    scene: str
    scale: int
    method: str
    metrics: dict
    level: str = ""  # product level, or "L2A decimated" for scenes not at native resolution (pooled apart)
    pixels: int = 0
    sums: dict = field(default_factory=dict, repr=False)  # squared error and angle sums, for pooling
    kernel: str = "paper"  # the degradation protocol (``s2sr.sensor.PROTOCOLS``)
    intervals: tuple = ()  # per band, ``metrics.interval_scores`` of the output's 90 % intervals (methods with them)


def wald_inputs(scene: Scene, scale: int, kernel: str = "paper", blur: dict[str, float] | None = None,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Degraded 10, 20 and 60 m stacks as a product would hold them, and the real target; None if too small.

    ``kernel``: the blur of the degradation, the paper's (sigma 1/scale for every band) or each band's own
    documented MTF (``sensor``), as training degrades them (:func:`.wald.protocol_blur`); ``blur``, each band's
    sigma, replaces it.
    """
    if scale == 6 and min(scene.size10) < MIN_X6_SIDE:
        return None
    step = 12 if scale == 2 else 36
    h, w = (n // step * step for n in scene.size10)
    if min(h, w) < step:
        return None
    im10, im20, im60 = scene.im10[:, :h, :w], scene.im20[:, : h // 2, : w // 2], scene.im60[:, : h // 6, : w // 6]
    target = im20 if scale == 2 else im60
    blur = blur or protocol_blur(scale, kernel)
    return (degrade_group(im10, scale, BANDS_10M, blur), degrade_group(im20, scale, BANDS_20M, blur),
            degrade_group(im60, scale, BANDS_60M, blur), target)


def _valid(target: np.ndarray) -> np.ndarray:
    return np.all(target != 0, axis=0)


def _sums(pred: np.ndarray, target: np.ndarray) -> dict:
    m = _valid(target)
    p, t = pred[:, m].astype(np.float64), target[:, m].astype(np.float64)
    cos = (p * t).sum(axis=0) / np.maximum(np.linalg.norm(p, axis=0) * np.linalg.norm(t, axis=0), 1e-12)
    return {"sq": float(((p - t) ** 2).sum()), "values": int(p.size), "angle": float(np.degrees(np.arccos(np.clip(cos, -1, 1))).sum()), "pixels": int(m.sum())}


def predict(
    scene: Scene, scale: int, method: Method, weights_dir: Path | None = None, kernel: str = "paper",
    precision: str = "float32", blur: dict[str, float] | None = None, intervals: bool = False,
) -> tuple[np.ndarray, ...] | None:
    """(prediction, target) of one method for one scene at one scale under one degradation kernel, through the
    product's array path, the nets in ``precision`` (float32 by default: the reference; ``auto`` or
    ``bfloat16`` to judge bfloat16 by it). ``blur`` (each band's sigma) replaces the kernel's. With ``intervals``
    (a method that has them) the half-widths of the output's 90 % intervals come third."""
    inputs = wald_inputs(scene, scale, kernel, blur)
    if inputs is None:
        return None
    b10, b20, b60, target = inputs
    if method.bicubic:
        return upsample(b20 if scale == 2 else b60, scale), target
    nets = load_nets(scene.level if scene.level in ("L1C", "L2A") else "L2A", scale == 6, weights_dir, precision=precision)
    nets = replace(nets, overrides=method.overrides)
    adapt = AdaptOptions() if method.adapt_steps is None else AdaptOptions(steps=method.adapt_steps)
    out = superresolve_with(nets, b10, b20, b60 if scale == 6 else None, adapt=adapt, uncertainty=intervals)
    if intervals:
        return (out.b20, target, out.b20_uncertainty) if scale == 2 else (out.b60, target, out.b60_uncertainty)
    return (out.b20 if scale == 2 else out.b60), target


def evaluate_scenes(
    scenes: list[Scene], scales=(2, 6), weights_dir: Path | None = None, methods=DEFAULT_METHODS,
    log: Callable[[str], None] = lambda s: None, kernels: tuple[str, ...] = PROTOCOLS, precision: str = "float32",
) -> list[Row]:
    """Metrics of every method for every scene large enough for each scale, under each degradation kernel,
    the nets in ``precision``."""
    rows: list[Row] = []
    for kernel in kernels:
        for scale in scales:
            for scene in scenes:
                for method in methods:
                    got = predict(scene, scale, method, weights_dir, kernel, precision, intervals=method.intervals)
                    if got is None:
                        break
                    pred, target = got[:2]
                    sums = _sums(pred, target)
                    group = f"{scene.level} decimated" if scene.source == "decimated-tile" else scene.level
                    held = tuple(band_interval_scores(pred, target, got[2])) if method.intervals else ()
                    rows.append(Row(scene.name, scale, method.name, summary(pred, target, scale), group,
                                    sums["pixels"], sums, kernel, held))
                log(f"{kernel} kernel, x{scale} {scene.name}: done")
    return rows


def pooled_rows(rows: list[Row]) -> list[Row]:
    """Per scale, level and method: RMSE and SAM pooled over every pixel of every scene.

    Levels are pooled apart (decimated scenes apart from native ones), then all native scenes together.
    """
    out = []
    levels = sorted({r.level for r in rows})
    native = [lv for lv in levels if "decimated" not in lv]
    groups = [(lv, [lv]) for lv in levels] + ([("native", native)] if len(native) > 1 else [])
    methods = list(dict.fromkeys(r.method for r in rows))
    for kernel, scale in dict.fromkeys((r.kernel, r.scale) for r in rows):
        for name, members in groups:
            for method in methods:
                sel = [r for r in rows if r.kernel == kernel and r.scale == scale and r.method == method and r.level in members]
                if not sel:
                    continue
                values = sum(r.sums["values"] for r in sel)
                pixels = sum(r.sums["pixels"] for r in sel)
                metrics = {m: float("nan") for m in METRICS}
                metrics["rmse"] = float(np.sqrt(sum(r.sums["sq"] for r in sel) / values))
                metrics["sam"] = sum(r.sums["angle"] for r in sel) / pixels
                out.append(Row(f"pooled over {len(sel)} {name} scenes", scale, method, metrics, name, pixels, kernel=kernel))
    return out


def ratio_table(rows: list[Row]) -> dict[tuple[str, str, int, str], float]:
    """RMSE ratio to bicubic for every (kernel, scene, scale, method) row that has a bicubic partner."""
    bicubic = {(r.kernel, r.scene, r.scale): r.metrics["rmse"] for r in rows if r.method == BICUBIC.name}
    return {(r.kernel, r.scene, r.scale, r.method): r.metrics["rmse"] / bicubic[(r.kernel, r.scene, r.scale)]
            for r in rows if bicubic.get((r.kernel, r.scene, r.scale), 0) > 0}


def markdown(rows: list[Row]) -> str:
    """A table with the RMSE ratio to bicubic on every row (pooled rows leave UIQ, SRE and ERGAS out)."""
    ratios = ratio_table(rows)
    lines = ["| kernel | scene | level | scale | method | RMSE | ratio | SAM deg | SRE dB | UIQ | ERGAS |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r.metrics
        ratio = ratios.get((r.kernel, r.scene, r.scale, r.method), float("nan"))
        extra = " | ".join("-" if np.isnan(m[k]) else f"{m[k]:.{d}f}" for k, d in (("sre", 2), ("uiq", 4), ("ergas", 3)))
        lines.append(f"| {r.kernel} | {r.scene} | {r.level} | x{r.scale} | {r.method} | {m['rmse']:.1f} | {ratio:.3f} | {m['sam']:.3f} | {extra} |")
    return "\n".join(lines)


def interval_markdown(rows: list[Row]) -> str:
    """How the output's 90 % intervals held, per scene (coverage pooled over bands, median informativeness and
    sharpness over bands) and pooled per kernel and scale over every scene; empty without intervals."""
    held = [r for r in rows if r.intervals]
    if not held:
        return ""
    lines = ["| kernel | scene | scale | coverage | informativeness | sharpness |", "|---|---|---|---|---|---|"]

    def line(kernel: str, name: str, scale: int, scores: list[dict]) -> str:
        cov = sum(s["coverage"] * s["pixels"] for s in scores) / max(1, sum(s["pixels"] for s in scores))
        return (f"| {kernel} | {name} | x{scale} | {cov:.3f} | {np.median([s['informativeness'] for s in scores]):.2f} | "
                f"{np.median([s['sharpness'] for s in scores]):.2f} |")

    for r in held:
        lines.append(line(r.kernel, r.scene, r.scale, list(r.intervals)))
    for kernel, scale in dict.fromkeys((r.kernel, r.scale) for r in held):
        sel = [r for r in held if (r.kernel, r.scale) == (kernel, scale)]
        lines.append(line(kernel, f"pooled over {len(sel)} scenes", scale, [s for r in sel for s in r.intervals]))
    return "\n".join(lines)


def pick_net_weight(ratios: dict[str, dict[float, float]], floor: float = 0.0) -> float:
    """The net weight (at least ``floor``) with the lowest mean ratio over the kernels, among the weights that
    are no worse than the regression alone (weight 0) under any kernel; if none is, the least weight allowed.

    ``ratios``: per kernel, pooled ratio by net weight, 0 included. A net whose share makes one kernel worse
    than the regression alone is not bought with a gain under the other.
    """
    allowed = sorted(w for w in next(iter(ratios.values())) if w >= floor)
    safe = [w for w in allowed if all(by_weight[w] <= by_weight[0.0] for by_weight in ratios.values())]
    if not safe:
        return allowed[0]
    return min(safe, key=lambda w: (float(np.mean([by_weight[w] for by_weight in ratios.values()])), w))


def choose_fusion(scenes: list[Scene], weights_dir: Path, log: Callable[[str], None] = lambda s: None,
                  scales: tuple[int, ...] = (2, 6)) -> dict[int, Fusion]:
    """Per scale, the net weight with the lowest pooled RMSE ratio on ``scenes`` (the selection split, never the
    test split), projection on, written into the manifests in ``weights_dir``.

    x2: one weight, averaged over both degradation kernels (a weight tuned to one kernel is not chosen) and no
    worse than the regression alone under either (:func:`pick_net_weight`). x6 (``BY_BLUR_SCALES``): one
    weight per blur, at ``BLUR_SHARES`` of the way from the paper's kernel to the documented MTF, keyed by the
    mean sigma of the scale's bands there; a run takes the weight at the blur it measures on its product.
    """
    chosen = {}
    for scale in scales:
        candidates = [Method(f"w{w}", ((scale, Fusion(w, 1)),)) for w in NET_WEIGHTS]
        weight_of = {m.name: m.overrides[0][1].net_weight for m in candidates}
        bands = BANDS_20M if scale == 2 else BANDS_60M
        if scale in BY_BLUR_SCALES:
            by_blur, record = [], {}
            for share in BLUR_SHARES:
                blur = blended_blur(scale, share)
                ratios = _pooled_ratios(scenes, scale, weights_dir, candidates, blur=blur, log=log)
                sigma = round(float(np.mean([blur[b] for b in bands])), 3)
                best = min(ratios, key=lambda n: (round(ratios[n], 4), weight_of[n]))
                by_blur.append((sigma, weight_of[best]))
                record[f"{sigma}"] = {n[1:]: round(v, 4) for n, v in ratios.items()}
                log(f"x{scale}, blur {sigma} px ({share:.2f} of the way to the MTF): pooled ratio by net weight "
                    + ", ".join(f"{n[1:]}: {v:.3f}" for n, v in ratios.items()))
            chosen[scale] = Fusion(projection_steps=1, by_blur=tuple(by_blur))
            how = {"blur_shares": list(BLUR_SHARES), "pooled_ratio_by_blur_and_net_weight": record}
        else:
            by_kernel = {k: _pooled_ratios(scenes, scale, weights_dir, candidates, kernel=k, log=log) for k in PROTOCOLS}
            weight = pick_net_weight({k: {weight_of[n]: v for n, v in by_kernel[k].items()} for k in PROTOCOLS})
            chosen[scale] = Fusion(weight, 1)
            for k in PROTOCOLS:
                log(f"x{scale}, {k} kernel: pooled ratio by net weight "
                    + ", ".join(f"{n[1:]}: {v:.3f}" for n, v in by_kernel[k].items()))
            how = {"kernels": list(PROTOCOLS),
                   "pooled_ratio_by_net_weight": {k: {n[1:]: round(v, 4) for n, v in by_kernel[k].items()}
                                                  for k in PROTOCOLS}}
        path = weights_dir / f"dsen2_x{scale}.json"
        raw = json.loads(path.read_text())
        raw["fusion"] = {**chosen[scale].to_dict(), "chosen_on": sorted({s.name for s in scenes}),
                         "adaptation": {"steps": AdaptOptions().steps, "learning_rate": AdaptOptions().learning_rate,
                                        "interpolation": AdaptOptions().interpolation,
                                        "pair_blurs": list(AdaptOptions().pair_blurs)}, **how}
        path.write_text(json.dumps(raw, indent=2) + "\n")
    return chosen


def _pooled_ratios(scenes: list[Scene], scale: int, weights_dir: Path, candidates: list[Method], kernel: str = "paper",
                   blur: dict[str, float] | None = None, log: Callable[[str], None] = lambda s: None) -> dict[str, float]:
    """Each candidate's RMSE over every selection pixel, relative to bicubic's, under one degradation; ``log``
    hears of each scene done (a choice takes minutes)."""
    sq = {m.name: 0.0 for m in (BICUBIC, *candidates)}
    degradation = f"{kernel} kernel" if blur is None else "blend of kernels"
    for n, scene in enumerate(scenes, start=1):
        log(f"x{scale}, {degradation}: scene {n}/{len(scenes)} ({scene.name}), {len(candidates)} net weights")
        for method in (BICUBIC, *candidates):
            got = predict(scene, scale, method, weights_dir, kernel, blur=blur)
            if got is None:
                break
            pred, target = got
            sq[method.name] += _sums(pred, target)["sq"]
    if not sq[BICUBIC.name]:
        raise ValueError(f"x{scale}: no selection scene is large enough")
    return {m.name: float(np.sqrt(sq[m.name] / sq[BICUBIC.name])) for m in candidates}


def scene_from_npz(path: Path) -> Scene:
    with np.load(path) as z:
        return make_scene(path.stem, "npz", "L2A", z["im10"], z["im20"], z["im60"])


def scene_from_product(path: Path, size: int = 1080) -> Scene:
    """A centre crop of a product (at most ``size`` 10 m pixels a side), harmonised to reflectance x 10000."""
    from ..product import ProductReader, open_product

    product = open_product(path)
    with ProductReader(product) as reader:
        h, w = min(size, reader.height) // 36 * 36, min(size, reader.width) // 36 * 36
        row, col = (reader.height - h) // 2 // 6 * 6, (reader.width - w) // 2 // 6 * 6
        g10, g20, g60 = reader.read(Window(row, col, h, w))

    def dn(g):
        return np.where(g.valid, np.maximum(g.values, 1), 0)

    return make_scene(product.name, "product", product.level, dn(g10), dn(g20), dn(g60))
