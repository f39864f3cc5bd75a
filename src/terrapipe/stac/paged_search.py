"""The paging engine shared by ``search_stac`` and ``list_stac_items``: lazy, resumable, policed.

:class:`PagedSearch` pulls one search at a time from its source pipe, asks
the backend for pages (:mod:`terrapipe.stac.backend`) and yields one
``pystac.Item`` per feature. Its position (which search, which page, how far
into it) is kept in attributes, never in a generator's frame, so
:meth:`PagedSearch.state_dict` can be taken between any two items and a
resumed pipe fetches the page it stopped in again and goes on from there.
Subclasses only say how an element becomes a backend and a query
(:meth:`PagedSearch._prepare`).

Paging is policed: every page token of a query is remembered (a digest of
its request, the URL normalised by
:func:`~terrapipe.stac.backend.normalise_url`), and a ``next`` link that
leads back to a page already read (A -> B -> A, a page naming itself, a POST
token that cycles) is a :class:`~terrapipe.core.errors.STACSearchError`
naming the loop, raised before any item is repeated. An API page that
repeats the items (collection and id, in order) of an earlier page under a
new token is the same kind of loop. Items whose id comes back on a later,
different page (an API whose pages shift while they are read) are passed
on as the API sends them: the stage does not deduplicate. An empty API page
with a ``next`` link is followed only while the API's ``numberMatched``
says more items match than it sent (at most :data:`MAX_EMPTY_PAGES` in a
row, then a named error); otherwise it ends the search, as in pystac-client.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from terrapipe.core.errors import PipelineStateError, STACSearchError, TerrapipeError
from terrapipe.core.on_error import OnError, check_on_error, handle_error
from terrapipe.core.pipe import IterDataPipe, Stage
from terrapipe.core.redact import public_url
from terrapipe.core.state import Stateful, expect_keys
from terrapipe.stac.backend import SearchBackend, items_key, page_key
from terrapipe.stac.items import ItemModifier, item_from_dict
from terrapipe.stac.query import SearchQuery

__all__ = ["MAX_EMPTY_PAGES", "PagedSearch"]

_STATE_KEYS = ("query", "source", "page", "offset", "count")
#: Most empty pages in a row followed while the API says more items match (then a named error).
MAX_EMPTY_PAGES = 5


class PagedSearch(Stage[Any]):
    """Base of the search stages: one search per source element, items page by page.

    Parameters
    ----------
    source
        Pipe of searches (what an element is depends on the subclass).
    on_error
        ``"raise"``, ``"skip"`` or ``"warn"`` for a failing search or a
        malformed item.
    """

    def __init__(self, source: IterDataPipe[Any], *, on_error: OnError = "raise") -> None:
        super().__init__()
        self.source = source
        self.on_error = check_on_error(on_error)
        self._resume: dict[str, Any] | None = None
        self._in_pass = False
        self._query_index = 0
        self._snapshot: dict[str, Any] | None = None
        self._page: dict[str, Any] | None = None
        self._offset = 0
        self._count = 0

    def _prepare(self, element: Any) -> tuple[SearchBackend, SearchQuery, ItemModifier | None]:
        """Return the backend, the query and the item modifier of one element."""
        raise NotImplementedError

    # -- iteration ---------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        resume, self._resume = self._resume, None
        stateful = isinstance(self.source, Stateful)
        start = int(resume["query"]) if resume else 0
        if resume is not None and stateful and resume["source"] is not None:
            self.source.load_state_dict(resume["source"])  # type: ignore[attr-defined]
            index = start
        else:
            index = 0
        position = resume if resume is not None and resume["page"] is not None else None
        self._in_pass = True
        try:
            it = iter(self.source)
            while True:
                snapshot = dict(self.source.state_dict()) if stateful else None  # type: ignore[attr-defined]
                try:
                    element = next(it)
                except StopIteration:
                    break
                if index < start:
                    index += 1
                    continue
                self._query_index, self._snapshot = index, snapshot
                self._page, self._offset, self._count = None, 0, 0
                yield from self._search_one(element, position)
                position = None
                index += 1
        finally:
            self._in_pass = False

    def _search_one(self, element: Any, position: Mapping[str, Any] | None) -> Iterator[Any]:
        try:
            backend, query, modifier = self._prepare(element)
            backend.check(query)
        except TerrapipeError as err:
            self._finish_query()
            handle_error(err, on_error=self.on_error, stats=self.stats)
            return
        count = int(position["count"]) if position else 0
        offset = int(position["offset"]) if position else 0
        if query.max_items is not None and count >= query.max_items:
            self._finish_query()
            return
        try:
            token: dict[str, Any] | None = dict(position["page"]) if position else backend.first(query)
        except TerrapipeError as err:
            self._finish_query()
            handle_error(err, on_error=self.on_error, stats=self.stats)
            return
        pages_seen: dict[bytes, int] = {}
        items_seen: dict[bytes, int] = {}
        number = 0
        matched: int | None = None  # the latest numberMatched an API page stated
        empty = 0  # empty pages in a row
        while token is not None:
            number += 1
            key = page_key(token)
            if key in pages_seen:
                href = token.get("href")
                shown = f" ({public_url(href)})" if isinstance(href, str) else ""
                problem = (
                    f"the search at {backend.where} pages in a loop: the 'next' link of page {number - 1} leads "
                    f"back to page {pages_seen[key]}{shown}; stopped after {count} items, before repeating "
                    "any (report it to the API's maintainers)"
                )
                self._finish_query()
                handle_error(
                    _with_query(STACSearchError(problem), query), on_error=self.on_error, stats=self.stats
                )
                return
            pages_seen[key] = number
            started = time.perf_counter()
            received = getattr(getattr(backend, "client", None), "bytes_received", 0)
            try:
                page = backend.fetch(token, query)
            except TerrapipeError as err:
                self._finish_query()
                handle_error(_with_query(err, query), on_error=self.on_error, stats=self.stats)
                return
            finally:
                self.stats.seconds += time.perf_counter() - started
                self.stats.bytes_read += (
                    getattr(getattr(backend, "client", None), "bytes_received", 0) - received
                )
            if backend.kind == "api" and page.features:
                repeated = items_key(page.features)
                if repeated in items_seen:
                    problem = (
                        f"the search at {backend.where} pages in a loop: page {number} ({page.where}) repeats "
                        f"the items of page {items_seen[repeated]} under another 'next' link; stopped after "
                        f"{count} items, before repeating any (report it to the API's maintainers)"
                    )
                    self._finish_query()
                    handle_error(
                        _with_query(STACSearchError(problem), query), on_error=self.on_error, stats=self.stats
                    )
                    return
                items_seen[repeated] = number
            matched = page.matched if page.matched is not None else matched
            following = page.next
            if page.features:
                empty = 0
            elif following is not None:
                following, empty = _after_empty(following, matched, count, empty + 1)
                if empty > MAX_EMPTY_PAGES:
                    problem = (
                        f"the search at {backend.where} sent {empty} empty pages in a row ({page.where}) after "
                        f"{count} items, while it says {matched} items match; stopped (report it to the API's "
                        "maintainers)"
                    )
                    self._finish_query()
                    handle_error(
                        _with_query(STACSearchError(problem), query), on_error=self.on_error, stats=self.stats
                    )
                    return
            total = len(page.features)
            for i in range(min(offset, total), total):
                count += 1
                last = (query.max_items is not None and count >= query.max_items) or (
                    i == total - 1 and page.next is None
                )
                if last:
                    self._finish_query()
                elif i == total - 1:
                    self._page, self._offset, self._count = page.next, 0, count
                else:
                    self._page, self._offset, self._count = token, i + 1, count
                base = page.base_hrefs[i] if page.base_hrefs else None
                record = page.features[i]
                if isinstance(record, STACSearchError):  # an item the backend could not evaluate
                    handle_error(record, on_error=self.on_error, stats=self.stats)
                    if last:
                        return
                    continue
                try:
                    item = item_from_dict(
                        record,
                        where=public_url(base) if base else page.where,
                        href=base,
                        modifier=modifier,
                    )
                except STACSearchError as err:
                    handle_error(err, on_error=self.on_error, stats=self.stats)
                else:
                    self.stats.elements += 1
                    yield item
                if last:
                    return
            token, offset = following, 0
        self._finish_query()

    def _finish_query(self) -> None:
        """Move the saved position past the current query."""
        stateful = isinstance(self.source, Stateful)
        self._query_index += 1
        self._snapshot = dict(self.source.state_dict()) if stateful else None  # type: ignore[attr-defined]
        self._page, self._offset, self._count = None, 0, 0

    # -- state -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Return ``{"query", "source", "page", "offset", "count"}``.

        ``query`` is the index of the current query in this pass, ``source``
        the query pipe's state before it (``None`` for a source that is not
        stateful: it is replayed and ``query`` elements skipped), ``page`` the
        token of the page being read (``None``: the query has not started),
        ``offset`` how many of its items were consumed and ``count`` how many
        items the query has produced so far (for ``max_items``).
        """
        if self._resume is not None:
            return dict(self._resume)
        if self._in_pass:
            return {
                "query": self._query_index,
                "source": self._snapshot,
                "page": self._page,
                "offset": self._offset,
                "count": self._count,
            }
        source = dict(self.source.state_dict()) if isinstance(self.source, Stateful) else None
        return {"query": 0, "source": source, "page": None, "offset": 0, "count": 0}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Make the next pass resume at ``state`` (see :meth:`state_dict`).

        Raises
        ------
        PipelineStateError
            If ``state`` does not come from a search stage.
        """
        expect_keys(state, _STATE_KEYS, owner=type(self).__name__)
        if not isinstance(state["query"], int) or state["query"] < 0:
            raise PipelineStateError(
                f"{type(self).__name__} cannot load this state: bad query index {state['query']!r}"
            )
        page = state["page"]
        if page is not None and not isinstance(page, Mapping):
            raise PipelineStateError(f"{type(self).__name__} cannot load this state: bad page token {page!r}")
        self._resume = {
            "query": int(state["query"]),
            "source": state["source"],
            "page": dict(page) if page is not None else None,
            "offset": int(state["offset"]),
            "count": int(state["count"]),
        }
        self._in_pass = False


def _after_empty(
    following: dict[str, Any], matched: int | None, count: int, empty: int
) -> tuple[dict[str, Any] | None, int]:
    """Return the token to follow after an empty page with a ``next`` link, and the empty pages in a row.

    The link is followed only while the API says more items match than it
    has sent (``numberMatched``): an API that filters each page after
    reading it sends empty pages in the middle, and ending there dropped the
    rest silently. Without that (or once it is reached) the search ends
    there, as pystac-client ends it: some APIs put a ``next`` link on every
    page, the empty last one included.

    Examples
    --------
    >>> _after_empty({"href": "p3"}, 10, 4, 1), _after_empty({"href": "p3"}, None, 4, 1), _after_empty({"href": "p3"}, 4, 4, 1)
    (({'href': 'p3'}, 1), (None, 0), (None, 0))
    """
    if matched is None or count >= matched:
        return None, 0
    return following, empty


def _with_query(err: TerrapipeError, query: SearchQuery) -> TerrapipeError:
    """Return the same error, with the query that failed appended to its message."""
    wrapped = type(err)(f"{err} [query: {query.describe()}]")
    wrapped.__cause__ = err.__cause__
    return wrapped
