"""``shuffled_items``: a source that yields a seeded permutation of its items, new every epoch.

The permutation comes from :func:`~terrapipe.core.shard.shared_seed` (seed and
epoch), so every worker and rank computes the same one and takes its own
share of it: shuffled, disjoint, complete, and exactly resumable (the state is
the epoch and an offset, like :class:`~terrapipe.core.sources.FromItems`).

Examples
--------
>>> from terrapipe.run.shuffle import shuffled_items
>>> pipe = shuffled_items(range(6), seed=1)
>>> first, second = list(pipe), list(pipe)
>>> sorted(first) == sorted(second) == [0, 1, 2, 3, 4, 5], first != second
(True, True)
>>> list(shuffled_items(range(6), seed=1)) == first  # same seed, same epoch
True
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from terrapipe.core.checks import check_int, check_iterable
from terrapipe.core.errors import InvalidArgumentError, PipelineStateError
from terrapipe.core.pipe import ShardMode, Stage
from terrapipe.core.shard import shard_info, shard_range, shared_seed
from terrapipe.core.state import expect_keys

__all__ = ["ShuffledItems", "shuffled_items"]

T = TypeVar("T")


class ShuffledItems(Stage[T]):
    """Yield the items of a sequence in a seeded order that changes every epoch.

    Parameters
    ----------
    items
        A finite collection (copied into a list once; one-shot iterators are refused).
    seed
        The seed; with the epoch it fixes the order.
    shard
        ``"auto"`` (default): split the permutation across workers and ranks
        unless a stage downstream shards; ``False``: every worker sees every item.

    Raises
    ------
    InvalidArgumentError
        For a one-shot iterator or a seed that is not an int.

    Notes
    -----
    ``len()`` is the number of items over all shards. The state is
    ``{"epoch", "offset", "seed"}``; loading a state saved with another seed
    raises :class:`~terrapipe.core.errors.PipelineStateError`.
    """

    can_shard = True

    def __init__(self, items: Iterable[T], *, seed: int, shard: ShardMode = "auto") -> None:
        super().__init__()
        if isinstance(items, Iterator):
            msg = (
                f"shuffled_items got a one-shot iterator ({type(items).__name__}); "
                "pass a list or tuple instead"
            )
            raise InvalidArgumentError(msg)
        seed = check_int(seed, "shuffled_items seed")
        check_iterable(items, "shuffled_items items")
        self.items: Sequence[T] = items if isinstance(items, Sequence) else list(items)
        self.seed = seed
        self.shard = shard
        self._epoch = 0
        self._offset = 0
        self._resume_offset = 0
        self._in_pass = False

    def order(self, epoch: int) -> list[int]:
        """Return the permutation of item indices used in ``epoch`` (before sharding)."""
        rng = np.random.default_rng(shared_seed(self.seed, epoch=epoch))
        return [int(i) for i in rng.permutation(len(self.items))]

    def __iter__(self) -> Iterator[T]:
        self._epoch = self._begin_epoch()
        start, self._resume_offset = self._resume_offset, 0
        order = self.order(self._epoch)
        if self._claim_sharding():
            order = [order[i] for i in shard_range(len(order), shard_info())]
        self._offset, self._in_pass = start, True
        for i in order[start:]:
            self._offset += 1
            self.stats.elements += 1
            yield self.items[i]
        self._in_pass = False

    def state_dict(self) -> dict[str, Any]:
        """Return ``{"epoch", "offset", "seed"}`` (the next pass's start when no pass runs)."""
        if self._in_pass:
            return {"epoch": self._epoch, "offset": self._offset, "seed": self.seed}
        return {"epoch": self._next_epoch, "offset": self._resume_offset, "seed": self.seed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Make the next pass resume at ``state``."""
        expect_keys(state, ("epoch", "offset", "seed"), owner=type(self).__name__)
        if int(state["seed"]) != self.seed:
            raise PipelineStateError(
                f"state was saved with seed {state['seed']!r}, this pipe has seed {self.seed!r}"
            )
        self.set_epoch(int(state["epoch"]))
        self._resume_offset = int(state["offset"])
        self._in_pass = False

    def __len__(self) -> int:
        return len(self.items)


def shuffled_items(items: Iterable[T], *, seed: int, shard: ShardMode = "auto") -> ShuffledItems[T]:
    """Start a pipe from a seeded, per-epoch permutation of ``items`` (see :class:`ShuffledItems`).

    Examples
    --------
    >>> sorted(shuffled_items("abc", seed=0))
    ['a', 'b', 'c']
    """
    return ShuffledItems(items, seed=seed, shard=shard)
