"""Many products on Ray: a pool of workers that load the nets once and take product after product.

Inputs are products (SAFE directory or zip, STAC Item), folders searched for them, or text files listing
them. Each product is written atomically to ``DIR/<product name>_SR10m.tif`` with its STAC Item; a bad
product is recorded with its error and the exit code the block would give, and the batch goes on. A worker
that is lost (its process killed, out of memory, or its node gone from the cluster) is replaced and its
product handed to another worker, at most ``ATTEMPTS`` times before it is recorded as failed; a product the
lost worker had already written (its output complete) is not written again. ``DIR/batch.json`` records
every product (input, status, output, seconds, error, attempts) and is rewritten after each one, so a batch
run again skips the products whose output is complete (checked: the file opens, holds the expected bands of
that product, and its Item is there) and redoes the rest.

Ray (``pip install s2sr[batch]``) is imported only here and only when a batch runs.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .adapt import DEFAULT_ADAPT_STEPS
from .bands import output_bands
from .blur import DEFAULT_SENSOR_MODEL
from .errors import InputParametersError, NoInputError, S2srError, exit_code_for
from .model import DEFAULT_PRECISION
from .pipeline import DEFAULT_TILE_SIZE
from .storage import check_folders, storage_faults
from .uncertainty import DEFAULT_UNCERTAINTY

SUFFIX = "_SR10m.tif"
#: Workers one product may lose (each a killed process, an out-of-memory kill or a lost node) before it is
#: recorded as failed instead of tried again.
ATTEMPTS = 3
#: With no product running, how long the batch waits for a worker to start (a replacement may never find
#: room on a cluster that lost nodes) before the products left are recorded as failed.
START_TIMEOUT_S = 600


@dataclass(frozen=True)
class BatchOptions:
    """What every product of a batch is run with (the options of ``s2sr run``)."""

    aoi: Any = None
    clip_to_aoi: bool = True
    copy_original_bands: bool = True
    tile_size: int = DEFAULT_TILE_SIZE
    weights_dir: str | None = None
    device: str = "auto"  # where each worker runs its nets: auto, cpu or gpu
    precision: str = DEFAULT_PRECISION  # what they compute in: auto, float32 or bfloat16
    sensor_model: str = DEFAULT_SENSOR_MODEL  # the blur assumed: estimate, mtf or paper
    masks: bool = True  # the product's masks beside each output (``masks``)
    adapt_steps: int = DEFAULT_ADAPT_STEPS  # the x2 net fine-tuned on each product first (``adapt``; 0: off)
    uncertainty: bool = DEFAULT_UNCERTAINTY  # each output's per-pixel 90 % intervals beside it (``uncertainty``)


@dataclass(frozen=True)
class Record:
    """One product's line in ``batch.json``."""

    input: str
    status: str  # "done", "skipped" (complete from an earlier run) or "failed"
    output: str | None = None
    seconds: float = 0.0
    error: str | None = None
    exit_code: int = 0
    attempts: int = 1  # workers it was given to (more than one where a worker was lost)
    warning: str | None = None  # written, but with a warning (a corrupt mask file: the bands without masks)


def find_inputs(inputs: list[str | Path]) -> list[Path]:
    """Products named by ``inputs``: products themselves, folders searched (not recursively below a
    product) for ``.SAFE`` directories, zips and STAC Items, and text files listing one input per line."""
    from .stac import is_stac_item

    found: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise NoInputError(f"batch input {path} does not exist")
        if path.is_file() and path.suffix.lower() in (".txt", ".list"):
            lines = [line.strip() for line in path.read_text().splitlines()]
            found += find_inputs([path.parent / line for line in lines if line and not line.startswith("#")])
        elif path.is_dir() and path.suffix.upper() != ".SAFE" and not any(path.glob("MTD_MSIL*.xml")):
            for child in sorted(path.iterdir()):
                if child.suffix.upper() == ".SAFE" or child.suffix.lower() == ".zip" or is_stac_item(child):
                    found.append(child)
                elif child.is_dir():
                    found += find_inputs([child])
        else:
            found.append(path)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique


def is_complete(tif: Path, bands: tuple[str, ...]) -> bool:
    """The output of an earlier run: it opens, holds the expected bands, its STAC Item is beside it, and so is
    the masks and uncertainty files where the Item lists them."""
    import rasterio

    from .stac_item import item_path

    if not tif.is_file() or not item_path(tif).is_file():
        return False
    try:
        with rasterio.open(tif) as ds:
            names = tuple(ds.tags(i).get("band") for i in range(1, ds.count + 1))
        assets = json.loads(item_path(tif).read_text())["assets"]
        companions = [tif.parent / assets[k]["href"] for k in ("masks", "uncertainty") if k in assets]
        for path in [tif, *companions]:
            with rasterio.open(path) as ds:
                ds.read(1, window=((ds.height - 1, ds.height), (ds.width - 1, ds.width)))  # the last block decodes
    except Exception:  # anything unreadable is redone
        return False
    return names == bands


