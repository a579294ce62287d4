"""STAC search against a real STAC API server started here: rustac's ``serve`` (in-memory backend).

Its collection holds Items of test products (the sample builder's scenes, real band files as local
tiled GeoTIFFs) placed over the product page's AOI (Tempelhof, Berlin) in July 2018, July 2019 and August
2019, with different cloud covers.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
from conftest import free_port, stac_api_server

from s2sr.errors import InputParametersError
from s2sr.sample import SampleSpec, build_sample_item
from s2sr.search import CatalogueError, SearchRequest, choose, search_items, signer

TEMPELHOF = [13.352809, 52.485219, 13.392914, 52.515197]  # the product page's bbox
JULY_2018, JULY_2019 = "2018-07-01/2018-07-31", "2019-07-01/2019-07-31"
#: (acquisition, cloud cover): two scenes in July 2018, one in July 2019, one in August 2019
SCENES = (("20180705T102021", 12.0), ("20180720T102019", 3.0), ("20190710T102031", 40.0), ("20190804T102029", 1.0))
#: UTM 33N (tile 33UUU), upper-left corner: 384 px of 10 m cover the AOI (x 388150-390947, y 5816222-5819617)
ORIGIN = (388020.0, 5819700.0)


def _catalogue(folder: Path) -> tuple[Path, Path]:
    """A collection and a FeatureCollection of the scenes' Items, asset hrefs absolute file:// URLs."""
    items = []
    for date, cloud in SCENES:
        spec = SampleSpec(date=date, origin=ORIGIN, size=384, nodata_edge=False, seed=int(date[3]))
        item = json.loads(build_sample_item(folder / date, spec, "earth-search").read_text())
        item["properties"]["eo:cloud_cover"] = cloud
        for asset in item["assets"].values():
            asset["href"] = (folder / date / asset["href"]).resolve().as_uri()  # file:///...
        items.append(item)
    west = min(i["bbox"][0] for i in items)
    collection = {
        "type": "Collection", "stac_version": "1.0.0", "id": "sentinel-2-l2a", "description": "test products",
        "license": "other", "links": [],
        "extent": {"spatial": {"bbox": [[west, 52.4, 13.5, 52.6]]},
                   "temporal": {"interval": [["2018-01-01T00:00:00Z", "2019-12-31T23:59:59Z"]]}},
    }
    (folder / "collection.json").write_text(json.dumps(collection))
    (folder / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    return folder / "collection.json", folder / "items.json"


@pytest.fixture(scope="module")
def stac_api(tmp_path_factory):
    """The URL of a STAC API server on this machine, serving the test collection; stopped afterwards."""
    collection, items = _catalogue(tmp_path_factory.mktemp("catalogue"))
    with stac_api_server(collection, items) as url:
        yield url


def _s2sr(*args):
    return subprocess.run([sys.executable, "-m", "s2sr.cli", *map(str, args)], capture_output=True, text=True, timeout=900)


def _dates(found) -> list[str]:
    return [json.loads(f.path.read_text())["properties"]["datetime"][:10] for f in found]


def test_the_product_page_job_two_periods_give_two_clipped_outputs_with_their_items(stac_api, tmp_path):
    out = tmp_path / "out"
    proc = _s2sr("batch", "--stac-api", stac_api, "--bbox", *TEMPELHOF, "--datetime", JULY_2018, "--datetime", JULY_2019,
                 "--output-dir", out, "--device", "cpu", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert f"search {JULY_2018}: S2B_MSIL2A_20180720T102019" in proc.stderr  # the least cloudy of the two
    assert f"search {JULY_2019}: S2B_MSIL2A_20190710T102031" in proc.stderr
    records = json.loads((out / "batch.json").read_text())
    assert records["summary"] == {"done": 2, "skipped": 0, "failed": 0, "pending": 0}
    outputs = sorted(out.glob("*_SR10m.tif"))
    assert [p.name[:26] for p in outputs] == ["S2B_MSIL2A_20180720T102019", "S2B_MSIL2A_20190710T102031"]
    for tif in outputs:
        item = json.loads(tif.with_suffix(".json").read_text())  # the output's STAC Item
        assert item["assets"]["data"]["href"] == f"./{tif.name}"
        source = out / next(link["href"] for link in item["links"] if link["rel"] == "derived_from")
        assert source.parent == out / "items"  # the Item the search wrote, which names where it came from
        via = next(link["href"] for link in json.loads(source.read_text())["links"] if link["rel"] == "via")
        assert via.startswith(f"{stac_api}/collections/sentinel-2-l2a/items/S2B_MSIL2A_")
        west, south, east, north = item["bbox"]  # clipped: the written footprint is the AOI
        assert [west, south, east, north] == pytest.approx(TEMPELHOF, abs=2e-4)
        with rasterio.open(tif) as ds:
            assert ds.count == 12 and ds.res == (10.0, 10.0)
            h, w = ds.shape  # the AOI's window (about 2.8 x 3.4 km), aligned outward to the 60 m grid
            assert 280 <= w <= 300 and 340 <= h <= 360 and h % 6 == 0 and w % 6 == 0
            valid = ds.read_masks(1)
            assert valid[0, 0] == 0 and valid[h // 2, w // 2] == 255  # outside the polygon: nodata


def test_limit_and_max_cloud_are_honoured(stac_api, tmp_path):
    both = search_items(SearchRequest(stac_api, TEMPELHOF, (JULY_2018,), limit=2), tmp_path / "a")
    assert [f.cloud_cover for f in both] == [3.0, 12.0] and _dates(both) == ["2018-07-20", "2018-07-05"]
    assert all(f.path.parent == tmp_path / "a" for f in both)
    clear = search_items(SearchRequest(stac_api, TEMPELHOF, (JULY_2018, "2019-07-01/2019-08-31"), max_cloud=10, limit=5),
                         tmp_path / "b")
    assert [(f.period, f.cloud_cover) for f in clear] == [(JULY_2018, 3.0), ("2019-07-01/2019-08-31", 1.0)]
    item = json.loads(clear[0].path.read_text())  # written with absolute hrefs to the local band files
    href = item["assets"]["blue"]["href"]
    assert href.startswith("file:///") and Path(href[7:]).is_file()


def test_a_geojson_aoi_is_searched_as_intersects(stac_api, tmp_path):
    west, south, east, north = TEMPELHOF
    polygon = {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, south]]]}
    found = search_items(SearchRequest(stac_api, polygon, (JULY_2019,)), tmp_path)
    assert _dates(found) == ["2019-07-10"]
    elsewhere = {"type": "Polygon", "coordinates": [[[2.0, 48.0], [2.1, 48.0], [2.1, 48.1], [2.0, 48.0]]]}
    with pytest.raises(InputParametersError, match="no sentinel-2-l2a Item over the AOI in 2019-07"):
        search_items(SearchRequest(stac_api, elsewhere, (JULY_2019,)), tmp_path)


