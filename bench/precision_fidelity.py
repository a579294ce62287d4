"""``make bench-precision``: bfloat16 nets judged by what users get, against float32, on real imagery.

Runs the evaluation of ``s2sr evaluate`` (Wald protocol, the test scenes, through the run path) with the nets
in float32 and in bfloat16 in one process, and prints both pooled tables' RMSE ratios to bicubic side by
side with their change (the rule: at most 0.005 at each scale and level). Then, on every real scene this
machine has, the 99.9th percentile and the maximum of |bfloat16 - float32| per band of the shipped output
(and of the nets alone), in DN. Needs ``../shared/data`` (or ``--shared-data``) for most scenes.

    python bench/precision_fidelity.py [--shared-data ../shared/data] [--split test] [--scale 2 6]

The per-band differences are taken under both degradation kernels: at x6 the net's weight follows the blur
the run measures (0 at the paper's almost-box kernel, 1 at the documented MTF), so only the sensor's kernel
shows what bfloat16 does to a product whose 60 m net runs.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

from s2sr.bands import BANDS_20M, BANDS_60M
from s2sr.sensor import PROTOCOLS
from s2sr.training.evaluate import NET_ONLY, SHIPPED, evaluate_scenes, pooled_rows, predict, ratio_table
from s2sr.training.sources import Scene, all_scenes
from s2sr.training.train import SELECTION_SCENES, TEST_SCENES

PRECISIONS = ("float32", "bfloat16")
RULE = 0.005


def split_of(scenes: list, split: str) -> list:
    if split == "test":
        return [s for s in scenes if s.name in TEST_SCENES]
    if split == "selection":
        return [s for s in scenes if s.name in SELECTION_SCENES]
    return scenes


def pooled_ratios(scenes: list, scales: tuple[int, ...] = (2, 6)) -> dict[str, dict]:
    """Per precision: {(kernel, pooled row, scale, method): RMSE ratio to bicubic}, under both kernels."""
    out = {}
    for precision in PRECISIONS:
        rows = evaluate_scenes(scenes, scales, precision=precision)
        pooled = pooled_rows(rows)
        out[precision] = {k: v for k, v in ratio_table(pooled).items() if k[3] != "bicubic"}
    return out


def band_differences(scenes: list, scales: tuple[int, ...] = (2, 6)) -> None:
    """99.9th percentile and max of |bfloat16 - float32| per band, pooled over the scenes' valid pixels, per
    degradation kernel."""
    for kernel, method, (scale, names) in itertools.product(PROTOCOLS, (SHIPPED, NET_ONLY),
                                                            ((2, BANDS_20M), (6, BANDS_60M))):
        if scale not in scales:
            continue
        diffs: list[list[np.ndarray]] = [[] for _ in names]
        used = []
        for scene in scenes:
            got = {p: predict(scene, scale, method, kernel=kernel, precision=p) for p in PRECISIONS}
            if got["float32"] is None:
                continue
            (ref, target), (bf, _) = got["float32"], got["bfloat16"]
            valid = np.all(target != 0, axis=0) & np.all(ref != 0, axis=0)
            for i in range(len(names)):
                diffs[i].append(np.abs(bf[i] - ref[i])[valid])
            used.append(scene.name)
        if not used:
            continue
        cells = []
        for name, parts in zip(names, diffs, strict=True):
            d = np.concatenate(parts)
            cells.append(f"{name} {np.percentile(d, 99.9):.1f} (max {d.max():.0f})")
        pixels = sum(len(p) for p in diffs[0])
        print(f"  {kernel:6s} x{scale} {method.name:15s} over {len(used)} scenes, {pixels / 1e6:.2f} Mpx: " + ", ".join(cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--split", choices=("test", "selection", "all"), default="test",
                        help="scenes of the pooled table (default test: the README's)")
    parser.add_argument("--scale", type=int, nargs="+", choices=(2, 6), default=[2, 6])
    args = parser.parse_args()
    scenes = [s for s in all_scenes(args.shared_data if args.shared_data.is_dir() else None)
              if isinstance(s, Scene)]  # level-down scenes only train
    if not scenes:
        print("no real scenes on this machine (install the training extras, or give --shared-data)")
        return 3
    table = split_of(scenes, args.split)
    ratios = pooled_ratios(table, tuple(args.scale))
    print(f"pooled RMSE ratio to bicubic, {args.split} scenes ({len(table)}), nets in float32 and in bfloat16:")
    worst = 0.0
    for key, ref in ratios["float32"].items():
        bf = ratios["bfloat16"][key]
        worst = max(worst, abs(bf - ref))
        print(f"  {key[0]:6s} x{key[2]} {key[1]:32s} {key[3]:15s} {ref:.4f} {bf:.4f}  change {bf - ref:+.4f}")
    print(f"largest change {worst:.4f} (rule: at most {RULE}): {'holds' if worst <= RULE else 'BROKEN'}")
    print(f"|bfloat16 - float32| in DN per band, 99.9th percentile (max), all {len(scenes)} real scenes:")
    band_differences(scenes, tuple(args.scale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
