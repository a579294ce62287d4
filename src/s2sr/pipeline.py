"""The whole job for one product: read tiles, super-resolve, mask, write a COG.

Work goes tile by tile over the product's fixed tile grid, so memory is bounded by the tile and an AOI
run reproduces the pixels of a whole-product run exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .adapt import prepare_nets
from .aoi import inside_mask, window_of_aoi
from .bands import BANDS_10M, BANDS_20M, BANDS_60M, output_bands
from .companion import stale_files
from .errors import NoOutputError
from .footprint import written_footprint
from .inference import Nets, WindowResult, load_nets, read_tile, superresolve_groups
from .masks import Grid, MaskCompanion, stale_companions
from .metadata import Product
from .options import DEFAULT_TILE_SIZE, RunOptions
from .phases import reached
from .preflight import check_output
from .product import ProductReader, open_product
from .runner import StageTimes, run_tiles
from .stac_item import item_path, stage_output_item, staged_items
from .storage import MARGIN, check_folders, remove_stale_staging, staging_root, storage_faults
from .tiling import Window, tiles_covering
from .uncertainty import SUFFIX as UNCERTAINTY_SUFFIX
from .uncertainty import UncertaintyCompanion
from .writer import CogWriter, staging_bytes, to_dn

#: GDAL's block cache while tiles are read and written (the COG step sets its own, ``writer``). A row of
#: tiles decodes about three rows of the bands' 1024 px JP2 blocks (some 500 MB for a whole-width product)
#: and the next row reuses one or two of them; with the staging file's unfinished blocks that needs about
#: 850 MB. Measured on a whole-width product: 1 GiB reads as fast as GDAL's default (5 % of RAM, 1.2 GiB
#: here), 512 MiB takes 1.8x as long to read. Set, not left to the default, so that memory does not grow
#: with the machine's RAM.
TILING_CACHE_BYTES = 1024 * 2**20

Progress = Callable[[int, int], None]
__all__ = ["DEFAULT_TILE_SIZE", "TILING_CACHE_BYTES", "product_footprint", "superresolve_product"]


def superresolve_product(
    product: str | Path,
    output: str | Path,
    options: RunOptions | None = None,
    *,
    progress: Progress | None = None,
    stage_times: StageTimes | None = None,
    warn: Callable[[str], None] | None = None,
    **overrides: Any,
) -> Path:
    """Super-resolve one Sentinel-2 product to a 10 m COG and return its path.

    ``options``: a :class:`~s2sr.options.RunOptions` (default: its defaults); ``overrides``: any of its fields
    by name on top (``aoi=..., tile_size=...``), so the keywords below keep working.
    ``aoi`` (WGS84 bbox, GeoJSON geometry or shapely polygon) limits the output to the 60 m-aligned window
    around it; with ``clip_to_aoi`` pixels outside the polygon are nodata too. ``consistency=False`` skips
    the projection onto the measured bands (for comparison only). With ``stac_item`` a STAC Item describing
    the file is written beside it (``out.json``, see ``stac_item``). ``threads`` > 1 decode the next
    tiles and write finished ones while the nets run (``runner``); 1 (the default, fastest on 2 cores, where
    the nets keep every core busy) runs the stages one after another. The output is the same either way.
    ``device``: where the nets run, ``auto`` (a GPU if Keras sees one), ``cpu`` or ``gpu``. ``precision``:
    what their convolutions compute in, ``auto`` (bfloat16 where the device runs it natively, else float32),
    ``float32`` or ``bfloat16`` (``model.resolve_precision``).
    ``stage_times`` collects the seconds of each stage (read, compute, write, finish COG, STAC Item).
    ``sensor_model``: the blur every stage assumes, ``estimate`` (measured once per product on fixed
    windows of its grid, so an AOI run equals a whole-product run; :mod:`s2sr.blur`), ``mtf`` (documented),
    ``paper`` or a :class:`~s2sr.sensor.SensorModel`; recorded in the GeoTIFF tags and the STAC Item.
    With ``masks`` the product's own masks (L2A SCL and cloud probability, L1C cloud masks) are written beside
    the output on its grid, ``out_masks.tif`` (:mod:`s2sr.masks`); a mask file that is corrupt or does not fit
    leaves the bands written, calls ``warn`` with one line and is recorded in the STAC Item.
    ``adapt_steps``: steps the x2 net is fine-tuned on the product's own bands one level down before the
    tiles, on the same fixed windows (so an AOI run still equals a whole-product run), kept only if it then
    fits held-back pixels of the product better (0: off; :mod:`s2sr.adapt`); recorded in the tags and the Item.
    With ``uncertainty`` the half-width (DN) of the central 90 % interval of the true value around every
    super-resolved pixel is written beside the output, ``out_uncertainty.tif`` (B1 B5 B6 B7 B8A B9 B11 B12),
    calibrated on the product one level down on the same fixed windows (:mod:`s2sr.uncertainty`); a failure
    there leaves the bands written, calls ``warn`` with one line and is recorded in the STAC Item.
    An existing output, or a file of its names beside it (``out.json``, ``out_masks.tif``,
    ``out_uncertainty.tif``), raises ``OutputExistsError`` unless ``overwrite``. Everything is checked (output,
    product, AOI, folders) before the nets load.
    """
    opts = RunOptions.parse(options, **overrides)
    output = check_output(output, overwrite=opts.overwrite)
    located = open_product(product)
    area_of_interest, clip_to_aoi, threads, stac_item = opts.aoi, opts.clip_to_aoi, opts.threads, opts.stac_item
    bands_out = output_bands(opts.copy_original_bands)
    import rasterio

    with rasterio.Env(GDAL_CACHEMAX=TILING_CACHE_BYTES), ProductReader(located) as reader:
        times = stage_times if stage_times is not None else StageTimes()
        geom, area = (window_of_aoi(area_of_interest, reader.crs, reader.transform, reader.raster, located.name)
                      if area_of_interest else (None, reader.raster))
        mask = inside_mask(geom, reader.transform, area) if geom is not None and clip_to_aoi else None
        if mask is not None and not mask.any():
            raise NoOutputError(f"the AOI covers no pixel of {located.name}")
        tiles = list(tiles_covering(reader.raster, area, opts.tile_size))
        companion = MaskCompanion.start(located, Grid(reader.crs, reader.transform, reader.height, reader.width), area,
                                        output, enabled=opts.masks, warn=warn)
        grid = Grid(reader.crs, reader.transform, reader.height, reader.width)
        intervals = UncertaintyCompanion(output, area, grid, opts.uncertainty, _companion_tags(located, "uncertainty"),
                                         warn)
        _check_folders(output, staging_bytes(area.height, area.width, len(bands_out)) + companion.staging_bytes
                       + intervals.staging_bytes, stac_item)
        nets = load_nets(located.level, True, opts.weights_dir, opts.consistency, opts.device, opts.precision)
        # once per product, on fixed windows: the same for any AOI or tile size
        nets = prepare_nets(nets, reader.read, reader.height, reader.width, opts.sensor_model, opts.adaptation, times,
                            uncertainty=opts.uncertainty, warn=warn)
        intervals.calibrated(nets.calibration)
        from affine import Affine

        with CogWriter(
            output,
            crs=reader.crs,
            transform=reader.transform @ Affine.translation(area.col, area.row),
            height=area.height,
            width=area.width,
            bands=bands_out,
            tags=_output_tags(located, nets),
            times=times,
        ) as writer, companion, intervals:
            reached("staging open", output)
            write = _TileWriter(writer, area, mask, bands_out, output, companion, intervals)

            def compute(tile: Window, groups: list) -> WindowResult:
                return superresolve_groups(nets, *groups, border=nets.border, times=times)

            def read_in_thread(window: Window):
                # rasterio datasets belong to the thread that opened them: each read opens its own
                with ProductReader(located) as own:
                    return own.read(window)

            read = reader.read if threads <= 1 else read_in_thread
            run_tiles(
                tiles,
                lambda tile: read_tile(read, reader.raster, tile, nets.border),
                compute,
                write,
                threads,
                None if progress is None else lambda done: progress(done, len(tiles)),
                times,
            )
            if not any(write.holds_data):  # leaving the writer with an error writes nothing
                raise NoOutputError(f"the AOI covers only nodata of {located.name} (outside its swath); nothing to write")
            reached("tiles written", output)
            item = None if not stac_item else dict(
                source=located.source, source_name=located.name, level=located.level,
                sensing_time=located.metadata.sensing_time, version=__version__,
                weights=[n.manifest for n in (nets.x2, nets.x6) if n is not None],
                aoi=area_of_interest.geometry if area_of_interest and clip_to_aoi else None,
            )
            _publish(writer, output, item, times, (companion, intervals))
    return output




def _output_tags(located: Product, nets: Nets) -> dict[str, str]:
    """The GeoTIFF's dataset tags: where it came from, what made it, the kernels the run assumed."""
    return {
        "s2sr_version": __version__,
        "source_product": located.name,
        "processing_level": located.level,
        "processing_baseline": located.metadata.baseline,
        "weights": ", ".join(n.manifest.name for n in (nets.x2, nets.x6) if n is not None),
        "reflectance": "DN x 0.0001 (offsets of baseline 04.00+ removed)",
        "sensor_model": json.dumps(nets.sensor.to_dict()),
        "adaptation": json.dumps([a.to_dict() for a in nets.adaptation]),
        "fusion": json.dumps(nets.fusion_record()),
    }


