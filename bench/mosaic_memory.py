"""Peak memory of a mosaic as big as a product: two whole-size products of one datatake, side by side.

Builds (once, into ``--dir``) two L2A SAFE products of ``--size`` px (default a whole 10980 px product): the
synthetic scene of ``bench/whole_product.py`` (``--size`` 10980) or of ``s2sr.sample`` (smaller sizes), the
second on the neighbouring tile of the same overpass, ``--shift`` px to the east (default 9780, as Sentinel-2
tiles: about 10 km of overlap). Then runs ``s2sr.mosaic.superresolve_mosaic`` over both, without an AOI (the
union: 10980 x 20760 px by default, the size of two products), in a fresh process, and prints the wall time
and the run's peak resident memory (``VmHWM``) beside the per-product bound ``bench/whole_product.py``
measures: the mosaic is written by windows (``mosaic.WINDOW``), so its peak must not grow with its size.

    python bench/mosaic_memory.py [--dir out/bench-mosaic-memory] [--size 10980] [--shift 9780] [--tile-size N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path


def build(directory: Path, size: int, shift: int) -> list[Path]:
    """The two products (kept between runs)."""
    from s2sr.sample import SampleSpec, build_sample_product

    existing = sorted(directory.glob("*/*.SAFE"))
    if len(existing) == 2:
        return existing
    if size == 10980:
        sys.path.insert(0, str(Path(__file__).parent))
        from whole_product import build as whole

        first = whole(directory / "a")
        # the same imagery again on the next tile (the bench measures memory, not what the pixels show)
        second_dir = directory / "b"
        second_dir.mkdir(parents=True, exist_ok=True)
        spec = SampleSpec(size=size, nodata_edge=True)
        return [first, _shifted_copy(first, second_dir, replace(spec, tile="33UUV",
                                                                  origin=(spec.origin[0] + shift * 10, spec.origin[1])))]
    spec = SampleSpec(size=size, nodata_edge=False)
    return [build_sample_product(directory / "a", spec),
            build_sample_product(directory / "b", replace(spec, tile="33UUV", seed=1,
                                                          origin=(spec.origin[0] + shift * 10, spec.origin[1])))]


def _shifted_copy(product: Path, directory: Path, spec) -> Path:
    """``product``'s band files read back and written again as ``spec``'s product (its name and origin)."""
    import rasterio

    from s2sr.product import open_product
    from s2sr.sample import build_sample_product

    located = open_product(product)
    bands = {}
    for band, path in located.band_paths.items():
        with rasterio.open(path) as ds:
            bands[band] = ds.read(1).astype("float32") - 1000  # the 04.00 offset the builder adds again
    return build_sample_product(directory, spec, bands=bands)


def child(products: list[str], output: str, tile_size: int | None) -> None:
    from s2sr.mosaic import superresolve_mosaic

    sys.path.insert(0, str(Path(__file__).parent))
    from whole_product import peak_rss_gib

    start = time.monotonic()
    lines: list[str] = []
    superresolve_mosaic(products, output, warn=lines.append, **({"tile_size": tile_size} if tile_size else {}))
    print(json.dumps({"seconds": round(time.monotonic() - start, 1), "peak_rss_gib": round(peak_rss_gib(), 2),
                      "lines": lines}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("out/bench-mosaic-memory"))
    parser.add_argument("--size", type=int, default=10980)
    parser.add_argument("--shift", type=int, default=9780)
    parser.add_argument("--tile-size", type=int, default=None)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[:-1], args.child[-1], args.tile_size)
        return 0
    if args.shift % 6 or args.size % 6:
        parser.error("--size and --shift must be multiples of 6 (whole 60 m pixels)")
    products = build(args.dir, args.size, args.shift)
    output = args.dir / "mosaic.tif"
    cmd = [sys.executable, __file__, "--child", *map(str, products), str(output)]
    if args.tile_size:
        cmd += ["--tile-size", str(args.tile_size)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        print(done.stderr[-3000:], file=sys.stderr)
        return done.returncode
    result = json.loads(done.stdout.strip().splitlines()[-1])
    import rasterio

    with rasterio.open(output) as ds:
        shape = ds.shape
    print(f"mosaic of 2 x {args.size} px products ({shape[0]} x {shape[1]} px): {result['seconds']} s, "
          f"peak RSS {result['peak_rss_gib']} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
