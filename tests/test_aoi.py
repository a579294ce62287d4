import pytest
from shapely.geometry import box

from s2sr.aoi import Aoi
from s2sr.errors import AoiError, InputParametersError


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
    with pytest.raises(AoiError, match="west < east"):
        Aoi.parse([13.39, 52.48, 13.35, 52.51])
