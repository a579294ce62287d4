"""``make bench-ceiling``: how far any linear detail injection could take B1 and B9 at x6, on the test scenes.

An oracle bound, not a method: each scene's real 60 m B1 and B9 (the Wald target) are fitted, by least
squares, as linear in predictors on the 60 m output grid, using the target itself. No regression fitted on the
360 m input can beat the same predictors fitted to the answer, so these figures bound what the shipped
regression (the 10 m bands' local fit) could ever reach, and what adding the 20 m bands could (here at their
true 60 m values, which a product never has: its 20 m bands are 120 m in the x6 protocol, and as s2sr's own
x2 output from them, which is what a product has). Printed beside the
shipped output and bicubic, per scene and pooled like ``s2sr evaluate`` (RMSE over every valid pixel, ratio
to bicubic), under both degradation kernels. Needs ``../shared/data`` (or ``--shared-data``).

    python bench/x6_ceiling.py [--shared-data ../shared/data] [--level L1C]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from s2sr.api import superresolve_with
from s2sr.inference import load_nets
from s2sr.refine import _box_sum
from s2sr.resample import upsample
from s2sr.sensor import PROTOCOLS
from s2sr.training.evaluate import _sums, wald_inputs
from s2sr.training.sources import all_scenes
from s2sr.training.train import TEST_SCENES

#: Half-width of the oracle's local fit window in 60 m pixels: 17 x 17 (1 km, the regression's window at x6).
LOCAL_RADIUS = 8
RIDGE = 1e-3


def global_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares fit of ``y`` (h, w) as affine in ``x`` (p, h, w) over the whole scene, evaluated."""
    a = np.concatenate([x.reshape(len(x), -1), np.ones((1, y.size))]).T
    return (a @ np.linalg.lstsq(a, y.reshape(-1), rcond=None)[0]).reshape(y.shape)


def local_fit(x: np.ndarray, y: np.ndarray, radius: int = LOCAL_RADIUS) -> np.ndarray:
    """Ridge fit of ``y`` as affine in ``x`` over a (2 radius + 1)^2 window around every pixel, evaluated there."""
    p = len(x)
    n = _box_sum(np.ones(y.shape), radius)
    mean_x = np.stack([_box_sum(v, radius) for v in x]) / n
    mean_y = _box_sum(y, radius) / n
    cov = np.empty((*y.shape, p, p))
    cross = np.empty((*y.shape, p))
    for k in range(p):
        cross[..., k] = _box_sum(x[k], radius, times=y) / n - mean_x[k] * mean_y
        for j in range(k + 1):
            cov[..., k, j] = cov[..., j, k] = _box_sum(x[k], radius, times=x[j]) / n - mean_x[k] * mean_x[j]
    cov[..., range(p), range(p)] = cov[..., range(p), range(p)] * (1 + RIDGE) + 1e-6
    coef = np.linalg.solve(cov, cross[..., None])[..., 0]
    return mean_y + np.einsum("hwk,khw->hw", coef, x - mean_x)


def ceilings(scene, kernel: str) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """{method: (prediction, target)} for one scene under one kernel; None if it is too small for x6."""
    inputs = wald_inputs(scene, 6, kernel)
    if inputs is None:
        return None
    b10, b20, b60, target = inputs
    h, w = target.shape[1:]
    true20 = scene.im20[:, : 3 * h, : 3 * w].astype(np.float64).reshape(-1, h, 3, w, 3).mean(axis=(2, 4))
    x10 = b10.astype(np.float64)
    x1020 = np.concatenate([x10, true20])
    y = target.astype(np.float64)
    shipped = superresolve_with(load_nets(scene.level, True, precision="float32"), b10, b20, b60)  # as the table
    out = {"bicubic": (upsample(b60, 6), target), "s2sr (shipped)": (shipped.b60, target)}
    x10sr20 = np.concatenate([x10, shipped.b20.astype(np.float64)])
    for name, fit, x in (("oracle: 10 m bands, whole scene", global_fit, x10),
                         ("oracle: 10 m bands, local 1 km", local_fit, x10),
                         ("oracle: 10 m + s2sr's 20 m bands, local 1 km", local_fit, x10sr20),
                         ("oracle: 10 m + true 20 m bands, local 1 km", local_fit, x1020)):
        out[name] = (np.stack([fit(x, y[b]) for b in range(len(y))]), target)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--level", default="L1C")
    args = parser.parse_args(argv)
    if not args.shared_data.is_dir():
        print(f"no real scenes: {args.shared_data} is not a folder (give --shared-data)")
        return 1
    scenes = [s for s in all_scenes(args.shared_data) if s.name in TEST_SCENES and s.level == args.level]
    for kernel in PROTOCOLS:
        pooled: dict[str, list[float]] = {}
        print(f"\n{kernel} kernel, x6 {args.level} test scenes: RMSE / bicubic RMSE (B1, B9)")
        for scene in scenes:
            got = ceilings(scene, kernel)
            if got is None:
                continue
            sq = {name: _sums(p, t)["sq"] for name, (p, t) in got.items()}
            for name, v in sq.items():
                pooled.setdefault(name, []).append(v)
            print(f"  {scene.name} ({scene.size10[0]} x {scene.size10[1]} px at 10 m): "
                  + ", ".join(f"{name} {np.sqrt(v / sq['bicubic']):.3f}" for name, v in sq.items() if name != "bicubic"))
        total_bicubic = sum(pooled["bicubic"])
        for name, values in pooled.items():
            if name != "bicubic":
                print(f"  pooled, {name}: {np.sqrt(sum(values) / total_bicubic):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
