"""Reading a remote Zarr store's first data chunks while the store is still opening.

Opening a remote store takes two round trips (:mod:`terrapipe.io.zarr_prefetch`):
the metadata, then the index coordinates' chunks. A reader of the data
(the chipper) can only start once the open has returned, a round trip after
the metadata told which chunks the data variables have. ``read_zarr`` (the
stage, not :func:`~terrapipe.io.zarr_reader.open_zarr`) therefore starts
reading the first chunks of the variables it opens as soon as the
consolidated metadata has come, beside the coordinates' chunks, on threads
of their own (:class:`ReadAhead`); the open does not wait for them. Whoever
reads such a chunk next — the chipper's direct decoder, or zarr-python
through the store — gets those bytes (each chunk handed out once), so no
chunk is read twice.

What is read ahead is bounded: the first chunks of the variables, in the
order of their chunk grid (C order; several variables take turns), at most
the store's ``Storage.concurrency`` requests (the data reader's first share:
the chipper's reader threads wait for these before they read more; the
open's own small metadata and coordinate reads have their own limit), and at
most :data:`MAX_AHEAD_BYTES` of declared (decoded) chunk size. Only consolidated metadata (v2 ``.zmetadata``, a v3 group's
``consolidated_metadata``) and unsharded arrays without storage transformers
qualify; anything else is read as before. A read ahead never decides a value:
a chunk whose read failed, or that is still not there after the store's
deadline, is read again by its reader, which meets the failure itself (named,
as before); a missing chunk (404, no such key) is the fill value for both.
The bytes are those of the moment the store was opened, as for its metadata.
A forked child and an unpickled copy read every chunk themselves.

Examples
--------
>>> ahead = ReadAhead(lambda key: key.encode(), ["v/0.0", "v/0.1"], wait=5.0)
>>> ahead.take("v/0.1"), ahead.take("v/0.1"), ahead.take("v/9.9")
((True, b'v/0.1'), (False, None), (False, None))
>>> first_chunk_keys({"v/.zarray": {"shape": [4, 6], "chunks": [2, 3], "dtype": "<u2"}}, ["v"], "", 3, 10**6)
['v/0.0', 'v/0.1', 'v/1.0']
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

__all__ = [
    "MAX_AHEAD_BYTES",
    "ReadAhead",
    "dtype_itemsize",
    "first_chunk_keys",
    "start_read_ahead",
    "store_deadline",
    "store_fetcher",
]

#: Most bytes of chunks (by their declared, decoded size) read ahead for one open.
MAX_AHEAD_BYTES = 16 * 1024 * 1024

Fetch = Callable[[str], "bytes | None"]


class ReadAhead:
    """Chunks of a store being read on threads of their own, each handed out once.

    Parameters
    ----------
    fetch
        Reads one key: its bytes, ``None`` where the store has no such key;
        raises on any other failure.
    keys
        The keys to read (all at once, a thread each).
    wait
        Most seconds :meth:`take` waits for a read still running (the store's
        deadline: the read itself ends by then).
    """

    def __init__(self, fetch: Fetch, keys: Sequence[str], wait: float) -> None:
        self.pid = os.getpid()
        self.wait = float(wait)
        self._lock = threading.Lock()
        self._futures: dict[str, Future[bytes | None]] = {}
        if not keys:
            return
        pool = ThreadPoolExecutor(len(keys), thread_name_prefix="terrapipe-zarr-ahead")
        try:
            for key in keys:
                self._futures[key] = pool.submit(fetch, key)
        finally:
            pool.shutdown(wait=False)  # its threads end once their read is done

    def __contains__(self, key: object) -> bool:
        return key in self._futures

    def __len__(self) -> int:
        return len(self._futures)

    def __getstate__(self) -> dict[str, Any]:
        return {"wait": self.wait}  # a copy reads every chunk itself

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.pid = -1
        self.wait = float(state.get("wait", 0.0))
        self._lock = threading.Lock()
        self._futures = {}

    def _pop(self, key: str) -> Future[bytes | None] | None:
        if self.pid != os.getpid():  # a forked child: the threads reading them are not here
            return None
        with self._lock:
            return self._futures.pop(key, None)

    def take(self, key: str) -> tuple[bool, bytes | None]:
        """Return ``(True, value)`` for a key read ahead (once), else ``(False, None)``: read it yourself."""
        future = self._pop(key)
        if future is None:
            return False, None
        try:
            return True, future.result(timeout=self.wait)
        except Exception:  # failed or late: the reader reads it again and meets the failure itself
            return False, None

    async def take_async(self, key: str) -> tuple[bool, bytes | None]:
        """:meth:`take` in an event loop (waits without blocking it)."""
        future = self._pop(key)
        if future is None:
            return False, None
        try:
            return True, await asyncio.wait_for(asyncio.wrap_future(future), self.wait)
        except Exception:
            return False, None

    def wrap(self, fetch: Fetch, prefix: str) -> Fetch:
        """Return ``fetch`` (keys relative to ``prefix``) answering first from what was read ahead."""

        def fetched(key: str) -> bytes | None:
            found, value = self.take(prefix + key)
            return value if found else fetch(key)

        return fetched

    def settle(self) -> None:
        """Cancel the reads not started and wait (at most ``wait`` s) for those running; drop them all."""
        with self._lock:
            futures, self._futures = list(self._futures.values()), {}
        running = [f for f in futures if not f.cancel()]
        for future in running:
            try:
                future.exception(timeout=self.wait)
            except Exception:  # late: its own deadline ends it
                continue


def dtype_itemsize(dtype: Any) -> int:
    """Bytes per element of a Zarr dtype (16, a guess for the bounds only, where numpy cannot tell)."""
    try:
        size = int(np.dtype(dtype).itemsize)
    except (TypeError, ValueError):
        return 16  # strings, structured and other zarr types: a guess, for the bound only
    return size or 16


class _Array:
    """What a chunk key needs: the chunk grid and how a chunk's indices become its key."""

    def __init__(
        self, shape: list[int], chunks: list[int], itemsize: int, key_of: Callable[[tuple[int, ...]], str]
    ):
        self.grid = tuple(math.ceil(n / c) for n, c in zip(shape, chunks, strict=True))
        self.count = int(np.prod(self.grid, dtype=np.int64))
        self.nbytes = int(np.prod(chunks, dtype=np.int64)) * itemsize
        self.key_of = key_of

    def key(self, flat: int) -> str:
        return self.key_of(tuple(int(i) for i in np.unravel_index(flat, self.grid)) if self.grid else ())


