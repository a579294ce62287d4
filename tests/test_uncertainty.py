import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from test_api import _arrays

import s2sr
from s2sr import uncertainty
from s2sr.sample import SampleSpec
from s2sr.uncertainty import DEFAULT_RULE, cell_mean, conformal_quantile, error_scale


def test_conformal_quantile_is_the_finite_sample_rank():
    ratios = np.arange(1, 20, dtype=float)  # n = 19: ceil(20 x 0.9) = 18th smallest
    assert conformal_quantile(ratios) == 18.0
    assert conformal_quantile(np.arange(5.0)) == np.inf  # too few for a 90 % guarantee
    rng = np.random.default_rng(0)
    held = rng.exponential(size=20000)
    q = conformal_quantile(held[:10000])
    assert 0.89 < np.mean(held[10000:] <= q) < 0.91


def test_cells_are_aligned_to_the_grid_so_any_split_gives_the_same_scale():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2, 24, 30)).astype(np.float32)
    whole = cell_mean(a, 6)
    parts = np.concatenate([cell_mean(a[:, :, :12], 6), cell_mean(a[:, :, 12:], 6)], axis=2)
    np.testing.assert_array_equal(whole, parts)
    assert np.allclose(whole[0, :6, :6], a[0, :6, :6].mean())
    odd = cell_mean(a[:, :10, :9], 6)  # partial cells at the far edges: the mean of what they hold
    assert np.isclose(odd[0, 9, 8], a[0, 6:10, 6:9].mean())


def test_scale_grows_with_the_detail_added():
    bicubic = np.full((1, 12, 12), 1000, np.float32)
    flat = error_scale(bicubic, bicubic)
    busy = error_scale(bicubic + np.where(np.arange(12) % 2, 50, -50).astype(np.float32), bicubic)
    level = np.hypot(1000 * DEFAULT_RULE.floor, DEFAULT_RULE.absolute)
    assert np.allclose(flat, level ** DEFAULT_RULE.power, rtol=1e-3) and (busy > 3 * flat).all()


def test_dark_flat_pixels_keep_an_absolute_floor():
    # dark water: the level floor alone would give a near-zero scale, and no interval would hold its truth
    dark = np.full((1, 12, 12), 30, np.float32)
    scale = error_scale(dark, dark)
    assert np.allclose(scale, np.hypot(30 * DEFAULT_RULE.floor, DEFAULT_RULE.absolute) ** DEFAULT_RULE.power, rtol=1e-3)
    assert DEFAULT_RULE.absolute > 0 and (scale >= DEFAULT_RULE.absolute ** DEFAULT_RULE.power * 0.999).all()


def test_superresolve_returns_intervals_named_as_documented(tiny_weights):
    b10, b20, b60 = _arrays(96, 60)
    out = s2sr.superresolve(b10, b20, b60, level="L1C", weights_dir=tiny_weights)
    assert out.b20_uncertainty.shape == (6, 96, 60) and out.b60_uncertainty.shape == (2, 96, 60)
    assert out.b20_uncertainty.dtype == np.float32 and out.b60_uncertainty.dtype == np.float32
    assert (out.b20_uncertainty > 0).all() and np.isfinite(out.b20_uncertainty).all()
    b20_out, b60_out = out[:2]  # the bands stay first
    assert b20_out is out.b20 and b60_out is out.b60
    off = s2sr.superresolve(b10, b20, b60, level="L1C", weights_dir=tiny_weights, uncertainty=False)
    assert off.b20_uncertainty is None and off.b60_uncertainty is None
    np.testing.assert_array_equal(off.b20, out.b20)  # the intervals change no band
    assert s2sr.superresolve(b10, b20, weights_dir=tiny_weights).b60_uncertainty is None


