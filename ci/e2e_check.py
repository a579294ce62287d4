"""Helpers of ``ci/container.sh e2e``: prepare the mounted input, then check what the container wrote."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import rasterio

from s2sr.sample import SampleSpec, build_sample_product

SPEC = SampleSpec(size=120)
#: A second scene 100 km away, as a July 2019 product of another orbit would be: outside the AOI.
FAR = SampleSpec(size=120, origin=(499980.0, 5900040.0), date="20190715T101559")


def prepare(work: Path) -> None:
    """The layout UP42's Sentinel-2 data blocks deliver: one folder per product, data_path at the folder."""
    for d in ("input", "output", "quicklooks"):
        (work / d).mkdir(parents=True, exist_ok=True)
    features = []
    for n, spec in enumerate((SPEC, FAR), start=1):
        folder = work / "input" / f"ef60b465-e2e-{n}"
        build_sample_product(folder, spec)
        features.append({"type": "Feature", "id": f"e2e-{n}", "geometry": None, "properties": {"up42.data_path": folder.name}})
    (work / "input" / "data.json").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    params = {"bbox": SPEC.wgs84_bbox(20, 20, 80, 80), "clip_to_aoi": True, "copy_original_bands": True}
    (work / "params.json").write_text(json.dumps(params))


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
    elif action == "check":
        check(Path(sys.argv[2]))
    elif action == "check-empty":
        check_empty(Path(sys.argv[2]), int(sys.argv[3]))
    elif action == "check-label":
        check_label()
