"""Block parameters, parsed once from ``UP42_TASK_PARAMETERS`` into a frozen, typed object.

The defaults here are the block's only defaults; ``UP42Manifest.json`` repeats them and a test keeps the
two equal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from s2sr.adapt import DEFAULT_ADAPT_STEPS, AdaptOptions
from s2sr.aoi import geometry_from_bbox, geometry_from_geojson
from s2sr.blur import CHOICES as SENSOR_MODELS
from s2sr.blur import DEFAULT_SENSOR_MODEL
from s2sr.errors import InputParametersError
from s2sr.model import DEFAULT_PRECISION, PRECISIONS
from s2sr.options import RunOptions
from s2sr.uncertainty import DEFAULT_UNCERTAINTY

GEOMETRY_KEYS = ("bbox", "intersects", "contains")


@dataclass(frozen=True)
class BlockParameters:
    bbox: tuple[float, float, float, float] | None = None
    intersects: dict | None = None
    contains: dict | None = None
    clip_to_aoi: bool = False
    copy_original_bands: bool = True
    precision: str = DEFAULT_PRECISION  # what the nets compute in: auto (bfloat16 where native), float32, bfloat16
    sensor_model: str = DEFAULT_SENSOR_MODEL  # the blur assumed: estimate (per product), mtf, paper
    masks: bool = True  # the product's masks (SCL, cloud probability, cloud masks) beside each output
    adapt_steps: int = DEFAULT_ADAPT_STEPS  # the x2 net fine-tuned on each product first (0: off)
    mosaic: bool = False  # the products of one datatake give one output (``s2sr.mosaic``)
    overwrite: bool = False  # replace an earlier run's outputs in the output folder (else refused, exit 2)
    uncertainty: bool = DEFAULT_UNCERTAINTY  # each output's per-pixel 90 % intervals beside it, out_uncertainty.tif

    @property
    def aoi(self) -> Any:
        """The AOI as a WGS84 shapely geometry, or None for the whole product."""
        if self.bbox is not None:
            return geometry_from_bbox(self.bbox)
        for key in ("intersects", "contains"):
            value = getattr(self, key)
            if value is not None:
                return geometry_from_geojson(value, key)
        return None

    def run_options(self, **overrides: Any) -> RunOptions:
        """The library's options for these parameters (``overrides``: what the entrypoint adds, e.g. tile_size)."""
        return RunOptions(aoi=self.aoi, clip_to_aoi=self.clip_to_aoi, copy_original_bands=self.copy_original_bands,
                          precision=self.precision, sensor_model=self.sensor_model, masks=self.masks,
                          adapt_steps=self.adapt_steps, mosaic=self.mosaic, overwrite=self.overwrite,
                          uncertainty=self.uncertainty, **overrides)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {f.name: f.default for f in fields(cls)}

    @classmethod
    def from_json(cls, text: str | None) -> BlockParameters:
        """Parse and check the parameters; every problem is an InputParametersError naming the fix."""
        if text is None or not text.strip():
            raw: dict[str, Any] = {}
        else:
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputParametersError(f"UP42_TASK_PARAMETERS is not valid JSON ({exc}); give a JSON object") from None
        if not isinstance(raw, dict):
            raise InputParametersError(f"UP42_TASK_PARAMETERS must be a JSON object, got {type(raw).__name__}")
        raw = {k: v for k, v in raw.items() if v is not None}
        known = set(cls.defaults())
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InputParametersError(f"unknown parameter(s) {', '.join(unknown)}; accepted: {', '.join(sorted(known))}")
        for key in ("clip_to_aoi", "copy_original_bands", "masks", "mosaic", "overwrite", "uncertainty"):
            if key in raw and not isinstance(raw[key], bool):
                raise InputParametersError(f"{key} must be true or false, got {raw[key]!r}")
        if "precision" in raw and raw["precision"] not in PRECISIONS:
            raise InputParametersError(f"precision must be one of {', '.join(PRECISIONS)}, got {raw['precision']!r}")
        if "sensor_model" in raw and raw["sensor_model"] not in SENSOR_MODELS:
            raise InputParametersError(
                f"sensor_model must be one of {', '.join(SENSOR_MODELS)}, got {raw['sensor_model']!r}")
        if "adapt_steps" in raw:
            AdaptOptions.parse(raw["adapt_steps"])
        given = [k for k in GEOMETRY_KEYS if k in raw]
        clip = raw.get("clip_to_aoi", cls.clip_to_aoi)
        if clip and len(given) != 1:
            raise InputParametersError(
                f"clip_to_aoi is true, so give exactly one of bbox, intersects, contains (given: {', '.join(given) or 'none'})"
            )
        if not clip and given:
            raise InputParametersError(
                f"{', '.join(given)} given but clip_to_aoi is false; set clip_to_aoi to true or remove {', '.join(given)}"
            )
        if "bbox" in raw:
            geometry_from_bbox(raw["bbox"])  # checked; west > east: across the antimeridian
            raw["bbox"] = tuple(float(v) for v in raw["bbox"])
        params = cls(**raw)
        params.aoi  # noqa: B018 - validates intersects/contains now, at the edge
        return params
