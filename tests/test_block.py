"""The UP42 block: parameters, data.json, exit codes; end to end as a subprocess, as the container runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
from s2sr_block.params import BlockParameters

from s2sr.adapt import DEFAULT_ADAPT_STEPS
from s2sr.errors import InputParametersError
from s2sr.sample import SampleSpec

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_match_the_manifest():
    manifest = json.loads((ROOT / "UP42Manifest.json").read_text())
    declared = {k: v["default"] for k, v in manifest["parameters"].items()}
    assert declared == BlockParameters.defaults()


@pytest.mark.parametrize(
    "params,match",
    [
        ({"clip_to_aoi": True}, "exactly one of bbox, intersects, contains"),
        ({"clip_to_aoi": True, "bbox": [0, 0, 1, 1], "contains": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}, "exactly one"),
        ({"bbox": [0, 0, 1, 1]}, "clip_to_aoi is false; set clip_to_aoi to true or remove bbox"),
        ({"clip_to_aoi": True, "bbox": [1, 1, 2, 0]}, "south < north"),
        ({"clip_to_aoi": True, "bbox": [1, 0, 1, 1]}, "west > east: a bbox across the antimeridian"),
        ({"clip_to_aoi": True, "bbox": [0, 0, 1]}, r"\[west, south, east, north\]"),
        ({"clip_to_aoi": True, "intersects": {"type": "Point", "coordinates": [0, 0]}}, "Point; give a Polygon"),
        ({"clip_to_aoi": "yes", "bbox": [0, 0, 1, 1]}, "clip_to_aoi must be true or false"),
        ({"clip_to_aoi": False, "zoom": 3}, "unknown parameter"),
        ({"precision": "float16"}, "precision must be one of auto, float32, bfloat16, got 'float16'"),
        ({"sensor_model": "box"}, "sensor_model must be one of estimate, mtf, paper, got 'box'"),
        ({"masks": "no"}, "masks must be true or false, got 'no'"),
        ({"adapt_steps": -1}, r"adapt_steps must be a whole number of 0 or more \(0 turns adaptation off\), got -1"),
        ({"adapt_steps": 2.5}, "adapt_steps must be a whole number of 0 or more"),
    ],
)
def test_bad_parameters_say_what_to_change(params, match):
    with pytest.raises(InputParametersError, match=match):
        BlockParameters.from_json(json.dumps(params))


def test_parameters_parse():
    assert BlockParameters.from_json(None) == BlockParameters()
    with pytest.raises(InputParametersError, match="not valid JSON"):
        BlockParameters.from_json("{bbox")
    p = BlockParameters.from_json('{"bbox": [13.3, 52.4, 13.5, 52.6], "clip_to_aoi": true, "copy_original_bands": false, "intersects": null}')
    assert p.bbox == (13.3, 52.4, 13.5, 52.6) and p.clip_to_aoi and not p.copy_original_bands
    assert p.aoi.bounds == (13.3, 52.4, 13.5, 52.6)
    assert BlockParameters.from_json('{"precision": "float32"}').precision == "float32"
    assert BlockParameters().sensor_model == "estimate"
    assert BlockParameters.from_json('{"sensor_model": "paper"}').sensor_model == "paper"
    assert BlockParameters().masks and not BlockParameters.from_json('{"masks": false}').masks
    assert BlockParameters().adapt_steps == DEFAULT_ADAPT_STEPS == 40 and BlockParameters.from_json('{"adapt_steps": 0}').adapt_steps == 0


def _input_dir(tmp_path: Path, build_product, n: int = 1, **spec) -> Path:
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    features = []
    for i in range(n):
        product = build_product(**spec)
        target = input_dir / f"scene{i}" / product.name
        target.parent.mkdir()
        product.rename(target)
        features.append({"type": "Feature", "id": f"f{i}", "geometry": None,
                         "properties": {"up42.data_path": f"scene{i}/{product.name}", "other": i}})
    (input_dir / "data.json").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return input_dir


def _run_block(tmp_path: Path, input_dir: Path, params: dict | str) -> subprocess.CompletedProcess:
    env = {**os.environ, "UP42_TASK_PARAMETERS": params if isinstance(params, str) else json.dumps(params)}
    cmd = [sys.executable, "-m", "s2sr.cli", "block", "--input-dir", str(input_dir),
           "--output-dir", str(tmp_path / "output"), "--quicklook-dir", str(tmp_path / "quicklooks")]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_block_end_to_end_with_the_product_page_parameters(tmp_path, build_product):
    input_dir = _input_dir(tmp_path, build_product, n=2, size=72)
    bbox = SampleSpec().wgs84_bbox(12, 12, 40, 40)
    proc = _run_block(tmp_path, input_dir, {"bbox": bbox, "clip_to_aoi": True, "copy_original_bands": True})
    assert proc.returncode == 0, proc.stderr
    assert "tile 1/1" in proc.stderr
    assert [line for line in proc.stderr.splitlines() if not line.startswith("s2sr: ")] == []  # no TensorFlow line
    fc = json.loads((tmp_path / "output" / "data.json").read_text())
    assert [f["id"] for f in fc["features"]] == ["f0", "f1"]
    for feature in fc["features"]:
        props = feature["properties"]
        assert props["other"] in (0, 1) and len(props["s2sr.bands"]) == 12
        assert feature["bbox"] == pytest.approx(bbox)
        assert feature["geometry"]["type"] == "Polygon"
        with rasterio.open(tmp_path / "output" / props["up42.data_path"]) as ds:
            assert ds.count == 12 and ds.res == (10.0, 10.0) and ds.crs.to_epsg() == 32633 and ds.nodata == 0
            assert ds.descriptions[4] == "SR B5 (705 nm)" and ds.descriptions[1] == "B2 (490 nm)"
            h, w = ds.shape  # a 28 px AOI (reprojected there and back), aligned outward to the 60 m grid
            assert h % 6 == 0 and w % 6 == 0 and 30 <= h <= 42 and 30 <= w <= 42
        assert (tmp_path / "quicklooks" / f"{feature['id']}.png").is_file()
        assert props["s2sr.quicklooks"] == [f"{feature['id']}.png", f"{feature['id']}_sr.png"]
        assert (tmp_path / "quicklooks" / f"{feature['id']}_sr.png").is_file()
        item = json.loads((tmp_path / "output" / props["s2sr.stac_item"]).read_text())  # the STAC Item, linked
        assert item["geometry"] == feature["geometry"] and item["assets"]["data"]["href"] == "./" + Path(props["up42.data_path"]).name
        assert {"rel": "describedby", "href": props["s2sr.stac_item"], "type": "application/geo+json"} in feature["links"]
        # the product's masks beside it, on its grid, listed in data.json
        assert props["s2sr.masks"] == props["up42.data_path"].replace(".tif", "_masks.tif")
        assert props["s2sr.masks_status"]["status"] == "written"
        assert props["s2sr.uncertainty"] == props["up42.data_path"].replace(".tif", "_uncertainty.tif")
        assert props["s2sr.uncertainty_status"]["calibration"]["coverage"] == 0.9
        assert (tmp_path / "output" / props["s2sr.uncertainty"]).is_file()
        with rasterio.open(tmp_path / "output" / props["s2sr.masks"]) as masks, \
                rasterio.open(tmp_path / "output" / props["up42.data_path"]) as ds:
            assert (masks.transform, masks.shape, masks.count) == (ds.transform, ds.shape, 2) and masks.nodata == 255
        assert item["assets"]["masks"]["href"] == "./" + Path(props["s2sr.masks"]).name


def test_block_whole_product_without_aoi(tmp_path, build_product):
    input_dir = _input_dir(tmp_path, build_product, size=36, level="L1C", baseline="02.09")
    proc = _run_block(tmp_path, input_dir, {"copy_original_bands": False, "masks": False, "uncertainty": False})
    assert proc.returncode == 0, proc.stderr
    feature = json.loads((tmp_path / "output" / "data.json").read_text())["features"][0]
    assert len(feature["properties"]["s2sr.bands"]) == 8
    assert feature["properties"]["s2sr.masks"] is None and feature["properties"]["s2sr.masks_status"]["status"] == "off"
    assert not list((tmp_path / "output").rglob("*_masks.tif"))
    assert feature["properties"]["s2sr.uncertainty"] is None
    assert feature["properties"]["s2sr.uncertainty_status"]["status"] == "off"
    assert not list((tmp_path / "output").rglob("*_uncertainty.tif"))
    # geometry: where the file holds data, the sample's diagonal swath edge cut off (not its whole square)
    from shapely.geometry import box, shape

    square = box(*SampleSpec().wgs84_bbox(0, 0, 36, 36))
    written = shape(feature["geometry"])
    assert written.within(square.buffer(1e-4)) and 0.8 < written.area / square.area < 0.97


@pytest.mark.parametrize(
    "params,code,message",
    [
        ({"clip_to_aoi": True}, 2, "exactly one of bbox"),
        ('{"clip_to_aoi": tru', 2, "not valid JSON"),
        ({"clip_to_aoi": True, "bbox": [-10, -10, -9, -9]}, 2, "does not intersect"),
    ],
)
def test_bad_parameters_exit_2_and_write_nothing(tmp_path, build_product, params, code, message):
    input_dir = _input_dir(tmp_path, build_product, size=12)
    proc = _run_block(tmp_path, input_dir, params)
    assert proc.returncode == code
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()[-1]) < 300
    for d in ("output", "quicklooks"):
        assert not (tmp_path / d).exists() or not any((tmp_path / d).rglob("*.*"))


def test_missing_input_exits_3(tmp_path):
    (tmp_path / "input").mkdir()
    proc = _run_block(tmp_path, tmp_path / "input", {})
    assert proc.returncode == 3 and "data.json not found" in proc.stderr


def test_wrong_input_exits_4(tmp_path):
    input_dir = tmp_path / "input"
    (input_dir / "notsafe").mkdir(parents=True)
    fc = {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": None, "properties": {"up42.data_path": "notsafe"}}]}
    (input_dir / "data.json").write_text(json.dumps(fc))
    proc = _run_block(tmp_path, input_dir, {})
    assert proc.returncode == 4 and "is it a Sentinel-2 product" in proc.stderr


def test_manifest_is_valid_and_asks_for_a_gpu():
    import jsonschema

    manifest = json.loads((ROOT / "UP42Manifest.json").read_text())
    schema = json.loads((ROOT / "schemas" / "up42_manifest.schema.json").read_text())
    jsonschema.validate(manifest, schema)
    # the image's TensorFlow is a CUDA 12 build: Kepler GPUs (K80) cannot run it and would fall back to CPU
    assert manifest["type"] == "processing" and "gpu" in manifest["machine"]["type"]
    assert "k80" not in manifest["machine"]["type"]
    inputs = manifest["input_capabilities"]["raster"]["up42_standard"]
    assert (inputs["format"], inputs["sensor"], inputs["dtype"]) == ("SAFE", "Sentinel2", "uint16")
    assert manifest["output_capabilities"]["raster"]["up42_standard"]["format"] == "GTiff"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**manifest, "_up42_specification_version": 1}, schema)


def _features_file(input_dir: Path, paths: list[str], ids: list[str] | None = None) -> None:
    ids = ids or [f"f{i}" for i in range(len(paths))]
    features = [{"type": "Feature", "id": i, "geometry": None, "properties": {"up42.data_path": p}} for i, p in zip(ids, paths, strict=True)]
    (input_dir / "data.json").write_text(json.dumps({"type": "FeatureCollection", "features": features}))


def _up42_layout(tmp_path: Path, build_product, specs: list[dict]) -> Path:
    """As UP42's data blocks deliver: one folder per product, data_path pointing at the folder."""
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    paths = []
    for i, spec in enumerate(specs):
        product = build_product(**spec)
        folder = input_dir / f"ef60b465-{i:04d}"
        folder.mkdir()
        product.rename(folder / product.name)
        paths.append(folder.name)
    _features_file(input_dir, paths)
    return input_dir


