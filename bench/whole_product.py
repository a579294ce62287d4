"""``make bench-product``: one whole 10980 x 10980 product, SAFE in and COG out, timed on this machine.

Builds (once, into ``out/bench-product``) an L2A SAFE of full Sentinel-2 size with real JP2 band files: a
1830 px synthetic scene mirrored 6 x 6 (so building it fits in memory), with a swath edge across one corner.
Then runs ``s2sr.superresolve_product`` on it in a fresh process and prints the wall time, the seconds of
each stage (read, compute, write, finish COG, STAC Item), and the run's peak resident memory.

    python bench/whole_product.py [--dir out/bench-product] [--threads N] [--tile-size N] [--device auto|cpu|gpu]
                                  [--memory-max 4G] [--precision float32 auto] [--concurrent]
                                  [--sensor-model estimate|mtf|paper] [--uncertainty on off]

By default the product runs once per precision, float32 then auto (bfloat16 where it is native), each in a
fresh process, and the nets' and the whole product's ratio of auto against float32 are printed;
``--uncertainty on off`` runs each precision with and without the per-pixel uncertainty and prints what it
costs; ``--concurrent`` runs every variant's process at the same time (each its own output), so that on a
machine shared with other work all see the same load.

``--memory-max`` runs the product (not the build) in a memory cgroup of its own with that hard limit and no
swap (cgroup v2 ``memory.max`` and ``memory.swap.max``, or v1 ``memory.limit_in_bytes`` and
``memory.memsw.limit_in_bytes``; needs root), so a run over the limit is killed by the kernel instead of
swapping, and prints the cgroup's peak charge (resident memory plus the page cache the run's writes hold)
beside the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SIZE = 10980
PIECE = SIZE // 6


def build(directory: Path) -> Path:
    """The whole-size SAFE in ``directory`` (kept between runs: building it takes minutes)."""
    from s2sr.bands import BANDS
    from s2sr.resample import block_mean
    from s2sr.sample import SampleSpec, _reflectance, build_sample_product

    existing = sorted(directory.glob("*.SAFE"))
    if existing and (existing[0] / "MTD_MSIL2A.xml").is_file():
        return existing[0]
    refl = _reflectance(SampleSpec(size=PIECE, seed=3)) * 10000
    bands = {}
    for name, band in BANDS.items():
        if name == "B10":
            continue
        f = band.resolution // 10
        piece = refl[band.band_id] if f == 1 else block_mean(refl[band.band_id][None], f)[0]
        pair = np.concatenate([piece, piece[:, ::-1]], axis=1)
        row = np.concatenate([pair] * 3, axis=1)
        bands[name] = np.concatenate([np.concatenate([row, row[::-1]], axis=0)] * 3, axis=0)
    del refl
    return build_sample_product(directory, SampleSpec(size=SIZE, nodata_edge=True), bands=bands)


def parse_bytes(text: str) -> int:
    """``4G``, ``4096M``, ``4294967296``: binary units, as cgroups and ``systemd-run -p MemoryMax`` read them."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


