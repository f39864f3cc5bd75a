"""Large cache entries stored as parts: a manifest plus separately addressable groups of elements.

An entry whose elements add up to more than :data:`PART_BYTES` (every chip
of a 4096² scene: 130 MiB) is not stored as one value. Its elements are cut,
in order and on element boundaries, into **parts** of about ``PART_BYTES``,
each a complete entry of its own (:func:`~terrapipe.cache.entry.pack_entry`,
checksummed, written for its own key ``<key>.<write>.<n>``), and the entry's
key holds a small **manifest** naming them::

    b"TPCPART2"                magic and format version (8 bytes)
    header length              little-endian uint64
    header                     UTF-8 JSON: {"format", "key", "write", "parts": [[elements, bytes, crc], ...]}
    checksum                   CRC-32 of everything above (little-endian uint32)

``write`` is the **write id**, new for every write of an entry (the time it
began, 8 hex digits, and 48 random bits): a write's parts have names no
other write uses, so two writers of one key never overwrite each other's
parts, and a part left by another write (an older entry, a writer that
crashed) can never be read as part of this one: it has another name, and
it was packed for that name (each part's own key is checked when it is
read).

A hit reads the manifest, then each part in turn, and yields a part's
elements as soon as it is decoded: the first chips come after one part, and
a hit holds one part's bytes at a time besides what the consumer keeps
(with one value per entry, a 4096² scene's hit read and decoded 130 MiB
before its first chip). :class:`~terrapipe.cache.redis_store.RedisStore`
pipelines the parts' ``GET`` commands, so the server sends the next part
while this one is decoded. An entry that fits in one part is stored as
before, one value under its key.

A write packs each part as it stores it (:func:`split_parts`,
:class:`EntryParts`): besides the entry's encoded elements, a writer holds
one part's bytes at a time (and, for Redis, that part compressed), on every
store.

Never wrong, never short:

- the parts are written first and the manifest last (the commit marker): a
  writer killed before the manifest leaves no entry (a miss);
- :func:`write_parts` removes what a rewrite leaves behind: the parts of the
  manifest it replaces (a recomputed entry may come out in fewer parts, or
  another writer's), and, where the store can list an entry's parts
  (``part_keys``), parts no manifest names whose write began more than
  :data:`STALE_AFTER` ago (a writer killed before its manifest). A store
  with ``replace_parts`` (Redis: one transaction) does it all atomically;
  one with ``swap`` (memory, a local folder) learns exactly which manifest
  it replaced, so two writers never leave each other's parts behind;
- each part is checked as any entry (checksum, written for its own key) and
  against the checksum and element count the manifest records, so a part
  from another write of the same key, a damaged one, or one the store
  evicted (a memory budget, Redis' ``maxmemory``) is found;
- the cache stage then counts the entry as corrupt, recomputes it, yields
  the elements not yet yielded and writes the entry again: the pass gets
  every element once, in order (the covered stages are deterministic, as
  the cache's contract asks).

Examples
--------
>>> import numpy as np
>>> from terrapipe.cache.codec import encode_value
>>> encoded = [encode_value(np.full(1000, i, dtype="uint8")) for i in range(5)]
>>> manifest, parts = pack_parts("k1", encoded, part_bytes=2000, write="00000000aaaaaaaaaaaa")
>>> [name for name, _ in parts]
['k1.00000000aaaaaaaaaaaa.0', 'k1.00000000aaaaaaaaaaaa.1', 'k1.00000000aaaaaaaaaaaa.2']
>>> [info.elements for info in unpack_manifest(manifest, "k1")]
[2, 2, 1]
>>> is_manifest(manifest), is_manifest(parts[0][1])
(True, False)
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import struct
import time
from collections.abc import Collection, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from terrapipe.cache.codec import Encoded
from terrapipe.cache.entry import (
    CorruptEntryError,
    crc32,
    entry_digest,
    pack_entry,
    packed_size,
    unpack_entry,
)
from terrapipe.core.errors import CacheError

__all__ = [
    "MANIFEST_MAGIC",
    "MANIFEST_MAX_BYTES",
    "PART_BYTES",
    "STALE_AFTER",
    "EntryParts",
    "PartInfo",
    "is_manifest",
    "manifest_parts",
    "new_write_id",
    "pack_parts",
    "part_key",
    "read_parts",
    "remove_stale",
    "split_parts",
    "unpack_manifest",
    "write_parts",
    "write_value",
]

#: Bytes of element data per part (about): 16 chips of 256² x 4 bands uint16.
PART_BYTES = 8 * 2**20
#: First bytes of a manifest; the last byte is the format version.
MANIFEST_MAGIC = b"TPCPART2"
_FORMAT = 2
_MAGIC_1 = b"TPCPART1"  # format 1: parts named <key>.<n>
_PREFIX = len(MANIFEST_MAGIC) + 8
#: Most parts one manifest may name (a manifest claiming more is corrupt): 1 TiB of 8 MiB parts.
MAX_PARTS = 2**17
#: Most bytes a manifest takes (MAX_PARTS rows of the table, with room): a replaced value larger than
#: this is not read to find its parts.
MANIFEST_MAX_BYTES = 8 * 2**20
#: Seconds after which a part that no manifest names is a crashed writer's (a live writer's parts are younger).
STALE_AFTER = 3600.0
_WRITE = re.compile(r"[0-9a-f]{20}")


@dataclass(frozen=True)
class PartInfo:
    """What a manifest records of one part.

    Attributes
    ----------
    key
        The part's store key (``<entry key>.<n>``).
    elements
        How many elements it holds.
    nbytes
        Its size in bytes (as packed).
    digest
        Its checksum (hex, :func:`~terrapipe.cache.entry.entry_digest`).
    """

    key: str
    elements: int
    nbytes: int
    digest: str


def new_write_id(now: float | None = None) -> str:
    """Return a new write id: the time (``now``, default the clock) in 8 hex digits, then 48 random bits."""
    seconds = int(time.time() if now is None else now) & 0xFFFFFFFF
    return f"{seconds:08x}{secrets.token_hex(6)}"


def part_key(key: str, write: str, index: int) -> str:
    """Return the store key of part ``index`` of write ``write`` of entry ``key``."""
    return f"{key}.{write}.{index}"


def _write_of(key: str, name: str) -> str | None:
    """Return the write id of part ``name`` of entry ``key`` (``None``: not a part name of that entry)."""
    head = f"{key}."
    if not name.startswith(head):
        return None
    write, _, index = name[len(head) :].partition(".")
    return write if _WRITE.fullmatch(write) and index.isascii() and index.isdigit() else None


def is_manifest(data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` starts as a manifest (nothing else is checked)."""
    return bytes(memoryview(data)[: len(MANIFEST_MAGIC)]) == MANIFEST_MAGIC


