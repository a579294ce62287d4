import json
import subprocess
import sys

import rasterio

from s2sr.sample import SampleSpec


def _s2sr(*args):
    return subprocess.run([sys.executable, "-m", "s2sr.cli", *map(str, args)], capture_output=True, text=True, timeout=600)


def test_run_with_bbox(build_product, tmp_path):
    product = build_product(size=60, zipped=True)
    west, south, east, north = SampleSpec().wgs84_bbox(6, 6, 30, 30)
    out = tmp_path / "o.tif"
    proc = _s2sr("run", product, out, "--bbox", west, south, east, north, "--tile-size", 30, "--device", "cpu",
                 "--precision", "float32")
    assert proc.returncode == 0, proc.stderr
    assert "tiles/min" in proc.stderr and proc.stdout.strip() == str(out)
    assert "nets: Keras" in proc.stderr and ", CPU" in proc.stderr
    # quiet: no TensorFlow or absl line (they load before the first line of s2sr), only s2sr's own lines
    assert [line for line in proc.stderr.splitlines() if not line.startswith("s2sr: ")] == []
    assert next(line for line in proc.stderr.splitlines() if "s2sr: nets:" in line).endswith(", float32")
    with rasterio.open(out) as ds:
        assert ds.count == 12 and all(n % 6 == 0 and 24 <= n <= 36 for n in ds.shape)


def test_run_records_the_sensor_model_asked_for(build_product, tmp_path):
    out = tmp_path / "o.tif"
    proc = _s2sr("run", build_product(size=36), out, "--sensor-model", "mtf", "--device", "cpu", "--precision", "float32")
    assert proc.returncode == 0, proc.stderr
    with rasterio.open(out) as ds:
        recorded = json.loads(ds.tags()["sensor_model"])
    assert {k["source"] for k in recorded.values()} == {"mtf"} and 1.9 < recorded["B1"]["sigma_px"] < 2.4
    proc = _s2sr("run", build_product(size=12), tmp_path / "p.tif", "--sensor-model", "gaussian")
    assert proc.returncode == 2 and "--sensor-model: invalid choice: 'gaussian'" in proc.stderr


def test_run_adapts_the_x2_net_as_asked_and_says_what_it_did(build_product, tmp_path):
    product = build_product(size=240)
    out = tmp_path / "o.tif"
    proc = _s2sr("run", product, out, "--adapt-steps", 3, "--device", "cpu", "--precision", "float32")
    assert proc.returncode == 0, proc.stderr
    with rasterio.open(out) as ds:
        (record,) = json.loads(ds.tags()["adaptation"])
    assert record["steps"] == 3 and record["heldout_rmse_before"] > 0
    assert any(line.startswith("s2sr: x2 net ") and "held-back RMSE" in line for line in proc.stderr.splitlines())
    assert [line for line in proc.stderr.splitlines() if not line.startswith("s2sr: ")] == []  # no TensorFlow line
    proc = _s2sr("run", product, tmp_path / "n.tif", "--no-adapt", "--device", "cpu", "--precision", "float32")
    assert proc.returncode == 0 and "s2sr: x2 net not adapted: turned off" in proc.stderr
    proc = _s2sr("run", product, tmp_path / "b.tif", "--adapt-steps", -3)
    assert proc.returncode == 2 and "--adapt-steps: must be a whole number of 0 or more (0 turns adaptation off), got '-3'" in proc.stderr


def test_run_errors_have_exit_codes(build_product, tmp_path):
    proc = _s2sr("run", tmp_path / "missing.SAFE", tmp_path / "o.tif")
    assert proc.returncode == 3 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    proc = _s2sr("run", build_product(size=12), tmp_path / "o.png")
    assert proc.returncode == 2 and "must end in .tif" in proc.stderr
    proc = _s2sr("run", build_product(size=12), tmp_path / "o.tif", "--tile-size", 10)
    assert proc.returncode == 2 and "multiple of 6" in proc.stderr
    from s2sr.model import visible_gpus

    if not visible_gpus():  # asking for a GPU that is not there fails up front, it does not run 50x slower
        proc = _s2sr("run", build_product(size=12), tmp_path / "o.tif", "--device", "gpu")
        assert proc.returncode == 2 and "sees no GPU" in proc.stderr and "--device auto or cpu" in proc.stderr
        assert not (tmp_path / "o.tif").exists()


