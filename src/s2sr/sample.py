"""Small synthetic Sentinel-2 SAFE products with real JP2 band files, for the demo and the tests.

The imagery is synthetic (smooth land-cover patches with per-class spectra, consistent across the three
grids by block averaging); the structure is faithful: SAFE layout and names of L1C or L2A, old or compact
naming, product metadata with quantification and, from baseline 04.00, the +1000 DN offset, optional
nodata beyond a swath edge, optionally zipped, and the masks a product of that level and baseline carries
(``sample_masks``): L2A the SCL and cloud probability at 20 m, L1C from 04.00 ``MSK_CLASSI_B00.jp2`` at 60 m,
before it the vector ``MSK_CLOUDS_B00.gml`` (the same opaque and cirrus masks as polygons on the 60 m grid).
The masks follow the synthetic scene (water, vegetation, bare ground) with a synthetic cloud, its shadow, a
band of cirrus and a patch of snow; a product built from real imagery (``bands``) gets none, since they would
not describe it.
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bands import BANDS, NODATA_DN, file_token
from .resample import block_mean, upsample

#: Rough surface reflectance of a few covers in band_id order B1..B12 (B10 for L1C only).
_SPECTRA = np.array(
    [
        [0.08, 0.07, 0.06, 0.05, 0.04, 0.03, 0.03, 0.02, 0.02, 0.01, 0.005, 0.01, 0.01],  # water
        [0.05, 0.05, 0.08, 0.05, 0.11, 0.28, 0.34, 0.36, 0.37, 0.13, 0.005, 0.19, 0.09],  # crop
        [0.04, 0.03, 0.05, 0.03, 0.07, 0.20, 0.25, 0.27, 0.28, 0.10, 0.004, 0.14, 0.06],  # forest
        [0.12, 0.13, 0.16, 0.20, 0.22, 0.24, 0.26, 0.27, 0.28, 0.12, 0.006, 0.33, 0.28],  # bare soil
        [0.14, 0.15, 0.16, 0.17, 0.18, 0.19, 0.20, 0.21, 0.21, 0.09, 0.006, 0.22, 0.20],  # urban
    ],
    dtype=np.float32,
)


@dataclass(frozen=True)
class SampleSpec:
    """What to build. ``size`` is the 10 m width and height in pixels (a multiple of 6)."""

    level: str = "L2A"
    baseline: str = "04.00"
    size: int = 192
    tile: str = "33UUU"
    epsg: int = 32633
    origin: tuple[float, float] = (399960.0, 5800020.0)  # upper-left x, y in metres
    date: str = "20230615T101559"
    naming: str = "compact"  # or "old": the long OPER names of L1C products of Dec 2015 - Dec 2016
    nodata_edge: bool = True
    saturated_pixels: int = 0
    seed: int = 0
    masks: bool = True  # write the masks of its level and baseline (not for real imagery: ``build_sample_product``)

    @property
    def offset(self) -> int:
        return 1000 if self.baseline >= "04.00" else 0

    def wgs84_bbox(self, row0: float, col0: float, row1: float, col1: float) -> list[float]:
        """``[west, south, east, north]`` of a pixel rectangle of the 10 m grid, for AOI examples."""
        from pyproj import Transformer

        to_wgs = Transformer.from_crs(self.epsg, 4326, always_xy=True)
        x0, y0 = self.origin
        west, north = to_wgs.transform(x0 + col0 * 10, y0 - row0 * 10)
        east, south = to_wgs.transform(x0 + col1 * 10, y0 - row1 * 10)
        return [west, south, east, north]

    @property
    def processed(self) -> str:
        return f"{self.date[:8]}T150000"

    @property
    def product_name(self) -> str:
        if self.naming == "old":
            return f"S2A_OPER_PRD_MSIL1C_PDMC_{self.processed}_R022_V{self.date}_{self.date}"
        kind = "MSIL2A" if self.level == "L2A" else "MSIL1C"
        return f"S2B_{kind}_{self.date}_N{self.baseline.replace('.', '')}_R022_T{self.tile}_{self.processed}"

    @property
    def metadata_name(self) -> str:
        if self.naming == "old":
            return f"S2A_OPER_MTD_SAFL1C_PDMC_{self.processed}_R022_V{self.date}_{self.date}.xml"
        return "MTD_MSIL2A.xml" if self.level == "L2A" else "MTD_MSIL1C.xml"

    @property
    def granule(self) -> str:
        if self.naming == "old":
            return f"S2A_OPER_MSI_L1C_TL_SGS__{self.processed}_A002345_T{self.tile}_N{self.baseline}"
        return f"{self.level}_T{self.tile}_A012345_{self.date}"


def _reflectance(spec: SampleSpec) -> np.ndarray:
    """(13, size, size) reflectance at 10 m: smooth class fields mixed by softmax, plus texture."""
    rng = np.random.default_rng(spec.seed)
    n = spec.size
    coarse = rng.normal(size=(len(_SPECTRA), n // 6 + 1, n // 6 + 1)).astype(np.float32)
    fields = upsample(coarse, 6)[:, :n, :n] * 4.0
    weights = np.exp(fields - fields.max(axis=0))
    weights /= weights.sum(axis=0)
    refl = np.tensordot(_SPECTRA.T, weights, axes=1)
    texture = 1 + 0.08 * upsample(rng.normal(size=(1, n // 2, n // 2)).astype(np.float32), 2)[:, :n, :n]
    return np.clip(refl * texture, 0.0005, 1.5)


def _band_dn(spec: SampleSpec, refl: np.ndarray, band: str, real: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """DN of one band as the product stores it (offset included); from ``real`` (reflectance x 10000 at the
    band's native resolution) when it holds the band, else from the synthetic scene."""
    b = BANDS[band]
    f = b.resolution // 10
    if real is not None and band in real:
        data = np.asarray(real[band], np.float32)[None] / 10000
    else:
        data = refl[b.band_id][None]
        if f > 1:
            data = block_mean(data, f)
    dn = np.clip(np.rint(data[0] * 10000) + spec.offset, 1, 65535).astype(np.uint16)
    dn[_outside_swath(spec, dn.shape, f)] = NODATA_DN
    if spec.saturated_pixels:
        dn.flat[: spec.saturated_pixels] = 65535
    return dn


def _outside_swath(spec: SampleSpec, shape: tuple[int, int], f: int) -> np.ndarray:
    """The pixels of a grid ``f`` times coarser than 10 m beyond the swath edge (``nodata_edge``)."""
    rows, cols = np.indices(shape)
    # a diagonal through the lower-right corner, in metres so all grids agree
    return (rows + 0.5) * f * 10 + (cols + 0.5) * f * 10 > 1.6 * spec.size * 10 if spec.nodata_edge else np.zeros(shape, bool)


def _mask_geometry(spec: SampleSpec, f: int) -> dict[str, np.ndarray]:
    """The synthetic cloud (a disc with a medium-probability rim), its shadow, a cirrus band and a snow patch on
    a grid ``f`` times coarser than 10 m, by pixel centre in metres so every grid draws the same shapes."""
    n = spec.size // f
    y, x = (np.indices((n, n)) + 0.5) * f / spec.size  # 0..1 across the product
    cloud = np.hypot(y - 0.3, x - 0.6)
    return {
        "cloud": cloud < 0.15,
        "rim": (cloud >= 0.15) & (cloud < 0.2),
        "shadow": np.hypot(y - 0.45, x - 0.45) < 0.12,
        "cirrus": (y > 0.7) & (y < 0.8),
        "snow": (y < 0.25) & (x > 0.72),
    }


def sample_masks(spec: SampleSpec, refl: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The masks ``build_sample_product`` writes, at native resolution: ``scl`` (SCL classes: water 6,
    vegetation 4, not vegetated 5, the cloud 9 with a rim of 8, shadow 3, cirrus 10, snow 11, beyond the swath
    0) and ``cloud_probability`` (20 m, uint8) for L2A; ``classi`` (3, 60 m: opaque clouds, cirrus, snow and
    ice; 0 or 1) for L1C."""
    if spec.level == "L2A":
        refl = _reflectance(spec) if refl is None else refl
        r20 = block_mean(refl[[3, 7]], 2)  # B4, B8 at 20 m
        ndvi = (r20[1] - r20[0]) / (r20[1] + r20[0])
        g = _mask_geometry(spec, 2)
        scl = np.where(r20[1] < 0.06, 6, np.where(ndvi > 0.35, 4, 5)).astype(np.uint8)
        prob = np.full(scl.shape, 2, np.uint8)
        for where, cls, p in ((g["snow"], 11, 5), (g["cirrus"], 10, 25), (g["shadow"], 3, 10), (g["rim"], 8, 55),
                              (g["cloud"], 9, 95)):
            scl[where], prob[where] = cls, p
        outside = _outside_swath(spec, scl.shape, 2)
        scl[outside], prob[outside] = 0, 0
        return {"scl": scl, "cloud_probability": prob}
    g = _mask_geometry(spec, 6)
    classi = np.stack([g["cloud"] | g["rim"], g["cirrus"], g["snow"]]).astype(np.uint8)
    classi[:, _outside_swath(spec, classi.shape[1:], 6)] = 0
    return {"classi": classi}


def _write_masks(spec: SampleSpec, granule: Path, masks: dict[str, np.ndarray]) -> None:
    """The product's masks as its level and baseline carry them (``sample_masks``), as real files."""
    import rasterio
    from rasterio.transform import from_origin

    files = {"scl": (granule / "IMG_DATA" / "R20m" / f"T{spec.tile}_{spec.date}_SCL_20m.jp2", 20),
             "cloud_probability": (granule / "QI_DATA" / "MSK_CLDPRB_20m.jp2", 20),
             "classi": (granule / "QI_DATA" / "MSK_CLASSI_B00.jp2", 60)}
    if spec.level == "L1C" and spec.offset == 0:  # before baseline 04.00: vector masks
        name = ("MSK_CLOUDS_B00.gml" if spec.naming != "old" else
                f"S2A_OPER_MSK_CLOUDS_SGS__{spec.processed}_A002345_T{spec.tile}_B00_MSIL1C.gml")
        (granule / "QI_DATA").mkdir(parents=True, exist_ok=True)
        (granule / "QI_DATA" / name).write_text(_clouds_gml(spec, masks["classi"]))
        return
    for kind, data in masks.items():
        path, res = files[kind]
        data = data if data.ndim == 3 else data[None]
        path.parent.mkdir(parents=True, exist_ok=True)
        profile = dict(driver="JP2OpenJPEG", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype="uint8", crs=f"EPSG:{spec.epsg}", transform=from_origin(*spec.origin, res, res),
                       QUALITY="100", REVERSIBLE="YES", RESOLUTIONS="1")
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)


def _clouds_gml(spec: SampleSpec, classi: np.ndarray) -> str:
    """``MSK_CLOUDS_B00.gml`` as products before baseline 04.00 carry it: the opaque and cirrus masks as
    polygons along the 60 m pixel edges, in the tile's CRS."""
    from rasterio.features import shapes
    from rasterio.transform import from_origin

    srs = f"urn:ogc:def:crs:EPSG::{spec.epsg}"
    transform = from_origin(*spec.origin, 60, 60)
    members = []
    for band, kind in ((0, "OPAQUE"), (1, "CIRRUS")):
        polygons = [geom for geom, value in shapes(classi[band], mask=classi[band] > 0, transform=transform) if value]
        for i, geom in enumerate(polygons):
            rings = [("exterior", geom["coordinates"][0])] + [("interior", r) for r in geom["coordinates"][1:]]
            body = "".join(
                f"<gml:{part}><gml:LinearRing><gml:posList srsDimension=\"2\">"
                + " ".join(f"{x:.0f} {y:.0f}" for x, y in ring)
                + f"</gml:posList></gml:LinearRing></gml:{part}>"
                for part, ring in rings)
            members.append(
                f'    <eop:MaskFeature gml:id="{kind}.{i}">\n'
                f'      <eop:maskType codeSpace="urn:gs2:S2PDGS:maskType">{kind}</eop:maskType>\n'
                f'      <eop:extentOf><gml:Polygon gml:id="{kind}.{i}_Polygon">{body}</gml:Polygon></eop:extentOf>\n'
                f"    </eop:MaskFeature>")
    x0, y1 = spec.origin
    x1, y0 = x0 + spec.size * 10, y1 - spec.size * 10
    bounded = (f'<gml:Envelope srsName="{srs}"><gml:lowerCorner>{x0:.0f} {y0:.0f}</gml:lowerCorner>'
               f"<gml:upperCorner>{x1:.0f} {y1:.0f}</gml:upperCorner></gml:Envelope>" if members else
               "<gml:Null>Inapplicable</gml:Null>")
    body = "\n".join(members)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<eop:Mask xmlns:eop="http://www.opengis.net/eop/2.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xmlns:gml="http://www.opengis.net/gml/3.2" gml:id="MSK_CLOUDS_B00">
  <gml:name>MSK_CLOUDS pixels mask of T{spec.tile}</gml:name>
  <gml:boundedBy>{bounded}</gml:boundedBy>
  <eop:maskMembers>
{body}
  </eop:maskMembers>
</eop:Mask>
"""


def _file_stem(spec: SampleSpec, band: str) -> str:
    token = "B8A" if band == "B8A" else f"B{int(band[1:]):02d}"
    if spec.naming == "old":
        return f"S2A_OPER_MSI_L1C_TL_SGS__{spec.processed}_A002345_T{spec.tile}_{token}"
    return f"T{spec.tile}_{spec.date}_{token}"


def _mtd_xml(spec: SampleSpec, image_files: list[str]) -> str:
    l2a = spec.level == "L2A"
    root = "Level-2A_User_Product" if l2a else "Level-1C_User_Product"
    psd = 13 if spec.naming == "old" else 14
    ns = f"https://psd-{psd}.sentinel2.eo.esa.int/PSD/User_Product_{'Level-2A' if l2a else 'Level-1C'}.xsd"
    files = "\n".join(f"            <IMAGE_FILE>{f}</IMAGE_FILE>" for f in image_files)
    quant = (
        "<BOA_QUANTIFICATION_VALUE unit=\"none\">10000</BOA_QUANTIFICATION_VALUE>"
        if l2a
        else "<QUANTIFICATION_VALUE unit=\"none\">10000</QUANTIFICATION_VALUE>"
    )
    offsets = ""
    if spec.offset:
        tag, lst = ("BOA_ADD_OFFSET", "BOA_ADD_OFFSET_VALUES_LIST") if l2a else ("RADIO_ADD_OFFSET", "Radiometric_Offset_List")
        items = "\n".join(f'        <{tag} band_id="{i}">-{spec.offset}</{tag}>' for i in range(13))
        offsets = f"<{lst}>\n{items}\n      </{lst}>"
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:{root} xmlns:n1="{ns}">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_URI>{spec.product_name}.SAFE</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-{'2A' if l2a else '1C'}</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI{'2A' if l2a else '1C'}</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{spec.baseline}</PROCESSING_BASELINE>
      <Product_Organisation>
        <Granule_List>
          <Granule imageFormat="JPEG2000">
{files}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>
      <Special_Values><SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX></Special_Values>
      <QUANTIFICATION_VALUES_LIST>{quant}</QUANTIFICATION_VALUES_LIST>
      {offsets}
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:{root}>
"""


def build_sample_product(
    directory: Path, spec: SampleSpec = SampleSpec(), *, zipped: bool = False, flat_zip: bool = False,
    bands: dict[str, np.ndarray] | None = None, masks: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write a SAFE product into ``directory``; returns the .SAFE directory or the .zip path.

    ``flat_zip``: the zip holds the SAFE's content at its top level, with no ``.SAFE/`` folder. ``bands``:
    imagery to use instead of the synthetic scene, reflectance x 10000 per band name at its native
    resolution (``size``, ``size/2`` or ``size/6`` pixels a side); the synthetic scene is only made when a
    band is missing, so a caller can build a whole-size product in pieces it can afford.
    """
    import rasterio
    from rasterio.transform import from_origin

    if spec.size % 6 or spec.size < 6:
        raise ValueError(f"size must be a positive multiple of 6, got {spec.size}")
    if spec.naming == "old" and (spec.level != "L1C" or spec.baseline >= "03"):
        raise ValueError("old naming exists only for L1C products of baselines 02.0x (Dec 2015 - Dec 2016)")
    names = [b for b in BANDS if spec.level == "L1C" or b != "B10"]
    refl = None if bands is not None and all(b in bands for b in names) else _reflectance(spec)
    safe = Path(directory) / f"{spec.product_name}.SAFE"
    granule = f"GRANULE/{spec.granule}/IMG_DATA"
    image_files = []
    for band in names:
        res = BANDS[band].resolution
        sub = f"{granule}/R{res}m" if spec.level == "L2A" else granule
        stem = _file_stem(spec, band) + (f"_{res}m" if spec.level == "L2A" else "")
        path = safe / sub / f"{stem}.jp2"
        path.parent.mkdir(parents=True, exist_ok=True)
        dn = _band_dn(spec, refl, band, bands)
        profile = dict(driver="JP2OpenJPEG", width=dn.shape[1], height=dn.shape[0], count=1, dtype="uint16",
                       crs=f"EPSG:{spec.epsg}", transform=from_origin(*spec.origin, res, res),
                       QUALITY="100", REVERSIBLE="YES", RESOLUTIONS="1")
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(dn, 1)
        image_files.append(f"{sub}/{stem}")
    if masks is not None or (spec.masks and bands is None):
        _write_masks(spec, safe / "GRANULE" / spec.granule, masks if masks is not None else sample_masks(spec, refl))
    (safe / spec.metadata_name).write_text(_mtd_xml(spec, image_files))
    (safe / "manifest.safe").write_text('<?xml version="1.0" encoding="UTF-8"?>\n<xfdu:XFDU xmlns:xfdu="urn:ccsds:schema:xfdu:1"/>\n')
    if not zipped:
        return safe
    archive = safe.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(safe.rglob("*")):
            zf.write(p, p.relative_to(safe if flat_zip else safe.parent).as_posix())
    shutil.rmtree(safe)
    return archive


#: How each catalogue names the band assets of a Sentinel-2 Item and treats the 04.00 offset.
ITEM_STYLES = ("earth-search", "planetary-computer", "copernicus")


def build_sample_item(
    directory: Path, spec: SampleSpec = SampleSpec(), style: str = "earth-search",
    bands: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write a STAC Item and its per-band GeoTIFFs into ``directory``, as ``style``'s catalogue serves the
    scene ``build_sample_product`` writes as SAFE; returns the Item's path.

    Earth Search: keys ``blue``, ``nir08``...; the 04.00 offset removed from the files and
    ``earthsearch:boa_offset_applied`` true. Planetary Computer: keys ``B02``...; the files as in the SAFE,
    only ``s2:processing_baseline`` says so. Copernicus Data Space: keys ``B02_10m``...; the files as in the
    SAFE, ``raster:bands`` scale 0.0001 and offset -0.1. An L2A Item of the synthetic scene carries its SCL as
    each catalogue names it (``scl``, ``SCL``, ``SCL_20m``; ``SCL.tif``, uint8, nodata 0).
    """
    import json

    import rasterio
    from rasterio.transform import from_origin

    from .stac import EARTH_SEARCH_KEYS

    if style not in ITEM_STYLES:
        raise ValueError(f"style must be one of {ITEM_STYLES}, got {style!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    refl = _reflectance(spec)
    assets = {}
    for band in EARTH_SEARCH_KEYS:
        res = BANDS[band].resolution
        dn = _band_dn(spec, refl, band, bands)
        raster = {"nodata": 0, "data_type": "uint16", "spatial_resolution": res}
        if style == "earth-search":
            key = EARTH_SEARCH_KEYS[band]
            if spec.offset:
                dn = np.where(dn == NODATA_DN, NODATA_DN, np.clip(dn.astype(np.int32) - spec.offset, 1, 65535)).astype(np.uint16)
            raster |= {"scale": 0.0001, "offset": 0.0}
        elif style == "planetary-computer":
            key, raster = file_token(band), None
        else:
            key = f"{file_token(band)}_{res}m"
            raster |= {"scale": 0.0001, "offset": -spec.offset / 10000}
        path = directory / f"{file_token(band)}.tif"
        profile = dict(driver="GTiff", width=dn.shape[1], height=dn.shape[0], count=1, dtype="uint16", nodata=0,
                       crs=f"EPSG:{spec.epsg}", transform=from_origin(*spec.origin, res, res), tiled=True,
                       blockxsize=256, blockysize=256, compress="deflate")
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(dn, 1)
        assets[key] = {"href": f"./{path.name}", "type": "image/tiff; application=geotiff", "roles": ["data"],
                       **({"raster:bands": [raster]} if raster else {})}
    if spec.masks and bands is None and spec.level == "L2A":
        scl = sample_masks(spec, refl)["scl"]
        profile = dict(driver="GTiff", width=scl.shape[1], height=scl.shape[0], count=1, dtype="uint8", nodata=0,
                       crs=f"EPSG:{spec.epsg}", transform=from_origin(*spec.origin, 20, 20), tiled=True,
                       blockxsize=256, blockysize=256, compress="deflate")
        with rasterio.open(directory / "SCL.tif", "w", **profile) as dst:
            dst.write(scl, 1)
        key = {"earth-search": "scl", "planetary-computer": "SCL", "copernicus": "SCL_20m"}[style]
        assets[key] = {"href": "./SCL.tif", "type": "image/tiff; application=geotiff", "roles": ["data"],
                       "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}]}
    west, south, east, north = spec.wgs84_bbox(0, 0, spec.size, spec.size)
    date = spec.date
    props = {
        "datetime": f"{date[:4]}-{date[4:6]}-{date[6:8]}T{date[9:11]}:{date[11:13]}:{date[13:15]}Z",
        "platform": "sentinel-2b",
        "s2:product_type": "S2MSI2A" if spec.level == "L2A" else "S2MSI1C",
        "s2:processing_baseline": spec.baseline,
        "s2:product_uri": f"{spec.product_name}.SAFE",
    }
    if style == "earth-search":
        props["earthsearch:boa_offset_applied"] = bool(spec.offset)
    item = {
        "type": "Feature", "stac_version": "1.0.0", "id": f"{spec.product_name}-{style}",
        "stac_extensions": ["https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
        "collection": f"sentinel-2-{spec.level.lower()}",
        "geometry": {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]]},
        "bbox": [west, south, east, north], "properties": props, "links": [], "assets": assets,
    }
    path = directory / "item.json"
    path.write_text(json.dumps(item, indent=1))
    return path
