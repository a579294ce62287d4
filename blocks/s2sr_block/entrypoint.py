"""``s2sr block``: the container entrypoint, as UP42 runs it.

Reads ``UP42_TASK_PARAMETERS`` and ``<input-dir>/data.json``, super-resolves every feature's product,
writes the GeoTIFFs, quicklooks and ``<output-dir>/data.json``. Expected errors end in one log line and the
UP42 exit code; a failed run removes whatever it had written.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from s2sr.adapt import Adaptation
from s2sr.bands import output_bands
from s2sr.errors import AoiError, NoOutputError, S2srError, StorageError, exit_code_for
from s2sr.masks import companion_path
from s2sr.model import compute_device
from s2sr.phases import reached
from s2sr.pipeline import product_footprint, superresolve_product
from s2sr.product import open_product
from s2sr.stac_item import item_path
from s2sr.storage import FIXES, check_folders, storage_faults
from s2sr.terminal import Terminal, load_keras_quietly
from s2sr.uncertainty import uncertainty_path

from .datajson import output_feature, read_input, write_output
from .params import BlockParameters
from .quicklook import FALSE_COLOUR, write_quicklook


def run_block(
    params: BlockParameters,
    input_dir: Path,
    output_dir: Path,
    quicklook_dir: Path,
    log: Callable[[str], None],
    tile_size: int | None = None,
    progress: Callable[[str], Callable[[int, int], None]] | None = None,
) -> Path:
    """Process every feature; returns the output data.json. Removes its outputs if anything fails.

    Products the AOI misses (or, with ``contains``, does not lie wholly inside) and products whose AOI holds
    only nodata are skipped with a log line; the run fails only when no product yields an output.
    """
    input_fc, items = read_input(input_dir)
    products = [open_product(item.product) for item in items]  # fail on a bad product before any work
    aoi = params.aoi
    bands = output_bands(params.copy_original_bands)
    check_folders([(output_dir, 0, "the output folder"), (quicklook_dir, 0, "the quicklook folder")])  # writable
    log(f"nets: {compute_device(precision=params.precision)}")
    written: list[Path] = []
    made: list[Path] = []  # feature folders this run created
    missed, empty = [], []
    try:
        with storage_faults(output_dir, "the output folder"):
            output_dir.mkdir(parents=True, exist_ok=True)
        features = []
        for n, (item, product) in enumerate(zip(items, products, strict=True), start=1):
            label = f"feature {n}/{len(items)}"
            log(f"{label}: {product.name} ({product.level}, baseline {product.metadata.baseline or '?'})")
            if params.contains is not None:
                footprint = product_footprint(item.product)
                if footprint is None or not footprint.contains(aoi):
                    log(f"{label}: skipped, its data footprint does not hold the whole AOI (contains)")
                    missed.append(product.name)
                    continue
            relative = f"{item.feature_id}/{product.name}_SR10m.tif"
            target = output_dir / relative
            extra = {"tile_size": tile_size} if tile_size else {}
            if not target.parent.exists():
                made.append(target.parent)
            try:
                superresolve_product(
                    item.product,
                    target,
                    aoi=aoi,
                    clip_to_aoi=params.clip_to_aoi,
                    copy_original_bands=params.copy_original_bands,
                    precision=params.precision,
                    sensor_model=params.sensor_model,
                    masks=params.masks,
                    adapt_steps=params.adapt_steps,
                    uncertainty=params.uncertainty,
                    warn=lambda message, label=label: log(f"{label}: {message}"),
                    progress=progress(label) if progress else None,
                    **extra,
                )
            except AoiError as exc:
                log(f"{label}: skipped, {exc}")
                missed.append(product.name)
                continue
            except NoOutputError as exc:
                log(f"{label}: skipped, {exc}")
                empty.append(product.name)
                continue
            stac = item_path(target)
            written += [target, stac, companion_path(target), uncertainty_path(target)]
            quicklooks = [quicklook_dir / f"{item.feature_id}.png", quicklook_dir / f"{item.feature_id}_sr.png"]
            written += quicklooks
            with storage_faults(quicklook_dir, "the quicklook folder"):
                write_quicklook(target, quicklooks[0])  # true colour, the platform's convention
                write_quicklook(target, quicklooks[1], FALSE_COLOUR)  # what super-resolution adds
            reached("quicklooks written", target)
            stac_item = json.loads(stac.read_text())
            for record in stac_item["properties"].get("s2sr:adaptation", []):
                log(f"{label}: {Adaptation.from_dict(record).describe()}")
            mask_status = stac_item["properties"].get("s2sr:masks", {})
            if mask_status.get("status") == "unavailable":
                log(f"{label}: no masks beside it: {mask_status['reason']}")
            feature = output_feature(item, relative, bands, stac.relative_to(output_dir).as_posix(), stac_item)
            feature["properties"]["s2sr.quicklooks"] = [q.name for q in quicklooks]
            features.append(feature)
        if not features:
            if empty:
                raise NoOutputError(f"no product holds valid pixels in the AOI ({', '.join(empty)} hold only nodata there)")
            raise AoiError(f"the AOI overlaps none of the {len(items)} product(s); give an AOI inside their footprints")
        with storage_faults(output_dir, "the output folder"):
            data_json = write_output(output_dir, input_fc, features)  # last: it names only files in place
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
            if path.parent not in (output_dir, quicklook_dir) and path.parent.is_dir() and not any(path.parent.iterdir()):
                path.parent.rmdir()
        for folder in made:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    log(f"wrote {len(features)} file(s) and {data_json}" + (f"; skipped {len(missed) + len(empty)}" if missed or empty else ""))
    return data_json


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="s2sr block", description="Run as the UP42 processing block.")
    parser.add_argument("--input-dir", type=Path, default=Path("/tmp/input"))
    parser.add_argument("--output-dir", type=Path, default=Path("/tmp/output"))
    parser.add_argument("--quicklook-dir", type=Path, default=Path("/tmp/quicklooks"))
    parser.add_argument("--tile-size", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    terminal = Terminal()
    load_keras_quietly(os.environ)  # the edge: TensorFlow's INFO lines off before it loads
    try:
        params = BlockParameters.from_json(environ.get("UP42_TASK_PARAMETERS"))
        run_block(params, args.input_dir, args.output_dir, args.quicklook_dir, terminal.log, args.tile_size,
                  terminal.progress)
    except S2srError as exc:
        terminal.log(f"error: {exc}")
        return exit_code_for(exc)
    except OSError as exc:
        if exc.errno not in FIXES:
            raise
        terminal.log(f"error: cannot write {exc.filename or 'a file'}: {FIXES[exc.errno]}")  # one the library did not name
        return exit_code_for(StorageError(exc.errno, str(exc)))
    return 0