def _outputs(tmp_path: Path) -> list[Path]:
    return sorted(p for d in ("output", "quicklooks") if (tmp_path / d).exists() for p in (tmp_path / d).rglob("*") if p.is_file())


def test_up42_folder_layout_and_a_product_outside_the_aoi_is_skipped(tmp_path, build_product):
    far = {"size": 48, "origin": (499980.0, 5900040.0)}  # another place: 100 km east, 100 km north
    input_dir = _up42_layout(tmp_path, build_product, [{"size": 48}, far, {"size": 48, "zipped": True}])
    bbox = SampleSpec().wgs84_bbox(6, 6, 30, 30)
    proc = _run_block(tmp_path, input_dir, {"bbox": bbox, "clip_to_aoi": True})
    assert proc.returncode == 0, proc.stderr
    assert "feature 2/3: skipped, the AOI [" in proc.stderr and "] does not intersect " in proc.stderr
    assert ", which covers [" in proc.stderr  # the product's bounds, to compare with the AOI
    nets = next(line for line in proc.stderr.splitlines() if "s2sr: nets: Keras" in line)  # backend, device, precision
    assert ", float32" in nets or ", bfloat16 (auto: native on this" in nets
    fc = json.loads((tmp_path / "output" / "data.json").read_text())
    assert [f["id"] for f in fc["features"]] == ["f0", "f2"]
    assert all((tmp_path / "output" / f["properties"]["up42.data_path"]).is_file() for f in fc["features"])


