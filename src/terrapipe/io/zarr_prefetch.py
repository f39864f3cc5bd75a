"""Opening a remote Zarr store in a few round trips: its metadata and index coordinates fetched at once.

Opening a store, zarr-python and xarray read one document or chunk after
another: zarr's format probes (``zarr.json``, ``.zgroup``, ``.zattrs``,
``.zmetadata``), without consolidated metadata a listing and each array's
metadata, then xarray loads every index coordinate (``x``, ``y``,
``time``...) one array at a time, ``time`` up to three times. Over a link
with 30 ms per request that is most of the time a small read takes
(``docs/benchmarks/latency.md``).

:func:`prefetch_open` fetches the same keys concurrently: the probes, then
every chunk of the group's index coordinates (1-D arrays named after their
one dimension) as soon as the consolidated metadata listing them has come —
two round trips (measured in ``docs/benchmarks/latency.md``: 9 requests in
5 rounds before, 7 in 2). Where the store has no consolidated metadata and
can list (a bucket), the listing and the children's metadata documents come
in between: four round trips, whatever the number of arrays.
It returns a :class:`PrefetchedStore`, which serves those keys from memory
while zarr and xarray open the store as they always do — the same bytes, so
the same Dataset, decoded by xarray itself — and passes every other request
to the store. :meth:`PrefetchedStore.release` drops the fetched bytes once
the store is open; from then on it only passes requests on.

What is fetched is bounded: at most :data:`MAX_KEYS` keys and
:data:`MAX_COORD_BYTES` bytes of index coordinates (by their declared
shape; a larger coordinate is read by xarray as before), at most the
store's ``Storage.concurrency`` requests in flight. Nothing here decides a
value: a key whose request failed in a way that is not a
:class:`~terrapipe.core.errors.TerrapipeError` is not kept (zarr asks for it
again and meets the failure itself), and a named error (access denied, a
deadline) is raised as zarr would have met it.

This module imports ``zarr``.

Examples
--------
>>> import numpy as np, xarray as xr
>>> from zarr.storage import LocalStore
>>> from terrapipe.io.obstore_runtime import run_on_thread_loop
>>> _ = xr.Dataset({"v": ("x", np.arange(3.0))}, coords={"x": [10, 20, 30]}).to_zarr("p.zarr", zarr_format=2)
>>> store = run_on_thread_loop(prefetch_open(LocalStore("p.zarr", read_only=True)))
>>> sorted(k for k, v in store.fetched.items() if v is not None)
['.zattrs', '.zgroup', '.zmetadata', 'x/0']
>>> xr.open_zarr(store, chunks=None).x.values.tolist()
[10, 20, 30]
>>> store.release(); store.fetched
{}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, ParamSpec

from zarr.abc.buffer import Buffer, BufferPrototype
from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.storage import WrapperStore

from terrapipe.core.errors import TerrapipeError
from terrapipe.io.http_store import get_pairs
from terrapipe.io.zarr_read_ahead import ReadAhead, dtype_itemsize, start_read_ahead

__all__ = ["MAX_COORD_BYTES", "MAX_KEYS", "PrefetchedStore", "prefetch_open", "prefetched_store"]

#: Most keys fetched ahead for one open (metadata documents and coordinate chunks).
MAX_KEYS = 4096
#: Most bytes of index coordinates (declared shape times item size) fetched ahead for one open.
MAX_COORD_BYTES = 64 * 1024 * 1024
#: Requests in flight where the store does not say (``Storage.concurrency``'s default).
DEFAULT_CONCURRENCY = 16

_P = ParamSpec("_P")
_PROBES = ("zarr.json", ".zgroup", ".zattrs")
_CONSOLIDATED = ".zmetadata"
_V2_DOCS = (".zarray", ".zgroup", ".zattrs")


def _piece(data: bytes, byte_range: ByteRequest | None) -> bytes | None:
    """Return the range of ``data`` asked for, or ``None`` where it does not lie inside (the store answers)."""
    size = len(data)
    if byte_range is None:
        return data
    if isinstance(byte_range, RangeByteRequest):
        if 0 <= byte_range.start <= byte_range.end <= size:
            return data[byte_range.start : byte_range.end]
        return None
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset :] if 0 <= byte_range.offset <= size else None
    if isinstance(byte_range, SuffixByteRequest):
        return data[size - byte_range.suffix :] if 0 < byte_range.suffix <= size else None
    return None


async def _names(names: Iterable[str]) -> AsyncIterator[str]:
    for name in names:
        yield name


class PrefetchedStore(WrapperStore[Store]):
    """A zarr store answering some keys from memory and passing every other request to ``store``.

    Parameters
    ----------
    store
        The store (``str``/``repr`` are its own: messages name the same place).
    fetched
        ``{key: bytes}`` of values fetched ahead; ``None`` for a key the store
        does not have (zarr is told so without asking again).
    listings
        ``{prefix: names}``: what ``list_dir(prefix)`` gave.

    Examples
    --------
    >>> import asyncio
    >>> from zarr.buffer import default_buffer_prototype
    >>> from zarr.storage import MemoryStore
    >>> store = PrefetchedStore(MemoryStore(), {"a": b"0123456789", "gone": None})
    >>> asyncio.run(store.get("a", default_buffer_prototype(), RangeByteRequest(2, 5))).to_bytes()
    b'234'
    >>> asyncio.run(store.exists("gone")), asyncio.run(store.exists("a"))
    (False, True)
    """

    def __init__(
        self,
        store: Store,
        fetched: Mapping[str, bytes | None] | None = None,
        listings: Mapping[str, tuple[str, ...]] | None = None,
        ahead: ReadAhead | None = None,
    ) -> None:
        super().__init__(store)
        self.fetched: dict[str, bytes | None] = dict(fetched or {})
        self.listings: dict[str, tuple[str, ...]] = dict(listings or {})
        self.ahead = ahead

    @property
    def inner(self) -> Store:
        """The store every request not fetched ahead goes to."""
        return self._store

    def release(self) -> None:
        """Drop the metadata and coordinates fetched ahead: from now on only the chunks read ahead are served here.

        Each chunk of :attr:`ahead` (:mod:`terrapipe.io.zarr_read_ahead`) is
        handed out once, to the first reader asking for it; every other
        request goes to the store.
        """
        self.fetched = {}
        self.listings = {}

    def _with_store(self, store: Store) -> PrefetchedStore:
        return type(self)(store)

    def __str__(self) -> str:
        return str(self._store)

    def __repr__(self) -> str:
        return repr(self._store)

    def __hash__(self) -> int:
        return hash((type(self), self._store))

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        """Return ``key`` (or a range of it) from memory where it was fetched ahead, else from the store."""
        found, data = (key in self.fetched), self.fetched.get(key)
        if not found and self.ahead is not None and key in self.ahead:
            found, data = await self.ahead.take_async(key)
        if found:
            if data is None:
                return None
            piece = _piece(data, byte_range)
            if piece is not None:
                return prototype.buffer.from_bytes(piece)
        return await self._store.get(key, prototype, byte_range)

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        """Fetch several (key, range) pairs: from memory where fetched ahead, the rest from the store."""
        pairs = list(key_ranges)
        ahead = self.ahead if self.ahead is not None and len(self.ahead) else ()
        if not any(key in self.fetched or key in ahead for key, _ in pairs):
            return await self._store.get_partial_values(prototype, pairs)
        return await get_pairs(self, prototype, pairs)

    async def exists(self, key: str) -> bool:
        """Whether ``key`` exists (known without a request where it was fetched ahead)."""
        if key in self.fetched:
            return self.fetched[key] is not None
        return await self._store.exists(key)

    def list_dir(self, prefix: str) -> AsyncIterator[str]:
        """List a folder: from memory where it was listed ahead, else the store's listing."""
        if prefix in self.listings:
            return _names(self.listings[prefix])
        return self._store.list_dir(prefix)


