"""The product's own masks on the output's 10 m grid: scene classification, cloud probability, cloud masks.

Which masks a product carries (found by ``product.find_mask_files`` and ``stac.ITEM_SCL_KEYS``):

- L2A: the Scene Classification ``IMG_DATA/R20m/*_SCL_20m.jp2`` (``SCL_CLASSES``) and the cloud probability
  ``QI_DATA/MSK_CLDPRB_20m.jp2`` (0 - 100 %; ``*_CLD_20m.jp2`` in Sen2Cor's older products);
- L1C from baseline 04.00: ``QI_DATA/MSK_CLASSI_B00.jp2``, 60 m, three layers: opaque clouds, cirrus, snow
  and ice; before 04.00 the vector masks ``QI_DATA/MSK_CLOUDS_B00.gml`` (OPAQUE and CIRRUS polygons in the
  tile's CRS; ``S2A_OPER_MSK_CLOUDS_..._B00_MSIL1C.gml`` in the long names of 2015 - 2016), rasterised here:
  a pixel is in a polygon when its centre is;
- STAC Items: the SCL asset (Earth Search ``scl``, Planetary Computer ``SCL``, Copernicus ``SCL_20m``).

They become one uint8 raster of one or two layers: L2A ``scl`` (and ``cloud_probability`` where the product
has it), L1C ``cloud_mask``, whose value is a sum of bits (1 opaque clouds, 2 cirrus, 4 snow and ice; 0 none
of them; ``CLOUD_MASK_CLASSES`` names all eight). Every 10 m pixel takes the value of the mask pixel that
contains its centre (nearest, never interpolated), so a 20 m SCL pixel becomes 2 x 2 output pixels exactly.
``NODATA`` (255) marks what is not data: where the bands are nodata in the written file, outside the AOI
polygon in both; 0 is a value in every layer (SCL's own NO_DATA class, a clear L1C pixel, 0 % probability).

A mask is a companion of the bands, not the product: a mask file that is corrupt or does not fit the
product's grid raises ``MaskError`` here, and a product run (``MaskCompanion``) records why, warns once and
writes the bands without it.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import companion
from .aoi import Aoi, inside_mask, window_of_aoi
from .companion import Companion
from .errors import AoiError, MaskError, ProductError
from .metadata import Product, parse_xml
from .product import ProductReader, open_product
from .stac_item import COG_TYPE
from .tiling import Window
from .writer import Layout, staging_bytes

#: The masks file is ``<output stem>_masks.tif``.
SUFFIX = "masks"
#: The value of every layer where there is no data (0 is a class or a probability).
NODATA = 255


@dataclass(frozen=True)
class MaskClass:
    """One value of a class layer: as the STAC classification extension (v2) describes a class."""

    value: int
    name: str  # machine-readable: letters, digits, - and _
    description: str
    color_hint: str | None = None  # RGB hex, upper case, no '#'
    nodata: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "name": self.name, "description": self.description}
        if self.color_hint:
            out["color_hint"] = self.color_hint
        if self.nodata:
            out["nodata"] = True
        return out


#: The Scene Classification of Sen2Cor, as every L2A product's metadata lists it (``SC_NODATA`` ...
#: ``SC_SNOW_ICE``, the same from baseline 02.12 to 05.09), with the colours ESA's viewers give it.
SCL_CLASSES = (
    MaskClass(0, "no_data", "No data (SC_NODATA)", "000000", nodata=True),
    MaskClass(1, "saturated_defective", "Saturated or defective pixel (SC_SATURATED_DEFECTIVE)", "FF0000"),
    MaskClass(2, "dark_feature_shadow", "Dark feature or topographic shadow (SC_DARK_FEATURE_SHADOW)", "2F2F2F"),
    MaskClass(3, "cloud_shadow", "Cloud shadow (SC_CLOUD_SHADOW)", "643200"),
    MaskClass(4, "vegetation", "Vegetation (SC_VEGETATION)", "00A000"),
    MaskClass(5, "not_vegetated", "Not vegetated: bare soil, built-up (SC_NOT_VEGETATED)", "FFE65A"),
    MaskClass(6, "water", "Water (SC_WATER)", "0000FF"),
    MaskClass(7, "unclassified", "Unclassified (SC_UNCLASSIFIED)", "808080"),
    MaskClass(8, "cloud_medium_probability", "Cloud, medium probability (SC_CLOUD_MEDIUM_PROBA)", "C0C0C0"),
    MaskClass(9, "cloud_high_probability", "Cloud, high probability (SC_CLOUD_HIGH_PROBA)", "FFFFFF"),
    MaskClass(10, "thin_cirrus", "Thin cirrus (SC_THIN_CIRRUS)", "64C8FF"),
    MaskClass(11, "snow_ice", "Snow or ice (SC_SNOW_ICE)", "FF96FF"),
)
#: SCL classes of a clear view of the ground: vegetation, not vegetated, water (mask everything else).
SCL_CLEAR = (4, 5, 6)
#: Bits of the L1C ``cloud_mask`` layer.
OPAQUE, CIRRUS, SNOW = 1, 2, 4
_BIT_NAMES = {OPAQUE: ("opaque_clouds", "opaque clouds"), CIRRUS: ("cirrus", "cirrus"), SNOW: ("snow_ice", "snow and ice")}


def _cloud_mask_class(value: int) -> MaskClass:
    bits = [b for b in (OPAQUE, CIRRUS, SNOW) if value & b]
    if not bits:
        return MaskClass(0, "clear", "In none of the product's cloud masks (no opaque cloud, cirrus, snow or ice)")
    name = "_".join(_BIT_NAMES[b][0] for b in bits)
    return MaskClass(value, name, "In the product's mask of " + " and of ".join(_BIT_NAMES[b][1] for b in bits))


#: Every value of the L1C ``cloud_mask`` layer: the sum of its bits.
CLOUD_MASK_CLASSES = tuple(_cloud_mask_class(v) for v in range(8))
#: The class every layer gives ``NODATA``.
NODATA_CLASS = MaskClass(NODATA, "nodata", "No data: outside the AOI polygon or where the bands are nodata", nodata=True)


@dataclass(frozen=True)
class Layer:
    """One band of the masks raster: its name (the band's ``band`` tag), description, classes or unit."""

    name: str
    description: str
    classes: tuple[MaskClass, ...] = ()
    unit: str | None = None

    def class_table(self) -> list[dict[str, Any]]:
        return [c.to_dict() for c in (*self.classes, NODATA_CLASS)] if self.classes else []


SCL = Layer("scl", "SCL: scene classification of the L2A product (20 m, nearest)", SCL_CLASSES)
CLOUD_PROBABILITY = Layer("cloud_probability", "Cloud probability of the L2A product, % (20 m, nearest)", unit="%")
CLOUD_MASK = Layer("cloud_mask", "Cloud masks of the L1C product: 1 opaque clouds + 2 cirrus + 4 snow and ice "
                   "(60 m raster or vector, nearest)", CLOUD_MASK_CLASSES)
#: The layer each kind of mask file gives.
LAYERS = {"scl": SCL, "cloud_probability": CLOUD_PROBABILITY, "classi": CLOUD_MASK, "gml": CLOUD_MASK}

def companion_path(output: Path) -> Path:
    """The masks file beside an output GeoTIFF: ``out.tif`` -> ``out_masks.tif``."""
    return companion.companion_path(output, SUFFIX)


def stale_companions(output: Path) -> list[Path]:
    """Masks files of ``output`` that are no output (:func:`s2sr.companion.stale_files`)."""
    return companion.stale_files(output, SUFFIX)


# -- reading: a window of the product's 10 m grid -> (layers, h, w) uint8, nearest


@dataclass(frozen=True)
class Grid:
    """The product's 10 m grid: CRS, affine transform (north up) and size in pixels."""

    crs: Any
    transform: Any
    height: int
    width: int


def _centres_in(start: int, count: int, step: float, origin: float, src_origin: float, src_step: float, size: int) -> np.ndarray:
    """Indices along one axis of the source pixels that contain the centres of ``count`` grid pixels from ``start``."""
    centres = origin + (np.arange(start, start + count) + 0.5) * step
    return np.clip(np.floor((centres - src_origin) / src_step).astype(np.int64), 0, size - 1)


class _RasterFile:
    """A mask raster (JP2 or COG) on the product's grid, opened for each read (rasterio datasets belong to
    the thread that opened them, and the writer thread reads these)."""

    def __init__(self, kind: str, path: str, grid: Grid):
        import rasterio

        self.kind, self.path, self.grid = kind, path, grid
        try:
            with rasterio.open(path) as ds:
                self.transform, self.height, self.width = ds.transform, ds.height, ds.width
                crs, count, dtype = ds.crs, ds.count, ds.dtypes[0]
        except Exception as exc:  # rasterio raises several types for a corrupt or missing file
            raise MaskError(f"{path}: cannot open the {kind} mask ({_first_line(exc)}); the file is truncated or corrupt") from None
        need = 3 if kind == "classi" else 1
        if count < need or dtype != "uint8":
            raise MaskError(f"{path}: {count} band(s) of {dtype}, where the {kind} mask has {need} of uint8; not that mask")
        t, g = self.transform, grid.transform
        tolerance = abs(g.a) / 100
        fits = (crs == grid.crs and t.b == 0 and t.d == 0 and t.a > 0 and t.e < 0
                and abs(t.c - g.c) < tolerance and abs(t.f - g.f) < tolerance
                and abs(t.a * self.width - g.a * grid.width) < tolerance
                and abs(t.e * self.height - g.e * grid.height) < tolerance)
        if not fits:
            raise MaskError(f"{path}: {self.width}x{self.height} px of {t.a:g} m ({crs}) do not cover the product's "
                            f"{grid.width}x{grid.height} px grid of {g.a:g} m ({grid.crs}); the file is cut or of another product")

    def read(self, window: Window) -> np.ndarray:
        """(h, w) uint8: the mask pixel containing each pixel centre of ``window`` (10 m grid)."""
        import rasterio

        t, g = self.transform, self.grid.transform
        rows = _centres_in(window.row, window.height, g.e, g.f, t.f, t.e, self.height)
        cols = _centres_in(window.col, window.width, g.a, g.c, t.c, t.a, self.width)
        r0, c0 = int(rows.min()), int(cols.min())
        source = ((r0, int(rows.max()) + 1), (c0, int(cols.max()) + 1))
        try:
            with rasterio.open(self.path) as ds:
                data = ds.read([1, 2, 3] if self.kind == "classi" else [1], window=source)
        except Exception as exc:  # a JP2 that opens but does not decode
            raise MaskError(f"{self.path}: cannot decode the {self.kind} mask ({_first_line(exc)}); the file is truncated "
                            "or corrupt") from None
        data = data[:, rows - r0][:, :, cols - c0]
        if self.kind != "classi":
            return data[0]
        return ((data[0] > 0) * OPAQUE | (data[1] > 0) * CIRRUS | (data[2] > 0) * SNOW).astype(np.uint8)


class _GmlFile:
    """The vector cloud masks of an L1C product before baseline 04.00: polygons by type, burnt per window."""

    TYPES = {"OPAQUE": OPAQUE, "CIRRUS": CIRRUS}

    def __init__(self, path: str, grid: Grid):
        from shapely.geometry import Polygon

        self.path, self.grid = path, grid
        try:
            root = parse_xml(_read_bytes(path), path)
        except ProductError as exc:
            raise MaskError(f"{exc}; the cloud mask is corrupt") from None
        except OSError as exc:
            raise MaskError(f"{path}: cannot read the cloud mask ({exc})") from None
        if _local(root.tag) != "Mask":
            raise MaskError(f"{path}: an XML {_local(root.tag)!r}, not a Sentinel-2 eop:Mask; not a cloud mask")
        epsg = grid.crs.to_epsg() if hasattr(grid.crs, "to_epsg") else None
        for el in root.iter():
            srs = el.attrib.get("srsName")
            code = re.search(r"(\d+)\s*$", srs or "")
            if srs and code and epsg and int(code[1]) != epsg:
                raise MaskError(f"{path}: polygons in {srs}, not the product's EPSG:{epsg}; the mask is of another tile")
        self.shapes: list[tuple[Any, int]] = []
        for feature in (el for el in root.iter() if _local(el.tag) == "MaskFeature"):
            kind = next((el.text.strip().upper() for el in feature.iter() if _local(el.tag) == "maskType" and el.text), "")
            if kind not in self.TYPES:
                continue
            for polygon in (el for el in feature.iter() if _local(el.tag) == "Polygon"):
                rings = []
                for part in ("exterior", "interior"):
                    for ring in (el for el in polygon if _local(el.tag) == part):
                        rings.append(_pos_list(ring, path))
                if not rings:
                    raise MaskError(f"{path}: a {kind} polygon without coordinates; the cloud mask is corrupt")
                self.shapes.append((Polygon(rings[0], rings[1:]), self.TYPES[kind]))

    def read(self, window: Window) -> np.ndarray:
        from affine import Affine
        from rasterio.features import rasterize
        from shapely.geometry import box

        transform = self.grid.transform @ Affine.translation(window.col, window.row)
        x0, y0 = transform * (0, 0)
        x1, y1 = transform * (window.width, window.height)
        area = box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        out = np.zeros((window.height, window.width), np.uint8)
        for bit in self.TYPES.values():
            shapes = [g for g, b in self.shapes if b == bit and g.intersects(area)]
            if shapes:
                out |= rasterize(shapes, (window.height, window.width), transform=transform, default_value=bit, dtype="uint8")
        return out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _pos_list(ring: Any, path: str) -> list[tuple[float, float]]:
    """The (x, y) pairs of a GML ring's ``posList`` (``srsDimension`` 2 or 3)."""
    pos = next((el for el in ring.iter() if _local(el.tag) == "posList"), None)
    try:
        values = [float(v) for v in (pos.text or "").split()] if pos is not None else []
        dim = int(pos.attrib.get("srsDimension", 2)) if pos is not None else 2
    except ValueError:
        raise MaskError(f"{path}: a posList that is not numbers; the cloud mask is corrupt") from None
    if len(values) < 3 * dim or len(values) % dim:
        raise MaskError(f"{path}: a ring of {len(values)} coordinates in {dim} dimensions; the cloud mask is corrupt")
    return [(values[i], values[i + 1]) for i in range(0, len(values), dim)]


def _read_bytes(path: str) -> bytes:
    """A file's bytes, also inside a zipped SAFE (``/vsizip/ZIP/inner``, as the product gives it)."""
    if path.startswith("/vsizip/"):
        archive, _, inner = path[len("/vsizip/"):].partition(".zip/")
        with zipfile.ZipFile(archive + ".zip") as zf:
            return zf.read(inner)
    return Path(path).read_bytes()


def _first_line(exc: BaseException) -> str:
    """GDAL's own message: rasterio's read errors point at the exception they come from."""
    while "previous exception" in str(exc) and exc.__cause__ is not None:
        exc = exc.__cause__
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class MaskReader:
    """The mask files of one product, checked against its 10 m grid; ``read(window)`` -> (layers, h, w) uint8."""

    def __init__(self, product: Product, grid: Grid):
        self.product, self.grid = product, grid
        self.files: list[Any] = []
        for kind, path in product.mask_paths.items():
            self.files.append(_GmlFile(path, grid) if kind == "gml" else _RasterFile(kind, path, grid))
        self.layers = tuple(LAYERS[kind] for kind in product.mask_paths)

    @property
    def sources(self) -> tuple[str, ...]:
        """The file names the layers come from."""
        return tuple(Path(p).name for p in self.product.mask_paths.values())

    def read(self, window: Window) -> np.ndarray:
        """The layers over ``window`` of the 10 m grid (any offsets and size inside the grid)."""
        return np.stack([f.read(window) for f in self.files])


# -- the library function


@dataclass(frozen=True, eq=False)
class Masks(Mapping):
    """A product's masks over a window of its 10 m grid: ``data`` (layers, h, w) uint8, one band per layer,
    georeferenced by ``transform`` and ``crs``; ``window`` in 10 m pixels of the product.

    A read-only mapping of layer name to its (h, w) array, as users of a dict expect: ``masks["scl"]``,
    ``"scl" in masks``, ``list(masks)``, ``masks.keys()``, ``masks.items()``, ``len(masks)``."""

    data: np.ndarray
    layers: tuple[Layer, ...]
    transform: Any
    crs: Any
    window: Window

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise KeyError(f"no {name!r} layer; this product's masks hold {', '.join(self.names)}")
        return self.data[self.names.index(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.layers)


def read_mask(product: str | Path, area: Any = None, *, clip_to_aoi: bool = True) -> Masks:
    """The product's masks on the same pixels as ``superresolve_product(product, out, aoi=area)`` writes.

    ``area``: None (the whole product), an AOI as ``superresolve_product`` takes it (WGS84 bbox, GeoJSON,
    shapely; its 60 m-aligned window, and with ``clip_to_aoi`` pixels outside the polygon ``NODATA``), or a
    ``rasterio.windows.Window`` of the product's 10 m grid. The whole window is read at once: ask for what
    fits in memory. Raises ``MaskError`` for a product without masks, or with a corrupt or misfitting one.
    """
    from affine import Affine

    located = open_product(product)
    with ProductReader(located) as reader:
        grid = Grid(reader.crs, reader.transform, reader.height, reader.width)
        inside = None
        if area is None:
            window = reader.raster
        elif hasattr(area, "col_off"):  # a rasterio Window
            window = Window(int(round(area.row_off)), int(round(area.col_off)), int(round(area.height)), int(round(area.width)))
            if window.intersection(reader.raster) != window or window.height < 1 or window.width < 1:
                raise AoiError(f"window {area} is not inside the {grid.width}x{grid.height} px grid of {located.name}")
        else:
            geom, window = window_of_aoi(Aoi.parse(area), reader.crs, reader.transform, reader.raster, located.name)
            inside = inside_mask(geom, reader.transform, window) if clip_to_aoi else None
    if not located.mask_paths:
        raise MaskError(f"{located.name} carries no mask s2sr reads ({_none_reason(located)})")
    data = MaskReader(located, grid).read(window)
    if inside is not None:
        data[:, ~inside] = NODATA
    layers = tuple(LAYERS[k] for k in located.mask_paths)
    return Masks(data, layers, grid.transform @ Affine.translation(window.col, window.row), grid.crs, window)


def _none_reason(product: Product) -> str:
    if product.level == "L2A":
        return "no SCL_20m in the SAFE, or no scl / SCL / SCL_20m asset in the Item"
    return "no QI_DATA/MSK_CLASSI_B00.jp2 or MSK_CLOUDS_B00.gml in the SAFE"


# -- a product run's masks file


@dataclass(frozen=True)
class MaskStatus:
    """What became of a run's masks: ``written``, ``unavailable`` (the product carries none), ``failed`` (a
    file is corrupt or misfits: ``reason``) or ``off`` (not asked for); recorded in the STAC Item."""

    state: str
    reason: str = ""
    layers: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.state}
        if self.reason:
            out["reason"] = self.reason
        if self.layers:
            out |= {"layers": list(self.layers), "sources": list(self.sources)}
        return out


def mask_layout(layers: tuple[Layer, ...], sources: tuple[str, ...]) -> Layout:
    """The masks file's bands: uint8, nodata 255, nearest overviews, descriptions, class tables in the tags."""
    tags = []
    for layer, source in zip(layers, sources, strict=True):
        tag = {"source": source}
        if layer.classes:
            tag["classes"] = json.dumps(layer.class_table())
        if layer.unit:
            tag["unit"] = layer.unit
        tags.append(tag)
    return Layout(dtype="uint8", nodata=NODATA, scale=None, resampling="nearest",
                  descriptions=tuple(layer.description for layer in layers), band_tags=tuple(tags))


class MaskCompanion(Companion):
    """The masks file of one product run, ``<output stem>_masks.tif`` (:class:`~s2sr.companion.Companion`: the
    bands' writer on the same window, staged beside them and renamed before the GeoTIFF), clipped and nodata
    where the bands are. A mask that fails to open or decode, at the start or at any tile, drops the file:
    ``warn`` is called once with the reason, the run goes on and its Item records it."""

    suffix = SUFFIX

    def __init__(self, output: Path, area: Window, grid: Grid, reader: MaskReader | None, status: MaskStatus,
                 tags: dict[str, str], warn: Callable[[str], None] | None = None):
        super().__init__(output, area, grid, warn)
        self.reader, self.status, self._tags = reader, status, tags
        self.resolution = abs(grid.transform.a)

    @classmethod
    def start(cls, product: Product, grid: Grid, area: Window, output: Path, *, enabled: bool = True,
              warn: Callable[[str], None] | None = None) -> MaskCompanion:
        """Check the product's mask files (headers only) for a run writing ``area`` of ``grid`` to ``output``."""
        from . import __version__

        reader, status = None, MaskStatus("off", "not asked for (masks=False)")
        if enabled and not product.mask_paths:
            status = MaskStatus("unavailable", f"the product carries none ({_none_reason(product)})")
        elif enabled:
            try:
                reader = MaskReader(product, grid)
                status = MaskStatus("written", "", tuple(x.name for x in reader.layers), reader.sources)
            except MaskError as exc:
                status = MaskStatus("failed", str(exc))
        tags = {"s2sr_version": __version__, "source_product": product.name, "processing_level": product.level,
                "processing_baseline": product.metadata.baseline, "masks": ", ".join(status.layers),
                "nodata": f"{NODATA}: outside the AOI polygon or where the bands are nodata"}
        companion = cls(output, area, grid, reader, status, tags, warn)
        if status.state == "failed":
            companion._warn(f"masks not written: {status.reason}")
        return companion

    @property
    def staging_bytes(self) -> int:
        """Disk the masks file needs in the staging folder and beside the output (``CogWriter``)."""
        return 0 if self.reader is None else staging_bytes(self.area.height, self.area.width, len(self.reader.layers), 1)

    def __enter__(self) -> MaskCompanion:
        if self.reader is not None:
            self.open(tuple(x.name for x in self.reader.layers), self._tags,
                      mask_layout(self.reader.layers, self.reader.sources))
        return self

    def write(self, part: Window, valid: np.ndarray) -> None:
        """The masks over ``part`` (a window of the product grid inside the output area), ``NODATA`` where
        ``valid`` (the bands' data, AOI polygon included) is False."""
        if self._writer is None:
            return
        try:
            data = self.reader.read(part)
        except MaskError as exc:
            self.drop(str(exc), MaskError)
            return
        data[:, ~valid] = NODATA
        self.write_block(data, part)

    def dropped(self, reason: str) -> None:
        self.status = MaskStatus("failed", reason)
        self._warn(f"masks not written: {reason}")

    def stac(self) -> dict[str, Any]:
        """``status`` (the Item's ``s2sr:masks``) and, when written, ``asset`` (its ``masks`` asset)."""
        out: dict[str, Any] = {"status": self.status.to_dict()}
        if self.written and self.reader is not None:
            out["asset"] = stac_asset(self.path.name, self.reader.layers, self.resolution)
        return out


def stac_asset(name: str, layers: tuple[Layer, ...], resolution: float) -> dict[str, Any]:
    """The masks file as a STAC asset: raster bands with the classification extension's class tables."""
    bands = []
    for layer in layers:
        band: dict[str, Any] = {"name": layer.name, "description": layer.description, "data_type": "uint8",
                                "nodata": NODATA, "spatial_resolution": resolution}
        if layer.unit:
            band["unit"] = layer.unit
        if layer.classes:
            band["classification:classes"] = layer.class_table()
        bands.append(band)
    roles = ["data", "cloud", "snow-ice"] + (["cloud-shadow", "water-mask"] if SCL in layers else [])
    return {"href": f"./{name}", "type": COG_TYPE, "title": "The product's masks at 10 m: " + ", ".join(x.name for x in layers),
            "roles": roles, "raster:bands": bands}