def test_an_empty_search_exits_2_with_one_line_and_writes_nothing(stac_api, tmp_path):
    out = tmp_path / "out"
    proc = _s2sr("batch", "--stac-api", stac_api, "--bbox", *TEMPELHOF, "--datetime", JULY_2018, "--datetime", JULY_2019,
                 "--max-cloud", 30, "--output-dir", out)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0] == (f"s2sr: error: STAC API {stac_api}: no sentinel-2-l2a Item with at most 30 % cloud cover over the "
                        f"AOI in {JULY_2019} (1 without the cloud limit); widen --datetime or raise --max-cloud")
    assert not out.exists()  # July 2018 had one: nothing is written unless every period has its Items


def test_an_unreachable_api_exits_with_one_line_naming_the_url(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    proc = _s2sr("batch", "--stac-api", url, "--bbox", *TEMPELHOF, "--datetime", JULY_2018, "--output-dir", tmp_path / "o")
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"s2sr: error: STAC API {url} cannot be reached")
    assert "check the URL and the network" in lines[0] and "Traceback" not in proc.stderr
    with pytest.raises(CatalogueError):
        search_items(SearchRequest(url, TEMPELHOF, (JULY_2018,)), tmp_path)


@pytest.mark.parametrize(("args", "message"), [
    (["--datetime", JULY_2018], "need --stac-api URL"),
    (["--stac-api", "http://127.0.0.1:9/v1", "--datetime", JULY_2018], "needs the AOI to search"),
    (["--stac-api", "earth-search", "--bbox", *TEMPELHOF, "--datetime", JULY_2018], "is not an http(s) URL"),
    (["--stac-api", "http://127.0.0.1:9/v1", "--bbox", *TEMPELHOF], "at least one --datetime period"),
    (["--stac-api", "http://127.0.0.1:9/v1", "--bbox", *TEMPELHOF, "--datetime", "July"], "'July' is not a period"),
    (["--stac-api", "http://127.0.0.1:9/v1", "--bbox", *TEMPELHOF, "--datetime", JULY_2018, "--limit", 0], "--limit must be 1"),
    (["--stac-api", "http://127.0.0.1:9/v1", "--bbox", *TEMPELHOF, "--datetime", JULY_2018, "--max-cloud", 101],
     "--max-cloud must be a percentage"),
    ([], "give products, folders or lists to run, or --stac-api URL"),
])
def test_bad_search_parameters_exit_2(tmp_path, args, message):
    proc = _s2sr("batch", *args, "--output-dir", tmp_path / "o")
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_choose_keeps_the_least_cloudy_within_the_limit():
    import pystac

    def item(name, cloud, day):
        props = {} if cloud is None else {"eo:cloud_cover": cloud}
        return pystac.Item(name, None, None, pystac.utils.str_to_datetime(f"2018-07-{day:02d}T10:00:00Z"), props)

    items = [item("a", 50, 1), item("b", 5, 9), item("c", None, 3), item("d", 5, 2)]
    assert [i.id for i in choose(items, 100, 4)] == ["d", "b", "a", "c"]  # ties by date; unknown cover last
    assert [i.id for i in choose(items, 10, 4)] == ["d", "b"]  # unknown cover is not "at most 10 %"
    assert [i.id for i in choose(items, 0, 1)] == []


def test_planetary_computer_items_are_signed_and_others_are_used_as_they_come():
    import importlib.util

    item = object()
    assert signer("https://earth-search.aws.element84.com/v1")(item) is item
    api = "https://planetarycomputer.microsoft.com/api/stac/v1"
    if importlib.util.find_spec("planetary_computer") is None:  # the optional extra: asked for by name
        with pytest.raises(InputParametersError, match=r"pip install 's2sr\[planetary-computer\]'"):
            signer(api)
    else:
        import planetary_computer

        assert signer(api) is planetary_computer.sign
