"""The block's ``data.json``: the input FeatureCollection, and the output one that points at our files."""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from s2sr.errors import NoInputError, ProductError
from s2sr.phases import reached

DATA_PATH = "up42.data_path"


@dataclass(frozen=True)
class InputItem:
    """One feature of the input and the product it points at."""

    feature: dict
    feature_id: str
    product: Path


def _safe_id(value: Any, index: int) -> str:
    text = str(value) if value not in (None, "") else f"feature-{index}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def read_input(input_dir: Path) -> tuple[dict, list[InputItem]]:
    """Read ``input_dir/data.json``; every feature must point at an existing product."""
    path = input_dir / "data.json"
    if not path.is_file():
        raise NoInputError(f"{path} not found; mount the upstream block's output at {input_dir}")
    try:
        fc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ProductError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(fc, dict) or fc.get("type") != "FeatureCollection":
        raise ProductError(f"{path} is not a GeoJSON FeatureCollection")
    features = fc.get("features") or []
    if not features:
        raise NoInputError(f"{path} holds no features; nothing to process")
    items = []
    root = input_dir.resolve()
    taken: set[str] = set()
    for i, feature in enumerate(features):
        if not isinstance(feature, dict):
            raise ProductError(f"feature {i} of {path} is not a GeoJSON Feature")
        props = feature.get("properties") or {}
        data_path = props.get(DATA_PATH)
        if not data_path or not isinstance(data_path, str):
            raise ProductError(f"feature {i} of {path} has no properties['{DATA_PATH}']; the upstream block must set it")
        product = input_dir / data_path
        if not product.resolve().is_relative_to(root):
            raise ProductError(
                f"feature {i}: '{DATA_PATH}' = {data_path!r} leads outside {input_dir}; the block reads only below its input folder"
            )
        if not product.exists():
            raise NoInputError(f"feature {i}: product {product} ('{DATA_PATH}' = {data_path!r}) does not exist")
        items.append(InputItem(feature, _unique(_safe_id(feature.get("id") or props.get("id"), i), taken), product))
    return fc, items


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... when an earlier feature already maps to it (case-insensitively)."""
    candidate, n = name, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate.lower())
    return candidate


def output_feature(item: InputItem, data_path: str, bands: tuple[str, ...], stac_path: str, stac_item: dict) -> dict:
    """The input feature pointing at the new file, its STAC Item, its masks and uncertainty files; geometry and bbox are the
    Item's: the footprint of what was written."""
    feature = copy.deepcopy(item.feature)
    props = feature.setdefault("properties", {})
    props[DATA_PATH] = data_path
    props["s2sr.bands"] = list(bands)
    props["s2sr.resolution_m"] = 10
    props["s2sr.stac_item"] = stac_path
    masks = stac_item["assets"].get("masks")
    # the masks file beside the GeoTIFF (None where the product has none), and what became of them and why
    props["s2sr.masks"] = str(PurePosixPath(data_path).parent / masks["href"].removeprefix("./")) if masks else None
    props["s2sr.masks_status"] = stac_item["properties"].get("s2sr:masks")
    # the per-pixel uncertainty beside it (None where off or failed), and how it was calibrated or why not
    intervals = stac_item["assets"].get("uncertainty")
    props["s2sr.uncertainty"] = str(PurePosixPath(data_path).parent / intervals["href"].removeprefix("./")) if intervals else None
    props["s2sr.uncertainty_status"] = stac_item["properties"].get("s2sr:uncertainty")
    feature["links"] = [*feature.get("links", []), {"rel": "describedby", "href": stac_path, "type": "application/geo+json"}]
    if stac_item.get("geometry") is not None:
        feature["geometry"], feature["bbox"] = stac_item["geometry"], stac_item["bbox"]
    return feature


def write_output(output_dir: Path, input_fc: dict, features: list[dict]) -> Path:
    """Write ``output_dir/data.json`` atomically."""
    fc = {k: v for k, v in input_fc.items() if k != "features"}
    fc["features"] = features
    path = output_dir / "data.json"
    tmp = path.with_name(f".data.json.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(fc, indent=2))
        reached("data.json staged", path)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    reached("data.json in place", path)
    return path
