"""Super-resolution of one window: harmonised band groups in, 10 m bands out.

This is the one place the nets meet data. It fills nodata so it does not smear into valid pixels,
upsamples the coarse groups bicubically, runs the x2 and x6 nets and carries validity and saturation
through. Callers (the array API, the product pipeline, evaluation) only decide which windows to read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .bands import SATURATED_DN
from .errors import InputParametersError
from .model import LoadedNet, load_net, run_net, weights_name
from .resample import nearest_upsample, upsample
from .tiling import Window

LEVELS = ("L1C", "L2A")


@dataclass(frozen=True)
class BandGroup:
    """Bands of one resolution over a window: reflectance x 10000, and where they hold data or saturate."""

    values: np.ndarray  # (bands, h, w) float32, harmonised (no offset)
    valid: np.ndarray  # (h, w) bool: every band of the group has data here
    saturated: np.ndarray  # (bands, h, w) bool

    @classmethod
    def from_dn(cls, dn: np.ndarray, offsets: Sequence[float] | None = None, quantification: float = 10000.0):
        """Harmonise raw DN: reflectance x 10000 = (DN + offset) / quantification x 10000; DN 0 is nodata."""
        dn = np.asarray(dn)
        valid = np.all(dn != 0, axis=0)
        saturated = dn == SATURATED_DN
        values = dn.astype(np.float32)
        if offsets is not None:
            values += np.asarray(offsets, dtype=np.float32).reshape(-1, 1, 1)
        if quantification != 10000.0:
            values *= np.float32(10000.0 / quantification)
        return cls(values, valid, saturated)

    def pad(self, before: tuple[int, int], after: tuple[int, int]) -> BandGroup:
        """Mirror the group outwards, so edge pixels get a plausible context instead of a cliff."""
        if not any(before + after):
            return self
        pad2 = ((before[0], after[0]), (before[1], after[1]))
        pad3 = ((0, 0), *pad2)
        return BandGroup(
            np.pad(self.values, pad3, mode="symmetric"),
            np.pad(self.valid, pad2, mode="symmetric"),
            np.pad(self.saturated, pad3, mode="symmetric"),
        )

    def filled(self) -> np.ndarray:
        """Values with nodata pixels replaced by each band's mean over valid pixels of the window."""
        values = self.values.copy()
        invalid = ~self.valid
        if invalid.any():
            for band in values:
                band[invalid] = band[self.valid].mean() if self.valid.any() else 0.0
        return values


@dataclass(frozen=True)
class WindowResult:
    """Super-resolved bands of a window at 10 m, with the pixels they are valid at."""

    b10: np.ndarray  # (4, h, w) float32: the 10 m input, harmonised
    saturated10: np.ndarray  # (4, h, w) bool
    b20: np.ndarray  # (6, h, w) float32
    b60: np.ndarray | None  # (2, h, w) float32
    valid: np.ndarray  # (h, w) bool: every input band had data
    saturated20: np.ndarray  # (6, h, w) bool
    saturated60: np.ndarray | None

    def crop(self, window: Window) -> WindowResult:
        rows, cols = window.slices()
        return WindowResult(
            self.b10[:, rows, cols],
            self.saturated10[:, rows, cols],
            self.b20[:, rows, cols],
            None if self.b60 is None else self.b60[:, rows, cols],
            self.valid[rows, cols],
            self.saturated20[:, rows, cols],
            None if self.saturated60 is None else self.saturated60[:, rows, cols],
        )


@dataclass(frozen=True)
class Nets:
    """The x2 and (optional) x6 nets for one product level."""

    x2: LoadedNet
    x6: LoadedNet | None

    @property
    def border(self) -> int:
        """Context border in 10 m pixels: the larger of the two nets' manifests."""
        return max(n.manifest.context_border for n in (self.x2, self.x6) if n is not None)


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise InputParametersError(f"level must be 'L1C' or 'L2A', got {level!r}")
    return level


@lru_cache(maxsize=4)
def load_nets(level: str, with_60m: bool = True, weights_dir: Path | None = None) -> Nets:
    """Load (once per process) the nets for a product level."""
    check_level(level)
    x2 = load_net(weights_name(2, level, weights_dir), weights_dir)
    x6 = load_net(weights_name(6, level, weights_dir), weights_dir) if with_60m else None
    return Nets(x2, x6)


def superresolve_groups(nets: Nets, g10: BandGroup, g20: BandGroup, g60: BandGroup | None) -> WindowResult:
    """Run the nets over one window whose groups share a 60 m-aligned extent."""
    up20 = upsample(g20.filled(), 2)
    x10 = g10.filled()
    valid = g10.valid & nearest_upsample(g20.valid, 2)
    sr20 = run_net(nets.x2, [x10, up20])
    sr60 = sat60 = None
    if g60 is not None and nets.x6 is not None:
        up60 = upsample(g60.filled(), 6)
        valid &= nearest_upsample(g60.valid, 6)
        sr60 = run_net(nets.x6, [x10, up20, up60])
        sat60 = nearest_upsample(g60.saturated, 6)
    return WindowResult(g10.values, g10.saturated, sr20, sr60, valid, nearest_upsample(g20.saturated, 2), sat60)


Reader = Callable[[Window], tuple[BandGroup, BandGroup, BandGroup | None]]


def superresolve_tile(nets: Nets, read: Reader, raster: Window, tile: Window) -> WindowResult:
    """Super-resolve ``tile`` of ``raster``: read it with its context border, mirror beyond the raster, crop."""
    context = tile.grow(nets.border)
    inside = context.intersection(raster)
    assert inside is not None
    before = (inside.row - context.row, inside.col - context.col)
    after = (context.row_stop - inside.row_stop, context.col_stop - inside.col_stop)
    groups = read(inside)
    padded = []
    for group, factor in zip(groups, (1, 2, 6), strict=True):
        if group is None:
            padded.append(None)
            continue
        padded.append(group.pad((before[0] // factor, before[1] // factor), (after[0] // factor, after[1] // factor)))
    result = superresolve_groups(nets, *padded)
    return result.crop(tile.relative_to(context))
