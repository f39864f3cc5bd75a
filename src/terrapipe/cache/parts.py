"""Large cache entries stored as parts: a manifest plus separately addressable groups of elements.

An entry whose elements add up to more than :data:`PART_BYTES` (every chip
of a 4096² scene: 130 MiB) is not stored as one value. Its elements are cut,
in order and on element boundaries, into **parts** of about ``PART_BYTES``,
each a complete entry of its own (:func:`~terrapipe.cache.entry.pack_entry`,
checksummed, under the key ``<key>.<n>``), and the entry's key holds a small
**manifest** naming them::

    b"TPCPART1"                magic and format version (8 bytes)
    header length              little-endian uint64
    header                     UTF-8 JSON: {"format", "key", "parts": [[elements, bytes, crc], ...]}
    checksum                   CRC-32 of everything above (little-endian uint32)

A hit reads the manifest, then each part in turn, and yields a part's
elements as soon as it is decoded: the first chips come after one part, and
a hit holds one part's bytes at a time besides what the consumer keeps
(with one value per entry, a 4096² scene's hit read and decoded 130 MiB
before its first chip). :class:`~terrapipe.cache.redis_store.RedisStore`
pipelines the parts' ``GET`` commands, so the server sends the next part
while this one is decoded. An entry that fits in one part is stored as
before, one value under its key.

Never wrong, never short:

- the parts are written first and the manifest last (the commit marker): a
  writer killed before the manifest leaves no entry (a miss);
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
>>> manifest, parts = pack_parts("k1", encoded, part_bytes=2000)
>>> [name for name, _ in parts]
['k1.0', 'k1.1', 'k1.2']
>>> [info.elements for info in unpack_manifest(manifest, "k1")]
[2, 2, 1]
>>> is_manifest(manifest), is_manifest(parts[0][1])
(True, False)
"""

from __future__ import annotations

import json
import struct
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from terrapipe.cache.codec import Encoded
from terrapipe.cache.entry import CorruptEntryError, crc32, entry_digest, pack_entry, unpack_entry

__all__ = [
    "MANIFEST_MAGIC",
    "PART_BYTES",
    "PartInfo",
    "is_manifest",
    "pack_parts",
    "part_key",
    "read_parts",
    "unpack_manifest",
]

#: Bytes of element data per part (about): 16 chips of 256² x 4 bands uint16.
PART_BYTES = 8 * 2**20
#: First bytes of a manifest; the last byte is the format version.
MANIFEST_MAGIC = b"TPCPART1"
_FORMAT = 1
_PREFIX = len(MANIFEST_MAGIC) + 8
#: Most parts one manifest may name (a manifest claiming more is corrupt): 64 TiB of 8 MiB parts.
MAX_PARTS = 2**23


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


def part_key(key: str, index: int) -> str:
    """Return the store key of part ``index`` of entry ``key``."""
    return f"{key}.{index}"


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


def pack_parts(
    key: str, elements: Sequence[Encoded], *, part_bytes: int | None = None
) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """Pack an entry as parts (see the module doc).

    Parameters
    ----------
    key
        The entry's key.
    elements
        Its encoded elements, in order.
    part_bytes
        Element bytes per part (default :data:`PART_BYTES`).

    Returns
    -------
    tuple
        ``(manifest, [(key, bytes), ...])``: the values to store, the
        manifest under ``key`` and last. An entry that fits in one part is
        ``(None, [(key, entry)])``: one value, as :func:`pack_entry` makes it.
    """
    groups = _groups(elements, PART_BYTES if part_bytes is None else part_bytes)
    if len(groups) == 1:
        return None, [(key, pack_entry(key, groups[0]))]
    parts = []
    table: list[list[Any]] = []
    for i, group in enumerate(groups):
        name = part_key(key, i)
        blob = pack_entry(name, group)
        parts.append((name, blob))
        table.append([len(group), len(blob), entry_digest(blob)])
    header = {"format": _FORMAT, "key": key, "parts": table}
    text = json.dumps(header, separators=(",", ":")).encode()
    head = MANIFEST_MAGIC + struct.pack("<Q", len(text)) + text
    return head + struct.pack("<I", crc32(head)), parts


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
        table = header["parts"]
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
            infos.append(PartInfo(part_key(key, i), elements, nbytes, digest))
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
            elements = unpack_entry(blob, info.key, owned=owned, checked=checked, indexes=indexes)
            if len(elements) != info.elements:
                raise CorruptEntryError(
                    f"cache entry part {info.key} holds {len(elements)} elements, its manifest records "
                    f"{info.elements}"
                )
            yield elements, info.nbytes
    finally:
        blobs.close()