def _groups(elements: Sequence[Encoded], part_bytes: int) -> list[list[Encoded]]:
    groups: list[list[Encoded]] = [[]]
    size = 0
    for element in elements:
        if groups[-1] and size + element.nbytes > part_bytes:
            groups.append([])
            size = 0
        groups[-1].append(element)
        size += element.nbytes
    return groups


def _began(key: str, name: str) -> float:
    """When the write of part ``name`` began (seconds; infinity for a name that is not a part of ``key``)."""
    write = _write_of(key, name)
    return float("inf") if write is None else int(write[:8], 16)


class EntryParts:
    """An entry's parts, packed one at a time as they are iterated, and its manifest once all were.

    Iterating yields ``(key, bytes)`` of each part in order, packing it then
    (:func:`~terrapipe.cache.entry.pack_entry`): a writer that stores each
    part before it takes the next holds one part's bytes at a time, however
    large the entry. Iterating again packs the parts again (a transaction
    that is retried). Made by :func:`split_parts`.

    Attributes
    ----------
    key
        The entry's key.
    write
        The write id (see the module doc).
    names
        The parts' keys, in order.

    Examples
    --------
    >>> import numpy as np
    >>> from terrapipe.cache.codec import encode_value
    >>> encoded = [encode_value(np.full(1000, i, dtype="uint8")) for i in range(5)]
    >>> parts = split_parts("k1", encoded, part_bytes=2000, write="00000000aaaaaaaaaaaa")
    >>> len(parts), parts.nbytes == sum(len(blob) for _, blob in parts)
    (3, True)
    >>> [info.elements for info in unpack_manifest(parts.manifest, "k1")]
    [2, 2, 1]
    """

    def __init__(self, key: str, groups: Sequence[Sequence[Encoded]], write: str) -> None:
        if not _WRITE.fullmatch(write):
            raise ValueError(f"a write id is 20 hex digits, got {write!r}")
        self.key = key
        self.write = write
        self.names = [part_key(key, write, i) for i in range(len(groups))]
        self._groups = groups
        self._table: list[list[Any]] | None = None  # [elements, bytes, digest] per part, once all were packed
        self._sizes: list[int] | None = None

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"EntryParts({self.key!r}, parts={len(self)}, write={self.write!r})"

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        table: list[list[Any]] = []
        for name, group in zip(self.names, self._groups, strict=True):
            blob = pack_entry(name, group)
            table.append([len(group), len(blob), entry_digest(blob)])
            yield name, blob
            del blob  # the next part is packed without this one held here
        self._table = table

    def sizes(self) -> list[int]:
        """Return each part's size in bytes, as packed (computed without packing them)."""
        if self._sizes is None:
            self._sizes = [
                packed_size(name, group) for name, group in zip(self.names, self._groups, strict=True)
            ]
        return self._sizes

    @property
    def nbytes(self) -> int:
        """The bytes of all parts together, as packed (the manifest not counted)."""
        return sum(self.sizes())

    @property
    def manifest(self) -> bytes:
        """The manifest naming the parts (see the module doc), once every part was packed.

        Raises
        ------
        RuntimeError
            Before the parts were iterated to the end.
        """
        if self._table is None:
            raise RuntimeError(
                f"the manifest of cache entry {self.key} is known once all its parts are packed"
            )
        return _manifest(self.key, self.write, self._table)

    def manifest_size(self) -> int:
        """Return the manifest's size in bytes (known before the parts are packed)."""
        table = [[len(group), size, "0" * 8] for group, size in zip(self._groups, self.sizes(), strict=True)]
        return len(_manifest(self.key, self.write, table))