class MemoryCgroup:
    """A memory cgroup of this process's own (v2 where mounted so, else v1), with a hard limit and no swap."""

    def __init__(self, limit: int):
        self.limit = limit
        v2 = Path("/sys/fs/cgroup/cgroup.controllers")
        if v2.is_file():
            own = Path(open("/proc/self/cgroup").read().split("::", 1)[1].strip().lstrip("/"))
            self.version, parent = 2, Path("/sys/fs/cgroup") / own
        else:
            line = next(x for x in open("/proc/self/cgroup") if ":memory:" in x)
            self.version, parent = 1, Path("/sys/fs/cgroup/memory") / line.split(":memory:", 1)[1].strip().lstrip("/")
        self.path = parent / f"s2sr-bench-{os.getpid()}"
        self.path.mkdir()
        if self.version == 2:
            (self.path / "memory.max").write_text(str(limit))
            if (self.path / "memory.swap.max").exists():
                (self.path / "memory.swap.max").write_text("0")
        else:
            (self.path / "memory.limit_in_bytes").write_text(str(limit))
            if (self.path / "memory.memsw.limit_in_bytes").exists():  # absent where the kernel has no swap accounting
                (self.path / "memory.memsw.limit_in_bytes").write_text(str(limit))

    def enter(self) -> None:
        """Move the calling process in (a ``preexec_fn``: the child joins before it runs anything)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def peak(self) -> int:
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        return int((self.path / name).read_text()) if (self.path / name).exists() else -1

    def oom_kills(self) -> int:
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        for line in (self.path / name).read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def remove(self) -> None:
        self.path.rmdir()


def peak_rss_gib() -> float:
    """This process's peak resident memory (``VmHWM``): unlike ``ru_maxrss``, which Linux carries across
    ``exec``, it does not start at the parent's size when the parent has just built the product."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run(product: Path, output: Path, threads: int, tile_size: int, device: str = "auto", precision: str = "auto",
        sensor_model: str = "estimate", uncertainty: bool = True) -> dict:
    """One product run in this process; returns its figures."""
    import s2sr
    from s2sr.runner import StageTimes

    times = StageTimes()
    last = [time.perf_counter()]
    start = last[0]

    tiling_rss = [0.0]
    label = precision + ("" if uncertainty else ", no uncertainty")

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total:
            tiling_rss[0] = peak_rss_gib()
        if done == total or now - last[0] > 120:
            nets = times.seconds.get("nets", 0.0)  # so that a run cut short still says where its time went
            rss = peak_rss_gib()
            print(f"  {label}: {done}/{total} tiles after {(now - start) / 60:.1f} min, nets {nets:.0f} s "
                  f"({nets / max(done, 1):.1f} s per tile), peak RSS {rss:.2f} GiB", file=sys.stderr, flush=True)
            last[0] = now

    s2sr.superresolve_product(product, output, threads=threads, tile_size=tile_size, device=device, precision=precision,
                              progress=progress, stage_times=times, sensor_model=sensor_model, uncertainty=uncertainty,
                              overwrite=True)
    seconds = time.perf_counter() - start
    import rasterio

    from s2sr.model import compute_device
    from s2sr.uncertainty import uncertainty_path

    with rasterio.open(output) as ds:
        fusion = json.loads(ds.tags()["fusion"])
    companion = uncertainty_path(output)

    return {
        "nets_on": compute_device(device, precision),
        "seconds": seconds,
        "stages": times.seconds,
        "peak_rss_gib": peak_rss_gib(),
        "peak_rss_tiling_gib": tiling_rss[0],
        "output_gib": output.stat().st_size / 2**30,
        "uncertainty_gib": companion.stat().st_size / 2**30 if companion.exists() else 0.0,
        "fusion": fusion,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("out/bench-product"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tile-size", type=int, default=None)
    parser.add_argument("--device", default="auto", help="where the nets run: auto, cpu or gpu")
    parser.add_argument("--memory-max", default=None, help="hard memory limit of the run, e.g. 4G (a cgroup; root)")
    parser.add_argument("--precision", nargs="+", default=["float32", "auto"], choices=("auto", "float32", "bfloat16"),
                        help="precisions to run, one fresh process each, in this order (default: float32 auto)")
    parser.add_argument("--uncertainty", nargs="+", default=["on"], choices=("on", "off"),
                        help="with and/or without the per-pixel uncertainty, one fresh process each per precision "
                             "(default: on; 'on off' measures what it costs)")
    parser.add_argument("--concurrent", action="store_true", help="run every variant at the same time")
    parser.add_argument("--sensor-model", default="estimate", choices=("estimate", "mtf", "paper"),
                        help="the run's sensor model (default estimate; mtf: the documented blur, at which the x6 net "
                             "runs at its full weight)")
    parser.add_argument("--child", nargs=2, metavar=("PRODUCT", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    from s2sr.pipeline import DEFAULT_TILE_SIZE

    tile_size = args.tile_size or DEFAULT_TILE_SIZE
    if args.child:
        print(json.dumps(run(Path(args.child[0]), Path(args.child[1]), args.threads, tile_size, args.device,
                             args.precision[0], args.sensor_model, args.uncertainty[0] == "on")))
        return 0
    start = time.perf_counter()
    product = build(args.dir)
    print(f"product: {product.name} ({SIZE} x {SIZE} px at 10 m), built in {time.perf_counter() - start:.0f} s"
          " (0 when it already existed)", flush=True)
    variants = [(p, u) for p in args.precision for u in args.uncertainty]

    def label(variant: tuple[str, str]) -> str:
        return variant[0] + ("" if variant[1] == "on" else ", no uncertainty")

    runs: dict[tuple[str, str], dict] = {}
    cgroups = {v: MemoryCgroup(parse_bytes(args.memory_max)) if args.memory_max else None for v in variants}

    def start(variant: tuple[str, str]) -> subprocess.Popen:
        precision, uncertainty = variant
        output = args.dir / f"whole_product_{precision}{'' if uncertainty == 'on' else '_nounc'}.tif"
        cgroup = cgroups[variant]
        return subprocess.Popen(
            [sys.executable, __file__, "--child", str(product), str(output), "--threads", str(args.threads),
             "--tile-size", str(tile_size), "--device", args.device, "--precision", precision,
             "--sensor-model", args.sensor_model, "--uncertainty", uncertainty],
            stdout=subprocess.PIPE, text=True, preexec_fn=cgroup.enter if cgroup else None,
        )

    def finish(variant: tuple[str, str], child: subprocess.Popen) -> bool:
        out, _ = child.communicate()
        cgroup = cgroups[variant]
        name = label(variant)
        if cgroup is not None:
            limit = f"under a hard limit of {cgroup.limit / 2**30:.2f} GiB (cgroup v{cgroup.version}, no swap)"
            print(f"memory cgroup ({name}): {limit}; peak charge {cgroup.peak() / 2**30:.2f} GiB (resident memory "
                  f"and the page cache of the run's files), {cgroup.oom_kills()} OOM kill(s)")
        if child.returncode:
            print(f"the {name} run failed with exit code {child.returncode}"
                  + (" (killed: over the memory limit?)" if child.returncode < 0 else ""))
            return False
        figures = runs[variant] = json.loads(out.strip().splitlines()[-1])
        total = figures["seconds"]
        print(f"{name}, nets: {figures['nets_on']}; sensor model {args.sensor_model}, net weights "
              + ", ".join(f"{scale} {f['net_weight']:g}" for scale, f in figures["fusion"].items())
              + " (at weight 0 a net does not run)")
        decision = figures["fusion"].get("x6", {}).get("decision")
        if decision:
            print(f"x6 decision: {decision['reason']} ({decision['seconds']:g} s)")
        print(f"whole product, tile {tile_size} px, {args.threads} thread(s): {total / 60:.1f} min end to end "
              f"(SAFE in, COG out, {figures['output_gib']:.2f} GiB; uncertainty file {figures['uncertainty_gib']:.2f} GiB)")
        for stage, seconds in figures["stages"].items():
            print(f"  {stage:12s} {seconds:8.1f} s  {100 * seconds / total:5.1f} %")
        adapted = figures["stages"].get("adaptation", 0.0)
        print(f"run-time adaptation (the x2 net fine-tuned on the product's 9 windows, held-back check included): "
              f"{adapted:.1f} s, {100 * adapted / total:.1f} % of the whole product (target: at most 10 %)")
        print(f"peak resident memory of the run: {figures['peak_rss_gib']:.2f} GiB "
              f"({figures['peak_rss_tiling_gib']:.2f} GiB until the last tile, before the COG is finished)", flush=True)
        return True

    try:
        if args.concurrent:
            children = {variant: start(variant) for variant in variants}
            done = [finish(variant, child) for variant, child in children.items()]
        else:
            done = [finish(variant, start(variant)) for variant in variants]
    finally:
        for cgroup in cgroups.values():
            if cgroup is not None:
                cgroup.remove()
    if not all(done):
        return 1
    mpx = SIZE * SIZE / 1e6
    for variant in variants:
        f = runs[variant]
        print(f"{label(variant):26s}: nets {f['stages']['nets']:7.1f} s ({f['stages']['nets'] / mpx:.2f} s/Mpx), whole "
              f"product {f['seconds'] / 60:5.1f} min, peak RSS {f['peak_rss_gib']:.2f} GiB")
    for uncertainty in args.uncertainty:
        first, *others = [v for v in variants if v[1] == uncertainty]
        for variant in others:
            a, b = runs[first], runs[variant]
            print(f"{label(variant)} against {label(first)}, same run: nets {a['stages']['nets'] / b['stages']['nets']:.2f}x "
                  f"faster, whole product {a['seconds'] / b['seconds']:.2f}x faster")
    for precision in args.precision:
        if (precision, "on") in runs and (precision, "off") in runs:
            a, b = runs[(precision, "on")], runs[(precision, "off")]
            extra = {s: a["stages"].get(s, 0.0) - b["stages"].get(s, 0.0) for s in a["stages"]}
            print(f"{precision}: the uncertainty costs {a['seconds'] - b['seconds']:.1f} s of {a['seconds']:.1f} s "
                  f"({100 * (a['seconds'] - b['seconds']) / a['seconds']:.1f} % of the run with it; target: at most 10 %), "
                  f"peak RSS {a['peak_rss_gib']:.2f} against {b['peak_rss_gib']:.2f} GiB (target: at most 3.5 GiB); "
                  "by stage: " + ", ".join(f"{s} {d:+.1f} s" for s, d in extra.items() if abs(d) >= 0.5))
    return 0


if __name__ == "__main__":
    sys.exit(main())
