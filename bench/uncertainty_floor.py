"""How the absolute floor of the uncertainty's error scale was chosen: coverage and sharpness per floor, per scene.

The scale (``s2sr.uncertainty.ScaleRule``) had a floor only proportional to the local level (1 %); over dark
water that is a DN or two, and the intervals of a water patch held 0.54 - 0.60 of its true values. This scores
the rule with an absolute floor of ``--floors`` DN on the runs ``bench/uncertainty.py --cache`` kept (run that
first on the split), each floor calibrated as a run calibrates it: on the scene itself one level down where it
is large enough, else the quantiles of the manifests in ``--weights-dir`` applied to that floor's scale (the
manifests of the release being changed: 0.5.0's, made without the floor, so that the floors are compared on
one fallback). Informativeness is the same whatever the calibration (it ranks pixels); coverage and sharpness
are the run's. Last, leave one scene out: the floor each scene would get if it were chosen on the others
(lowest scene coverage at least 0.75, then the lowest median sharpness), and what that floor gives the scene
left out.

    python bench/uncertainty.py --split selection --scale 2 6 --cache /tmp/unc     # the runs, once
    python bench/uncertainty_floor.py --split selection --scale 2 6 --cache /tmp/unc --weights-dir W --floors 0 5 10
"""

from __future__ import annotations

import argparse
import pickle
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from s2sr.inference import load_nets
from s2sr.training.metrics import interval_scores
from s2sr.uncertainty import DEFAULT_RULE, calibrate_from, error_scale


def any_rule(net):
    """``net`` with its manifest's shipped calibration taken for any scale rule (its ``rule`` dropped)."""
    record = {k: v for k, v in (net.manifest.uncertainty or {}).items() if k != "rule"}
    return SimpleNamespace(manifest=SimpleNamespace(uncertainty=record))


def main() -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    from uncertainty import load_scenes

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("selection", "test", "training"), default="selection")
    ap.add_argument("--scale", type=int, nargs="+", default=[2, 6])
    ap.add_argument("--cache", required=True, help="the folder bench/uncertainty.py --cache filled")
    ap.add_argument("--weights-dir", help="the manifests whose shipped quantiles the small scenes fall back on")
    ap.add_argument("--floors", type=float, nargs="+", default=[0.0, 5.0, 10.0])
    ap.add_argument("--shared-data", default="../shared/data")
    args = ap.parse_args()
    scenes = load_scenes(args.split, Path(args.shared_data))
    nets = load_nets("L2A", True, Path(args.weights_dir) if args.weights_dir else None)
    print("| scale | kernel | absolute floor (DN) | pooled coverage | lowest scene | median sharpness | median "
          "informativeness | per scene: calibration coverage / sharpness |")
    print("|---|---|---|---|---|---|---|---|")
    by_scene: dict[tuple[int, str, float, str], tuple[float, float]] = {}  # (scale, kernel, floor, scene): coverage, sharpness
    for scale in args.scale:
        net = any_rule(nets.x2 if scale == 2 else nets.x6)
        for kernel in ("paper", "sensor"):
            for floor in args.floors:
                rule = replace(DEFAULT_RULE, absolute=floor)
                rows = []
                for scene in scenes:
                    path = Path(args.cache) / f"{scene.name}_x{scale}_{kernel}.pkl"
                    if not path.is_file():
                        continue
                    est, bicubic, target, valid, _, samples = pickle.loads(path.read_bytes())
                    calibration = calibrate_from(samples, net, scale, rule)
                    err = np.abs(est - target)[:, valid]
                    s = error_scale(est, bicubic, rule)[:, valid]
                    bands = [interval_scores(err[i], q * s[i]) for i, q in enumerate(calibration.quantiles)]
                    pixels = sum(b["pixels"] for b in bands)
                    rows.append((scene.name, calibration.source, sum(b["coverage"] * b["pixels"] for b in bands) / pixels,
                                 pixels, np.median([b["sharpness"] for b in bands]),
                                 np.median([b["informativeness"] for b in bands])))
                for r in rows:
                    by_scene[(scale, kernel, floor, r[0])] = (r[2], r[4])
                if not rows:
                    continue
                pooled = sum(r[2] * r[3] for r in rows) / sum(r[3] for r in rows)
                low = min(rows, key=lambda r: r[2])
                print(f"| x{scale} | {kernel} | {floor:g} | {pooled:.3f} | {low[2]:.3f} ({low[0]}) | "
                      f"{np.median([r[4] for r in rows]):.2f} | {np.median([r[5] for r in rows]):.2f} | "
                      + "; ".join(f"{r[0]}: {r[1]} {r[2]:.2f} / {r[4]:.2f}" for r in rows) + " |", flush=True)
    leave_one_scene_out(by_scene, args.floors)
    return 0


def choose(by_scene: dict, floors: list[float], scenes: set[str]) -> float:
    """The floor whose lowest scene coverage (every scale and kernel, over ``scenes``) is at least 0.75, then
    with the lowest median sharpness over them; the lowest-coverage floor's best where none reaches 0.75."""
    def figures(floor):
        rows = [v for (_, _, f, scene), v in by_scene.items() if f == floor and scene in scenes]
        return min(c for c, _ in rows), float(np.median([h for _, h in rows]))

    scored = {f: figures(f) for f in floors}
    holding = [f for f in floors if scored[f][0] >= 0.75] or [max(floors, key=lambda f: scored[f][0])]
    return min(holding, key=lambda f: scored[f][1])


def leave_one_scene_out(by_scene: dict, floors: list[float]) -> None:
    """Per scene: the floor chosen on the other scenes, and what it gives the scene left out against no floor."""
    scenes = sorted({key[3] for key in by_scene})
    print("\n| left out | floor chosen on the others | its coverage / sharpness there (each scale and kernel) "
          "| without a floor |")
    print("|---|---|---|---|")
    for scene in scenes:
        floor = choose(by_scene, floors, set(scenes) - {scene})
        keys = sorted((k for k in by_scene if k[3] == scene and k[2] == floor), key=lambda k: (k[0], k[1]))

        def cells(f, keys=keys, scene=scene):
            return "; ".join(f"x{k[0]} {k[1]} {by_scene[(k[0], k[1], f, scene)][0]:.2f} / "
                             f"{by_scene[(k[0], k[1], f, scene)][1]:.2f}" for k in keys if (k[0], k[1], f, scene) in by_scene)

        print(f"| {scene} | {floor:g} | {cells(floor)} | {cells(min(floors))} |")


if __name__ == "__main__":
    sys.exit(main())
