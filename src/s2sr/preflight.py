"""What a run checks before any work, so that a mistake costs a second and one line, not a loaded TensorFlow
and a run thrown away: the output's name and folder, and whether it would replace files that are there.

A run writes a GeoTIFF and files beside it (its STAC Item ``out.json``, its masks ``out_masks.tif``, its
uncertainty ``out_uncertainty.tif``). None of
them replaces an existing file unless the caller asks (``overwrite``): a user's own ``out.json`` is never
taken for an Item. The one exception is what a killed run of the same target left: a file of those names
that s2sr itself wrote, whose GeoTIFF never arrived (the GeoTIFF is renamed into place last, ``phases``), is
no output and is replaced, as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import InputParametersError, OutputExistsError
from .metadata import Product
from .storage import probe_writable

OUTPUT_SUFFIXES = (".tif", ".tiff")
#: The data footprint is traced on a grid of at most ``footprint.MAX_SIDE`` cells: an AOI within this many of
#: its cells is let through, and a run that then finds only nodata says so after the work.
FOOTPRINT_SLACK_CELLS = 2
METRES_PER_DEGREE = 111_000.0


def companion_paths(output: Path) -> tuple[Path, ...]:
    """The files a run writes beside ``output``: its STAC Item, its masks and its uncertainty."""
    from .masks import companion_path
    from .stac_item import item_path
    from .uncertainty import uncertainty_path

    return item_path(output), companion_path(output), uncertainty_path(output)


def check_output(output: str | Path, *, overwrite: bool = False) -> Path:
    """``output`` as a Path, after checking it names a GeoTIFF in a folder this process can write, and that
    the run would replace no file unless ``overwrite``. Raises InputParametersError (OutputExistsError for an
    existing file) or StorageError, naming the path and the fix."""
    output = Path(output)
    if output.is_dir():
        raise InputParametersError(f"output {output} is a folder; give a file name in it, e.g. {output / 'out.tif'}")
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise InputParametersError(f"output {output} must end in .tif or .tiff, e.g. {output.with_suffix('.tif')}")
    parent = output.parent
    if parent.exists() and not parent.is_dir():
        raise InputParametersError(f"output {output}: {parent} is a file, not a folder; write into a folder")
    probe_writable(parent, "the output folder")
    if not overwrite:
        existing = [p for p in (output, *companion_paths(output)) if p.exists() and not _left_by_killed_run(p, output)]
        if existing:
            raise OutputExistsError(f"{existing[0]} exists; give --overwrite (overwrite=True) to replace it, or "
                                    "another output name")
    return output


def _left_by_killed_run(path: Path, output: Path) -> bool:
    """True for a file beside ``output`` that an s2sr run wrote and whose GeoTIFF is not there."""
    if path == output or output.exists():
        return False
    if path.suffix.lower() == ".json":
        try:
            item = json.loads(path.read_text())
        except (OSError, ValueError):
            return False
        props = item.get("properties") if isinstance(item, dict) else None
        return isinstance(props, dict) and any(str(k).startswith("s2sr:") for k in props)
    import rasterio

    try:
        with rasterio.open(path) as ds:
            return "s2sr_version" in ds.tags()
    except rasterio.errors.RasterioError:
        return False


def check_product_and_aoi(product: str | Path, aoi: Any = None) -> Product:
    """The product opened (its metadata and band files found) and, with ``aoi``, the AOI checked against it:
    an AoiError when it misses the product's grid (``aoi.window_of_aoi``), a NoOutputError when it falls
    only where the product holds no data (outside its swath). Reads the 60 m band B1 at most; no nets."""
    from .aoi import Aoi, window_of_aoi
    from .errors import NoOutputError
    from .product import ProductReader, open_product

    located = open_product(product)
    if aoi is None:
        return located
    area = Aoi.parse(aoi)
    import math

    from .footprint import MAX_SIDE

    with ProductReader(located) as reader:
        window_of_aoi(area, reader.crs, reader.transform, reader.raster, located.name)
        footprint = reader.footprint()
        cell_m = 60.0 * math.ceil(max(reader.height, reader.width) / 6 / MAX_SIDE)
    slack = FOOTPRINT_SLACK_CELLS * cell_m / METRES_PER_DEGREE
    if footprint is None or not footprint.buffer(slack).intersects(area.geometry):
        raise NoOutputError(f"the AOI covers only nodata of {located.name} (outside its swath); give an AOI where "
                            "it holds data")
    return located