def _fields(h, w):
    """Smooth bands with one sharp edge: narrow intervals on the smooth parts, wide ones along the edge."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    field = 2000 + 300 * np.sin(x / 15) * np.cos(y / 20) + 1500 * (x > w // 2)

    def group(n, f):
        return np.stack([field[::f, ::f] * (1 + 0.1 * i) for i in range(n)]).astype(np.uint16)

    return group(4, 1), group(6, 2), group(2, 6)


def test_readme_masks_pixels_with_wide_intervals(tiny_weights):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "b20_uncertainty" in b)
    lines = [line for line in block.splitlines() if line.startswith(("too_wide", "b20_trusted"))]
    assert len(lines) == 2  # the README's lines, run as they are
    b10, b20, b60 = _fields(96, 96)
    scope = {"np": np, "sr": s2sr.superresolve(b10, b20, b60, level="L2A", weights_dir=tiny_weights)}
    exec(compile("\n".join(lines), "README.md", "exec"), scope)
    sr, too_wide, b20_trusted = scope["sr"], scope["too_wide"], scope["b20_trusted"]
    assert b20_trusted.shape == sr.b20.shape
    assert np.isnan(b20_trusted[too_wide]).all() and not np.isnan(b20_trusted[~too_wide]).any()
    assert 0 < too_wide.mean() < 1  # random bands: some pixels trusted, some not


def test_tiled_intervals_equal_untiled(tiny_weights):
    b10, b20, b60 = _arrays(96, 96, seed=3)
    whole = s2sr.superresolve(b10, b20, b60, weights_dir=tiny_weights, tile_size=96)
    tiled = s2sr.superresolve(b10, b20, b60, weights_dir=tiny_weights, tile_size=24)
    np.testing.assert_allclose(tiled.b20_uncertainty, whole.b20_uncertainty, rtol=1e-4, atol=0.05)
    np.testing.assert_allclose(tiled.b60_uncertainty, whole.b60_uncertainty, rtol=1e-4, atol=0.05)


def test_small_arrays_take_the_shipped_calibration_and_say_so(tiny_weights):
    out = s2sr.superresolve(*_arrays(24, 24), weights_dir=tiny_weights)
    for record in out.calibration.to_dict()["by_scale"].values():
        assert record["source"] in ("shipped", "default") and "too few usable pixels" in record["reason"]


def test_a_shipped_calibration_is_used_only_with_the_scale_rule_it_was_made_for():
    from dataclasses import asdict, replace
    from types import SimpleNamespace

    bands = ("B1", "B9")
    record = {"rule": asdict(DEFAULT_RULE), "quantiles": {"B1": 1.5, "B9": 2.5}}
    net = SimpleNamespace(manifest=SimpleNamespace(uncertainty=record))
    assert uncertainty.shipped(net, 6, bands, "small").quantiles == (1.5, 2.5)
    other = replace(DEFAULT_RULE, absolute=0.0)  # the quantiles would not fit this rule's (smaller) scale
    fallback = uncertainty.shipped(net, 6, bands, "small", other)
    assert fallback.source == "default" and fallback.quantiles == (uncertainty.DEFAULT_QUANTILE,) * 2
    assert "another scale rule" in fallback.reason


def test_the_shipped_manifests_are_calibrated_for_the_default_rule():
    from dataclasses import asdict

    for name in ("dsen2_x2", "dsen2_x6"):
        raw = json.loads((Path(s2sr.__file__).parent / "weights" / f"{name}.json").read_text())
        assert raw["uncertainty"]["rule"] == asdict(DEFAULT_RULE), name


def _run(product, out, weights, **kw):
    return s2sr.superresolve_product(product, out, weights_dir=weights, tile_size=kw.pop("tile_size", 48), **kw)


def test_product_run_writes_the_uncertainty_file_on_the_outputs_grid(build_product, tiny_weights, tmp_path):
    product = build_product(size=240)
    out = _run(product, tmp_path / "out.tif", tiny_weights)
    path = tmp_path / "out_uncertainty.tif"
    with rasterio.open(out) as ds, rasterio.open(path) as u:
        assert (u.count, u.dtypes[0], u.nodata) == (8, "uint16", 0)
        assert u.transform == ds.transform and u.shape == ds.shape and u.crs == ds.crs
        assert [u.tags(i)["band"] for i in range(1, 9)] == ["B1", "B5", "B6", "B7", "B8A", "B9", "B11", "B12"]
        data, bands = u.read(), ds.read()
        assert ((data == 0) == (bands[4:5] == 0)).all()  # nodata where the bands are
        assert (data[:, bands[4] != 0] > 0).all()
        assert json.loads(u.tags()["calibration"])["coverage"] == 0.9
    item = json.loads(out.with_suffix(".json").read_text())
    status = item["properties"]["s2sr:uncertainty"]
    assert status["status"] == "written" and status["calibration"]["level"].startswith("one level down")
    assert item["assets"]["uncertainty"]["href"] == "./out_uncertainty.tif"
    tiled = _run(product, tmp_path / "tiled.tif", tiny_weights, tile_size=240)  # tiled equals untiled, bit for bit
    with rasterio.open(path) as a, rasterio.open(tmp_path / "tiled_uncertainty.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
    assert tiled.exists()
    _run(product, out, tiny_weights, uncertainty=False, overwrite=True)  # off: a previous run's file goes with its output
    assert not path.exists()
    assert json.loads(out.with_suffix(".json").read_text())["properties"]["s2sr:uncertainty"]["status"] == "off"


def test_an_aoi_runs_intervals_equal_the_whole_runs(build_product, tiny_weights, tmp_path):
    spec = SampleSpec(size=240)
    product = build_product(size=240)
    _run(product, tmp_path / "whole.tif", tiny_weights)
    _run(product, tmp_path / "part.tif", tiny_weights, aoi=spec.wgs84_bbox(60.5, 70.5, 125.5, 135.5), clip_to_aoi=False)
    with rasterio.open(tmp_path / "whole_uncertainty.tif") as w, rasterio.open(tmp_path / "part_uncertainty.tif") as p:
        win = rasterio.windows.from_bounds(*p.bounds, transform=w.transform).round_offsets().round_lengths()
        np.testing.assert_array_equal(p.read(), w.read(window=win))


def test_a_failing_calibration_costs_only_the_uncertainty(build_product, tiny_weights, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("synthetic fault")

    monkeypatch.setattr(uncertainty, "calibrate", broken)
    warnings = []
    out = _run(build_product(size=96), tmp_path / "out.tif", tiny_weights, warn=warnings.append)
    assert out.exists() and not (tmp_path / "out_uncertainty.tif").exists()
    assert len(warnings) == 1 and "synthetic fault" in warnings[0]
    status = json.loads(out.with_suffix(".json").read_text())["properties"]["s2sr:uncertainty"]
    assert status["status"] == "failed"


def test_a_failing_tile_costs_only_the_uncertainty(build_product, tiny_weights, tmp_path, monkeypatch):
    def broken(self, *args):
        raise FloatingPointError("synthetic fault")

    monkeypatch.setattr(uncertainty.Calibration, "interval", broken)
    warnings = []
    out = _run(build_product(size=96), tmp_path / "out.tif", tiny_weights, warn=warnings.append)
    assert out.exists() and not (tmp_path / "out_uncertainty.tif").exists()
    assert len(warnings) == 1 and "uncertainty not written" in warnings[0]
    assert not list(tmp_path.glob(".out_uncertainty*"))


@pytest.mark.parametrize("phase", ["uncertainty staged", "uncertainty in place"])
def test_kill_leaves_the_uncertainty_whole_with_its_output_or_absent(phase):
    from s2sr.phases import PRODUCT_PHASES

    assert phase in PRODUCT_PHASES  # the kill tests of test_pipeline walk every phase


def _with_level_factor(tiny_weights, folder, factor):
    """The tiny nets, the x2 manifest carrying a shipped calibration with ``factor`` for every band."""
    import shutil

    for p in tiny_weights.iterdir():
        shutil.copy(p, folder / p.name)
    path = folder / "dsen2_x2.json"
    raw = json.loads(path.read_text())
    raw["uncertainty"] = {"quantiles": {b: 2.0 for b in ("B5", "B6", "B7", "B8A", "B11", "B12")},
                          "level_factors": {b: factor for b in ("B5", "B6", "B7", "B8A", "B11", "B12")}}
    path.write_text(json.dumps(raw))
    return folder


def test_a_large_enough_product_calibrates_itself_and_the_level_factor_scales_it(tiny_weights, tmp_path):
    arrays = _fields(360, 360)
    runs = {}
    for factor in (1.0, 2.0):
        (tmp_path / str(factor)).mkdir()
        weights = _with_level_factor(tiny_weights, tmp_path / str(factor), factor)
        runs[factor] = s2sr.superresolve(*arrays, weights_dir=weights, adapt_steps=0)
    x2, x6 = runs[2.0].calibration.of(2), runs[2.0].calibration.of(6)
    assert x2.source == "product" and x2.pixels >= uncertainty.MIN_PIXELS and x2.level_factors == (2.0,) * 6
    np.testing.assert_allclose(x2.quantiles, 2 * np.asarray(runs[1.0].calibration.of(2).quantiles), rtol=1e-6)
    np.testing.assert_allclose(runs[2.0].b20_uncertainty, 2 * runs[1.0].b20_uncertainty, rtol=1e-5)
    # x6 has no level factor in these weights: its level-down quantiles are recorded, the fallback used
    assert x6.source == "default" and "no level factor" in x6.reason and len(x6.level_down) == 2
