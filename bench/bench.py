"""``make bench``: throughput and memory of the shipped path on this machine, printed as figures.

Runs one production-size tile (996 px core + border) through every stage of inference and reports each
stage's seconds per Mpx of output (nodata fill and upsampling, the nets, the regression, the projection,
DN conversion) and each net's seconds per tile (the x2 and x6 nets alternated), then the whole tile through
the library, peak resident memory, and the projected time of a whole 10980 x 10980 product; then the full
pipeline on a 600 px synthetic product (JP2 read, COG write).
The nets run in the default precision (``auto``: bfloat16 where the CPU runs it natively); the one-tile run
(each precision in a fresh process, for its own peak memory) and the nets' seconds per Mpx (the two
precisions alternated in one process) are also shown for float32 against auto.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
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


def tile_groups(nets, tile: int) -> dict[str, list]:
    """The groups of one tile with the border ``nets`` need: inside the swath, and with a swath edge across it."""
    from s2sr.inference import BandGroup
    from s2sr.resample import block_mean
    from s2sr.sample import SampleSpec, _reflectance

    side = tile + 2 * nets.border
    refl = _reflectance(SampleSpec(size=side)) * 10000
    inside = [refl[[1, 2, 3, 7]], block_mean(refl[[4, 5, 6, 8, 11, 12]], 2), block_mean(refl[[0, 9]], 6)]
    edge = [a.copy() for a in inside]
    for a in edge:  # a swath edge through the tile, so the fill has work to do
        f = side // a.shape[-1]
        r, c = np.indices(a.shape[1:])
        a[:, (r + c) * f > 1.5 * side] = 0
    return {name: [BandGroup.from_dn(np.rint(a)) for a in arrays]
            for name, arrays in (("inside the swath", inside), ("a swath edge across it", edge))}


def precision_costs(tile: int, rounds: int = 3) -> None:
    """The nets' seconds per Mpx of output, float32 against auto, on the same tile, the two alternated."""
    from s2sr.inference import superresolve_groups
    from s2sr.model import compute_device
    from s2sr.runner import StageTimes

    nets = {p: load_nets("L2A", True, precision=p) for p in ("float32", "auto")}
    groups = tile_groups(nets["auto"], tile)["inside the swath"]
    mpx = tile * tile / 1e6
    best = {p: float("inf") for p in nets}
    outputs = {}
    for n in range(rounds + 1):  # the first round warms up
        for p, those in nets.items():
            times = StageTimes()
            outputs[p] = superresolve_groups(those, *groups, border=those.border, times=times)
            if n:
                best[p] = min(best[p], times.seconds["nets"] / mpx)
    diff = max(float(np.abs(getattr(outputs["auto"], g) - getattr(outputs["float32"], g)).max()) for g in ("b20", "b60"))
    print(f"nets of one {tile} px tile, float32 and auto alternated, best of {rounds}:")
    for p, per_mpx in best.items():
        print(f"  {p:8s} {per_mpx:6.2f} s/Mpx  ({compute_device('auto', p)})")
    print(f"  auto {best['float32'] / best['auto']:.2f}x as fast as float32; largest |auto - float32| of the tile's "
          f"output {diff:.1f} DN")


