"""Which truth-free signals rank the x2 errors: the scale as shipped, the net and the regression disagreeing, and
the issue's reference (a sliding 5 x 5 RMS of output - bicubic), on Wald pairs of real scenes.

Each scene is degraded by 2 under the paper's and the sensor's kernel and run as a product (sensor model,
adaptation) three times: as shipped, the x2 net alone (weight 1) and the regression alone (weight 0), each
projected. Each signal is scored per band with the truth only as the calibration (so only its ranking and shape
count): informativeness (mean |error| of the widest 10 % over the narrowest 50 %) and sharpness (mean half-width
over the 90th percentile of |error|, the quantile taken on the truth). Where a scene is large enough to
calibrate on itself, the product's own level-down calibration is scored too (coverage).

    PYTHONPATH=src:bench python bench/uncertainty_signals.py --split selection --cache /tmp/sig
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from uncertainty import load_scenes, prepared, run_tiles

from s2sr.bands import BANDS_20M
from s2sr.refine import Fusion
from s2sr.resample import upsample
from s2sr.sensor import PROTOCOLS
from s2sr.training.metrics import interval_scores
from s2sr.uncertainty import DEFAULT_RULE, MIN_PIXELS, cell_mean, conformal_quantile, error_scale, level_down_samples


def box_mean(a: np.ndarray, size: int) -> np.ndarray:
    """Mean over a sliding ``size`` x ``size`` window of the last two axes (edges padded by their nearest pixel)."""
    r = size // 2
    p = np.pad(a, ((0, 0), (r, r), (r, r)), mode="edge").astype(np.float64)
    c = np.cumsum(np.cumsum(p, axis=1), axis=2)
    c = np.pad(c, ((0, 0), (1, 0), (1, 0)))
    h, w = a.shape[1:]
    s = c[:, size:size + h, size:size + w] - c[:, :h, size:size + w] - c[:, size:size + h, :w] + c[:, :h, :w]
    return (s / (size * size)).astype(np.float32)


def variants(nets):
    """The run as shipped, the net alone and the regression alone (each projected as the run projects)."""
    shipped = nets.fusion(2)
    alone = {w: replace(nets, overrides=((2, Fusion(w, shipped.projection_steps)),)) for w in (1.0, 0.0)}
    return {"shipped": nets, "net": alone[1.0], "regression": alone[0.0]}


def run(scene, kernel: str):
    got = prepared(scene, 2, kernel)
    if got is None:
        return None
    (b10, b20, _, target), read, nets = got
    h, w = b10.shape[1:]
    out, samples = {}, {}
    for name, n in variants(nets).items():
        out[name], _, valid = run_tiles(n, read, h, w)
        samples[name] = level_down_samples(n, read, h, w, 2)
    valid &= np.all(target != 0, axis=0)
    return out, upsample(b20, 2), target, valid, samples, nets.fusion(2).net_weight


def signals(est: dict, bicubic: np.ndarray, weights: tuple[float, ...], target: np.ndarray) -> dict[str, np.ndarray]:
    """Every candidate scale of one run (bands, h, w), and two ceilings that read the truth (not methods: how far
    any local scale could rank the errors, the true |error| smoothed over 5 x 5 pixels and over the 6 x 6 cells)."""
    base = error_scale(est["shipped"], bicubic)
    d = est["shipped"] - bicubic
    dis = est["net"] - est["regression"]
    dis2 = 0.75 * cell_mean(dis * dis, 6) + 0.25 * dis * dis
    r = DEFAULT_RULE
    energy = 0.75 * cell_mean(d * d, 6) + 0.25 * d * d
    level = (r.floor * cell_mean(np.abs(bicubic), 6)) ** 2 + r.absolute**2
    out = {"shipped": base, "reference 5x5 rms(d)": np.sqrt(np.maximum(box_mean(d * d, 5), 0)) + 1e-3,
           "disagreement alone": np.sqrt(dis2 + level) ** r.power}
    for a in weights:
        out[f"detail + {a:g} disagreement"] = np.sqrt(energy + a * dis2 + level) ** r.power
    true = np.abs(est["shipped"] - target)
    out["ceiling: 5x5 mean of the true |error|"] = box_mean(true, 5) + 1e-3
    out["ceiling: 6x6 cell mean of the true |error|"] = cell_mean(true, 6) + 1e-3
    return out


def score(sig: np.ndarray, err: np.ndarray) -> list[dict]:
    rows = []
    for e, s in zip(err, sig, strict=True):
        q = conformal_quantile(e / s)
        rows.append(interval_scores(e, q * s))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("selection", "test", "training"), default="selection")
    ap.add_argument("--kernel", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    ap.add_argument("--weights", type=float, nargs="+", default=[0.25, 1.0, 4.0])
    ap.add_argument("--shared-data", default="../shared/data")
    ap.add_argument("--cache", help="keep each run's arrays here")
    ap.add_argument("--json", help="write every row here")
    args = ap.parse_args()
    rows = []
    for kernel in args.kernel:
        for scene in load_scenes(args.split, Path(args.shared_data)):
            started = time.monotonic()
            path = Path(args.cache) / f"{scene.name}_{kernel}.pkl" if args.cache else None
            if path is not None and path.is_file():
                got = pickle.loads(path.read_bytes())
            else:
                got = run(scene, kernel)
                if path is not None and got is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(pickle.dumps(got))
            if got is None:
                continue
            est, bicubic, target, valid, samples, weight = got
            err = np.abs(est["shipped"] - target)[:, valid]
            for name, sig in signals(est, bicubic, tuple(args.weights), target).items():
                for band, sc in zip(BANDS_20M, score(sig[:, valid], err), strict=True):
                    rows.append({"kernel": kernel, "scene": scene.name, "signal": name, "band": band, "net_weight": weight, **sc})
            n = int(sum(s.mask.sum() for s in samples["shipped"]))
            print(f"{kernel} {scene.name} ({valid.shape[0]} px, net weight {weight}, {n} level-down px"
                  f"{'' if n >= MIN_PIXELS else ': too few to calibrate'}): {time.monotonic() - started:.0f} s",
                  file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    report(rows)
    return 0


def report(rows: list[dict]) -> None:
    names = list(dict.fromkeys(r["signal"] for r in rows))
    print("| kernel | scene | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for kernel, scene in dict.fromkeys((r["kernel"], r["scene"]) for r in rows):
        cells = []
        for name in names:
            sel = [r for r in rows if (r["kernel"], r["scene"], r["signal"]) == (kernel, scene, name)]
            cells.append(f"{np.median([r['informativeness'] for r in sel]):.2f} / {np.median([r['sharpness'] for r in sel]):.2f}")
        print(f"| {kernel} | {scene} | " + " | ".join(cells) + " |")
    for kernel in dict.fromkeys(r["kernel"] for r in rows):
        cells = []
        for name in names:
            sel = [r for r in rows if (r["kernel"], r["signal"]) == (kernel, name)]
            cells.append(f"{np.median([r['informativeness'] for r in sel]):.2f} / {np.median([r['sharpness'] for r in sel]):.2f}")
        print(f"| {kernel} | median over bands and scenes | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
