"""The protocol every cache backend implements, and :func:`open_store`.

A backend maps string keys (hex digests) to bytes; it knows nothing of
elements, checksums or pipes. Writes must be atomic per entry: a reader sees
the old entry, the new one or none, never half of one (the checksum in every
entry is a second line of defence, not the first).

Backends: :class:`~terrapipe.cache.memory.MemoryLRU` (in-process, byte budget),
:class:`~terrapipe.cache.zarr_store.ZarrStore` (a local folder or any fsspec
URL), :class:`~terrapipe.cache.redis_store.RedisStore` (a Redis server).

Examples
--------
>>> from terrapipe.cache.store import CacheStore, open_store
>>> from terrapipe.cache.memory import MemoryLRU
>>> isinstance(MemoryLRU(max_bytes=1024), CacheStore)
True
>>> type(open_store("redis://127.0.0.1:6379/0")).__name__, type(open_store("cache.zarr")).__name__
('RedisStore', 'ZarrStore')
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from terrapipe.core.errors import InvalidArgumentError

__all__ = ["CacheStore", "StoreLike", "open_store"]


@runtime_checkable
class CacheStore(Protocol):
    """A key -> bytes store with atomic writes (what the cache stage needs)."""

    def get(self, key: str) -> bytes | None:
        """Return the bytes stored under ``key``, or ``None`` when there are none."""
        ...

    def put(self, key: str, data: bytes) -> bool:
        """Store ``data`` under ``key`` (replacing any entry); ``False`` if it was refused (too large)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the entry under ``key`` if there is one."""
        ...

    def keys(self) -> Iterator[str]:
        """Yield the keys of the stored entries."""
        ...

    def __contains__(self, key: object) -> bool:
        """Whether an entry is stored under ``key``."""
        ...


#: What the cache stage accepts as ``store``.
StoreLike = CacheStore | str | os.PathLike[str]


def open_store(store: StoreLike) -> CacheStore:
    """Return a backend for ``store``.

    Parameters
    ----------
    store
        A backend object (returned as is); a ``redis://``, ``rediss://`` or
        ``unix://`` URL (:class:`~terrapipe.cache.redis_store.RedisStore`);
        any other URL or a local path
        (:class:`~terrapipe.cache.zarr_store.ZarrStore`).

    Returns
    -------
    CacheStore
        The backend.

    Raises
    ------
    InvalidArgumentError
        For anything else.
    """
    if isinstance(store, str | os.PathLike) and not isinstance(store, CacheStore):
        text = os.fspath(store)
        if not text:
            raise InvalidArgumentError("cache store must not be an empty string; give a folder or a URL")
        if text.split("://", 1)[0].lower() in ("redis", "rediss", "unix"):
            from terrapipe.cache.redis_store import RedisStore

            return RedisStore(text)
        from terrapipe.cache.zarr_store import ZarrStore

        return ZarrStore(text)
    if isinstance(store, CacheStore):
        return store
    msg = (
        f"cache store must be a MemoryLRU/ZarrStore/RedisStore (or any object with get/put/delete/keys), "
        f"a folder or a URL; got {store!r}"
    )
    raise InvalidArgumentError(msg)