def test_contains_needs_the_whole_aoi_inside_the_data(tmp_path, build_product):
    input_dir = _up42_layout(tmp_path, build_product, [{"size": 48}])
    inside = SampleSpec().wgs84_bbox(6, 6, 20, 20)
    across_edge = SampleSpec().wgs84_bbox(30, 30, 60, 60)  # reaches past the swath edge and the product

    def polygon(b):
        return {"type": "Polygon", "coordinates": [[[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]], [b[0], b[1]]]]}

    proc = _run_block(tmp_path, input_dir, {"contains": polygon(across_edge), "clip_to_aoi": True})
    assert proc.returncode == 2 and "does not hold the whole AOI" in proc.stderr and "overlaps none" in proc.stderr
    assert not _outputs(tmp_path)
    proc = _run_block(tmp_path, input_dir, {"intersects": polygon(across_edge), "clip_to_aoi": True})
    assert proc.returncode == 0, proc.stderr
    proc = _run_block(tmp_path, input_dir, {"contains": polygon(inside), "clip_to_aoi": True, "overwrite": True})
    assert proc.returncode == 0, proc.stderr


def test_aoi_on_nodata_only_is_skipped_and_exits_6_when_nothing_is_left(tmp_path, build_product):
    input_dir = _up42_layout(tmp_path, build_product, [{"size": 96}])
    beyond_swath = SampleSpec().wgs84_bbox(84, 84, 96, 96)  # the sample's nodata corner
    proc = _run_block(tmp_path, input_dir, {"bbox": beyond_swath, "clip_to_aoi": True})
    assert proc.returncode == 6, proc.stderr
    assert "covers only nodata" in proc.stderr and "Traceback" not in proc.stderr
    assert not _outputs(tmp_path)


