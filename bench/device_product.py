"""A many-core machine (the device machine: 16 cores, one GPU): one product through the pipeline, sequential
stages against overlapping ones, nets on the CPU and on the GPU, all in one run.

Builds an L2A SAFE with real JP2 files (``--size`` px square, a swath edge across one corner), then runs
``s2sr.superresolve_product`` on it in a fresh process per setting (``whole_product.py --child``) and
prints each run's wall time, its stages' seconds and Mpx/s, then how far the outputs are apart: the thread
settings must agree bit for bit, the GPU with the CPU within 1 DN RMS. Figures also go to ``--json``.

    KERAS_BACKEND=torch python bench/device_product.py [--size 3984] [--threads 1 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def matmul_rates() -> dict[str, float]:
    """Best float32 2048 x 2048 matmul GFLOP/s on this machine's CPU (and GPU, where torch sees one)."""
    try:
        import torch
    except ImportError:
        return {}
    rates = {}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        a = torch.rand(2048, 2048, device=device)
        best = float("inf")
        for _ in range(5):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(10):
                a @ a
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, (time.perf_counter() - start) / 10)
        rates[device] = 2 * 2048**3 / best / 1e9
    return rates


def run_child(product: Path, output: Path, threads: int, device: str, tile_size: int) -> dict:
    env = dict(os.environ)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the nets' backend must not see the GPU at all
    child = subprocess.run(
        [sys.executable, str(HERE / "whole_product.py"), "--child", str(product), str(output), "--threads",
         str(threads), "--tile-size", str(tile_size), "--device", device],
        check=True, stdout=subprocess.PIPE, text=True, env=env,
    )
    return json.loads(child.stdout.strip().splitlines()[-1])


def difference(a: Path, b: Path) -> dict[str, float]:
    """Largest and RMS difference in DN over pixels valid in both outputs, and whether they are identical."""
    import rasterio

    with rasterio.open(a) as ra, rasterio.open(b) as rb:
        x, y = ra.read().astype(np.float64), rb.read().astype(np.float64)
    both = (x != 0).all(axis=0) & (y != 0).all(axis=0)
    d = (x - y)[:, both]
    return {"identical": bool(np.array_equal(x, y)), "max_dn": float(np.abs(d).max()) if d.size else 0.0,
            "rms_dn": float(np.sqrt((d**2).mean())) if d.size else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=3984, help="10 m pixels square, a multiple of 6")
    parser.add_argument("--tile-size", type=int, default=996)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--devices", nargs="+", default=["cpu", "gpu"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from s2sr.sample import SampleSpec, build_sample_product

    rates = matmul_rates()
    print(f"{os.cpu_count()} cores; float32 matmul: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in rates.items()),
          flush=True)
    figures: dict = {"cores": os.cpu_count(), "matmul_gflops": rates, "size": args.size, "runs": {}, "differences": {}}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        product = build_sample_product(Path(tmp), SampleSpec(size=args.size, nodata_edge=True, seed=3))
        figures["build_seconds"] = time.perf_counter() - start
        print(f"product: {args.size} x {args.size} px, built in {figures['build_seconds']:.0f} s", flush=True)
        mpx = args.size**2 / 1e6
        outputs = {}
        for device in args.devices:
            for threads in args.threads:
                key = f"{device}, {threads} thread(s)"
                outputs[key] = Path(tmp) / f"{device}{threads}.tif"
                run = run_child(product, outputs[key], threads, device, args.tile_size)
                figures["runs"][key] = run
                stages = ", ".join(f"{k} {v:.1f} s" for k, v in run["stages"].items())
                print(f"{key} ({run['nets_on']}): {run['seconds']:.1f} s, {mpx / run['seconds']:.2f} Mpx/s, peak RSS "
                      f"{run['peak_rss_gib']:.2f} GiB\n  {stages}", flush=True)
        first = f"{args.devices[0]}, {args.threads[0]} thread(s)"
        pairs = [(f"{d}, {args.threads[0]} thread(s)", f"{d}, {t} thread(s)") for d in args.devices for t in args.threads[1:]]
        pairs += [(first, f"{d}, {args.threads[0]} thread(s)") for d in args.devices[1:]]
        for a, b in pairs:
            figures["differences"][f"{a} vs {b}"] = diff = difference(outputs[a], outputs[b])
            print(f"{a} vs {b}: identical {diff['identical']}, max {diff['max_dn']:.2f} DN, "
                  f"RMS {diff['rms_dn']:.3f} DN", flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
