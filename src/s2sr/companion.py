"""Files written beside a product run's output on its grid (the masks, the uncertainty), by the bands' writer.

A companion is a :class:`~s2sr.writer.CogWriter` on the output's window, staged like the bands, finished
under a hidden name and renamed into place before the GeoTIFF (``pipeline._publish``), so a kill leaves it
whole beside its output or absent. A companion that fails part-way is dropped (its staging removed), ``warn``
is called once with the reason and the run goes on: a companion never costs the bands.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .tiling import Window
from .writer import CogWriter, Layout


def companion_path(output: Path, suffix: str) -> Path:
    """A companion beside an output GeoTIFF: ``out.tif`` -> ``out_<suffix>.tif``."""
    output = Path(output)
    return output.with_name(f"{output.stem}_{suffix}{output.suffix}")


def stale_files(output: Path, suffix: str) -> list[Path]:
    """Companions of ``output`` that are no output: hidden ones of killed runs, and one whose GeoTIFF is not
    there (a run killed between renaming the two). The next run of that target removes them."""
    path = companion_path(output, suffix)
    stale = list(path.parent.glob(f".{path.name}.*.partial.tif*")) if path.parent.is_dir() else []
    return stale + ([path] if path.exists() and not Path(output).exists() else [])


class Companion:
    """One companion file of a run writing ``area`` of ``grid``; subclasses say what it holds (``open`` with its
    bands, tags and layout, ``write_block`` per tile) and what failing means (``dropped``)."""

    suffix = ""

    def __init__(self, output: Path, area: Window, grid: Any, warn: Callable[[str], None] | None = None):
        self.path = companion_path(output, self.suffix)
        self.area, self.grid = area, grid
        self._writer: CogWriter | None = None
        self._warn: Callable[[str], None] = warn or (lambda message: None)
        self._finished = self._placed = False

    @property
    def written(self) -> bool:
        """Finished and to be renamed into place with the output."""
        return self._finished and self._writer is not None

    def open(self, bands: tuple[str, ...], tags: dict[str, str], layout: Layout) -> None:
        """Start the staging file (from ``__enter__``)."""
        from affine import Affine

        writer = CogWriter(self.path, crs=self.grid.crs, transform=self.grid.transform @ Affine.translation(
            self.area.col, self.area.row), height=self.area.height, width=self.area.width, bands=bands, tags=tags,
            layout=layout)
        self._writer = writer.__enter__()

    def write_block(self, block: np.ndarray, part: Window) -> None:
        """``block`` over ``part`` (a window of the product grid inside the output area)."""
        if self._writer is not None:
            self._writer.write(block, part.relative_to(self.area))

    def finish(self) -> bool:
        """The COG made under its hidden name beside the target; False where there is none to write."""
        if self._writer is None:
            return False
        self._writer.finish()
        self._finished = True
        return True

    def put_in_place(self) -> None:
        """Rename the finished file onto its target, or remove a previous run's there (the GeoTIFF's old
        output is gone by now, so a companion is never beside another run's GeoTIFF)."""
        if self.written:
            self._writer.commit()
        else:
            self.path.unlink(missing_ok=True)
        self._placed = True

    def drop(self, reason: str, error: type[BaseException] = RuntimeError) -> None:
        """Give the file up part-way: its staging removed, ``dropped`` told, ``warn`` called once."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.__exit__(error, error(reason), None)  # removes its staging and any partial
        self.dropped(reason)

    def dropped(self, reason: str) -> None:
        """Record why the file was given up (subclasses: their status) and say it."""
        self._warn(f"{self.path.name} not written: {reason}")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        if exc_type is None and not self._placed:  # left without put_in_place: never a companion alone
            exc_type, exc = RuntimeError, RuntimeError(f"{self.path.name} not put in place")
        writer.__exit__(exc_type, exc, tb)
