"""Quality metrics of the super-resolution literature, on band-first arrays in reflectance x 10000.

RMSE and SRE (Lanaras et al. 2018), SAM in degrees, UIQ (Wang and Bovik 2002, computed over the whole
band rather than in sliding windows) and ERGAS (Wald 2000, with the pixel-size ratio 1/scale).
Pixels where the target is nodata (0) are left out of every metric.
"""

from __future__ import annotations

import numpy as np


def _valid(target: np.ndarray) -> np.ndarray:
    return np.all(target != 0, axis=0)  # 0 is nodata; offset products hold real negative values


def per_band(pred: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """RMSE, SRE (dB) and UIQ per band."""
    m = _valid(target)
    p = pred[:, m].astype(np.float64)
    t = target[:, m].astype(np.float64)
    mse = ((p - t) ** 2).mean(axis=1)
    rmse = np.sqrt(mse)
    sre = 10 * np.log10((t.mean(axis=1) ** 2) / np.maximum(mse, 1e-12))
    mp, mt = p.mean(axis=1), t.mean(axis=1)
    vp, vt = p.var(axis=1), t.var(axis=1)
    cov = ((p - mp[:, None]) * (t - mt[:, None])).mean(axis=1)
    uiq = 4 * cov * mp * mt / np.maximum((vp + vt) * (mp**2 + mt**2), 1e-12)
    return {"rmse": rmse, "sre": sre, "uiq": uiq}


def sam_degrees(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean spectral angle between predicted and true pixel spectra."""
    m = _valid(target)
    p = pred[:, m].astype(np.float64)
    t = target[:, m].astype(np.float64)
    cos = (p * t).sum(axis=0) / np.maximum(np.linalg.norm(p, axis=0) * np.linalg.norm(t, axis=0), 1e-12)
    return float(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean())


def ergas(pred: np.ndarray, target: np.ndarray, scale: int) -> float:
    m = _valid(target)
    t = target[:, m].astype(np.float64)
    rmse = per_band(pred, target)["rmse"]
    return float(100.0 / scale * np.sqrt(np.mean((rmse / np.maximum(t.mean(axis=1), 1e-12)) ** 2)))


def interval_scores(err: np.ndarray, half: np.ndarray) -> dict[str, float]:
    """How well one band's intervals hold, over its valid pixels (``err`` = |output - truth|, ``half`` = each
    pixel's half-width): coverage (share with err <= half), informativeness (mean err of the widest 10 % of
    intervals over that of the narrowest 50 %: a constant interval scores 1) and sharpness (mean half-width over
    the 90th percentile of err: a constant interval calibrated on the truth scores 1)."""
    order = np.argsort(half, kind="stable")
    n = len(order)
    narrow, wide = err[order[: n // 2]], err[order[n - max(1, n // 10):]]
    return {"coverage": float(np.mean(err <= half)), "informativeness": float(wide.mean() / max(narrow.mean(), 1e-9)),
            "sharpness": float(half.mean() / max(np.quantile(err, 0.9), 1e-9)), "pixels": n}


def band_interval_scores(pred: np.ndarray, target: np.ndarray, half: np.ndarray) -> list[dict[str, float]]:
    """:func:`interval_scores` of every band, over the pixels where the target holds data."""
    m = _valid(target)
    return [interval_scores(np.abs(p[m].astype(np.float64) - t[m]), h[m]) for p, t, h in zip(pred, target, half, strict=True)]


def summary(pred: np.ndarray, target: np.ndarray, scale: int) -> dict[str, object]:
    """Every metric, per band and overall (overall RMSE pools all bands' squared errors)."""
    bands = per_band(pred, target)
    m = _valid(target)
    overall_rmse = float(np.sqrt(((pred[:, m].astype(np.float64) - target[:, m]) ** 2).mean()))
    return {
        "rmse": overall_rmse,
        "sre": float(bands["sre"].mean()),
        "uiq": float(bands["uiq"].mean()),
        "sam": sam_degrees(pred, target),
        "ergas": ergas(pred, target, scale),
        "per_band": {k: [float(x) for x in v] for k, v in bands.items()},
    }