def _companion_tags(located: Product, what: str) -> dict[str, str]:
    """The dataset tags of a companion file: where it came from and what it holds."""
    return {"s2sr_version": __version__, "source_product": located.name, "processing_level": located.level,
            "processing_baseline": located.metadata.baseline, "content": what,
            "nodata": "0: outside the AOI polygon or where the bands are nodata; 65535: the band saturates"}


class _TileWriter:
    """Writes a tile's result into the output area: masked (swath, AOI polygon), as DN, in output band order,
    and the product's masks on the same pixels; records whether any written pixel holds data (called from the
    writer thread)."""

    def __init__(self, writer: CogWriter, area: Window, mask: np.ndarray | None, bands: tuple[str, ...], output: Path,
                 masks: MaskCompanion, intervals: UncertaintyCompanion):
        self.writer, self.area, self.mask, self.bands, self.output, self.masks = writer, area, mask, bands, output, masks
        self.intervals = intervals
        self.holds_data: list[bool] = []

    def __call__(self, tile: Window, result: WindowResult) -> None:
        part = tile.intersection(self.area)
        rows, cols = part.relative_to(tile).slices()
        valid = result.valid[rows, cols]
        if self.mask is not None:
            mrows, mcols = part.relative_to(self.area).slices()
            valid = valid & self.mask[mrows, mcols]
        values = {**_split(BANDS_10M, result.b10, result.saturated10, rows, cols),
                  **_split(BANDS_20M, result.b20, result.saturated20, rows, cols),
                  **_split(BANDS_60M, result.b60, result.saturated60, rows, cols)}
        self.holds_data.append(bool(valid.any()))
        block = np.empty((len(self.bands), *valid.shape), np.uint16)
        for i, band in enumerate(self.bands):  # band by band: no float copy of the whole block
            to_dn(values[band][0][None], valid, values[band][1][None], out=block[i : i + 1])
        self.writer.write(block, part.relative_to(self.area))
        self.masks.write(part, valid)
        self.intervals.write(part, rows, cols, result.u20, result.u60, valid, {b: v[1] for b, v in values.items()})
        reached("tile written", self.output)


