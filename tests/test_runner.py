"""Overlapping stages: the same output as one stage at a time, errors from any stage, bounded memory."""

import threading
import time

import numpy as np
import pytest
import rasterio

import s2sr
from s2sr.errors import ProductError
from s2sr.runner import run_tiles


def test_stages_overlap_and_keep_the_order():
    log, in_flight, peak = [], [0], [0]
    lock = threading.Lock()

    def read(t):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.01)
        return t * 10

    def compute(t, x):
        with lock:
            in_flight[0] -= 1
        return x + 1

    run_tiles(range(20), read, compute, lambda t, r: log.append((t, r)), threads=3)
    assert log == [(t, t * 10 + 1) for t in range(20)]
    assert 2 <= peak[0] <= 3  # reads ran ahead of the compute, but at most readers + 1 tiles


@pytest.mark.parametrize("stage", ["read", "compute", "write"])
def test_an_error_in_any_stage_stops_the_run(stage):
    written = []

    def fail_at(name, t):
        if name == stage and t == 5:
            raise ProductError(f"{name} failed at {t}")

    def read(t):
        fail_at("read", t)
        return t

    def compute(t, x):
        fail_at("compute", t)
        return x

    def write(t, r):
        fail_at("write", t)
        written.append(t)

    with pytest.raises(ProductError, match=f"{stage} failed at 5"):
        run_tiles(range(50), read, compute, write, threads=3)
    assert written == list(range(len(written))) and len(written) <= 8


def test_threaded_product_run_equals_the_sequential_one(build_product, tiny_weights, tmp_path):
    product = build_product(size=216)
    kw = dict(weights_dir=tiny_weights, tile_size=72, stac_item=False)
    one = s2sr.superresolve_product(product, tmp_path / "one.tif", threads=1, **kw)
    many = s2sr.superresolve_product(product, tmp_path / "many.tif", threads=3, **kw)
    with rasterio.open(one) as a, rasterio.open(many) as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_threaded_run_with_a_corrupt_band_file_leaves_nothing(build_product, tiny_weights, tmp_path):
    product = build_product(size=216)
    jp2 = next(product.rglob("*_B03_10m.jp2"))
    jp2.write_bytes(jp2.read_bytes()[: jp2.stat().st_size // 2])  # opens, then fails to decode in a reader thread
    with pytest.raises(ProductError, match=r"B03_10m\.jp2"):
        s2sr.superresolve_product(product, tmp_path / "out" / "x.tif", weights_dir=tiny_weights, tile_size=72, threads=3)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("threads", [1, 3])
def test_stage_times_count_every_stage(threads):
    from s2sr.runner import StageTimes

    times = StageTimes()

    def read(t):
        time.sleep(0.01)
        return t

    run_tiles(range(5), read, lambda t, x: x, lambda t, r: None, threads=threads, times=times)
    assert set(times.seconds) == {"read", "compute", "write"}
    assert times.seconds["read"] >= 0.05  # summed over tiles, whichever thread read them


def test_product_run_reports_its_stages(build_product, tiny_weights, tmp_path):
    from s2sr.runner import StageTimes

    times = StageTimes()
    s2sr.superresolve_product(build_product(size=72), tmp_path / "o.tif", tile_size=36, weights_dir=tiny_weights,
                              stage_times=times)
    assert set(times.seconds) == {"read", "compute", "write", "finish COG", "prepare", "regression", "nets", "fusion and projection",
                                  "STAC Item", "sensor model", "adaptation", "x6 decision", "calibration",
                                  "uncertainty"}
    assert all(v > 0 for v in times.seconds.values())
