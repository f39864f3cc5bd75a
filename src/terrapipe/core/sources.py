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

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.pipe import ShardMode, Stage
from terrapipe.core.shard import shard_info, shard_range

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
    ``len()`` is the number of items over all shards.
    """

    can_shard = True

    def __init__(self, items: Iterable[T], *, shard: ShardMode = "auto") -> None:
        super().__init__()
        if isinstance(items, Iterator):
            msg = (
                f"from_items got a one-shot iterator ({type(items).__name__}), which cannot be replayed "
                "every epoch; pass a list or tuple instead"
            )
            raise InvalidArgumentError(msg)
        self.items: Sequence[T] = items if isinstance(items, Sequence) else list(items)
        self.shard = shard

    def __iter__(self) -> Iterator[T]:
        self._begin_epoch()
        indices = shard_range(len(self.items), shard_info()) if self._claim_sharding() else range(len(self.items))
        for i in indices:
            self.stats.elements += 1
            yield self.items[i]

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
