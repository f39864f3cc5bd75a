"""``MemoryLRU``: an in-process cache backend with a byte budget.

Entries are the encoded bytes (never the live objects), so a hit always
returns fresh arrays, decoded from one copy of the entry, and a stage
downstream that changes an element in place cannot change the cache, even
through ``torch.as_tensor`` of a read-only chip (torch only warns). The checksum of an entry is checked once, when it is stored
(:meth:`MemoryLRU.get_checked` says whether it passed): its bytes are an
immutable ``bytes`` object, so a hit need not check every byte again. The budget counts what the entries really occupy:
the bytes objects, their keys and the bookkeeping of each entry; the least
recently used entries are evicted until the total fits.

Each process has its own: DataLoader workers each fill their own copy (use
``persistent_workers=True`` so they survive between epochs, or a
:class:`~terrapipe.cache.zarr_store.ZarrStore` /
:class:`~terrapipe.cache.redis_store.RedisStore` to share one). Pickling it
(for ``spawn`` workers) gives an empty cache with the same budget; copying it
(``copy.deepcopy``, as ``tp.loader`` does for thread workers) gives the same
cache, so threads share one budget. It is thread-safe.

Examples
--------
>>> lru = MemoryLRU(max_bytes=3000)
>>> for key in "abc":
...     lru.put(key, bytes(1000))
True
True
True
>>> sorted(lru.keys()), lru.evicted, lru.nbytes <= lru.max_bytes
(['b', 'c'], 1, True)
>>> lru.get("a") is None, len(lru.get("c"))
(True, 1000)
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from terrapipe.cache.entry import entry_intact
from terrapipe.core.checks import check_positive_int

__all__ = ["MemoryLRU"]

#: Bytes one entry costs besides its data and key (hash-table slot and LRU
#: list node of the ``OrderedDict``), measured with ``tracemalloc``.
ENTRY_OVERHEAD = 128


class MemoryLRU:
    """Least-recently-used cache of bytes in this process, bounded in bytes.

    Parameters
    ----------
    max_bytes
        Budget for everything the entries occupy (data, keys, bookkeeping).

    Attributes
    ----------
    evicted
        Entries evicted to stay within the budget.
    refused
        Entries not stored because alone they exceed the budget.

    Raises
    ------
    InvalidArgumentError
        For a budget that is not a positive int.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = check_positive_int(max_bytes, "max_bytes", unit=" (bytes)")
        self.evicted = 0
        self.refused = 0
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._intact: set[str] = set()  # keys whose bytes passed the entry checksum when stored
        self._nbytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def cost(key: str, data: bytes) -> int:
        """Bytes an entry occupies (data, key, bookkeeping)."""
        return sys.getsizeof(data) + sys.getsizeof(key) + ENTRY_OVERHEAD

    @staticmethod
    def cost_of(key: str, nbytes: int) -> int:
        """Bytes an entry of ``nbytes`` bytes would occupy: :meth:`cost` of it, before it is made.

        >>> MemoryLRU.cost_of("k", 1000) == MemoryLRU.cost("k", bytes(1000))
        True
        """
        return sys.getsizeof(b"") + nbytes + sys.getsizeof(key) + ENTRY_OVERHEAD

    @property
    def nbytes(self) -> int:
        """Bytes the entries occupy now (never above ``max_bytes``)."""
        return self._nbytes

    def get(self, key: str) -> bytes | None:
        """Return the entry (and mark it most recently used), or ``None``."""
        with self._lock:
            data = self._entries.get(key)
            if data is not None:
                self._entries.move_to_end(key)
            return data

    def get_checked(self, key: str) -> tuple[bytes, bool] | None:
        """Return ``(entry, intact)``, or ``None``; ``intact``: its checksum passed when it was stored."""
        with self._lock:
            data = self._entries.get(key)
            if data is None:
                return None
            self._entries.move_to_end(key)
            return data, key in self._intact

    def put(self, key: str, data: bytes) -> bool:
        """Store an entry, evicting the least recently used ones to fit the budget.

        Returns ``False`` (and stores nothing) when the entry alone exceeds the budget.
        """
        return self.swap(key, data)[0]

    def swap(self, key: str, data: bytes) -> tuple[bool, bytes | None]:
        """Store an entry as :meth:`put` does; return ``(stored, the entry it replaced or None)``.

        One step under the lock: of two threads storing the same key, each
        gets a different replaced entry (what large entries' parts need,
        :func:`~terrapipe.cache.parts.write_parts`).
        """
        data = data if type(data) is bytes else bytes(data)
        cost = self.cost(key, data)
        intact = cost <= self.max_bytes and entry_intact(data)
        with self._lock:
            old = self._remove(key)
            if cost > self.max_bytes:
                self.refused += 1
                return False, old
            self._entries[key] = data
            if intact:
                self._intact.add(key)
            self._nbytes += cost
            while self._nbytes > self.max_bytes:
                old_key, evicted = self._entries.popitem(last=False)
                self._intact.discard(old_key)
                self._nbytes -= self.cost(old_key, evicted)
                self.evicted += 1
        return True, old

    def part_keys(self, key: str) -> list[str]:
        """Return the keys that start with ``key + "."`` (a large entry's parts, :mod:`~terrapipe.cache.parts`)."""
        head = f"{key}."
        with self._lock:
            return [name for name in self._entries if name.startswith(head)]

    def _remove(self, key: str) -> bytes | None:
        old = self._entries.pop(key, None)
        self._intact.discard(key)
        if old is not None:
            self._nbytes -= self.cost(key, old)
        return old

    def delete(self, key: str) -> None:
        """Remove an entry if present."""
        with self._lock:
            self._remove(key)

    def keys(self) -> Iterator[str]:
        """Yield the keys, least recently used first."""
        with self._lock:
            keys = list(self._entries)
        yield from keys

    def clear(self) -> None:
        """Remove every entry."""
        with self._lock:
            self._entries.clear()
            self._intact.clear()
            self._nbytes = 0

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"MemoryLRU(max_bytes={self.max_bytes}, entries={len(self)}, nbytes={self._nbytes})"

    def __copy__(self) -> MemoryLRU:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> MemoryLRU:
        return self  # a handle on this process's cache: thread workers' copies of a pipe share it

    def __getstate__(self) -> dict[str, Any]:
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["max_bytes"])  # type: ignore[misc]
