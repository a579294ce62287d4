import os
import subprocess
import sys

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

    def bicubic(a, f):  # floored at 1 DN, as every output is (``inference.REFLECTANCE_FLOOR_DN``)
        return np.maximum(upsample(a, f), 1)[:, inner, inner]

    np.testing.assert_allclose(out.b20[:, inner, inner], bicubic(b20, 2), rtol=1e-5, atol=0.05)
    np.testing.assert_allclose(out.b60[:, inner, inner], bicubic(b60, 6), rtol=1e-5, atol=0.05)


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
def test_bad_shapes_are_s2sr_errors_and_value_errors(shapes, match, tiny_weights):
    arrays = [None if s is None else np.ones(s, np.uint16) for s in shapes]
    with pytest.raises(s2sr.InputParametersError, match=match) as caught:
        s2sr.superresolve(*arrays, weights_dir=tiny_weights)
    assert isinstance(caught.value, s2sr.S2srError) and isinstance(caught.value, ValueError)


@pytest.mark.parametrize("options", [{"tile_size": 7}, {"sensor_model": "gaussian"}, {"precision": "half"},
                                     {"device": "tpu"}, {"level": "L3"}, {"adapt_steps": -1}])
def test_every_bad_option_is_an_s2sr_error(options, tiny_weights):
    with pytest.raises(s2sr.S2srError):
        s2sr.superresolve(*_arrays(12, 12), weights_dir=tiny_weights, **options)


def test_reflectance_is_never_negative(tiny_weights, monkeypatch):
    """Dark water beside a bright shore: bicubic upsampling and the projection undershoot on the dark side."""
    from s2sr import inference

    b10 = np.full((4, 72, 72), 3000, np.uint16)
    b10[:, :, :36] = 30
    b20 = np.full((6, 36, 36), 5000, np.uint16)
    b20[:, :, :18] = 5
    b60 = np.full((2, 12, 12), 4000, np.uint16)
    b60[:, :, :6] = 5
    out = s2sr.superresolve(b10, b20, b60, weights_dir=tiny_weights, adapt_steps=0)
    assert out.b20.min() >= 1 and out.b60.min() >= 1  # the files' floor: DN 0 is nodata
    monkeypatch.setattr(inference, "REFLECTANCE_FLOOR_DN", -np.inf)
    unfloored = s2sr.superresolve(b10, b20, b60, weights_dir=tiny_weights, adapt_steps=0)
    assert unfloored.b20.min() < 0  # what the floor lifts: the test can fail
    np.testing.assert_array_equal(np.maximum(unfloored.b20, 1), out.b20)  # pointwise, the last step


def test_the_library_keeps_tensorflow_quiet(tiny_weights):
    code = ("import numpy as np, s2sr, sys\n"
            "for n in (12, 24, 36):\n"
            "    s2sr.superresolve(np.full((4, 6 * n, 6 * n), 900), np.full((6, 3 * n, 3 * n), 900), "
            "np.full((2, n, n), 900), weights_dir=sys.argv[1], adapt_steps=0)\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", code, str(tiny_weights)], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no absl INFO lines, no retracing warnings


def test_bad_level(tiny_weights):
    b10, b20, b60 = _arrays(6, 6)
    with pytest.raises(ValueError, match="level must be 'L1C' or 'L2A'"):
        s2sr.superresolve(b10, b20, b60, level="L3", weights_dir=tiny_weights)
