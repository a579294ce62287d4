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


def stage_costs(nets, tile: int) -> dict[str, float]:
    """Seconds per Mpx of output of each phase of one tile, as the library runs it (``superresolve_groups``
    with its stage times), and the nets' FLOP/s against the matmul rate measured right after."""
    from runtimes import matmul_rate, net_flops

    from s2sr.inference import BandGroup, _ScaleWork, superresolve_groups
    from s2sr.resample import block_mean
    from s2sr.runner import StageTimes
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
    groups = [BandGroup.from_dn(np.rint(a)) for a in (dn10, dn20, dn60)]
    superresolve_groups(nets, *groups, border=border)  # warm start
    times = StageTimes()
    result = superresolve_groups(nets, *groups, border=border, times=times)
    with times.timing("mask and DN conversion"):
        to_dn(np.concatenate([result.b10, result.b20, result.b60]), result.valid, np.zeros((12, tile, tile), bool))
    matmul = matmul_rate()
    flops = 0.0
    for scale, net in ((2, nets.x2), (6, nets.x6)):
        crop = _ScaleWork(scale, net, nets.fusion(scale), [], None, None).crop(border)
        flops += net_flops(net, (side - 2 * crop) ** 2)
    mpx = tile * tile / 1e6
    total = sum(times.seconds.values())
    print(f"compute phases of one {tile} px tile (read {side} px, a swath edge across it), {nets.threads} array thread(s):")
    for name, seconds in times.seconds.items():
        print(f"  {name:24s} {seconds / mpx:6.2f} s/Mpx  {100 * seconds / total:5.1f} %")
    rate = flops / times.seconds["nets"]
    print(f"  nets: {rate / 1e9:.0f} GFLOP/s, {rate / matmul:.2f} of this machine's float32 matmul rate "
          f"({matmul / 1e9:.0f} GFLOP/s, the best 2048 x 2048 matmul, measured right after)")
    return {name: seconds / mpx for name, seconds in times.seconds.items()}


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
    per_mpx = stage_costs(nets, tile)

    from s2sr.runner import StageTimes

    with tempfile.TemporaryDirectory() as tmp:
        product = build_sample_product(Path(tmp), SampleSpec(size=1200, nodata_edge=False))
        runs, stages = {}, {}
        for threads in (1, os.cpu_count() or 1):
            stages[threads] = StageTimes()
            start = time.perf_counter()
            s2sr.superresolve_product(product, Path(tmp) / f"out{threads}.tif", tile_size=300, threads=threads,
                                      stage_times=stages[threads])
            runs[threads] = time.perf_counter() - start
    for threads, seconds in runs.items():
        print(f"pipeline, 1200 x 1200 px product in 16 tiles (read JP2, nets, COG write), {threads} thread(s): {seconds:.1f} s")
        print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in stages[threads].seconds.items()))
    print(f"overlapping stages: {runs[1] / runs[max(runs)]:.2f}x the sequential run's speed")
    sequential = stages[1].seconds
    write_per_mpx = (sequential["write"] + sequential["finish COG"]) / 1.44
    read_per_mpx = sequential["read"] / 1.44
    around = per_mpx["prepare"] + per_mpx["regression"] + per_mpx["fusion and projection"] + write_per_mpx
    print(f"decode {read_per_mpx:.2f} s/Mpx; mask, DN conversion and COG write {write_per_mpx:.2f} s/Mpx "
          "(the 1200 px run, sequential)")
    print(f"everything around the nets (prepare, regression, fusion and projection, DN conversion and COG write; "
          f"decode apart): {100 * around / per_mpx['nets']:.0f} % of the nets' time")
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
