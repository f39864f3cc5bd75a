"""``header``: the first *n* elements of a pipe (torchdata's ``Header``).

Examples
--------
>>> import terrapipe as tp
>>> list(tp.from_items(range(10)).header(3))
[0, 1, 2]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.pipe import IterDataPipe, Stage, register

__all__ = ["Header"]

T = TypeVar("T")


@register("header")
class Header(Stage[T]):
    """Yield at most ``limit`` elements of ``source``, then stop without reading more.

    Parameters
    ----------
    source
        The pipe to take from.
    limit
        How many elements to yield; must be >= 0.

    Raises
    ------
    InvalidArgumentError
        For a negative or non-integer ``limit``.

    Notes
    -----
    ``len()`` is ``min(limit, len(source))`` and raises ``TypeError`` when the
    source's length is unknown (the source may hold fewer than ``limit``).
    """

    def __init__(self, source: IterDataPipe[T], limit: int) -> None:
        super().__init__()
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidArgumentError(f"header limit must be a non-negative int, got {limit!r}")
        self.source = source
        self.limit = limit

    def __iter__(self) -> Iterator[T]:
        if self.limit == 0:
            return
        for count, item in enumerate(self.source, start=1):
            self.stats.elements += 1
            yield item
            if count >= self.limit:
                break

    def __len__(self) -> int:
        source: Any = self.source
        return min(self.limit, len(source))
