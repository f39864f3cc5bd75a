"""``Region``: the arrays of one window group's region, and which of them the group's chips may share.

A :class:`~terrapipe.chip.reader.RegionStream` serves each region as a
:class:`Region`: a list of arrays (one per array of the element), each marked
``exclusive`` when no one but this region's chips can ever see its memory:

- the reader decoded it into a buffer it allocated for this region alone (a
  block read whole into a buffer of its own and needed by no other region,
  kept by no block cache, never served again; or a region copied together
  from several blocks);
- not a view of the user's array (an in-memory source), of a block other
  regions or a later pass read, of a dask chunk dask may hand out again, nor
  of what a lazy backend keeps.

:meth:`terrapipe.chip.build.ItemCutter.prepare` narrows the flags to what the
chips of one pass may share: a chip is a read-only *view* of an exclusive
array only where its window overlaps no other window cut from the region;
everywhere else it is a copy. So ``torch.from_numpy(chip)`` followed by an
in-place op changes that chip alone, whichever it is.

Examples
--------
>>> import numpy as np
>>> region = Region([np.zeros(4), np.ones(4)], [True, False])
>>> len(region), region.exclusive
(2, [True, False])
>>> Region([np.zeros(2)]).exclusive  # nothing said: shared, so chips copy
[False]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from terrapipe.core.errors import InvalidArgumentError

__all__ = ["Region", "exclusive_of"]


class Region(list[np.ndarray]):
    """The arrays of one region (a list), with whether each is this region's alone (see the module doc).

    Parameters
    ----------
    arrays
        The region's arrays, in the element's array order.
    exclusive
        Per array: whether its memory is this region's alone (default: none is).
    """

    __slots__ = ("exclusive",)

    def __init__(self, arrays: Iterable[np.ndarray], exclusive: Sequence[bool] | None = None) -> None:
        super().__init__(arrays)
        flags = [False] * len(self) if exclusive is None else [bool(e) for e in exclusive]
        if len(flags) != len(self):
            raise InvalidArgumentError(f"Region: {len(flags)} exclusive flags for {len(self)} arrays")
        self.exclusive: list[bool] = flags


def exclusive_of(regions: Sequence[np.ndarray]) -> list[bool]:
    """Return the ``exclusive`` flags of ``regions`` (a plain list of arrays: none is exclusive).

    Examples
    --------
    >>> exclusive_of([np.zeros(1)]), exclusive_of(Region([np.zeros(1)], [True]))
    ([False], [True])
    """
    if isinstance(regions, Region):
        return list(regions.exclusive)
    return [False] * len(regions)
