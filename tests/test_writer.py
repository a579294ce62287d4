import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.enums import Resampling
from rasterio.shutil import copy

from s2sr.tiling import Window
from s2sr.writer import COG_OPTIONS, CogWriter, halve, overview_factors

TRANSFORM = Affine(10, 0, 399960, 0, -10, 5800020)


def _gtiff(path, data):
    profile = dict(driver="GTiff", dtype="uint16", nodata=0, count=data.shape[0], height=data.shape[1],
                   width=data.shape[2], crs="EPSG:32633", transform=TRANSFORM, tiled=True, blockxsize=256,
                   blockysize=256)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return path


def _data(rng, bands, h, w):
    data = rng.integers(1, 20000, (bands, h, w), dtype=np.uint16)
    data[:, : h // 3, : w // 2] = 0  # a nodata corner, as at a swath edge
    data[0, -1, -1] = 65535
    data[:, h // 2, :: 3] = 0  # scattered nodata: quads with 1-3 valid pixels
    return data


def _levels(path):
    """Every overview level of band 1..n, read at its own size."""
    with rasterio.open(path) as ds:
        return [ds.read(out_shape=(ds.count, -(-ds.height // f), -(-ds.width // f)), resampling=Resampling.nearest)
                for f in ds.overviews(1)]


@pytest.mark.parametrize("shape", [(512, 512), (513, 40), (600, 600), (300, 1100), (1025, 1025), (2100, 700)])
def test_overview_factors_are_what_the_cog_driver_makes(tmp_path, shape):
    src = _gtiff(tmp_path / "src.tif", np.ones((1, *shape), np.uint16))
    copy(src, tmp_path / "cog.tif", driver="COG", **COG_OPTIONS)
    with rasterio.open(tmp_path / "cog.tif") as ds:
        assert list(overview_factors(*shape)) == ds.overviews(1)


@settings(max_examples=20, deadline=None)
@given(h=st.integers(1, 20), w=st.integers(1, 20), seed=st.integers(0, 2**16), nodata=st.booleans())
def test_halve_is_gdals_average_overview(tmp_path_factory, h, w, seed, nodata):
    rng = np.random.default_rng(seed)
    data = _data(rng, 2, 2 * h, 2 * w) if nodata else rng.integers(1, 65535, (2, 2 * h, 2 * w), dtype=np.uint16, endpoint=True)
    path = _gtiff(tmp_path_factory.mktemp("halve") / "a.tif", data)
    with rasterio.open(path, "r+") as ds:
        ds.build_overviews([2], Resampling.average)
    with rasterio.open(path, overview_level=0) as ovr:
        np.testing.assert_array_equal(halve(data), ovr.read())


@pytest.mark.parametrize("offset", [0, 1], ids=["on the overview grid", "off it: GDAL makes them"])
def test_cog_overviews_written_with_the_windows_equal_gdals(tmp_path, offset):
    rng = np.random.default_rng(1)
    data = _data(rng, 3, 1300, 1100)
    reference = tmp_path / "reference.tif"
    copy(_gtiff(tmp_path / "whole.tif", data), reference, driver="COG", **COG_OPTIONS)
    out = tmp_path / "out.tif"
    windows = [Window(0, 0, 600 + offset, 1100), Window(600 + offset, 0, 700 - offset, 500),
               Window(600 + offset, 500, 700 - offset, 600)]
    with CogWriter(out, crs="EPSG:32633", transform=TRANSFORM, height=1300, width=1100,
                   bands=("B2", "B3", "B4"), tags={}) as writer:
        for win in windows:
            rows, cols = win.slices()
            writer.write(data[:, rows, cols], win)
    with rasterio.open(out) as ds, rasterio.open(reference) as ref:
        assert ds.overviews(1) == ref.overviews(1) == [2, 4]
        np.testing.assert_array_equal(ds.read(), data)
    for mine, gdals in zip(_levels(out), _levels(reference), strict=True):
        np.testing.assert_array_equal(mine, gdals)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_halve_refuses_odd_sides():
    with pytest.raises(ValueError, match="even"):
        halve(np.ones((1, 3, 4), np.uint16))


def test_odd_output_leaves_the_overviews_to_gdal(tmp_path):
    data = _data(np.random.default_rng(2), 1, 1031, 530)
    reference = tmp_path / "reference.tif"
    copy(_gtiff(tmp_path / "whole.tif", data), reference, driver="COG", **COG_OPTIONS)
    out = tmp_path / "out.tif"
    with CogWriter(out, crs="EPSG:32633", transform=TRANSFORM, height=1031, width=530, bands=("B2",), tags={}) as w:
        w.write(data, Window(0, 0, 1031, 530))
    for mine, gdals in zip(_levels(out), _levels(reference), strict=True):
        np.testing.assert_array_equal(mine, gdals)


def test_dn_written_into_a_block_band_by_band_equals_the_whole_conversion():
    from s2sr.writer import to_dn

    rng = np.random.default_rng(3)
    values = rng.uniform(-10, 70000, (3, 40, 50)).astype(np.float32)
    valid, saturated = rng.random((40, 50)) > 0.1, rng.random((3, 40, 50)) > 0.95
    whole = to_dn(values, valid, saturated)
    assert whole.dtype == np.uint16 and whole.min() == 0 and whole.max() == 65535
    assert not whole[:, ~valid].any() and (whole[:, valid] >= 1).all()
    block = np.empty_like(whole)
    for i in range(3):
        to_dn(values[i : i + 1], valid, saturated[i : i + 1], out=block[i : i + 1])
    np.testing.assert_array_equal(block, whole)
    np.testing.assert_array_equal(to_dn(values, np.ones_like(valid), np.zeros_like(saturated)),
                                  np.clip(np.rint(values), 1, 65534).astype(np.uint16))


def test_a_class_layout_writes_uint8_with_its_nodata_and_nearest_overviews(tmp_path):
    from s2sr.writer import Layout, staging_bytes

    rng = np.random.default_rng(4)
    data = rng.choice(np.array([3, 4, 9, 255], np.uint8), (2, 1100, 1040))  # classes and nodata: no average of them
    layout = Layout(dtype="uint8", nodata=255, scale=None, resampling="nearest", descriptions=("classes", "percent"),
                    band_tags=({"classes": "[]"}, {"unit": "%"}))
    out = tmp_path / "m.tif"
    with CogWriter(out, crs="EPSG:32633", transform=TRANSFORM, height=1100, width=1040, bands=("a", "b"), tags={"x": "1"},
                   layout=layout) as writer:
        writer.write(data[:, :600], Window(0, 0, 600, 1040))
        writer.write(data[:, 600:], Window(600, 0, 500, 1040))
    with rasterio.open(out) as ds:
        assert ds.dtypes == ("uint8", "uint8") and ds.nodata == 255 and ds.descriptions == ("classes", "percent")
        assert ds.scales == (1.0, 1.0) and ds.tags(1) == {"band": "a", "classes": "[]"} and ds.tags(2)["unit"] == "%"
        assert ds.tags()["x"] == "1" and ds.overviews(1) == [2, 4]
        np.testing.assert_array_equal(ds.read(), data)
    for level in _levels(out):
        assert set(np.unique(level)) <= {3, 4, 9, 255}  # every overview pixel one of the classes
    assert staging_bytes(1100, 1040, 2, 1) * 2 == staging_bytes(1100, 1040, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["m.tif"]
