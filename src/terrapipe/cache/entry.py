"""One cache entry as bytes: a checksummed frame of a JSON header and raw buffers.

An entry holds every element the cached stages produced for one input element
(zero, one or many), so a hit replays exactly what a miss yielded. Layout::

    b"TPCACHE2"                 magic and format version (8 bytes)
    header length               little-endian uint64
    nodes length                little-endian uint64
    header                      UTF-8 JSON: {"format", "key", "elements":
                                [[node, size, size, ...], ...], "payload"}
    nodes                       UTF-8 JSON: a list of the elements' distinct nodes
    padding                     zeros up to a multiple of 64
    payload                     the buffers, each starting at a multiple of 64
    checksum                    CRC-32 of everything above (little-endian uint32)

An element is its node's place in the list of nodes and the sizes of its
buffers, which follow each other in the payload in order, each padded to a
multiple of 64. Elements with the same structure (every chip of a scene:
the same coordinates, attributes and encoding, other values) share one node,
checked and compiled once per entry (:func:`~terrapipe.cache.codec.compile_node`;
the parts of an entry share it too): a hit parses a header of a few numbers
per element. Entries of format 1 (``b"TPCACHE1"``: a node and the offsets of
its buffers per element) are still read; a terrapipe from before format 2
counts an entry of format 2 as corrupt (recomputes it and writes it in
format 1, which this one reads).

:func:`unpack_entry` verifies the checksum before it parses anything, checks
that the entry was written for the key asked for, and raises
:class:`CorruptEntryError` for anything wrong: the cache stage then counts the
entry as corrupt and recomputes it. It never returns a damaged element.

The checksum guards against damage (flipped bits, truncation, a chunk lost
by the store), not against a hostile writer, who could recompute it; what
keeps a hostile entry harmless is that decoding never runs code (see
:mod:`terrapipe.cache.codec`). CRC-32 detects every burst error up to 32 bits
and all but one in four billion other corruptions, at several times the speed
of a cryptographic hash. With ``isal`` installed (the ``cache`` extra), the
CRC is ISA-L's, the same CRC-32 at about four times zlib's speed (a hit from
a Zarr folder or Redis checks every byte of the entry).

Examples
--------
>>> import numpy as np
>>> from terrapipe.cache.codec import encode_value
>>> blob = pack_entry("k1", [encode_value(np.arange(4, dtype="uint16")), encode_value("done")])
>>> unpack_entry(blob, "k1")
[array([0, 1, 2, 3], dtype=uint16), 'done']
>>> damaged = bytearray(blob)
>>> damaged[200] ^= 0xFF
>>> unpack_entry(bytes(damaged), "k1")
Traceback (most recent call last):
...
terrapipe.cache.entry.CorruptEntryError: cache entry k1 is corrupt: checksum mismatch
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any

from terrapipe.cache.codec import Build, Encoded, build_value, compile_node, decode_value
from terrapipe.core.errors import CacheError

try:  # ISA-L's CRC-32: the same checksum as zlib's, several times faster
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - isal is in the cache extra
    from zlib import crc32 as _crc32

__all__ = [
    "MAGIC",
    "MAGIC_1",
    "CorruptEntryError",
    "crc32",
    "entry_digest",
    "entry_intact",
    "pack_entry",
    "packed_size",
    "unpack_entry",
]

#: First bytes of every entry written now; the last byte is the format version.
MAGIC = b"TPCACHE2"
_FORMAT = 2
#: First bytes of an entry of format 1 (one node per element; still read).
MAGIC_1 = b"TPCACHE1"
_ALIGN = 64
_DIGEST = 4
_PREFIX = len(MAGIC) + 16
_PREFIX_1 = len(MAGIC_1) + 8


class CorruptEntryError(CacheError):
    """A cache entry failed verification (checksum, key, structure); it is recomputed."""


def crc32(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """Return the CRC-32 entries carry (ISA-L's when installed, else zlib's: the same checksum)."""
    return int(_crc32(data, value))


def _pad(n: int) -> int:
    return -n % _ALIGN


def pack_entry(key: str, elements: Sequence[Encoded]) -> bytes:
    """Frame the encoded elements of one entry (see the module doc).

    Parameters
    ----------
    key
        The entry's key (stored in the header and checked on read).
    elements
        The encoded elements, in order.

    Returns
    -------
    bytes
        The entry.
    """
    head, _ = _head(key, elements)
    parts = [head, bytes(_pad(len(head)))]
    for element in elements:
        for buf in element.buffers:
            parts.append(buf)
            if _pad(len(buf)):
                parts.append(bytes(_pad(len(buf))))
    crc = 0
    for part in parts:
        crc = _crc32(part, crc)
    parts.append(struct.pack("<I", crc))
    return b"".join(parts)


def packed_size(key: str, elements: Sequence[Encoded]) -> int:
    """Return ``len(pack_entry(key, elements))`` without packing the elements' buffers.

    >>> import numpy as np
    >>> from terrapipe.cache.codec import encode_value
    >>> elements = [encode_value(np.arange(100, dtype="uint16")), encode_value("done")]
    >>> packed_size("k1", elements) == len(pack_entry("k1", elements))
    True
    """
    head, payload = _head(key, elements)
    return len(head) + _pad(len(head)) + payload + _DIGEST


def _head(key: str, elements: Sequence[Encoded]) -> tuple[bytes, int]:
    """Return an entry's magic, section lengths, header and nodes, and the size of its payload (padded)."""
    texts: dict[str, int] = {}  # each distinct node once, in order of first use
    layout: list[list[int]] = []
    offset = 0
    for element in elements:
        text = json.dumps(element.node, separators=(",", ":"), allow_nan=False)
        row = [texts.setdefault(text, len(texts))]
        for buf in element.buffers:
            row.append(len(buf))
            offset += len(buf) + _pad(len(buf))
        layout.append(row)
    header = {"format": _FORMAT, "key": key, "elements": layout, "payload": offset}
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    nodes = ("[" + ",".join(texts) + "]").encode()
    return MAGIC + struct.pack("<QQ", len(head), len(nodes)) + head + nodes, offset