def process(product: Path, output_dir: Path, options: BatchOptions) -> Record:
    """Run one product; every error becomes a failed record (with the block's exit code), never a raise."""
    from .pipeline import superresolve_product
    from .product import open_product

    start = time.monotonic()
    warnings: list[str] = []
    try:
        located = open_product(product)
        target = output_dir / f"{located.name}{SUFFIX}"
        superresolve_product(
            product, target, aoi=options.aoi, clip_to_aoi=options.clip_to_aoi,
            copy_original_bands=options.copy_original_bands, tile_size=options.tile_size,
            weights_dir=Path(options.weights_dir) if options.weights_dir else None, device=options.device,
            precision=options.precision, sensor_model=options.sensor_model, masks=options.masks, warn=warnings.append,
            adapt_steps=options.adapt_steps, uncertainty=options.uncertainty,
        )
        return Record(str(product), "done", str(target), round(time.monotonic() - start, 2),
                      warning="; ".join(warnings) or None)
    except S2srError as exc:
        return Record(str(product), "failed", None, round(time.monotonic() - start, 2), str(exc), exit_code_for(exc))
    except Exception as exc:  # a bug or a broken file the library did not foresee: recorded, the batch goes on
        return Record(str(product), "failed", None, round(time.monotonic() - start, 2), f"{type(exc).__name__}: {exc}", 1)


