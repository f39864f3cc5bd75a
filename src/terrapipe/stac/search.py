"""``search_stac``: find STAC items in an API, a static catalog or a stac-geoparquet file, lazily.

Two forms, one stage (:class:`SearchSTAC`):

- the source function :func:`search_stac` runs one search::

      tp.search_stac("http://127.0.0.1:7822", collections=["demo-s2"], bbox=aoi, datetime="2024-06")

- the functional form runs one search per element of a pipe of queries
  (:class:`~terrapipe.stac.query.STACQuery` or dicts, zen3geo style); the
  parameters given to the stage apply to every query and the element's own
  override them::

      tp.from_items([{"bbox": a}, {"bbox": b}]).search_stac(url, collections=["demo-s2"])

What to search is a :class:`~terrapipe.stac.query.STACQuery` (or its
parameters by name); where, the ``catalog`` (``kind="auto"`` picks the
backend from it):

========================================  ==============  ==========================================
catalog                                   kind            how
========================================  ==============  ==========================================
``pystac_client.Client``                  ``api``         its search endpoint, headers, modifier
``http(s)://...`` not ending in ``.json``  ``api``         STAC API item search, page by page
path/URL ending in ``.json``, or a folder  ``static``      walk the catalog, filter on the client
path/URL ending in ``.parquet``            ``geoparquet``  scan with the filter pushed down
========================================  ==============  ==========================================

Paths may be local, ``file://``, ``http(s)://`` or in a bucket (``s3://``,
``az://``, ``abfs://``, ``gs://``; a bucket "folder" means its ``catalog.json``).
How they are reached is one :class:`~terrapipe.io.storage.Storage`,
``storage=``: bucket endpoints and credentials (``Storage.from_env()`` when
not given), and for every catalog the HTTP headers, request modifier,
time-out, retries, back-off, deadline (``None``: 120 s) and body cap
(:mod:`terrapipe.stac.http_json`). The old loose keywords (``headers=``,
``timeout=``, ...) still work for one release and warn
(:mod:`terrapipe.stac.deprecated`).

Items come out as ``pystac.Item`` one page at a time: nothing is requested
before the first item is asked for, and a pipe stopped after a few items has
fetched only the pages they came from. The stage is
:class:`~terrapipe.core.state.Stateful`: its state names the query, the
page (the request of an API page, or an item offset) and the position in it,
so a resumed pipe fetches that page again and goes on from there.

An empty search is an empty pipe, not an error.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, Literal

from terrapipe._compat import stac_io_of
from terrapipe.core.errors import InvalidArgumentError, STACSearchError
from terrapipe.core.on_error import OnError
from terrapipe.core.optional import require
from terrapipe.core.pipe import IterDataPipe, register
from terrapipe.core.redact import public_url
from terrapipe.core.sources import from_items
from terrapipe.io.object_store import is_object_url
from terrapipe.io.storage import Storage, cloud_of
from terrapipe.stac.api import ApiBackend, options_from_stac_io
from terrapipe.stac.backend import SearchBackend
from terrapipe.stac.deprecated import TRANSPORT_KEYWORDS, as_storage, renamed_options, with_keywords
from terrapipe.stac.geoparquet import GeoParquetBackend
from terrapipe.stac.hrefs import is_http
from terrapipe.stac.items import ItemModifier
from terrapipe.stac.keywords import renamed
from terrapipe.stac.paged_search import PagedSearch
from terrapipe.stac.query import SEARCH_KEYS, SearchQuery, STACQuery, make_query

__all__ = ["SearchKind", "SearchSTAC", "detect_kind", "open_backend", "search_stac"]

SearchKind = Literal["auto", "api", "static", "geoparquet"]
_KINDS = ("auto", "api", "static", "geoparquet")


def detect_kind(source: str) -> Literal["api", "static", "geoparquet"]:
    """Which backend ``kind="auto"`` picks for a path or URL (see the module doc).

    Examples
    --------
    >>> [detect_kind(s) for s in ("http://127.0.0.1:7822", "https://h/stac/catalog.json",
    ...                           "/data/items.parquet", "/data/stac", "s3://bucket/stac/")]
    ['api', 'static', 'geoparquet', 'static', 'static']
    >>> detect_kind("/data/run#2/items.parquet"), detect_kind("https://h/items.parquet?sig=x#p")
    ('geoparquet', 'geoparquet')
    """
    # A URL's query and fragment are not part of its name; a local path's '?' and '#' are (run#2/items.parquet).
    path = (source.split("?", 1)[0].split("#", 1)[0] if "://" in source else source).lower()
    if path.endswith((".parquet", ".geoparquet", ".pq")):
        return "geoparquet"
    if path.endswith(".json"):
        return "static"
    return "api" if is_http(source) else "static"


# Query parameter names that carry credentials, not a choice of data: a fingerprint leaves them out
# so that a rotated token keeps it (messages show no query string at all: io.redact's allowlist).
_CREDENTIAL_PARTS = re.compile(
    r"token|secret|passw|passphrase|sig|credential|auth|sess(?:ion)?id"
    r"|(?:api|access|account|subscription|private|shared|master|signing|client)key"
)
_CREDENTIAL_NAMES = frozenset(
    {"key", "code", "pass", "pwd", "jwt", "sas", "se", "sp", "sv", "sr", "st", "ss", "srt"}
)


def _is_credential(name: str) -> bool:
    """Whether a query parameter named ``name`` holds a credential (for fingerprints only).

    Examples
    --------
    >>> [_is_credential(n) for n in ("subscription-key", "X-Amz-Signature", "AWSAccessKeyId", "tier", "keyword")]
    [True, True, True, False, False]
    """
    compact = re.sub(r"[^a-z0-9]", "", name.lower())
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+", name)
    last = words[-1].lower() if words else ""
    return (
        compact in _CREDENTIAL_NAMES
        or bool(_CREDENTIAL_PARTS.search(compact))
        or last in ("key", "pwd", "pass")
    )


def _described_url(url: str, params: Mapping[str, str] | None = None) -> str:
    """``scheme://host/path`` of ``url`` with its (and ``params``') query parameters that are not credentials."""
    if "://" not in url:  # a local path: '?' and '#' are part of the name
        return url
    parts = urllib.parse.urlsplit(url)
    pairs = [*urllib.parse.parse_qsl(parts.query, keep_blank_values=True), *(params or {}).items()]
    kept = urllib.parse.urlencode(sorted((k, v) for k, v in pairs if not _is_credential(k)))
    return public_url(url) + (f"?{kept}" if kept else "")


