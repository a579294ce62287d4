"""``python bench/x6_decision.py``: B1 and B9 (x6) per scene under both kernels, three configurations side by side.

- ``s2sr``: what a run does (the x6 net at its fused weight only where the product's own level-down pairs
  say it wins, :mod:`s2sr.x6_decision`; otherwise the regression alone and the net does not run);
- ``regression alone``: the x6 net's weight forced to 0;
- ``net at weight 1``: the x6 net's estimate alone (it refines the regression), projected.

Wald's protocol as ``s2sr evaluate --scale 6`` (RMSE ratio to bicubic, per scene and pooled over every pixel),
no adaptation (it changes the x2 net only, which the x6 output does not read). Needs ``../shared/data``.

    python bench/x6_decision.py [--split test|selection|training|outside-test] [--kernel paper sensor]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from s2sr.refine import Fusion
from s2sr.sensor import PROTOCOLS
from s2sr.training.evaluate import BICUBIC, Method, evaluate_scenes, markdown, pooled_rows, ratio_table
from s2sr.training.sources import Scene, all_scenes
from s2sr.training.train import SELECTION_SCENES, TEST_SCENES

SHIPPED = Method("s2sr", adapt_steps=0)
REGRESSION = Method("regression alone", ((6, Fusion(0.0, 1)),), adapt_steps=0)
NET = Method("net at weight 1", ((6, Fusion(1.0, 1)),), adapt_steps=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("test", "selection", "training", "outside-test"), default="test")
    parser.add_argument("--kernel", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    parser.add_argument("--shared-data", default="../shared/data")
    args = parser.parse_args()
    scenes = [s for s in all_scenes(Path(args.shared_data)) if isinstance(s, Scene)]
    if args.split == "test":
        scenes = [s for s in scenes if s.name in TEST_SCENES]
    elif args.split == "selection":
        scenes = [s for s in scenes if s.name in SELECTION_SCENES]
    elif args.split == "training":
        scenes = [s for s in scenes if s.name not in TEST_SCENES + SELECTION_SCENES]
    else:
        scenes = [s for s in scenes if s.name not in TEST_SCENES]
    rows = evaluate_scenes(scenes, (6,), methods=(BICUBIC, SHIPPED, REGRESSION, NET), kernels=tuple(args.kernel),
                           log=lambda s: print(s, file=sys.stderr, flush=True))
    pooled = pooled_rows(rows)
    print(markdown(rows + pooled))
    ratios = ratio_table(rows)
    print("\n| kernel | scene | s2sr | regression alone | net at weight 1 | s2sr / regression |")
    print("|---|---|---|---|---|---|")
    for kernel, scene in dict.fromkeys((k, s) for k, s, _, _ in ratios):
        got = [ratios.get((kernel, scene, 6, m.name), float("nan")) for m in (SHIPPED, REGRESSION, NET)]
        print(f"| {kernel} | {scene} | {got[0]:.3f} | {got[1]:.3f} | {got[2]:.3f} | {got[0] / got[1]:.3f} |")
    for r in pooled:
        if r.method in (SHIPPED.name, REGRESSION.name, NET.name):
            print(f"pooled {r.kernel} {r.scene} {r.method}: RMSE {r.metrics['rmse']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