def _document(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        found = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return found if isinstance(found, dict) else None


class _Coordinate:
    """A 1-D array named after its one dimension: what xarray loads into an index on opening."""

    def __init__(self, name: str, length: int, chunk: int, key_of: str, itemsize: int) -> None:
        self.name = name
        self.length = length
        self.chunk = chunk
        self.key_of = key_of  # the chunk key with "{}" for the chunk's index
        self.itemsize = itemsize

    @property
    def nbytes(self) -> int:
        return self.length * self.itemsize

    def keys(self, prefix: str) -> list[str]:
        count = math.ceil(self.length / self.chunk) if self.chunk > 0 else 0
        return [f"{prefix}{self.name}/{self.key_of.format(i)}" for i in range(count)]


def _guarded(parse: Callable[_P, _Coordinate | None]) -> Callable[_P, _Coordinate | None]:
    """Make a metadata parser return ``None`` for a document it cannot read (zarr then reports it)."""

    def parsed(*args: _P.args, **kwargs: _P.kwargs) -> _Coordinate | None:
        try:
            return parse(*args, **kwargs)
        except (TypeError, ValueError, AttributeError, OverflowError):
            return None

    return parsed


@_guarded
def _v3_coordinate(name: str, meta: Mapping[str, Any]) -> _Coordinate | None:
    if meta.get("node_type") != "array" or list(meta.get("dimension_names") or []) != [name]:
        return None
    shape, grid = meta.get("shape"), meta.get("chunk_grid") or {}
    chunks = (grid.get("configuration") or {}).get("chunk_shape") if grid.get("name") == "regular" else None
    encoding = meta.get("chunk_key_encoding") or {"name": "default"}
    separator = str((encoding.get("configuration") or {}).get("separator", "/"))
    if encoding.get("name") == "default":
        key_of = f"c{separator}{{}}"
    elif encoding.get("name") == "v2":
        key_of = "{}"
    else:
        return None
    if not (isinstance(shape, list) and isinstance(chunks, list) and len(shape) == len(chunks) == 1):
        return None
    return _Coordinate(name, int(shape[0]), int(chunks[0]), key_of, dtype_itemsize(meta.get("data_type")))


@_guarded
def _v2_coordinate(name: str, meta: Mapping[str, Any], attrs: Mapping[str, Any]) -> _Coordinate | None:
    if list(attrs.get("_ARRAY_DIMENSIONS") or []) != [name]:
        return None
    shape, chunks = meta.get("shape"), meta.get("chunks")
    if not (isinstance(shape, list) and isinstance(chunks, list) and len(shape) == len(chunks) == 1):
        return None
    return _Coordinate(name, int(shape[0]), int(chunks[0]), "{}", dtype_itemsize(meta.get("dtype")))


class _Fetcher:
    """Concurrent gets on one store, at most ``limit`` in flight, each started once."""

    def __init__(self, store: Store, limit: int) -> None:
        from zarr.buffer import default_buffer_prototype

        self.store = store
        self.prototype = default_buffer_prototype()
        self.gate = asyncio.Semaphore(limit)
        self.tasks: dict[str, asyncio.Task[bytes | None]] = {}

    async def _one(self, key: str) -> bytes | None:
        async with self.gate:
            value = await self.store.get(key, self.prototype)
        return None if value is None else bytes(value.to_bytes())

    def start(self, keys: Iterable[str]) -> list[asyncio.Task[bytes | None]]:
        """Start the gets of ``keys`` not started yet (at most :data:`MAX_KEYS` in all); return their tasks."""
        wanted = list(dict.fromkeys(keys))
        for key in wanted:
            if key not in self.tasks and len(self.tasks) < MAX_KEYS:
                self.tasks[key] = asyncio.ensure_future(self._one(key))
        return [self.tasks[key] for key in wanted if key in self.tasks]

    def value(self, key: str) -> bytes | None:
        """Return the value of a finished get (``None``: missing, failed or not fetched)."""
        task = self.tasks.get(key)
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    async def fetch(self, keys: Iterable[str]) -> None:
        """Start the gets of ``keys`` and wait until they are done (failed or not)."""
        tasks = self.start(list(keys))
        if tasks:
            await asyncio.wait(tasks)

    async def finish(self) -> dict[str, bytes | None]:
        """Wait for every get; return the values of those that succeeded, or raise the first named error."""
        try:
            if self.tasks:
                await asyncio.wait(list(self.tasks.values()))
        finally:
            for task in self.tasks.values():
                task.cancel()  # only those still running: on an interrupt or a cancellation
        found: dict[str, bytes | None] = {}
        named: TerrapipeError | None = None
        for key, task in self.tasks.items():
            failure = None if task.cancelled() else task.exception()
            if task.cancelled() or (failure is not None and not isinstance(failure, Exception)):
                raise asyncio.CancelledError if failure is None else failure  # an interrupt
            if isinstance(failure, TerrapipeError):
                named = named or failure
            elif failure is None:
                found[key] = task.result()
            # another failure: not kept, zarr asks again and meets it itself
        if named is not None:
            raise named
        return found


def _concurrency(store: Store) -> int:
    for name in ("storage", "_config"):
        limit = getattr(getattr(store, name, None), "concurrency", None)
        if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1:
            return limit
    return DEFAULT_CONCURRENCY


def _v3_coordinates(group: Mapping[str, Any] | None) -> dict[str, _Coordinate] | None:
    """Return the index coordinates a v3 group's consolidated metadata lists (``None``: no such group)."""
    if group is None or group.get("zarr_format") != 3 or group.get("node_type") != "group":
        return None
    consolidated = group.get("consolidated_metadata")
    members = consolidated.get("metadata") if isinstance(consolidated, dict) else None
    if not isinstance(members, dict):
        return None
    return {
        name: coord
        for name, meta in members.items()
        if "/" not in name and isinstance(meta, dict) and (coord := _v3_coordinate(name, meta))
    }


def _v2_coordinates(document: Mapping[str, Any] | None) -> dict[str, _Coordinate] | None:
    """Return the index coordinates v2 consolidated metadata (``.zmetadata``) lists (``None``: not that)."""
    members = document.get("metadata") if document is not None else None
    if not isinstance(members, dict):
        return None
    coords = {}
    for key, meta in members.items():
        name = key[: -len("/.zarray")]
        if key.endswith("/.zarray") and "/" not in name and isinstance(meta, dict):
            attrs = members.get(f"{name}/.zattrs")
            coord = _v2_coordinate(name, meta, attrs if isinstance(attrs, dict) else {})
            if coord is not None:
                coords[name] = coord
    return coords


def _chunk_keys(coords: Mapping[str, _Coordinate], prefix: str) -> list[str]:
    """Return the chunk keys of the coordinates, smallest first, within :data:`MAX_COORD_BYTES`."""
    keys: list[str] = []
    budget = MAX_COORD_BYTES
    for coord in sorted(coords.values(), key=lambda c: c.nbytes):
        if coord.nbytes > budget:
            break
        budget -= coord.nbytes
        keys.extend(coord.keys(prefix))
    return keys


async def _listed_coordinates(
    fetcher: _Fetcher, listings: dict[str, tuple[str, ...]], prefix: str, zarr_format: int
) -> dict[str, _Coordinate]:
    """List the group and fetch each child's metadata documents (what zarr does next, one by one)."""
    names: list[str] = []
    async for name in fetcher.store.list_dir(prefix):
        names.append(name)
        if len(names) > MAX_KEYS:
            return {}  # a folder this large is not a group's children: leave it to zarr
    listings[prefix] = tuple(names)
    children = [n for n in names if not n.startswith(".") and n != "zarr.json" and "/" not in n]
    docs = ("zarr.json",) if zarr_format == 3 else _V2_DOCS
    await fetcher.fetch(f"{prefix}{child}/{doc}" for child in children for doc in docs)
    coords: dict[str, _Coordinate] = {}
    for child in children:
        coord: _Coordinate | None
        if zarr_format == 3:
            meta = _document(fetcher.value(f"{prefix}{child}/zarr.json"))
            coord = _v3_coordinate(child, meta) if meta is not None else None
        else:
            meta = _document(fetcher.value(f"{prefix}{child}/.zarray"))
            attrs = _document(fetcher.value(f"{prefix}{child}/.zattrs")) or {}
            coord = _v2_coordinate(child, meta, attrs) if meta is not None else None
        if coord is not None:
            coords[child] = coord
    return coords


async def prefetch_open(
    store: Store,
    group: str | None = None,
    consolidated: bool | None = None,
    *,
    read_ahead: bool = False,
    variables: Sequence[str] | None = None,
) -> PrefetchedStore:
    """Fetch concurrently what opening ``group`` of ``store`` reads; return the store serving it from memory.

    The format probes go out at once; the index coordinates' chunks as soon
    as the document listing them has come (consolidated metadata: the group's
    ``zarr.json`` for v3, ``.zmetadata`` for v2), without waiting for the
    other probes; without consolidated metadata, once the group is listed
    and its children's metadata read.

    Parameters
    ----------
    store
        A zarr store (read-only use).
    group
        The group xarray will open (``None``: the root).
    consolidated
        As given to xarray: ``False`` ignores consolidated metadata (the
        group is listed, as zarr then does), ``True`` never lists.
    read_ahead
        Also start reading the first chunks of ``variables`` (``None``: the
        data variables) as soon as the consolidated metadata has come, on
        threads of their own, without waiting for them
        (:mod:`terrapipe.io.zarr_read_ahead`; the store's
        :attr:`~PrefetchedStore.ahead`).
    variables
        The variables the caller will read.

    Returns
    -------
    PrefetchedStore
        Wrapping ``store``; call :meth:`~PrefetchedStore.release` once the
        store is open.

    Raises
    ------
    TerrapipeError
        The first named error a request met (zarr would have met it too).
    """
    prefix = f"{group.strip('/')}/" if group and group.strip("/") else ""
    limit = _concurrency(store)
    fetcher = _Fetcher(store, limit)
    listings: dict[str, tuple[str, ...]] = {}
    probes = [*_PROBES, _CONSOLIDATED]  # zarr's probes, consolidated=False or not
    started: set[int] = set()  # the formats whose coordinates' reads are started
    ahead: ReadAhead | None = None
    for done in asyncio.as_completed(fetcher.start(prefix + doc for doc in probes)):
        with contextlib.suppress(Exception):  # failures are raised (or left to zarr) by finish()
            await done
        if consolidated is False:
            continue
        # v3 wins where both are there (zarr reads zarr.json first); v2's reads start without
        # waiting for zarr.json's answer (a 404 on a v2 store): at worst a few reads zarr never asks for.
        docs = {
            3: _document(fetcher.value(prefix + "zarr.json")),
            2: _document(fetcher.value(prefix + _CONSOLIDATED)),
        }
        found = {3: _v3_coordinates(docs[3]), 2: _v2_coordinates(docs[2])}
        for zarr_format, coords in found.items():
            if coords is not None and zarr_format not in started and (zarr_format == 3 or not started):
                fetcher.start(_chunk_keys(coords, prefix))
                started.add(zarr_format)
                if read_ahead and ahead is None:  # the data reader's first share of the concurrency
                    ahead = start_read_ahead(store, _members(docs[zarr_format]), variables, prefix, limit)
    if not started and consolidated is not True and store.supports_listing:
        group_doc = _document(fetcher.value(prefix + "zarr.json"))
        listed = 3 if group_doc is not None else 2 if fetcher.value(prefix + ".zgroup") is not None else None
        if listed is not None:
            try:
                coords = await _listed_coordinates(fetcher, listings, prefix, listed)
            except TerrapipeError:
                await fetcher.finish()  # what is in flight ends first
                raise
            except Exception:  # a listing the store refuses: zarr meets it itself
                listings.clear()
                coords = {}
            fetcher.start(_chunk_keys(coords, prefix))
    try:
        found_values = await fetcher.finish()
    except BaseException:
        if ahead is not None:
            ahead.settle()  # nothing of a failed open is left reading
        raise
    return PrefetchedStore(store, found_values, listings, ahead)


def _members(document: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Return what consolidated metadata lists: v2 ``.zmetadata``'s ``metadata``, a v3 group's consolidated members."""
    if document is None:
        return {}
    members = document.get("metadata")
    consolidated = document.get("consolidated_metadata")
    if document.get("zarr_format") == 3 and isinstance(consolidated, dict):
        members = consolidated.get("metadata")
    return members if isinstance(members, dict) else {}


def prefetched_store(
    store: Any,
    group: str | None = None,
    consolidated: bool | None = None,
    *,
    read_ahead: bool = False,
    variables: Sequence[str] | None = None,
) -> Any:
    """Return :func:`prefetch_open`'s store for a remote store terrapipe made, else ``None``.

    The stores :func:`~terrapipe.io.zarr_reader.zarr_store_for` makes for a URL:
    :class:`~terrapipe.io.http_store.HTTPStore` and the checked zarr
    ``ObjectStore`` (buckets, ``http(s)://`` with ``storage=``). Local folders
    (no round trips to save) and stores given by the caller are ``None``: they
    are opened as they are. Runs on this thread's event loop. ``read_ahead``
    and ``variables``: as in :func:`prefetch_open`.

    Examples
    --------
    >>> prefetched_store("cube.zarr") is None
    True
    """
    from terrapipe.io import zarr_object_store
    from terrapipe.io.http_store import HTTPStore
    from terrapipe.io.obstore_runtime import run_on_thread_loop

    if type(store) is not HTTPStore and not isinstance(store, zarr_object_store.CheckedObjectStore):
        return None
    return run_on_thread_loop(
        prefetch_open(store, group, consolidated, read_ahead=read_ahead, variables=variables)
    )