def one_tile(precision: str) -> dict:
    """One production tile through the library in this process: seconds, and the peak memory it takes."""
    tile = DEFAULT_TILE_SIZE
    rng = np.random.default_rng(0)
    b10 = rng.integers(200, 4000, (4, tile, tile)).astype(np.uint16)
    b20 = rng.integers(200, 4000, (6, tile // 2, tile // 2)).astype(np.uint16)
    b60 = rng.integers(200, 4000, (2, tile // 6, tile // 6)).astype(np.uint16)
    s2sr.superresolve(b10[:, :48, :48], b20[:, :24, :24], b60[:, :8, :8], precision=precision)  # warm-up
    start = time.perf_counter()
    s2sr.superresolve(b10, b20, b60, tile_size=tile, precision=precision)  # its border mirrored as at a product edge
    return {"seconds": time.perf_counter() - start, "peak_rss_gib": peak_rss_gib()}


def stage_costs(nets, tile: int) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """Seconds per Mpx of output of each phase of one tile, as the library runs it (``superresolve_groups``
    with its stage times), for a tile inside the swath (most of a product's; best of two runs) and one with a
    swath edge across it (the fill's worst case), and the nets' FLOP/s (their best run) against the matmul
    rate measured right after. Also returns the interior tile's DN block, for the COG figure."""
    from runtimes import matmul_rate, net_flops

    from s2sr.inference import net_crop, superresolve_groups
    from s2sr.runner import StageTimes
    from s2sr.writer import to_dn

    border = nets.border
    side = tile + 2 * border
    groups = tile_groups(nets, tile)
    superresolve_groups(nets, *groups["inside the swath"], border=border)  # warm start
    mpx = tile * tile / 1e6
    costs: dict[str, dict[str, float]] = {}
    nets_seconds = []
    for name in ("inside the swath", "a swath edge across it", "inside the swath"):
        times = StageTimes()
        result = superresolve_groups(nets, *groups[name], border=border, times=times)
        with times.timing("mask and DN conversion"):
            block = np.empty((12, tile, tile), np.uint16)
            bands = [band for group in (result.b10, result.b20, result.b60) for band in group]
            for i, band in enumerate(bands):  # band by band into the block, as the pipeline writes
                to_dn(band[None], result.valid, np.zeros((1, tile, tile), bool), out=block[i : i + 1])
        if name == "inside the swath":
            dn_block = block
        nets_seconds.append(times.seconds["nets"])
        per_mpx = {stage: seconds / mpx for stage, seconds in times.seconds.items()}
        costs[name] = {k: min(v, costs.get(name, per_mpx)[k]) for k, v in per_mpx.items()}
    matmul = matmul_rate()
    flops = sum(net_flops(net, (side - 2 * net_crop(scale, net, nets.fusion(scale), border)) ** 2)
                for scale, net in ((2, nets.x2), (6, nets.x6)))
    print(f"compute phases of one {tile} px tile (read {side} px), {nets.threads} array thread(s); "
          "inside the swath the best of two runs:")
    print(f"  {'':24s} {'inside the swath':>18s} {'swath edge across':>18s}")
    for stage in costs["inside the swath"]:
        a, b = costs["inside the swath"][stage], costs["a swath edge across it"][stage]
        print(f"  {stage:24s} {a:12.2f} s/Mpx {b:12.2f} s/Mpx")
    rate = flops / min(nets_seconds)
    print(f"  nets: {rate / 1e9:.0f} GFLOP/s, {rate / matmul:.2f} of this machine's float32 matmul rate "
          f"({matmul / 1e9:.0f} GFLOP/s, the best 2048 x 2048 matmul, measured right after; the nets' best run of "
          f"three, the slowest {flops / max(nets_seconds) / matmul:.2f})")
    return costs, dn_block


def net_split(nets, tile: int, rounds: int = 3) -> dict[int, float]:
    """Each net's seconds on the inputs one production tile gives it (the tile plus border less its crop), the
    two alternated, best of ``rounds``: what each net costs a product, tile by tile."""
    from s2sr.inference import net_crop
    from s2sr.model import run_net

    rng = np.random.default_rng(0)
    side = tile + 2 * nets.border
    work = {}
    for scale, net in ((2, nets.x2), (6, nets.x6)):
        n = side - 2 * net_crop(scale, net, nets.fusion(scale), nets.border)
        work[scale] = (net, [rng.uniform(500, 3000, (len(bands), n, n)).astype(np.float32)
                             for bands in net.manifest.input_bands.values()])
        run_net(*work[scale])  # warm start
    best = {scale: float("inf") for scale in work}
    for _ in range(rounds):
        for scale, (net, inputs) in work.items():
            start = time.perf_counter()
            run_net(net, inputs)
            best[scale] = min(best[scale], time.perf_counter() - start)
    total = sum(best.values())
    for scale, (net, inputs) in work.items():
        arch = net.manifest.architecture
        print(f"  x{scale} net ({arch.features} features, {arch.blocks} blocks) on {inputs[0].shape[-1]} px: "
              f"{best[scale]:.2f} s per tile, {best[scale] / total:.0%} of the nets' time (best of {rounds}, alternated)")
    return best


def cog_write_cost(block: np.ndarray, repeat: int = 4) -> float:
    """Seconds per Mpx of writing a COG (staging writes, own first overview, finish) of ``repeat`` x ``repeat``
    tiles of ``block`` (a tile's DN output, so it compresses like real output), through the library's writer."""
    from affine import Affine

    from s2sr.bands import BANDS_10M, BANDS_20M, BANDS_60M
    from s2sr.runner import StageTimes
    from s2sr.tiling import Window
    from s2sr.writer import CogWriter

    tile = block.shape[-1]
    side = tile * repeat
    times = StageTimes()
    with tempfile.TemporaryDirectory() as tmp:
        with CogWriter(Path(tmp) / "out.tif", crs="EPSG:32633", transform=Affine(10, 0, 300000, 0, -10, 5000000),
                       height=side, width=side, bands=BANDS_10M + BANDS_20M + BANDS_60M, tags={}, times=times) as writer:
            for r in range(repeat):
                for c in range(repeat):
                    with times.timing("write"):
                        writer.write(block, Window(r * tile, c * tile, tile, tile))
    seconds = times.seconds["write"] + times.seconds["finish COG"]
    print(f"COG of a {side} x {side} px output ({repeat * repeat} tiles of that tile's DN): write "
          f"{times.seconds['write']:.1f} s, finish COG {times.seconds['finish COG']:.1f} s, "
          f"{seconds / (side * side / 1e6):.2f} s/Mpx")
    return seconds / (side * side / 1e6)


def main() -> int:
    if sys.argv[1:2] == ["--one-tile"]:
        print(json.dumps(one_tile(sys.argv[2])))
        return 0
    from s2sr.model import compute_device

    nets = load_nets("L2A", True)
    tile = DEFAULT_TILE_SIZE
    side = tile + 2 * nets.border
    tiles_per_product = (-(-10980 // tile)) ** 2
    shapes = ", ".join(f"x{n.manifest.scale} {n.manifest.architecture.features} features, {n.manifest.architecture.blocks} blocks"
                       for n in (nets.x2, nets.x6))
    print(f"nets: {shapes}; tile {tile} px + {nets.border} px border; {compute_device()}")
    for precision in ("float32", "auto"):
        child = subprocess.run([sys.executable, __file__, "--one-tile", precision], check=True, stdout=subprocess.PIPE, text=True)
        run = json.loads(child.stdout.strip().splitlines()[-1])
        seconds = run["seconds"]
        print(f"{precision:8s} one tile ({side} x {side} px read, {tile} x {tile} px out): {seconds:.1f} s, "
              f"{tile * tile / seconds / 1e6:.3f} Mpx/s; whole 10980 x 10980 product ({tiles_per_product} tiles): "
              f"about {seconds * tiles_per_product / 60:.0f} min here; peak resident memory {run['peak_rss_gib']:.2f} GiB")
    precision_costs(tile)
    costs, dn_block = stage_costs(nets, tile)
    net_split(nets, tile)
    cog_per_mpx = cog_write_cost(dn_block)

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
    print(f"decode {read_per_mpx:.2f} s/Mpx; mask, DN conversion and COG write {write_per_mpx:.2f} s/Mpx "
          "(the 1200 px run, sequential: a small file, where the COG's fixed costs weigh more)")
    shares = []
    for per_mpx in costs.values():
        around = (per_mpx["prepare"] + per_mpx["regression"] + per_mpx["fusion and projection"]
                  + per_mpx["mask and DN conversion"] + cog_per_mpx)
        shares.append(f"{100 * around / per_mpx['nets']:.1f} %")
    print("everything around the nets per tile (prepare, regression, fusion and projection, DN conversion, COG "
          f"write at the {cog_per_mpx:.2f} s/Mpx above; decode apart), of the nets' time: {shares[0]} for a tile "
          f"inside the swath, {shares[1]} for one with a swath edge across it")
    nets_product = next(iter(costs.values()))["nets"] * 10980 * 10980 / 1e6
    estimate = sequential.get("sensor model", 0.0)
    print(f"sensor model (the blur measured on 9 fixed windows of 360 px, reading them included; the same 9 windows "
          f"for any product of 1080 px or more): {estimate:.2f} s per product, {100 * estimate / nets_product:.2f} % of "
          f"a whole product's nets time ({nets_product:.0f} s at the rate above)")
    adapted = sequential.get("adaptation", 0.0)
    print(f"run-time adaptation (the x2 net fine-tuned on the same windows; for a product under 1080 px one window): "
          f"{adapted:.2f} s per product, {100 * adapted / nets_product:.2f} % of a whole product's nets time")
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