# -- the output's files, in the order that leaves a kill at any moment with no output or a whole one
#    (``phases``): checked, staged under hidden names, the Item renamed into place, the GeoTIFF last.


def _check_folders(output: Path, pixel_bytes: int, stac_item: bool) -> None:
    """Room and permissions for the staging files and the COGs (at most ``pixel_bytes``, uncompressed with
    overviews, the masks file's included), before the first tile (``storage``), and the leftovers of a killed
    run of this target removed: an Item or masks file staged or renamed without its GeoTIFF, and (before the
    room is measured) the staging folders of killed runs on this host."""
    size = pixel_bytes + MARGIN
    remove_stale_staging(staging_root())
    check_folders([(staging_root(), size, "the staging folder"), (output.parent, size, "the output folder")])
    with storage_faults(output.parent, "the output folder"):
        stale = stale_companions(output) + stale_files(output, UNCERTAINTY_SUFFIX)  # staged, or renamed without its GeoTIFF
        if stac_item:
            stale += staged_items(output) + ([] if output.exists() else [item_path(output)])
        for path in stale:
            path.unlink(missing_ok=True)
    reached("folders checked", output)


def _publish(writer: CogWriter, output: Path, item: dict | None, times: StageTimes,
             companions: tuple[MaskCompanion, UncertaintyCompanion]) -> None:
    """Finish the COG and its companions (masks, uncertainty) under hidden names, stage its Item, rename the
    companions and the Item into place, the GeoTIFF last.

    A previous output of this target goes first, so that a kill in between never pairs a GeoTIFF with
    another run's Item or companions. A failure removes the new Item and companions (the writers remove the COGs)."""
    masks, intervals = companions
    writer.finish()
    reached("cog staged", output)
    if masks.finish():
        reached("masks staged", output)
    if intervals.finish():
        reached("uncertainty staged", output)
    try:
        if item is None:
            _replace_output(writer, output, None, companions)
            return
        with times.timing("STAC Item"), storage_faults(output.parent, "the output folder"):
            aoi = item.pop("aoi")
            staged = stage_output_item(output, read_from=writer.partial, footprint=written_footprint(writer.partial, aoi),
                                       masks=masks.stac(), uncertainty=intervals.stac(), **item)
        try:
            reached("item staged", output)
            _replace_output(writer, output, staged, companions)
        finally:
            staged.unlink(missing_ok=True)
    except BaseException:
        if not output.exists():  # an Item or masks file without its GeoTIFF is not an output
            item_path(output).unlink(missing_ok=True)
            for companion in companions:
                companion.path.unlink(missing_ok=True)
        raise


def _replace_output(writer: CogWriter, output: Path, staged_item: Path | None,
                    companions: tuple[MaskCompanion, UncertaintyCompanion]) -> None:
    masks, intervals = companions
    with storage_faults(output.parent, "the output folder"):
        if output.exists():
            output.unlink()
            reached("old output removed", output)
        masks.put_in_place()  # or a previous run's masks file removed
        if masks.written:
            reached("masks in place", output)
        intervals.put_in_place()  # or a previous run's uncertainty file removed
        if intervals.written:
            reached("uncertainty in place", output)
        if staged_item is not None:
            staged_item.replace(item_path(output))
            reached("item in place", output)
    writer.commit()
    reached("output in place", output)


def product_footprint(product: str | Path) -> Any | None:
    """Where a product holds data (traced on its 60 m band B1), as a WGS84 polygon; None if nowhere."""
    with ProductReader(open_product(product)) as reader:
        return reader.footprint()


def _split(names, values, saturated, rows, cols) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {b: (values[i, rows, cols], saturated[i, rows, cols]) for i, b in enumerate(names)}
