"""Resumable walk over a stage's source elements (rasters, cubes) for the chip stages.

The chip stages turn each source element into many outputs, so a checkpoint
taken mid-element must bring that element back on resume. :class:`ItemCursor`
pulls elements one at a time and, when the source is
:class:`~terrapipe.core.state.Stateful`, snapshots the source's state just
before each pull; resuming loads that snapshot, so the source yields the
interrupted element again without replaying the ones before it. A source
that is not stateful is replayed from its start and the elements before the
interrupted one are skipped (they are lazy xarray objects: cheap to skip).

Examples
--------
>>> import terrapipe as tp
>>> cursor = ItemCursor(tp.from_items(["a", "b", "c"]))
>>> it = cursor.items(start=0, snapshot=None)
>>> next(it), cursor.snapshot
((0, 'a'), {'epoch': 0, 'offset': 0})
>>> next(it), cursor.snapshot
((1, 'b'), {'epoch': 0, 'offset': 1})
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from terrapipe.core.pipe import IterDataPipe
from terrapipe.core.state import Stateful

__all__ = ["MAX_ROUND", "ItemCursor", "in_rounds"]

S = TypeVar("S")

#: Most shards for which elements are handed out whole (:func:`in_rounds` holds up to one fewer elements).
MAX_ROUND = 16


class ItemCursor:
    """Pull source elements with their index, keeping the source state before the current one."""

    def __init__(self, source: IterDataPipe[Any]) -> None:
        self.source = source
        self.stateful = isinstance(source, Stateful)
        self.snapshot: dict[str, Any] | None = None

    def state(self) -> dict[str, Any] | None:
        """Return the source's state at the start of the next pass (outside a pass)."""
        return dict(self.source.state_dict()) if self.stateful else None  # type: ignore[attr-defined]

    def items(self, *, start: int, snapshot: Mapping[str, Any] | None) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, element)`` from element ``start`` on; :attr:`snapshot` is the state before it.

        Parameters
        ----------
        start
            Index of the first element to yield (0 for a fresh pass).
        snapshot
            The source state saved before element ``start`` (stateful sources);
            ``None`` replays the source and skips ``start`` elements.
        """
        for index, element, before in self.with_snapshots(start=start, snapshot=snapshot):
            self.snapshot = before
            yield index, element

    def with_snapshots(
        self, *, start: int, snapshot: Mapping[str, Any] | None
    ) -> Iterator[tuple[int, Any, dict[str, Any] | None]]:
        """Yield ``(index, element, state before it)`` from element ``start`` on.

        For a stage that pulls elements ahead of the one it serves: each
        element carries its own snapshot (``None`` for a source that is not
        stateful), so the stage saves the one of the element it serves, not
        the one of the last element pulled. Parameters as in :meth:`items`.

        Examples
        --------
        >>> import terrapipe as tp
        >>> pulled = ItemCursor(tp.from_items(["a", "b"])).with_snapshots(start=0, snapshot=None)
        >>> list(pulled)
        [(0, 'a', {'epoch': 0, 'offset': 0}), (1, 'b', {'epoch': 0, 'offset': 1})]
        """
        if self.stateful and snapshot is not None:
            self.source.load_state_dict(snapshot)  # type: ignore[attr-defined]
            skip = 0
        else:
            skip = start
        it = iter(self.source)
        index = start - skip
        while True:
            before = dict(self.source.state_dict()) if self.stateful else None  # type: ignore[attr-defined]
            try:
                element = next(it)
            except StopIteration:
                return
            if index >= start:
                yield index, element, before
            index += 1


def in_rounds(pulls: Iterator[tuple[int, Any, S]], count: int) -> Iterator[tuple[int, Any, S, bool]]:
    """Tag each pulled element with whether its round of ``count`` elements is complete.

    Element ``i`` belongs to round ``i // count`` (``i`` counts from the
    start of the pass, also when a resumed pass starts mid-round). A round is
    complete when the source holds all of its ``count`` elements: then each
    of its elements can go whole to one of ``count`` shards. The last round of
    a pass is usually short, and its elements are tagged ``False`` (split
    them among the shards instead). Every shard pulls the same elements, so
    every shard tags them the same way.

    To know whether a round is complete, the elements after the current one
    are pulled up to the end of its round: at most ``count - 1`` elements are
    held (so ``count`` is at most :data:`MAX_ROUND`; more tags every element
    ``False`` and pulls nothing ahead). An error of the source while a round
    is pulled comes after the elements pulled before it, which are tagged
    ``False``, as in a short round.

    Parameters
    ----------
    pulls
        ``(index, element, state)`` with consecutive indices, e.g. from
        :meth:`ItemCursor.with_snapshots`.
    count
        Shards the elements are dealt to (``1``: every round is complete).

    Examples
    --------
    >>> pulls = ((i, e, None) for i, e in enumerate("abcde"))
    >>> [(e, whole) for _, e, _, whole in in_rounds(pulls, 2)]
    [('a', True), ('b', True), ('c', True), ('d', True), ('e', False)]
    >>> resumed = ((i, e, None) for i, e in zip(range(3, 5), "de"))  # a pass resumed at element 3
    >>> [(i, whole) for i, _, _, whole in in_rounds(resumed, 3)]
    [(3, False), (4, False)]
    """
    if count > MAX_ROUND:
        for index, element, state in pulls:
            yield index, element, state, False
        return
    held: list[tuple[int, Any, S]] = []  # bounded: the rest of one round, at most count - 1 after the first
    while True:
        if not held:
            try:
                held.append(next(pulls))
            except StopIteration:
                return
        last = (held[0][0] // count + 1) * count - 1
        complete, failure = True, None
        try:
            while held[-1][0] < last:
                held.append(next(pulls))
        except StopIteration:
            complete = False
        except Exception as err:  # the source failed: what came before it first, then the error
            complete, failure = False, err
        for index, element, state in held:
            yield index, element, state, complete
        held = []
        if failure is not None:
            raise failure
        if not complete:
            return
