"""``list_stac_items``: the zen3geo two-step form, pystac-client ``ItemSearch`` objects in, items out.

::

    client = pystac_client.Client.open(url)
    searches = tp.from_items([client.search(collections=["demo-s2"], bbox=aoi)])
    items = searches.list_stac_items()

Each ``ItemSearch`` keeps what pystac-client gave it (endpoint, method,
parameters, ``max_items``, headers and request modifier of its ``StacApiIO``,
the client's item modifier); the pages are then fetched by terrapipe's
resumable pager (:mod:`terrapipe.stac.paged_search`) with bounded retries,
not by pystac-client's generator.
"""

from __future__ import annotations

from typing import Any

from terrapipe._compat import search_max_items, stac_io_of
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.on_error import OnError
from terrapipe.core.optional import require
from terrapipe.core.pipe import IterDataPipe, register
from terrapipe.io.storage import Storage
from terrapipe.stac.api import ApiBackend, options_from_stac_io
from terrapipe.stac.backend import SearchBackend
from terrapipe.stac.deprecated import with_keywords
from terrapipe.stac.items import ItemModifier
from terrapipe.stac.keywords import renamed_source, transport_keywords
from terrapipe.stac.paged_search import PagedSearch
from terrapipe.stac.query import SearchQuery

__all__ = ["ListSTACItems", "query_of_item_search"]

_TRANSPORT = ("timeout", "retries", "backoff", "max_backoff", "deadline", "max_bytes")


def query_of_item_search(search: Any) -> SearchQuery:
    """Return the :class:`~terrapipe.stac.query.SearchQuery` of a pystac-client ``ItemSearch``, as it would send it.

    Examples
    --------
    >>> from pystac_client import ItemSearch
    >>> q = query_of_item_search(ItemSearch("http://h/search", collections="demo-s2", max_items=3))
    >>> q.body, q.method, q.max_items
    ({'collections': ('demo-s2',)}, 'POST', 3)
    """
    body = dict(search.get_parameters())
    method = str(search.method or "POST").upper()
    limit = body.get("limit")
    return SearchQuery(
        body=body,
        method="GET" if method == "GET" else "POST",
        max_items=search_max_items(search),
        limit=int(limit) if limit is not None else None,
        bbox=None,
        intersects=None,
        start=None,
        end=None,
        collections=None,
        ids=None,
        given=tuple(k.replace("-", "_") for k in body),
        params=body,
    )


@register("list_stac_items")
class ListSTACItems(PagedSearch):
    """Yield the ``pystac.Item`` s of each pystac-client ``ItemSearch`` of the source pipe.

    Parameters
    ----------
    source
        Pipe of ``pystac_client.ItemSearch`` (e.g. from ``Client.search(...)``).
    storage
        How pages are requested (retries, back-off, deadline, body cap; see
        :class:`~terrapipe.stac.search.SearchSTAC`). Headers, parameters,
        request modifier and time-out of the search's ``StacApiIO`` are added
        (its time-out unless ``storage`` sets another than the default); they
        go only to the origin of its endpoint.
    on_error
        ``"raise"``, ``"skip"`` or ``"warn"`` for a failing search or a malformed item.
    **deprecated
        For one release (each warns with
        :class:`~terrapipe.core.errors.TerrapipeDeprecationWarning`): ``source_dp=``
        (now ``source``) and ``timeout``, ``retries``, ``backoff``,
        ``max_backoff``, ``deadline``, ``max_bytes`` (now fields of ``storage``).

    Raises
    ------
    InvalidArgumentError
        When iterating, for an element that is not an ``ItemSearch``.
    STACSearchError
        When iterating with ``on_error="raise"``: see :class:`~terrapipe.stac.search.SearchSTAC`.

    Notes
    -----
    Stateful like ``search_stac`` (the page request is saved). The API's
    conformance is not checked again: pystac-client did it when the
    ``ItemSearch`` was made.
    """

    def __init__(
        self,
        source: IterDataPipe[Any] | None = None,
        *,
        storage: Storage | None = None,
        on_error: OnError = "raise",
        **deprecated: Any,
    ) -> None:
        source = renamed_source("list_stac_items", source, deprecated)
        loose = transport_keywords("list_stac_items", deprecated, _TRANSPORT)
        super().__init__(source, on_error=on_error)
        self.storage = with_keywords("list_stac_items", storage, loose)

    def _prepare(self, element: Any) -> tuple[SearchBackend, SearchQuery, ItemModifier | None]:
        client_module = require("pystac_client", feature="list_stac_items")
        if not isinstance(element, client_module.ItemSearch):
            msg = (
                "list_stac_items takes a pipe of pystac_client.ItemSearch (from Client.search(...)), got "
                f"{type(element).__name__}; for query dicts use search_stac"
            )
            raise InvalidArgumentError(msg)
        storage, params = options_from_stac_io(stac_io_of(element), self.storage or Storage())
        method = str(element.method or "POST").upper()
        backend = ApiBackend(
            str(element.url),
            storage=storage,
            url_params=params,
            conformance=[],
            search_href=str(element.url),
            search_methods=(method,),
        )
        return backend, query_of_item_search(element), getattr(element, "modifier", None)
