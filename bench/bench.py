"""``make bench``: throughput and memory of the shipped nets on this machine, printed as figures.

Runs one production-size tile (996 px core + border) through both nets, reports seconds per tile, pixel
rate, peak resident memory, and the projected time of a whole 10980 x 10980 product; then the full
pipeline on a 600 px synthetic product to show the I/O and writing overhead.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import s2sr
from s2sr.inference import load_nets
from s2sr.pipeline import DEFAULT_TILE_SIZE
from s2sr.sample import SampleSpec, build_sample_product


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> int:
    nets = load_nets("L2A", True)
    arch = nets.x2.manifest.architecture
    tile = DEFAULT_TILE_SIZE
    side = tile + 2 * nets.border
    rng = np.random.default_rng(0)
    b10 = rng.integers(200, 4000, (4, side, side)).astype(np.uint16)
    b20 = rng.integers(200, 4000, (6, side // 2, side // 2)).astype(np.uint16)
    b60 = rng.integers(200, 4000, (2, side // 6, side // 6)).astype(np.uint16)
    s2sr.superresolve(b10[:, :48, :48], b20[:, :24, :24], b60[:, :8, :8])  # warm-up
    start = time.perf_counter()
    s2sr.superresolve(b10, b20, b60, tile_size=side)
    seconds = time.perf_counter() - start
    tiles_per_product = (-(-10980 // tile)) ** 2
    print(f"nets: {arch.features} features, {arch.blocks} blocks; tile {tile} px + {nets.border} px border")
    print(f"one tile ({side} x {side} px read): {seconds:.1f} s, {side * side / seconds / 1e6:.2f} Mpx/s")
    print(f"whole 10980 x 10980 product ({tiles_per_product} tiles): about {seconds * tiles_per_product / 60:.0f} min here")
    print(f"peak resident memory after one tile: {peak_rss_gib():.2f} GiB")

    with tempfile.TemporaryDirectory() as tmp:
        product = build_sample_product(Path(tmp), SampleSpec(size=600))
        start = time.perf_counter()
        s2sr.superresolve_product(product, Path(tmp) / "out.tif", tile_size=300)
        seconds = time.perf_counter() - start
    print(f"pipeline, 600 x 600 px product in 4 tiles (read JP2, nets, COG write): {seconds:.1f} s")
    print(f"peak resident memory overall: {peak_rss_gib():.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
