"""The product metadata document, ``MTD_MSIL1C.xml`` or ``MTD_MSIL2A.xml``.

Only what radiometry needs: level, processing baseline, quantification value, per-band additive offsets
(baseline 04.00 and later) and the special values. XML with a DTD is refused, so no entity is ever expanded.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from .bands import BANDS
from .errors import ProductError


@dataclass(frozen=True)
class ProductMetadata:
    """Radiometric facts of one product. ``offsets`` maps band name to the additive DN offset."""

    level: str  # "L1C" or "L2A"
    baseline: str  # e.g. "04.00"; "" when the document does not say
    quantification: float
    offsets: dict[str, float]
    product_uri: str = ""
    sensing_time: str = ""  # ISO 8601 UTC, e.g. "2023-06-15T10:15:59Z"; "" when unknown

    def offset(self, band: str) -> float:
        return self.offsets.get(band, 0.0)


@dataclass(frozen=True)
class Product:
    """A located product: its metadata, a GDAL path for every band s2sr reads, and for every mask file it
    carries (``masks.find_mask_files``: ``scl``, ``cloud_probability``, ``classi``, ``gml``)."""

    source: Path | str  # a local path, or the http(s) URL of a STAC Item
    metadata: ProductMetadata
    band_paths: dict[str, str]
    mask_paths: dict[str, str] = field(default_factory=dict)

    @property
    def level(self) -> str:
        return self.metadata.level

    @property
    def name(self) -> str:
        uri = self.metadata.product_uri or Path(self.source).name
        return uri.removesuffix(".zip").removesuffix(".SAFE").removesuffix(".json")


#: From this processing baseline on, products add an offset (-1000 DN) to every band and say so.
OFFSET_BASELINE = 4.0


def _baseline_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_xml(data: bytes, source: str) -> ET.Element:
    """Parse an XML document, refusing DTDs (and with them any entity expansion)."""
    head = data[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in data.upper():
        raise ProductError(f"{source}: XML with a DTD or entities is not accepted")
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise ProductError(f"{source}: not well-formed XML ({exc})") from exc


def _first_text(root: ET.Element, *names: str) -> str | None:
    for el in root.iter():
        if _local(el.tag) in names and el.text and el.text.strip():
            return el.text.strip()
    return None


def parse_product_metadata(data: bytes, source: str) -> ProductMetadata:
    """Read level, baseline, quantification and offsets from an MTD_MSIL1C/MTD_MSIL2A document."""
    root = parse_xml(data, source)
    root_name = _local(root.tag)
    level_text = _first_text(root, "PROCESSING_LEVEL") or root_name
    if "2A" in level_text or "Level-2A" in root_name:
        level, quant_tags, offset_tag = "L2A", ("BOA_QUANTIFICATION_VALUE",), "BOA_ADD_OFFSET"
    elif "1C" in level_text or "Level-1C" in root_name:
        level, quant_tags, offset_tag = "L1C", ("QUANTIFICATION_VALUE",), "RADIO_ADD_OFFSET"
    else:
        raise ProductError(f"{source}: processing level {level_text!r} is not Level-1C or Level-2A")
    quant_text = _first_text(root, *quant_tags)
    if quant_text is None:
        raise ProductError(f"{source}: no {quant_tags[0]} in the product metadata")
    try:
        quantification = float(quant_text)
    except ValueError as exc:
        raise ProductError(f"{source}: quantification value {quant_text!r} is not a number") from exc
    if quantification <= 0:
        raise ProductError(f"{source}: quantification value {quantification} must be positive")
    by_id = {b.band_id: b.name for b in BANDS.values()}
    offsets: dict[str, float] = {}
    for el in root.iter():
        if _local(el.tag) == offset_tag:
            try:
                offsets[by_id[int(el.attrib["band_id"])]] = float((el.text or "").strip())
            except (KeyError, ValueError) as exc:
                raise ProductError(f"{source}: malformed {offset_tag} element {ET.tostring(el)[:80]!r}") from exc
    baseline = _first_text(root, "PROCESSING_BASELINE") or ""
    if _baseline_number(baseline) >= OFFSET_BASELINE and len(offsets) < len(BANDS) - (1 if level == "L2A" else 0):
        missing = sorted(set(BANDS) - set(offsets) - ({"B10"} if level == "L2A" else set()), key=lambda b: BANDS[b].band_id)
        raise ProductError(
            f"{source}: processing baseline {baseline} shifts every band by an offset, but {offset_tag} is missing for "
            f"{', '.join(missing)}; the metadata is incomplete: download the product again"
        )
    return ProductMetadata(
        level=level,
        baseline=baseline,
        quantification=quantification,
        offsets=offsets,
        product_uri=_first_text(root, "PRODUCT_URI") or "",
        sensing_time=_sensing_time(_first_text(root, "PRODUCT_START_TIME") or "", _first_text(root, "PRODUCT_URI") or ""),
    )


def _sensing_time(start: str, product_uri: str) -> str:
    """PRODUCT_START_TIME, or the sensing time in the product name (``..._20230615T101559_...``)."""
    import re

    if start:
        return start.replace(".000Z", "Z") if start.endswith("Z") else start + "Z"
    m = re.search(r"_(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})_", product_uri)
    return f"{m[1]}-{m[2]}-{m[3]}T{m[4]}:{m[5]}:{m[6]}Z" if m else ""
