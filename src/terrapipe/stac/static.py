"""Search a static STAC catalog (local folder, bucket or HTTP) on the client, walking it lazily.

The walk starts at a ``catalog.json`` or ``collection.json`` and follows
``child`` and ``item`` links in their order, reading one document at a
time (a ``FeatureCollection`` of items, as pystac-client saves a search's
``ItemCollection``, is searched too: its items in order). The filter is pushed down where the format allows it: a collection
whose id is not in ``collections``, or whose extent misses the ``bbox`` or
the time range, is skipped with all it holds. Items are then tested with
:func:`~terrapipe.stac.query.item_matches` (STAC API semantics). Relative
hrefs resolve against the document they are in, so a catalog served over
HTTP yields items whose assets are HTTP URLs, and a catalog in a bucket
(``s3://``, ``az://``, ``abfs://``, ``gs://``; read through
:mod:`terrapipe.io.object_store` with the search's
:class:`~terrapipe.io.storage.Storage`) yields links and relative asset hrefs
resolved within that bucket (``..`` never climbs out of it).

The walk is bounded: a document reached twice (two parents link to it) is
read and searched once; a ``child`` or ``item`` link that leads back to a
document above it (a cycle; hrefs compared normalised, local paths with
symbolic links resolved) is a :class:`~terrapipe.core.errors.STACSearchError`
naming the link, as is a catalog nested more than :data:`MAX_DEPTH` levels
deep. A ``child``/``item`` link without a string ``href``, or ``links`` that
are not a list, is an error too, never a silently smaller search.

One :class:`~terrapipe.io.storage.Storage` configures it: buckets are read
with it (``Storage.from_env()`` when none is given), HTTP documents with its
time-outs, retries, deadline and body cap. Its HTTP credentials
(``headers``, ``request_modifier``) go only to the origin of the catalog's
root URL: documents it links to on other servers are read without them. A
local catalog has no origin: its links to servers get none. A root URL with
an Azure SAS (``?sv=...&sig=...``, a container or account SAS) lends it to the
links in the same container on the same origin, and to no other
(:mod:`terrapipe.stac.signed_links`); a root presigned for one object (S3,
GCS, a blob SAS) signs nothing else, and a refused link says to give the
bucket URL with credentials in ``storage=`` instead.

Examples
--------
>>> from terrapipe.stac.query import make_query
>>> collection_may_match({"type": "Collection", "id": "demo-s2", "extent": {
...     "spatial": {"bbox": [[5.8, 45.6, 6.2, 45.9]]},
...     "temporal": {"interval": [["2024-04-01T00:00:00Z", "2024-08-31T00:00:00Z"]]}}},
...     make_query({"bbox": [0, 0, 1, 1]}))
False
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from terrapipe.core.errors import STACSearchError
from terrapipe.core.redact import public_url
from terrapipe.io.object_store import is_object_url, join_url
from terrapipe.io.storage import Storage
from terrapipe.stac.api import links_of
from terrapipe.stac.backend import OffsetPager, Page, normalise_url, refuse_api_only
from terrapipe.stac.deprecated import renamed_options
from terrapipe.stac.documents import read_document
from terrapipe.stac.hrefs import is_http, join_href, local_path
from terrapipe.stac.http_json import JsonClient
from terrapipe.stac.query import SearchQuery, item_matches
from terrapipe.stac.signed_links import SignedRoot

__all__ = ["MAX_DEPTH", "StaticBackend", "collection_may_match"]

_PAGE = 50
#: Deepest nesting of catalogs and collections walked (a longer chain of ``child`` links is an error).
MAX_DEPTH = 64


def _parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    stamp = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def _extent_bbox(extent: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    try:
        overall = [float(v) for v in extent["spatial"]["bbox"][0]]
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    if len(overall) == 4:
        return overall[0], overall[1], overall[2], overall[3]
    if len(overall) == 6:
        return overall[0], overall[1], overall[3], overall[4]
    return None


def collection_may_match(collection: Mapping[str, Any], query: SearchQuery) -> bool:
    """Whether a collection's id and extent leave room for items matching ``query``.

    A collection with a missing or unreadable extent may match (it is walked).
    """
    if query.collections is not None and collection.get("id") not in query.collections:
        return False
    extent = collection.get("extent")
    if not isinstance(extent, Mapping):
        return True
    box = _extent_bbox(extent)
    if query.bbox is not None and box is not None:
        west, south, east, north = box
        q_west, q_south, q_east, q_north = query.bbox
        if (
            west <= east
            and q_west <= q_east
            and (q_west > east or q_east < west or q_south > north or q_north < south)
        ):
            return False
    try:
        start, end = extent["temporal"]["interval"][0]
        start, end = _parse_time(start), _parse_time(end)
    except (KeyError, IndexError, TypeError, ValueError):
        return True
    if query.end is not None and start is not None and start > query.end:
        return False
    return not (query.start is not None and end is not None and end < query.start)


class StaticBackend:
    """Client-side search of a static catalog.

    Parameters
    ----------
    root
        Path or URL of a ``catalog.json`` / ``collection.json`` (a local folder
        holding one works too).
    storage
        How to reach the catalog: a bucket (default ``Storage.from_env()``, read
        when needed) or an HTTP server (default ``Storage()``); ``options=`` is
        its deprecated name.
    page_size
        Items per page (the unit of saved positions) when the query has no ``limit``.
    """

    kind = "static"

    def __init__(
        self,
        root: str,
        *,
        storage: Storage | None = None,
        page_size: int = _PAGE,
        options: Storage | None = None,
    ) -> None:
        self.storage = storage = renamed_options("StaticBackend", storage, options)
        self._signed = SignedRoot.of(_root_document(root))
        self.root = self._signed.unsigned
        self.where = public_url(self.root)
        client = JsonClient(storage, origin=self.root if is_http(self.root) else None)
        # a catalog not on a server: its credentials have no server to go to
        self.client = client if is_http(self.root) else client.without_credentials()
        self._pager = OffsetPager(self._walk, page_size=page_size, where=self.where)

    def __repr__(self) -> str:
        return f"StaticBackend({self.where!r})"

    def check(self, query: SearchQuery) -> None:
        """Refuse ``query``/``filter``/``sortby``/``fields`` (only APIs evaluate them)."""
        refuse_api_only(query, self.kind, self.where)

    def first(self, query: SearchQuery) -> dict[str, Any]:
        """Token of the first page: offset 0."""
        return {"offset": 0}

    def fetch(self, token: dict[str, Any], query: SearchQuery) -> Page:
        """Return the page of matching items starting at ``token["offset"]``."""
        return self._pager.fetch(token, query)

    def _read(self, href: str, what: str) -> Any:
        try:
            return read_document(
                self._signed.sign(href),
                client=self.client,
                error=STACSearchError,
                what=what,
                storage=self.storage,
            )
        except STACSearchError as err:
            if self._signed.hint is None or href == self.root:
                raise
            raise STACSearchError(f"{err} ({self._signed.hint})") from None

    def _walk(self, query: SearchQuery) -> Iterator[tuple[Any, str | None]]:
        """Yield ``(item dict, item href)`` for every matching item, depth first in link order."""
        root = self._read(self.root, "read the static STAC catalog")
        key = _key(self.root)
        yield from self._visit(self.root, root, None, query, {key}, (key,))

    def _visit(
        self,
        href: str,
        doc: Any,
        collection: str | None,
        query: SearchQuery,
        seen: set[str],
        above: tuple[str, ...],
    ) -> Iterator[tuple[Any, str | None]]:
        kind = _kind(doc)
        if kind == "Feature":
            yield from self._matching(doc, href, collection, query)
            return
        where = public_url(href)
        if kind == "FeatureCollection":  # an ItemCollection saved from a search (pystac-client's save_object)
            features = doc.get("features")
            if not isinstance(features, list):
                raise STACSearchError(
                    f"{where} is a FeatureCollection whose 'features' is not a list; check it"
                )
            for feature in features:
                anchor = _self_href(feature) if isinstance(feature, Mapping) else None
                for item, base in self._matching(feature, href, collection, query, anchor=anchor):
                    # an item with its own self link resolves its relative hrefs against it, as pystac does
                    yield item, None if isinstance(item, Mapping) and _has_self_link(item) else base
            return
        if kind not in ("Catalog", "Collection"):
            shown = kind if isinstance(doc, Mapping) else f"a JSON {type(doc).__name__}"
            msg = f"{where} is not a STAC catalog, collection or item (type {shown!r}); check the href"
            raise STACSearchError(msg)
        if kind == "Collection":
            if not collection_may_match(doc, query):
                return
            collection = str(doc.get("id"))
        for link in links_of(doc, where):
            rel = link.get("rel")
            if rel not in ("child", "item"):
                continue
            given = link.get("href")
            if not isinstance(given, str) or not given.strip():
                raise STACSearchError(
                    f"{where} has a {rel!r} link without an href ({given!r}); fix the catalog"
                )
            target = _join(href, given.strip())
            key = _key(target)
            if key in above:
                msg = (
                    f"the static catalog {self.where} has links in a cycle: the {rel!r} link of {where} leads "
                    f"back to {public_url(target)}, which contains it; fix the catalog"
                )
                raise STACSearchError(msg)
            if key in seen:  # reached before through another parent: searched once
                continue
            seen.add(key)
            if rel == "item":
                item = self._read(target, "read a STAC item of the catalog")
                yield from self._matching(item, target, collection, query)
            else:
                if len(above) >= MAX_DEPTH:
                    msg = (
                        f"the static catalog {self.where} nests catalogs more than {MAX_DEPTH} levels deep "
                        f"(at {public_url(target)}); is it generated without end?"
                    )
                    raise STACSearchError(msg)
                child = self._read(target, "read a STAC catalog or collection")
                yield from self._visit(target, child, collection, query, seen, (*above, key))

    def _matching(
        self, item: Any, href: str, collection: str | None, query: SearchQuery, *, anchor: str | None = None
    ) -> Iterator[tuple[Any, str | None]]:
        """Yield ``(item, base)`` where the item matches ``query``.

        ``anchor``: the absolute self link of an ItemCollection's item, which its relative asset hrefs are
        resolved against in a bucket too (as pystac resolves them locally and over HTTP).
        """
        if isinstance(item, Mapping) and item.get("collection") is None and collection is not None:
            item = {**item, "collection": collection}
        if isinstance(item, Mapping) and is_object_url(href):
            item = _absolute_assets(item, anchor if anchor is not None else href)
        if not isinstance(item, Mapping):
            yield item, href  # the search stage names it as a malformed item
            return
        try:
            matches = item_matches(item, query)
        except STACSearchError as err:
            yield STACSearchError(f"{err} [item at {public_url(href)}]"), href
            return
        if matches:
            yield item, href


def _has_self_link(item: Mapping[str, Any]) -> bool:
    links = item.get("links")
    return isinstance(links, list) and any(
        isinstance(link, Mapping) and link.get("rel") == "self" and isinstance(link.get("href"), str)
        for link in links
    )


def _self_href(item: Mapping[str, Any]) -> str | None:
    """Return an item's absolute self link (``scheme://...``), else ``None``.

    Examples
    --------
    >>> _self_href({"links": [{"rel": "self", "href": "s3://b/stac/a/a.json"}]}), _self_href({"links": []})
    ('s3://b/stac/a/a.json', None)
    >>> _self_href({"links": [{"rel": "self", "href": "./a.json"}]}) is None
    True
    """
    links = item.get("links")
    for link in links if isinstance(links, list) else ():
        if isinstance(link, Mapping) and link.get("rel") == "self":
            given = link.get("href")
            return given.strip() if isinstance(given, str) and "://" in given else None
    return None


def _kind(doc: Any) -> Any:
    """Return a document's ``type``; for a catalog or collection older than STAC 1.0.0-rc.1 (none), its shape.

    As pystac identifies them: with ``stac_version`` and ``links``, an ``extent`` makes a collection, else a
    catalog (items have always been GeoJSON features, ``"type": "Feature"``).

    Examples
    --------
    >>> _kind({"stac_version": "0.8.1", "id": "c", "description": "d", "links": [], "extent": {}})
    'Collection'
    >>> _kind({"stac_version": "1.0.0-beta.2", "id": "c", "description": "d", "links": []}), _kind({"id": "x"})
    ('Catalog', None)
    >>> _kind({"stac_version": "1.0.0-beta.2", "links": [], "extent": {}, "assets": {"thumbnail": {}}})
    'Collection'
    >>> _kind({"stac_version": "1.0.0-beta.2", "links": [], "assets": {}}) is None
    True
    """
    if not isinstance(doc, Mapping):
        return None
    kind = doc.get("type")
    if kind is None and "stac_version" in doc and isinstance(doc.get("links"), list):
        if isinstance(doc.get("extent"), Mapping):  # a collection, with collection-level assets or without
            return "Collection"
        if "assets" not in doc:
            return "Catalog"
    return kind


def _join(base: str, href: str) -> str:
    """Resolve a link's ``href`` against ``base``: within the bucket for a bucket catalog."""
    if is_object_url(base):
        return join_url(base, href)
    return join_href(base, href)


