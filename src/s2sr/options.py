"""The options of a run: one frozen, typed value, parsed once at each edge and passed down.

The block's parameters, the CLI's flags, a batch, the library's keywords, the cube and the mosaic all build a
:class:`RunOptions` once (``RunOptions.parse``) and hand it on; the defaults live here and nowhere else (the
``DEFAULT_*`` constants of the modules that own each option). Like rasterio's ``Env`` or rio-cogeo's
profiles: a value to read, compare and pass, not a bag of keywords each layer forwards by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .adapt import DEFAULT_ADAPT_STEPS, AdaptOptions
from .aoi import Aoi
from .blur import CHOICES as SENSOR_MODELS
from .blur import DEFAULT_SENSOR_MODEL
from .errors import DeviceError, InputParametersError
from .model import DEFAULT_PRECISION, DEVICES, PRECISIONS
from .sensor import SensorModel
from .uncertainty import DEFAULT_UNCERTAINTY

#: 10 m pixels, a multiple of 6: a tenth of a 10980 px product, so a whole product is 10 x 10 tiles with no
#: slivers. With the 180 px border a tile reads 1458 px square; every tile pays that border, so fewer tiles
#: mean less work around the nets (100 tiles instead of 144 at 996 px).
DEFAULT_TILE_SIZE = 1098
DEFAULT_DEVICE = "auto"

_BOOLEANS = ("clip_to_aoi", "copy_original_bands", "masks", "consistency", "stac_item", "uncertainty", "mosaic",
             "overwrite")


@dataclass(frozen=True)
class RunOptions:
    """How a product (or a datatake's products, ``mosaic``) is super-resolved.

    ``aoi``: None (the whole product) or an :class:`~s2sr.aoi.Aoi` (a bbox, GeoJSON geometry or shapely
    polygon is parsed into one); with ``clip_to_aoi`` pixels outside its polygon are nodata too.
    ``copy_original_bands``: the 10 m bands written beside the super-resolved ones. ``precision``, ``device``:
    what and where the nets compute (``model.resolve_precision``). ``sensor_model``: the blur every stage
    assumes (``estimate``, ``mtf``, ``paper`` or a :class:`~s2sr.sensor.SensorModel`). ``adapt_steps``: the x2
    net's fine-tuning on the product's own bands (0: off; :mod:`s2sr.adapt`). ``masks``: the product's masks
    beside the output. ``consistency``: the projection onto the measured bands (off for comparison only).
    ``tile_size``: 10 m pixels a tile side, a multiple of 6. ``threads``: > 1 overlaps decoding and writing
    with the nets. ``stac_item``: the Item beside the output. ``weights_dir``: other weights than the shipped.
    ``uncertainty``: the per-pixel 90 % interval half-widths beside the output (:mod:`s2sr.uncertainty`).
    ``mosaic``: the products of one datatake give one output
    (:mod:`s2sr.mosaic`). ``overwrite``: replace an existing output and the files beside it (else
    ``OutputExistsError`` before any work; :mod:`s2sr.preflight`).
    """

    aoi: Aoi | None = None
    clip_to_aoi: bool = True
    copy_original_bands: bool = True
    precision: str = DEFAULT_PRECISION
    device: str = DEFAULT_DEVICE
    sensor_model: str | SensorModel = DEFAULT_SENSOR_MODEL
    adapt_steps: int = DEFAULT_ADAPT_STEPS
    masks: bool = True
    consistency: bool = True
    tile_size: int = DEFAULT_TILE_SIZE
    threads: int = 1
    stac_item: bool = True
    weights_dir: Path | None = None
    uncertainty: bool = DEFAULT_UNCERTAINTY
    mosaic: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        """Every value checked (and the AOI and weights folder normalised) once, where the value is made."""
        for name in _BOOLEANS:
            if not isinstance(getattr(self, name), bool):
                raise InputParametersError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.aoi is not None and not isinstance(self.aoi, Aoi):
            object.__setattr__(self, "aoi", Aoi.parse(self.aoi))
        if self.weights_dir is not None and not isinstance(self.weights_dir, Path):
            object.__setattr__(self, "weights_dir", Path(self.weights_dir))
        if self.precision not in PRECISIONS:
            raise DeviceError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.device not in DEVICES:
            raise DeviceError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if not isinstance(self.sensor_model, SensorModel) and self.sensor_model not in SENSOR_MODELS:
            raise InputParametersError(
                f"sensor_model must be one of {', '.join(SENSOR_MODELS)} or a SensorModel, got {self.sensor_model!r}")
        AdaptOptions.parse(self.adapt_steps)
        if isinstance(self.tile_size, bool) or not isinstance(self.tile_size, int) or self.tile_size <= 0 or self.tile_size % 6:
            raise InputParametersError(f"tile_size must be a positive multiple of 6 (10 m pixels), got {self.tile_size}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise InputParametersError(f"threads must be 1 or more, got {self.threads}")

    @classmethod
    def parse(cls, options: RunOptions | dict[str, Any] | None = None, **overrides: Any) -> RunOptions:
        """``options`` (a RunOptions, a mapping of its fields, or None for the defaults) with ``overrides``
        on top; an unknown name is an InputParametersError that lists the known ones."""
        if isinstance(options, dict):
            overrides = {**options, **overrides}
            options = None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InputParametersError(f"unknown option(s) {', '.join(unknown)}; accepted: {', '.join(sorted(known))}")
        base = options if options is not None else cls()
        if not isinstance(base, RunOptions):
            raise InputParametersError(f"options must be a RunOptions, got {type(base).__name__}")
        return replace(base, **overrides) if overrides else base

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every option's default, by name (the one place they are set)."""
        return {f.name: f.default for f in fields(cls)}

    @property
    def adaptation(self) -> AdaptOptions:
        return AdaptOptions.parse(self.adapt_steps)