def _ints(value: Any, ndim: int | None = None) -> list[int] | None:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return None
    if ndim is not None and len(value) != ndim:
        return None
    return [int(v) for v in value]


def _v2_array(meta: Mapping[str, Any]) -> _Array | None:
    shape = _ints(meta.get("shape"))
    chunks = _ints(meta.get("chunks"), None if shape is None else len(shape))
    if shape is None or chunks is None or any(c < 1 for c in chunks) or any(n < 0 for n in shape):
        return None
    sep = str(meta.get("dimension_separator") or ".")
    return _Array(
        shape, chunks, dtype_itemsize(meta.get("dtype")), lambda idx: sep.join(map(str, idx)) or "0"
    )


def _v3_array(meta: Mapping[str, Any]) -> _Array | None:
    if meta.get("node_type") != "array" or meta.get("storage_transformers"):
        return None
    codecs = meta.get("codecs") or []
    if not isinstance(codecs, list) or any(
        not isinstance(c, dict) or "sharding" in str(c.get("name")) for c in codecs
    ):
        return None
    grid = meta.get("chunk_grid") or {}
    if not isinstance(grid, dict) or grid.get("name") != "regular":
        return None
    shape = _ints(meta.get("shape"))
    chunks = _ints(
        (grid.get("configuration") or {}).get("chunk_shape"), None if shape is None else len(shape)
    )
    if shape is None or chunks is None or any(c < 1 for c in chunks) or any(n < 0 for n in shape):
        return None
    encoding = meta.get("chunk_key_encoding") or {"name": "default"}
    default = encoding.get("name") == "default"
    if not default and encoding.get("name") != "v2":
        return None
    sep = str((encoding.get("configuration") or {}).get("separator", "/" if default else "."))

    def key_of(idx: tuple[int, ...]) -> str:
        if default:
            return sep.join(["c", *map(str, idx)])
        return sep.join(map(str, idx)) or "0"

    data_type = meta.get("data_type")
    return _Array(shape, chunks, dtype_itemsize(data_type if isinstance(data_type, str) else None), key_of)


def _arrays(members: Mapping[str, Any]) -> dict[str, tuple[_Array, list[str]]]:
    """Return the group's arrays (v2 ``.zmetadata`` members or v3 consolidated metadata): grid and dimension names."""
    found: dict[str, tuple[_Array, list[str]]] = {}
    for key, meta in members.items():
        if not isinstance(meta, dict):
            continue
        if key.endswith("/.zarray"):
            name = key[: -len("/.zarray")]
            attrs = members.get(f"{name}/.zattrs")
            dims = (attrs or {}).get("_ARRAY_DIMENSIONS") if isinstance(attrs, dict) else None
            array = _v2_array(meta)
        elif "/" not in key and "zarr_format" in meta:
            name, dims, array = key, meta.get("dimension_names"), _v3_array(meta)
        else:
            continue
        if array is not None and "/" not in name:
            found[name] = (array, [str(d) for d in dims] if isinstance(dims, list) else [])
    return found


