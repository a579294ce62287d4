import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import s2sr
from s2sr.api import sensor_model_of
from s2sr.bands import BANDS_20M, BANDS_60M
from s2sr.refine import Fusion, fuse, highpass, project, projection_reach, regression_detail, usable_coarse
from s2sr.resample import degrade, degrade_bands, upsample


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), factor=st.sampled_from([2, 6]), wide=st.booleans())
def test_one_projection_step_reproduces_the_coarse_band(seed, factor, wide):
    """Under the paper's kernel and under the sensor's (a blur of 0.75 px at x2, 2.3 px at x6) alike."""
    rng = np.random.default_rng(seed)
    sigma = (0.75 if factor == 2 else 2.3) if wide else None
    coarse = rng.uniform(500, 3000, (2, 12, 12)).astype(np.float32)
    estimate = upsample(coarse, factor) + rng.normal(0, 200, (2, 12 * factor, 12 * factor)).astype(np.float32)
    before = np.sqrt(((degrade(estimate, factor, sigma) - coarse) ** 2).mean())
    after = degrade(project(estimate, coarse, factor, 1, sigma), factor, sigma) - coarse
    inner = after[:, 3:-3, 3:-3]  # away from the mirrored edge, as a tile border guarantees
    assert np.sqrt((inner**2).mean()) < 0.01 * before


@pytest.mark.parametrize("sigma", [None, 2.3, 4.0])
def test_projection_reach_covers_what_one_pixel_depends_on(sigma):
    rng = np.random.default_rng(1)
    coarse = rng.uniform(500, 3000, (1, 30, 30)).astype(np.float32)
    estimate = upsample(coarse, 6)
    changed = estimate.copy()
    changed[0, 90, 90] += 1000.0
    diff = np.abs(project(changed, coarse, 6, 1, sigma) - project(estimate, coarse, 6, 1, sigma))[0]
    rows, cols = np.nonzero(diff > 1e-3)
    reach = projection_reach(6, 1, sigma)
    assert np.abs(rows - 90).max() <= reach and np.abs(cols - 90).max() <= reach


def test_regression_detail_recovers_a_linear_band_and_refuses_a_constant():
    rng = np.random.default_rng(2)
    predictors = upsample(rng.uniform(500, 3000, (4, 40, 40)).astype(np.float32), 2) + rng.normal(0, 50, (4, 80, 80)).astype(np.float32)
    fine = 0.5 * predictors[0] - 0.2 * predictors[3] + 300
    coarse = degrade(fine[None], 2)
    usable = np.ones(coarse.shape[1:], bool)
    detail = regression_detail(predictors, coarse, 2, usable)
    np.testing.assert_allclose(detail[0], highpass(fine[None], 2)[0], atol=2.0)
    assert not regression_detail(np.full_like(predictors, 100.0), coarse, 2, usable).any()
    assert not regression_detail(predictors, coarse, 2, np.zeros_like(usable)).any()  # nothing valid: bicubic


def test_usable_pixels_of_an_all_valid_window_are_the_unsaturated_ones():
    saturated = np.zeros((2, 6, 6), bool)
    saturated[1, 2, 3] = True
    valid = np.ones((6, 6), bool)
    valid[0, 0] = False
    usable = usable_coarse(np.ones((12, 12), bool), saturated, valid, 2)
    assert usable.sum() == 34 and not usable[2, 3] and not usable[0, 0]


def test_usable_pixels_exclude_nodata_and_saturation():
    valid_fine = np.ones((12, 12), bool)
    valid_fine[0, 0] = False
    saturated = np.zeros((2, 6, 6), bool)
    saturated[1, 5, 5] = True
    usable = usable_coarse(valid_fine, saturated, np.ones((6, 6), bool), 2)
    assert not usable[0, 0] and not usable[5, 5] and usable.sum() == 34


def test_fusion_weights():
    net, bic, det = np.full((1, 2, 2), 10.0), np.full((1, 2, 2), 4.0), np.full((1, 2, 2), 2.0)
    assert fuse(net, bic, det, Fusion(1.0))[0, 0, 0] == 10
    assert fuse(net, bic, det, Fusion(0.0))[0, 0, 0] == 6
    assert fuse(net, bic, det, Fusion(0.25))[0, 0, 0] == pytest.approx(7.0)
    assert Fusion.from_dict({"net_weight": 0.5, "chosen_on": ["x"]}) == Fusion(0.5)


def test_a_weight_by_blur_is_read_at_the_products_blur():
    table = Fusion(projection_steps=1, by_blur=((0.2, 0.0), (1.2, 0.6), (2.2, 1.0)))
    assert table.at_blur(0.1) == Fusion(0.0, 1)  # sharper than the table: its first weight
    assert table.at_blur(0.7) == Fusion(0.3, 1)  # linear between the pairs
    assert table.at_blur(1.7) == Fusion(0.8, 1)
    assert table.at_blur(3.0) == Fusion(1.0, 1)  # blurrier: its last
    assert Fusion(0.5).at_blur(2.0) == Fusion(0.5)  # a single weight holds at every blur
    raw = table.to_dict()
    assert "net_weight" not in raw and Fusion.from_dict({**raw, "chosen_on": ["x"]}) == table
    assert table.describe() == "net weight by blur 0 at 0.2 px, 0.6 at 1.2 px, 1 at 2.2 px, 1 projection step"
    for bad in (((1.0, 0.5), (0.5, 0.2)), ((0.5, 1.5),)):
        with pytest.raises(ValueError, match="sigma ascending"):
            Fusion(by_blur=bad)