def run_batch(
    inputs: list[str | Path],
    output_dir: str | Path,
    options: BatchOptions = BatchOptions(),
    *,
    address: str | None = None,
    workers: int | None = None,
    log: Callable[[str], None] = lambda s: None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Record]:
    """Super-resolve many products on Ray; returns their records (also written to ``output_dir/batch.json``).

    Without ``address`` a local Ray instance uses this machine (all cores, the GPU if any); with it the
    batch joins a running cluster. ``workers``: actors in the pool (default: one per GPU, else one per two
    cores).
    """
    import ray

    if workers is not None and workers < 1:
        raise InputParametersError(f"workers must be 1 or more, got {workers}")
    output_dir = Path(output_dir)
    products = find_inputs(inputs)
    if not products:
        raise NoInputError(f"no products found in {', '.join(map(str, inputs))}")
    check_folders([(output_dir, 0, "the batch's output folder")])  # writable, before Ray starts
    with storage_faults(output_dir, "the batch's output folder"):
        output_dir.mkdir(parents=True, exist_ok=True)
    bands = output_bands(options.copy_original_bands)
    records: dict[str, Record] = {}
    todo = []
    for product in products:
        done = _complete_output(product, output_dir, bands)
        if done is not None:
            records[str(product)] = Record(str(product), "skipped", str(done))
        else:
            todo.append(product)
    log(f"{len(products)} products: {len(records)} complete from an earlier run, {len(todo)} to do")
    _write_records(output_dir, products, records)
    if not todo:
        return [records[str(p)] for p in products]

    started_here = not ray.is_initialized()
    if started_here:
        # "local": a Ray of its own, not whatever cluster a `ray start` left running here (--address auto joins that)
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                 logging_level="warning")
    try:
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
        count = workers or (gpus if gpus else max(1, cpus // 2))
        count = max(1, min(count, len(todo)))
        per_worker = {"num_gpus": 1} if gpus else {"num_cpus": max(1, cpus // count)}
        log(f"{count} worker(s) on Ray ({cpus} CPUs, {gpus} GPUs)")
        finished = 0

        def on_record(record: Record) -> None:
            nonlocal finished
            records[record.input] = record
            finished += 1
            _write_records(output_dir, products, records)
            log(f"{Path(record.input).name}: {record.status}" + (f" in {record.seconds:.0f} s" if record.status == "done"
                                                                 else f" (exit {record.exit_code}): {record.error}")
                + (f"; {record.warning}" if record.warning else ""))
            if progress is not None:
                progress(finished, len(todo))

        worker_cls = ray.remote(max_restarts=0, max_task_retries=0, **per_worker)(_Worker)
        _run_pool(ray, lambda: worker_cls.remote(str(output_dir), options), count, todo,
                  lambda p: _complete_output(p, output_dir, bands), on_record, log)
    finally:
        if started_here:
            ray.shutdown()
    return [records[str(p)] for p in products]


def _run_pool(ray: Any, new_worker: Callable[[], Any], count: int, todo: list[Path],
              complete: Callable[[Path], Path | None], on_record: Callable[[Record], None],
              log: Callable[[str], None]) -> None:
    """Hand ``todo`` to ``count`` workers, one product each at a time, and ``on_record`` each result.

    Ray's own retries cannot be used: an actor restarted where its node is gone waits for room that may never
    come, and its calls with it. Here a lost worker is killed and replaced (the replacement takes work only
    once it has started), and its product is given to the next free worker, up to ``ATTEMPTS`` workers."""
    from ray.exceptions import RayError, RayTaskError

    pending = deque(todo)
    tries: dict[Path, int] = {}
    idle: list[Any] = []
    starting: dict[Any, Any] = {}  # ready() reference -> worker
    running: dict[Any, tuple[Any, Path, float]] = {}  # process() reference -> worker, product, start
    failed_starts = 0

    def start() -> None:
        worker = new_worker()
        starting[worker.ready.remote()] = worker

    for _ in range(count):
        start()
    try:
        while pending or running:
            while idle and pending:
                worker, product = idle.pop(), pending.popleft()
                tries[product] = tries.get(product, 0) + 1
                running[worker.process.remote(str(product))] = (worker, product, time.monotonic())
            ready, _ = ray.wait([*running, *starting], num_returns=1, timeout=START_TIMEOUT_S)
            if not ready:
                if running:
                    continue  # products take long; the workers are busy
                reason = f"no Ray worker could start within {START_TIMEOUT_S} s (the cluster has no room for one)"
                for product in pending:
                    on_record(Record(str(product), "failed", None, 0.0, reason, 1, tries.get(product, 0)))
                return
            ref = ready[0]
            if ref in starting:
                worker = starting.pop(ref)
                try:
                    ray.get(ref)
                    idle.append(worker)
                except RayError as exc:
                    failed_starts += 1
                    if failed_starts > count * ATTEMPTS:  # workers that cannot start at all (a broken install)
                        for product in pending:
                            on_record(Record(str(product), "failed", None, 0.0, f"Ray workers fail to start: "
                                             f"{_first_line(exc)}", 1, tries.get(product, 0)))
                        return
                    start()
                continue
            worker, product, began = running.pop(ref)
            try:
                record = ray.get(ref)
                idle.append(worker)
            except RayTaskError as exc:  # process() raised after all (it records every error): a bug, recorded
                record = Record(str(product), "failed", None, round(time.monotonic() - began, 2), _first_line(exc), 1)
                idle.append(worker)
            except RayError as exc:  # the worker is lost: its process, or its node
                _kill(ray, worker)
                start()
                done = complete(product)
                if done is not None:  # it had written the product before it was lost
                    record = Record(str(product), "done", str(done), round(time.monotonic() - began, 2))
                elif tries[product] < ATTEMPTS:
                    log(f"{product.name}: its Ray worker was lost ({_first_line(exc)}); trying again")
                    pending.appendleft(product)
                    continue
                else:
                    record = Record(str(product), "failed", None, round(time.monotonic() - began, 2),
                                    f"lost its Ray worker {ATTEMPTS} times (killed, out of memory, or its node gone); "
                                    f"last: {_first_line(exc)}", 1)
            on_record(Record(**{**asdict(record), "attempts": tries[product]}))
    finally:
        for worker in [*idle, *starting.values(), *(w for w, _, _ in running.values())]:
            _kill(ray, worker)


def _kill(ray: Any, worker: Any) -> None:
    try:
        ray.kill(worker, no_restart=True)
    except Exception:  # already gone with its node
        pass


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


class _Worker:
    """A Ray actor: loads the nets once, then takes product after product."""

    def __init__(self, output_dir: str, options: BatchOptions):
        from .inference import load_nets

        self.output_dir, self.options = Path(output_dir), options
        weights = Path(options.weights_dir) if options.weights_dir else None
        for level in ("L1C", "L2A"):
            load_nets(level, True, weights, device=options.device, precision=options.precision)

    def ready(self) -> bool:
        """Answers once the nets are loaded: the worker takes products from then on."""
        return True

    def process(self, product: str) -> Record:
        return process(Path(product), self.output_dir, self.options)


def _complete_output(product: Path, output_dir: Path, bands: tuple[str, ...]) -> Path | None:
    try:
        from .product import open_product

        target = output_dir / f"{open_product(product).name}{SUFFIX}"
    except S2srError:
        return None
    return target if is_complete(target, bands) else None


def _write_records(output_dir: Path, products: list[Path], records: dict[str, Record]) -> Path:
    rows = [asdict(records[str(p)]) if str(p) in records else asdict(Record(str(p), "pending")) for p in products]
    summary = {s: sum(r["status"] == s for r in rows) for s in ("done", "skipped", "failed", "pending")}
    path = output_dir / "batch.json"
    tmp = path.with_name(f".batch.json.{os.getpid()}.tmp")
    try:
        with storage_faults(output_dir, "the batch's output folder"):
            tmp.write_text(json.dumps({"summary": summary, "products": rows}, indent=2))
            tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
