"""Tiling as pure arithmetic on windows of the 10 m grid.

A product is cut into a fixed grid of tiles anchored at its upper-left corner. Every tile is read with a
context border and cropped back after inference, so a pixel's value depends only on the product, never on
the AOI that asked for it: an AOI run reproduces the same pixels as a whole-product run.
All offsets and sizes here are in 10 m pixels and multiples of 6, so that every window also falls on the
20 m and 60 m grids.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .errors import InputParametersError

ALIGN = 6  # 60 m / 10 m: windows on this step fall on all three grids


@dataclass(frozen=True)
class Window:
    """A rectangle of pixels: row/col offset and height/width (may reach outside the raster)."""

    row: int
    col: int
    height: int
    width: int

    @property
    def row_stop(self) -> int:
        return self.row + self.height

    @property
    def col_stop(self) -> int:
        return self.col + self.width

    def intersection(self, other: Window) -> Window | None:
        """The overlap of two windows, or None when they do not overlap."""
        row, col = max(self.row, other.row), max(self.col, other.col)
        row_stop, col_stop = min(self.row_stop, other.row_stop), min(self.col_stop, other.col_stop)
        if row_stop <= row or col_stop <= col:
            return None
        return Window(row, col, row_stop - row, col_stop - col)

    def grow(self, border: int) -> Window:
        """The window enlarged by ``border`` pixels on every side."""
        return Window(self.row - border, self.col - border, self.height + 2 * border, self.width + 2 * border)

    def relative_to(self, outer: Window) -> Window:
        """This window in the pixel coordinates of ``outer``."""
        return Window(self.row - outer.row, self.col - outer.col, self.height, self.width)

    def scaled(self, factor: int) -> Window:
        """The same area on a grid ``factor`` times coarser (offsets and sizes must divide)."""
        if any(v % factor for v in (self.row, self.col, self.height, self.width)):
            raise ValueError(f"{self} does not fall on the grid {factor} times coarser")
        return Window(self.row // factor, self.col // factor, self.height // factor, self.width // factor)

    def slices(self) -> tuple[slice, slice]:
        return slice(self.row, self.row_stop), slice(self.col, self.col_stop)

    def to_rasterio(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """As rasterio's ((row_start, row_stop), (col_start, col_stop))."""
        return (self.row, self.row_stop), (self.col, self.col_stop)


def align_outward(window: Window, step: int = ALIGN) -> Window:
    """Smallest window on the ``step`` grid that contains ``window``."""
    row = (window.row // step) * step
    col = (window.col // step) * step
    row_stop = -(-window.row_stop // step) * step
    col_stop = -(-window.col_stop // step) * step
    return Window(row, col, row_stop - row, col_stop - col)


def tile_grid(raster: Window, tile_size: int) -> Iterator[Window]:
    """The tiles of size ``tile_size`` anchored at ``raster``'s corner, clipped to it, row-major."""
    if tile_size <= 0 or tile_size % ALIGN:
        raise InputParametersError(f"tile_size must be a positive multiple of {ALIGN}, got {tile_size}")
    for row in range(raster.row, raster.row_stop, tile_size):
        for col in range(raster.col, raster.col_stop, tile_size):
            tile = Window(row, col, tile_size, tile_size).intersection(raster)
            if tile is not None:
                yield tile


def tiles_covering(raster: Window, area: Window, tile_size: int) -> Iterator[Window]:
    """The tiles of ``raster``'s grid that overlap ``area``, row-major."""
    first_row = raster.row + max(0, (area.row - raster.row) // tile_size) * tile_size
    first_col = raster.col + max(0, (area.col - raster.col) // tile_size) * tile_size
    for row in range(first_row, min(area.row_stop, raster.row_stop), tile_size):
        for col in range(first_col, min(area.col_stop, raster.col_stop), tile_size):
            tile = Window(row, col, tile_size, tile_size).intersection(raster)
            if tile is not None and tile.intersection(area) is not None:
                yield tile
