"""``Reads``: how much a chipping stage may read ahead and hold, as one checked value.

``chip`` and ``sample_windows`` read storage blocks on reader threads
(``workers=``) into a bounded budget of blocks read ahead or kept for a
later window group. Those bounds tune speed and memory only, never which
windows come or in what order; they travel together in a frozen
:class:`Reads` (``reads=None``: the defaults).

Examples
--------
>>> Reads()
Reads(block_cache_bytes=536870912, read_ahead=None)
>>> Reads.of({"read_ahead": 0})
Reads(block_cache_bytes=536870912, read_ahead=0)
>>> Reads(block_cache_bytes=-1)
Traceback (most recent call last):
...
terrapipe.core.errors.InvalidArgumentError: Reads block_cache_bytes must be an int >= 0, got -1
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from terrapipe.core.checks import check_int
from terrapipe.core.errors import InvalidArgumentError

__all__ = ["DEFAULT_BLOCK_CACHE_BYTES", "Reads"]

#: Bytes of blocks a chipping stage may hold (read ahead, or kept for a later group) unless told otherwise.
DEFAULT_BLOCK_CACHE_BYTES = 512 * 2**20


@dataclass(frozen=True)
class Reads:
    """The read bounds of ``chip`` / ``sample_windows``: bytes of blocks held and groups read ahead.

    Parameters
    ----------
    block_cache_bytes
        Budget for blocks read ahead or kept for a later group (halo blocks),
        512 MiB by default. Over it, the kept block needed last is dropped
        and read again when its turn comes (``counters.block_rereads``).
    read_ahead
        ``chip`` only: window groups whose blocks may be read ahead of the one
        being cut (``None``: ``2 * workers``; ``0``: none, and no element read
        ahead either). ``sample_windows`` reads ``buffer=`` windows at a time
        and takes only ``None`` here.

    Raises
    ------
    InvalidArgumentError
        For a negative value (or one that is not an int).

    Notes
    -----
    Frozen, hashable and picklable. These bounds never change what a stage
    yields, so they are not part of its cache key.
    """

    block_cache_bytes: int = DEFAULT_BLOCK_CACHE_BYTES
    read_ahead: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "block_cache_bytes", check_int(self.block_cache_bytes, "Reads block_cache_bytes", minimum=0)
        )
        if self.read_ahead is not None:
            object.__setattr__(self, "read_ahead", check_int(self.read_ahead, "Reads read_ahead", minimum=0))

    @classmethod
    def of(cls, value: Reads | Mapping[str, Any] | None) -> Reads:
        """Return ``value`` as read bounds: ``None`` the defaults, a mapping of its fields.

        Raises
        ------
        InvalidArgumentError
            For another type, an unknown field or a bad value.

        Examples
        --------
        >>> Reads.of({"workers": 2})
        Traceback (most recent call last):
        ...
        terrapipe.core.errors.InvalidArgumentError: reads got unknown field(s) ['workers']; a Reads has block_cache_bytes, read_ahead (reader threads are the stage's workers=)
        """
        if value is None:
            return cls()
        if isinstance(value, Reads):
            return value
        if isinstance(value, Mapping):
            names = [f.name for f in fields(cls)]
            unknown = sorted(str(k) for k in value if k not in names)
            if unknown:
                raise InvalidArgumentError(
                    f"reads got unknown field(s) {unknown}; a Reads has {', '.join(names)}"
                    " (reader threads are the stage's workers=)"
                )
            return cls(**{str(k): v for k, v in value.items()})
        raise InvalidArgumentError(
            "reads must be None, a tp.chip.Reads(block_cache_bytes=..., read_ahead=...) or a mapping of its "
            f"fields, got {type(value).__name__}: {value!r:.80}"
        )