def first_chunk_keys(
    members: Mapping[str, Any], names: Iterable[str] | None, prefix: str, count: int, max_bytes: int
) -> list[str]:
    """Return the keys of the first chunks of the arrays ``names`` (``None``: the data variables), taking turns.

    ``members`` is what consolidated metadata lists: v2 ``.zmetadata``'s
    ``metadata`` (``"v/.zarray"``, ``"v/.zattrs"``...), or a v3 group's
    ``consolidated_metadata["metadata"]`` (``{"v": {...}}``). ``None`` names
    every array but the index coordinates (1-D, named after their dimension)
    and those of fewer than two dimensions. At most ``count`` keys and
    ``max_bytes`` of declared chunk size; none for arrays it cannot read the
    chunk grid of (they are read as before).

    Examples
    --------
    >>> members = {"v/.zarray": {"shape": [2, 2], "chunks": [1, 1], "dtype": "|u1"},
    ...            "x/.zarray": {"shape": [2], "chunks": [2], "dtype": "<f8"},
    ...            "x/.zattrs": {"_ARRAY_DIMENSIONS": ["x"]}}
    >>> first_chunk_keys(members, None, "g/", 8, 2)
    ['g/v/0.0', 'g/v/0.1']
    """
    arrays = _arrays(members)
    if names is None:
        order = [name for name, (a, dims) in arrays.items() if dims != [name] and len(a.grid) >= 2]
    else:
        order = [name for name in dict.fromkeys(names) if name in arrays]
    chosen = [arrays[name][0] for name in order]
    keys: list[str] = []
    budget = max_bytes
    turn = 0
    while len(keys) < count and any(turn < a.count for a in chosen):
        for name, array in zip(order, chosen, strict=True):
            if turn >= array.count:
                continue
            if len(keys) >= count or array.nbytes > budget:
                return keys
            budget -= array.nbytes
            keys.append(f"{prefix}{name}/{array.key(turn)}")
        turn += 1
    return keys


def start_read_ahead(
    store: Any, members: Mapping[str, Any], names: Iterable[str] | None, prefix: str, count: int
) -> ReadAhead | None:
    """Start reading the first chunks of ``names`` of ``store`` (see :func:`first_chunk_keys`); ``None``: none.

    At most ``count`` chunks and :data:`MAX_AHEAD_BYTES`; only for the stores
    :func:`store_fetcher` reads.
    """
    fetch = store_fetcher(store, "")
    if fetch is None or count < 1:
        return None
    keys = first_chunk_keys(members, names, prefix, count, MAX_AHEAD_BYTES)
    return ReadAhead(fetch, keys, store_deadline(store)) if keys else None


def store_fetcher(store: Any, prefix: str) -> Fetch | None:
    """Return a function reading one chunk object (its key under ``prefix``) of a remote store, or ``None``.

    For terrapipe's stores on the byte layer: an
    :class:`~terrapipe.io.http_store.HTTPStore` (one checked
    :func:`terrapipe.io.http_reads.read` of the key's URL with the store's
    :class:`~terrapipe.io.storage.Storage`) or the checked zarr
    ``ObjectStore`` of :mod:`terrapipe.io.zarr_object_store` (the store's
    own checked ``get`` on the calling thread's event loop, never on zarr's
    one loop thread). The function returns ``None`` where the store has no
    such object (404, no such key: zarr's fill value) and raises a
    :class:`~terrapipe.core.errors.ReadError` naming the URL on any other
    failure. Any other store: ``None``.

    Examples
    --------
    >>> from terrapipe.io.http_store import HTTPStore
    >>> store_fetcher(HTTPStore("http://127.0.0.1:9/cube.zarr"), "v/") is not None
    True
    >>> store_fetcher({}, "v/") is None
    True
    """
    from terrapipe.io import zarr_object_store
    from terrapipe.io.http_store import HTTPStore

    if type(store) is HTTPStore:
        return _http_fetcher(store, prefix)
    if type(store).__name__ == "CheckedObjectStore" and type(store) is zarr_object_store.CheckedObjectStore:
        return _object_fetcher(store, prefix)
    return None


def store_deadline(store: Any) -> float:
    """Return the seconds one request of ``store`` may take in all (the most a reader waits for a read ahead)."""
    from terrapipe.io.http_reads import deadline_of
    from terrapipe.io.storage import Storage

    own = getattr(store, "_deadline", None)
    if isinstance(own, int | float) and not isinstance(own, bool) and own > 0:
        return float(own)
    storage = getattr(store, "storage", None) or getattr(store, "_config", None)
    return float(deadline_of(storage if isinstance(storage, Storage) else Storage()))


def _http_fetcher(store: Any, prefix: str) -> Fetch:
    from terrapipe.io.http_reads import read
    from terrapipe.io.http_store import check_not_a_page

    storage = store.storage
    url_for = store.url_for

    def fetch(key: str) -> bytes | None:
        reply = read(url_for(prefix + key), storage)
        if reply.status == 404:  # no such chunk: the fill value, as HTTPStore tells zarr
            return None
        check_not_a_page(url_for(prefix + key), prefix + key, reply.body)  # a 'soft 404' is no chunk
        return bytes(reply.body)

    return fetch


def _object_fetcher(store: Any, prefix: str) -> Fetch:
    from zarr.buffer import default_buffer_prototype

    from terrapipe.io.obstore_runtime import run_on_thread_loop

    prototype = default_buffer_prototype()

    def fetch(key: str) -> bytes | None:
        # The store's own checked get (None only for a missing key; deadline and cap its own), on
        # this thread's own event loop: never on zarr's one loop thread, which would serialise reads.
        found = run_on_thread_loop(store.get(prefix + key, prototype))
        return None if found is None else bytes(found.to_bytes())

    return fetch
