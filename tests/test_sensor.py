import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2sr.resample import block_mean, degrade, degrade_bands, degrade_reach, gaussian_blur
from s2sr.sensor import MAX_SIGMA, SensorModel, mtf_sigma, protocol_sigma


def test_documented_kernels_match_the_mtf_figures():
    # the figures: sigma about 0.5 (B5) to 0.77 (B11) at x2, 2.0 to 2.8 at x6
    assert mtf_sigma("B5", 2) == pytest.approx(0.50, abs=0.01)
    assert mtf_sigma("B11", 2) == pytest.approx(0.77, abs=0.01)
    for band in ("B1", "B9", "B5", "B12"):
        assert 1.95 <= mtf_sigma(band, 6) <= 2.8
    # the kernel really passes MTF^(1 - 1/s^2) at the coarse Nyquist frequency, the box included
    for band, s in (("B5", 2), ("B11", 2), ("B1", 6)):
        sigma = mtf_sigma(band, s)
        f = 1 / (2 * s)
        gain = np.exp(-2 * np.pi**2 * sigma**2 * f**2) * 2 / np.pi
        assert gain == pytest.approx(0.0 + {"B5": 0.365, "B11": 0.205, "B1": 0.3175}[band] ** (1 - 1 / s**2))


def test_protocols():
    assert protocol_sigma("B5", 2, "paper") == 0.5
    assert protocol_sigma("B5", 6, "sensor") == mtf_sigma("B5", 6)
    with pytest.raises(ValueError, match="paper, sensor"):
        protocol_sigma("B5", 2, "box")


def test_models_hold_one_kernel_per_band_and_clamp():
    paper, documented = SensorModel.paper(), SensorModel.documented()
    assert paper.sigmas(("B5", "B1")) == (0.5, 1 / 6)
    assert {k.source for k in documented.kernels} == {"mtf"}
    model = SensorModel.from_sigmas({"B1": 99.0, "B5": 0.7})
    assert model.kernel("B1").sigma == MAX_SIGMA[6] and model.kernel("B1").source == "estimated"
    assert model.kernel("B6").source == "mtf"
    assert model.to_dict()["B5"] == {"factor": 2, "sigma_px": 0.7, "source": "estimated"}
    assert "B5 0.70 (estimated)" in model.describe()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), f=st.sampled_from([2, 6]), sigma=st.floats(0.0, 3.0))
def test_degrade_with_any_blur_is_that_blur_then_the_block_mean(seed, f, sigma):
    a = np.random.default_rng(seed).uniform(0, 1000, (2, 36, 36)).astype(np.float32)
    got = degrade(a, f, sigma)
    want = block_mean(gaussian_blur(a, sigma), f) if sigma >= 1e-3 else block_mean(a, f)
    r = -(-degrade_reach(f, sigma) // f)  # the edges differ by how far the blur reflects
    np.testing.assert_allclose(got[:, r:-r or None, r:-r or None], want[:, r:-r or None, r:-r or None], rtol=1e-5, atol=1e-2)


def test_degrade_bands_applies_each_bands_blur():
    a = np.random.default_rng(3).uniform(0, 1000, (3, 24, 24)).astype(np.float32)
    got = degrade_bands(a, 2, (0.5, 1.0, 0.5))
    for i, s in enumerate((0.5, 1.0, 0.5)):
        np.testing.assert_array_equal(got[i], degrade(a[i : i + 1], 2, s)[0])
    with pytest.raises(ValueError, match="3 bands"):
        degrade_bands(a, 2, (0.5,))
