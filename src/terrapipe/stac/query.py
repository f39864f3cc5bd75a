"""Search parameters: checked and normalised once, for STAC APIs and for client-side filtering.

A query is a :class:`STACQuery` (a frozen value, checked when it is made) or
a plain mapping with the same STAC API item-search parameters
(:data:`SEARCH_KEYS`). :func:`make_query` normalises it with pystac-client's
own rules (``bbox`` as 4 numbers, ``datetime="2024-06"`` as the whole month
in UTC, ``collections="a,b"`` as a tuple, ...) into a :class:`SearchQuery`
that holds both the request body a STAC API gets and the values that
:func:`item_matches` tests an item dict against when a static catalog or a
stac-geoparquet file is searched on the client.

Examples
--------
>>> q = make_query({"bbox": [5.9, 45.7, 6.0, 45.8], "datetime": "2024-06", "collections": "demo-s2"})
>>> q.body["datetime"], q.collections
('2024-06-01T00:00:00Z/2024-06-30T23:59:59Z', ('demo-s2',))
>>> item = {"id": "a", "collection": "demo-s2", "bbox": [5.95, 45.75, 5.96, 45.76], "geometry": None,
...         "properties": {"datetime": "2024-06-19T10:30:00Z"}}
>>> item_matches(item, q)
True
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from terrapipe.core.errors import InvalidArgumentError, STACSearchError
from terrapipe.core.optional import require

__all__ = [
    "API_ONLY_KEYS",
    "SEARCH_KEYS",
    "STACQuery",
    "SearchQuery",
    "item_interval",
    "item_matches",
    "make_query",
]

#: Parameters a query may hold.
SEARCH_KEYS: tuple[str, ...] = (
    "bbox",
    "intersects",
    "datetime",
    "collections",
    "ids",
    "query",
    "filter",
    "filter_lang",
    "sortby",
    "fields",
    "max_items",
    "limit",
)
#: Parameters only a STAC API can evaluate (static catalogs and stac-geoparquet refuse them).
API_ONLY_KEYS: tuple[str, ...] = ("query", "filter", "filter_lang", "sortby", "fields")

_PLACEHOLDER_URL = "https://terrapipe.invalid/search"


@dataclass(frozen=True, repr=False, eq=False)
class STACQuery:
    """What to search for: the STAC API item-search parameters, checked once.

    The query half of a search; where to search is ``search_stac``'s
    ``catalog``, how it is reached its ``storage=``
    (:class:`~terrapipe.io.storage.Storage`). Parameters as in
    pystac-client's ``Client.search``; ``None`` means not set.

    Parameters
    ----------
    bbox
        ``[west, south, east, north]`` in degrees (6 values: 3-D).
    intersects
        A GeoJSON geometry (a mapping, or an object with ``__geo_interface__``).
    datetime
        An instant or an interval: ``"2024-06"`` (the whole month, UTC),
        ``"2024-06-01/2024-06-30"``, ``"2024-06-01/.."``, ``datetime`` objects.
    collections, ids
        Ids (a list, or one string; ``"a,b"`` is two).
    query, filter, filter_lang, sortby, fields
        The STAC API extensions of those names (need a STAC API that declares
        them; a static catalog or a stac-geoparquet file refuses them).
    max_items
        Stop after this many items (``None``: all).
    limit
        Page size asked of the server (``None``: the server's default).

    Raises
    ------
    InvalidArgumentError
        For a value pystac-client cannot normalise (a ``bbox`` without 4 or 6
        numbers, a bad ``datetime``, a negative ``max_items``, ...).

    Notes
    -----
    Frozen and hashable (usable as a dict key or in a set); the values are
    kept as given (copied, so changing the caller's list does not change the
    query). Two queries are equal (and hash alike) when they ask for the same
    search: ``collections=["a", "b"]``, ``("b", "a")`` and ``"a,b"`` are one
    query, and so are ``bbox=[0, 0, 1, 1]`` and ``[0.0, 0.0, 1.0, 1.0]``, or a
    naive ``datetime`` and the same instant in UTC. Its ``repr``
    shows the parameters that are set, geometries abbreviated; a query holds
    no credentials (those are ``storage=``'s).

    Examples
    --------
    >>> q = STACQuery(collections=["demo-s2"], bbox=[5.9, 45.7, 6.0, 45.8], datetime="2024-06")
    >>> q
    STACQuery(bbox=[5.9, 45.7, 6.0, 45.8], datetime='2024-06', collections=['demo-s2'])
    >>> q.replace(max_items=1).to_dict()["max_items"], len({q, STACQuery(**q.to_dict())})
    (1, 1)
    >>> STACQuery(bbox=[1, 2, 3])
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: invalid search parameters {'bbox': [1, 2, 3]}: bbox must have 4 or 6 values, got 3
    """

    bbox: Any = None
    intersects: Any = None
    datetime: Any = None
    collections: Any = None
    ids: Any = None
    query: Any = None
    filter: Any = None
    filter_lang: str | None = None
    sortby: Any = None
    fields: Any = None
    max_items: int | None = None
    limit: int | None = None
    _key: str = dataclasses.field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if not field.init:
                continue
            value = getattr(self, field.name)
            if value is not None and not isinstance(value, str | int | float):
                try:
                    value = copy.deepcopy(value)
                except Exception as err:  # an object that cannot be copied is no search parameter
                    msg = f"search parameter {field.name}={type(value).__name__} cannot be copied: {err}"
                    raise InvalidArgumentError(msg) from err
                object.__setattr__(self, field.name, value)
        checked = make_query(self.to_dict())  # checked once, here
        object.__setattr__(self, "_key", _identity(checked))

    @classmethod
    def of(cls, value: STACQuery | Mapping[str, Any] | None) -> STACQuery:
        """Return ``value`` as a query: a ``STACQuery`` as it is, a mapping of parameters, ``None`` (no filter).

        Raises
        ------
        InvalidArgumentError
            For another type, an unknown parameter or a bad value.

        Examples
        --------
        >>> STACQuery.of({"ids": "a,b", "limit": None})
        STACQuery(ids='a,b')
        >>> STACQuery.of({"colections": ["a"]})
        Traceback (most recent call last):
        ...
        terrapipe.core.errors.InvalidArgumentError: unknown STAC search parameters ['colections'] in {'colections': ['a']}; use any of ['bbox', 'intersects', 'datetime', 'collections', 'ids', 'query', 'filter', 'filter_lang', 'sortby', 'fields', 'max_items', 'limit']
        """
        if value is None:
            return cls()
        if isinstance(value, STACQuery):
            return value
        if not isinstance(value, Mapping):
            msg = (
                "a STAC search query is a tp.stac.STACQuery or a mapping of search parameters, got "
                f"{type(value).__name__}: {_short(value)}"
            )
            raise InvalidArgumentError(msg)
        unknown = sorted(str(k) for k in value if k not in SEARCH_KEYS)
        if unknown:
            shown = _short(dict(value))
            msg = f"unknown STAC search parameters {unknown} in {shown}; use any of {list(SEARCH_KEYS)}"
            raise InvalidArgumentError(msg)
        return cls(**{str(k): v for k, v in value.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters that are set, in :data:`SEARCH_KEYS` order."""
        return {k: getattr(self, k) for k in SEARCH_KEYS if getattr(self, k) is not None}

    def replace(self, **changes: Any) -> STACQuery:
        """Return a copy with ``changes`` (``None`` unsets a parameter)."""
        return STACQuery.of({**self.to_dict(), **changes})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, STACQuery):
            return NotImplemented
        return bool(self._key == other._key)

    def __hash__(self) -> int:
        return hash(self._key)

    def cache_config(self) -> dict[str, Any]:
        """Return the normalised search, which a cache key describes (equal queries, equal keys)."""
        return {"stac_query": self._key}

    def __repr__(self) -> str:
        parts = []
        for key, value in self.to_dict().items():
            shown = f"<{_geometry_type(value)}>" if key == "intersects" else _short(value)
            parts.append(f"{key}={shown}")
        return f"STACQuery({', '.join(parts)})"


def _identity(checked: SearchQuery) -> str:
    """Return the normalised search as one JSON text, equal for queries that ask for the same thing."""
    body = dict(checked.body) if checked.method == "POST" else _normalise(checked.params, "POST")
    for key in ("collections", "ids"):  # order does not change which items match
        if body.get(key) is not None:
            body[key] = sorted(body[key])
    body["max_items"] = checked.max_items
    return json.dumps(body, sort_keys=True, default=str)


def _geometry_type(value: Any) -> str:
    mapping = getattr(value, "__geo_interface__", value)
    kind = mapping.get("type") if isinstance(mapping, Mapping) else None
    return str(kind) if kind else "geometry"


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class SearchQuery:
    """One normalised search.

    Attributes
    ----------
    body
        The parameters as a STAC API gets them (POST body, or GET query
        parameters when ``method`` is ``"GET"``), ``limit`` included.
    method
        ``"POST"`` or ``"GET"``.
    max_items
        Stop after this many items (``None``: all).
    limit
        Page size asked of the server (``None``: the server's default).
    bbox
        ``(west, south, east, north)`` in degrees, or ``None``.
    intersects
        GeoJSON geometry, or ``None``.
    start, end
        Time range (UTC, inclusive; ``None``: open), from ``datetime``.
    collections, ids
        Tuples of ids, or ``None``.
    given
        The parameter names the query set (for messages and checks).
    params
        The merged parameters as given (before normalisation).
    """

    body: dict[str, Any]
    method: Literal["POST", "GET"]
    max_items: int | None
    limit: int | None
    bbox: tuple[float, float, float, float] | None
    intersects: dict[str, Any] | None
    start: dt.datetime | None
    end: dt.datetime | None
    collections: tuple[str, ...] | None
    ids: tuple[str, ...] | None
    given: tuple[str, ...]
    params: dict[str, Any]

    def describe(self) -> str:
        """Short text of the query for messages (geometries abbreviated).

        Examples
        --------
        >>> make_query({"collections": ["a"], "max_items": 3}).describe()
        "collections=('a',) max_items=3"
        """
        parts = []
        for key, value in self.body.items():
            if key == "limit":
                continue
            shown = (
                f"<{value.get('type', 'geometry')}>"
                if key == "intersects" and isinstance(value, Mapping)
                else repr(value)
            )
            parts.append(f"{key}={shown}")
        if self.max_items is not None:
            parts.append(f"max_items={self.max_items}")
        return " ".join(parts) or "(all items)"


def make_query(
    query: Mapping[str, Any],
    *,
    defaults: Mapping[str, Any] | None = None,
    method: Literal["POST", "GET"] = "POST",
) -> SearchQuery:
    """Check and normalise one search.

    Parameters
    ----------
    query
        Search parameters (keys from :data:`SEARCH_KEYS`); ``None`` values are
        ignored.
    defaults
        Parameters every query shares; ``query``'s keys override them.
    method
        How a STAC API is asked: ``"POST"`` (JSON body) or ``"GET"``.

    Returns
    -------
    SearchQuery
        The normalised search.

    Raises
    ------
    InvalidArgumentError
        For an unknown key or a value pystac-client cannot normalise (a
        ``bbox`` without 4 numbers, a bad ``datetime``, ...).

    Examples
    --------
    >>> make_query({"ids": "a,b", "limit": 2}).body
    {'limit': 2, 'ids': ('a', 'b')}
    >>> make_query({"bbox": [1, 2, 3]})
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: invalid search parameters {'bbox': [1, 2, 3]}: bbox must have 4 or 6 values, got 3
    """
    if not isinstance(query, Mapping):
        msg = f"a STAC search query must be a mapping of search parameters, got {type(query).__name__}: {query!r}"
        raise InvalidArgumentError(msg)
    merged = {**dict(defaults or {}), **dict(query)}
    params = {k: v for k, v in merged.items() if v is not None}
    unknown = sorted(set(params) - set(SEARCH_KEYS))
    if unknown:
        msg = f"unknown STAC search parameters {unknown} in {dict(query)!r}; use any of {list(SEARCH_KEYS)}"
        raise InvalidArgumentError(msg)
    if method not in ("POST", "GET"):
        raise InvalidArgumentError(f"method must be 'POST' or 'GET', got {method!r}")
    max_items = _positive(params.get("max_items"), "max_items", allow_zero=True)
    limit = _positive(params.get("limit"), "limit", allow_zero=False)
    bbox = params.get("bbox")
    if bbox is not None and not isinstance(bbox, str):
        try:
            bbox = list(bbox)
        except TypeError as err:
            raise InvalidArgumentError(
                f"invalid search parameters {{'bbox': {_short(params['bbox'])}}}: bbox must be 4 or 6 numbers"
            ) from err
        if len(bbox) not in (4, 6):
            raise InvalidArgumentError(
                f"invalid search parameters {{'bbox': {params['bbox']!r}}}: bbox must have 4 or 6 values, got {len(bbox)}"
            )
        if any(isinstance(v, bool) for v in bbox):
            raise InvalidArgumentError(
                f"invalid search parameters {{'bbox': {params['bbox']!r}}}: bbox holds a bool"
            )
    _check_lists(params)
    explicit = dict(params)
    if (
        isinstance(explicit.get("datetime"), dt.date | list | tuple)
        or type(explicit.get("datetime")).__name__ == "datetime64"
    ):
        explicit["datetime"] = _dates_as_days(explicit["datetime"])
    if "filter" in params:
        explicit["filter_lang"] = _filter_lang(params["filter"], params.get("filter_lang"))
    _check_sortby(params.get("sortby"))
    body = _normalise(explicit, method)
    post = body if method == "POST" else _normalise(explicit, "POST")
    start, end = _interval(post.get("datetime"))
    if end is not None and end.microsecond == 0 and _ends_on_a_day(explicit.get("datetime")):
        # "2024-06" ends at 23:59:59 in pystac-client's text; an item at 23:59:59.5 is in June too.
        end = end.replace(microsecond=999999)
    if start is not None and end is not None and start > end:
        raise InvalidArgumentError(
            f"invalid search parameters {{'datetime': {_short(params['datetime'])}}}: the interval starts "
            f"({start.isoformat()}) after it ends ({end.isoformat()}); write it start/end"
        )
    post_bbox = post.get("bbox")
    if post_bbox is not None:
        _check_bbox(post_bbox, params["bbox"])
    if post_bbox is not None and len(post_bbox) == 6:  # 3-D bbox: keep the horizontal part
        post_bbox = (post_bbox[0], post_bbox[1], post_bbox[3], post_bbox[4])
    if post.get("intersects") is not None:
        _check_geometry(post["intersects"])
    collections = post.get("collections")
    ids = post.get("ids")
    return SearchQuery(
        body=body,
        method=method,
        max_items=max_items,
        limit=limit,
        bbox=tuple(float(v) for v in post_bbox) if post_bbox is not None else None,  # type: ignore[arg-type]
        intersects=dict(post["intersects"]) if post.get("intersects") is not None else None,
        start=start,
        end=end,
        collections=tuple(collections) if collections is not None else None,
        ids=tuple(ids) if ids is not None else None,
        given=tuple(k for k in SEARCH_KEYS if k in params),
        params=params,
    )


_DAY = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")
_FILTER_LANGS = ("cql2-text", "cql2-json")
_DIRECTIONS = ("asc", "desc", "ascending", "descending")


def _dates_as_days(value: Any) -> Any:
    """Write a ``datetime.date`` (not a datetime) as its ISO day, which pystac-client reads as the whole day."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return value.isoformat()
    if type(value).__name__ == "datetime64" and type(value).__module__ == "numpy":  # naive: UTC
        if str(value) == "NaT":
            raise InvalidArgumentError("invalid search parameters {'datetime': NaT}: not a time")
        unit = str(value.dtype).partition("[")[2].rstrip("]")
        if unit in ("Y", "M", "D"):  # a year, month or day: the whole period, as a string of it is
            return str(value)
        seconds = value.astype("datetime64[s]")
        return str(seconds) if seconds == value else str(value.astype("datetime64[us]"))
    if isinstance(value, list | tuple):
        return type(value)(_dates_as_days(v) for v in value)
    return value


def _ends_on_a_day(value: Any) -> bool:
    """Whether the end of a ``datetime`` parameter was written as a year, month or day (a whole period)."""
    if isinstance(value, list | tuple) and value:
        value = value[-1]
    if not isinstance(value, str):
        return False
    end = value.rpartition("/")[2].strip()
    return _DAY.fullmatch(end) is not None


def _check_lists(params: Mapping[str, Any]) -> None:
    """``collections``/``ids``: names (strings), at least one; an empty list would match nothing here and everything on some servers."""
    for key in ("collections", "ids"):
        value = params.get(key)
        if value is None:
            continue
        names = value.split(",") if isinstance(value, str) else value
        if isinstance(value, bytes | Mapping) or not isinstance(names, Iterable):
            raise InvalidArgumentError(
                f"invalid search parameters {{{key!r}: {_short(value)}}}: {key} must be a string or a list of strings"
            )
        names = list(names)
        odd = [n for n in names if not isinstance(n, str)]
        if odd:
            raise InvalidArgumentError(
                f"invalid search parameters {{{key!r}: {_short(value)}}}: {key} must be strings, got {_short(odd[0])}"
            )
        if not any(n.strip() for n in names):
            raise InvalidArgumentError(
                f"invalid search parameters {{{key!r}: {_short(value)}}}: no {key} given (an empty {key} "
                f"matches no item); leave {key} unset (None) to search all"
            )


def _filter_lang(value: Any, lang: Any) -> str:
    """Return the filter's language: the one given, which must fit the filter (text for a string, JSON for an object)."""
    implied = "cql2-text" if isinstance(value, str) else "cql2-json"
    if lang is None:
        # Say which language the filter is in, so pystac-client never needs the cql2 package to convert it.
        return implied
    if lang not in _FILTER_LANGS:
        raise InvalidArgumentError(f"filter_lang must be one of {list(_FILTER_LANGS)}, got {_short(lang)}")
    if lang != implied:
        raise InvalidArgumentError(
            f"filter_lang={lang!r} but the filter is {'a string' if isinstance(value, str) else 'an object'} "
            f"({implied}); give a filter written in {lang} or filter_lang={implied!r}"
        )
    return str(lang)


def _check_sortby(value: Any) -> None:
    entries = value if isinstance(value, list | tuple) else [value]
    for entry in entries:
        if isinstance(entry, Mapping) and str(entry.get("direction", "asc")).lower() not in _DIRECTIONS:
            raise InvalidArgumentError(
                f"invalid search parameters {{'sortby': {_short(value)}}}: direction must be 'asc' or 'desc', "
                f"got {entry.get('direction')!r}"
            )


def _check_bbox(bbox: Sequence[float], given: Any) -> None:
    """Check a bbox in degrees: finite, south <= north, latitudes in [-90, 90], longitudes in [-180, 180]."""
    values = [float(v) for v in bbox]
    west, south, east, north = (values[0], values[1], values[3], values[4]) if len(values) == 6 else values
    problem = ""
    if not all(math.isfinite(v) for v in values):
        problem = "values must be finite numbers"
    elif south > north:
        problem = f"south ({south}) is north of north ({north}); write it [west, south, east, north]"
    elif not (-90.0 <= south <= 90.0 and -90.0 <= north <= 90.0):
        problem = "latitudes must lie in [-90, 90]"
    elif not (-180.0 <= west <= 180.0 and -180.0 <= east <= 180.0):
        problem = (
            "longitudes must lie in [-180, 180]; a box across the antimeridian is written west > east, "
            "e.g. [170, -10, -170, 10]"
        )
    elif len(values) == 6 and values[2] > values[5]:
        problem = f"its lowest elevation ({values[2]}) is above its highest ({values[5]})"
    if problem:
        raise InvalidArgumentError(f"invalid search parameters {{'bbox': {_short(given)}}}: bbox {problem}")


def _check_geometry(geometry: Mapping[str, Any]) -> None:
    """``intersects``: a GeoJSON geometry shapely can read, with finite coordinates."""
    shapely_geometry = require("shapely.geometry", feature="STAC search")
    try:
        shape = shapely_geometry.shape(geometry)
        bounds = shape.bounds
    except Exception as err:  # shapely raises GeometryTypeError, ValueError, IndexError, ...
        raise InvalidArgumentError(
            f"invalid search parameters {{'intersects': <{_geometry_type(geometry)}>}}: not a GeoJSON geometry "
            f"({type(err).__name__}: {str(err)[:200]})"
        ) from err
    if shape.is_empty or not all(math.isfinite(v) for v in bounds):
        raise InvalidArgumentError(
            f"invalid search parameters {{'intersects': <{_geometry_type(geometry)}>}}: the geometry is empty "
            "or has coordinates that are not finite"
        )
    west, south, east, north = bounds
    if not (west >= -180.0 and east <= 180.0 and south >= -90.0 and north <= 90.0):
        raise InvalidArgumentError(
            f"invalid search parameters {{'intersects': <{_geometry_type(geometry)}>}}: its coordinates "
            f"({west:g}..{east:g}, {south:g}..{north:g}) leave longitudes [-180, 180] or latitudes [-90, 90]; "
            "a geometry across the antimeridian is split there (a MultiPolygon), as GeoJSON says"
        )


def _positive(value: Any, name: str, *, allow_zero: bool) -> int | None:
    if value is None:
        return None
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidArgumentError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _normalise(params: Mapping[str, Any], method: str) -> dict[str, Any]:
    """Normalise with pystac-client's ``ItemSearch`` (no request is sent)."""
    client = require("pystac_client", feature="STAC search")
    kwargs = {k: v for k, v in params.items() if k != "max_items"}
    try:
        search = client.ItemSearch(_PLACEHOLDER_URL, method=method, **kwargs)
        body = dict(search.get_parameters())
    except Exception as err:  # pystac-client raises bare Exception for a bad datetime
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InvalidArgumentError(f"invalid search parameters {dict(params)!r}: {reason}") from err
    return body


def _parse_instant(text: str) -> dt.datetime | None:
    if text in ("", ".."):
        return None
    if text[-1] in "zZ":  # RFC 3339 allows a lower-case z
        text = text[:-1] + "+00:00"
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _interval(value: str | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    if not value:
        return None, None
    if "/" in value:
        first, _, second = value.partition("/")
        return _parse_instant(first), _parse_instant(second)
    instant = _parse_instant(value)
    return instant, instant


def item_interval(item: Mapping[str, Any]) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Time range of an item dict: ``start_datetime`` (else ``datetime``) to ``end_datetime`` (else ``datetime``).

    A range wins over ``datetime``, as the STAC APIs search it (rustac:
    ``start_datetime`` or ``datetime`` to ``end_datetime`` or ``datetime``;
    pgstac alike for an item whose ``datetime`` lies in its range): an annual
    map dated by the first day of its year (ESA WorldCover, io-lulc) is found
    by a search of any month of that year, in a file as through an API.

    Examples
    --------
    >>> item_interval({"properties": {"datetime": None, "start_datetime": "2024-01-01T00:00:00Z",
    ...                               "end_datetime": "2024-12-31T00:00:00Z"}})[1].year
    2024
    >>> item_interval({"properties": {"datetime": "2021-01-01T00:00:00Z", "start_datetime": "2021-01-01T00:00:00Z",
    ...                               "end_datetime": "2021-12-31T23:59:59Z"}})[1].month
    12
    """
    props = item.get("properties") or {}
    instant = _as_datetime(props.get("datetime")) if props.get("datetime") else None
    start = props.get("start_datetime")
    end = props.get("end_datetime")
    return (_as_datetime(start) if start else instant), (_as_datetime(end) if end else instant)


def _as_datetime(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return _parse_instant(str(value))


def _bbox_geometries(bbox: Sequence[float]) -> list[Any]:
    shapely_geometry = require("shapely.geometry", feature="STAC search")
    west, south, east, north = bbox
    if west <= east:
        return [shapely_geometry.box(west, south, east, north)]
    # Crosses the antimeridian: two boxes.
    return [shapely_geometry.box(west, south, 180.0, north), shapely_geometry.box(-180.0, south, east, north)]


def _item_shape(item: Mapping[str, Any]) -> Any:
    shapely_geometry = require("shapely.geometry", feature="STAC search")
    geometry = item.get("geometry")
    if geometry:
        return shapely_geometry.shape(geometry)
    bbox = item.get("bbox")
    if bbox:
        flat = (bbox[0], bbox[1], bbox[3], bbox[4]) if len(bbox) == 6 else tuple(bbox)
        if len(flat) != 4:
            raise ValueError(f"bbox has {len(bbox)} values, not 4 or 6")
        # west > east crosses the antimeridian (shapely.box would take the other 340 degrees)
        return shapely_geometry.MultiPolygon(_bbox_geometries([float(v) for v in flat]))
    return None


def item_matches(item: Mapping[str, Any], query: SearchQuery) -> bool:
    """Whether an item dict satisfies ``query``'s ids, collections, time range and geometry.

    Follows STAC API item-search semantics: the item's geometry must
    intersect ``bbox`` and ``intersects``; its ``datetime`` (or its
    ``start_datetime``/``end_datetime`` range) must overlap the query's range.
    ``query``/``filter``/``sortby``/``fields`` are not evaluated here (callers
    refuse them before).

    Parameters
    ----------
    item
        A STAC item as a dict.
    query
        The search.

    Returns
    -------
    bool
        Whether it matches.

    Raises
    ------
    STACSearchError
        If the item cannot be evaluated (a ``properties`` that is not an
        object, an unreadable date or geometry): the error names the item.
    """
    try:
        return _matches(item, query)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError) as err:
        problem = f"{type(err).__name__}: {str(err)[:200]}"
    except Exception as err:  # shapely's own errors (GeometryTypeError, GEOSException)
        if type(err).__module__.split(".")[0] != "shapely":
            raise
        problem = f"{type(err).__name__}: {str(err)[:200]}"
    ident = item.get("id") if isinstance(item, Mapping) else None
    raise STACSearchError(
        f"malformed STAC item {str(ident)[:100]!r}: cannot test it against the query ({problem}); fix the item, "
        "or skip bad items with on_error='skip'"
    )


def _matches(item: Mapping[str, Any], query: SearchQuery) -> bool:
    if query.ids is not None and item.get("id") not in query.ids:
        return False
    if query.collections is not None and item.get("collection") not in query.collections:
        return False
    if query.start is not None or query.end is not None:
        first, last = item_interval(item)
        if first is None and last is None:
            return False
        if query.end is not None and first is not None and first > query.end:
            return False
        if query.start is not None and last is not None and last < query.start:
            return False
    if query.bbox is not None or query.intersects is not None:
        shape = _item_shape(item)
        if shape is None:
            return False
        if query.bbox is not None and not any(shape.intersects(box) for box in _bbox_geometries(query.bbox)):
            return False
        if query.intersects is not None:
            shapely_geometry = require("shapely.geometry", feature="STAC search")
            if not shape.intersects(shapely_geometry.shape(query.intersects)):
                return False
    return True
