"""``make bench``: throughput and memory of the shipped path on this machine, printed as figures.

Runs one production-size tile (996 px core + border) through every stage of inference and reports each
stage's seconds per Mpx of output (nodata fill and upsampling, the nets, the regression, the projection,
DN conversion), then the whole tile through the library, peak resident memory, and the projected time of a
whole 10980 x 10980 product; then the full pipeline on a 600 px synthetic product (JP2 read, COG write).
"""

from __future__ import annotations

import os
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


def stage_costs(nets, tile: int) -> None:
    """Seconds of each stage for one tile, as ``inference.superresolve_groups`` runs them."""
    from s2sr.inference import FILL_REACH, BandGroup
    from s2sr.model import run_net
    from s2sr.refine import project, projection_reach, regression_detail, usable_coarse
    from s2sr.resample import block_mean, upsample
    from s2sr.sample import SampleSpec, _reflectance
    from s2sr.writer import to_dn

    border = nets.border
    side = tile + 2 * border
    refl = _reflectance(SampleSpec(size=side)) * 10000
    dn10 = refl[[1, 2, 3, 7]]
    dn20 = block_mean(refl[[4, 5, 6, 8, 11, 12]], 2)
    dn60 = block_mean(refl[[0, 9]], 6)
    for a in (dn10, dn20, dn60):  # a swath edge through the tile, so the fill has work to do
        f = side // a.shape[-1]
        r, c = np.indices(a.shape[1:])
        a[:, (r + c) * f > 1.5 * side] = 0
    times: dict[str, float] = {}

    def timed(name, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        times[name] = times.get(name, 0.0) + time.perf_counter() - start
        return out

    g10, g20, g60 = BandGroup.from_dn(dn10), BandGroup.from_dn(dn20), BandGroup.from_dn(dn60)
    x10 = timed("fill nodata", g10.filled, FILL_REACH)
    c20 = timed("fill nodata", g20.filled, FILL_REACH // 2)
    c60 = timed("fill nodata", g60.filled, FILL_REACH // 6)
    up20 = timed("bicubic upsampling", upsample, c20, 2)
    up60 = timed("bicubic upsampling", upsample, c60, 6)
    for scale, net, inputs, coarse, group in ((2, nets.x2, [x10, up20], c20, g20), (6, nets.x6, [x10, up20, up60], c60, g60)):
        fusion = nets.fusion(scale)
        crop = max(0, (border - projection_reach(scale, fusion.projection_steps) - net.manifest.architecture.receptive_radius) // 6 * 6)
        rows = slice(crop, side - crop)
        timed("nets", run_net, net, [a[:, rows, rows] for a in inputs])
        usable = timed("regression", usable_coarse, g10.valid, group.saturated, group.valid, scale)
        detail = timed("regression", regression_detail, x10, coarse, scale, usable, crop)
        c = crop // scale
        timed("consistency projection", project, inputs[-1][:, rows, rows] + detail,
              coarse[:, c : coarse.shape[1] - c, c : coarse.shape[2] - c], scale, fusion.projection_steps)
    inner = slice(border, side - border)
    block = np.concatenate([x10, up20, up60])[:, inner, inner]
    timed("mask and DN conversion", to_dn, block, g10.valid[inner, inner], np.zeros(block.shape, bool))
    mpx = tile * tile / 1e6
    total = sum(times.values())
    nets_s = times["nets"]
    print(f"stages of one {tile} px tile (read {side} px), seconds per Mpx of output and share of the tile:")
    for name, seconds in times.items():
        print(f"  {name:24s} {seconds / mpx:7.2f} s/Mpx  {100 * seconds / total:5.1f} %")
    print(f"  everything around the nets: {100 * (total - nets_s) / nets_s:.0f} % of the nets' time")


def main() -> int:
    nets = load_nets("L2A", True)
    arch = nets.x2.manifest.architecture
    tile = DEFAULT_TILE_SIZE
    side = tile + 2 * nets.border
    rng = np.random.default_rng(0)
    b10 = rng.integers(200, 4000, (4, tile, tile)).astype(np.uint16)
    b20 = rng.integers(200, 4000, (6, tile // 2, tile // 2)).astype(np.uint16)
    b60 = rng.integers(200, 4000, (2, tile // 6, tile // 6)).astype(np.uint16)
    s2sr.superresolve(b10[:, :48, :48], b20[:, :24, :24], b60[:, :8, :8])  # warm-up
    start = time.perf_counter()
    s2sr.superresolve(b10, b20, b60, tile_size=tile)  # one tile, its border mirrored as at a product edge
    seconds = time.perf_counter() - start
    tiles_per_product = (-(-10980 // tile)) ** 2
    print(f"nets: {arch.features} features, {arch.blocks} blocks; tile {tile} px + {nets.border} px border")
    print(f"one tile ({side} x {side} px read, {tile} x {tile} px out): {seconds:.1f} s, {tile * tile / seconds / 1e6:.3f} Mpx/s")
    print(f"whole 10980 x 10980 product ({tiles_per_product} tiles): about {seconds * tiles_per_product / 60:.0f} min here")
    print(f"peak resident memory after one tile: {peak_rss_gib():.2f} GiB")
    stage_costs(nets, tile)

    with tempfile.TemporaryDirectory() as tmp:
        product = build_sample_product(Path(tmp), SampleSpec(size=1200, nodata_edge=False))
        runs = {}
        for threads in (1, os.cpu_count() or 1):
            start = time.perf_counter()
            s2sr.superresolve_product(product, Path(tmp) / f"out{threads}.tif", tile_size=300, threads=threads)
            runs[threads] = time.perf_counter() - start
    for threads, seconds in runs.items():
        print(f"pipeline, 1200 x 1200 px product in 16 tiles (read JP2, nets, COG write), {threads} thread(s): {seconds:.1f} s")
    print(f"overlapping stages: {runs[1] / runs[max(runs)]:.2f}x the sequential run's speed")
    print(f"peak resident memory overall: {peak_rss_gib():.2f} GiB")
    batch_throughput()
    return 0


def batch_throughput() -> None:
    """Products per minute of ``s2sr batch`` with 1 and 2 workers, in one run (needs the batch extra)."""
    try:
        import ray
    except ImportError:
        print("batch: ray not installed (pip install s2sr[batch]); skipped")
        return
    from s2sr.batch import BatchOptions, run_batch

    with tempfile.TemporaryDirectory() as tmp:
        dates = ("20230615T101559", "20230715T101559", "20230815T101559", "20230915T101559")
        products = [build_sample_product(Path(tmp) / "in", SampleSpec(size=300, date=d, nodata_edge=False)) for d in dates]
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        try:
            rates = {}
            for workers in (1, 2):
                start = time.perf_counter()
                run_batch(products, Path(tmp) / f"out{workers}", BatchOptions(tile_size=300), workers=workers)
                rates[workers] = len(products) / (time.perf_counter() - start) * 60
                print(f"batch, {len(products)} products of 300 x 300 px, {workers} worker(s): {rates[workers]:.1f} products/min")
        finally:
            ray.shutdown()
    print(f"batch: 2 workers give {rates[2] / rates[1]:.2f}x the throughput of 1 on {os.cpu_count()} cores")


if __name__ == "__main__":
    sys.exit(main())
