"""Shared fixtures: a SAFE product builder, tiny test weights, and the optional real data in ../shared."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from s2sr.model import Architecture, WeightsManifest, build_dsen2, expected_bands, save_weights
from s2sr.sample import SampleSpec, build_sample_product

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture
def build_product(tmp_path):
    """``build_product(level=..., baseline=..., size=..., zipped=...)`` -> path of a fresh SAFE product."""
    counter = iter(range(1000))

    def build(*, zipped: bool = False, flat_zip: bool = False, **spec) -> Path:
        return build_sample_product(tmp_path / f"p{next(counter)}", SampleSpec(**spec), zipped=zipped, flat_zip=flat_zip)

    return build


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """Small untrained nets (tail at zero: output = bicubic), fast enough for structural tests."""
    import keras

    directory = tmp_path_factory.mktemp("weights")
    for scale in (2, 6):
        keras.utils.set_random_seed(scale)
        arch = Architecture(features=8, blocks=1)
        groups, outputs = expected_bands(scale)
        manifest = WeightsManifest(
            name=f"dsen2_x{scale}", scale=scale, level="any", architecture=arch,
            weights_file=f"dsen2_x{scale}.npz", sha256="", input_bands=groups, output_bands=outputs,
            context_border=arch.required_border, placeholder=True,
        )
        save_weights(build_dsen2(scale, arch), manifest, directory)
    return directory


@pytest.fixture(scope="session")
def tiny_weights_on_regression(tiny_weights, tmp_path_factory) -> Path:
    """The tiny x2 net, and a tiny x6 net refining the regression (``residual_to: regression``) whose last layer is
    small and random, so that its output differs from the regression's and depends on its context."""
    import shutil

    import keras
    import numpy as np

    directory = tmp_path_factory.mktemp("weights_on_regression")
    for p in tiny_weights.glob("dsen2_x2.*"):
        shutil.copy(p, directory / p.name)
    keras.utils.set_random_seed(7)
    arch = Architecture(features=8, blocks=4)  # a receptive radius that moves the border off the bicubic net's
    model = build_dsen2(6, arch)
    tail = model.get_layer("tail")
    kernel, bias = tail.get_weights()
    tail.set_weights([np.random.default_rng(0).normal(0, 0.05, kernel.shape).astype(np.float32), bias])
    groups, outputs = expected_bands(6)
    save_weights(model, WeightsManifest(
        name="dsen2_x6", scale=6, level="any", architecture=arch, weights_file="dsen2_x6.npz", sha256="",
        input_bands=groups, output_bands=outputs, context_border=arch.required_border, placeholder=True,
        residual_to="regression", dtype="float32"), directory)
    return directory


@pytest.fixture
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/data is absent (real Sentinel-2 reference data)")
    return SHARED


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def stac_api_server(collection: Path, items: Path):
    """A real STAC API server on this machine (rustac ``serve``, in-memory backend) serving one collection and
    its Items (a FeatureCollection); yields its URL, stops it afterwards."""
    import json

    rustac = Path(sys.executable).with_name("rustac")
    assert rustac.is_file(), "rustac is installed by `make install` (requirements-dev.txt)"
    collection_id = json.loads(collection.read_text())["id"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(rustac), "serve", "--addr", f"127.0.0.1:{port}", str(collection), str(items)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, f"rustac serve exited: {server.stdout.read()}"
            try:
                with urllib.request.urlopen(f"{url}/collections/{collection_id}", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "rustac serve did not answer within 60 s"
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
