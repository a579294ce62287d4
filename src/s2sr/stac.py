"""STAC Items of Sentinel-2 scenes as products: the per-band files of Earth Search, Planetary Computer and
Copernicus Data Space, and an L2A Item's SCL (``masks``), read in place (local paths, or http(s) through
GDAL's windowed range reads).

Radiometry comes from the Item, so a 04.00+ scene gives the same reflectance from any catalogue as from its
SAFE. The DN offset of a band is decided, in this order, by:

1. ``earthsearch:boa_offset_applied`` (or the older ``sentinel:boa_offset_applied``) true: the catalogue has
   already removed the offset from the files, so 0;
2. the asset's ``raster:bands`` ``scale`` and ``offset`` (reflectance = DN x scale + offset);
3. ``s2:processing_baseline`` 04.00 or later: -1000 DN (the value every 04.00+ product states);
4. otherwise 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .bands import BANDS, BANDS_10M, BANDS_20M, BANDS_60M, file_token
from .errors import ProductError
from .metadata import OFFSET_BASELINE, Product, ProductMetadata, _baseline_number

#: Earth Search's asset key of each band (Planetary Computer and Copernicus use the file token: B01, B8A).
EARTH_SEARCH_KEYS = {
    "B1": "coastal", "B2": "blue", "B3": "green", "B4": "red", "B5": "rededge1", "B6": "rededge2",
    "B7": "rededge3", "B8": "nir", "B8A": "nir08", "B9": "nir09", "B11": "swir16", "B12": "swir22",
}
#: Asset keys of the SCL in the STAC Items of Earth Search, Planetary Computer and Copernicus Data Space.
ITEM_SCL_KEYS = ("scl", "SCL", "SCL_20m", "scl-jp2")
APPLIED_FLAGS = ("earthsearch:boa_offset_applied", "sentinel:boa_offset_applied")
NEEDED_BANDS = BANDS_10M + BANDS_20M + BANDS_60M


URL_SCHEMES = ("http://", "https://")


def is_url(text: str) -> bool:
    """An http(s) address (of an Item), read in place rather than taken for a local path."""
    return text.lower().startswith(URL_SCHEMES)


def is_stac_item(path: Path) -> bool:
    """A ``.json`` file whose content is a GeoJSON Feature with STAC assets."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and raw.get("type") == "Feature" and "assets" in raw


def asset_key(assets: dict[str, Any], band: str) -> str | None:
    """The asset holding ``band`` at its native resolution, under any of the catalogues' names."""
    token = file_token(band)
    res = BANDS[band].resolution
    for key in (EARTH_SEARCH_KEYS[band], token, f"{token}_{res}m", token.lower(), f"{token.lower()}_{res}m",
                f"{EARTH_SEARCH_KEYS[band]}-jp2"):
        if key in assets:
            return key
    return None


def gdal_path(href: str) -> str:
    """A path GDAL opens: local files as they are, http(s) through /vsicurl/ (range reads, no download)."""
    if href.startswith(("http://", "https://")):
        return f"/vsicurl/{href}"
    if href.startswith("s3://"):
        return f"/vsis3/{href[5:]}"
    if href.startswith("file://"):
        return href[7:]
    return href


def _level(props: dict[str, Any], collection: str, source: str) -> str:
    product_type = str(props.get("s2:product_type", "")).upper()
    text = " ".join((product_type, collection.upper(), str(props.get("processing:level", "")).upper()))
    if "2A" in text:
        return "L2A"
    if "1C" in text:
        return "L1C"
    raise ProductError(f"{source}: neither s2:product_type nor the collection says L1C or L2A; is it a Sentinel-2 Item?")


def _offset(asset: Any, props: dict[str, Any], baseline: str) -> tuple[float, float]:
    """(DN offset, quantification) of one band asset, by the rules of the module docstring."""
    if any(props.get(flag) is True for flag in APPLIED_FLAGS):
        return 0.0, 10000.0
    bands = asset.extra_fields.get("raster:bands") or []
    if bands and ("scale" in bands[0] or "offset" in bands[0]):
        scale = float(bands[0].get("scale", 1e-4))
        return float(bands[0].get("offset", 0.0)) / scale, 1.0 / scale
    if _baseline_number(baseline) >= OFFSET_BASELINE:
        return -1000.0, 10000.0
    return 0.0, 10000.0


def open_item(path: Path | str):
    """A :class:`product.Product` for a STAC Item (a local file, or an http(s) URL read in place): band files
    from its assets, radiometry from its fields."""
    import pystac

    try:
        item = pystac.Item.from_file(str(path))
    except Exception as exc:  # pystac raises several types for malformed or unreachable Items
        raise ProductError(f"{path}: not a readable STAC Item ({exc})") from None
    props = item.properties
    level = _level(props, item.collection_id or "", str(path))
    baseline = str(props.get("s2:processing_baseline", ""))
    band_paths: dict[str, str] = {}
    offsets: dict[str, float] = {}
    quantifications = set()
    missing = []
    for band in NEEDED_BANDS:
        key = asset_key(item.assets, band)
        if key is None:
            missing.append(band)
            continue
        asset = item.assets[key]
        band_paths[band] = gdal_path(asset.get_absolute_href() or asset.href)
        offsets[band], quantification = _offset(asset, props, baseline)
        quantifications.add(quantification)
    if missing:
        raise ProductError(f"{path}: no asset for {', '.join(missing)} (looked for Earth Search, Planetary Computer "
                           f"and Copernicus keys, e.g. {EARTH_SEARCH_KEYS[missing[0]]} or {file_token(missing[0])})")
    if len(quantifications) != 1:
        raise ProductError(f"{path}: raster:bands scales differ between bands ({sorted(quantifications)}); s2sr needs one")
    when = item.datetime.strftime("%Y-%m-%dT%H:%M:%SZ") if item.datetime else ""
    metadata = ProductMetadata(level, baseline, quantifications.pop(), offsets, str(props.get("s2:product_uri") or item.id), when)
    scl = next((item.assets[k] for k in ITEM_SCL_KEYS if k in item.assets), None) if level == "L2A" else None
    masks = {} if scl is None else {"scl": gdal_path(scl.get_absolute_href() or scl.href)}
    return Product(path, metadata, band_paths, masks)
