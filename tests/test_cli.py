import json
import os
import signal
import subprocess
import sys

import pytest
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
    assert any(line.startswith("s2sr: B1/B9 by the regression alone: ") for line in proc.stderr.splitlines())
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
    proc = _s2sr("run", product, tmp_path / "o.tif", "--device", "cpu", "--precision", "float32", "--no-uncertainty",
                 "--overwrite")
    assert proc.returncode == 0 and not (tmp_path / "o_uncertainty.tif").exists(), proc.stderr
    scl = next(product.rglob("*_SCL_20m.jp2"))
    scl.write_bytes(scl.read_bytes()[:200])
    proc = _s2sr("run", product, tmp_path / "o.tif", "--device", "cpu", "--precision", "float32", "--overwrite")
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


def test_an_existing_output_or_a_folder_is_refused_in_one_line_before_the_nets_load(build_product, tmp_path):
    product = build_product(size=36)
    (tmp_path / "o.tif").write_text("the user's")
    (tmp_path / "isdir.tif").mkdir()
    for target, expected in ((tmp_path / "o.tif", "o.tif exists; give --overwrite"), (tmp_path / "isdir.tif", "is a folder"),
                             (tmp_path / "missing" / "x.png", "must end in .tif")):
        code = ("import sys; from s2sr.cli import main; rc = main(sys.argv[1:]); "
                "print('keras' in sys.modules, 'tensorflow' in sys.modules); sys.exit(rc)")
        proc = subprocess.run([sys.executable, "-c", code, "run", str(product), str(target)], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
        assert proc.stdout.strip() == "False False"  # TensorFlow never loaded: the mistake cost no wait
        assert proc.stderr.count("\n") == 1 and "nets:" not in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "o.tif").read_text() == "the user's"
    proc = _s2sr("run", product, tmp_path / "o.tif", "--overwrite", "--no-adapt", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert ds.count == 12


def test_a_missing_product_or_an_aoi_that_misses_is_named_before_the_nets_load(build_product, tmp_path):
    proc = _s2sr("run", tmp_path / "missing.SAFE", tmp_path / "o.tif")
    assert proc.returncode == 3 and "does not exist" in proc.stderr and "nets:" not in proc.stderr
    west, south, east, north = SampleSpec().wgs84_bbox(6, 6, 30, 30)
    proc = _s2sr("run", build_product(size=36), tmp_path / "o.tif", "--bbox", south, west, north, east)
    assert proc.returncode == 2 and "look swapped" in proc.stderr and "nets:" not in proc.stderr


#: ``s2sr`` with a phase hook that holds the run after its third tile, so that a signal always lands mid-run.
_HELD_AFTER_3_TILES = """
import sys, time
import s2sr.phases as phases
written = []
def hold(phase, target):
    if phase == "tile written":
        written.append(phase)
        if len(written) == 3:
            print("held after 3 tiles", file=sys.stderr, flush=True)
            time.sleep(300)
phases.hook = hold
from s2sr.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_ends_in_one_line_and_leaves_nothing(build_product, tmp_path, signum, code):
    product = build_product(size=600)
    staging = tmp_path / "tmp"
    staging.mkdir()
    out = tmp_path / "out" / "o.tif"
    cmd = [sys.executable, "-c", _HELD_AFTER_3_TILES, "run", str(product), str(out), "--tile-size", "120", "--no-adapt",
           "--device", "cpu"]
    proc = subprocess.Popen(cmd, env={**os.environ, "TMPDIR": str(staging)}, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:  # interrupt it once it has written tiles (held there: a loaded machine races no more)
        lines.append(line)
        if "held after 3 tiles" in line:
            break
    assert proc.poll() is None, "".join(lines)
    proc.send_signal(signum)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == code, "".join(lines) + rest
    assert rest.strip().splitlines()[-1] == "s2sr: interrupted" and "Traceback" not in rest
    assert not out.exists() and not [p for p in (tmp_path / "out").rglob("*")] and not list(staging.iterdir())


def test_every_subcommand_says_what_it_does_and_its_defaults():
    for command in ("run", "batch", "demo", "train", "evaluate"):
        proc = _s2sr(command, "--help")
        assert proc.returncode == 0
        description = proc.stdout.split("\n\n")[1]
        assert description.strip() and not description.startswith(("positional", "options")), (command, proc.stdout)
    def flat(text: str) -> str:  # argparse wraps lines anywhere
        return " ".join(text.split())

    assert "(default: 1098)" in flat(_s2sr("run", "--help").stdout)
    assert "(default: out/demo)" in flat(_s2sr("demo", "--help").stdout)
    block = _s2sr("block", "--help")
    assert block.returncode == 0 and "UP42_TASK_PARAMETERS" in block.stdout and "overwrite" in block.stdout


def test_evaluate_says_which_scenes_it_lacks(monkeypatch, tmp_path):
    from s2sr import cli
    from s2sr.training.train import TEST_SCENES

    lines: list[str] = []
    monkeypatch.setattr(cli, "_log", lines.append)
    scenes = [type("S", (), {"name": TEST_SCENES[0]})()]
    cli._log_scene_coverage(scenes, "test", tmp_path / "absent")
    assert lines == [f"1 of the {len(TEST_SCENES)} test scenes: lacking {', '.join(sorted(TEST_SCENES[1:]))}; "
                     f"{tmp_path / 'absent'} is not here (--shared-data DIR names it)"]


def test_version_is_the_package_version():
    import s2sr

    proc = _s2sr("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"s2sr {s2sr.__version__}"


def test_a_missing_keras_backend_is_one_line_naming_the_extra(build_product, tmp_path):
    code = ("import sys; sys.modules['keras'] = None  # as if the extra were not installed\n"
            "from s2sr.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "run", str(build_product(size=12)), str(tmp_path / "o.tif")],
                          capture_output=True, text=True, timeout=120)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(err) == 1, proc.stderr
    assert "'keras'" in err[0] and 's2sr[cpu]' in err[0]


def test_run_with_several_products_writes_their_mosaic(build_product, tmp_path):
    a = build_product(size=36, tile="33UUU")
    b = build_product(size=36, tile="33UUV", origin=(399960.0 + 240, 5800020.0))
    out = tmp_path / "m.tif"
    proc = _s2sr("run", a, b, out, "--no-adapt", "--tile-size", 36, "--device", "cpu", "--precision", "float32")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    with rasterio.open(out) as ds:
        assert ds.shape == (36, 60) and len(ds.tags()["source_product"].split(", ")) == 2
    later = build_product(size=36, date="20230625T101559")
    proc = _s2sr("run", a, later, tmp_path / "n.tif", "--no-adapt")
    assert proc.returncode == 2 and "belong to 2 datatakes" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "n.tif").exists()