def test_footprint_is_what_was_written_not_the_aoi(tmp_path, build_product):
    from shapely.geometry import box, shape

    input_dir = _up42_layout(tmp_path, build_product, [{"size": 48, "nodata_edge": False}])
    bbox = SampleSpec().wgs84_bbox(24, 24, 96, 96)  # reaches 48 px beyond the product's lower-right corner
    proc = _run_block(tmp_path, input_dir, {"bbox": bbox, "clip_to_aoi": True})
    assert proc.returncode == 0, proc.stderr
    feature = json.loads((tmp_path / "output" / "data.json").read_text())["features"][0]
    written = shape(feature["geometry"])
    product = box(*SampleSpec().wgs84_bbox(0, 0, 48, 48))
    assert written.area < 0.35 * box(*bbox).area  # a quarter of the AOI holds data
    assert written.difference(product).area < 0.03 * written.area  # UTM square vs lon/lat box, simplification
    assert feature["bbox"] == pytest.approx(list(written.bounds))


def test_data_path_outside_the_input_folder_is_refused(tmp_path, build_product):
    input_dir = _up42_layout(tmp_path, build_product, [{"size": 12}])
    outside = build_product(size=12)
    (input_dir / "link").symlink_to(outside.parent)
    for data_path in ("../p1", str(outside), "link"):
        _features_file(input_dir, [data_path])
        proc = _run_block(tmp_path, input_dir, {})
        assert proc.returncode == 4, (data_path, proc.stderr)
        assert "leads outside" in proc.stderr and not _outputs(tmp_path)


