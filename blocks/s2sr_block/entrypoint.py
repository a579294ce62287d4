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
from typing import Any

from s2sr.adapt import Adaptation
from s2sr.bands import output_bands
from s2sr.errors import AoiError, NoOutputError, OutputExistsError
from s2sr.masks import companion_path
from s2sr.model import compute_device
from s2sr.mosaic import datatake_of, superresolve_mosaic
from s2sr.phases import reached
from s2sr.pipeline import product_footprint, superresolve_product
from s2sr.product import open_product
from s2sr.stac_item import item_path
from s2sr.storage import check_folders, storage_faults
from s2sr.terminal import Terminal, load_keras_quietly, run_at_edge
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
    if params.mosaic:
        for product in products:
            datatake_of(product)  # a name that does not say its datatake: before any work too
    aoi = params.aoi
    options = params.run_options(**({"tile_size": tile_size} if tile_size else {}))
    bands = output_bands(params.copy_original_bands)
    check_folders([(output_dir, 0, "the output folder"), (quicklook_dir, 0, "the quicklook folder")])  # writable
    jobs = _jobs(items, products, params.mosaic)
    if not params.overwrite:
        _refuse_earlier_outputs(output_dir, [f"{item.feature_id}/{stem}_SR10m.tif" for item, _, stem in jobs])
    load_keras_quietly(os.environ)  # the edge: TensorFlow's INFO lines off, once the inputs are checked
    log(f"nets: {compute_device(precision=params.precision)}")
    written: list[Path] = []
    made: list[Path] = []  # feature folders this run created
    missed, empty = [], []
    try:
        with storage_faults(output_dir, "the output folder"):
            output_dir.mkdir(parents=True, exist_ok=True)
        features = []
        for n, (item, members, stem) in enumerate(jobs, start=1):
            product = members[0][1]
            label = f"feature {n}/{len(jobs)}"
            if params.mosaic:
                log(f"{label}: mosaic {stem} of {len(members)} product(s): {', '.join(p.name for _, p in members)}")
            else:
                log(f"{label}: {product.name} ({product.level}, baseline {product.metadata.baseline or '?'})")
            if params.contains is not None:
                from shapely.ops import unary_union

                footprints = [f for f in (product_footprint(m.product) for m, _ in members) if f is not None]
                footprint = unary_union(footprints) if footprints else None
                if footprint is None or not footprint.contains(aoi):
                    log(f"{label}: skipped, its data footprint does not hold the whole AOI (contains)")
                    missed.append(stem)
                    continue
            relative = f"{item.feature_id}/{stem}_SR10m.tif"
            target = output_dir / relative
            if not target.parent.exists():
                made.append(target.parent)
            try:
                if params.mosaic:
                    superresolve_mosaic([m.product for m, _ in members], target, options,
                                        warn=lambda message, label=label: log(f"{label}: {message}"), progress=progress)
                else:
                    superresolve_product(item.product, target, options,
                                         warn=lambda message, label=label: log(f"{label}: {message}"),
                                         progress=progress(label) if progress else None)
            except AoiError as exc:
                log(f"{label}: skipped, {exc}")
                missed.append(stem)
                continue
            except NoOutputError as exc:
                log(f"{label}: skipped, {exc}")
                empty.append(stem)
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
            if params.mosaic:  # the input features it was made of
                feature["properties"]["s2sr.source_features"] = [m.feature_id for m, _ in members]
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


def _refuse_earlier_outputs(output_dir: Path, relatives: list[str]) -> None:
    """An earlier run's data.json or outputs in ``output_dir`` are not replaced unless ``overwrite`` is set."""
    from s2sr.preflight import check_output

    data_json = output_dir / "data.json"
    if data_json.exists():
        raise OutputExistsError(f"{data_json} exists (an earlier run's output); set \"overwrite\": true in "
                                "UP42_TASK_PARAMETERS to replace it, or give an empty output folder")
    for relative in relatives:
        try:
            check_output(output_dir / relative)
        except OutputExistsError as exc:
            raise OutputExistsError(f"{exc}; set \"overwrite\": true in UP42_TASK_PARAMETERS to replace it") from None


def _jobs(items: list, products: list, mosaic: bool) -> list[tuple[Any, list[tuple[Any, Any]], str]]:
    """What the block writes: one output per feature, or with ``mosaic`` one per datatake (the first feature of
    each standing for it); each with its (feature, product) pairs and the stem of its file name."""
    if not mosaic:
        return [(item, [(item, product)], product.name) for item, product in zip(items, products, strict=True)]
    groups: dict[Any, list[tuple[Any, Any]]] = {}
    for item, product in zip(items, products, strict=True):
        groups.setdefault(datatake_of(product), []).append((item, product))
    return [(members[0][0], members, key.name) for key, members in groups.items()]


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="s2sr block", description="Run as the UP42 processing block: super-resolve every product that "
        "<input-dir>/data.json points at, write the GeoTIFFs, their STAC Items and masks, the quicklooks and "
        "<output-dir>/data.json.",
        epilog="Parameters come from the environment variable UP42_TASK_PARAMETERS, a JSON object, e.g. "
        'UP42_TASK_PARAMETERS=\'{"bbox": [13.365, 52.49, 13.41, 52.52], "clip_to_aoi": true}\'; '
        f"accepted keys: {', '.join(BlockParameters.defaults())} (UP42Manifest.json gives their defaults).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--input-dir", type=Path, default=Path("/tmp/input"), help="holds data.json and the products")
    parser.add_argument("--output-dir", type=Path, default=Path("/tmp/output"), help="where outputs and data.json go")
    parser.add_argument("--quicklook-dir", type=Path, default=Path("/tmp/quicklooks"), help="where the quicklooks go")
    parser.add_argument("--tile-size", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    terminal = Terminal()

    def run() -> int:
        params = BlockParameters.from_json(environ.get("UP42_TASK_PARAMETERS"))
        run_block(params, args.input_dir, args.output_dir, args.quicklook_dir, terminal.log, args.tile_size,
                  terminal.progress)
        return 0

    return run_at_edge(run, terminal.log)