def _in_bucket(source: Any) -> bool:
    return isinstance(source, str | os.PathLike) and is_object_url(os.fspath(source))


def _callable_name(fn: Any) -> str | None:
    if fn is None:
        return None
    cls = type(fn)
    module = getattr(fn, "__module__", None) or cls.__module__
    return f"{module}.{getattr(fn, '__qualname__', cls.__qualname__)}"


def open_backend(
    source: Any,
    *,
    kind: SearchKind = "auto",
    storage: Storage | None = None,
    options: Storage | None = None,
) -> tuple[SearchBackend, ItemModifier | None]:
    """Build the backend that searches ``source``.

    Parameters
    ----------
    source
        A pystac-client ``Client``, or a path/URL (see the module doc).
    kind
        ``"auto"`` (from the source), ``"api"``, ``"static"`` or ``"geoparquet"``.
    storage
        How to reach the source (buckets: ``Storage.from_env()`` when ``None``);
        ``options=`` is its deprecated name.

    Returns
    -------
    tuple
        The backend and the item modifier the source brings (a ``Client``'s
        ``modifier``), if any.

    Raises
    ------
    InvalidArgumentError
        For an unknown kind or a source of the wrong type.
    """
    if kind not in _KINDS:
        raise InvalidArgumentError(f"kind must be one of {_KINDS}, got {kind!r}")
    storage = renamed_options("open_backend", storage, options)
    if storage is not None:
        as_storage(storage)
    client_module = require("pystac_client", feature="search_stac")
    if isinstance(source, client_module.Client):
        if kind not in ("auto", "api"):
            raise InvalidArgumentError(f"a pystac_client.Client is a STAC API; kind={kind!r} does not fit it")
        link = source.get_search_link()
        if link is None:
            raise STACSearchError(
                f"the STAC API at {public_url(str(source.self_href))} has no item search link"
            )
        client_storage, params = options_from_stac_io(stac_io_of(source), as_storage(storage))
        methods = tuple(
            str(lk.extra_fields.get("method") or "GET").upper() for lk in source.get_links("search")
        )
        backend: SearchBackend = ApiBackend(
            str(source.self_href or link.href),
            storage=client_storage,
            url_params=params,
            conformance=list(source.get_conforms_to()),
            search_href=str(link.href),
            search_methods=methods,
        )
        return backend, getattr(source, "modifier", None)
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        msg = (
            "search_stac needs a STAC API URL, a pystac_client.Client, a static catalog path/URL or a "
            f"stac-geoparquet path/URL, got {type(source).__name__}: {source!r}"
        )
        raise InvalidArgumentError(msg)
    chosen = detect_kind(source) if kind == "auto" else kind
    if chosen == "api" and is_object_url(source):
        raise InvalidArgumentError(
            f"{public_url(source)} is in a bucket: a STAC API is served over HTTP; give a static catalog "
            "(catalog.json) or a stac-geoparquet file there, or kind='static'/'geoparquet'"
        )
    if chosen == "api":
        return ApiBackend(source, storage=storage), None
    if chosen == "geoparquet":
        return GeoParquetBackend(source, storage=storage), None
    from terrapipe.stac.static import StaticBackend

    return StaticBackend(source, storage=storage), None


