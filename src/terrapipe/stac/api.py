"""Search a STAC API page by page, following ``next`` links with a cursor that can be saved.

pystac-client's page generator cannot be resumed, so the paging is done
here: the first request is the search endpoint with the query
(normalised by pystac-client's rules, see :mod:`terrapipe.stac.query`);
each answer's ``next`` link (GET URL, or POST body, ``merge`` and
``headers`` as the STAC API spec allows) is the token of the next page.

Before the first search the landing page is read once (per process) to find
the search endpoint and the conformance classes; parameters the API does
not declare support for (``query``, ``filter``, ``sortby``, ``fields``) are
refused with a :class:`~terrapipe.core.errors.STACSearchError` rather than
silently ignored. A URL ending in ``/search`` is used as the endpoint
directly, without that check.

Credentials stay with the API they were given for: the headers, the request
modifier and the URL's query parameters (an API key: ``?api_key=...``, or a
``pystac_client`` session's ``params``) go only to the origin (scheme, host,
port) of the API's URL. A ``next`` link, a search link or a redirect to
another origin is followed without them (:mod:`terrapipe.stac.http_json`). How requests are
made (time-outs, retries, deadline, body cap, credentials) is a :class:`~terrapipe.io.storage.Storage`.

A ``next`` link must be usable: a link with ``rel="next"`` but no string
``href``, an unknown ``method`` or a ``body`` that is not an object is a
:class:`~terrapipe.core.errors.STACSearchError`, never a silent end of the
search; so are ``links`` that are not a list.

Examples
--------
>>> next_token({"links": [{"rel": "next", "href": "/search?page=2"}]}, "http://h/search?page=1", None)
{'method': 'GET', 'href': 'http://h/search?page=2', 'body': None, 'headers': None}
>>> next_token({"links": [{"rel": "next", "href": "http://h/search", "method": "POST",
...             "body": {"token": "n2"}, "merge": True}]}, "http://h/search", {"limit": 2, "token": "n1"})
{'method': 'POST', 'href': 'http://h/search', 'body': {'limit': 2, 'token': 'n2'}, 'headers': None}
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from terrapipe._compat import stac_io_request_modifier
from terrapipe.core.errors import InvalidArgumentError, STACSearchError
from terrapipe.core.optional import require
from terrapipe.core.redact import public_url
from terrapipe.io.paths import origin_of
from terrapipe.io.storage import Storage
from terrapipe.stac.backend import Page
from terrapipe.stac.deprecated import as_storage, renamed_options
from terrapipe.stac.http_json import JsonClient
from terrapipe.stac.query import SearchQuery, make_query

__all__ = ["ApiBackend", "links_of", "matched_of", "next_token", "options_from_stac_io"]

#: Conformance class (pattern on the URI) each API-only parameter needs.
_CONFORMANCE = {
    "query": r"item-search#query",
    "filter": r"item-search#filter",
    "filter_lang": r"item-search#filter",
    "sortby": r"item-search#sort",
    "fields": r"item-search#fields",
}
_TOKEN_KEYS = {"method", "href", "body", "headers"}


def links_of(document: Mapping[str, Any], where: str) -> list[Mapping[str, Any]]:
    """Return the links of a STAC document (none when missing); raise when ``links`` is not a list.

    Raises
    ------
    STACSearchError
        If ``links`` is there but not a list.
    """
    links = document.get("links")
    if links is None:
        return []
    if not isinstance(links, list):
        raise STACSearchError(
            f"the answer of {where} is not valid STAC: 'links' is a {type(links).__name__}, not a list"
        )
    return [link for link in links if isinstance(link, Mapping)]


def next_token(
    page: Mapping[str, Any], page_href: str, body: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """Token of the page after ``page`` (from its ``next`` link), or ``None``.

    Parameters
    ----------
    page
        The decoded answer (an ItemCollection).
    page_href
        URL the answer came from (relative links resolve against it).
    body
        The POST body that asked for it (``merge: true`` links build on it).

    Returns
    -------
    dict or None
        ``{"method", "href", "body", "headers"}``.

    Raises
    ------
    STACSearchError
        For a ``next`` link that cannot be followed (no string ``href``, an
        unknown ``method``, a ``body`` or ``headers`` that are not objects):
        stopping there would silently drop the pages after it.
    """
    where = public_url(page_href)
    for link in links_of(page, where):
        if link.get("rel") != "next":
            continue
        href = link.get("href")
        if not isinstance(href, str) or not href.strip():
            raise STACSearchError(
                f"the answer of {where} has a 'next' link without an href ({href!r}); the pages after it "
                "cannot be fetched: report it to the API's maintainers"
            )
        method = str(link.get("method") or "GET").upper()
        if method not in ("GET", "POST"):
            raise STACSearchError(
                f"the 'next' link of {where} asks for method {method[:20]!r}; only GET and POST"
            )
        given = link.get("body")
        if given is not None and not isinstance(given, Mapping):
            raise STACSearchError(
                f"the 'next' link of {where} has a body that is a {type(given).__name__}, not an object"
            )
        link_headers = link.get("headers")
        if link_headers is not None and not isinstance(link_headers, Mapping):
            raise STACSearchError(
                f"the 'next' link of {where} has headers that are a {type(link_headers).__name__}, not an object"
            )
        try:
            target = urllib.parse.urljoin(page_href, href.strip())
        except ValueError as err:
            raise STACSearchError(f"the 'next' link of {where} is not a URL ({err})") from None
        if not target.lower().startswith(("http://", "https://")):
            raise STACSearchError(
                f"the 'next' link of {where} leads to {public_url(target)!r}, which is not an HTTP(S) URL"
            )
        next_body: dict[str, Any] | None = None
        if method == "POST":
            if link.get("merge") and body is not None:
                next_body = {**dict(body), **dict(given or {})}
            else:
                next_body = dict(given) if given is not None else (dict(body) if body is not None else None)
        headers = {str(k): str(v) for k, v in link_headers.items()} if link_headers else None
        return {"method": method, "href": target, "body": next_body, "headers": headers}
    return None


def matched_of(page: Mapping[str, Any]) -> int | None:
    """Return how many items an API page says match (``numberMatched``, else ``context.matched``), or ``None``.

    Examples
    --------
    >>> matched_of({"numberMatched": 12}), matched_of({"context": {"matched": 3}}), matched_of({"numberMatched": "x"})
    (12, 3, None)
    """
    context = page.get("context")
    for value in (
        page.get("numberMatched"),
        context.get("matched") if isinstance(context, Mapping) else None,
    ):
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def options_from_stac_io(stac_io: Any, base: Storage) -> tuple[Storage, dict[str, str]]:
    """Return the ``Storage`` and URL parameters of a pystac-client ``StacApiIO``, with ``base``'s on top.

    Takes the session's headers (other than requests' defaults), its query
    parameters, its request modifier and time-out (``base``'s where it has
    none or ``base`` sets them); retries, back-off, deadline and body cap come from ``base``.

    Parameters
    ----------
    stac_io
        ``Client._stac_io`` / ``ItemSearch._stac_io`` (or ``None``).
    base
        The storage given to the stage.

    Returns
    -------
    tuple
        The storage and the URL parameters to add to every request.
    """
    requests = require("requests", extra="stac", feature="STAC API search")
    session = getattr(stac_io, "session", None)
    defaults = requests.utils.default_headers()
    headers: dict[str, str] = {}
    params: dict[str, str] = {}
    if session is not None:
        headers = {str(k): str(v) for k, v in session.headers.items() if defaults.get(k) != v}
        params = {str(k): str(v) for k, v in (session.params or {}).items()}
    headers.update(dict(base.headers))
    timeout = getattr(stac_io, "timeout", None)
    if isinstance(timeout, tuple):
        numbers = [float(t) for t in timeout if t is not None]
        timeout = max(numbers) if numbers else None
    storage = base.with_options(
        headers=tuple(headers.items()),
        timeout=float(timeout) if timeout and base.timeout == Storage.timeout else base.timeout,
        request_modifier=base.request_modifier or stac_io_request_modifier(stac_io),
    )
    return storage, params


class ApiBackend:
    """Item search on a STAC API.

    Parameters
    ----------
    url
        Landing page of the API, or its ``/search`` endpoint.
    storage
        How requests are made (headers, time-out, retries, deadline, body
        cap, request modifier); ``options=`` is its deprecated name.
    url_params
        Query parameters added to every request (e.g. a subscription key),
        as are those of ``url`` itself; kept out of saved states.
    conformance
        Conformance classes, when already known (from a pystac-client
        ``Client``); ``None`` reads them from the landing page.
    search_href
        The search endpoint, when already known.
    """

    kind = "api"

    def __init__(
        self,
        url: str,
        *,
        storage: Storage | None = None,
        url_params: Mapping[str, str] | None = None,
        conformance: list[str] | None = None,
        search_href: str | None = None,
        search_methods: tuple[str, ...] | None = None,
        options: Storage | None = None,
    ) -> None:
        storage = as_storage(renamed_options("ApiBackend", storage, options))
        if not url.lower().startswith(("http://", "https://")):
            raise InvalidArgumentError(
                f"a STAC API URL must start with http:// or https://, got {public_url(url)!r}"
            )
        self.where = public_url(url)
        parts = urllib.parse.urlsplit(url)
        # Query parameters of the URL (an API key, a token) go with every request, like url_params.
        given = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        self.url = urllib.parse.urlunsplit(parts._replace(query=""))
        self.client = JsonClient(storage, origin=self.url)
        self._origin = origin_of(self.url)
        self._url_params = {**given, **dict(url_params or {})}
        self._conformance = conformance
        self._search_href = search_href
        self._methods = search_methods
        if search_href is None and parts.path.rstrip("/").endswith("/search"):
            self._search_href, self._methods = self.url, ("POST", "GET")

    def __repr__(self) -> str:
        return f"ApiBackend({self.where!r})"

    # -- discovery ---------------------------------------------------------
    def _discover(self) -> None:
        if self._search_href is not None:
            return
        landing = self.client.request(
            "GET", self._with_params(self.url), error=STACSearchError, what="read the STAC API landing page"
        )
        if not isinstance(landing, Mapping):
            raise STACSearchError(
                f"the answer of {self.where} is not a STAC API landing page (a JSON object)"
            )
        links = links_of(landing, self.where)
        search = [link for link in links if link.get("rel") == "search" and isinstance(link.get("href"), str)]
        if not search:
            msg = (
                f"{self.where} has no item search (no link with rel='search'); is it a STAC API? For a static "
                "catalog, give the URL of its catalog.json, or pass kind='static'"
            )
            raise STACSearchError(msg)
        methods = tuple(str(link.get("method") or "GET").upper() for link in search)
        preferred = next(
            (link for link in search if str(link.get("method") or "GET").upper() == "POST"), search[0]
        )
        self._search_href = urllib.parse.urljoin(self.url, str(preferred["href"]))
        self._methods = methods
        if self._conformance is None:
            conforms = landing.get("conformsTo")
            if conforms is None:
                link = next(
                    (
                        lk
                        for lk in links
                        if lk.get("rel") == "conformance" and isinstance(lk.get("href"), str)
                    ),
                    None,
                )
                if link is not None:
                    answer = self.client.request(
                        "GET",
                        self._with_params(urllib.parse.urljoin(self.url, str(link["href"]))),
                        error=STACSearchError,
                        what="read the STAC API conformance classes",
                    )
                    conforms = answer.get("conformsTo") if isinstance(answer, Mapping) else None
            self._conformance = [str(c) for c in conforms] if isinstance(conforms, list) else []

    def check(self, query: SearchQuery) -> None:
        """Read the landing page (once) and refuse parameters the API does not support.

        Raises
        ------
        STACSearchError
            If the API is unreachable, has no item search, or does not declare
            the conformance class a parameter needs.
        """
        self._discover()
        conformance = self._conformance
        if not conformance:  # unknown (endpoint given directly, or not declared): let the API decide
            return
        if not any("item-search" in c for c in conformance):
            raise STACSearchError(
                f"the STAC API at {self.where} does not declare item search (conformance 'item-search')"
            )
        missing = [
            key
            for key in query.given
            if key in _CONFORMANCE and not any(re.search(_CONFORMANCE[key], c) for c in conformance)
        ]
        if missing:
            msg = (
                f"the STAC API at {self.where} does not support {missing} (it declares no conformance class "
                f"{sorted({_CONFORMANCE[k] for k in missing})}); remove them from the query, or filter the items "
                "downstream (pipe.filter(...))"
            )
            raise STACSearchError(msg)

    # -- pages -------------------------------------------------------------
    def first(self, query: SearchQuery) -> dict[str, Any]:
        """Token of the first page: the search endpoint with the query."""
        self._discover()
        assert self._search_href is not None
        methods = self._methods or ("POST",)
        method = query.method
        if method not in methods:
            method = "GET" if "GET" in methods else "POST"
        if method != query.method:
            query = make_query(query.params, method=method)  # type: ignore[arg-type]
        body = json.loads(json.dumps(query.body, default=list))
        if method == "GET":
            href = _add_params(self._search_href, {k: str(v) for k, v in body.items()})
            return {"method": "GET", "href": href, "body": None, "headers": None}
        return {"method": "POST", "href": self._search_href, "body": body, "headers": None}

    def fetch(self, token: dict[str, Any], query: SearchQuery) -> Page:
        """Request one page.

        Raises
        ------
        STACSearchError
            On a failure retries did not cure, or an answer that is not an
            ItemCollection; the message names the (redacted) URL.
        """
        if set(token) != _TOKEN_KEYS:
            raise InvalidArgumentError(f"not a page token of the STAC API at {self.where}: {sorted(token)}")
        href = str(token["href"])
        answer = self.client.request(
            str(token["method"]),
            self._with_params(href),
            body=token["body"],
            headers=token["headers"],
            error=STACSearchError,
            what="search the STAC API",
        )
        where = public_url(href)
        if not isinstance(answer, Mapping):
            msg = (
                f"the answer of {where} is not a STAC ItemCollection (a JSON {type(answer).__name__}, "
                "not an object); check that the URL is a STAC API"
            )
            raise STACSearchError(msg)
        if not isinstance(answer.get("features"), list):
            given = answer.get("features")
            kind = "missing" if given is None else f"a {type(given).__name__}"
            msg = (
                f"the answer of {where} is not a STAC ItemCollection ('features' is {kind}, not a list); "
                "check that the URL is a STAC API"
            )
            raise STACSearchError(msg)
        features = list(answer["features"])
        # a 'next' link back to this page (or any earlier one) is caught by the search stage's loop check;
        # the stage decides whether an empty page's link is followed (only while numberMatched says more)
        matched = matched_of(answer)
        following: dict[str, Any] | None = None
        if features:
            following = next_token(answer, href, token["body"])
        elif matched is not None:  # an empty page ended a search before: a bad link there still does
            try:
                following = next_token(answer, href, token["body"])
            except STACSearchError:
                following = None
        return Page(features=features, next=following, where=where, matched=matched)

    def _with_params(self, href: str) -> str:
        """Return ``href`` with the API's URL parameters if it is on the API's origin (they may hold a key)."""
        if not self._url_params or origin_of(href) != self._origin:
            return href
        return _add_params(href, self._url_params)


def _add_params(href: str, params: Mapping[str, str]) -> str:
    parts = urllib.parse.urlsplit(href)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    present = {name for name, _ in pairs}
    pairs.extend((k, v) for k, v in params.items() if k not in present)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(pairs)))
