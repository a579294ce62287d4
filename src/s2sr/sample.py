"""Small synthetic Sentinel-2 SAFE products with real JP2 band files, for the demo and the tests.

The imagery is synthetic (smooth land-cover patches with per-class spectra, consistent across the three
grids by block averaging); the structure is faithful: SAFE layout and names of L1C or L2A, old or compact
naming, product metadata with quantification and, from baseline 04.00, the +1000 DN offset, optional
nodata beyond a swath edge, optionally zipped.
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
    if spec.nodata_edge:
        rows, cols = np.indices(dn.shape)
        # swath edge: a diagonal through the lower-right corner, in metres so all grids agree
        centre_r, centre_c = (rows + 0.5) * f * 10, (cols + 0.5) * f * 10
        dn[centre_r + centre_c > 1.6 * spec.size * 10] = NODATA_DN
    if spec.saturated_pixels:
        dn.flat[: spec.saturated_pixels] = 65535
    return dn


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
    bands: dict[str, np.ndarray] | None = None,
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
    SAFE, ``raster:bands`` scale 0.0001 and offset -0.1.
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
