"""Footprints: where a raster holds data, as a WGS84 polygon (for the block's data.json and AOI checks).

A footprint is traced from a validity mask (``rasterio.features.shapes``), at most ``MAX_SIDE`` cells a side
so memory stays small whatever the raster, and reprojected densified so its edges stay true in degrees.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .aoi import from_crs

MAX_SIDE = 1024


def mask_footprint(mask: np.ndarray, transform: Any, crs: Any) -> Any | None:
    """The union of the True cells of ``mask`` (on the grid ``transform``) in WGS84; None if there are none."""
    from rasterio.features import shapes
    from shapely.geometry import shape
    from shapely.ops import unary_union

    if not mask.any():
        return None
    polygons = [shape(g) for g, v in shapes(mask.astype(np.uint8), mask=mask, transform=transform) if v]
    cell = max(abs(transform.a), abs(transform.e))
    return from_crs(unary_union(polygons).simplify(cell, preserve_topology=True), crs)


def raster_footprint(path: Path) -> Any | None:
    """Where the raster at ``path`` holds data (any band not nodata), traced on at most MAX_SIDE cells a side."""
    import rasterio
    from affine import Affine

    with rasterio.open(path) as ds:
        step = max(1, math.ceil(max(ds.height, ds.width) / MAX_SIDE))
        shape = (math.ceil(ds.height / step), math.ceil(ds.width / step))
        mask = ds.dataset_mask(out_shape=shape) > 0
        transform = ds.transform * Affine.scale(ds.width / shape[1], ds.height / shape[0])
        return mask_footprint(mask, transform, ds.crs)


def written_footprint(tif: Path, aoi: Any | None) -> Any | None:
    """Where ``tif`` holds data, cut to the AOI's exact outline when there is one (WGS84)."""
    footprint = raster_footprint(tif)
    if footprint is None or aoi is None:
        return footprint
    cut = footprint.intersection(aoi)
    return footprint if cut.is_empty else cut


def as_feature_geometry(geom: Any) -> tuple[dict, list[float]]:
    """GeoJSON geometry and bbox of a WGS84 geometry, coordinates rounded to about a centimetre. A geometry cut
    at the antimeridian (``aoi.cut_at_antimeridian``) gets the bbox RFC 7946 §5.2 gives it: west of its eastern
    parts, east of its western parts, so west > east."""
    import json

    from shapely.geometry import mapping

    from .aoi import crosses_antimeridian

    rounded = json.loads(json.dumps(mapping(geom)), parse_float=lambda x: round(float(x), 7))
    bbox = list(geom.bounds)
    if crosses_antimeridian(geom):
        parts = geom.geoms
        bbox[0] = min(p.bounds[0] for p in parts if p.bounds[2] >= 180)
        bbox[2] = max(p.bounds[2] for p in parts if p.bounds[0] <= -180)
    return rounded, [round(v, 7) for v in bbox]
