"""``cycle``: repeat a pipe a number of times, or forever.

Examples
--------
>>> import terrapipe as tp
>>> list(tp.from_items([1, 2]).cycle(2))
[1, 2, 1, 2]
>>> list(tp.from_items([1, 2]).cycle().header(5))
[1, 2, 1, 2, 1]
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count as count_up
from typing import TYPE_CHECKING, Any, TypeVar

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.pipe import IterDataPipe, Stage, register
from terrapipe.core.renamed import pickled_names

__all__ = ["Cycle"]

T = TypeVar("T")


@register("cycle")
class Cycle(Stage[T]):
    """Iterate ``source`` ``count`` times in a row (``None``: forever).

    Each repetition is a new pass over the source, so stages that shuffle
    reshuffle (their epoch advances). An empty source ends the cycle instead of
    spinning forever.

    Parameters
    ----------
    source
        The pipe to repeat.
    count
        Number of passes, >= 0, or ``None`` for no end.

    Notes
    -----
    ``len()`` is ``count * len(source)``; ``TypeError`` when endless or unknown.
    """

    def __init__(self, source: IterDataPipe[T], count: int | None = None) -> None:
        super().__init__()
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            raise InvalidArgumentError(f"cycle count must be None or a non-negative int, got {count!r}")
        self.source = source
        self.count = count

    def __iter__(self) -> Iterator[T]:
        passes = count_up() if self.count is None else range(self.count)
        for _ in passes:
            yielded = False
            for item in self.source:
                yielded = True
                self.stats.elements += 1
                yield item
            if not yielded:
                return

    def __len__(self) -> int:
        if self.count is None:
            raise TypeError(f"{type(self).__name__} without a count is endless and has no length")
        source: Any = self.source
        return self.count * len(source)


if not TYPE_CHECKING:  # the names a previous release's pickles gave its classes here (renamed.PICKLED)
    __getattr__ = pickled_names(__name__)
