"""``CacheStats``: what a cache stage did in this process.

Examples
--------
>>> stats = CacheStats(name="Cache", hits=3, misses=1)
>>> stats.hit_rate
0.75
>>> stats.as_dict()["corrupt"]
0
"""

from __future__ import annotations

from dataclasses import dataclass

from terrapipe.core.stats import StageStats

__all__ = ["CacheStats"]


@dataclass
class CacheStats(StageStats):
    """Counters of a :class:`~terrapipe.cache.stage.Cache` (entries, not elements).

    Attributes
    ----------
    hits
        Entries served from the store.
    misses
        Entries computed (absent, corrupt, or not read because of ``policy``).
    corrupt
        Entries found damaged (checksum, key or structure); recomputed, never returned.
    writes
        Entries written.
    not_written
        Entries computed but not written: a covered stage skipped an element
        (``on_error="skip"``), the store refused the size, or the policy is
        ``"read-only"``.
    evicted
        Entries the store evicted while this stage wrote (memory LRU).
    bytes_written
        Bytes of the entries written (``bytes_read`` counts the hits' bytes).
    """

    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    writes: int = 0
    not_written: int = 0
    evicted: int = 0
    bytes_written: int = 0

    @property
    def hit_rate(self) -> float:
        """``hits / (hits + misses)`` (0 before any lookup)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def as_dict(self) -> dict[str, object]:
        """Return the counters as a plain dict."""
        out = super().as_dict()
        out.update(
            hits=self.hits,
            misses=self.misses,
            corrupt=self.corrupt,
            writes=self.writes,
            not_written=self.not_written,
            evicted=self.evicted,
            bytes_written=self.bytes_written,
        )
        return out
