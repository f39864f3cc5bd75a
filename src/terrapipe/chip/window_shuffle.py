"""``WindowShuffle``: how ``chip(shuffle=...)`` shuffles, as one checked value.

``chip`` shuffles the order of its block groups (one permutation per epoch,
the same on every worker and rank) and the windows inside a buffer of
consecutive groups (per worker). The two settings of that shuffle, the
buffer size and the seed, travel together in a frozen :class:`WindowShuffle`
(checked when it is made, hashable, picklable); ``shuffle=True`` is
``WindowShuffle()``.

Examples
--------
>>> WindowShuffle(buffer=64, seed=3)
WindowShuffle(buffer=64, seed=3)
>>> WindowShuffle.of(True), WindowShuffle.of(False), WindowShuffle.of({"seed": 2})
(WindowShuffle(buffer=1024, seed=0), None, WindowShuffle(buffer=1024, seed=2))
>>> WindowShuffle(buffer=0)
Traceback (most recent call last):
...
terrapipe.core.errors.InvalidArgumentError: WindowShuffle buffer must be an int >= 1, got 0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from terrapipe.core.checks import check_int
from terrapipe.core.errors import InvalidArgumentError

__all__ = ["DEFAULT_SHUFFLE_BUFFER", "WindowShuffle"]

#: Windows per shuffle buffer unless told otherwise.
DEFAULT_SHUFFLE_BUFFER = 1024


@dataclass(frozen=True)
class WindowShuffle:
    """The shuffle of a ``chip``: windows per shuffle buffer and the seed.

    Parameters
    ----------
    buffer
        Windows per shuffle buffer: whole block groups are added until it
        holds at least this many, then its windows come in a random order
        (default 1024). Larger mixes more and holds more blocks.
    seed
        Seed of the group permutation and of the buffers; mixed with the
        epoch, element, rank and worker.

    Raises
    ------
    InvalidArgumentError
        For a buffer below 1 or a negative seed (or a value that is not an int).

    Notes
    -----
    Frozen, hashable and picklable; two shuffles are equal when their fields
    are. A chip built with ``shuffle=WindowShuffle(buffer=b, seed=s)`` is the
    chip that ``shuffle=True, shuffle_buffer=b, seed=s`` built before (same
    windows in the same order, same state and cache key).
    """

    buffer: int = DEFAULT_SHUFFLE_BUFFER
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "buffer", check_int(self.buffer, "WindowShuffle buffer", minimum=1))
        object.__setattr__(self, "seed", check_int(self.seed, "WindowShuffle seed", minimum=0))

    @classmethod
    def of(cls, value: bool | np.bool_ | WindowShuffle | Mapping[str, Any] | None) -> WindowShuffle | None:
        """Return ``value`` as a shuffle: ``False``/``None`` none, ``True`` the default, a mapping of its fields.

        Raises
        ------
        InvalidArgumentError
            For another type, an unknown field or a bad value.

        Examples
        --------
        >>> WindowShuffle.of({"buffer": 8, "sead": 1})
        Traceback (most recent call last):
        ...
        terrapipe.core.errors.InvalidArgumentError: shuffle got unknown field(s) ['sead']; a WindowShuffle has buffer, seed
        """
        if value is None:
            return None
        if isinstance(value, bool | np.bool_):
            return cls() if value else None
        if isinstance(value, WindowShuffle):
            return value
        if isinstance(value, Mapping):
            names = [f.name for f in fields(cls)]
            unknown = sorted(str(k) for k in value if k not in names)
            if unknown:
                raise InvalidArgumentError(
                    f"shuffle got unknown field(s) {unknown}; a WindowShuffle has {', '.join(names)}"
                )
            return cls(**{str(k): v for k, v in value.items()})
        raise InvalidArgumentError(
            "shuffle must be True, False, a tp.chip.WindowShuffle(buffer=..., seed=...) or a mapping of its "
            f"fields, got {type(value).__name__}: {value!r:.80}"
        )
