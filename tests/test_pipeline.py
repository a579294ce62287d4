import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

import s2sr
from s2sr import inference, x6_decision
from s2sr.errors import AoiError, InputParametersError
from s2sr.sample import SampleSpec

GOLDEN = Path(__file__).parent / "golden" / "output_profile.json"


def _run(product, out, weights, **kw):
    return s2sr.superresolve_product(product, out, weights_dir=weights, tile_size=kw.pop("tile_size", 48), **kw)


def _profile(path: Path) -> dict:
    with rasterio.open(path) as ds:
        return {
            "driver": ds.driver,
            "dtype": ds.dtypes[0],
            "count": ds.count,
            "nodata": ds.nodata,
            "shape": list(ds.shape),
            "crs": ds.crs.to_string(),
            "transform": list(ds.transform)[:6],
            "descriptions": list(ds.descriptions),
            "scales": list(ds.scales),
            "offsets": list(ds.offsets),
            "band_tags": [ds.tags(i)["band"] for i in range(1, ds.count + 1)],
            "block_shapes": [list(s) for s in ds.block_shapes][:1],
            "compress": ds.compression.name if ds.compression else None,
            "layout": ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT"),
            "overviews": ds.overviews(1),
            "tags": {k: v for k, v in ds.tags().items() if k != "s2sr_version"},
        }


def test_output_metadata_matches_golden(build_product, tiny_weights, tmp_path):
    product = build_product(size=600)
    out = _run(product, tmp_path / "out.tif", tiny_weights, tile_size=300)
    profile = _profile(out)
    golden = json.loads(GOLDEN.read_text())
    # estimated blurs are pinned to 0.01 px: the 4th decimal may move with the BLAS or CPU, a band or source not
    kernels, golden_kernels = (json.loads(p["tags"].pop("sensor_model")) for p in (profile, golden))
    # adaptation: what it did is pinned, its held-back RMSE to 0.5 DN, its seconds and weights' digest not
    adapted, golden_adapted = (json.loads(p["tags"].pop("adaptation")) for p in (profile, golden))
    # the x6 decision: what it decided and why is pinned, its seconds not
    fusion, golden_fusion = (json.loads(p["tags"].pop("fusion")) for p in (profile, golden))
    fusion["x6"]["decision"].pop("seconds"), golden_fusion["x6"]["decision"].pop("seconds")
    assert fusion == golden_fusion
    assert profile == golden
    for got, want in zip(adapted, golden_adapted, strict=True):
        for key in ("heldout_rmse_before", "heldout_rmse_after"):
            assert got.pop(key) == pytest.approx(want.pop(key), abs=0.5), key
        for key in ("seconds", "weights_sha256"):
            got.pop(key), want.pop(key)
        assert got == want
    assert list(kernels) == list(golden_kernels)
    for band, kernel in kernels.items():
        want = golden_kernels[band]
        assert (kernel["factor"], kernel["source"]) == (want["factor"], want["source"]), band
        assert kernel["sigma_px"] == pytest.approx(want["sigma_px"], abs=0.01), band
    item = json.loads(out.with_suffix(".json").read_text())  # the Item records the kernels the run used
    assert item["properties"]["s2sr:sensor_model"] == kernels


def test_l1c_zip_sr_bands_only(build_product, tiny_weights, tmp_path):
    product = build_product(size=48, level="L1C", baseline="02.04", naming="old", zipped=True)
    out = _run(product, tmp_path / "sr.tif", tiny_weights, copy_original_bands=False)
    with rasterio.open(out) as ds:
        assert ds.count == 8
        assert ds.descriptions[0] == "SR B1 (443 nm)" and ds.descriptions[-1] == "SR B12 (2190 nm)"
        assert ds.tags()["processing_level"] == "L1C"


