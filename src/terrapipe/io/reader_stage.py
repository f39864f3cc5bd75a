"""The base of the reader stages: open one thing per element, apply ``on_error``.

``read_raster``, ``read_zarr``, ``open_xarray`` and ``read_vector`` all turn
each element of their source (a path, URL, store or STAC asset) into one
opened object with a plain function (``open_raster``, ...). This class holds
what they share: the ``on_error`` policy, the counters, and ``len()``.

Examples
--------
>>> import terrapipe as tp
>>> from terrapipe.io.reader_stage import ReaderStage
>>> class Upper(ReaderStage[str]):
...     def open_one(self, element):
...         return element.upper()
>>> list(Upper(tp.from_items(["a", "b"])))
['A', 'B']
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, TypeVar

from terrapipe.core.errors import TerrapipeError
from terrapipe.core.on_error import OnError, check_on_error, handle_error
from terrapipe.core.pipe import IterDataPipe, Stage

__all__ = ["ReaderStage"]

T = TypeVar("T")


class ReaderStage(Stage[T]):
    """Yield ``self.open_one(element)`` for each element of ``source``.

    Parameters
    ----------
    source
        A pipe of paths, URLs, stores or assets.
    on_error
        ``"raise"`` (default): a :class:`~terrapipe.core.errors.TerrapipeError`
        stops the pipe; ``"skip"``: the element is dropped and counted in
        ``stats.skipped``; ``"warn"``: the same plus a ``SkippedElementWarning``.

    Notes
    -----
    ``len()`` is the source's length with ``on_error="raise"``; with
    ``"skip"``/``"warn"`` it is unknown (``TypeError``), since elements may drop.
    """

    def __init__(self, source: IterDataPipe[Any], *, on_error: OnError = "raise") -> None:
        super().__init__()
        self.source = source
        self.on_error = check_on_error(on_error)

    def open_one(self, element: Any) -> T:  # pragma: no cover - subclasses implement
        """Open one element of the source."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[T]:
        for element in self.source:
            started = time.perf_counter()
            try:
                opened = self.open_one(element)
            except TerrapipeError as err:
                self.stats.seconds += time.perf_counter() - started
                handle_error(err, on_error=self.on_error, stats=self.stats)
                continue
            self.stats.seconds += time.perf_counter() - started
            self.stats.elements += 1
            yield opened

    def __len__(self) -> int:
        if self.on_error != "raise":
            name = type(self).__name__
            msg = f"{name} with on_error={self.on_error!r} may drop elements; its length is unknown"
            raise TypeError(msg)
        source: Any = self.source
        return len(source)
