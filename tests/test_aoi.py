from dataclasses import replace

import pytest
from shapely.geometry import box

from s2sr.aoi import Aoi, crosses_antimeridian, to_crs
from s2sr.errors import AoiError, InputParametersError
from s2sr.footprint import as_feature_geometry
from s2sr.pipeline import product_footprint
from s2sr.sample import SampleSpec, build_sample_product


def test_an_aoi_parses_from_a_bbox_geojson_shapely_or_itself():
    square = box(13.35, 52.48, 13.39, 52.51)
    from_bbox = Aoi.parse([13.35, 52.48, 13.39, 52.51])
    assert from_bbox.geometry.equals(square)
    assert Aoi.parse(square.__geo_interface__).geometry.equals(square)
    assert Aoi.parse(square).geometry.equals(square)
    assert Aoi.parse(from_bbox) is from_bbox


def test_a_bad_aoi_says_what_to_give():
    with pytest.raises(InputParametersError, match="aoi must be a bbox"):
        Aoi.parse("Tempelhof")
    with pytest.raises(AoiError, match="south < north"):
        Aoi.parse([13.35, 52.51, 13.39, 52.48])
    with pytest.raises(AoiError, match="MultiPolygon cut at 180"):
        Aoi.parse(box(179.5, 65, 180.5, 65.1).__geo_interface__)


# -- the antimeridian: a product of UTM zone 60 across 180° (Chukotka), 1.9 km wide, its middle at 180°
ANTIMERIDIAN = SampleSpec(epsg=32660, tile="60WWT", origin=(640440.0, 7213020.0), size=192, nodata_edge=False,
                          masks=False)


def test_a_bbox_across_the_antimeridian_is_two_parts():
    aoi = Aoi.parse([179.9, 65.0, -179.9, 65.1])
    assert aoi.geometry.geom_type == "MultiPolygon"
    assert sorted(p.bounds for p in aoi.geometry.geoms) == [(-180, 65.0, -179.9, 65.1), (179.9, 65.0, 180, 65.1)]
    assert crosses_antimeridian(aoi.geometry)
    _, bbox = as_feature_geometry(aoi.geometry)
    assert bbox == pytest.approx([179.9, 65.0, -179.9, 65.1])  # RFC 7946 §5.2: west > east


def test_a_footprint_across_the_antimeridian_is_cut_there(tmp_path):
    product = build_sample_product(tmp_path, ANTIMERIDIAN)
    footprint = product_footprint(product)
    assert footprint.geom_type == "MultiPolygon" and len(footprint.geoms) == 2
    east, west = sorted(footprint.geoms, key=lambda p: -p.bounds[0])
    assert east.bounds[2] == pytest.approx(180) and west.bounds[0] == pytest.approx(-180)
    width = (180 - east.bounds[0]) + (west.bounds[2] + 180)
    assert 0.03 < width < 0.05  # 1.9 km at 65° N, not the globe
    # back in the product's CRS the two parts are the product's square again
    square = to_crs(footprint, "EPSG:32660")
    assert square.area == pytest.approx(1920**2, rel=0.01)
    # a product of this zone away from 180° keeps one polygon
    inland = build_sample_product(tmp_path / "inland", replace(ANTIMERIDIAN, origin=(500040.0, 7213020.0)))
    assert product_footprint(inland).geom_type == "Polygon"

