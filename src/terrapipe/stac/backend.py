"""What every search backend (STAC API, static catalog, stac-geoparquet) offers the search stage.

A backend turns a :class:`~terrapipe.stac.query.SearchQuery` into *pages* of
item dicts. Pages are addressed by *tokens*: plain JSON-able dicts (the
request of an API page; an item offset for a file), so the search stage can
save the token of the page it is in and fetch that page again on resume.

Examples
--------
>>> Page(features=[{"id": "a"}], next=None, where="/data/catalog.json").features[0]["id"]
'a'
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.stac.query import API_ONLY_KEYS, SearchQuery

__all__ = [
    "OffsetPager",
    "Page",
    "SearchBackend",
    "items_key",
    "normalise_url",
    "page_key",
    "refuse_api_only",
]


@dataclass(frozen=True)
class Page:
    """One page of a search.

    Attributes
    ----------
    features
        Item dicts, in the order the backend returns them; a
        :class:`~terrapipe.core.errors.STACSearchError` in place of an item
        a file backend could not test against the query (the search stage
        raises or skips it by ``on_error``).
    next
        Token of the next page, or ``None`` after the last page.
    where
        The (redacted) URL or path the page came from, for messages.
    base_hrefs
        Per feature, the href its relative asset hrefs resolve against
        (``None`` where none is known); ``None`` for API pages.
    matched
        How many items the API says match the search (``numberMatched``, or
        the older ``context.matched``), when this page states it.
    """

    features: list[Any]
    next: dict[str, Any] | None
    where: str
    base_hrefs: list[str | None] | None = None
    matched: int | None = None


class SearchBackend(Protocol):
    """A place items are searched in."""

    #: ``"api"``, ``"static"`` or ``"geoparquet"``.
    kind: str
    #: Where it searches (redacted), for messages and reprs.
    where: str

    def check(self, query: SearchQuery) -> None:
        """Raise if this backend cannot evaluate ``query`` (before any request)."""
        ...

    def first(self, query: SearchQuery) -> dict[str, Any]:
        """Token of the first page of ``query``."""
        ...

    def fetch(self, token: dict[str, Any], query: SearchQuery) -> Page:
        """Fetch the page of ``token``."""
        ...


def normalise_url(url: str) -> str:
    """Return ``url`` in one spelling per resource: lowercased scheme and host, default port and fragment dropped, query sorted.

    Two links that name the same page or document become equal, so a loop
    is seen whatever spelling each link uses. A string that is not an
    HTTP(S) URL comes back unchanged.

    Examples
    --------
    >>> normalise_url("HTTP://Example.COM:80/search?page=2&limit=10#x")
    'http://example.com/search?limit=10&page=2'
    >>> normalise_url("/data/catalog.json")
    '/data/catalog.json'
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return url
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != (443 if scheme == "https" else 80):
        host = f"{host}:{port}"
    query = urllib.parse.urlencode(sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)))
    return urllib.parse.urlunsplit((scheme, host, parts.path or "/", query, ""))


def _digest(value: Any) -> bytes:
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def page_key(token: Mapping[str, Any]) -> bytes:
    """Digest of a page token, its ``href`` normalised (:func:`normalise_url`): equal keys, same page.

    Examples
    --------
    >>> page_key({"href": "http://H/search?b=1&a=2"}) == page_key({"href": "http://h/search?a=2&b=1"})
    True
    """
    shown = dict(token)
    if isinstance(shown.get("href"), str):
        shown["href"] = normalise_url(shown["href"])
    return _digest(shown)


def items_key(features: list[Any]) -> bytes:
    """Digest of the ``(collection, id)`` of each feature of a page, in order (what a repeated page repeats)."""
    return _digest(
        [
            (feature.get("collection"), feature.get("id"))
            if isinstance(feature, Mapping)
            else repr(feature)[:200]
            for feature in features
        ]
    )


def refuse_api_only(query: SearchQuery, kind: str, where: str) -> None:
    """Raise :class:`InvalidArgumentError` for parameters only STAC APIs evaluate.

    Examples
    --------
    >>> from terrapipe.stac.query import make_query
    >>> refuse_api_only(make_query({"sortby": "datetime"}), "static", "catalog.json")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: a static catalog search (catalog.json) cannot evaluate ['sortby']; only STAC APIs do: remove them, or filter and sort the items downstream (pipe.filter(...))
    """
    bad = [key for key in query.given if key in API_ONLY_KEYS]
    if bad:
        label = "stac-geoparquet" if kind == "geoparquet" else "static catalog"
        msg = (
            f"a {label} search ({where}) cannot evaluate {bad}; only STAC APIs do: remove them, "
            "or filter and sort the items downstream (pipe.filter(...))"
        )
        raise InvalidArgumentError(msg)


class OffsetPager:
    """Pages of a lazily walked sequence of matching items, addressed by item offset.

    File backends walk their items once per query; a page token is
    ``{"offset": n}`` (``n`` matching items come before the page). Fetching
    the page that follows the last one continues the walk; any other offset
    (after a resume) restarts it and skips ``n`` matches.

    Parameters
    ----------
    walk
        ``walk(query)`` yields ``(item dict, base href or None)`` for the matching items.
    page_size
        Items per page when the query sets no ``limit``.
    where
        Redacted source, for pages.
    """

    def __init__(self, walk: Any, *, page_size: int, where: str) -> None:
        self._walk = walk
        self._page_size = page_size
        self._where = where
        self._iter: Iterator[tuple[Any, str | None]] | None = None
        self._position = -1
        self._query: SearchQuery | None = None

    def fetch(self, token: dict[str, Any], query: SearchQuery) -> Page:
        """Return the page starting at match ``token["offset"]``."""
        offset = token.get("offset")
        if set(token) != {"offset"} or not isinstance(offset, int) or offset < 0:
            raise InvalidArgumentError(f"not a page token of {self._where}: {token!r}")
        if self._iter is None or self._query is not query or self._position != offset:
            self._iter, self._query, self._position = iter(self._walk(query)), query, 0
            for _ in range(offset):
                if next(self._iter, None) is None:
                    break
                self._position += 1
        size = query.limit or self._page_size
        features: list[Any] = []
        bases: list[str | None] = []
        for record, base in self._iter:
            features.append(record)
            bases.append(base)
            if len(features) == size:
                break
        self._position += len(features)
        following = {"offset": self._position} if len(features) == size else None
        if following is None:
            self._iter, self._query = None, None
        return Page(features=features, next=following, where=self._where, base_hrefs=bases)
