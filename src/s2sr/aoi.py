"""Areas of interest: WGS84 bbox or GeoJSON geometry -> product CRS -> a 60 m-aligned window and a mask."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import AoiError, InputParametersError
from .tiling import Window, align_outward


@dataclass(frozen=True)
class Aoi:
    """An area of interest in WGS84: a shapely (Multi)Polygon."""

    geometry: Any

    @classmethod
    def parse(cls, aoi: Any) -> Aoi:
        """From an Aoi, a shapely geometry, a GeoJSON mapping or a ``[W, S, E, N]`` bbox."""
        if isinstance(aoi, Aoi):
            return aoi
        if isinstance(aoi, (list, tuple)):
            return cls(geometry_from_bbox(aoi))
        if isinstance(aoi, dict):
            return cls(geometry_from_geojson(aoi, "aoi"))
        if hasattr(aoi, "geom_type"):
            return cls(geometry_from_geojson(aoi.__geo_interface__, "aoi"))
        raise InputParametersError(f"aoi must be a bbox [W, S, E, N], a GeoJSON geometry or a shapely polygon, got {type(aoi).__name__}")


def geometry_from_bbox(bbox: Sequence[float]) -> Any:
    """A WGS84 polygon from ``[west, south, east, north]``; one crossing the antimeridian (west > east, as RFC
    7946 §5.2 writes it) becomes a MultiPolygon of its two parts, cut at 180° (§3.1.9)."""
    from shapely.geometry import MultiPolygon, box

    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise AoiError(f"bbox must be [west, south, east, north] in degrees, got {bbox!r}")
    try:
        west, south, east, north = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise AoiError(f"bbox must hold four numbers, got {bbox!r}") from None
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise AoiError(f"bbox must hold finite numbers, got {bbox!r}")
    if not (-180 <= west <= 180 and -180 <= east <= 180 and west != east and -90 <= south < north <= 90):
        raise AoiError(
            f"bbox {bbox!r} is not [west, south, east, north] in degrees with south < north and west != east "
            "(west > east: a bbox across the antimeridian)"
        )
    if west > east:  # across the antimeridian: from west to 180, and from -180 to east
        return MultiPolygon([box(west, south, 180, north), box(-180, south, east, north)])
    return box(west, south, east, north)


def geometry_from_geojson(obj: Any, name: str = "geometry") -> Any:
    """A WGS84 (Multi)Polygon from a GeoJSON geometry, Feature or FeatureCollection of one feature."""
    from shapely.geometry import shape

    if isinstance(obj, dict) and obj.get("type") == "FeatureCollection":
        features = obj.get("features") or []
        if len(features) != 1:
            raise AoiError(f"{name}: a FeatureCollection must hold exactly one feature, it holds {len(features)}")
        obj = features[0]
    if isinstance(obj, dict) and obj.get("type") == "Feature":
        obj = obj.get("geometry")
    try:
        geom = shape(obj)
    except Exception as exc:  # shapely raises several types for malformed GeoJSON
        raise AoiError(f"{name} is not a GeoJSON geometry ({exc}); give a Polygon or MultiPolygon") from None
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise AoiError(f"{name} is a {geom.geom_type}; give a Polygon or MultiPolygon (an area)")
    if geom.is_empty or not geom.is_valid:
        raise AoiError(f"{name} is empty or self-intersecting; give a valid polygon")
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx and maxx <= 180 and -90 <= miny and maxy <= 90):
        raise AoiError(f"{name} has coordinates outside longitude -180..180 / latitude -90..90; give WGS84 degrees, "
                       "and an area across the antimeridian as a MultiPolygon cut at 180° (RFC 7946 §3.1.9)")
    return geom


def to_crs(geom: Any, crs: Any) -> Any:
    """Reproject a WGS84 geometry, densified first so its edges stay true in the target projection."""
    import shapely
    import shapely.ops
    from pyproj import CRS, Transformer

    transformer = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_user_input(crs), always_xy=True)
    dense = shapely.segmentize(geom, 0.001)
    return shapely.ops.transform(transformer.transform, dense)


def from_crs(geom: Any, crs: Any) -> Any:
    """Reproject a geometry in ``crs`` to WGS84, densified first (every 100 m) so its edges stay true; one that
    crosses the antimeridian comes back cut there into a MultiPolygon (RFC 7946 §3.1.9)."""
    import shapely
    import shapely.ops
    from pyproj import CRS, Transformer

    transformer = Transformer.from_crs(CRS.from_user_input(crs), CRS.from_epsg(4326), always_xy=True)
    centre = geom.representative_point()
    reference, _ = transformer.transform(centre.x, centre.y)

    def unwrapped(x, y):
        """Longitudes within 180° of the geometry's own: continuous across the antimeridian (maybe beyond it)."""
        lon, lat = transformer.transform(x, y)
        lon = np.asarray(lon, dtype=float)
        return lon - 360.0 * np.round((lon - reference) / 360.0), lat

    return cut_at_antimeridian(shapely.ops.transform(unwrapped, shapely.segmentize(geom, 100.0)))


