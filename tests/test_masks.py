"""The product's masks on the output grid: found, read nearest, written beside every output like the bands."""

import json
import re
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.transform import rowcol, xy
from rasterio.windows import Window as RioWindow
from rasterio.windows import bounds as window_bounds
from rasterio.windows import from_bounds

import s2sr
from s2sr.errors import MaskError
from s2sr.masks import (
    CLOUD_MASK_CLASSES,
    NODATA,
    SCL_CLASSES,
    Grid,
    MaskReader,
    companion_path,
)
from s2sr.metadata import Product, parse_product_metadata
from s2sr.product import find_mask_files
from s2sr.sample import SampleSpec, build_sample_product, sample_masks
from s2sr.stac_item import item_path
from s2sr.tiling import Window

REAL_L2A = "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"


# -- the real L2A product of ../shared/data: its full 20 m SCL and cloud probability, its 60 m MSK_CLASSI_B00


@pytest.fixture
def real_safe(shared_data) -> Path:
    return shared_data / REAL_L2A


def _real_product(safe: Path, level: str = "L2A") -> tuple[Product, Grid]:
    """The real product's masks (its band files at 10 and 20 m are not in ../shared) and its 10 m grid, from
    its 60 m B02 (1830 px of 60 m: 10980 px of 10 m)."""
    metadata = parse_product_metadata((safe / "MTD_MSIL2A.xml").read_bytes(), str(safe))
    names = [p.relative_to(safe).as_posix() for p in safe.rglob("*") if p.is_file()]
    masks = find_mask_files(names, level)
    product = Product(safe, replace(metadata, level=level), {}, {k: str(safe / n) for k, n in masks.items()})
    with rasterio.open(next(safe.rglob("*_B02_60m.jp2"))) as b2:
        t = b2.transform
        grid = Grid(b2.crs, Affine(10, 0, t.c, 0, -10, t.f), b2.height * 6, b2.width * 6)
    return product, grid


def _expected(path: str, grid: Grid, window: Window, band: int = 1) -> np.ndarray:
    """What the mask file holds at the centre of every 10 m pixel of ``window``, by rasterio's own arithmetic."""
    rows, cols = np.meshgrid(np.arange(window.row, window.row_stop), np.arange(window.col, window.col_stop), indexing="ij")
    xs, ys = xy(grid.transform, rows.ravel(), cols.ravel(), offset="center")
    with rasterio.open(path) as ds:
        r, c = rowcol(ds.transform, xs, ys)
        r, c = np.asarray(r), np.asarray(c)
        box = RioWindow(c.min(), r.min(), c.max() - c.min() + 1, r.max() - r.min() + 1)
        data = ds.read(band, window=box)
    return data[r - r.min(), c - c.min()].reshape(rows.shape)


def test_the_real_products_mask_files_are_found(real_safe):
    product, _ = _real_product(real_safe)
    assert sorted(product.mask_paths) == ["cloud_probability", "scl"]
    assert product.mask_paths["scl"].endswith("IMG_DATA/R20m/T29UNU_20221005T115411_SCL_20m.jp2")  # not the 60 m copy
    assert product.mask_paths["cloud_probability"].endswith("QI_DATA/MSK_CLDPRB_20m.jp2")
    l1c_view, _ = _real_product(real_safe, "L1C")
    assert list(l1c_view.mask_paths) == ["classi"] and l1c_view.mask_paths["classi"].endswith("QI_DATA/MSK_CLASSI_B00.jp2")


