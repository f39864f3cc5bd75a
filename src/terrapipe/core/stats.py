"""Per-stage counters: elements, errors skipped, seconds, bytes read.

Every :class:`~terrapipe.core.pipe.Stage` owns a :class:`StageStats`. Skipped
elements are counted here, never silently lost: ``on_error="skip"`` keeps the
count and the last few messages.

Examples
--------
>>> from terrapipe.core.stats import StageStats
>>> stats = StageStats(name="read_raster")
>>> stats.record_skip("a.tif: truncated file")
>>> stats.skipped, stats.last_errors
(1, ['a.tif: truncated file'])
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["StageStats"]

_MAX_MESSAGES = 20


@dataclass
class StageStats:
    """Counters of one stage in this process.

    Attributes
    ----------
    name
        The stage's name (its class name unless set).
    elements
        Elements yielded.
    skipped
        Elements dropped because they failed with ``on_error="skip"`` or ``"warn"``.
    seconds
        Wall-clock seconds spent producing elements (where the stage measures it).
    bytes_read
        Bytes read from storage or the network (where the stage knows it).
    last_errors
        The messages of the last 20 skipped elements.
    """

    name: str
    elements: int = 0
    skipped: int = 0
    seconds: float = 0.0
    bytes_read: int = 0
    last_errors: list[str] = field(default_factory=list)

    def record_skip(self, message: str) -> None:
        """Count one skipped element and keep its message (the last 20 are kept)."""
        self.skipped += 1
        self.last_errors.append(message)
        del self.last_errors[:-_MAX_MESSAGES]

    def as_dict(self) -> dict[str, object]:
        """Return the counters as a plain dict (for tables and logs)."""
        return {
            "name": self.name,
            "elements": self.elements,
            "skipped": self.skipped,
            "seconds": self.seconds,
            "bytes_read": self.bytes_read,
        }