def cut_at_antimeridian(geom: Any) -> Any:
    """A WGS84 geometry whose longitudes run continuously past ±180° cut there, each part shifted back into
    -180 … 180: a MultiPolygon of the parts (RFC 7946 §3.1.9); a geometry within -180 … 180 as it is."""
    from shapely import affinity
    from shapely.geometry import MultiPolygon, box
    from shapely.ops import unary_union

    minx, _, maxx, _ = geom.bounds
    if minx >= -180 and maxx <= 180:
        return geom
    parts = []
    for shift in (-360.0, 0.0, 360.0):
        piece = geom.intersection(box(-180 - shift, -90, 180 - shift, 90))
        if not piece.is_empty:
            piece = affinity.translate(piece, xoff=shift)
            parts += [p for p in getattr(piece, "geoms", [piece]) if p.geom_type == "Polygon" and not p.is_empty]
    if not parts:
        return geom
    return MultiPolygon(parts) if len(parts) > 1 else unary_union(parts)


def crosses_antimeridian(geom: Any) -> bool:
    """Whether a WGS84 (Multi)Polygon holds parts on both sides of 180°, touching it from each side."""
    if geom.geom_type != "MultiPolygon":
        return False
    parts = geom.geoms
    return any(p.bounds[2] >= 180 for p in parts) and any(p.bounds[0] <= -180 for p in parts)


def aoi_window(geom: Any, transform: Any, raster: Window, product: str = "product") -> Window:
    """The 60 m-aligned window of the 10 m grid that covers ``geom`` (in the product CRS), inside the raster."""
    minx, miny, maxx, maxy = geom.bounds
    inv = ~transform
    corners = ((minx, maxy), (maxx, miny))
    cols = [inv.a * x + inv.b * y + inv.c for x, y in corners]
    rows = [inv.d * x + inv.e * y + inv.f for x, y in corners]
    row0, row1 = math.floor(min(rows)), math.ceil(max(rows))
    col0, col1 = math.floor(min(cols)), math.ceil(max(cols))
    window = align_outward(Window(row0, col0, max(1, row1 - row0), max(1, col1 - col0))).intersection(raster)
    if window is None:
        raise AoiError(f"the AOI does not intersect {product}; give an AOI inside the product's footprint")
    return window


def window_of_aoi(aoi: Aoi, crs: Any, transform: Any, raster: Window, product: str = "product") -> tuple[Any, Window]:
    """The AOI in the product CRS and its window (``aoi_window``); an AOI that misses the product gets an
    AoiError naming the product's WGS84 bounds, and saying so when the AOI's axes look swapped."""
    geom = to_crs(aoi.geometry, crs)
    try:
        return geom, aoi_window(geom, transform, raster, product)
    except AoiError:
        raise AoiError(miss_message(aoi.geometry, _raster_wgs84(crs, transform, raster), product)) from None


def miss_message(aoi_wgs84: Any, product_wgs84: Any, product: str) -> str:
    """One line for an AOI that misses a product: both bounds in WGS84, and a hint when swapping the AOI's
    longitude and latitude would make it fit (a ``[south, west, north, east]`` or lat/lon GeoJSON)."""
    import shapely.ops

    w, s, e, n = (round(v, 4) for v in aoi_wgs84.bounds)
    pw, ps, pe, pn = (round(v, 4) for v in product_wgs84.bounds)
    line = (f"the AOI [{w}, {s}, {e}, {n}] does not intersect {product}, which covers [{pw}, {ps}, {pe}, {pn}] "
            "(west, south, east, north in WGS84 degrees)")
    swapped = shapely.ops.transform(lambda x, y, z=None: (y, x), aoi_wgs84)
    if swapped.intersects(product_wgs84):
        return line + "; the AOI's longitude and latitude look swapped: give [west, south, east, north] as lon, lat"
    return line + "; give an AOI inside the product's footprint"


def _raster_wgs84(crs: Any, transform: Any, raster: Window) -> Any:
    from shapely.geometry import box

    x0, y0 = transform * (raster.col, raster.row)
    x1, y1 = transform * (raster.col + raster.width, raster.row + raster.height)
    return from_crs(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), crs)


def inside_mask(geom: Any, transform: Any, window: Window) -> np.ndarray:
    """True for the pixels of ``window`` that the AOI touches."""
    from affine import Affine
    from rasterio.features import geometry_mask

    win_transform = transform @ Affine.translation(window.col, window.row)
    return geometry_mask([geom], (window.height, window.width), win_transform, all_touched=True, invert=True)