def _manifest(key: str, write: str, table: list[list[Any]]) -> bytes:
    header = {"format": _FORMAT, "key": key, "write": write, "parts": table}
    text = json.dumps(header, separators=(",", ":")).encode()
    head = MANIFEST_MAGIC + struct.pack("<Q", len(text)) + text
    return head + struct.pack("<I", crc32(head))


def split_parts(
    key: str, elements: Sequence[Encoded], *, part_bytes: int | None = None, write: str | None = None
) -> EntryParts | None:
    """Cut an entry into parts (packed as they are iterated), or ``None`` when it fits in one.

    Parameters
    ----------
    key
        The entry's key.
    elements
        Its encoded elements, in order.
    part_bytes
        Element bytes per part (default :data:`PART_BYTES`).
    write
        The write id (default: :func:`new_write_id`).
    """
    groups = _groups(elements, PART_BYTES if part_bytes is None else part_bytes)
    if len(groups) == 1:
        return None
    return EntryParts(key, groups, new_write_id() if write is None else write)


def pack_parts(
    key: str, elements: Sequence[Encoded], *, part_bytes: int | None = None, write: str | None = None
) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """Pack an entry as parts, all at once: :func:`split_parts` iterated to its end (see the module doc).

    Parameters
    ----------
    key, elements, part_bytes, write
        As :func:`split_parts`.

    Returns
    -------
    tuple
        ``(manifest, [(key, bytes), ...])``: the values to store, the
        manifest under ``key`` and last. An entry that fits in one part is
        ``(None, [(key, entry)])``: one value, as :func:`pack_entry` makes it.
    """
    parts = split_parts(key, elements, part_bytes=part_bytes, write=write)
    if parts is None:
        return None, [(key, pack_entry(key, elements))]
    blobs = list(parts)
    return parts.manifest, blobs


def unpack_manifest(data: bytes | bytearray | memoryview, key: str) -> list[PartInfo]:
    """Verify a manifest and return what it records of each part.

    Raises
    ------
    CorruptEntryError
        For a checksum mismatch, a manifest written for another key, or a
        malformed table.
    """
    view = memoryview(data).cast("B")
    if len(view) < _PREFIX + 4 or not is_manifest(view):
        raise CorruptEntryError(f"cache entry {key} is corrupt: not a manifest of parts")
    (stored,) = struct.unpack_from("<I", view, len(view) - 4)
    if crc32(view[:-4]) != stored:
        raise CorruptEntryError(f"cache entry {key} is corrupt: manifest checksum mismatch")
    try:
        (size,) = struct.unpack_from("<Q", view, len(MANIFEST_MAGIC))
        if _PREFIX + size + 4 != len(view):
            raise ValueError("the manifest's header size does not match its length")
        header = json.loads(bytes(view[_PREFIX : _PREFIX + size]))
        if header["format"] != _FORMAT or header["key"] != key:
            raise ValueError(f"manifest written for key {header['key']!r} in format {header['format']!r}")
        table, write = header["parts"], header["write"]
        if not isinstance(write, str) or not _WRITE.fullmatch(write):
            raise ValueError(f"the write id {write!r} is not 20 hex digits")
        if not isinstance(table, list) or not 2 <= len(table) <= MAX_PARTS:
            raise ValueError("the part table is not a list of 2 or more parts")
        infos = []
        for i, row in enumerate(table):
            elements, nbytes, digest = row
            if not (
                type(elements) is int
                and elements > 0
                and type(nbytes) is int
                and nbytes > 0
                and isinstance(digest, str)
                and len(digest) == 8
            ):
                raise ValueError(f"part {i} is described by {row!r}")
            infos.append(PartInfo(part_key(key, write, i), elements, nbytes, digest))
        return infos
    except (ValueError, KeyError, TypeError, struct.error) as err:
        raise CorruptEntryError(f"cache entry {key} is corrupt: {err}") from err


