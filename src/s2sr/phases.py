"""Named points of a run where the files it leaves behind change, and a hook to act at each.

The order in which a product run makes its files is what lets a kill at any moment leave either no output
or a complete one: everything is made under temporary names, the masks file and the STAC Item are renamed
into place before the GeoTIFF, and the GeoTIFF, renamed last, is what makes it an output (the block's ``data.json`` comes after
all of them). Tests set ``hook`` in a subprocess to kill it at each of these points in turn; the library
itself never sets it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

#: A product run, in order (``old output removed`` only where a previous output of that target exists;
#: ``masks staged`` and ``masks in place`` only where masks are written; ``tile written`` after every tile).
PRODUCT_PHASES = (
    "folders checked",  # room and permissions; nothing written yet
    "staging open",  # stale temporaries of this target removed, staging file created
    "tile written",
    "tiles written",
    "cog staged",  # the COG complete under a hidden name beside its target
    "masks staged",  # its masks file (``masks``) complete under a hidden name, where the product has masks
    "uncertainty staged",  # its uncertainty file (``uncertainty``) complete under a hidden name, where asked for
    "item staged",  # its STAC Item complete under a hidden name
    "old output removed",  # the previous GeoTIFF of this target (its Item and masks are replaced next)
    "masks in place",  # the masks file renamed onto ``out_masks.tif`` (a previous run's removed where none)
    "uncertainty in place",  # the uncertainty file renamed onto ``out_uncertainty.tif`` (likewise)
    "item in place",
    "output in place",  # the GeoTIFF renamed onto its target: the output exists, whole
)
#: The block, after each product's phases.
BLOCK_PHASES = (
    "quicklooks written",
    "data.json staged",
    "data.json in place",
)

#: Called with each phase's name and the run's target (the output GeoTIFF; the block's data.json) as a run
#: passes it; None (the default) does nothing.
hook: Callable[[str, Path], None] | None = None


def reached(phase: str, target: Path) -> None:
    if hook is not None:
        hook(phase, target)