def test_evaluate_on_an_array_stack_and_a_product(build_product, tiny_weights, tmp_path):
    import numpy as np

    from s2sr.resample import block_mean
    from s2sr.sample import _reflectance

    refl = _reflectance(SampleSpec(size=432)) * 10000  # x6 is judged on scenes of 400 px or more only
    npz = tmp_path / "stack.npz"
    np.savez(npz, im10=refl[[1, 2, 3, 7]], im20=block_mean(refl[[4, 5, 6, 8, 11, 12]], 2), im60=block_mean(refl[[0, 9]], 6))
    proc = _s2sr("evaluate", "--npz", npz, "--weights-dir", tiny_weights)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if "| stack | L2A |" in line]
    intervals = [line for line in proc.stdout.splitlines() if line.startswith(("| paper | stack | x", "| sensor | stack | x"))]
    assert "Per-pixel 90 % intervals" in proc.stdout and len(intervals) == 4  # s2sr's intervals, both kernels and scales
    assert len(rows) == 16 and "| x2 | bicubic |" in rows[0] and "| x6 | s2sr |" in rows[15]  # 4 methods, both kernels
    assert "| x2 | s2sr, no adaptation |" in rows[2] and rows[0].startswith("| paper |") and rows[15].startswith("| sensor |")
    assert "| pooled over 1 L2A scenes | L2A | x2 | s2sr |" in proc.stdout
    proc = _s2sr("evaluate", "--product", build_product(size=216), "--scale", "2", "--weights-dir", tiny_weights)
    assert proc.returncode == 0, proc.stderr
    assert "| x2 | dsen2 net only |" in proc.stdout and "| x2 | s2sr |" in proc.stdout


def test_run_writes_the_masks_and_says_in_one_line_why_not(build_product, tmp_path):
    product = build_product(size=36)
    proc = _s2sr("run", product, tmp_path / "o.tif", "--device", "cpu", "--precision", "float32")
    assert proc.returncode == 0 and (tmp_path / "o_masks.tif").is_file() and "masks" not in proc.stderr
    assert (tmp_path / "o_uncertainty.tif").is_file()
    proc = _s2sr("run", product, tmp_path / "o.tif", "--device", "cpu", "--precision", "float32", "--no-uncertainty")
    assert proc.returncode == 0 and not (tmp_path / "o_uncertainty.tif").exists(), proc.stderr
    scl = next(product.rglob("*_SCL_20m.jp2"))
    scl.write_bytes(scl.read_bytes()[:200])
    proc = _s2sr("run", product, tmp_path / "o.tif", "--device", "cpu", "--precision", "float32")
    assert proc.returncode == 0 and proc.stdout.strip() == str(tmp_path / "o.tif"), proc.stderr
    assert [line for line in proc.stderr.splitlines() if not line.startswith("s2sr: ")] == []  # nothing from GDAL
    (line,) = [line for line in proc.stderr.splitlines() if "masks" in line]
    assert line.startswith(f"s2sr: masks not written: {scl}: cannot open the scl mask")
    assert not (tmp_path / "o_masks.tif").exists()  # the previous run's masks are not left beside these bands
    proc = _s2sr("run", build_product(size=36), tmp_path / "p.tif", "--no-masks", "--device", "cpu")
    assert proc.returncode == 0 and not (tmp_path / "p_masks.tif").exists()


def test_train_refuses_a_regression_residual_for_the_x2_net(tmp_path):
    proc = _s2sr("train", "--scale", 2, "--run-dir", tmp_path / "run", "--residual-to", "regression")
    assert proc.returncode == 2 and "--residual-to regression is for the x6 net only, got --scale 2" in proc.stderr
    assert not (tmp_path / "run").exists()