def test_offsets_are_harmonised(build_product, tiny_weights, tmp_path):
    new = _run(build_product(size=48, baseline="04.00"), tmp_path / "new.tif", tiny_weights)
    old = _run(build_product(size=48, baseline="02.12"), tmp_path / "old.tif", tiny_weights)
    with rasterio.open(new) as a, rasterio.open(old) as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_nodata_and_saturation(build_product, tiny_weights, tmp_path):
    product = build_product(size=48, saturated_pixels=2)
    out = _run(product, tmp_path / "o.tif", tiny_weights)
    b02 = rasterio.open(next(product.rglob("*_B02_10m.jp2"))).read(1)
    with rasterio.open(out) as ds:
        data = ds.read()
    assert (data[:, b02 == 0] == 0).all(), "input nodata must be output nodata in every band"
    valid = data[1] != 0
    assert valid.mean() > 0.5 and (data[:, valid] > 0).all()
    assert data[1, 0, 0] == 65535 and data[1, 0, 1] == 65535  # copied B2 saturated pixels stay saturated
    assert (data[4, 0:2, 0:4] == 65535).all()  # B5's saturated 20 m pixels, on the 10 m grid


@pytest.mark.parametrize("x6", ["bicubic", "regression"])
def test_small_aoi_equals_the_same_window_of_a_whole_run(build_product, tiny_weights, tiny_weights_on_regression, tmp_path, x6):
    """Also with an x6 net that refines the regression (its regression is fitted over the net's input first)."""
    weights = tiny_weights if x6 == "bicubic" else tiny_weights_on_regression
    spec = SampleSpec(size=240)
    product = build_product(size=240)
    whole = _run(product, tmp_path / "whole.tif", weights)
    bbox = spec.wgs84_bbox(100.5, 110.5, 105.5, 115.5)  # a 50 m box: smaller than one 60 m pixel
    part = _run(product, tmp_path / "part.tif", weights, aoi=bbox, clip_to_aoi=False)
    with rasterio.open(whole) as w, rasterio.open(part) as p:
        win = rasterio.windows.from_bounds(*p.bounds, transform=w.transform).round_offsets().round_lengths()
        assert p.shape[0] % 6 == 0 and p.shape[0] <= 18
        np.testing.assert_array_equal(p.read(), w.read(window=win))
        # both adapted the x2 net on the product's fixed windows, to the same weights
        (adapted_whole,), (adapted_part,) = (json.loads(ds.tags()["adaptation"]) for ds in (w, p))
        assert adapted_whole["kept"] and adapted_whole == {**adapted_part, "seconds": adapted_whole["seconds"]}
        # and decided B1/B9 on the product's fixed windows, the same way
        (x6_whole, x6_part) = (json.loads(ds.tags()["fusion"])["x6"] for ds in (w, p))
        x6_part["decision"]["seconds"] = x6_whole["decision"]["seconds"]
        assert x6_whole == x6_part


def test_tiled_output_equals_untiled_with_adaptation(build_product, tiny_weights, tmp_path):
    product = build_product(size=240)
    tiled = _run(product, tmp_path / "tiled.tif", tiny_weights, tile_size=48)
    untiled = _run(product, tmp_path / "untiled.tif", tiny_weights, tile_size=240)
    with rasterio.open(tiled) as t, rasterio.open(untiled) as u:
        assert json.loads(t.tags()["adaptation"])[0]["kept"]
        np.testing.assert_array_equal(t.read(), u.read())


def test_the_x6_net_runs_at_the_weight_of_the_products_blur(build_product, tiny_weights_on_regression, tmp_path,
                                                             monkeypatch):
    """A manifest's per-blur weight is read at the blur the run assumes: a product whose 60 m bands are sharp gets
    the regression alone, its x6 net not run; the weight used is recorded in the tags and the STAC Item."""
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights_on_regression, weights)
    manifest = json.loads((weights / "dsen2_x6.json").read_text())
    manifest["fusion"] = {"net_weight_by_blur": {"sigma_px": [0.5, 2.0], "net_weight": [0.0, 1.0]}, "projection_steps": 1}
    (weights / "dsen2_x6.json").write_text(json.dumps(manifest))
    ran = []
    run_net = inference.run_net
    monkeypatch.setattr(inference, "run_net", lambda net, inputs: ran.append(net.manifest.scale) or run_net(net, inputs))
    monkeypatch.setattr(x6_decision, "MIN_PIXELS", 100)  # judged on this small product,
    monkeypatch.setattr(x6_decision, "MARGIN", -10.0)  # and any net wins there
    product = build_product(size=240)
    for sensor_model, weight in (("paper", 0.0), ("mtf", 1.0)):  # B1, B9 sigma 1/6 px; 2.2 and 2.3 px
        ran.clear()
        out = _run(product, tmp_path / f"{sensor_model}.tif", weights, sensor_model=sensor_model, adapt_steps=0)
        with rasterio.open(out) as ds:
            used = json.loads(ds.tags()["fusion"])
        decision = used["x6"].pop("decision")
        assert used["x6"] == {"net_weight": weight, "projection_steps": 1}
        assert decision["net_weight"] == decision["fused_weight"] == weight
        assert ("wins" in decision["reason"]) == (weight > 0) and ("weight 0" in decision["reason"]) == (weight == 0)
        assert (6 in ran) == (weight > 0), sensor_model
        assert json.loads(out.with_suffix(".json").read_text())["properties"]["s2sr:fusion"]["x6"]["decision"] == decision