@pytest.mark.parametrize("window", [Window(9600, 5100, 240, 300), Window(6301, 3303, 97, 131), Window(10920, 10914, 60, 66)])
def test_a_10m_pixel_takes_the_real_scl_pixel_that_contains_it(real_safe, window):
    product, grid = _real_product(real_safe)
    got = MaskReader(product, grid).read(window)
    assert got.shape == (2, window.height, window.width) and got.dtype == np.uint8
    np.testing.assert_array_equal(got[0], _expected(product.mask_paths["scl"], grid, window))
    np.testing.assert_array_equal(got[1], _expected(product.mask_paths["cloud_probability"], grid, window))
    assert len(np.unique(got[0])) > 2 or window.row > 10000  # not a blank window (the corner is beyond the swath)
    if all(v % 2 == 0 for v in (window.row, window.col, window.height, window.width)):
        # on the 20 m grid: rasterio's window of the same bounds, every 20 m pixel as 2 x 2 output pixels
        with rasterio.open(product.mask_paths["scl"]) as ds:
            box = from_bounds(*window_bounds(window.to_rasterio(), grid.transform), transform=ds.transform)
            assert box.col_off == window.col / 2 and box.height == window.height / 2
            scl = ds.read(1, window=box.round_offsets().round_lengths())
        np.testing.assert_array_equal(got[0], np.repeat(np.repeat(scl, 2, 0), 2, 1))


def test_the_real_msk_classi_on_the_10m_grid_bits_and_meaning(real_safe):
    product, grid = _real_product(real_safe, "L1C")
    window = Window(3000, 1800, 1200, 1200)  # a cloudy part of the tile
    got = MaskReader(product, grid).read(window)[0]
    path = product.mask_paths["classi"]
    want = sum(bit * (_expected(path, grid, window, band) > 0) for band, bit in ((1, 1), (2, 2), (3, 4)))
    np.testing.assert_array_equal(got, want)
    blocks = got.reshape(200, 6, 200, 6)  # a 60 m pixel is 6 x 6 output pixels
    assert (blocks == blocks[:, :1, :, :1]).all()
    # the layers mean what the classes say: opaque clouds are SCL's clouds, on the same grid
    scl = MaskReader(_real_product(real_safe)[0], grid).read(window)[0]
    opaque = (got & 1) > 0
    assert 0.2 < opaque.mean() < 0.8 and np.isin(scl[opaque], (8, 9)).mean() > 0.8
    assert np.isin(scl[(got & 2) > 0], (8, 9, 10)).mean() > 0.8


def test_the_real_scl_aligned_and_clipped_on_an_aoi_runs_output_grid(real_safe, tiny_weights, tmp_path):
    """A product on the real tile's grid that carries a crop of its real SCL and cloud probability (the bands are
    synthetic: ../shared has no 10 or 20 m band of it): the written masks are the real files' pixels at the
    output's pixel centres (rasterio's arithmetic on the whole real files), clipped to the AOI polygon."""
    product, grid = _real_product(real_safe)
    r0, c0, n = 4800, 2550, 120  # 20 m pixels on the 60 m grid: eight classes and the swath edge
    crops = {}
    for kind in ("scl", "cloud_probability"):
        with rasterio.open(product.mask_paths[kind]) as ds:
            crops[kind] = ds.read(1, window=((r0, r0 + n), (c0, c0 + n)))
    spec = SampleSpec(size=2 * n, tile="29UNU", epsg=32629, origin=(grid.transform.c + c0 * 20, grid.transform.f - r0 * 20),
                      nodata_edge=False)
    safe = build_sample_product(tmp_path / "p", spec, masks=crops)
    corners = [spec.wgs84_bbox(r, c, r, c)[:2] for r, c in ((10, 20), (230, 40), (120, 225), (10, 20))]
    out = s2sr.superresolve_product(safe, tmp_path / "o.tif", aoi={"type": "Polygon", "coordinates": [corners]},
                                    weights_dir=tiny_weights, tile_size=60)
    data, tags = _masks_of(out)
    with rasterio.open(out) as ds:
        out_grid = Grid(ds.crs, ds.transform, ds.height, ds.width)
    whole = Window(0, 0, out_grid.height, out_grid.width)
    for band, kind in enumerate(("scl", "cloud_probability")):
        want = _expected(product.mask_paths[kind], out_grid, whole)
        np.testing.assert_array_equal(data[band], np.where(tags["valid"], want, NODATA))
    assert 0.3 < tags["valid"].mean() < 0.8 and {0, 4, 8, 9} <= set(np.unique(data[0][tags["valid"]]))