def test_features_whose_ids_collide_get_their_own_outputs(tmp_path, build_product):
    input_dir = _up42_layout(tmp_path, build_product, [{"size": 12}, {"size": 12, "seed": 1}])
    _features_file(input_dir, ["ef60b465-0000", "ef60b465-0001"], ids=["a/b", "a:b"])
    proc = _run_block(tmp_path, input_dir, {})
    assert proc.returncode == 0, proc.stderr
    paths = [f["properties"]["up42.data_path"] for f in json.loads((tmp_path / "output" / "data.json").read_text())["features"]]
    assert len(set(paths)) == 2 and all((tmp_path / "output" / p).is_file() for p in paths)
    assert len(list((tmp_path / "quicklooks").glob("*.png"))) == 4


def test_corrupt_band_file_exits_4_naming_it(tmp_path, build_product):
    input_dir = _up42_layout(tmp_path, build_product, [{"size": 48}])
    jp2 = next(input_dir.rglob("*_B12_20m.jp2"))
    jp2.write_bytes(jp2.read_bytes()[:300])
    proc = _run_block(tmp_path, input_dir, {})
    assert proc.returncode == 4 and "B12_20m.jp2" in proc.stderr and "Traceback" not in proc.stderr
    assert not _outputs(tmp_path)


def test_a_corrupt_mask_is_one_line_and_a_product_without_masks_another(tmp_path, build_product):
    input_dir = _up42_layout(tmp_path, build_product, [{"size": 36}, {"size": 36, "masks": False}])
    scl = next(input_dir.rglob("*_SCL_20m.jp2"))
    scl.write_bytes(scl.read_bytes()[:200])
    proc = _run_block(tmp_path, input_dir, {})
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "masks" in line]
    assert len(lines) == 2 and all(line.startswith("s2sr: ") for line in proc.stderr.splitlines())
    assert lines[0].startswith(f"s2sr: feature 1/2: masks not written: {scl}: cannot open the scl mask")
    assert lines[1].startswith("s2sr: feature 2/2: no masks beside it: the product carries none")
    features = json.loads((tmp_path / "output" / "data.json").read_text())["features"]
    assert [f["properties"]["s2sr.masks"] for f in features] == [None, None]
    assert [f["properties"]["s2sr.masks_status"]["status"] for f in features] == ["failed", "unavailable"]
    assert all((tmp_path / "output" / f["properties"]["up42.data_path"]).is_file() for f in features)  # the bands
    assert not list((tmp_path / "output").rglob("*_masks.tif"))


def test_a_killed_run_leaves_nothing_in_the_output_folders(tmp_path, build_product):
    import signal
    import time

    input_dir = _up42_layout(tmp_path, build_product, [{"size": 600}])
    env = {**os.environ, "UP42_TASK_PARAMETERS": "{}"}
    cmd = [sys.executable, "-m", "s2sr.cli", "block", "--input-dir", str(input_dir), "--output-dir",
           str(tmp_path / "output"), "--quicklook-dir", str(tmp_path / "quicklooks"), "--tile-size", "120"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # kill it once it has written tiles
        if "tile 3/" in line:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not _outputs(tmp_path), _outputs(tmp_path)


def test_an_earlier_runs_outputs_are_replaced_only_with_overwrite(tmp_path, build_product):
    input_dir = _up42_layout(tmp_path, build_product, [{"size": 36}])
    assert _run_block(tmp_path, input_dir, {"adapt_steps": 0}).returncode == 0
    data_json = tmp_path / "output" / "data.json"
    before = data_json.read_text()
    proc = _run_block(tmp_path, input_dir, {"adapt_steps": 0})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f's2sr: error: {data_json} exists (an earlier run\'s output); set "overwrite": true in UP42_TASK_PARAMETERS to '
        "replace it, or give an empty output folder"]
    assert data_json.read_text() == before
    data_json.unlink()  # a folder the user emptied of data.json but not of the GeoTIFF: refused too
    proc = _run_block(tmp_path, input_dir, {"adapt_steps": 0})
    assert proc.returncode == 2 and '_SR10m.tif exists' in proc.stderr and '"overwrite": true' in proc.stderr
    proc = _run_block(tmp_path, input_dir, {"adapt_steps": 0, "overwrite": True})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(data_json.read_text())["features"]
    with pytest.raises(InputParametersError, match="overwrite must be true or false"):
        BlockParameters.from_json('{"overwrite": "yes"}')


