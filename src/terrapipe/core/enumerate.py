"""``enumerate``: pair each element with its index.

Examples
--------
>>> import terrapipe as tp
>>> list(tp.from_items("ab").enumerate(start=1))
[(1, 'a'), (2, 'b')]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from terrapipe.core.checks import check_int
from terrapipe.core.pipe import IterDataPipe, Stage, register
from terrapipe.core.renamed import pickled_names

__all__ = ["Enumerate"]

T = TypeVar("T")


@register("enumerate")
class Enumerate(Stage[tuple[int, T]]):
    """Yield ``(index, element)`` pairs, counting from ``start`` in each pass.

    Parameters
    ----------
    source
        The pipe to number.
    start
        The first index.

    Notes
    -----
    Inside DataLoader workers the index counts the elements *this worker*
    sees; enumerate before the sharding stage's output is split if you need
    global numbers (``from_items(...).enumerate()`` numbers before sharding
    only when ``from_items(shard=False)``).
    """

    def __init__(self, source: IterDataPipe[T], start: int = 0) -> None:
        super().__init__()
        self.source = source
        self.start = check_int(start, "enumerate start")

    def __iter__(self) -> Iterator[tuple[int, T]]:
        for pair in enumerate(self.source, start=self.start):
            self.stats.elements += 1
            yield pair

    def __len__(self) -> int:
        source: Any = self.source
        return len(source)


if not TYPE_CHECKING:  # the names a previous release's pickles gave its classes here (renamed.PICKLED)
    __getattr__ = pickled_names(__name__)
