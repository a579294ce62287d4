"""What a run checks before any work: the output's name and folder, files it would replace, the AOI."""

import json

import pytest

import s2sr
from s2sr.errors import AoiError, InputParametersError, NoOutputError, OutputExistsError, ProductError, S2srError
from s2sr.preflight import check_output, check_product_and_aoi
from s2sr.sample import SampleSpec


def test_an_output_that_is_a_folder_or_not_a_geotiff_is_refused(tmp_path):
    (tmp_path / "isdir.tif").mkdir()
    with pytest.raises(InputParametersError, match=r"isdir.tif is a folder; give a file name in it, e.g. .*isdir.tif/out.tif"):
        check_output(tmp_path / "isdir.tif")
    with pytest.raises(InputParametersError, match=r"must end in .tif or .tiff, e.g. .*o.tif"):
        check_output(tmp_path / "o.png")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputParametersError, match="is a file, not a folder"):
        check_output(tmp_path / "file" / "o.tif")
    assert check_output(tmp_path / "new" / "o.tif") == tmp_path / "new" / "o.tif"  # a folder the run will make


@pytest.mark.parametrize("existing", ["o.tif", "o.json", "o_masks.tif"])
def test_an_existing_output_or_a_users_file_beside_it_is_never_replaced_unless_asked(tmp_path, existing):
    (tmp_path / existing).write_text("the user's own")
    with pytest.raises(OutputExistsError, match=rf"{existing} exists; give --overwrite \(overwrite=True\)") as caught:
        check_output(tmp_path / "o.tif")
    assert isinstance(caught.value, S2srError) and isinstance(caught.value, FileExistsError)
    assert check_output(tmp_path / "o.tif", overwrite=True) == tmp_path / "o.tif"
    assert (tmp_path / existing).read_text() == "the user's own"  # checking touches nothing


def test_an_item_a_killed_run_left_without_its_geotiff_is_no_output(tmp_path):
    item = {"type": "Feature", "properties": {"s2sr:source_product": "S2B_MSIL2A_X"}, "assets": {}}
    (tmp_path / "o.json").write_text(json.dumps(item))  # renamed into place before the GeoTIFF, then killed
    assert check_output(tmp_path / "o.tif") == tmp_path / "o.tif"
    (tmp_path / "o.tif").write_text("a GeoTIFF")  # beside its GeoTIFF it is an output again
    with pytest.raises(OutputExistsError):
        check_output(tmp_path / "o.tif")


def test_the_library_refuses_before_the_nets_and_replaces_when_asked(build_product, tiny_weights, tmp_path):
    product = build_product(size=36)
    out = tmp_path / "o.tif"
    (tmp_path / "o.json").write_text('{"mine": true}')
    with pytest.raises(OutputExistsError, match="o.json exists"):
        s2sr.superresolve_product(product, out, weights_dir=tiny_weights)
    assert not out.exists() and json.loads((tmp_path / "o.json").read_text()) == {"mine": True}
    s2sr.superresolve_product(product, out, weights_dir=tiny_weights, overwrite=True)
    assert out.is_file() and "s2sr:source_product" in json.loads((tmp_path / "o.json").read_text())["properties"]
    with pytest.raises(OutputExistsError, match="o.tif exists"):
        s2sr.superresolve_product(product, out, weights_dir=tiny_weights)


def test_an_aoi_that_misses_names_the_products_bounds_and_swapped_axes(build_product):
    product = build_product(size=36)
    west, south, east, north = SampleSpec().wgs84_bbox(6, 6, 30, 30)
    with pytest.raises(AoiError) as caught:
        check_product_and_aoi(product, [south, west, north, east])  # latitude first
    message = str(caught.value)
    assert "does not intersect" in message and "which covers [" in message and "WGS84" in message
    assert "longitude and latitude look swapped" in message
    with pytest.raises(AoiError, match="give an AOI inside the product's footprint") as caught:
        check_product_and_aoi(product, [west + 1, south, east + 1, north])
    assert "swapped" not in str(caught.value)
    with pytest.raises(AoiError, match="which covers"):  # the library says the same
        s2sr.read_mask(product, [south, west, north, east])
    assert check_product_and_aoi(product, [west, south, east, north]).level == "L2A"


def test_an_aoi_only_over_the_products_nodata_is_refused_before_the_work(build_product):
    product = build_product(size=216)  # its swath ends on a diagonal near the lower-right corner (``nodata_edge``)
    with pytest.raises(NoOutputError, match="outside its swath"):
        check_product_and_aoi(product, SampleSpec(size=216).wgs84_bbox(192, 192, 216, 216))


def test_a_corrupt_zip_is_named_as_one(build_product, tmp_path):
    good = build_product(size=12, zipped=True)
    truncated = tmp_path / "S2B_MSIL2A_truncated.zip"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    fake = tmp_path / "fake.zip"
    fake.write_text("not a zip at all")
    for path in (truncated, fake):
        with pytest.raises(ProductError, match="a corrupt or truncated zip .*; download the product again"):
            check_product_and_aoi(path)