def test_quicklooks_stretch_each_band_from_its_2nd_to_98th_percentile():
    import numpy as np
    from s2sr_block.quicklook import stretch

    rng = np.random.default_rng(0)
    data = rng.uniform(100, 1100, (3, 50, 50)).astype(np.float32)
    data[:, :5] = 0  # nodata
    rgb = stretch(data)
    assert (rgb[:, :5] == 0).all() and (rgb[:, 5:] >= 1).all()
    for band in rgb:
        values = band[5:]
        assert 0.01 < (values == 255).mean() < 0.04 and 0.01 < (values == 1).mean() < 0.04
        assert 100 < values.mean() < 155  # mid-grey on average, not dark


def test_block_across_the_antimeridian_writes_a_cut_footprint(tmp_path, build_product):
    """A UTM 60N product across 180° and an RFC 7946 bbox across it (west > east): data.json's geometry is a
    MultiPolygon cut at 180° and its bbox runs west > east, not -180 ... 180."""
    spec = dict(epsg=32660, tile="60WWT", origin=(640440.0, 7213020.0), size=192, nodata_edge=False, masks=False)
    input_dir = _input_dir(tmp_path, build_product, **spec)
    bbox = [179.99, 65.0, -179.99, 65.02]
    proc = _run_block(tmp_path, input_dir, {"bbox": bbox, "clip_to_aoi": True, "adapt_steps": 0})
    assert proc.returncode == 0, proc.stderr
    feature = json.loads((tmp_path / "output" / "data.json").read_text())["features"][0]
    assert feature["geometry"]["type"] == "MultiPolygon" and len(feature["geometry"]["coordinates"]) == 2
    west, south, east, north = feature["bbox"]
    assert west == pytest.approx(179.99, abs=1e-6) and east == pytest.approx(-179.99, abs=1e-6) and west > east
    assert south >= 65.0 - 1e-6 and north <= 65.02 + 1e-6
    item = json.loads((tmp_path / "output" / feature["properties"]["s2sr.stac_item"]).read_text())
    assert item["geometry"] == feature["geometry"] and item["bbox"] == feature["bbox"]
    with rasterio.open(tmp_path / "output" / feature["properties"]["up42.data_path"]) as ds:
        assert ds.crs.to_epsg() == 32660 and 90 <= ds.width <= 130  # 0.02° of longitude at 65° N (940 m), turned 2.7° on the grid


def test_block_mosaic_one_feature_per_datatake(tmp_path, build_product):
    """mosaic: true over three products, two of one overpass (neighbouring tiles) and one of a later date: two
    outputs, two features, each Item linking its products."""
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    specs = [dict(size=36, tile="33UUU"), dict(size=36, tile="33UUV", origin=(399960.0 + 240, 5800020.0)),
             dict(size=36, date="20230625T101559")]
    features = []
    for i, spec in enumerate(specs):
        product = build_product(**spec)
        (input_dir / f"s{i}").mkdir()
        product.rename(input_dir / f"s{i}" / product.name)
        features.append({"type": "Feature", "id": f"f{i}", "geometry": None,
                         "properties": {"up42.data_path": f"s{i}/{product.name}"}})
    (input_dir / "data.json").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    proc = _run_block(tmp_path, input_dir, {"mosaic": True, "adapt_steps": 0})
    assert proc.returncode == 0, proc.stderr
    fc = json.loads((tmp_path / "output" / "data.json").read_text())
    assert [f["id"] for f in fc["features"]] == ["f0", "f2"]
    first, later = fc["features"]
    assert first["properties"]["up42.data_path"] == "f0/S2B_MSIL2A_20230615_R022_SR10m.tif"
    assert first["properties"]["s2sr.source_features"] == ["f0", "f1"] and later["properties"]["s2sr.source_features"] == ["f2"]
    item = json.loads((tmp_path / "output" / first["properties"]["s2sr.stac_item"]).read_text())
    assert len(item["links"]) == 2 and item["properties"]["s2sr:mosaic"]["datatake"]["relative_orbit"] == "R022"
    with rasterio.open(tmp_path / "output" / first["properties"]["up42.data_path"]) as ds:
        assert ds.shape == (36, 60)
    assert first["properties"]["s2sr.masks_status"]["status"] == "written"
