"""Helpers of ``ci/container.sh e2e``: prepare the mounted input, then check what the container wrote."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import rasterio

from s2sr.sample import SampleSpec, build_sample_product, sample_masks

SPEC = SampleSpec(size=120)
#: A second scene 100 km away, as a July 2019 product of another orbit would be: outside the AOI.
FAR = SampleSpec(size=120, origin=(499980.0, 5900040.0), date="20190715T101559")
#: The neighbouring tile of SPEC's overpass (the same datatake), 60 px to the east: with ``mosaic`` one output.
EAST = SampleSpec(size=120, tile="33UUV", origin=(SPEC.origin[0] + 600.0, SPEC.origin[1]), seed=1)


def _deliver(folder: Path, specs: tuple[SampleSpec, ...], prefix: str) -> None:
    """The layout UP42's Sentinel-2 data blocks deliver: one folder per product, data_path at the folder."""
    features = []
    for n, spec in enumerate(specs, start=1):
        product_folder = folder / f"ef60b465-{prefix}-{n}"
        build_sample_product(product_folder, spec)
        features.append({"type": "Feature", "id": f"{prefix}-{n}", "geometry": None,
                         "properties": {"up42.data_path": product_folder.name}})
    (folder / "data.json").write_text(json.dumps({"type": "FeatureCollection", "features": features}))


def prepare(work: Path) -> None:
    """The product page's run: SPEC and FAR in ``input``, an AOI inside SPEC."""
    for d in ("input", "output", "quicklooks"):
        (work / d).mkdir(parents=True, exist_ok=True)
    _deliver(work / "input", (SPEC, FAR), "e2e")
    params = {"bbox": SPEC.wgs84_bbox(20, 20, 80, 80), "clip_to_aoi": True, "copy_original_bands": True}
    (work / "params.json").write_text(json.dumps(params))


def prepare_mosaic(work: Path) -> None:
    """Two products of one datatake in ``input-mosaic``, and ``mosaic: true`` over an AOI across both."""
    (work / "input-mosaic").mkdir(parents=True, exist_ok=True)
    _deliver(work / "input-mosaic", (SPEC, EAST), "mosaic")
    params = {"bbox": SPEC.wgs84_bbox(20, 40, 80, 160), "clip_to_aoi": True, "mosaic": True}
    (work / "params-mosaic.json").write_text(json.dumps(params))


def check_mosaic(work: Path) -> None:
    """One feature for the two products, its file across both, its Item linking both."""
    fc = json.loads((work / "output" / "data.json").read_text())
    (feature,) = fc["features"]
    props = feature["properties"]
    assert props["up42.data_path"] == "mosaic-1/S2B_MSIL2A_20230615_R022_SR10m.tif", props["up42.data_path"]
    assert props["s2sr.source_features"] == ["mosaic-1", "mosaic-2"], props["s2sr.source_features"]
    item = json.loads((work / "output" / props["s2sr.stac_item"]).read_text())
    assert [link["rel"] for link in item["links"]] == ["derived_from", "derived_from"], item["links"]
    with rasterio.open(work / "output" / props["up42.data_path"]) as ds:
        assert ds.crs.to_epsg() == SPEC.epsg and ds.count == 12
        right = (ds.transform.c - SPEC.origin[0]) / 10 + ds.width
        assert right > SPEC.size, f"the mosaic ends at column {right}, within the first product"  # reaches into EAST
        assert (ds.read(1) > 0).mean() > 0.7
    assert props["s2sr.masks_status"]["status"] == "written", props["s2sr.masks_status"]
    print("e2e: mosaic checked:", props["up42.data_path"])


