"""``s2sr batch`` on a local Ray: bad products recorded, reruns skip what is complete, a killed worker loses nothing."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

import rasterio  # noqa: E402

from s2sr.bands import output_bands  # noqa: E402
from s2sr.batch import BatchOptions, find_inputs, is_complete, run_batch  # noqa: E402
from s2sr.masks import companion_path  # noqa: E402
from s2sr.sample import SampleSpec, build_sample_product  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    # a Ray of its own ("local"), not a cluster another process started on this machine with `ray start`
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _products(folder: Path, n: int, size: int = 72) -> list[Path]:
    dates = ["20230615T101559", "20230715T101559", "20230815T101559", "20230915T101559"]
    return [build_sample_product(folder, SampleSpec(size=size, date=d, seed=i)) for i, d in enumerate(dates[:n])]


def test_a_bad_product_is_recorded_and_a_rerun_does_no_work(local_ray, tmp_path, tiny_weights):
    products = _products(tmp_path / "in", 4)
    jp2 = next(products[2].rglob("*_B11_20m.jp2"))
    jp2.write_bytes(jp2.read_bytes()[: jp2.stat().st_size // 2])  # opens, fails to decode
    scl = next(products[1].rglob("*_SCL_20m.jp2"))
    scl.write_bytes(b"\x00" * 100)  # a corrupt mask costs the masks, not the product
    (tmp_path / "in" / "list.txt").write_text("\n".join(p.name for p in products[:2]) + "\n# a comment\n")
    inputs = [tmp_path / "in" / "list.txt", products[2], tmp_path / "in"]  # overlapping inputs count once
    assert len(find_inputs(inputs)) == 4
    options = BatchOptions(weights_dir=str(tiny_weights), tile_size=36)
    out = tmp_path / "out"
    records = run_batch(inputs, out, options, workers=2)
    assert [r.status for r in records] == ["done", "done", "failed", "done"]
    bad = records[2]
    assert bad.exit_code == 4 and "B11_20m.jp2" in bad.error and bad.output is None
    written = sorted(out.glob("*_SR10m.tif"))
    assert len(written) == 3 and all(is_complete(p, output_bands(True)) for p in written)
    report = json.loads((out / "batch.json").read_text())
    assert report["summary"] == {"done": 3, "skipped": 0, "failed": 1, "pending": 0}
    assert report["products"][2]["input"] == str(products[2].resolve())
    assert records[1].warning.startswith("masks not written: ") and scl.name in records[1].warning
    assert report["products"][1]["warning"] == records[1].warning and records[0].warning is None
    assert [companion_path(p).is_file() for p in written] == [True, False, True]

    mtimes = {p: p.stat().st_mtime_ns for p in written}
    again = run_batch(inputs, out, options, workers=2)
    assert [r.status for r in again] == ["skipped", "skipped", "failed", "skipped"]
    assert {p: p.stat().st_mtime_ns for p in written} == mtimes  # not rewritten

    written[0].write_bytes(written[0].read_bytes()[:1000])  # a damaged output is redone, not trusted
    companion_path(written[2]).write_bytes(companion_path(written[2]).read_bytes()[:300])  # and so are its masks
    third = run_batch(inputs, out, options, workers=2)
    assert [r.status for r in third] == ["done", "skipped", "failed", "done"]


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])  # the name in parentheses may hold spaces


def _descends_from_us(pid: int) -> bool:
    """Whether ``pid`` was started, through any chain of parents, by this test process (our own Ray)."""
    try:
        while pid > 1:
            pid = _parent(pid)
            if pid == os.getpid():
                return True
    except (OSError, ValueError, IndexError):
        pass
    return False


def _worker_pids() -> list[int]:
    """Busy s2sr batch workers of this test's own Ray, never those of another Ray on the machine."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if b"_Worker.process" in (proc / "cmdline").read_bytes() and _descends_from_us(int(proc.name)):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def test_a_worker_killed_mid_batch_loses_no_product(local_ray, tmp_path, tiny_weights):
    products = _products(tmp_path / "in", 4, size=216)
    options = BatchOptions(weights_dir=str(tiny_weights), tile_size=36)
    killed: list[int] = []

    def kill_one_busy_worker():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            busy = _worker_pids()
            if busy:
                time.sleep(0.3)  # let it start on its product
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_busy_worker, daemon=True)
    killer.start()
    records = run_batch(products, tmp_path / "out", options, workers=2)
    killer.join(timeout=5)
    assert killed, "no busy worker was seen to kill"
    assert [r.status for r in records] == ["done"] * 4
    assert len(list((tmp_path / "out").glob("*_SR10m.tif"))) == 4


def test_cli_exits_1_when_a_product_failed(tmp_path):
    import subprocess
    import sys

    good, bad = _products(tmp_path / "in", 2)
    next(bad.rglob("*_B8A_20m.jp2")).unlink()
    cmd = [sys.executable, "-m", "s2sr.cli", "batch", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"),
           "--tile-size", "36", "--workers", "1"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "1 of 2 products written or complete; 1 failed" in proc.stderr and "batch: product 2/2" in proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "out" / "batch.json")


def test_mosaic_gives_one_output_per_datatake_and_a_rerun_does_no_work(local_ray, tmp_path, tiny_weights):
    folder = tmp_path / "in"
    one = [build_sample_product(folder, SampleSpec(size=36, tile=t, origin=(399960.0 + dx, 5800020.0)))
           for t, dx in (("33UUU", 0), ("33UUV", 240))]
    other = build_sample_product(folder, SampleSpec(size=36, date="20230625T101559"))
    options = BatchOptions(weights_dir=str(tiny_weights), tile_size=36, adapt_steps=0, mosaic=True)
    records = run_batch([folder], tmp_path / "out", options, workers=1)
    assert [(r.input, r.status) for r in records] == [("S2B_MSIL2A_20230615_R022", "done"),
                                                     ("S2B_MSIL2A_20230625_R022", "done")]
    assert sorted(records[0].sources) == sorted(str(p.resolve()) for p in one) and records[1].sources == [str(other.resolve())]
    with rasterio.open(records[0].output) as ds:
        assert ds.shape == (36, 60)  # the two products side by side, overlapping by 12 px
    item = json.loads(Path(records[0].output).with_suffix(".json").read_text())
    assert len([link for link in item["links"] if link["rel"] == "derived_from"]) == 2
    again = run_batch([folder], tmp_path / "out", options, workers=1)
    assert [r.status for r in again] == ["skipped", "skipped"]
