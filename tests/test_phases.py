"""A run killed (SIGKILL) at every phase boundary leaves no output or a whole one, and the next run cleans up.

Each kill is real: a subprocess sets ``s2sr.phases.hook`` to SIGKILL itself when the run reaches the phase.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import rasterio

import s2sr
from s2sr import phases
from s2sr.batch import is_complete
from s2sr.masks import companion_path
from s2sr.sample import SampleSpec, build_sample_product
from s2sr.stac_item import item_path

ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "TF_CPP_MIN_LOG_LEVEL": "3"}
KILL_AT = """
import os, signal, sys
from s2sr import phases

def kill_at(name, target):
    if name == sys.argv[1]:
        os.kill(os.getpid(), signal.SIGKILL)

phases.hook = kill_at
"""
RUN = KILL_AT + """
from pathlib import Path
import s2sr
s2sr.superresolve_product(sys.argv[2], sys.argv[3], weights_dir=Path(sys.argv[4]), tile_size=36, overwrite=True)
sys.exit(3)  # the phase was never reached
"""
BLOCK = KILL_AT + """
from s2sr_block.entrypoint import main
main(["--input-dir", sys.argv[2], "--output-dir", sys.argv[3], "--quicklook-dir", sys.argv[4], "--tile-size", "36"],
     {"UP42_TASK_PARAMETERS": "{}"})
