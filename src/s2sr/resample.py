"""Pure-numpy resampling by integer factors on pixel-centre-aligned grids.

Windows are aligned to the 60 m grid, so upsampling a window by ``s`` gives exactly the matching crop of
the upsampled whole (away from the window's edge, which the context border absorbs).
"""

from __future__ import annotations

import numpy as np


def _cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (a = -0.5, the usual 'bicubic')."""
    t = np.abs(t)
    t2, t3 = t * t, t * t * t
    near = (a + 2) * t3 - (a + 3) * t2 + 1
    far = a * t3 - 5 * a * t2 + 8 * a * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _upsample_axis(a: np.ndarray, factor: int, axis: int) -> np.ndarray:
    n = a.shape[axis]
    x = (np.arange(n * factor) + 0.5) / factor - 0.5
    base = np.floor(x).astype(np.int64)
    frac = x - base
    out = None
    for k in (-1, 0, 1, 2):
        idx = np.clip(base + k, 0, n - 1)
        w = _cubic(frac - k).astype(a.dtype)
        shape = [1] * a.ndim
        shape[axis] = -1
        term = np.take(a, idx, axis=axis) * w.reshape(shape)
        out = term if out is None else out + term
    return out


def upsample(a: np.ndarray, factor: int) -> np.ndarray:
    """Bicubic upsampling of the last two axes by an integer factor (edges replicated)."""
    if factor == 1:
        return a.astype(np.float32, copy=True)
    a = a.astype(np.float32, copy=False)
    return _upsample_axis(_upsample_axis(a, factor, a.ndim - 2), factor, a.ndim - 1)


def nearest_upsample(a: np.ndarray, factor: int) -> np.ndarray:
    """Pixel replication along the last two axes (for masks)."""
    return np.repeat(np.repeat(a, factor, axis=-2), factor, axis=-1)


def block_mean(a: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor x factor`` blocks of the last two axes (shapes must divide)."""
    *lead, h, w = a.shape
    if h % factor or w % factor:
        raise ValueError(f"shape {h}x{w} is not divisible by {factor}")
    return a.reshape(*lead, h // factor, factor, w // factor, factor).mean(axis=(-3, -1), dtype=np.float64).astype(
        np.float32
    )


def separable_filter(a: np.ndarray, kernel: np.ndarray, mode: str = "reflect") -> np.ndarray:
    """Convolve the last two axes with a symmetric 1-D kernel of odd length; edges padded by ``mode``."""
    radius = len(kernel) // 2
    out = a.astype(np.float32, copy=False)
    for axis in (a.ndim - 2, a.ndim - 1):
        pad = [(0, 0)] * a.ndim
        pad[axis] = (radius, radius)
        p = np.pad(out, pad, mode=mode)
        n = out.shape[axis]
        acc = np.zeros_like(out)
        for i, k in enumerate(kernel):
            acc += k * np.take(p, np.arange(i, i + n), axis=axis)
        out = acc
    return out


def gaussian_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of the last two axes, edges reflected."""
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return separable_filter(a, (kernel / kernel.sum()).astype(np.float32), "reflect")


def degrade(a: np.ndarray, factor: int) -> np.ndarray:
    """Wald's protocol degradation: blur with sigma = 1/factor (high-res pixels), then block mean."""
    return block_mean(gaussian_blur(a, 1.0 / factor), factor)