def check(work: Path) -> None:
    params = json.loads((work / "params.json").read_text())
    fc = json.loads((work / "output" / "data.json").read_text())
    (feature,) = fc["features"]  # the far product does not overlap the AOI: skipped, not fatal
    assert feature["id"] == "e2e-1", feature["id"]
    assert all(abs(a - b) < 1e-6 for a, b in zip(feature["bbox"], params["bbox"], strict=True)), feature["bbox"]
    assert feature["geometry"]["type"] == "Polygon"
    with rasterio.open(work / "output" / feature["properties"]["up42.data_path"]) as ds:
        assert ds.count == 12, ds.count
        assert ds.res == (10.0, 10.0) and ds.transform.a == 10 and ds.transform.e == -10
        assert ds.crs.to_epsg() == SPEC.epsg
        assert ds.nodata == 0 and ds.dtypes[0] == "uint16"
        assert ds.descriptions[0] == "SR B1 (443 nm)" and ds.descriptions[1] == "B2 (490 nm)"
        assert ds.descriptions[-1] == "SR B12 (2190 nm)"
        data = ds.read()
        assert (data > 0).mean() > 0.7  # the reprojected bbox, clipped inside its 60 m-aligned window
    assert (work / "quicklooks" / "e2e-1.png").is_file() and not (work / "quicklooks" / "e2e-2.png").exists()
    print("e2e: output checked:", feature["properties"]["up42.data_path"])
    check_masks(work, feature, data.all(axis=0))


def check_masks(work: Path, feature: dict, valid: np.ndarray) -> None:
    """The product's SCL and cloud probability beside the output, listed in data.json: on the output's grid,
    the sample's 20 m masks at every pixel's centre, 255 where the bands are nodata."""
    props = feature["properties"]
    assert props["s2sr.masks"] == props["up42.data_path"].replace(".tif", "_masks.tif"), props.get("s2sr.masks")
    assert props["s2sr.masks_status"]["status"] == "written", props["s2sr.masks_status"]
    with rasterio.open(work / "output" / props["s2sr.masks"]) as masks, \
            rasterio.open(work / "output" / props["up42.data_path"]) as ds:
        assert (masks.transform, masks.shape, masks.crs) == (ds.transform, ds.shape, ds.crs)
        assert masks.dtypes == ("uint8", "uint8") and masks.nodata == 255
        assert [masks.tags(i)["band"] for i in (1, 2)] == ["scl", "cloud_probability"]
        got = masks.read()
        col, row = (round(v) for v in ~rasterio.transform.from_origin(*SPEC.origin, 10, 10) * (ds.transform.c, ds.transform.f))
    for band, kind in enumerate(("scl", "cloud_probability")):
        whole = np.repeat(np.repeat(sample_masks(SPEC)[kind], 2, 0), 2, 1)
        want = whole[row : row + got.shape[1], col : col + got.shape[2]]
        assert (got[band] == np.where(valid, want, 255)).all(), kind
    item = json.loads((work / "output" / props["s2sr.stac_item"]).read_text())
    assert item["assets"]["masks"]["raster:bands"][0]["classification:classes"][9]["name"] == "cloud_high_probability"
    print("e2e: masks checked:", props["s2sr.masks"])


def check_empty(work: Path, code: int) -> None:
    assert code == 2, f"bad parameters exited {code}, expected 2"
    leftovers = [p for d in ("output", "quicklooks") for p in (work / d).rglob("*") if p.is_file()]
    assert not leftovers, leftovers
    print("e2e: bad parameters exited 2 and wrote nothing")


def check_label() -> None:
    label = json.loads(sys.stdin.read())
    assert label["_up42_specification_version"] == 2 and label["name"] == "s2sr", label
    print("e2e: up42_manifest label present")


if __name__ == "__main__":
    action = sys.argv[1]
    if action == "prepare":
        prepare(Path(sys.argv[2]))
        prepare_mosaic(Path(sys.argv[2]))
    elif action == "check-mosaic":
        check_mosaic(Path(sys.argv[2]))
    elif action == "check":
        check(Path(sys.argv[2]))
    elif action == "check-empty":
        check_empty(Path(sys.argv[2]), int(sys.argv[3]))
    elif action == "check-label":
        check_label()