@register("search_stac")
class SearchSTAC(PagedSearch):
    """Search STAC items for each query of the source pipe.

    Parameters
    ----------
    source
        Pipe of queries: :class:`~terrapipe.stac.query.STACQuery` or mappings
        of its parameters (keys from :data:`~terrapipe.stac.query.SEARCH_KEYS`).
    catalog
        Where to search: a STAC API URL or ``pystac_client.Client``, a static
        catalog (``catalog.json``/``collection.json``, path or URL) or a
        stac-geoparquet file (see the module doc).
    stac_query
        Search parameters shared by every query of the pipe (an element's
        parameters override them): a :class:`~terrapipe.stac.query.STACQuery`
        or a mapping of its parameters. (``query=`` is the STAC API Query
        Extension's parameter, one of them.)
    kind
        Backend: ``"auto"`` (from ``catalog``), ``"api"``, ``"static"``, ``"geoparquet"``.
    method
        ``"POST"`` (default) or ``"GET"`` for API searches; an API that only
        offers GET is asked with GET.
    modifier
        Called with each ``pystac.Item`` before it is yielded (e.g.
        ``planetary_computer.sign_inplace``); returns the item to use or ``None``.
    on_error
        ``"raise"``: a failing query or malformed item raises
        :class:`~terrapipe.core.errors.STACSearchError`; ``"skip"`` / ``"warn"``:
        it is counted in ``stats`` (and warned about) and the search goes on.
    storage
        How the catalog is reached, a :class:`~terrapipe.io.storage.Storage`:

        - ``headers`` (an API key) and ``request_modifier`` (called with each
          ``requests.Request`` before it is sent: signing) go only to the
          origin (scheme, host, port) of ``catalog``, as do the URL's own query
          parameters (an ``api_key=``): a ``next`` link, a catalog link or a
          redirect to another server is followed without them. Never shown,
          never sent to asset reads (``stack_stac``).
        - ``timeout``: seconds for a connection and for each socket read;
          ``retries``, ``backoff``, ``max_backoff``: retries of 429/5xx
          answers, dropped connections and time-outs, with exponential
          back-off and jitter, honouring ``Retry-After``.
        - ``deadline``: seconds one request may take in all (a page, a landing
          page, a catalog document, a stac-geoparquet download), retries,
          back-off, redirects and body included; ``None``: 120 s
          (:data:`~terrapipe.stac.http_json.DEFAULT_DEADLINE`).
        - ``max_bytes``: largest answer accepted, decompressed; ``None``: 64 MiB
          for a JSON page or document, 1 GiB for a stac-geoparquet file.
        - endpoints and credentials of buckets (``s3://``, ``az://``,
          ``abfs://``, ``gs://``); ``None`` reads ``Storage.from_env()`` when a
          bucket is first read (never sent to an HTTP server).
    **params
        Search parameters by name, a short form of ``stac_query=`` (``collections=[...]``,
        ``bbox=...``; not the same parameter in both). Deprecated for one release
        (each warns with :class:`~terrapipe.core.errors.TerrapipeDeprecationWarning`):
        ``source_dp=`` (now ``source``), ``source=`` naming the catalog (now
        ``catalog``), and the transport keywords ``headers``, ``request_modifier``,
        ``timeout``, ``retries``, ``backoff``, ``max_backoff``, ``deadline``,
        ``max_bytes`` (now fields of ``storage``).

    Raises
    ------
    InvalidArgumentError
        For an unknown ``kind``, keyword or search parameter, a bad option or
        query, or (when iterating) a bad query of the pipe.
    STACSearchError
        When iterating with ``on_error="raise"``: unreachable API (after
        retries), 429/5xx storms, time-outs, error answers, a parameter the
        API does not support, a malformed item. Messages name the URL.

    Notes
    -----
    Yields ``pystac.Item``. Not shardable itself: the query pipe shards (each
    worker runs its own queries). ``len()`` raises ``TypeError``. ``source``
    is positional-only, so that ``source=`` can still name the catalog in
    old code for one release (a pipe given as ``source=`` is taken as the
    source).

    Examples
    --------
    >>> import terrapipe as tp
    >>> from terrapipe.stac.query import STACQuery
    >>> world = tp.datasets.sample_world()
    >>> pipe = tp.from_items([{"ids": ["demo-dem-30m"]}, {"datetime": "2024-04"}])
    >>> items = pipe.search_stac(world.catalog, STACQuery(collections=["demo-dem", "demo-s2"]))
    >>> [item.id for item in items]
    ['demo-dem-30m', 'S2B_31TGL_20240415_0_L2A', 'S2B_32TKR_20240415_0_L2A']
    """

    def __init__(
        self,
        source: IterDataPipe[STACQuery | Mapping[str, Any]] | None = None,
        /,
        catalog: Any = None,
        stac_query: STACQuery | Mapping[str, Any] | None = None,
        *,
        kind: SearchKind = "auto",
        method: Literal["POST", "GET"] = "POST",
        modifier: ItemModifier | None = None,
        on_error: OnError = "raise",
        storage: Storage | None = None,
        **params: Any,
    ) -> None:
        source, catalog, loose, shared = _split_keywords("SearchSTAC", source, catalog, stac_query, params)
        if source is None:
            raise InvalidArgumentError("SearchSTAC needs its source pipe of queries (tp.from_items([{...}]))")
        super().__init__(source, on_error=on_error)
        if method not in ("POST", "GET"):
            raise InvalidArgumentError(f"method must be 'POST' or 'GET', got {method!r}")
        if modifier is not None and not callable(modifier):
            raise InvalidArgumentError(f"modifier must be callable, got {modifier!r}")
        self.method: Literal["POST", "GET"] = method
        if storage is None and loose and _in_bucket(catalog):
            storage = Storage.from_env()  # the environment's credentials, with the keywords on top
        storage = with_keywords("search_stac", storage, loose)
        self.backend, source_modifier = open_backend(catalog, kind=kind, storage=storage)
        self.modifier = modifier if modifier is not None else source_modifier
        self.query = shared
        self.defaults = shared.to_dict()
        if method != "POST":  # STACQuery checked them as a POST search
            make_query({}, defaults=self.defaults, method=method)

    def __repr__(self) -> str:
        return f"SearchSTAC({self.backend.where!r}, kind={self.backend.kind!r}, defaults={self.defaults!r})"

    def _prepare(self, element: Any) -> tuple[SearchBackend, SearchQuery, ItemModifier | None]:
        if isinstance(element, STACQuery):
            element = element.to_dict()
        query = make_query(element, defaults=self.defaults, method=self.method)
        return self.backend, query, self.modifier

    def cache_config(self) -> dict[str, Any]:
        """Describe what decides the items found, without credentials (for cache keys and fingerprints).

        :func:`~terrapipe.cache.segment.describe_stage` (and so
        :func:`~terrapipe.dist.fingerprint.pipe_fingerprint`) uses it in
        place of the stage's attributes. It holds the backend kind, where it
        searches (``scheme://host/path`` and the query parameters that are
        not credentials; a local catalog or file also counts by size and
        modification time), the shared search parameters and the item
        modifier's qualified name. Headers, the request modifier, query
        parameters that carry credentials, and execution options (``method``,
        ``limit``, time-outs, retries, ``on_error``) are left out: changing a
        token does not change the description. Changes a modifier's body makes,
        or items changing in an API or deeper in a static catalog, are not
        seen (pass ``version=`` to say so). A catalog or file in a bucket also
        counts by the endpoint of its store (never its credentials).

        Returns
        -------
        dict
            ``kind``, ``source``, ``defaults`` and ``modifier``.

        Examples
        --------
        >>> import terrapipe as tp, terrapipe.stac
        >>> storage = tp.Storage(headers={"Authorization": "Bearer abc"})
        >>> stage = terrapipe.stac.search_stac("https://me:pw@example.com/stac?token=abc&tier=1",
        ...                                    storage=storage, bbox=[0, 0, 1, 1])
        >>> stage.cache_config()
        {'kind': 'api', 'source': 'https://example.com/stac?tier=1', 'defaults': {'bbox': [0, 0, 1, 1]}, 'modifier': None}
        """
        backend: Any = self.backend
        if isinstance(backend, ApiBackend):
            source = _described_url(backend.url, backend._url_params)
        elif backend.kind == "static":
            source = _described_url(backend.root)
        elif isinstance(backend, GeoParquetBackend):
            source = _described_url(backend.path)
        else:
            source = backend.where
        config = {
            "kind": backend.kind,
            "source": source,
            "defaults": {k: v for k, v in self.defaults.items() if k != "limit"},  # limit: the page size
            "modifier": _callable_name(self.modifier),
        }
        if is_object_url(source):  # the same bucket name on another server is another catalog
            storage = getattr(backend, "storage", None) or Storage.from_env()
            endpoint = storage.endpoint_for(cloud_of(source))
            config["endpoint"] = public_url(endpoint) if endpoint else None
        return config