def _absolute_assets(item: Mapping[str, Any], href: str) -> Mapping[str, Any]:
    """Resolve the relative asset hrefs of an item read from a bucket against the item's URL."""
    assets = item.get("assets")
    if not isinstance(assets, Mapping):
        return item
    resolved = {}
    for key, asset in assets.items():
        if isinstance(asset, Mapping) and isinstance(asset.get("href"), str) and asset["href"].strip():
            asset = {**asset, "href": join_url(href, asset["href"].strip())}
        resolved[key] = asset
    return {**item, "assets": resolved}


def _key(href: str) -> str:
    """One spelling per document: a normalised URL, or a local path with symbolic links resolved."""
    if is_object_url(href):
        parts = urllib.parse.urlsplit(href)
        return f"{parts.scheme.lower()}://{parts.netloc}{posixpath.normpath('/' + parts.path.lstrip('/'))}"
    if is_http(href):
        return normalise_url(href)
    return os.path.realpath(local_path(href))


def _root_document(root: str) -> str:
    """Return the catalog document of ``root`` (a folder gets its catalog.json or collection.json).

    A local root is made absolute: the hrefs resolved against it become the items' asset hrefs and self
    links, and a relative asset href next to an absolute self link would be resolved twice by pystac
    (``cat/a/B04.tif`` read at ``/work/cat/a/cat/a/B04.tif``).
    """
    if is_http(root):
        return root
    if is_object_url(root):  # a bucket "folder" means its catalog.json
        return root if root.lower().endswith(".json") else root.rstrip("/") + "/catalog.json"
    path = os.path.abspath(local_path(root))
    if os.path.isdir(path):
        for name in ("catalog.json", "collection.json"):
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        raise STACSearchError(
            f"{path!r} is a folder without catalog.json or collection.json; give the catalog file"
        )
    return path