def test_output_of_a_real_crop_reproduces_its_input_bands(shared_data):
    """Degrading s2sr's output of a real L1C crop gives back the 20 m and 60 m bands it was made from."""
    with np.load(shared_data / "training-crops" / "hvn2_S2S_UCNN_australia.npz") as z:
        b10, b20, b60 = z["im10"][:, :396, :396], z["im20"][:, :198, :198], z["im60"][:, :66, :66]
    model = sensor_model_of(b10, b20, b60)  # what a run estimates and records
    assert {k.source for k in model.kernels} == {"estimated"}
    out = s2sr.superresolve(b10, b20, b60, level="L1C", sensor_model=model)
    off = s2sr.superresolve(b10, b20, b60, level="L1C", consistency=False, sensor_model=model)
    for sr, raw, f, sr_off, bands in ((out.b20, b20, 2, off.b20, BANDS_20M), (out.b60, b60, 6, off.b60, BANDS_60M)):
        err = degrade_bands(sr, f, model.sigmas(bands)) - raw
        err_off = degrade_bands(sr_off, f, model.sigmas(bands)) - raw
        rms, rms_off = np.sqrt((err**2).mean()), np.sqrt((err_off**2).mean())
        assert rms < 1.0, f"x{f}: re-degraded output misses its input by {rms:.2f} DN RMS"
        assert rms_off > 2 * rms  # the flag really turns the projection off


@pytest.mark.parametrize("factor,crop", [(2, 48), (6, 36), (6, 0)])
def test_regression_detail_of_a_crop_is_the_crop_of_the_detail(factor, crop):
    rng = np.random.default_rng(factor)
    predictors = upsample(rng.uniform(500, 3000, (4, 30, 30)).astype(np.float32), 6) + rng.normal(0, 50, (4, 180, 180)).astype(np.float32)
    coarse = degrade(0.4 * predictors[:2] + 100, factor) + rng.normal(0, 5, (2, 180 // factor, 180 // factor)).astype(np.float32)
    usable = np.ones(coarse.shape[1:], bool)
    whole = regression_detail(predictors, coarse, factor, usable)
    part = regression_detail(predictors, coarse, factor, usable, crop)
    # a crop far enough in cuts the inputs before fitting (the window sums then start elsewhere: equal up to
    # float64 rounding, seen as at most a float32 ulp of the detail)
    np.testing.assert_allclose(part, whole[:, crop : 180 - crop, crop : 180 - crop], rtol=0, atol=1e-3)


def test_a_crop_far_in_skips_the_outer_margin_of_the_fit():
    from s2sr.refine import fit_predictors

    predictors = np.random.default_rng(0).uniform(500, 3000, (4, 180, 180)).astype(np.float32)
    usable = np.ones((90, 90), bool)
    assert fit_predictors(predictors, 2, usable, 0).skip == 0
    fit = fit_predictors(predictors, 2, usable, 48)  # fits needed from coarse 20 on, windows reach 12, degrading 1
    assert fit.skip == 7 and fit.weight.shape == (76, 76) and fit.out_shape == (84, 84)


def test_a_fit_shared_by_band_chunks_changes_no_bit():
    """The fit is made once per scale, its planes split into chunks, and the bands fitted in chunks: the same
    bits as one call over everything (the split the array threads make)."""
    from s2sr.refine import fit_predictors

    rng = np.random.default_rng(7)
    predictors = upsample(rng.uniform(500, 3000, (4, 30, 30)).astype(np.float32), 2) + rng.normal(0, 50, (4, 60, 60)).astype(np.float32)
    coarse = degrade(0.3 * predictors[:3] - 0.1 * predictors[3:] + 50, 2) + rng.normal(0, 5, (3, 30, 30)).astype(np.float32)
    usable = rng.random((30, 30)) > 0.1

    def three_chunks(fn, n):
        edges = [0, n // 3, 2 * n // 3, n]
        return np.concatenate([fn(slice(a, b)) for a, b in zip(edges[:-1], edges[1:], strict=True)])

    fit = fit_predictors(predictors, 2, usable, 12, planes=three_chunks)
    split = np.concatenate([fit.detail(coarse[b : b + 1]) for b in range(3)])
    np.testing.assert_array_equal(split, regression_detail(predictors, coarse, 2, usable, 12))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), radius=st.integers(0, 6), h=st.integers(1, 12), w=st.integers(1, 12), inner=st.integers(0, 3))
def test_box_sum_is_the_clipped_window_sum(seed, radius, h, w, inner):
    from s2sr.refine import _box_sum

    a = np.random.default_rng(seed).random((2, h, w))
    inner = min(inner, (h - 1) // 2, (w - 1) // 2)
    got = _box_sum(a, radius, inner)
    times = np.random.default_rng(seed + 1).random((h, w))
    np.testing.assert_array_equal(_box_sum(a, radius, inner, times), _box_sum(a * times, radius, inner))
    for r in range(inner, h - inner):
        for c in range(inner, w - inner):
            window = a[:, max(0, r - radius) : r + radius + 1, max(0, c - radius) : c + radius + 1]
            np.testing.assert_allclose(got[:, r - inner, c - inner], window.sum(axis=(1, 2)), rtol=1e-9, atol=1e-9)


def test_spd_solve_matches_numpy():
    from s2sr.refine import _cholesky, _solve_cholesky

    rng = np.random.default_rng(0)
    m = rng.random((50, 4, 4))
    a = m @ m.transpose(0, 2, 1) + 0.1 * np.eye(4)  # (pixels, 4, 4), symmetric positive definite
    rhs = rng.random((3, 4, 50))  # (bands, p, pixels)
    lower = [[a[:, k, j] for j in range(k + 1)] for k in range(4)]
    got = _solve_cholesky(_cholesky(lower), rhs)
    want = np.linalg.solve(a[None], rhs.transpose(0, 2, 1)[..., None])[..., 0].transpose(0, 2, 1)
    np.testing.assert_allclose(got, want, rtol=1e-9)