sys.exit(3)
"""


@pytest.fixture(scope="module")
def product(tmp_path_factory) -> Path:
    return build_sample_product(tmp_path_factory.mktemp("product"), SampleSpec(size=72))


@pytest.fixture(scope="module")
def old_output(product, tiny_weights, tmp_path_factory) -> Path:
    """An output of the same target from an earlier run with other options (8 bands, not 12)."""
    return s2sr.superresolve_product(product, tmp_path_factory.mktemp("old") / "o.tif", weights_dir=tiny_weights,
                                     tile_size=36, copy_original_bands=False, masks=False, uncertainty=False)


def _outputs(folder: Path) -> dict[str, int | tuple[int, str]]:
    """The outputs in ``folder``: each GeoTIFF, whole, with an Item that describes it and, where the Item lists
    them, its whole masks and uncertainty files; name -> band count, with ``"masks"`` and ``"uncertainty"`` where
    it has them. A companion file whose GeoTIFF is not there is no output."""
    found: dict[str, int | tuple[int, str]] = {}
    for tif in folder.rglob("*.tif"):
        if tif.name.startswith(".") or tif.name.endswith(("_masks.tif", "_uncertainty.tif")):
            continue
        with rasterio.open(tif) as ds:
            bands = tuple(ds.tags(i)["band"] for i in range(1, ds.count + 1))
        assert is_complete(tif, bands), f"{tif} is not whole or has no Item"
        item = json.loads(item_path(tif).read_text())
        assert [b["name"] for b in item["assets"]["data"]["eo:bands"]] == list(bands), f"{tif}: another run's Item"
        masks = companion_path(tif)
        assert ("masks" in item["assets"]) == masks.exists(), f"{tif}: a masks file of another run, or none"
        if masks.exists():
            with rasterio.open(masks) as ds:
                assert ds.read().shape[0] == len(item["assets"]["masks"]["raster:bands"])  # whole
        intervals = companion_path(tif).with_name(f"{tif.stem}_uncertainty.tif")
        assert ("uncertainty" in item["assets"]) == intervals.exists(), f"{tif}: an uncertainty file of another run, or none"
        if intervals.exists():
            with rasterio.open(intervals) as ds:
                assert ds.read().shape[0] == 8  # whole
        key = tif.relative_to(folder).as_posix()
        extras = tuple(k for k, f in (("masks", masks), ("uncertainty", intervals)) if f.exists())
        found[key] = (len(bands), *extras) if extras else len(bands)
    return found


def test_a_run_passes_every_phase_in_order(product, tiny_weights, old_output, tmp_path, monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(phases, "hook", lambda phase, target: seen.append(phase))
    shutil.copytree(old_output.parent, tmp_path / "out")
    s2sr.superresolve_product(product, tmp_path / "out" / "o.tif", weights_dir=tiny_weights, tile_size=36, overwrite=True)
    assert [p for i, p in enumerate(seen) if p != "tile written" or seen[i - 1] != p] == list(phases.PRODUCT_PHASES)


@pytest.mark.parametrize("phase", phases.PRODUCT_PHASES)
def test_a_run_killed_at_each_phase_leaves_the_old_output_or_the_new_one(product, tiny_weights, old_output, tmp_path,
                                                                          phase, monkeypatch):
    out, staging = tmp_path / "out", tmp_path / "tmp"
    shutil.copytree(old_output.parent, out)  # an earlier run's output of the same target
    staging.mkdir()
    proc = subprocess.run([sys.executable, "-c", RUN, phase, str(product), str(out / "o.tif"), str(tiny_weights)],
                          capture_output=True, text=True, timeout=600, env={**ENV, "TMPDIR": str(staging)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    at = phases.PRODUCT_PHASES.index(phase)
    before, after = at < phases.PRODUCT_PHASES.index("old output removed"), phase == "output in place"
    assert _outputs(out) == ({"o.tif": 8} if before else {"o.tif": (12, "masks", "uncertainty")} if after else {})

    killed_staging = list(staging.iterdir())
    if phases.PRODUCT_PHASES.index("staging open") <= at:
        assert killed_staging, "the killed run had a staging folder"  # else the sweep below is not tested

    monkeypatch.setattr(tempfile, "tempdir", str(staging))
    # the next run replaces the old output, and whatever the killed run left
    s2sr.superresolve_product(product, out / "o.tif", weights_dir=tiny_weights, tile_size=36, overwrite=True)
    assert _outputs(out) == {"o.tif": (12, "masks", "uncertainty")}
    assert sorted(p.name for p in out.iterdir()) == ["o.json", "o.tif", "o_masks.tif", "o_uncertainty.tif"]  # no leftovers
    assert list(staging.iterdir()) == []  # the killed run's staging folder too


def _up42_input(tmp_path: Path, product: Path, n: int) -> Path:
    folder = tmp_path / "input"
    features = []
    for i in range(n):
        shutil.copytree(product, folder / f"scene{i}" / product.name)
        features.append({"type": "Feature", "id": f"f{i}", "geometry": None,
                         "properties": {"up42.data_path": f"scene{i}/{product.name}"}})
    (folder / "data.json").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return folder


@pytest.mark.parametrize("phase", ("output in place",) + phases.BLOCK_PHASES)
def test_a_block_killed_at_each_phase_leaves_no_data_json_or_a_whole_one(product, tmp_path, phase):
    input_dir, out, quicklooks = _up42_input(tmp_path, product, 2), tmp_path / "output", tmp_path / "quicklooks"
    proc = subprocess.run([sys.executable, "-c", BLOCK, phase, str(input_dir), str(out), str(quicklooks)],
                          capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    outputs = _outputs(out) if out.exists() else {}  # every GeoTIFF there is whole with its Item
    if phase != "data.json in place":
        assert not (out / "data.json").exists()  # no data.json: no output of the block
        return
    data = json.loads((out / "data.json").read_text())
    assert len(data["features"]) == 2 and len(outputs) == 2
    for feature in data["features"]:
        props = feature["properties"]
        assert (out / props["up42.data_path"]).is_file() and (out / props["s2sr.stac_item"]).is_file()
        assert (out / props["s2sr.masks"]).is_file()
        assert all((quicklooks / q).is_file() for q in props["s2sr.quicklooks"])


@pytest.mark.parametrize("phase", ["masks in place", "uncertainty in place", "item in place"])
def test_what_a_killed_run_left_is_replaced_without_overwrite(product, tiny_weights, tmp_path, phase):
    """Files s2sr renamed into place before a kill took the GeoTIFF are no output: the next run needs no
    ``overwrite`` for them (a user's file of those names it would refuse: ``test_preflight``)."""
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-c", RUN, phase, str(product), str(out / "o.tif"), str(tiny_weights)],
                          capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert left and "o.tif" not in left, left
    s2sr.superresolve_product(product, out / "o.tif", weights_dir=tiny_weights, tile_size=36)
    assert _outputs(out) == {"o.tif": (12, "masks", "uncertainty")}
