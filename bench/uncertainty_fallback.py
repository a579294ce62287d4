"""How the shipped (fallback) quantiles should be made from the training scenes: one quantile over every pixel
pooled (as shipped), or the median of each scene's own quantile; judged leaving one scene out over the scenes
outside the test split, then shown on the test split.

Products too small to calibrate on themselves (every x6 test product, 8 of 10 at x2) take these quantiles.
Pooled, the scenes with the most pixels and the widest errors relative to their scale set them; the median of
the scenes' own quantiles aims at a typical scene. Each scene's runs come from ``bench/uncertainty.py``'s
cache (the same Wald pairs: both kernels, the run's method, the truth only to score).

    PYTHONPATH=src:bench python bench/uncertainty_fallback.py --cache /tmp/unc [--scale 2 6]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from uncertainty import cached, load_scenes

from s2sr.sensor import PROTOCOLS
from s2sr.training.metrics import interval_scores
from s2sr.uncertainty import conformal_quantile, error_scale

ESTIMATORS = ("pooled", "median of scenes")


def ratios_of(scenes, scale: int, cache: Path) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """Per (scene, kernel): |error| and the scale, (bands, valid pixels)."""
    out = {}
    for kernel in PROTOCOLS:
        for scene in scenes:
            got = cached(cache, scene, scale, kernel, None)
            if got is None:
                continue
            est, bicubic, target, valid = got[:4]
            out[(scene.name, kernel)] = (np.abs(est - target)[:, valid], error_scale(est, bicubic)[:, valid])
    return out


def quantiles(pairs: list[tuple[np.ndarray, np.ndarray]], estimator: str) -> np.ndarray:
    """Per band, the fallback quantile from these scene-kernel pairs."""
    if estimator == "pooled":
        ratios = np.concatenate([e / s for e, s in pairs], axis=1)
        return np.array([conformal_quantile(r) for r in ratios])
    return np.median([[conformal_quantile(r) for r in e / s] for e, s in pairs], axis=0)


def scores(pair: tuple[np.ndarray, np.ndarray], q: np.ndarray) -> tuple[float, float, int]:
    """Coverage (pooled over bands) and median sharpness over bands of one scene-kernel pair."""
    e, s = pair
    rows = [interval_scores(eb, qb * sb) for eb, sb, qb in zip(e, s, q, strict=True)]
    n = sum(r["pixels"] for r in rows)
    return sum(r["coverage"] * r["pixels"] for r in rows) / n, float(np.median([r["sharpness"] for r in rows])), n


def table(title: str, results: list[tuple[str, str, dict[str, tuple[float, float, int]]]]) -> None:
    print(f"\n{title}\n")
    print("| scene | kernel | " + " | ".join(f"{e}: coverage / sharpness" for e in ESTIMATORS) + " |")
    print("|---|---|" + "---|" * len(ESTIMATORS))
    for scene, kernel, got in results:
        print(f"| {scene} | {kernel} | " + " | ".join(f"{got[e][0]:.3f} / {got[e][1]:.2f}" for e in ESTIMATORS) + " |")
    for kernel in PROTOCOLS:
        sel = [got for _, k, got in results if k == kernel]
        if not sel:
            continue
        cells = []
        for e in ESTIMATORS:
            n = sum(g[e][2] for g in sel)
            cells.append(f"{sum(g[e][0] * g[e][2] for g in sel) / n:.3f} (least {min(g[e][0] for g in sel):.3f}) / "
                         f"{np.median([g[e][1] for g in sel]):.2f}")
        print(f"| pooled (least scene) / median | {kernel} | " + " | ".join(cells) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, nargs="+", default=[2, 6])
    ap.add_argument("--shared-data", default="../shared/data")
    ap.add_argument("--cache", required=True, help="bench/uncertainty.py's cache (runs made here where missing)")
    args = ap.parse_args()
    shared, cache = Path(args.shared_data), Path(args.cache)
    outside = load_scenes("training", shared) + load_scenes("selection", shared)
    test = load_scenes("test", shared)
    for scale in args.scale:
        known = ratios_of(outside, scale, cache)
        names = list(dict.fromkeys(name for name, _ in known))
        loso = []
        for left in names:
            rest = [p for (name, _), p in known.items() if name != left]
            qs = {e: quantiles(rest, e) for e in ESTIMATORS}
            for kernel in PROTOCOLS:
                if (left, kernel) in known:
                    loso.append((left, kernel, {e: scores(known[(left, kernel)], qs[e]) for e in ESTIMATORS}))
        table(f"x{scale}, each scene outside the test split left out ({len(names)} scenes):", loso)
        qs = {e: quantiles(list(known.values()), e) for e in ESTIMATORS}
        print(f"\nx{scale} quantiles from every scene outside the test split: "
              + "; ".join(f"{e} {np.round(q, 3).tolist()}" for e, q in qs.items()))
        shown = [(name, kernel, {e: scores(p, qs[e]) for e in ESTIMATORS})
                 for (name, kernel), p in ratios_of(test, scale, cache).items()]
        table(f"x{scale}, the test split (shown, not chosen on):", shown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
