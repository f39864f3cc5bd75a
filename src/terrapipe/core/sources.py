"""Source pipes: start a pipeline from Python objects without torch internals.

Examples
--------
>>> import terrapipe as tp
>>> list(tp.from_items(["a.tif", "b.tif"]))
['a.tif', 'b.tif']
>>> len(tp.from_items(range(4)))
4
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from terrapipe.core.checks import check_iterable
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.pipe import ShardMode, Stage
from terrapipe.core.shard import shard_info, shard_range
from terrapipe.core.state import expect_keys

__all__ = ["FromItems", "from_items"]

T = TypeVar("T")


class FromItems(Stage[T]):
    """Yield the items of a sequence, sharded across workers and ranks.

    Parameters
    ----------
    items
        A list, tuple, range or any finite iterable (copied into a list once,
        so every worker sees the same order). One-shot iterators such as
        generators are refused: they could not be replayed each epoch.
    shard
        ``"auto"`` (default): split the items across DataLoader workers and DDP
        ranks unless a stage downstream shards; ``False``: every worker sees
        every item.

    Raises
    ------
    InvalidArgumentError
        For a one-shot iterator.

    Notes
    -----
    ``len()`` is the number of items over all shards. The stage is
    :class:`~terrapipe.core.state.Stateful`: its state is the epoch and the
    offset reached in this shard's items.
    """

    can_shard = True

    graph_ignore = frozenset({"items"})

    def __init__(self, items: Iterable[T], *, shard: ShardMode = "auto") -> None:
        super().__init__()
        if isinstance(items, Iterator):
            msg = (
                f"from_items got a one-shot iterator ({type(items).__name__}), which cannot be replayed "
                "every epoch; pass a list or tuple instead"
            )
            raise InvalidArgumentError(msg)
        check_iterable(items, "from_items items")
        self.items: Sequence[T] = items if isinstance(items, Sequence) else list(items)
        self.shard = shard
        self._epoch = 0
        self._offset = 0
        self._resume_offset = 0
        self._in_pass = False

    def __iter__(self) -> Iterator[T]:
        self._epoch = self._begin_epoch()
        start, self._resume_offset = self._resume_offset, 0
        indices = (
            shard_range(len(self.items), shard_info()) if self._claim_sharding() else range(len(self.items))
        )
        self._offset, self._in_pass = start, True
        for i in indices[start:]:
            self._offset += 1
            self.stats.elements += 1
            yield self.items[i]
        self._in_pass = False

    def state_dict(self) -> dict[str, Any]:
        """Return ``{"epoch", "offset"}``: the pass and how far into it this shard got."""
        if self._in_pass:
            return {"epoch": self._epoch, "offset": self._offset}
        return {"epoch": self._next_epoch, "offset": self._resume_offset}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Make the next pass resume at ``state`` (see :meth:`state_dict`)."""
        expect_keys(state, ("epoch", "offset"), owner=type(self).__name__)
        self.set_epoch(int(state["epoch"]))
        self._resume_offset = int(state["offset"])
        self._in_pass = False

    def __len__(self) -> int:
        return len(self.items)


def from_items(items: Iterable[T], *, shard: ShardMode = "auto") -> FromItems[T]:
    """Start a pipe from a finite collection of items (see :class:`FromItems`).

    Examples
    --------
    >>> from terrapipe import from_items
    >>> list(from_items((1, 2, 3)).map(lambda x: x + 1))
    [2, 3, 4]
    """
    return FromItems(items, shard=shard)
