"""Search a stac-geoparquet file on the client, with the filter pushed down to Parquet.

The file is scanned with pyarrow (no DuckDB, nothing downloaded), record
batch by record batch, with a filter built from the query: ``collection``
and ``id`` membership, the ``bbox`` covering columns (``bbox.xmin`` ...)
against the query's box, and the ``datetime`` column against its time range.
pyarrow skips the row groups whose statistics exclude them. Rows that pass
become item dicts (stac-geoparquet's own reader) and are then tested exactly
with :func:`~terrapipe.stac.query.item_matches` (footprint geometry,
``start_datetime``/``end_datetime`` ranges).

A file in a bucket (``s3://``, ``az://``, ``abfs://``, ``gs://``) is read
through :mod:`terrapipe.io.object_store` with the search's
:class:`~terrapipe.io.storage.Storage`, and its relative asset hrefs resolve
within the bucket. Absolute asset hrefs (``file://`` URIs included) come back
as the file stored them, from a local file, a bucket or a server alike. A file on an HTTP server or in a bucket is downloaded
into memory once per process, within the deadline and the body cap of the
storage (``Storage.max_bytes``; 1 GiB by default for a file:
:data:`~terrapipe.stac.http_json.DEFAULT_MAX_FILE_BYTES`).

Examples
--------
>>> from terrapipe.stac.query import make_query
>>> pushdown_filter(make_query({"collections": ["demo-s2"]}), {"collection", "id"}) is not None
True
>>> pushdown_filter(make_query({"bbox": [5, 45, 6, 46]}), {"id"}) is None
True
"""

from __future__ import annotations

import datetime as dt
import os
import pathlib
from collections.abc import Iterator, Mapping
from typing import Any

from terrapipe.core.errors import ReadError, STACSearchError
from terrapipe.core.optional import require
from terrapipe.core.redact import public_url
from terrapipe.io.object_store import get as get_object
from terrapipe.io.object_store import is_object_url, join_url
from terrapipe.io.storage import Storage
from terrapipe.stac.backend import OffsetPager, Page, refuse_api_only
from terrapipe.stac.deprecated import renamed_options
from terrapipe.stac.hrefs import is_absolute, is_http, join_href, local_path
from terrapipe.stac.http_json import DEFAULT_MAX_FILE_BYTES, JsonClient, deadline_of
from terrapipe.stac.query import SearchQuery, item_matches

__all__ = ["GeoParquetBackend", "pushdown_filter"]

_PAGE = 100


def pushdown_filter(
    query: SearchQuery,
    columns: set[str],
    *,
    bbox_fields: set[str] | None = None,
    types: Mapping[str, Any] | None = None,
) -> Any:
    """Build the pyarrow filter expression for ``query`` from the columns a file has.

    The filter is conservative: it leaves out only rows that
    :func:`~terrapipe.stac.query.item_matches` would refuse, and the exact
    test stays on the client. A row whose ``bbox`` is null or NaN is kept
    (the client tests its geometry), a ``bbox`` with west > east crosses the
    antimeridian as the query's may, and ``datetime`` is pushed
    down only when it is a timestamp column with a time zone and the file has
    no ``start_datetime``/``end_datetime`` columns.

    Parameters
    ----------
    query
        The search.
    columns
        Top-level column names of the file.
    bbox_fields
        Field names of the ``bbox`` struct column, if it has one.
    types
        Column name -> pyarrow type (the file's schema); without it a
        ``datetime`` column is taken to be a timestamp in UTC.

    Returns
    -------
    pyarrow.compute.Expression or None
        ``None`` when nothing can be pushed down.

    Examples
    --------
    >>> import pyarrow as pa
    >>> from terrapipe.stac.query import make_query
    >>> boxes = pa.array([{"xmin": 170.0, "ymin": 0.0, "xmax": -170.0, "ymax": 1.0},
    ...                   {"xmin": 0.0, "ymin": 0.0, "xmax": 1.0, "ymax": 1.0}, None])
    >>> table = pa.table({"id": ["crossing", "greenwich", "no bbox"], "bbox": boxes})
    >>> keep = pushdown_filter(make_query({"bbox": [175, 0, 176, 1]}), {"id", "bbox"},
    ...                        bbox_fields={"xmin", "ymin", "xmax", "ymax"})
    >>> table.filter(keep)["id"].to_pylist()
    ['crossing', 'no bbox']
    """
    pc = require("pyarrow.compute", extra="stac", feature="stac-geoparquet search")
    terms = []
    if query.collections is not None and "collection" in columns:
        terms.append(pc.field("collection").isin(list(query.collections)))
    if query.ids is not None and "id" in columns:
        terms.append(pc.field("id").isin(list(query.ids)))
    if query.bbox is not None and {"xmin", "ymin", "xmax", "ymax"} <= (bbox_fields or set()):
        terms.append(_bbox_term(pc, query.bbox))
    ranged = "start_datetime" in columns or "end_datetime" in columns
    if "datetime" in columns and not ranged and (query.start is not None or query.end is not None):
        terms.extend(_datetime_terms(pc, query, (types or {}).get("datetime")))
    if not terms:
        return None
    expression = terms[0]
    for term in terms[1:]:
        expression = expression & term
    return expression