def _blobs(store: Any, parts: Sequence[PartInfo]) -> Generator[tuple[Any, bool, bool]]:
    """Yield ``(bytes, owned, checked)`` of each part, checked against the manifest.

    A store with ``get_buffers`` (Redis: pipelined) reads them in one go; a
    missing part, or one of another size or checksum than recorded, raises
    :class:`CorruptEntryError`.
    """
    get_buffers = getattr(store, "get_buffers", None)
    get_buffer = getattr(store, "get_buffer", None)
    get_checked = getattr(store, "get_checked", None)
    found: Any
    if callable(get_buffers):
        found = ((blob, True, False) for blob in get_buffers([info.key for info in parts]))
    elif callable(get_buffer):
        found = ((get_buffer(info.key), True, False) for info in parts)
    elif callable(get_checked):
        found = ((*(get_checked(info.key) or (None, False)),) for info in parts)
        found = ((blob, False, checked) for blob, checked in found)
    else:
        found = ((store.get(info.key), False, False) for info in parts)
    try:
        for info, (blob, owned, checked) in zip(parts, found, strict=False):
            if blob is None:
                raise CorruptEntryError(
                    f"cache entry part {info.key} is missing (evicted, or the write was cut short)"
                )
            if len(blob) != info.nbytes or entry_digest(blob) != info.digest:
                raise CorruptEntryError(
                    f"cache entry part {info.key} is not the one its manifest records (another write, or damaged)"
                )
            yield blob, owned, checked
    finally:
        close = getattr(found, "close", None)
        if callable(close):
            close()


def read_parts(store: Any, parts: Sequence[PartInfo]) -> Generator[tuple[list[Any], int]]:
    """Yield ``(elements, nbytes)`` of each part in order, each verified (see the module doc).

    Parts are read one after the other on the calling thread (a thread reading
    the next part meanwhile was measured slower on a loaded 2-core machine:
    ``docs/benchmarks/layers.md``); Redis sends the next part while this one
    is decoded (pipelined ``GET`` commands).

    Parameters
    ----------
    store
        The cache store.
    parts
        What the manifest records.

    Raises
    ------
    CorruptEntryError
        For a part that is missing, damaged or not the one recorded.
    CacheError
        When the store cannot be read.
    """
    indexes: dict[Any, Any] = {}  # one pandas index per distinct small coordinate of the entry
    blobs = _blobs(store, parts)
    try:
        for info, (blob, owned, checked) in zip(parts, blobs, strict=True):
            elements = unpack_entry(
                blob, info.key, owned=owned, checked=checked, kept=not owned, indexes=indexes
            )
            if len(elements) != info.elements:
                raise CorruptEntryError(
                    f"cache entry part {info.key} holds {len(elements)} elements, its manifest records "
                    f"{info.elements}"
                )
            yield elements, info.nbytes
    finally:
        blobs.close()


def manifest_parts(data: bytes | bytearray | memoryview | None, key: str) -> set[str]:
    """Return the part names a stored value names: those of a valid manifest of ``key``, else none.

    A manifest of format 1 (parts named ``<key>.<n>``, before write ids) names
    its parts too, so the rewrite that replaces it removes them.
    """
    if data is None:
        return set()
    if bytes(memoryview(data)[: len(_MAGIC_1)]) == _MAGIC_1:
        return _format_1_parts(data, key)
    if not is_manifest(data):
        return set()
    try:
        return {info.key for info in unpack_manifest(data, key)}
    except CorruptEntryError:
        return set()


def _format_1_parts(data: bytes | bytearray | memoryview, key: str) -> set[str]:
    view = memoryview(data).cast("B")
    try:
        if len(view) < _PREFIX + 4 or crc32(view[:-4]) != struct.unpack_from("<I", view, len(view) - 4)[0]:
            return set()
        (size,) = struct.unpack_from("<Q", view, len(_MAGIC_1))
        header = json.loads(bytes(view[_PREFIX : _PREFIX + size]))
        count = len(header["parts"]) if header.get("key") == key else 0
    except (ValueError, KeyError, TypeError, AttributeError, struct.error):
        return set()
    return {f"{key}.{i}" for i in range(min(count, MAX_PARTS))}


