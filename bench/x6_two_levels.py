"""``python bench/x6_two_levels.py``: does the per-product x6 decision pick the better estimator one level up?

The one real product here large enough to go two levels down is the ``R60m`` of an L2A tile (29UNU, Ireland,
1830 px at 60 m; no x6 training or choice saw it). Its 60 m bands play a product: B2, B3, B4 and B8A (for B8)
the 10 m bands, its 20 m bands degraded by 2 the 20 m bands, B1 and B9 degraded by 6 the 60 m bands, under
the paper's or the sensor's kernel; the real 60 m B1 and B9 are the truth (as ``training.wald.level_down_pair``).
A run on that product makes its decision one level further down (B1 and B9 at 360 m against 2160 m), and the
truth says which estimator was better at the level the output is made. Printed: the decision, and the RMSE
ratio to bicubic of the shipped run, the regression alone and the net at the fused weight and at weight 1,
over the usable (clear, valid) pixels. Needs ``../shared/data``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from s2sr.adapt import AdaptOptions, prepare_nets
from s2sr.api import _reader, superresolve_with
from s2sr.bands import BANDS_20M, BANDS_60M
from s2sr.inference import load_nets
from s2sr.refine import Fusion
from s2sr.resample import upsample
from s2sr.sensor import PROTOCOLS
from s2sr.training.sources import r60m_scene
from s2sr.training.wald import degrade_group, protocol_blur


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-data", default="../shared/data")
    args = parser.parse_args()
    products = sorted(Path(args.shared_data).glob("*_MSIL2A_*.SAFE"))
    scenes = [s for p in products for s in r60m_scene(p)]
    if not scenes:
        print("no R60m product in --shared-data", file=sys.stderr)
        return 3
    for scene in scenes:
        h, w = (n // 36 * 36 for n in scene.size10)
        for kernel in PROTOCOLS:
            blur = protocol_blur(6, kernel)
            b10 = scene.fine[:, :h, :w]
            b20 = degrade_group(scene.mid[:, :h, :w], 2, BANDS_20M, {b: blur[b] / 3 for b in BANDS_20M})
            b60 = degrade_group(scene.coarse[:, :h, :w], 6, BANDS_60M, blur)
            truth, usable = scene.coarse[:, :h, :w], scene.usable[:h, :w]
            base = load_nets(scene.level, True)
            bicubic = upsample(b60, 6)

            def err(a, usable=usable, truth=truth):
                return np.sqrt(np.mean((a[:, usable] - truth[:, usable]).astype(np.float64) ** 2))

            def ratio(pred, bicubic=bicubic):
                return err(pred) / err(bicubic)

            out = {}
            shipped = superresolve_with(base, b10, b20, b60, tile_size=1098, adapt=AdaptOptions(steps=0))
            out["s2sr"] = ratio(shipped.b60)
            prepared = prepare_nets(base, _reader(b10, b20, b60), h, w, "estimate", AdaptOptions(steps=0))
            d = prepared.x6_decision
            for name, weight in (("regression alone", 0.0), (f"net at {d.fused_weight:g}", d.fused_weight), ("net at 1", 1.0)):
                nets = replace(base, overrides=((6, Fusion(weight, 1)),))
                out[name] = ratio(superresolve_with(nets, b10, b20, b60, tile_size=1098, adapt=AdaptOptions(steps=0)).b60)
            print(f"{scene.name}, {kernel} kernel: {d.describe()}")
            print("  " + ", ".join(f"{k} {v:.3f}" for k, v in out.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
