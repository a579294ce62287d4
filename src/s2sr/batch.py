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

from .bands import output_bands
from .errors import InputParametersError, NoInputError, S2srError, exit_code_for
from .options import RunOptions
from .storage import check_folders, storage_faults

SUFFIX = "_SR10m.tif"
#: Workers one product may lose (each a killed process, an out-of-memory kill or a lost node) before it is
#: recorded as failed instead of tried again.
ATTEMPTS = 3
#: With no product running, how long the batch waits for a worker to start (a replacement may never find
#: room on a cluster that lost nodes) before the products left are recorded as failed.
START_TIMEOUT_S = 600


#: What every product of a batch is run with: the options of ``s2sr run`` (the name kept for callers of old).
BatchOptions = RunOptions


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
    sources: list[str] | None = None  # with ``mosaic``: the products of the datatake (``input`` is its name)


def find_inputs(inputs: list[str | Path]) -> list[Path | str]:
    """Products named by ``inputs``: products themselves, http(s) URLs of STAC Items (kept as strings), folders
    searched (not recursively below a product) for ``.SAFE`` directories, zips and STAC Items, and text files
    listing one input per line."""
    from .stac import is_stac_item, is_url

    found: list[Path | str] = []
    for raw in inputs:
        if isinstance(raw, str) and is_url(raw):  # a STAC Item read in place
            found.append(raw)
            continue
        path = Path(raw)
        if not path.exists():
            raise NoInputError(f"batch input {path} does not exist")
        if path.is_file() and path.suffix.lower() in (".txt", ".list"):
            lines = [line.strip() for line in path.read_text().splitlines()]
            found += find_inputs([line if is_url(line) else path.parent / line
                                  for line in lines if line and not line.startswith("#")])
        elif path.is_dir() and path.suffix.upper() != ".SAFE" and not any(path.glob("MTD_MSIL*.xml")):
            for child in sorted(path.iterdir()):
                if child.suffix.upper() == ".SAFE" or child.suffix.lower() == ".zip" or is_stac_item(child):
                    found.append(child)
                elif child.is_dir():
                    found += find_inputs([child])
        else:
            found.append(path)
    return list(dict.fromkeys(p if isinstance(p, str) else p.resolve() for p in found))


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


def process(product: Path, output_dir: Path, options: RunOptions) -> Record:
    """Run one product; every error becomes a failed record (with the block's exit code), never a raise."""
    from .pipeline import superresolve_product
    from .product import open_product

    start = time.monotonic()
    warnings: list[str] = []
    try:
        located = open_product(product)
        target = output_dir / f"{located.name}{SUFFIX}"
        # the batch's own target, not complete (``run_batch``): an earlier run's damaged output is redone
        superresolve_product(product, target, options, warn=warnings.append, overwrite=True)
        return Record(str(product), "done", str(target), round(time.monotonic() - start, 2),
                      warning="; ".join(warnings) or None)
    except S2srError as exc:
        return Record(str(product), "failed", None, round(time.monotonic() - start, 2), str(exc), exit_code_for(exc))
    except Exception as exc:  # a bug or a broken file the library did not foresee: recorded, the batch goes on
        return Record(str(product), "failed", None, round(time.monotonic() - start, 2), f"{type(exc).__name__}: {exc}", 1)


def process_mosaic(name: str, products: list[Path], output_dir: Path, options: RunOptions) -> Record:
    """Run the products of one datatake into one mosaic (``mosaic``); like ``process``, never a raise. Products
    skipped inside the mosaic (corrupt, outside the AOI) are named in the record's warning."""
    from .mosaic import superresolve_mosaic

    start = time.monotonic()
    warnings: list[str] = []
    sources = [str(p) for p in products]
    target = output_dir / f"{name}{SUFFIX}"
    try:
        superresolve_mosaic(products, target, options, warn=warnings.append, overwrite=True)  # its own target
        return Record(name, "done", str(target), round(time.monotonic() - start, 2),
                      warning="; ".join(warnings) or None, sources=sources)
    except S2srError as exc:
        return Record(name, "failed", None, round(time.monotonic() - start, 2), str(exc), exit_code_for(exc),
                      sources=sources)
    except Exception as exc:  # as ``process``: recorded, the batch goes on
        return Record(name, "failed", None, round(time.monotonic() - start, 2), f"{type(exc).__name__}: {exc}", 1,
                      sources=sources)


