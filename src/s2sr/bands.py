"""Sentinel-2 MSI band facts: names, native resolutions, wavelengths and the orders the nets use."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Band:
    """One MSI band: its name, product band_id (0..12), native ground sampling and centre wavelength."""

    name: str
    band_id: int
    resolution: int
    wavelength_nm: int


BANDS: dict[str, Band] = {
    b.name: b
    for b in (
        Band("B1", 0, 60, 443),
        Band("B2", 1, 10, 490),
        Band("B3", 2, 10, 560),
        Band("B4", 3, 10, 665),
        Band("B5", 4, 20, 705),
        Band("B6", 5, 20, 740),
        Band("B7", 6, 20, 783),
        Band("B8", 7, 10, 842),
        Band("B8A", 8, 20, 865),
        Band("B9", 9, 60, 945),
        Band("B10", 10, 60, 1375),
        Band("B11", 11, 20, 1610),
        Band("B12", 12, 20, 2190),
    )
}

#: Input orders of the DSen2 nets (and of the array API).
BANDS_10M: tuple[str, ...] = ("B2", "B3", "B4", "B8")
BANDS_20M: tuple[str, ...] = ("B5", "B6", "B7", "B8A", "B11", "B12")
BANDS_60M: tuple[str, ...] = ("B1", "B9")

#: Output band order: spectral order, B10 dropped (cirrus band, no surface information).
OUTPUT_BANDS: tuple[str, ...] = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")
SUPERRESOLVED_BANDS: frozenset[str] = frozenset(BANDS_20M + BANDS_60M)

#: DN of pixels outside the swath / footprint, and of saturated pixels, in every product.
NODATA_DN = 0
SATURATED_DN = 65535


def file_token(name: str) -> str:
    """Band token as SAFE file names spell it: B1 -> B01, B8A -> B8A."""
    return name if name == "B8A" else f"B{int(name[1:]):02d}"


def description(name: str) -> str:
    """GeoTIFF band description, e.g. ``SR B5 (705 nm)`` for a super-resolved band, ``B2 (490 nm)`` otherwise."""
    prefix = "SR " if name in SUPERRESOLVED_BANDS else ""
    return f"{prefix}{name} ({BANDS[name].wavelength_nm} nm)"


def output_bands(copy_original_bands: bool) -> tuple[str, ...]:
    """Bands written to the output, in spectral order."""
    if copy_original_bands:
        return OUTPUT_BANDS
    return tuple(b for b in OUTPUT_BANDS if b in SUPERRESOLVED_BANDS)