def entry_digest(data: bytes | bytearray | memoryview) -> str:
    """Return the checksum an entry carries (hex), without verifying it."""
    return bytes(memoryview(data)[-_DIGEST:]).hex()


def entry_intact(data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` is an entry whose checksum matches its bytes (nothing else is checked)."""
    view = memoryview(data).cast("B")
    if len(view) < _PREFIX_1 + _DIGEST or bytes(view[: len(MAGIC)]) not in (MAGIC, MAGIC_1):
        return False
    (stored,) = struct.unpack_from("<I", view, len(view) - _DIGEST)
    return bool(_crc32(view[:-_DIGEST]) == stored)


def unpack_entry(
    data: bytes | bytearray | memoryview,
    key: str,
    *,
    owned: bool = False,
    checked: bool = False,
    kept: bool = False,
    indexes: dict[Any, Any] | None = None,
) -> list[Any]:
    """Verify an entry and decode its elements.

    Nothing returned can change the stored bytes: writable arrays and
    tensors are copies; arrays that were read-only when encoded (chips are
    read-only views of their block) come back read-only, as views of
    ``data`` when it is immutable (``bytes``) and not ``kept``, so a hit
    does not copy them. With ``owned=True`` the caller hands a writable
    ``data`` over (a buffer just read from disk) and everything decoded
    shares it.

    Parameters
    ----------
    data
        The entry's bytes.
    key
        The key it was read under.
    owned
        Whether ``data`` is the caller's to give away (see above).
    checked
        ``data`` is immutable and :func:`entry_intact` said so already (a
        memory cache checks each entry once, when it is stored): the
        checksum is not computed again. The header is checked as always.
    kept
        ``data`` stays in the store for the next hit (a memory cache): it is
        copied once and everything decoded shares the copy. A read-only view
        of kept bytes is not safe: ``torch.as_tensor``/``torch.from_numpy``
        of a read-only array only warns, and an in-place op through it would
        change every later hit.
    indexes
        A dict shared by the parts of one entry (see
        :func:`~terrapipe.cache.codec.decode_value`); a new one by default.

    Returns
    -------
    list
        The elements, in order.

    Raises
    ------
    CorruptEntryError
        For a checksum mismatch, a wrong key, or a malformed header.
    """
    view = memoryview(data).cast("B")
    magic = bytes(view[: len(MAGIC)])
    if len(view) < _PREFIX_1 + _DIGEST or magic not in (MAGIC, MAGIC_1):
        raise CorruptEntryError(
            f"cache entry {key} is corrupt: not a terrapipe cache entry (bad magic or size)"
        )
    (stored,) = struct.unpack_from("<I", view, len(view) - _DIGEST)
    if not (checked and view.readonly) and _crc32(view[:-_DIGEST]) != stored:
        raise CorruptEntryError(f"cache entry {key} is corrupt: checksum mismatch")
    if kept and not owned:
        view, owned = memoryview(bytearray(view)), True  # one copy, shared by what is decoded
    if indexes is None:
        indexes = {}  # one pandas index per distinct small coordinate of the entry
    try:
        if magic == MAGIC_1:
            return _unpack_1(view, key, owned and not view.readonly, indexes)
        (size, nodes_size) = struct.unpack_from("<QQ", view, len(MAGIC))
        end = _PREFIX + size + nodes_size
        if end > len(view) - _DIGEST:
            raise ValueError("the header is longer than the entry")
        header = json.loads(bytes(view[_PREFIX : _PREFIX + size]))
        if header["format"] != _FORMAT or header["key"] != key:
            raise ValueError(f"entry written for key {header['key']!r} in format {header['format']!r}")
        payload = view[end + _pad(end) : -_DIGEST]
        if len(payload) != header["payload"]:
            raise ValueError("payload size does not match the header")
        builds = _templates(bytes(view[_PREFIX + size : end]), indexes)
        handed_over = owned and not view.readonly
        out = []
        offset = 0
        for row in _list(header["elements"]):
            node = _list(row)[0]
            if type(node) is not int or not 0 <= node < len(builds):
                raise ValueError(f"an element names node {node!r} of {len(builds)}")
            buffers = []
            for nbytes in row[1:]:
                if type(nbytes) is not int or nbytes < 0:
                    raise ValueError(f"bad buffer size {nbytes!r}")
                buffers.append(payload[offset : offset + nbytes])
                offset += nbytes + _pad(nbytes)
            if offset > len(payload):
                raise ValueError("buffer outside the payload")
            out.append(build_value(builds[node], buffers, owned=handed_over, indexes=indexes))
        if offset != len(payload):
            raise ValueError("the buffers do not fill the payload")
        return out
    except (ValueError, KeyError, TypeError, IndexError, struct.error) as err:
        raise CorruptEntryError(f"cache entry {key} is corrupt: {err}") from err


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return value


def _templates(text: bytes, memo: dict[Any, Any]) -> list[Build]:
    """Compile an entry's distinct nodes (once per entry: its parts share them, and ``memo``)."""
    found = memo.get(("nodes", text))
    if found is None:
        found = [compile_node(node) for node in _list(json.loads(text))]
        memo[("nodes", text)] = found
    builds: list[Build] = found
    return builds


def _unpack_1(view: memoryview, key: str, handed_over: bool, indexes: dict[Any, Any]) -> list[Any]:
    """Decode the elements of an entry of format 1 (its checksum checked): a node per element."""
    (size,) = struct.unpack_from("<Q", view, len(MAGIC_1))
    header = json.loads(bytes(view[_PREFIX_1 : _PREFIX_1 + size]))
    if header["format"] != 1 or header["key"] != key:
        raise ValueError(f"entry written for key {header['key']!r} in format {header['format']!r}")
    start = _PREFIX_1 + size + _pad(_PREFIX_1 + size)
    payload = view[start:-_DIGEST]
    if len(payload) != header["payload"]:
        raise ValueError("payload size does not match the header")
    out = []
    for element in header["elements"]:
        buffers = []
        for offset, nbytes in element["buffers"]:
            if not (
                isinstance(offset, int)
                and isinstance(nbytes, int)
                and 0 <= offset <= offset + nbytes <= len(payload)
            ):
                raise ValueError("buffer outside the payload")
            buffers.append(payload[offset : offset + nbytes])
        out.append(decode_value(element["node"], buffers, owned=handed_over, indexes=indexes))
    return out