def run_batch(
    inputs: list[str | Path],
    output_dir: str | Path,
    options: RunOptions | None = None,
    *,
    address: str | None = None,
    workers: int | None = None,
    log: Callable[[str], None] = lambda s: None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Record]:
    """Super-resolve many products on Ray; returns their records (also written to ``output_dir/batch.json``).

    Without ``address`` a local Ray instance uses this machine (all cores, the GPU if any); with it the
    batch joins a running cluster. ``workers``: actors in the pool (default: one per GPU, else one per two
    cores). With ``options.mosaic`` the products are grouped by datatake (``mosaic.group_by_datatake``) and
    each group gives one output, ``DIR/<datatake>_SR10m.tif``, recorded under the datatake's name.
    """
    import ray

    options = RunOptions.parse(options)
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
    groups = None
    if options.mosaic:
        products, groups, records = _datatakes(products, log)
    todo = []
    for product in products:
        if str(product) in records:
            continue
        done = None if options.overwrite else _complete_output(product, output_dir, bands, groups)
        if done is not None:
            records[str(product)] = Record(str(product), "skipped", str(done),
                                           sources=groups[str(product)] if groups else None)
        else:
            todo.append(product)
    log(f"{len(products)} {'datatakes' if groups else 'products'}: {len(records)} complete from an earlier run "
        f"or unreadable, {len(todo)} to do")
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
        _run_pool(ray, lambda: worker_cls.remote(str(output_dir), options, groups), count, todo,
                  lambda p: _complete_output(p, output_dir, bands, groups), on_record, log)
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

    def __init__(self, output_dir: str, options: RunOptions, groups: dict[str, list[str]] | None = None):
        from .inference import load_nets

        self.output_dir, self.options, self.groups = Path(output_dir), options, groups
        for level in ("L1C", "L2A"):
            load_nets(level, True, options.weights_dir, device=options.device, precision=options.precision)

    def ready(self) -> bool:
        """Answers once the nets are loaded: the worker takes products from then on."""
        return True

    def process(self, product: str) -> Record:
        if self.groups is not None:  # a datatake's name: its products into one mosaic
            return process_mosaic(product, [Path(p) for p in self.groups[product]], self.output_dir, self.options)
        return process(Path(product), self.output_dir, self.options)


def _datatakes(products: list[Path], log: Callable[[str], None]) -> tuple[list[Path], dict[str, list[str]], dict[str, Record]]:
    """With ``mosaic``: the datatakes' names (as the batch's keys), their products, and a failed record for each
    product that cannot be grouped (unreadable, or a name that does not say its datatake)."""
    from .mosaic import datatake_of
    from .product import open_product

    groups: dict[str, list[str]] = {}
    failed: dict[str, Record] = {}
    for product in products:
        try:
            groups.setdefault(datatake_of(open_product(product)).name, []).append(str(product))
        except S2srError as exc:
            failed[str(product)] = Record(str(product), "failed", None, 0.0, str(exc), exit_code_for(exc))
            log(f"{product.name}: failed (exit {exit_code_for(exc)}): {exc}")
    names = sorted(groups)
    log(f"{len(products)} products in {len(names)} datatake(s): " + "; ".join(f"{n} ({len(groups[n])})" for n in names))
    return [Path(n) for n in names] + [Path(p) for p in failed], groups, failed


def _complete_output(product: Path, output_dir: Path, bands: tuple[str, ...],
                     groups: dict[str, list[str]] | None = None) -> Path | None:
    if groups is not None and str(product) in groups:
        target = output_dir / f"{product}{SUFFIX}"
        return target if is_complete(target, bands) else None
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