def _delete(store: Any, names: Iterable[str]) -> None:
    for name in names:
        store.delete(name)


def write_parts(store: Any, key: str, parts: EntryParts) -> bool:
    """Store an entry's parts and then its manifest (the commit); remove what it replaces.

    The parts are packed one at a time as they are stored
    (:class:`EntryParts`), so the write holds one part's bytes at a time. A
    store with ``replace_parts(key, parts)`` does it all itself
    (atomically). Otherwise the parts are put in order, then the manifest:
    with the store's ``swap(key, manifest)`` when it has one (it returns
    whether the manifest was stored and the value it replaced; each replaced
    value goes to exactly one writer), else with ``get`` then ``put``. The
    parts of the replaced manifest are deleted, then :func:`remove_stale`
    runs; without ``swap``, a writer that finds another manifest in place
    after its own deletes its parts (another writer committed after it).

    Returns
    -------
    bool
        ``False`` when the store refused a part or the manifest (nothing of
        this write is left), or another writer's manifest took its place.

    Raises
    ------
    CacheError
        When the store cannot be written (what this write put is removed).
    """
    replace = getattr(store, "replace_parts", None)
    if callable(replace):
        return bool(replace(key, parts))
    ours = set(parts.names)
    written: list[str] = []
    swap = getattr(store, "swap", None)
    try:
        for name, blob in parts:
            stored = store.put(name, blob)
            del blob  # one part's bytes at a time
            if not stored:
                break
            written.append(name)
        else:
            manifest = parts.manifest
            if callable(swap):  # what it replaced is gone from the key, stored or not
                committed, replaced = swap(key, manifest)
                _delete(store, manifest_parts(replaced, key) - ours)
            else:
                replaced = store.get(key)  # read right before the commit
                committed = bool(store.put(key, manifest))
                if committed:
                    _delete(store, manifest_parts(replaced, key) - ours)
            if committed:
                remove_stale(store, key, keep=ours)
                if callable(swap) or _still(store, key, manifest):
                    return True
    except BaseException:
        for name in written:  # a failed write leaves nothing of itself behind
            with contextlib.suppress(Exception):
                store.delete(name)
        raise
    _delete(store, written)
    return False


def write_value(store: Any, key: str, blob: bytes) -> bool:
    """Store an entry as one value, and delete the parts of a manifest it replaces (``False``: refused).

    An entry recomputed smaller than a part replaces its manifest: its parts
    go (with ``replace_parts`` in the store's transaction; with ``swap``,
    the replaced value is known; otherwise it is read first).
    """
    replace = getattr(store, "replace_parts", None)
    if callable(replace):
        return bool(replace(key, blob))
    swap = getattr(store, "swap", None)
    if callable(swap):  # what it replaced is gone from the key, stored or not
        stored, replaced = swap(key, blob)
    else:
        replaced = store.get(key)
        stored = bool(store.put(key, blob))
        if not stored:  # refused: the entry in place stays, and its parts with it
            return False
    _delete(store, manifest_parts(replaced, key))
    return bool(stored)


def _still(store: Any, key: str, manifest: bytes) -> bool:
    """Whether ``manifest`` is still the one under ``key``."""
    current = store.get(key)
    return current is not None and bytes(current) == manifest


def remove_stale(store: Any, key: str, *, keep: Collection[str] = (), now: float | None = None) -> int:
    """Delete parts of ``key`` that no write in progress can own (a crashed writer's).

    Only stores that list an entry's parts (a ``part_keys(key)`` method)
    are swept; a part is deleted when its write began more than
    :data:`STALE_AFTER` seconds before ``now`` and it is neither in ``keep``
    nor named by the manifest under ``key``. Best effort: a store that
    cannot list (an object store without listing) is left as it is.

    Returns
    -------
    int
        How many parts were deleted.
    """
    listing = getattr(store, "part_keys", None)
    if not callable(listing):
        return 0
    limit = (time.time() if now is None else now) - STALE_AFTER
    try:
        old = [name for name in listing(key) if name not in keep and _began(key, name) <= limit]
        if not old:
            return 0
        current = manifest_parts(store.get(key), key)
        stale = [name for name in old if name not in current]
        _delete(store, stale)
    except (CacheError, OSError):  # best effort: the write itself is done
        return 0
    return len(stale)
