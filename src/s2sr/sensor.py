"""The sensor model: how each coarse band relates to the 10 m grid, one value per band.

Every stage that degrades a band to a coarser grid (the regression's predictors and detail, the consistency
projection, training, evaluation) takes its kernel from here instead of assuming one. The kernel is a
Gaussian of ``sigma`` fine (10 m) pixels followed by the ``factor x factor`` mean of the coarse pixel
(:func:`s2sr.resample.degrade`). Three sources:

- ``paper``: Lanaras et al.'s Wald protocol, sigma = 1/factor for every band (at x6 almost a pure box);
- ``mtf``: the documented MTF of Sentinel-2 MSI at Nyquist per band (the figures the MTF-matched Wald
  protocol of the pansharpening literature uses), turned into the Gaussian whose gain at the coarse grid's
  Nyquist frequency, with the box, is ``MTF^(1 - 1/factor^2)``;
- ``estimated``: measured on the scene itself (:mod:`s2sr.blur`), the ``mtf`` kernel where it cannot be.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .bands import BANDS_20M, BANDS_60M

#: Sentinel-2 MSI modulation transfer function at each band's own Nyquist frequency (documented figures).
MTF_NYQUIST: dict[str, float] = {
    "B1": 0.3175, "B2": 0.275, "B3": 0.28, "B4": 0.25, "B5": 0.365, "B6": 0.33, "B7": 0.34, "B8": 0.24,
    "B8A": 0.32, "B9": 0.295, "B11": 0.205, "B12": 0.235,
}
#: The scale at which each super-resolved band is modelled: its pixel in 10 m pixels.
FACTOR: dict[str, int] = {**{b: 2 for b in BANDS_20M}, **{b: 6 for b in BANDS_60M}}
#: The widest blur a run may assume, per factor (fine pixels): estimates are clamped to it, and tile borders
#: are sized for the blur a run actually uses, so a narrower one costs nothing extra.
MAX_SIGMA: dict[int, float] = {2: 1.5, 6: 4.0}
#: Kernel protocols of evaluation and training: the paper's, or each band's documented MTF.
PROTOCOLS = ("paper", "sensor")
#: Bands whose regression shares one predictor fit (at their mean blur): red edge and NIR, SWIR, 60 m.
GROUPS: tuple[tuple[str, ...], ...] = (BANDS_20M[:4], BANDS_20M[4:], BANDS_60M)


def mtf_sigma(band: str, factor: int) -> float:
    """Gaussian sigma (in the band's own pixels) that, with the ``factor x factor`` mean, passes
    ``MTF_NYQUIST[band]^(1 - 1/factor^2)`` at the new Nyquist frequency, 1/(2 factor) cycles per pixel.

    A Gaussian's MTF is ``exp(-2 pi^2 sigma^2 f^2)``; the box passes ``2/pi`` at that frequency.
    """
    target = MTF_NYQUIST[band] ** (1.0 - 1.0 / factor**2) * math.pi / 2
    return factor / math.pi * math.sqrt(-2.0 * math.log(target))


def protocol_sigma(band: str, factor: int, protocol: str) -> float:
    """The blur of Wald's protocol for one band degraded by ``factor``: the paper's or the sensor's."""
    if protocol == "paper":
        return 1.0 / factor
    if protocol == "sensor":
        return mtf_sigma(band, factor)
    raise ValueError(f"kernel protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")


@dataclass(frozen=True)
class BandKernel:
    """The degradation from the 10 m grid to one band's grid: Gaussian ``sigma`` fine pixels, then the mean."""

    band: str
    factor: int
    sigma: float
    source: str  # "paper", "mtf" or "estimated"

    def to_dict(self) -> dict:
        return {"band": self.band, "factor": self.factor, "sigma_px": round(self.sigma, 4), "source": self.source}


@dataclass(frozen=True)
class SensorModel:
    """One :class:`BandKernel` per super-resolved band (B5..B12, then B1, B9): the blur every stage assumes."""

    kernels: tuple[BandKernel, ...]

    @classmethod
    def paper(cls) -> SensorModel:
        return cls(tuple(BandKernel(b, f, 1.0 / f, "paper") for b, f in FACTOR.items()))

    @classmethod
    def documented(cls) -> SensorModel:
        return cls(tuple(BandKernel(b, f, mtf_sigma(b, f), "mtf") for b, f in FACTOR.items()))

    @classmethod
    def from_sigmas(cls, sigmas: dict[str, float], source: str = "estimated") -> SensorModel:
        """The documented model with the given bands' blur replaced (clamped to ``MAX_SIGMA``)."""
        base = {k.band: k for k in cls.documented().kernels}
        for band, sigma in sigmas.items():
            f = FACTOR[band]
            base[band] = BandKernel(band, f, min(max(float(sigma), 0.0), MAX_SIGMA[f]), source)
        return cls(tuple(base[b] for b in FACTOR))

    def kernel(self, band: str) -> BandKernel:
        for k in self.kernels:
            if k.band == band:
                return k
        raise KeyError(band)

    def sigmas(self, bands: tuple[str, ...]) -> tuple[float, ...]:
        return tuple(self.kernel(b).sigma for b in bands)

    def fit_groups(self, bands: tuple[str, ...]) -> list[tuple[float, list[int]]]:
        """(mean blur, indices into ``bands``) of each :data:`GROUPS` member present: the regression fits its
        predictors once per group (each fit costs a pass over the tile), the projection takes each band's own."""
        out = []
        for group in GROUPS:
            idx = [i for i, b in enumerate(bands) if b in group]
            if idx:
                out.append((sum(self.kernel(bands[i]).sigma for i in idx) / len(idx), idx))
        return out

    def max_sigma(self, factor: int) -> float:
        return max(k.sigma for k in self.kernels if k.factor == factor)

    def to_dict(self) -> dict:
        """What the GeoTIFF tags and the STAC Item record: per band, sigma in 10 m pixels and its source."""
        return {k.band: {"factor": k.factor, "sigma_px": round(k.sigma, 4), "source": k.source} for k in self.kernels}

    def describe(self) -> str:
        """One line for people, e.g. ``B5 0.62 (estimated), ...`` (the tags hold :meth:`to_dict`)."""
        return ", ".join(f"{k.band} {k.sigma:.2f} ({k.source})" for k in self.kernels)
