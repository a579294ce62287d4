"""``s2sr batch`` on Ray's own local multi-node cluster: a worker node lost mid-batch costs nothing (every
product written once, batch.json accurate, no hang, no traceback); a product whose worker keeps dying (as the
out-of-memory killer kills it) is tried a bounded number of times and recorded."""

import json
import os
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402

from s2sr import cli  # noqa: E402
from s2sr.bands import output_bands  # noqa: E402
from s2sr.batch import ATTEMPTS, BatchOptions, is_complete, run_batch  # noqa: E402
from s2sr.sample import SampleSpec, build_sample_product  # noqa: E402


def _products(folder: Path, n: int) -> list[Path]:
    return [build_sample_product(folder, SampleSpec(size=72, date=f"2023{m:02d}15T101559", seed=m)) for m in range(1, n + 1)]


@pytest.fixture
def two_node_cluster():
    """A head that runs no workers and two worker nodes of 1 CPU each, as separate raylets."""
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    yield cluster, nodes
    ray.shutdown()
    cluster.shutdown()


def _stall_once(marker: str):
    """A worker setup hook: the first worker to write a tile stops there (busy, as on a long product) after
    leaving its node's id in ``marker``. Nested, so Ray ships it by value."""

    def setup() -> None:
        import os
        import time

        import ray

        from s2sr import phases

        def stall(phase: str, target) -> None:
            if phase != "tile written":
                return
            try:
                os.close(os.open(marker + ".first", os.O_CREAT | os.O_EXCL | os.O_WRONLY))  # only the first one
            except FileExistsError:
                return
            with open(marker + ".tmp", "w") as f:
                f.write(f"{ray.get_runtime_context().get_node_id()} {target.name}")
            os.rename(marker + ".tmp", marker)
            while True:
                time.sleep(1)

        phases.hook = stall

    return setup


def _die_on(name: str):
    """A worker setup hook: a worker dies (SIGKILL, as the out-of-memory killer does it) on product ``name``."""

    def setup() -> None:
        import os
        import signal

        from s2sr import phases

        def die(phase: str, target) -> None:
            if phase == "tile written" and name in str(target):
                os.kill(os.getpid(), signal.SIGKILL)

        phases.hook = die

    return setup


def test_a_lost_worker_node_costs_nothing(two_node_cluster, tmp_path, capsys):
    cluster, nodes = two_node_cluster
    products = _products(tmp_path / "in", 6)
    marker = str(tmp_path / "stalled-on-node")
    ray.init(address=cluster.address, runtime_env={"worker_process_setup_hook": _stall_once(marker)}, log_to_driver=False)
    removed: list[str] = []

    def remove_the_busy_node() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not os.path.exists(marker):
            time.sleep(0.1)
        node_id, _ = Path(marker).read_text().split()
        node = next(n for n in nodes if n.node_id == node_id)
        cluster.remove_node(node)  # its raylet and its workers are killed, mid-product
        removed.append(node_id)

    remover = threading.Thread(target=remove_the_busy_node, daemon=True)
    remover.start()
    out = tmp_path / "out"
    code = cli.main(["batch", str(tmp_path / "in"), "--output-dir", str(out), "--tile-size", "36", "--workers", "2"])
    remover.join(timeout=10)
    err = capsys.readouterr().err
    assert removed, "no worker reached its first tile"
    assert code == 0 and "Traceback" not in err, err
    assert "its Ray worker was lost" in err
    report = json.loads((out / "batch.json").read_text())
    assert report["summary"] == {"done": 6, "skipped": 0, "failed": 0, "pending": 0}
    rows = report["products"]
    assert sorted(r["input"] for r in rows) == sorted(str(p.resolve()) for p in products)  # each once
    lost = Path(marker).read_text().split()[1].removesuffix("_SR10m.tif")
    attempts = {Path(r["input"]).stem: r["attempts"] for r in rows}
    assert 2 <= attempts.pop(lost) <= ATTEMPTS  # given to another worker (more, where a test of another session
    assert all(1 <= a <= ATTEMPTS for a in attempts.values())  # on this machine kills _Worker processes too)
    written = sorted(out.glob("*_SR10m.tif"))
    assert len(written) == 6 and all(is_complete(p, output_bands(True)) for p in written)
    assert sorted(r["output"] for r in rows) == [str(p) for p in written]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no partial left by the lost worker


def test_a_worker_that_keeps_dying_is_tried_a_bounded_number_of_times(tmp_path, tiny_weights):
    if ray.is_initialized():
        ray.shutdown()
    products = _products(tmp_path / "in", 3)
    doomed = products[1].name.removesuffix(".SAFE")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": _die_on(doomed)})
    try:
        records = run_batch(products, tmp_path / "out", BatchOptions(weights_dir=str(tiny_weights), tile_size=36), workers=2)
    finally:
        ray.shutdown()
    assert [r.status for r in records] == ["done", "failed", "done"]
    assert [r.attempts for r in records] == [1, ATTEMPTS, 1]
    assert f"lost its Ray worker {ATTEMPTS} times" in records[1].error and records[1].exit_code == 1
    report = json.loads((tmp_path / "out" / "batch.json").read_text())
    assert report["summary"] == {"done": 2, "skipped": 0, "failed": 1, "pending": 0}
    assert not (tmp_path / "out" / f"{doomed}_SR10m.tif").exists()
