"""Find the products to run in a STAC API: one search per period over the AOI, the least cloudy first.

The product page's job (a Sentinel-2 data block that searches an AOI over two periods, then the
super-resolution of what it found) off the platform: :func:`search_items` asks the API for each period,
keeps ``limit`` Items per period with at most ``max_cloud`` percent cloud cover, and writes each Item as a
JSON file (absolute asset hrefs), which ``s2sr run`` and ``s2sr batch`` then take as any Item.

Cloud cover is filtered and sorted here, on the Items the API returns, not by the API: the ``query``,
``filter`` and ``sortby`` extensions are optional in STAC API and not every server has them, so the same
request gives the same choice on Earth Search, Planetary Computer, Copernicus Data Space and a local server.
pystac-client (``pip install s2sr[search]``) is imported only when a search runs.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .errors import InputParametersError, NoInputError

DEFAULT_COLLECTION = "sentinel-2-l2a"
DEFAULT_MAX_CLOUD = 100.0  # percent: any cover, as the product page's job asks
DEFAULT_LIMIT = 1  # Items per period
#: Items read from the API per period at most, before the cloud filter and the choice: a month over one
#: place holds a few dozen Sentinel-2 Items; more means the AOI or the period is far larger than meant.
MAX_CANDIDATES = 2000
#: Hosts whose asset hrefs need a signature before they can be read (Planetary Computer's blob storage).
PLANETARY_COMPUTER_HOST = "planetarycomputer.microsoft.com"

_PERIOD = re.compile(r"^[0-9TZ:.+\-]*/[0-9TZ:.+\-]*$|^[0-9]{4}(-[0-9]{2}){0,2}$")


class CatalogueError(NoInputError):
    """The STAC API cannot be reached or does not answer a search (exit code 3: no input)."""


@dataclass(frozen=True)
class SearchRequest:
    """What to look for: the AOI (a WGS84 bbox or GeoJSON geometry), one or more periods, and the choice."""

    api: str
    aoi: Any  # [W, S, E, N] or a GeoJSON geometry (searched with ``intersects``)
    periods: tuple[str, ...]
    collection: str = DEFAULT_COLLECTION
    max_cloud: float = DEFAULT_MAX_CLOUD
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        if urlparse(self.api).scheme not in ("http", "https"):
            raise InputParametersError(f"--stac-api {self.api!r} is not an http(s) URL; give the API's root URL")
        if not self.periods:
            raise InputParametersError("a STAC search needs at least one --datetime period, e.g. 2018-07-01/2018-07-31")
        for period in self.periods:
            if not _PERIOD.match(period):
                raise InputParametersError(f"--datetime {period!r} is not a period such as 2018-07-01/2018-07-31 or 2018-07")
        if not (isinstance(self.limit, int) and self.limit >= 1):
            raise InputParametersError(f"--limit must be 1 or more Items per period, got {self.limit!r}")
        if not (isinstance(self.max_cloud, (int, float)) and math.isfinite(self.max_cloud) and 0 <= self.max_cloud <= 100):
            raise InputParametersError(f"--max-cloud must be a percentage from 0 to 100, got {self.max_cloud!r}")


@dataclass(frozen=True)
class Found:
    """One chosen Item: its period, id, cloud cover and the file it was written to."""

    period: str
    item_id: str
    cloud_cover: float | None
    path: Path


def cloud_cover(item: Any) -> float | None:
    """``eo:cloud_cover`` of a pystac Item (percent), None where the catalogue gives none."""
    value = item.properties.get("eo:cloud_cover")
    return float(value) if isinstance(value, (int, float)) else None


def choose(items: Sequence[Any], max_cloud: float, limit: int) -> list[Any]:
    """The ``limit`` least cloudy Items with at most ``max_cloud`` percent (then the earliest first).

    An Item without a cloud cover is kept only when any cover is allowed (``max_cloud`` 100), and last.
    """
    def key(item: Any) -> tuple[float, str]:
        cover = cloud_cover(item)
        when = item.datetime.isoformat() if item.datetime else str(item.properties.get("start_datetime") or "")
        return (math.inf if cover is None else cover, when)

    allowed = [i for i in items if (cloud_cover(i) is None and max_cloud >= 100) or
               (cloud_cover(i) is not None and cloud_cover(i) <= max_cloud)]
    return sorted(allowed, key=key)[:limit]


def search_items(request: SearchRequest, items_dir: str | Path) -> list[Found]:
    """Search every period, choose its Items, write them to ``items_dir/<id>.json``; all periods or none.

    Raises :class:`CatalogueError` when the API cannot be reached or fails, and
    :class:`InputParametersError` when a period yields no Item (nothing is written then).
    """
    sign = signer(request.api)  # before any request: a missing package is a one-line error, not a half-done search
    client = _open_client(request.api)
    where = {"bbox": list(request.aoi)} if isinstance(request.aoi, (list, tuple)) else {"intersects": request.aoi}
    chosen: list[tuple[str, Any]] = []
    for period in request.periods:
        try:
            search = client.search(collections=[request.collection], datetime=period, max_items=MAX_CANDIDATES, **where)
            candidates = list(search.items())
        except Exception as exc:  # requests and pystac-client raise many types for a failed request
            raise CatalogueError(f"STAC API {request.api}: the search for {period} failed ({_reason(exc)})") from None
        picked = choose(candidates, request.max_cloud, request.limit)
        if not picked:
            cloud = f" with at most {request.max_cloud:g} % cloud cover" if request.max_cloud < 100 else ""
            raise InputParametersError(
                f"STAC API {request.api}: no {request.collection} Item{cloud} over the AOI in {period} "
                f"({len(candidates)} without the cloud limit); widen --datetime or raise --max-cloud")
        chosen += [(period, item) for item in picked]
    items_dir = Path(items_dir)
    items_dir.mkdir(parents=True, exist_ok=True)
    found = []
    for period, item in chosen:
        item = sign(item)
        found.append(Found(period, item.id, cloud_cover(item), _write_item(item, items_dir)))
    return found


def _open_client(api: str) -> Any:
    try:
        from pystac_client import Client
    except ImportError:
        raise InputParametersError("--stac-api needs pystac-client: pip install 's2sr[search]'") from None
    try:
        return Client.open(api)
    except Exception as exc:  # connection refused, DNS, HTTP errors, a page that is not a STAC API
        raise CatalogueError(f"STAC API {api} cannot be reached or is not a STAC API ({_reason(exc)}); "
                             "check the URL and the network") from None


def signer(api: str) -> Callable[[Any], Any]:
    """What makes an Item of ``api`` readable: Planetary Computer's hrefs need a short-lived signature (its
    ``planetary-computer`` package); other APIs' Items are used as they come."""
    if urlparse(api).hostname != PLANETARY_COMPUTER_HOST:
        return lambda item: item
    try:
        import planetary_computer
    except ImportError:
        raise InputParametersError(
            f"{api}: Planetary Computer's asset hrefs must be signed: pip install 's2sr[planetary-computer]'") from None
    return planetary_computer.sign


def _write_item(item: Any, items_dir: Path) -> Path:
    """The Item as JSON with absolute asset hrefs and a ``via`` link to where the API serves it, written to a
    temporary name and renamed."""
    served = item.get_self_href()
    data = item.to_dict(include_self_link=False, transform_hrefs=False)
    if served:
        data["links"] = [link for link in data["links"] if link.get("rel") not in ("root", "parent", "collection")]
        data["links"].append({"rel": "via", "href": served, "type": "application/geo+json"})
    for key, asset in item.assets.items():
        data["assets"][key]["href"] = asset.get_absolute_href() or asset.href
    safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", item.id)
    path = items_dir / f"{safe_id}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
    return path


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message, short: what failed, without a traceback."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