def _bbox_term(pc: Any, bbox: tuple[float, float, float, float]) -> Any:
    """Rows whose ``bbox`` may meet ``bbox``; the client tests the rows kept exactly.

    Each test is written as "not beyond" (``~(ymin > north)``), so a NaN edge
    (false in every comparison) keeps its row; a null edge keeps it too. A
    row whose box crosses the antimeridian (``xmin > xmax``) is kept whatever
    its longitudes: such rows are few, and an exact test costs every row more
    kernels.
    """
    west, south, east, north = bbox
    xmin, ymin, xmax, ymax = (pc.field("bbox", name) for name in ("xmin", "ymin", "xmax", "ymax"))
    unknown = xmin.is_null() | ymin.is_null() | xmax.is_null() | ymax.is_null()
    meets_y = ~((ymin > north) | (ymax < south))
    # a query box across the antimeridian is [west, 180] and [-180, east]: beyond both parts
    beyond_x = (xmin > east) | (xmax < west) if west <= east else (xmin > east) & (xmax < west)
    return (meets_y & (~beyond_x | (xmin > xmax))) | unknown


def _datetime_terms(pc: Any, query: SearchQuery, column_type: Any) -> list[Any]:
    """``datetime`` within the query's range, for a timestamp column with a time zone (else nothing)."""
    pa = require("pyarrow", extra="stac", feature="stac-geoparquet search")
    if column_type is not None and not (pa.types.is_timestamp(column_type) and column_type.tz):
        return []  # a string or a naive timestamp: the client reads it
    unit = pa.timestamp("us", tz=column_type.tz if column_type is not None else "UTC")
    terms = []
    if query.start is not None:
        terms.append(pc.field("datetime") >= pa.scalar(query.start, type=unit))
    if query.end is not None:
        terms.append(pc.field("datetime") <= pa.scalar(query.end, type=unit))
    return terms


