"""``cache_point``: mark where the elements that key a cache enter the pipe.

A :class:`~terrapipe.cache.stage.Cache` caches what the stages between the
nearest ``cache_point`` upstream of it and itself make of each element that
passes the point. On its own (or when no cache drives it) the point passes
every element through unchanged, so marking a pipe costs nothing.

While a cache serves a miss, it *feeds* the point: the point then yields just
the one element being computed, so the stages below it run for that element
alone and everything they yield belongs to its entry.

Examples
--------
>>> import terrapipe as tp
>>> import terrapipe.cache
>>> list(tp.from_items([1, 2, 3]).cache_point().map(lambda x: 10 * x))
[10, 20, 30]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from terrapipe.core.errors import InvalidArgumentError, PipelineStateError
from terrapipe.core.pipe import IterDataPipe, Stage, register
from terrapipe.core.state import Stateful, expect_keys

__all__ = ["CachePoint", "cache_point"]

T = TypeVar("T")


@register("cache_point")
class CachePoint(Stage[T]):
    """Pass elements through; let a cache downstream feed one element at a time.

    Parameters
    ----------
    source
        The pipe whose elements key the cache entries (paths, STAC items,
        window descriptions: cheap things, ideally).

    Notes
    -----
    ``len()`` is the source's. The stage is
    :class:`~terrapipe.core.state.Stateful` when passing through: its state
    is the source's state, or the number of elements yielded when the source
    keeps none (the source is then replayed on resume).
    """

    def __init__(self, source: IterDataPipe[T]) -> None:
        super().__init__()
        if not isinstance(source, IterDataPipe):
            msg = (
                f"cache_point takes a pipe, got {type(source).__name__}: {source!r:.80}; "
                "use tp.from_items([...]).cache_point()"
            )
            raise InvalidArgumentError(msg)
        self.source = source
        self._fed: list[T] | None = None
        self._driven = False
        self._offset = 0
        self._skip = 0
        self._resume_source: Mapping[str, Any] | None = None

    def feed(self, elements: list[T]) -> None:
        """Make the next pass yield exactly ``elements`` (used by the cache stage)."""
        self._fed = list(elements)

    def __iter__(self) -> Iterator[T]:
        fed, self._fed = self._fed, None
        if fed is not None:
            self._driven = True
            try:
                yield from fed
            finally:
                self._driven = False
            return
        skip, self._skip = self._skip, 0
        resume, self._resume_source = self._resume_source, None
        if resume is not None:
            self.source.load_state_dict(resume)  # type: ignore[attr-defined]
        self._offset = 0
        for element in self.source:
            self._offset += 1
            if skip:
                skip -= 1
                continue
            self.stats.elements += 1
            yield element

    def state_dict(self) -> dict[str, Any]:
        """Return ``{"offset", "source"}`` (the source's state, ``None`` if it keeps none)."""
        if self._driven:
            return {"offset": 0, "source": None}
        source = self.source.state_dict() if isinstance(self.source, Stateful) else None
        return {"offset": 0 if source is not None else self._offset, "source": source}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume at ``state``: load the source's state, or replay and skip ``offset`` elements."""
        expect_keys(state, ("offset", "source"), owner=type(self).__name__)
        if state["source"] is not None:
            if not isinstance(self.source, Stateful):
                raise PipelineStateError("CachePoint cannot load a source state: its source keeps no state")
            self._resume_source = state["source"]
        self._skip = int(state["offset"])

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]


def cache_point(source: IterDataPipe[T]) -> CachePoint[T]:
    """Mark ``source``'s elements as the keys of a cache downstream (see :class:`CachePoint`).

    Examples
    --------
    >>> import terrapipe as tp
    >>> from terrapipe.cache import MemoryLRU
    >>> pipe = cache_point(tp.from_items(["a", "b"])).map(str.upper).cache(MemoryLRU(2**20))
    >>> list(pipe), list(pipe), (pipe.stats.misses, pipe.stats.hits)
    (['A', 'B'], ['A', 'B'], (2, 2))
    """
    return CachePoint(source)
