import numpy as np
import pytest

import s2sr
from s2sr.resample import upsample


def _arrays(h, w, seed=0):
    rng = np.random.default_rng(seed)
    b10 = rng.integers(100, 4000, (4, h, w)).astype(np.uint16)
    b20 = rng.integers(100, 4000, (6, h // 2, w // 2)).astype(np.uint16)
    b60 = rng.integers(100, 4000, (2, h // 6, w // 6)).astype(np.uint16)
    return b10, b20, b60


@pytest.mark.parametrize("h,w", [(6, 6), (12, 42), (96, 60)])
def test_shapes_and_types(h, w, tiny_weights):
    b10, b20, b60 = _arrays(h, w)
    out = s2sr.superresolve(b10, b20, b60, level="L1C", weights_dir=tiny_weights)
    assert out.b20.shape == (6, h, w) and out.b60.shape == (2, h, w)
    assert out.b20.dtype == np.float32 and out.b60.dtype == np.float32
    assert s2sr.superresolve(b10, b20, weights_dir=tiny_weights).b60 is None


def test_untrained_nets_return_bicubic_inside(tiny_weights):
    b10, b20, b60 = _arrays(60, 60)
    out = s2sr.superresolve(b10, b20, b60, weights_dir=tiny_weights, consistency=False)
    inner = slice(12, 48)
    np.testing.assert_allclose(out.b20[:, inner, inner], upsample(b20, 2)[:, inner, inner], rtol=1e-5, atol=0.05)
    np.testing.assert_allclose(out.b60[:, inner, inner], upsample(b60, 6)[:, inner, inner], rtol=1e-5, atol=0.05)


def test_tiling_does_not_change_the_result(tiny_weights):
    b10, b20, b60 = _arrays(72, 84, seed=3)
    whole = s2sr.superresolve(b10, b20, b60, weights_dir=tiny_weights, tile_size=504)
    tiled = s2sr.superresolve(b10, b20, b60, weights_dir=tiny_weights, tile_size=24)
    np.testing.assert_allclose(tiled.b20, whole.b20, atol=0.05)
    np.testing.assert_allclose(tiled.b60, whole.b60, atol=0.05)


def test_nodata_stays_nodata_and_does_not_smear(tiny_weights):
    b10, b20, b60 = _arrays(60, 60, seed=1)
    b10[:, :, 30:] = 0
    b20[:, :, 15:] = 0
    b60[:, :, 5:] = 0
    out = s2sr.superresolve(b10, b20, b60, weights_dir=tiny_weights)
    assert (out.b20[:, :, 30:] == 0).all() and (out.b60[:, :, 30:] == 0).all()
    assert (out.b20[:, :, :30] != 0).mean() > 0.99  # valid pixels are kept (bicubic may overshoot noise)
    ref = s2sr.superresolve(*[a.copy() for a in _arrays(60, 60, seed=1)], weights_dir=tiny_weights)
    # pixels far from the edge are untouched by the nodata beyond it
    np.testing.assert_allclose(out.b20[:, :, :6], ref.b20[:, :, :6], rtol=0.02)


@pytest.mark.parametrize(
    "shapes,match",
    [
        (((4, 10, 12), (6, 5, 6), None), "multiples of 6"),
        (((3, 12, 12), (6, 6, 6), None), r"b10 must have shape \(4, H, W\)"),
        (((4, 12, 12), (6, 5, 6), None), r"b20 must have shape \(6, 6, 6\)"),
        (((4, 12, 12), (6, 6, 6), (2, 3, 2)), r"b60 must have shape \(2, 2, 2\)"),
    ],
)
def test_bad_shapes_are_value_errors(shapes, match, tiny_weights):
    arrays = [None if s is None else np.ones(s, np.uint16) for s in shapes]
    with pytest.raises(ValueError, match=match):
        s2sr.superresolve(*arrays, weights_dir=tiny_weights)


def test_bad_level(tiny_weights):
    b10, b20, b60 = _arrays(6, 6)
    with pytest.raises(ValueError, match="level must be 'L1C' or 'L2A'"):
        s2sr.superresolve(b10, b20, b60, level="L3", weights_dir=tiny_weights)
