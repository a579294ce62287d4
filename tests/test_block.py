"""The UP42 block: parameters, data.json, exit codes; end to end as a subprocess, as the container runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
from s2sr_block.params import BlockParameters

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
        ({"clip_to_aoi": True, "bbox": [1, 0, 0, 1]}, "west < east"),
        ({"clip_to_aoi": True, "bbox": [0, 0, 1]}, r"\[west, south, east, north\]"),
        ({"clip_to_aoi": True, "intersects": {"type": "Point", "coordinates": [0, 0]}}, "Point; give a Polygon"),
        ({"clip_to_aoi": "yes", "bbox": [0, 0, 1, 1]}, "clip_to_aoi must be true or false"),
        ({"clip_to_aoi": False, "zoom": 3}, "unknown parameter"),
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


def test_block_whole_product_without_aoi(tmp_path, build_product):
    input_dir = _input_dir(tmp_path, build_product, size=36, level="L1C", baseline="02.09")
    proc = _run_block(tmp_path, input_dir, {"copy_original_bands": False})
    assert proc.returncode == 0, proc.stderr
    feature = json.loads((tmp_path / "output" / "data.json").read_text())["features"][0]
    assert len(feature["properties"]["s2sr.bands"]) == 8
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
    assert manifest["type"] == "processing" and "gpu" in manifest["machine"]["type"]
    inputs = manifest["input_capabilities"]["raster"]["up42_standard"]
    assert (inputs["format"], inputs["sensor"], inputs["dtype"]) == ("SAFE", "Sentinel2", "uint16")
    assert manifest["output_capabilities"]["raster"]["up42_standard"]["format"] == "GTiff"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**manifest, "_up42_specification_version": 1}, schema)