def test_a_small_product_records_why_b1_b9_use_the_regression_alone(build_product, tiny_weights_on_regression, tmp_path,
                                                                     monkeypatch):
    ran = []
    run_net = inference.run_net
    monkeypatch.setattr(inference, "run_net", lambda net, inputs: ran.append(net.manifest.scale) or run_net(net, inputs))
    out = _run(build_product(size=240), tmp_path / "out.tif", tiny_weights_on_regression, sensor_model="mtf", adapt_steps=0)
    with rasterio.open(out) as ds:
        used = json.loads(ds.tags()["fusion"])["x6"]
    assert used["net_weight"] == 0 and used["decision"]["fused_weight"] == 1.0 and 6 not in ran
    assert "too few usable 60 m pixels" in used["decision"]["reason"]
    assert json.loads(out.with_suffix(".json").read_text())["properties"]["s2sr:fusion"]["x6"] == used


def test_no_adaptation_is_recorded_as_turned_off(build_product, tiny_weights, tmp_path):
    product = build_product(size=240)
    out = _run(product, tmp_path / "out.tif", tiny_weights, adapt_steps=0)
    item = json.loads(out.with_suffix(".json").read_text())
    assert item["properties"]["s2sr:adaptation"] == [
        {"scale": 2, "steps": 0, "windows": 0, "kept": False, "reason": "turned off", "heldout_rmse_before": None,
         "heldout_rmse_after": None, "train_pixels": 0, "heldout_pixels": 0, "seconds": 0.0}]
    with pytest.raises(InputParametersError, match="adapt_steps must be a whole number"):
        _run(product, tmp_path / "bad.tif", tiny_weights, adapt_steps=-5)


def test_clip_to_polygon_masks_outside(build_product, tiny_weights, tmp_path):
    spec = SampleSpec(size=96)
    product = build_product(size=96)
    west, south, east, north = spec.wgs84_bbox(10, 10, 60, 60)
    triangle = {"type": "Polygon", "coordinates": [[[west, north], [east, north], [west, south], [west, north]]]}
    out = _run(product, tmp_path / "tri.tif", tiny_weights, aoi=triangle, clip_to_aoi=True)
    with rasterio.open(out) as ds:
        data = ds.read(2)
    assert data[6, 6] != 0 and data[-3, -3] == 0  # inside the triangle, and beyond its diagonal


def test_aoi_outside_the_product(build_product, tiny_weights, tmp_path):
    with pytest.raises(AoiError, match="does not intersect"):
        _run(build_product(size=12), tmp_path / "x.tif", tiny_weights, aoi=[-10, -10, -9, -9])
    assert not (tmp_path / "x.tif").exists()


def test_bad_output_name(build_product, tiny_weights, tmp_path):
    with pytest.raises(InputParametersError, match=r"\.tif"):
        _run(build_product(size=12), tmp_path / "x.png", tiny_weights)


def test_failure_leaves_no_partial_output(build_product, tiny_weights, tmp_path, monkeypatch):
    product = build_product(size=96)
    calls = []
    real = inference.superresolve_groups

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr("s2sr.pipeline.superresolve_groups", flaky)
    out_dir = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk on fire"):
        _run(product, out_dir / "o.tif", tiny_weights)
    assert list(out_dir.iterdir()) == []