def search_stac(
    catalog: Any = None,
    stac_query: STACQuery | Mapping[str, Any] | None = None,
    *,
    kind: SearchKind = "auto",
    method: Literal["POST", "GET"] = "POST",
    modifier: ItemModifier | None = None,
    on_error: OnError = "raise",
    storage: Storage | None = None,
    **params: Any,
) -> SearchSTAC:
    """Start a pipe of the ``pystac.Item`` s one search finds: the :class:`SearchSTAC` of one query.

    Parameters
    ----------
    catalog
        STAC API URL or ``pystac_client.Client``; static catalog
        (``catalog.json``, path or URL); stac-geoparquet file.
    stac_query
        What to search for: a :class:`~terrapipe.stac.query.STACQuery` or a
        mapping of its parameters (``None``: every item).
    kind, method, modifier, on_error, storage
        See :class:`SearchSTAC`.
    **params
        Search parameters by name (``collections=``, ``bbox=``, ``datetime=``,
        ...: the fields of :class:`~terrapipe.stac.query.STACQuery`), and the
        deprecated keywords :class:`SearchSTAC` accepts (``source=`` for the
        catalog, the transport keywords).

    Returns
    -------
    SearchSTAC
        A lazy pipe of items; chain ``.stack_stac(...)`` to make one datacube of them all.

    Raises
    ------
    InvalidArgumentError
        For bad parameters (checked before anything is requested).

    Examples
    --------
    >>> import terrapipe as tp, terrapipe.stac
    >>> world = tp.datasets.sample_world()
    >>> items = terrapipe.stac.search_stac(world.catalog, collections=["demo-s2"], datetime="2024-06")
    >>> [item.id for item in items]
    ['S2A_31TGL_20240619_0_L2A', 'S2A_32TKR_20240619_0_L2A']
    >>> from terrapipe.stac.query import STACQuery
    >>> june = STACQuery(collections=["demo-s2"], datetime="2024-06", max_items=1)
    >>> [item.id for item in terrapipe.stac.search_stac(world.catalog, june)]
    ['S2A_31TGL_20240619_0_L2A']
    """
    queries: IterDataPipe[Mapping[str, Any]] = from_items([{}], shard="auto")
    return SearchSTAC(
        queries,
        catalog,
        stac_query,
        kind=kind,
        method=method,
        modifier=modifier,
        on_error=on_error,
        storage=storage,
        **params,
    )


