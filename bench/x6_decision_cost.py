"""``python bench/x6_decision_cost.py``: the seconds of the per-product x6 decision on a whole product.

``prepare_nets`` (no adaptation) on ``bench/whole_product.py``'s 10980 px SAFE (built once into ``--dir``),
with the documented sensor model so that the blur table gives the x6 net a weight above 0 and the product is
judged; prints each stage's seconds and the decision.

    python bench/x6_decision_cost.py [--dir out/bench-product]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import rasterio
from whole_product import build

from s2sr.adapt import AdaptOptions, prepare_nets
from s2sr.inference import load_nets
from s2sr.pipeline import TILING_CACHE_BYTES
from s2sr.product import ProductReader, open_product
from s2sr.runner import StageTimes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("out/bench-product"))
    parser.add_argument("--sensor-model", default="mtf", choices=("estimate", "mtf", "paper"))
    args = parser.parse_args()
    located = open_product(build(args.dir))
    nets = load_nets(located.level, True, precision="auto")
    times = StageTimes()
    with rasterio.Env(GDAL_CACHEMAX=TILING_CACHE_BYTES), ProductReader(located) as reader:
        prepared = prepare_nets(nets, reader.read, reader.height, reader.width, args.sensor_model,
                                AdaptOptions(steps=0), times)
    print(", ".join(f"{k} {v:.1f} s" for k, v in times.seconds.items()))
    print(prepared.x6_decision.describe() if prepared.x6_decision else "x6 not judged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
