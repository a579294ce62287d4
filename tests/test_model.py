"""Shipped weights: manifests, checksums, and that they beat bicubic on real held-back imagery."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from s2sr.errors import WeightsError
from s2sr.model import expected_bands, load_manifest, load_net, sha256_of

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
SHIPPED = sorted(p.stem for p in WEIGHTS.glob("*.json"))


def test_weights_are_shipped():
    assert {"dsen2_x2", "dsen2_x6"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_load_and_match_their_manifest(name):
    manifest = load_manifest(name, WEIGHTS)
    groups, outputs = expected_bands(manifest.scale)
    assert manifest.input_bands == groups and manifest.output_bands == outputs
    assert manifest.divide_by == 2000.0
    assert manifest.context_border >= manifest.architecture.required_border
    assert sha256_of(WEIGHTS / manifest.weights_file) == manifest.sha256
    assert manifest.placeholder or manifest.training["validation_scenes"]
    net = load_net(name, WEIGHTS)
    assert net.model.count_params() > 0


def test_tampered_weights_are_refused(tmp_path):
    for p in WEIGHTS.glob("dsen2_x2.*"):
        shutil.copy(p, tmp_path / p.name)
    with (tmp_path / "dsen2_x2.npz").open("ab") as f:
        f.write(b"x")
    with pytest.raises(WeightsError, match="sha256"):
        load_net("dsen2_x2", tmp_path)


def test_manifest_for_other_bands_is_refused(tmp_path):
    for p in WEIGHTS.glob("dsen2_x2.*"):
        shutil.copy(p, tmp_path / p.name)
    raw = json.loads((tmp_path / "dsen2_x2.json").read_text())
    raw["input_bands"]["20m"] = raw["input_bands"]["20m"][::-1]
    (tmp_path / "dsen2_x2.json").write_text(json.dumps(raw))
    with pytest.raises(WeightsError, match="do not match"):
        load_net("dsen2_x2", tmp_path)


def _held_back_scenes():
    from s2sr.training.sources import bigearthnet_common_patches
    from s2sr.training.train import VALIDATION_SCENES

    return [s for s in bigearthnet_common_patches() if s.name in VALIDATION_SCENES]


@pytest.mark.parametrize("scale", [2, 6])
def test_shipped_nets_beat_bicubic_on_held_back_real_patches(scale):
    """Real BigEarthNet L2A patches (PyPI bigearthnet-common) that training never saw."""
    if importlib.util.find_spec("bigearthnet_common") is None:  # data only: installed --no-deps, never imported
        pytest.skip("training-only dependency bigearthnet-common not installed")
    manifest = load_manifest(f"dsen2_x{scale}", WEIGHTS)
    if manifest.placeholder:
        pytest.skip("weights are untrained placeholders")
    from s2sr.training.train import predict_pair
    from s2sr.training.wald import bicubic_baseline, wald_pair

    net = load_net(f"dsen2_x{scale}", WEIGHTS)
    scenes = _held_back_scenes()
    assert scenes
    for scene in scenes:
        pair = wald_pair(scene, scale)
        err_net = np.sqrt(np.mean((predict_pair(net.model, pair) - pair.target) ** 2))
        err_bic = np.sqrt(np.mean((bicubic_baseline(pair) - pair.target) ** 2))
        assert err_net < 0.9 * err_bic, f"{scene.name}: x{scale} RMSE {err_net:.1f} vs bicubic {err_bic:.1f}"
