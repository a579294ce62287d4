import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from s2sr.resample import block_mean, degrade, gaussian_blur, nearest_upsample, upsample, upsample_inner


def test_upsample_keeps_constants_and_shapes():
    a = np.full((2, 5, 7), 1234.0, np.float32)
    for f in (2, 6):
        out = upsample(a, f)
        assert out.shape == (2, 5 * f, 7 * f)
        np.testing.assert_allclose(out, 1234.0, rtol=1e-6)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 1000), f=st.sampled_from([2, 6]), off=st.integers(2, 6))
def test_upsample_of_a_window_is_the_crop_of_the_upsampled_whole(seed, f, off):
    """Windows on the coarse grid upsample to exactly the matching crop (away from the window edge)."""
    a = np.random.default_rng(seed).random((1, 20, 20)).astype(np.float32)
    whole = upsample(a, f)
    part = upsample(a[:, off : off + 10, off : off + 10], f)
    inner = slice(2 * f, 8 * f)
    np.testing.assert_allclose(part[:, inner, inner], whole[:, off * f + 2 * f : off * f + 8 * f, off * f + 2 * f : off * f + 8 * f], rtol=1e-5)


def test_block_mean_inverts_nearest_upsample_and_degrade_shape():
    a = np.random.default_rng(0).random((3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(block_mean(nearest_upsample(a, 6), 6), a, rtol=1e-6)
    assert degrade(np.ones((2, 12, 18), np.float32), 6).shape == (2, 2, 3)


def test_gaussian_blur_preserves_mean_of_constant():
    np.testing.assert_allclose(gaussian_blur(np.full((1, 9, 9), 5.0, np.float32), 0.5), 5.0, rtol=1e-6)


def _upsample_by_index(a: np.ndarray, factor: int, axes: tuple[int, ...] = (-2, -1)) -> np.ndarray:
    """The textbook form of bicubic upsampling: every output pixel gathers its four taps per axis."""
    from s2sr.resample import _cubic

    out = a.astype(np.float32)
    for axis in (a.ndim + i for i in axes):
        n = out.shape[axis]
        x = (np.arange(n * factor) + 0.5) / factor - 0.5
        base = np.floor(x).astype(int)
        acc = None
        for k in (-1, 0, 1, 2):
            w = _cubic(x - base - k).astype(np.float32)
            shape = [1] * out.ndim
            shape[axis] = -1
            term = np.take(out, np.clip(base + k, 0, n - 1), axis=axis) * w.reshape(shape)
            acc = term if acc is None else acc + term
        out = acc
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), f=st.sampled_from([2, 6]), h=st.integers(1, 13), w=st.integers(1, 13))
def test_phase_wise_upsampling_equals_the_gather_form(seed, f, h, w):
    """Rows phase by phase: bit for bit. Columns as a small matrix product: within float32 rounding."""
    from s2sr.resample import _upsample_rows

    a = np.random.default_rng(seed).random((2, h, w)).astype(np.float32) * 4000
    np.testing.assert_array_equal(_upsample_rows(a, f), _upsample_by_index(a, f, axes=(-2,)))
    np.testing.assert_allclose(upsample(a, f), _upsample_by_index(a, f), rtol=1e-6, atol=1e-3)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), f=st.sampled_from([2, 6]), cut=st.integers(1, 11))
def test_upsampling_split_over_bands_or_rows_changes_no_bit(seed, f, cut):
    """The array threads split bands, and tiles split rows: every output pixel must come out the same."""
    a = np.random.default_rng(seed).random((3, 12, 17)).astype(np.float32) * 4000
    whole = upsample(a, f)
    np.testing.assert_array_equal(np.concatenate([upsample(a[:1], f), upsample(a[1:], f)]), whole)
    from s2sr.resample import _upsample_columns

    fine_rows = np.random.default_rng(seed).random((2, 40, 17)).astype(np.float32) * 4000
    np.testing.assert_array_equal(np.concatenate([_upsample_columns(fine_rows[:, :cut], f),
                                                  _upsample_columns(fine_rows[:, cut:], f)], axis=1),
                                  _upsample_columns(fine_rows, f))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), f=st.sampled_from([2, 6]), h=st.integers(1, 5), w=st.integers(1, 5))
def test_degrade_is_the_blur_then_the_block_mean(seed, f, h, w):
    a = np.random.default_rng(seed).random((2, h * f, w * f)).astype(np.float32) * 4000
    np.testing.assert_allclose(degrade(a, f), block_mean(gaussian_blur(a, 1.0 / f), f), rtol=1e-5, atol=1e-3)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), f=st.sampled_from([2, 6]), h=st.integers(3, 14), w=st.integers(3, 14), cut=st.integers(0, 40))
def test_upsample_inner_is_the_inner_part_of_the_upsampling_bit_for_bit(seed, f, h, w, cut):
    a = np.random.default_rng(seed).uniform(0, 5000, (2, h, w)).astype(np.float32)
    cut = min(cut, (h * f - 1) // 2, (w * f - 1) // 2)
    whole = upsample(a, f)
    np.testing.assert_array_equal(upsample_inner(a, f, cut), whole[:, cut : h * f - cut, cut : w * f - cut])
