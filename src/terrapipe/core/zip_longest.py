"""``zip_longest``: zip pipes until the longest ends, filling the others.

Examples
--------
>>> import terrapipe as tp
>>> list(tp.from_items([1, 2, 3]).zip_longest(tp.from_items("ab"), fill_value=None))
[(1, 'a'), (2, 'b'), (3, None)]
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import zip_longest
from typing import TYPE_CHECKING, Any

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.pipe import IterDataPipe, Stage, register
from terrapipe.core.renamed import pickled_names

__all__ = ["ZipLongest"]


@register("zip_longest")
class ZipLongest(Stage[tuple[Any, ...]]):
    """Yield tuples of one element from each pipe, padding ended pipes with ``fill_value``.

    Parameters
    ----------
    *sources
        Two or more pipes.
    fill_value
        Stands in for the elements of pipes that have ended.

    Notes
    -----
    ``len()`` is the longest source's length, ``TypeError`` if any is unknown.
    """

    stateless = True

    def __init__(self, *sources: IterDataPipe[Any], fill_value: Any = None) -> None:
        super().__init__()
        if len(sources) < 2:
            raise InvalidArgumentError(f"zip_longest needs at least two pipes, got {len(sources)}")
        if not all(isinstance(s, IterDataPipe) for s in sources):
            raise InvalidArgumentError(
                "zip_longest takes pipes only; wrap other iterables with tp.from_items"
            )
        self.sources = sources
        self.fill_value = fill_value

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for row in zip_longest(*self.sources, fillvalue=self.fill_value):
            self.stats.elements += 1
            yield row

    def __len__(self) -> int:
        return max(len(s) for s in self.sources)  # type: ignore[arg-type]


if not TYPE_CHECKING:  # the names a previous release's pickles gave its classes here (renamed.PICKLED)
    __getattr__ = pickled_names(__name__)