def _split_keywords(
    owner: str,
    source: Any,
    catalog: Any,
    stac_query: STACQuery | Mapping[str, Any] | None,
    params: Mapping[str, Any],
) -> tuple[Any, Any, dict[str, Any], STACQuery]:
    """Sort :class:`SearchSTAC`'s keywords: ``(source, catalog, deprecated transport keywords, shared query)``.

    Search parameters go on ``stac_query``; ``source_dp=`` and a ``source=`` that
    is not a pipe (the catalog, by its old name) are taken with a warning;
    the transport keywords are returned for :func:`~terrapipe.stac.deprecated.with_keywords`
    (which warns). Anything else is an :class:`~terrapipe.core.errors.InvalidArgumentError`.
    """
    params = dict(params)
    if "source_dp" in params:
        renamed(owner, "source_dp", "source")
        old_pipe = params.pop("source_dp")
        if source is None:
            source = old_pipe
    if "source" in params:
        given = params.pop("source")
        if isinstance(given, IterDataPipe) and source is None:
            source = given  # the new name, as a keyword
        else:
            renamed(owner, "source", "catalog")
            if catalog is None:
                catalog = given
    if catalog is None:
        raise InvalidArgumentError(
            f"{owner} needs catalog=: a STAC API URL or pystac_client.Client, a static catalog or a "
            "stac-geoparquet file"
        )
    loose = {k: params.pop(k) for k in TRANSPORT_KEYWORDS if k in params}
    unknown = sorted(k for k in params if k not in SEARCH_KEYS)
    if unknown:
        msg = (
            f"{owner} got unknown keywords {unknown}; search parameters are {list(SEARCH_KEYS)} (or "
            "stac_query=tp.stac.STACQuery(...)), and how the catalog is reached goes in storage=tp.Storage(...)"
        )
        raise InvalidArgumentError(msg)
    given_params = {k: v for k, v in params.items() if v is not None}
    loose = {k: v for k, v in loose.items() if v is not None}
    if isinstance(stac_query, STACQuery) and not given_params:
        return source, catalog, loose, stac_query  # checked when it was made
    base = stac_query.to_dict() if isinstance(stac_query, STACQuery) else stac_query
    if base is None:
        base = {}
    if isinstance(base, Mapping):  # anything else: STACQuery.of says what a query is
        both = sorted(set(given_params) & {k for k, v in base.items() if v is not None})
        if both:
            raise InvalidArgumentError(
                f"{owner}: {both} given both in stac_query= and as keywords; give each once"
            )
        base = {**base, **given_params}
    return source, catalog, loose, STACQuery.of(base)  # checked once, here