def test_scl_classes_are_those_every_real_l2a_metadata_lists(shared_data):
    documents = [shared_data / REAL_L2A / "MTD_MSIL2A.xml", *sorted(shared_data.glob("safe-metadata/*/MTD_MSIL2A.xml"))]
    assert len(documents) >= 5
    for doc in documents:  # baselines 02.12 to 05.09
        text = doc.read_text()
        listed = re.findall(r"<SCENE_CLASSIFICATION_TEXT>(\w+)</SCENE_CLASSIFICATION_TEXT>\s*"
                            r"<SCENE_CLASSIFICATION_INDEX>(\d+)</SCENE_CLASSIFICATION_INDEX>", text)
        assert [(int(i), name) for name, i in listed] == [(c.value, re.search(r"\((SC_\w+)\)", c.description)[1])
                                                          for c in SCL_CLASSES], doc


# -- products of the sample builder: real JP2 and GML mask files


def _masks_of(out: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(companion_path(out)) as ds:
        assert ds.dtypes[0] == "uint8" and ds.nodata == NODATA
        with rasterio.open(out) as bands:
            assert (ds.crs, ds.transform, ds.shape) == (bands.crs, bands.transform, bands.shape)
            valid = bands.read().all(axis=0)
        data = ds.read()
        tags = {"dataset": ds.tags(), "bands": [ds.tags(i) for i in range(1, ds.count + 1)],
                "descriptions": ds.descriptions, "overview_resampling": ds.tags(1, ns="IMAGE_STRUCTURE")}
    assert (data[:, ~valid] == NODATA).all() and (data[:, valid] != NODATA).all()  # nodata exactly where the bands'
    return data, {**tags, "valid": valid}


def _nearest(mask: np.ndarray, factor: int, size: int) -> np.ndarray:
    return np.repeat(np.repeat(mask, factor, -2), factor, -1)[..., :size, :size]


def test_l2a_scl_and_cloud_probability_beside_the_output(build_product, tiny_weights, tmp_path):
    spec = SampleSpec(size=120)
    out = s2sr.superresolve_product(build_product(size=120), tmp_path / "o.tif", weights_dir=tiny_weights, tile_size=60)
    data, tags = _masks_of(out)
    want = sample_masks(spec)
    valid = tags["valid"]
    np.testing.assert_array_equal(data[0][valid], _nearest(want["scl"], 2, 120)[valid])
    np.testing.assert_array_equal(data[1][valid], _nearest(want["cloud_probability"], 2, 120)[valid])
    assert {9, 8, 3, 10, 11, 4, 5} <= set(np.unique(data[0]))
    assert [t["band"] for t in tags["bands"]] == ["scl", "cloud_probability"]
    classes = json.loads(tags["bands"][0]["classes"])  # the class table in the GeoTIFF's tags
    assert [c["value"] for c in classes] == [*range(12), 255] and classes[9]["name"] == "cloud_high_probability"
    assert "classes" not in tags["bands"][1] and tags["bands"][1]["unit"] == "%"
    assert tags["bands"][0]["source"].endswith("_SCL_20m.jp2") and tags["dataset"]["masks"] == "scl, cloud_probability"
    item = json.loads(item_path(out).read_text())
    assert item["properties"]["s2sr:masks"]["status"] == "written"
    asset = item["assets"]["masks"]
    assert asset["href"] == "./o_masks.tif" and "cloud" in asset["roles"]
    bands = asset["raster:bands"]
    assert bands[0]["classification:classes"] == classes and bands[0]["nodata"] == 255 and bands[1]["unit"] == "%"
    assert "https://stac-extensions.github.io/classification/v2.0.0/schema.json" in item["stac_extensions"]
    for c in classes:
        assert set(c) >= {"value", "name", "description"} and re.fullmatch(r"[0-9A-Za-z_-]+", c["name"])
    import pystac
    from pystac.extensions.classification import ClassificationExtension

    read = pystac.Item.from_file(str(item_path(out)))
    raster_band = read.assets["masks"].extra_fields["raster:bands"][0]
    assert ClassificationExtension.has_extension(read) and len(raster_band["classification:classes"]) == 13


def test_l1c_msk_classi_and_gml_masks_give_the_same_cloud_mask(build_product, tiny_weights, tmp_path):
    outputs = {}
    for baseline in ("04.00", "02.09"):  # MSK_CLASSI_B00.jp2 from 04.00, MSK_CLOUDS_B00.gml before
        product = build_product(size=120, level="L1C", baseline=baseline)
        kind = "classi" if baseline == "04.00" else "gml"
        assert list(s2sr.product.open_product(product).mask_paths) == [kind]
        outputs[kind] = s2sr.superresolve_product(product, tmp_path / f"{kind}.tif", weights_dir=tiny_weights, tile_size=60)
    classi, tags = _masks_of(outputs["classi"])
    gml, _ = _masks_of(outputs["gml"])
    layers = sample_masks(SampleSpec(level="L1C", size=120))["classi"]
    want = _nearest(layers[0] * 1 + layers[1] * 2 + layers[2] * 4, 6, 120)
    valid = tags["valid"]
    np.testing.assert_array_equal(classi[0][valid], want[valid])
    assert {0, 1, 2, 4, 5} <= set(np.unique(classi[0]))  # clear, opaque, cirrus, snow, opaque over snow
    np.testing.assert_array_equal(gml[0][valid], (want & 3)[valid])  # the GML has no snow layer
    assert [c["value"] for c in json.loads(tags["bands"][0]["classes"])] == [*range(8), 255]
    assert CLOUD_MASK_CLASSES[5].name == "opaque_clouds_snow_ice"


def test_old_named_gml_in_a_zip(build_product, tiny_weights, tmp_path):
    product = build_product(size=72, level="L1C", baseline="02.01", naming="old", zipped=True)
    assert s2sr.product.open_product(product).mask_paths["gml"].endswith("_B00_MSIL1C.gml")
    out = s2sr.superresolve_product(product, tmp_path / "o.tif", weights_dir=tiny_weights, tile_size=36)
    data, tags = _masks_of(out)
    layers = sample_masks(SampleSpec(level="L1C", size=72))["classi"]
    np.testing.assert_array_equal(data[0][tags["valid"]], _nearest(layers[0] + 2 * layers[1], 6, 72)[tags["valid"]])


def test_an_aoi_runs_masks_equal_the_whole_products_on_that_window(build_product, tiny_weights, tmp_path):
    product = build_product(size=120)
    whole = s2sr.superresolve_product(product, tmp_path / "whole.tif", weights_dir=tiny_weights, tile_size=36)
    aoi = {"type": "Polygon", "coordinates": [[list(p) for p in (
        SampleSpec().wgs84_bbox(20, 30, 20, 30)[:2], SampleSpec().wgs84_bbox(20, 95, 20, 95)[:2],
        SampleSpec().wgs84_bbox(90, 70, 90, 70)[:2], SampleSpec().wgs84_bbox(20, 30, 20, 30)[:2])]]}  # a triangle
    part = s2sr.superresolve_product(product, tmp_path / "aoi.tif", aoi=aoi, weights_dir=tiny_weights, tile_size=36,
                                     threads=2)  # the masks read in the writer thread
    with rasterio.open(whole) as w, rasterio.open(part) as p:
        col, row = ~w.transform * (p.transform.c, p.transform.f)
        window = Window(round(row), round(col), p.height, p.width)
    whole_masks, _ = _masks_of(whole)
    aoi_masks, tags = _masks_of(part)
    rows, cols = window.slices()
    np.testing.assert_array_equal(aoi_masks, np.where(tags["valid"], whole_masks[:, rows, cols], NODATA))
    assert 0.3 < tags["valid"].mean() < 0.7  # the triangle clips it


def _run_logged(product, out, weights, **kw):
    lines: list[str] = []
    path = s2sr.superresolve_product(product, out, weights_dir=weights, tile_size=36, warn=lines.append, **kw)
    return path, lines


@pytest.mark.parametrize("damage", ["garbage", "truncated", "opens, does not decode", "fails at the third tile",
                                    "wrong size"])
def test_a_corrupt_or_misfitting_mask_leaves_the_bands_written_and_one_line(build_product, tiny_weights, tmp_path, damage,
                                                                             monkeypatch):
    product = build_product(size=72)
    scl = next(product.rglob("*_SCL_20m.jp2"))
    if damage == "garbage":
        scl.write_bytes(b"\x00" * 4000)
    elif damage == "truncated":
        scl.write_bytes(scl.read_bytes()[: len(scl.read_bytes()) // 2])
    elif damage == "opens, does not decode":  # the header is whole: it fails at the first tile's read
        scl.write_bytes(scl.read_bytes()[: len(scl.read_bytes()) * 19 // 20])
    elif damage == "fails at the third tile":  # after two tiles of masks were staged
        from s2sr import masks

        calls, read = [], masks._RasterFile.read

        def third_fails(self, window):
            calls.append(window)
            if len(calls) == 5:  # two tiles of two layers, then the SCL of the third
                raise MaskError(f"{self.path}: cannot decode the scl mask (at the third tile)")
            return read(self, window)

        monkeypatch.setattr(masks._RasterFile, "read", third_fails)
    else:
        with rasterio.open(scl) as ds:
            profile, data = ds.profile, ds.read()
        profile.update(width=24, height=24)  # a 480 m SCL for a 720 m product
        with rasterio.open(scl, "w", **profile) as ds:
            ds.write(data[:, :24, :24])
    staging = tmp_path / "staging"
    staging.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(staging))
    out, lines = _run_logged(product, tmp_path / "out" / "o.tif", tiny_weights)
    assert list(staging.iterdir()) == []  # the dropped masks' staging is gone too
    with rasterio.open(out) as ds:
        assert ds.count == 12 and ds.read().any()  # the bands are the product
    assert not companion_path(out).exists() and sorted(p.name for p in out.parent.iterdir()) == ["o.json", "o.tif", "o_uncertainty.tif"]
    assert len(lines) == 1 and "\n" not in lines[0] and scl.name in lines[0] and lines[0].startswith("masks not written")
    assert ("do not cover" in lines[0]) == (damage == "wrong size")
    assert "previous exception" not in lines[0]  # GDAL's own reason
    status = json.loads(item_path(out).read_text())["properties"]["s2sr:masks"]
    assert status["status"] == "failed" and scl.name in status["reason"]
    assert "masks" not in json.loads(item_path(out).read_text())["assets"]


def test_a_product_without_masks_has_none_and_says_so(build_product, tiny_weights, tmp_path):
    out, lines = _run_logged(build_product(size=36, masks=False), tmp_path / "o.tif", tiny_weights)
    assert not companion_path(out).exists() and lines == []
    status = json.loads(item_path(out).read_text())["properties"]["s2sr:masks"]
    assert status["status"] == "unavailable" and "SCL_20m" in status["reason"]
    with pytest.raises(MaskError, match="carries no mask"):
        s2sr.read_mask(build_product(size=36, masks=False))


def test_masks_off_and_a_previous_runs_masks_file_goes(build_product, tiny_weights, tmp_path):
    product = build_product(size=36)
    out, _ = _run_logged(product, tmp_path / "o.tif", tiny_weights)
    assert companion_path(out).is_file()
    out, _ = _run_logged(product, tmp_path / "o.tif", tiny_weights, masks=False, overwrite=True)  # no masks beside another run's bands
    assert not companion_path(out).exists()
    assert json.loads(item_path(out).read_text())["properties"]["s2sr:masks"]["status"] == "off"


def test_read_mask_gives_the_written_masks_on_the_same_pixels(build_product, tiny_weights, tmp_path):
    product = build_product(size=120)
    bbox = SampleSpec().wgs84_bbox(13, 17, 71, 101)
    out = s2sr.superresolve_product(product, tmp_path / "o.tif", aoi=bbox, weights_dir=tiny_weights, tile_size=60)
    written, tags = _masks_of(out)
    masks = s2sr.read_mask(product, bbox)
    with rasterio.open(out) as ds:
        assert masks.transform == ds.transform and masks.data.shape[1:] == ds.shape
    assert masks.names == ("scl", "cloud_probability")
    np.testing.assert_array_equal(masks.data[:, tags["valid"]], written[:, tags["valid"]])
    np.testing.assert_array_equal(masks["scl"], masks.data[0])
    window = s2sr.read_mask(product, RioWindow(7, 11, 30, 20))  # col, row, width, height on the 10 m grid, any offsets
    np.testing.assert_array_equal(window["scl"], _nearest(sample_masks(SampleSpec(size=120))["scl"], 2, 120)[11:31, 7:37])
    with pytest.raises(KeyError, match="masks hold scl, cloud_probability"):
        masks["cloud_mask"]
    # a read-only Mapping, as users of a dict expect
    assert "scl" in masks and "cloud_mask" not in masks and len(masks) == 2
    assert list(masks) == list(masks.keys()) == ["scl", "cloud_probability"]
    np.testing.assert_array_equal(dict(masks.items())["cloud_probability"], masks.data[1])


def test_the_usage_pages_ndwi_example_runs(build_product, tmp_path, monkeypatch):
    usage = (Path(__file__).resolve().parents[1] / "docs" / "usage.md").read_text()
    code = next(block for block in re.findall(r"```python\n(.*?)```", usage, re.S) if "ndwi" in block and "read_mask" in block)
    product = build_product(size=120)
    bbox = SampleSpec().wgs84_bbox(12, 12, 96, 96)
    code = code.replace('"S2B_MSIL2A_...SAFE"', f'"{product}"').replace("[13.365, 52.49, 13.41, 52.52]", repr(bbox))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        exec(compile(code, "docs/usage.md", "exec"), scope)
    ndwi, scl = scope["ndwi"], scope["scl"]
    assert ndwi.shape == scl.shape and ndwi.dtype == np.float32
    clear = np.isin(scl, (4, 5, 6))
    assert np.isnan(ndwi[~clear]).all() and np.isfinite(ndwi[clear]).mean() > 0.9 and 0.2 < clear.mean() < 0.9


def test_the_storage_preflight_counts_the_masks_file(build_product, tiny_weights, tmp_path, monkeypatch):
    from s2sr import pipeline
    from s2sr.writer import staging_bytes

    asked: list[list[int]] = []
    check = pipeline.check_folders
    monkeypatch.setattr(pipeline, "check_folders", lambda needs: (asked.append([n[1] for n in needs]), check(needs))[1])
    product = build_product(size=72)
    _run_logged(product, tmp_path / "a.tif", tiny_weights)
    _run_logged(product, tmp_path / "b.tif", tiny_weights, masks=False)
    with_masks, without = asked
    assert [a - b for a, b in zip(with_masks, without, strict=True)] == [staging_bytes(72, 72, 2, itemsize=1)] * 2


def test_a_gml_without_clouds_is_all_clear_and_one_of_another_tile_is_refused(build_product):
    from s2sr.product import ProductReader, open_product

    product = build_product(size=36, level="L1C", baseline="02.09")
    gml = next(product.rglob("MSK_CLOUDS_B00.gml"))
    located = open_product(product)
    with ProductReader(located) as reader:
        grid = Grid(reader.crs, reader.transform, reader.height, reader.width)
    gml.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<eop:Mask xmlns:eop="http://www.opengis.net/eop/2.0" '
                   'xmlns:gml="http://www.opengis.net/gml/3.2" gml:id="MSK_CLOUDS_B00"><gml:name>none</gml:name>'
                   "<gml:boundedBy><gml:Null>Inapplicable</gml:Null></gml:boundedBy><eop:maskMembers/></eop:Mask>\n")
    assert not MaskReader(located, grid).read(Window(0, 0, 36, 36)).any()  # the product found no cloud: all clear
    other = build_product(size=36, level="L1C", baseline="02.09", epsg=32632)  # a scene in the next UTM zone
    gml.write_text(next(other.rglob("MSK_CLOUDS_B00.gml")).read_text())
    with pytest.raises(MaskError, match="EPSG::32632, not the product's EPSG:32633; the mask is of another tile"):
        MaskReader(located, grid)
    gml.write_text("<eop:Mask")
    with pytest.raises(MaskError, match="not well-formed XML"):
        MaskReader(located, grid)
