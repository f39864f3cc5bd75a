"""``cache``: serve what a run of stages yields from a store, computing it once.

Contract
--------
A cache covers the stages between the nearest ``cache_point()`` upstream of
it and itself::

    pipe = (
        tp.from_items(scene_paths)
        .cache_point()                      # elements here key the entries
        .read_raster(bands=[1, 2, 3, 4])
        .chip({"y": 256, "x": 256})
        .map(to_sample)
        .cache("cache.zarr")                # caches what the three stages make of each path
    )

For each element reaching the point (a path, a STAC item, a window
description...) the cache computes a **key**: the element's identity
(:func:`~terrapipe.cache.keys.element_identity`: the string plus file size,
mtime, ctime and inode, every file of a folder such as a Zarr store, the ETag of a
URL, the item's JSON and asset files, array contents...; or ``key(element)``)
mixed with a digest of the covered stages' configuration (their classes and
options, functions by bytecode; see :mod:`terrapipe.cache.segment`) and
``version``. Change a parameter, a function body, or a file upstream (one
chunk of a Zarr store), and the old entries are simply not hit; what a key
cannot see is listed in :mod:`terrapipe.cache.keys`.

- **Hit**: the entry holds every element the covered stages yielded for that
  input (zero, one or many); they are replayed in order, and the covered
  stages do not run.
- **Miss** (absent, or found corrupt): the cache feeds the one input to the
  point, runs the covered stages for it, yields what they yield, and, if the
  pass completed and no covered stage skipped an element, writes the entry.
  A pass stopped early (a ``header`` downstream) writes nothing.
- An entry larger than :data:`~terrapipe.cache.parts.PART_BYTES` (8 MiB:
  the chips of a large scene) is stored as parts plus a manifest
  (:mod:`terrapipe.cache.parts`): a hit yields each part's elements as soon
  as it is decoded (Redis sends the next part meanwhile), so its first
  chips come early and it holds one part at a time; a part found
  missing (evicted, a crash before the manifest) or damaged makes the cache
  recompute the entry and yield only the elements not yet yielded. A store's
  ``keys()`` lists the parts (``<key>.<write>.<n>``) besides the entries; a
  rewrite removes the parts of the entry it replaces.
- Entries are checksummed, and a store validates an entry's metadata
  before reading it (a :class:`~terrapipe.cache.zarr_store.ZarrStore`
  entry's shape, dtype and chunks against its recorded size); a damaged or
  edited one is counted in ``stats.corrupt``, recomputed and overwritten,
  never returned. Elements are stored as JSON
  plus raw bytes (:mod:`terrapipe.cache.codec`), never pickled.
- The covered stages must treat each element on its own (a plain chain, no
  shuffle/batch/zip...; checked when the cache is built) and be
  deterministic: per-epoch randomness inside them is frozen in the entry.
- Sharding: the cache splits the *inputs* round robin over DataLoader workers
  and DDP ranks (unless a stage downstream shards, or a ``sharding_filter``
  upstream does); the covered stages never split an input's outputs, so an
  entry always holds all of them. Workers that compute the same entry at once
  write identical bytes; each store's writes are atomic.
- Hits cost less than recomputing: keys are computed from the element at
  the point (a path: its files are walked once per pass), entries are
  decoded without xarray's checks (see :mod:`terrapipe.cache.codec`), a
  memory entry's checksum is checked once when stored, read-only chips
  share the entry's bytes, a local Zarr entry is read into a buffer the
  hit owns, and a large entry is read part by part, Redis' ``GET``
  commands pipelined
  (``benchmarks/bench_cache.py`` measures hits against recomputing).
- Order: the same as without the cache. Stats count entries (``hits``,
  ``misses``, ``corrupt``, ``writes``, ``not_written``, ``evicted``) and
  elements (``elements``).
- Policies: ``"read-write"`` (default), ``"read-only"`` (serve hits, never
  write), ``"refresh"`` (never read, recompute and overwrite everything).
- Resumable: the state is the input's position and how many of its elements
  were yielded; a resumed pass serves the rest of that entry.

Stores: :class:`~terrapipe.cache.memory.MemoryLRU`,
:class:`~terrapipe.cache.zarr_store.ZarrStore` (a folder, a fsspec URL, or
a bucket URL with ``storage=tp.Storage(...)`` through the byte layer),
:class:`~terrapipe.cache.redis_store.RedisStore` (a ``redis://`` URL). A
store failure other than a damaged entry (server down, permission denied,
disk full) raises :class:`~terrapipe.core.errors.CacheError`; a failed write
leaves nothing of the entry behind.

Examples
--------
>>> import terrapipe as tp
>>> import terrapipe.cache
>>> from terrapipe.cache import MemoryLRU
>>> calls = []
>>> def slow_square(x):
...     calls.append(x)
...     return x * x
>>> pipe = tp.from_items([1, 2, 3]).cache_point().map(slow_square).cache(MemoryLRU(max_bytes=2**20))
>>> list(pipe), list(pipe), calls
([1, 4, 9], [1, 4, 9], [1, 2, 3])
>>> pipe.stats.hits, pipe.stats.misses
(3, 3)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from typing import Any, Literal, TypeVar

from terrapipe.cache.canonical import canonical, digest_json
from terrapipe.cache.codec import Encoded, encode_value
from terrapipe.cache.entry import CorruptEntryError, pack_entry, unpack_entry
from terrapipe.cache.keys import entry_key
from terrapipe.cache.parts import (
    EntryParts,
    is_manifest,
    read_parts,
    split_parts,
    unpack_manifest,
    write_parts,
    write_value,
)
from terrapipe.cache.segment import SegmentCover, find_segment, segment_config
from terrapipe.cache.stats import CacheStats
from terrapipe.cache.store import StoreLike, open_store
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.pipe import IterDataPipe, ShardMode, Stage, register
from terrapipe.core.shard import shard_info
from terrapipe.core.state import ResumesNextPass, Stateful

__all__ = ["POLICIES", "Cache", "Policy"]

T = TypeVar("T")

#: What the cache does with its store.
Policy = Literal["read-write", "read-only", "refresh"]
POLICIES: tuple[str, ...] = ("read-write", "read-only", "refresh")
_STATE_KEYS = ("epoch", "index", "anchor", "skip")


@register("cache")
class Cache(SegmentCover, ResumesNextPass, Stage[T]):
    """Serve the output of the stages since the last ``cache_point()`` from a store.

    Parameters
    ----------
    source
        The last covered stage (the cache goes right after it).
    store
        A :class:`~terrapipe.cache.memory.MemoryLRU`,
        :class:`~terrapipe.cache.zarr_store.ZarrStore` or
        :class:`~terrapipe.cache.redis_store.RedisStore`; a folder or fsspec
        URL (Zarr); a ``redis://`` URL.
    key
        ``key(element) -> value`` giving the identity of an element at the
        cache point, instead of :func:`~terrapipe.cache.keys.element_identity`
        (any value :func:`~terrapipe.cache.canonical.canonical` describes).
    version
        A label of the covered stages' configuration, mixed into every key;
        it also stands in for options that cannot be described (a model
        object, an open client). Change it to invalidate the entries.
    policy
        ``"read-write"``, ``"read-only"`` or ``"refresh"`` (see the module doc).
    check_remote
        Check ``http(s)`` inputs for changes with a ``HEAD`` request (ETag,
        Last-Modified, size) every time they are keyed (default). ``False``
        keys a URL by its text alone: a file changed on the server is then
        served stale until ``version`` changes.
    shard
        ``"auto"``: split the inputs across workers and ranks unless a stage
        downstream does; ``False``: every worker sees every input.

    Raises
    ------
    InvalidArgumentError
        For a bad option, no ``cache_point()`` upstream, covered stages that
        mix elements, or options that cannot be described (pass ``version=``).

    Attributes
    ----------
    stats : CacheStats
        Hits, misses, corrupt entries, writes... in this process.
    config_digest : str
        Digest of the covered stages' configuration (part of every key).
    """

    state_keys = _STATE_KEYS

    can_shard = True

    def __init__(
        self,
        source: IterDataPipe[T],
        store: StoreLike,
        *,
        key: Callable[[Any], Any] | None = None,
        version: str | None = None,
        policy: Policy = "read-write",
        check_remote: bool = True,
        shard: ShardMode = "auto",
    ) -> None:
        super().__init__()
        if policy not in POLICIES:
            raise InvalidArgumentError(f"cache policy must be one of {POLICIES}, got {policy!r}")
        if key is not None and not callable(key):
            raise InvalidArgumentError(
                f"cache key must be a callable (element -> identity) or None, got {key!r}"
            )
        if version is not None and not isinstance(version, str):
            raise InvalidArgumentError(f"cache version must be a string or None, got {version!r}")
        if shard not in ("auto", True, False):
            raise InvalidArgumentError(f"shard must be 'auto', True or False, got {shard!r}")
        self.source = source
        self.store = open_store(store)
        self.key = key
        self.version = version
        self.policy: Policy = policy
        self.check_remote = bool(check_remote)
        self.shard = shard
        self.stats: CacheStats = CacheStats(name=type(self).__name__)
        segment = find_segment(source)
        self._point = segment.point
        self._covered = segment.stages
        self.config_digest = digest_json(segment_config(segment.stages, version=version))
        self._resume: dict[str, Any] | None = None
        self._in_pass = False
        self._epoch = 0
        self._index = 0
        self._snapshot: Any = None
        self._yielded = 0
        #: Local files and folders described in this pass (one walk of a Zarr store per epoch; see _serve).
        self._files: dict[str, Any] | None = None

    # -- keys -----------------------------------------------------------------
    def key_of(self, element: Any) -> str:
        """Return the store key of an element at the cache point."""
        return self._key_and_urls(element)[0]

    def _key_and_urls(self, element: Any) -> tuple[str, list[str]]:
        urls: list[str] = []
        if self.key is not None:
            value, where = self.key(element), "key(element)"
        else:
            value, where = element, "element"
        identity = canonical(value, where=where, check_remote=self.check_remote, urls=urls, files=self._files)
        return entry_key(identity, self.config_digest), urls

    # -- iteration ------------------------------------------------------------
    def __iter__(self) -> Iterator[T]:
        epoch = self._begin_epoch()
        resume, self._resume = self._resume, None
        sharding = self._claim_sharding()
        for stage in self._covered:
            if isinstance(stage, Stage):
                stage._shard_superseded = True  # an entry holds all of an input's outputs
        info = shard_info() if sharding else None
        anchors: Any = self._point.source
        stateful = isinstance(anchors, Stateful)
        start = skip = replay = 0
        pending: Any = None
        if resume is not None:
            start, skip, pending = int(resume["index"]), int(resume["skip"]), resume["anchor"]
            if pending is not None:
                anchors.load_state_dict(pending)
            else:
                replay = start
        index = start - replay
        self._epoch, self._in_pass, self._index, self._snapshot, self._yielded = (
            epoch,
            True,
            start,
            pending,
            skip,
        )
        iterator = iter(anchors)
        self._files = {}
        try:
            while True:
                snapshot = pending if pending is not None else (anchors.state_dict() if stateful else None)
                pending = None
                try:
                    anchor = next(iterator)
                except StopIteration:
                    break
                position, index = index, index + 1
                if position < start or (info is not None and position % info.count != info.index):
                    continue
                self._index, self._snapshot, self._yielded = position, snapshot, 0
                for element in self._serve(anchor, epoch):
                    self._yielded += 1
                    if skip:
                        skip -= 1
                        continue
                    self.stats.elements += 1
                    yield element
                skip = 0
        finally:
            self._in_pass = False
            self._files = None

    def _serve(self, anchor: Any, epoch: int) -> Iterator[T]:
        started = time.perf_counter()
        key, urls = self._key_and_urls(anchor)
        served = 0
        if self.policy != "refresh":
            groups = self._lookup(key)
            self.stats.seconds += time.perf_counter() - started
            started = time.perf_counter()
            if groups is not None:
                complete = False
                try:
                    while True:
                        begun = time.perf_counter()
                        try:
                            elements, nbytes = next(groups)
                        except StopIteration:
                            complete = True
                            break
                        except CorruptEntryError:  # a part missing or damaged: recompute the rest
                            self.stats.corrupt += 1
                            break
                        finally:
                            self.stats.seconds += time.perf_counter() - begun
                        self.stats.bytes_read += nbytes
                        for element in elements:
                            served += 1
                            try:
                                yield element
                            except GeneratorExit:  # the consumer stopped: what it took was served
                                complete = True
                                raise
                finally:
                    groups.close()
                    if complete:
                        self.stats.hits += 1
                if complete:
                    return
        self.stats.misses += 1
        if urls:  # a changed remote file: neither GDAL's cache nor an open handle may answer for the old one
            from terrapipe.io.raster_array import forget_remote

            for url in urls:
                forget_remote(url)
        self.stats.seconds += time.perf_counter() - started
        for element in self._compute(anchor, key, epoch):
            if served:  # yielded from the entry's first parts already
                served -= 1
                continue
            yield element

    def _lookup(self, key: str) -> Generator[tuple[list[T], int]] | None:
        """Return the entry's elements part by part, ``(elements, bytes)`` each; ``None`` for a miss.

        An absent or corrupt entry (or manifest, or first part) is a miss; a
        later part that turns out missing or damaged raises
        :class:`CorruptEntryError` from the iterator.
        """
        get_buffer = getattr(self.store, "get_buffer", None)
        get_checked = getattr(self.store, "get_checked", None)
        checked = False
        try:
            if callable(get_buffer):  # a fresh buffer that is ours: decoded arrays share it, no copy
                blob: Any = get_buffer(key)
                owned = True
            elif callable(get_checked):  # a memory cache: kept bytes, checksum checked when stored
                found = get_checked(key)
                blob, checked = (None, False) if found is None else found
                owned = False
            else:  # the store's bytes, which it may keep (a user's store): decoded from a copy
                blob, owned = self.store.get(key), False
            if blob is None:
                return None
            if is_manifest(blob):
                parts = unpack_manifest(blob, key)
                groups = read_parts(self.store, parts)
                first = next(groups)
                return _chain(first, groups, len(blob))
            elements: list[T] = unpack_entry(blob, key, owned=owned, checked=checked, kept=not owned)
        except CorruptEntryError:
            self.stats.corrupt += 1
            return None
        return _single(elements, len(blob))

    def _skipped(self) -> int:
        return sum(stage.stats.skipped for stage in self._covered if isinstance(stage, Stage))

    def _compute(self, anchor: Any, key: str, epoch: int) -> Iterator[T]:
        for stage in self._covered:
            if isinstance(stage, Stage):
                stage.set_epoch(epoch)
        skipped = self._skipped()
        encoded: list[Encoded] = []
        self._point.feed([anchor])
        try:
            for element in self.source:
                # Encode before yielding: a stage downstream may change the element in place.
                encoded.append(encode_value(element, where=f"the output of {type(self.source).__name__}"))
                yield element
        finally:
            self._point._fed = None
        started = time.perf_counter()
        if self.policy == "read-only" or self._skipped() != skipped:
            self.stats.not_written += 1
            return
        evicted = getattr(self.store, "evicted", 0)
        written = self._put_all(key, encoded)
        if written is not None:
            self.stats.writes += 1
            self.stats.bytes_written += written
        else:
            self.stats.not_written += 1
        self.stats.evicted += getattr(self.store, "evicted", 0) - evicted
        self.stats.seconds += time.perf_counter() - started

    def _put_all(self, key: str, encoded: list[Encoded]) -> int | None:
        """Store an entry: one value, or its parts and then its manifest (:func:`write_parts`).

        Returns the bytes written, ``None`` when the store refused the entry.
        """
        parts = split_parts(key, encoded)
        if parts is None:
            blob = pack_entry(key, encoded)
            return len(blob) if write_value(self.store, key, blob) else None
        if not _fits(self.store, key, parts):
            if hasattr(self.store, "refused"):
                self.store.refused += 1
            return None
        if not write_parts(self.store, key, parts):
            return None
        return parts.nbytes + len(parts.manifest)

    # -- state ----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Return ``{"epoch", "index", "anchor", "skip"}``.

        ``index`` counts the inputs at the cache point, ``anchor`` is the
        point source's state before the current input (``None`` when it keeps
        no state: it is then replayed), ``skip`` how many of that input's
        elements were yielded.
        """
        if self._in_pass:
            return {
                "epoch": self._epoch,
                "index": self._index,
                "anchor": self._snapshot,
                "skip": self._yielded,
            }
        if self._resume is not None:
            return dict(self._resume)
        anchors: Any = self._point.source
        snapshot = anchors.state_dict() if isinstance(anchors, Stateful) else None
        return {"epoch": self._next_epoch, "index": 0, "anchor": snapshot, "skip": 0}

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]


def _single(elements: list[Any], nbytes: int) -> Generator[tuple[list[Any], int]]:
    """Yield the one part of an entry stored as one value."""
    yield elements, nbytes


def _chain(
    first: tuple[list[Any], int], rest: Generator[tuple[list[Any], int]], manifest_bytes: int
) -> Generator[tuple[list[Any], int]]:
    """Yield the parts of a hit: the first one (read already, counted with the manifest), then the rest."""
    try:
        yield first[0], first[1] + manifest_bytes
        yield from rest
    finally:
        rest.close()


def _fits(store: Any, key: str, parts: EntryParts) -> bool:
    """Whether a store's size limit for one entry takes all of an entry's parts and manifest."""
    limit = getattr(store, "max_entry_bytes", None)
    if isinstance(limit, int):
        return parts.nbytes <= limit
    cost_of = getattr(store, "cost_of", None)
    budget = getattr(store, "max_bytes", None)
    if callable(cost_of) and isinstance(
        budget, int
    ):  # a memory budget: an entry that cannot fit whole is refused
        sizes = [*zip(parts.names, parts.sizes(), strict=True), (key, parts.manifest_size())]
        return bool(sum(cost_of(name, size) for name, size in sizes) <= budget)
    return True
