"""``flatmap``: map each element to an iterable and yield its items.

Examples
--------
>>> import terrapipe as tp
>>> list(tp.from_items([1, 2]).flatmap(lambda x: [x] * x))
[1, 2, 2]
>>> list(tp.from_items([[1, 2], [], [3]]).flatmap())
[1, 2, 3]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.pipe import IterDataPipe, Stage, register
from terrapipe.core.renamed import pickled_names

__all__ = ["FlatMap"]

T = TypeVar("T")


@register("flatmap")
class FlatMap(Stage[T]):
    """Yield every item of ``fn(element)`` for each element of ``source``.

    Parameters
    ----------
    source
        The pipe to read.
    fn
        Returns an iterable for one element; ``None`` flattens elements that
        are already iterables. Use a named function (not a lambda) if the pipe
        goes to DataLoader workers started with ``spawn``.

    Notes
    -----
    The length is unknown: ``len()`` raises ``TypeError``.
    """

    def __init__(self, source: IterDataPipe[Any], fn: Callable[[Any], Iterable[T]] | None = None) -> None:
        super().__init__()
        if fn is not None and not callable(fn):
            raise InvalidArgumentError(f"flatmap fn must be callable, got {fn!r}")
        self.source = source
        self.fn = fn

    def __iter__(self) -> Iterator[T]:
        for element in self.source:
            items = element if self.fn is None else self.fn(element)
            if not isinstance(items, Iterable):
                what = (
                    "element" if self.fn is None else f"result of {getattr(self.fn, '__name__', self.fn)!r}"
                )
                msg = (
                    f"flatmap: the {what} is a {type(items).__name__}, not an iterable to flatten; "
                    "return a list (or pass fn= that turns each element into one)"
                )
                raise InvalidArgumentError(msg)
            for item in items:
                self.stats.elements += 1
                yield item

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__} has no known length: each element yields a varying count")


if not TYPE_CHECKING:  # the names a previous release's pickles gave its classes here (renamed.PICKLED)
    __getattr__ = pickled_names(__name__)
