"""The STAC Item written beside every output GeoTIFF (``out.tif`` -> ``out.json``).

It says where the file holds data (geometry and bbox of the written footprint), on which grid (``proj:``),
what every band is (``eo:bands`` with names, common names and centre wavelengths; ``raster:bands`` with
type, nodata, scale and resolution), what it was made from (a ``derived_from`` link to the source product
or Item) and by what (the s2sr version, and the weights by name and sha256).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .bands import BANDS, NODATA_DN, SUPERRESOLVED_BANDS, description
from .stac import is_url

STAC_VERSION = "1.0.0"
EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
]
#: Added where the Item has a masks asset (its class tables).
CLASSIFICATION_EXTENSION = "https://stac-extensions.github.io/classification/v2.0.0/schema.json"
#: STAC eo common names of the MSI bands.
COMMON_NAMES = {
    "B1": "coastal", "B2": "blue", "B3": "green", "B4": "red", "B5": "rededge", "B6": "rededge",
    "B7": "rededge", "B8": "nir", "B8A": "nir08", "B9": "nir09", "B11": "swir16", "B12": "swir22",
}
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


def item_path(tif: Path) -> Path:
    return Path(tif).with_suffix(".json")


def write_output_item(tif: Path, **item: Any) -> Path:
    """Write the Item of ``tif`` beside it (temporary name, then rename) and return its path; ``item``: the
    keywords of ``stage_output_item``."""
    staged = stage_output_item(tif, **item)
    try:
        staged.replace(item_path(tif))
    finally:
        staged.unlink(missing_ok=True)
    return item_path(tif)


def staged_items(tif: Path) -> list[Path]:
    """Items of ``tif`` staged by runs that were killed before renaming them (the next run removes them)."""
    path = item_path(tif)
    return list(path.parent.glob(f".{path.name}.*.tmp"))


def stage_output_item(
    tif: Path, *, source: Path | str, source_name: str, level: str, sensing_time: str, weights: list[Any],
    footprint: Any | None, version: str, read_from: Path | None = None, masks: dict[str, Any] | None = None,
    derived_from: list[tuple[Path, str]] | tuple = (),
    uncertainty: dict[str, Any] | None = None,
) -> Path:
    """Write the Item of ``tif`` under a hidden name beside it and return that name, for the caller to rename
    onto ``item_path(tif)`` (before the GeoTIFF itself is renamed into place). ``read_from``: the file to
    describe, when ``tif`` is not there yet (its finished ``.partial``). ``masks``: ``status``, the Item's
    ``s2sr:masks`` (written, unavailable, failed and why), and ``asset``, the masks file (``masks.stac_asset``).
    ``uncertainty``: likewise, the Item's ``s2sr:uncertainty`` (with the calibration) and its ``uncertainty`` asset."""
    import rasterio
    from rasterio.crs import CRS

    from .footprint import as_feature_geometry

    with rasterio.open(read_from or tif) as ds:
        names = [ds.tags(i).get("band") for i in range(1, ds.count + 1)]
        epsg = CRS.from_user_input(ds.crs).to_epsg()
        shape, transform = [ds.height, ds.width], list(ds.transform)[:6]
        resolution = abs(ds.transform.a)
        sensor_model = ds.tags().get("sensor_model")
        adaptation = ds.tags().get("adaptation")
        fusion = ds.tags().get("fusion")
        mosaic = ds.tags().get("mosaic")
    geometry, bbox = as_feature_geometry(footprint) if footprint is not None else (None, None)
    item = {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": EXTENSIONS + ([CLASSIFICATION_EXTENSION] if masks and masks.get("asset") else []),
        "id": Path(tif).stem,
        "geometry": geometry,
        **({"bbox": bbox} if bbox else {}),
        "properties": {
            "datetime": sensing_time or None,
            **({} if sensing_time else {"start_datetime": None, "end_datetime": None}),
            "platform": _platform(source_name),
            "constellation": "sentinel-2",
            "instruments": ["msi"],
            "gsd": resolution,
            "proj:code": f"EPSG:{epsg}" if epsg else None,
            "proj:shape": shape,
            "proj:transform": transform,
            "processing:level": level,
            "processing:software": {"s2sr": version},
            "s2sr:source_product": source_name,
            "s2sr:weights": [{"name": w.name, "sha256": w.sha256, "fusion": w.fusion} for w in weights],
            **({"s2sr:sensor_model": json.loads(sensor_model)} if sensor_model else {}),
            **({"s2sr:adaptation": json.loads(adaptation)} if adaptation else {}),
            **({"s2sr:fusion": json.loads(fusion)} if fusion else {}),
            **({"s2sr:masks": masks["status"]} if masks else {}),
            **({"s2sr:source_products": [source_name] + [name for _, name in derived_from]} if derived_from else {}),
            **({"s2sr:mosaic": json.loads(mosaic)} if mosaic else {}),
            **({"s2sr:uncertainty": uncertainty["status"]} if uncertainty else {}),
        },
        "links": [{"rel": "derived_from", "href": _href(path, tif), "title": name}
                  for path, name in [(source, source_name), *derived_from]],
        "assets": {
            "data": {
                "href": f"./{Path(tif).name}",
                "type": COG_TYPE,
                "title": f"{len(names)} Sentinel-2 bands at {resolution:g} m, {sum(n in SUPERRESOLVED_BANDS for n in names)} super-resolved",
                "roles": ["data", "reflectance"],
                "eo:bands": [_eo_band(n) for n in names],
                "raster:bands": [
                    {"data_type": "uint16", "nodata": NODATA_DN, "scale": 1e-4, "offset": 0.0, "spatial_resolution": resolution}
                    for _ in names
                ],
            },
            **({"masks": masks["asset"]} if masks and masks.get("asset") else {}),
            **({"uncertainty": uncertainty["asset"]} if uncertainty and uncertainty.get("asset") else {}),
        },
    }
    path = item_path(tif)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(item, indent=2))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _platform(source_name: str) -> str:
    """``sentinel-2a`` from ``S2A_MSIL2A_...``; ``sentinel-2`` when the name does not say."""
    head = source_name[:3].upper()
    return f"sentinel-2{head[2].lower()}" if head in ("S2A", "S2B", "S2C", "S2D") else "sentinel-2"


def _eo_band(name: str) -> dict:
    return {"name": name, "common_name": COMMON_NAMES[name], "description": description(name),
            "center_wavelength": BANDS[name].wavelength_nm / 1000}


def _href(source: Path | str, tif: Path) -> str:
    """The source relative to the Item when they share a folder tree, else absolute; a URL as it is."""
    if isinstance(source, str) and is_url(source):
        return source
    source, folder = Path(source).resolve(), Path(tif).resolve().parent
    try:
        return os.path.relpath(source, folder)
    except ValueError:
        return source.as_uri()
