"""B1 and B9 by the regression with more predictors: the 10 m bands alone (as shipped), or with the run's own x2
output (B5 ... B12 super-resolved to 10 m), on Wald pairs of real scenes (x6, the truth used only to score).

B9 (945 nm) follows B8A (865 nm) more closely than any 10 m band, and B1 (443 nm) the blue; the x2 output carries
the 20 m bands' structure at 10 m, so the regression of each 60 m band on the predictors degraded to its grid may
explain more of it. Each variant: bicubic + the local regression's detail, projected onto the measured 60 m band
at the sensor model's blur, as the run does with the x6 net at weight 0. RMSE ratio to bicubic, per scene and
pooled over every pixel.

    PYTHONPATH=src:bench python bench/x6_predictors.py --split outside-test
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from uncertainty import load_scenes, prepared, run_tiles

from s2sr.bands import BANDS_20M, BANDS_60M
from s2sr.refine import Fusion, project, regression_detail
from s2sr.resample import upsample
from s2sr.sensor import PROTOCOLS

VARIANTS = {
    "10 m bands (shipped)": (),
    "+ B8A": ("B8A",),
    "+ B5 B8A B11": ("B5", "B8A", "B11"),
    "+ all six x2 bands": BANDS_20M,
}


def run(scene, kernel: str) -> dict[str, tuple[float, int]] | None:
    got = prepared(scene, 6, kernel, overrides=((6, Fusion(0.0, 1)),))
    if got is None:
        return None
    (b10, _, b60, target), read, nets = got
    sr20, shipped, _ = run_tiles(nets, read, *b10.shape[1:])
    bicubic = upsample(b60, 6)
    usable = np.ones(b60.shape[1:], bool)
    out = {"pipeline, regression alone": shipped, "bicubic": bicubic}
    for name, extra in VARIANTS.items():
        predictors = np.concatenate([b10, sr20[[BANDS_20M.index(b) for b in extra]]]) if extra else b10
        est = np.empty_like(bicubic)
        for sigma, idx in nets.sensor.fit_groups(BANDS_60M):
            detail = regression_detail(predictors, b60[idx], 6, usable, 0, sigma)
            est[idx] = project(bicubic[idx] + detail, b60[idx], 6, nets.fusion(6).projection_steps, sigma)
        out[name] = est
    valid = np.all(target != 0, axis=0)
    return {k: (float(((v[:, valid] - target[:, valid]) ** 2).sum()), int(valid.sum() * len(target))) for k, v in out.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("test", "selection", "training", "outside-test"), default="outside-test")
    ap.add_argument("--kernel", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    ap.add_argument("--shared-data", default="../shared/data")
    args = ap.parse_args()
    shared = Path(args.shared_data)
    splits = ("training", "selection") if args.split == "outside-test" else (args.split,)
    scenes = [s for split in splits for s in load_scenes(split, shared)]
    names = ["pipeline, regression alone", *VARIANTS]
    print("| kernel | scene | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for kernel in args.kernel:
        pooled: dict[str, list[float]] = {}
        for scene in scenes:
            got = run(scene, kernel)
            if got is None:
                continue
            ref = got["bicubic"]
            for k, (sq, n) in got.items():
                a = pooled.setdefault(k, [0.0, 0])
                a[0] += sq
                a[1] += n
            print(f"| {kernel} | {scene.name} | " + " | ".join(f"{np.sqrt(got[k][0] / ref[0]):.3f}" for k in names) + " |",
                  flush=True)
        if pooled:
            print(f"| {kernel} | pooled | " + " | ".join(f"{np.sqrt(pooled[k][0] / pooled['bicubic'][0]):.3f}" for k in names) + " |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
