import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from s2sr.bands import BANDS_20M, BANDS_60M
from s2sr.blur import estimate_sensor_model, estimation_windows
from s2sr.resample import degrade, upsample
from s2sr.sensor import mtf_sigma


@given(h=st.integers(36, 12000), w=st.integers(36, 12000))
def test_estimation_windows_are_fixed_aligned_and_inside(h, w):
    h, w = h // 6 * 6, w // 6 * 6
    windows = estimation_windows(h, w)
    assert windows == estimation_windows(h, w)
    for win in windows:
        assert win.row >= 0 and win.col >= 0 and win.row_stop <= h and win.col_stop <= w
        assert win.row % 6 == win.col % 6 == win.height % 6 == win.width % 6 == 0
    assert len(windows) in (0, 1, 9)


def _scene(seed: int, size: int = 360):
    """Fine bands with texture at every scale (not a real scene: the structure of one)."""
    rng = np.random.default_rng(seed)
    fine = sum(upsample(rng.normal(0, 400 / k, (4, size // k, size // k)).astype(np.float32), k) for k in (1, 2, 3, 6, 12))
    mix = rng.uniform(-0.5, 1.0, (8, 4)).astype(np.float32)
    return fine + 2000, mix


def _windows(fine, mix, sigma2, sigma_swir, sigma6, noise=2.0, seed=0):
    rng = np.random.default_rng(seed)
    z = np.einsum("bk,khw->bhw", mix, fine)
    c20 = np.concatenate([degrade(z[:4], 2, sigma2), degrade(z[4:6], 2, sigma_swir)])
    c60 = degrade(z[6:], 6, sigma6)
    c20 += rng.normal(0, noise, c20.shape).astype(np.float32)
    c60 += rng.normal(0, noise, c60.shape).astype(np.float32)
    return [{2: (fine, c20, np.ones(c20.shape[1:], bool)), 6: (fine, c60, np.ones(c60.shape[1:], bool))}]


@pytest.mark.parametrize("sigma2,sigma6", [(0.5, 1 / 6), (0.8, 2.3), (0.3, 3.0)])
def test_the_blur_a_scene_was_made_with_is_found(sigma2, sigma6):
    fine, mix = _scene(1)
    model = estimate_sensor_model(_windows(fine, mix, sigma2, sigma2, sigma6))
    for band in BANDS_20M:
        assert model.kernel(band).source == "estimated"
        assert model.kernel(band).sigma == pytest.approx(sigma2, abs=0.1)
    for band in BANDS_60M:
        assert model.kernel(band).sigma == pytest.approx(sigma6, abs=0.35)


def test_swir_is_bounded_by_the_red_edge_and_the_documented_ratio():
    fine, mix = _scene(2)
    model = estimate_sensor_model(_windows(fine, mix, 0.5, 1.4, 2.3))
    base = np.mean(model.sigmas(BANDS_20M[:4]))
    doc = np.mean([mtf_sigma(b, 2) for b in BANDS_20M[:4]])
    for band in BANDS_20M[4:]:  # made with 1.4 px, found at the upper bound
        assert model.kernel(band).sigma == pytest.approx(base * mtf_sigma(band, 2) / doc)


def test_a_scene_without_texture_keeps_the_documented_kernels():
    fine = np.full((4, 360, 360), 1500.0, np.float32)
    windows = [{2: (fine, np.full((6, 180, 180), 800.0, np.float32), np.ones((180, 180), bool)),
                6: (fine, np.full((2, 60, 60), 900.0, np.float32), np.ones((60, 60), bool))}]
    model = estimate_sensor_model(windows)
    assert {k.source for k in model.kernels} == {"mtf"}
    assert model.kernel("B1").sigma == pytest.approx(mtf_sigma("B1", 6))


def test_too_few_usable_pixels_keep_the_documented_kernels():
    fine, mix = _scene(3, 72)
    (groups,) = _windows(fine, mix, 0.8, 0.8, 2.3)
    windows = [{k: (f, c, np.zeros_like(u)) for k, (f, c, u) in groups.items()}]
    assert {k.source for k in estimate_sensor_model(windows).kernels} == {"mtf"}


def test_b1_and_b9_share_one_blur_in_the_documented_ratio():
    """A band the 10 m bands predict poorly (here B9, with strong noise of its own) cannot pull its blur off
    on its own: B1 and B9 get one estimate from their pooled curve, spread by the documented MTF ratio."""
    fine, mix = _scene(4)
    (groups,) = _windows(fine, mix, 0.5, 0.5, 2.3)
    c60 = groups[6][1].copy()
    c60[1] += np.random.default_rng(9).normal(0, 150, c60[1].shape).astype(np.float32)
    model = estimate_sensor_model([{**groups, 6: (groups[6][0], c60, groups[6][2])}])
    b1, b9 = model.sigmas(BANDS_60M)
    assert b9 / b1 == pytest.approx(mtf_sigma("B9", 6) / mtf_sigma("B1", 6))
    assert (b1 + b9) / 2 == pytest.approx(2.3, abs=0.35)