class GeoParquetBackend:
    """Client-side search of a stac-geoparquet file.

    Parameters
    ----------
    path
        Local path, ``file://`` URI, bucket URL or HTTP URL of the file.
    storage
        How to reach the file: a bucket (default ``Storage.from_env()``, read
        when needed) or an HTTP server (default ``Storage()``); ``options=`` is
        its deprecated name.
    page_size
        Rows per page (the unit of saved positions) when the query has no ``limit``.
    """

    kind = "geoparquet"

    def __init__(
        self,
        path: str,
        *,
        storage: Storage | None = None,
        page_size: int = _PAGE,
        options: Storage | None = None,
    ) -> None:
        self.storage = storage = renamed_options("GeoParquetBackend", storage, options)
        # a local path made absolute: relative asset hrefs joined to it must not be resolved again (by pystac,
        # against the item's self link) as hrefs relative to the item
        self.path = path if is_http(path) or is_object_url(path) else os.path.abspath(local_path(path))
        self.where = public_url(self.path)
        self.client = JsonClient(storage, origin=self.path if is_http(self.path) else None)
        self._pager = OffsetPager(self._walk, page_size=page_size, where=self.where)
        self._blob: bytes | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_blob"] = None
        return state

    def __repr__(self) -> str:
        return f"GeoParquetBackend({self.where!r})"

    def check(self, query: SearchQuery) -> None:
        """Refuse ``query``/``filter``/``sortby``/``fields`` (only APIs evaluate them)."""
        refuse_api_only(query, self.kind, self.where)

    def first(self, query: SearchQuery) -> dict[str, Any]:
        """Token of the first page: offset 0."""
        return {"offset": 0}

    def fetch(self, token: dict[str, Any], query: SearchQuery) -> Page:
        """Return the page of matching items starting at ``token["offset"]``."""
        return self._pager.fetch(token, query)

    def _dataset(self) -> Any:
        pa_dataset = require("pyarrow.dataset", extra="stac", feature="stac-geoparquet search")
        pa = require("pyarrow", extra="stac", feature="stac-geoparquet search")
        try:
            if is_http(self.path) or is_object_url(self.path):
                if self._blob is None:
                    self._blob = self._download()
                file_format = pa_dataset.ParquetFileFormat()
                fragment = file_format.make_fragment(pa.BufferReader(self._blob))
                return pa_dataset.FileSystemDataset([fragment], fragment.physical_schema, file_format)
            if not os.path.isfile(self.path):
                msg = f"cannot read the stac-geoparquet file {self.where!r}: no such file; check the path"
                raise STACSearchError(msg)
            return pa_dataset.dataset(self.path, format="parquet")
        except (OSError, pa.ArrowException) as err:
            msg = (
                f"cannot read the stac-geoparquet file {self.where!r}: {err}; check that it is a Parquet file"
            )
            raise STACSearchError(msg) from err

    def _download(self) -> bytes:
        """Return the bytes of a file on an HTTP server or in a bucket, within the cap and the deadline."""
        if is_http(self.path):
            data: bytes = self.client.request_bytes(
                self.path, error=STACSearchError, what="download the stac-geoparquet file"
            )
            return data
        cap = self.client.storage.max_bytes or DEFAULT_MAX_FILE_BYTES
        try:
            return get_object(
                self.path, self.storage, max_bytes=cap, deadline=deadline_of(self.client.storage)
            )
        except ReadError as err:
            raise STACSearchError(f"cannot download the stac-geoparquet file: {err}") from None

    def _walk(self, query: SearchQuery) -> Iterator[tuple[Any, str | None]]:
        arrow = require("stac_geoparquet.arrow", feature="stac-geoparquet search")
        pa = require("pyarrow", extra="stac", feature="stac-geoparquet search")
        dataset = self._dataset()
        schema = dataset.schema
        columns = set(schema.names)
        bbox_fields = None
        if "bbox" in columns and pa.types.is_struct(schema.field("bbox").type):
            bbox_type = schema.field("bbox").type
            bbox_fields = {bbox_type.field(i).name for i in range(bbox_type.num_fields)}
        types = {field.name: field.type for field in schema}
        expression = pushdown_filter(query, columns, bbox_fields=bbox_fields, types=types)
        base = self.path
        try:
            batches = dataset.to_batches(
                filter=expression, batch_size=query.limit or _PAGE, use_threads=False
            )
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                for record in arrow.stac_table_to_items(pa.Table.from_batches([batch])):
                    item = _clean(record, base)
                    try:
                        matches = item_matches(item, query)
                    except STACSearchError as err:
                        yield STACSearchError(f"{err} [in {self.where}]"), None
                        continue
                    if matches:
                        yield item, None
        except pa.ArrowException as err:
            msg = f"cannot read the stac-geoparquet file {self.where!r}: {err}; check that it is stac-geoparquet"
            raise STACSearchError(msg) from err


def _clean(record: Mapping[str, Any], base: str) -> dict[str, Any]:
    """Tidy a row read back from the table.

    Drops the nulls a table adds for properties and assets that other rows
    have (``datetime`` stays), writes times as strings and resolves relative
    asset hrefs against the file's location. An absolute href (a URL of any
    scheme, ``file://`` included, or an absolute path) is kept as the file
    stored it, wherever the file is read from: the items a search gives
    are the items that were written, as stac-geoparquet reads them back.
    """
    item = dict(record)
    properties = {}
    for key, value in (item.get("properties") or {}).items():
        if value is None and key != "datetime":
            continue
        if isinstance(value, dt.datetime):
            value = value.isoformat().replace("+00:00", "Z")
        properties[key] = value
    item["properties"] = properties
    # A local file's joined href is an absolute path; next to a self link on a server or in a bucket pystac
    # would read that path as one on the link's host (https://host/data/B04.tif): give it as a file:// URI.
    as_uri = not (is_http(base) or is_object_url(base)) and _remote_self_link(item)
    assets = {}
    for key, asset in (item.get("assets") or {}).items():
        if asset is None:
            continue
        if (
            isinstance(asset, Mapping)
            and isinstance(asset.get("href"), str)
            and not is_absolute(asset["href"])
        ):
            href = asset["href"]
            joined = join_url(base, href) if is_object_url(base) else join_href(base, href)
            asset = {**asset, "href": pathlib.Path(joined).as_uri() if as_uri else joined}
        assets[key] = asset
    item["assets"] = assets
    return item


def _remote_self_link(item: Mapping[str, Any]) -> bool:
    """Whether the item's self link is a URL other than ``file://`` (a server's or a bucket's)."""
    links = item.get("links")
    for link in links if isinstance(links, list) else []:
        if isinstance(link, Mapping) and link.get("rel") == "self" and isinstance(link.get("href"), str):
            scheme = link["href"].split("://", 1)[0].lower() if "://" in link["href"] else ""
            return len(scheme) > 1 and scheme != "file"
    return False
