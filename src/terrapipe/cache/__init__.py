"""Cache stages: serve what a run of stages yields from memory, Zarr or Redis.

Importing this package registers the functional names ``cache_point`` and
``cache``. Mark where the elements that key the entries enter the pipe with
``cache_point()``; ``cache(store)`` caches what the stages between make of
each of them (see :mod:`terrapipe.cache.stage` for the contract).

Backends behind one protocol (:class:`CacheStore`): :class:`MemoryLRU` (byte
budget, per process), :class:`ZarrStore` (a folder or any fsspec URL, one
Zarr group per entry, atomic writes), :class:`RedisStore` (TTL, size limit).
Entries are JSON plus raw bytes with a checksum, never pickles.

Examples
--------
>>> import terrapipe as tp
>>> from terrapipe.cache import MemoryLRU
>>> pipe = tp.from_items(["a", "bb"]).cache_point().map(len).cache(MemoryLRU(max_bytes=2**20))
>>> list(pipe), list(pipe), pipe.stats.hits
([1, 2], [1, 2], 2)
"""

from terrapipe.cache.canonical import UnkeyableValueError, canonical
from terrapipe.cache.codec import decode_value, encode_value
from terrapipe.cache.entry import CorruptEntryError, pack_entry, unpack_entry
from terrapipe.cache.keys import element_identity, entry_key, source_window_key
from terrapipe.cache.memory import MemoryLRU
from terrapipe.cache.point import CachePoint, cache_point
from terrapipe.cache.redis_store import RedisStore
from terrapipe.cache.segment import describe_stage, find_segment
from terrapipe.cache.stage import Cache, Policy
from terrapipe.cache.stats import CacheStats
from terrapipe.cache.store import CacheStore, open_store
from terrapipe.cache.zarr_store import ZarrStore

__all__ = [
    "Cache",
    "CachePoint",
    "CacheStats",
    "CacheStore",
    "CorruptEntryError",
    "MemoryLRU",
    "Policy",
    "RedisStore",
    "UnkeyableValueError",
    "ZarrStore",
    "cache_point",
    "canonical",
    "decode_value",
    "describe_stage",
    "element_identity",
    "encode_value",
    "entry_key",
    "find_segment",
    "open_store",
    "pack_entry",
    "source_window_key",
    "unpack_entry",
]
