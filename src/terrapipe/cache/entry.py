"""One cache entry as bytes: a checksummed frame of a JSON header and raw buffers.

An entry holds every element the cached stages produced for one input element
(zero, one or many), so a hit replays exactly what a miss yielded. Layout::

    b"TPCACHE1"                 magic and format version (8 bytes)
    header length               little-endian uint64
    header                      UTF-8 JSON: {"format", "key", "elements":
                                [{"node", "buffers": [[offset, size], ...]}], "payload"}
    padding                     zeros up to a multiple of 64
    payload                     the buffers, each starting at a multiple of 64
    checksum                    CRC-32 of everything above (little-endian uint32)

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

from terrapipe.cache.codec import Encoded, decode_value
from terrapipe.core.errors import CacheError

try:  # ISA-L's CRC-32: the same checksum as zlib's, several times faster
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - isal is in the cache extra
    from zlib import crc32 as _crc32

__all__ = [
    "MAGIC",
    "CorruptEntryError",
    "crc32",
    "entry_digest",
    "entry_intact",
    "pack_entry",
    "packed_size",
    "unpack_entry",
]

#: First bytes of every entry; the last byte is the format version.
MAGIC = b"TPCACHE1"
_FORMAT = 1
_ALIGN = 64
_DIGEST = 4
_PREFIX = len(MAGIC) + 8


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
    """Return an entry's magic, header length and header, and the size of its payload (padded)."""
    layout: list[dict[str, Any]] = []
    offset = 0
    for element in elements:
        spans = []
        for buf in element.buffers:
            spans.append([offset, len(buf)])
            offset += len(buf) + _pad(len(buf))
        layout.append({"node": element.node, "buffers": spans})
    header = {"format": _FORMAT, "key": key, "elements": layout, "payload": offset}
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    return MAGIC + struct.pack("<Q", len(text)) + text, offset


def entry_digest(data: bytes | bytearray | memoryview) -> str:
    """Return the checksum an entry carries (hex), without verifying it."""
    return bytes(memoryview(data)[-_DIGEST:]).hex()


def entry_intact(data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` is an entry whose checksum matches its bytes (nothing else is checked)."""
    view = memoryview(data).cast("B")
    if len(view) < _PREFIX + _DIGEST or bytes(view[: len(MAGIC)]) != MAGIC:
        return False
    (stored,) = struct.unpack_from("<I", view, len(view) - _DIGEST)
    return bool(_crc32(view[:-_DIGEST]) == stored)


def unpack_entry(
    data: bytes | bytearray | memoryview,
    key: str,
    *,
    owned: bool = False,
    checked: bool = False,
    indexes: dict[Any, Any] | None = None,
) -> list[Any]:
    """Verify an entry and decode its elements.

    Nothing returned can change the stored bytes: writable arrays and
    tensors are copies; arrays that were read-only when encoded (chips are
    read-only views of their block) come back read-only, as views of
    ``data`` when it is immutable (``bytes``), so a hit does not copy them.
    With ``owned=True`` the caller hands a writable ``data`` over (a buffer
    just read from disk) and everything decoded shares it.

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
    if len(view) < _PREFIX + _DIGEST or bytes(view[: len(MAGIC)]) != MAGIC:
        raise CorruptEntryError(
            f"cache entry {key} is corrupt: not a terrapipe cache entry (bad magic or size)"
        )
    (stored,) = struct.unpack_from("<I", view, len(view) - _DIGEST)
    if not (checked and view.readonly) and _crc32(view[:-_DIGEST]) != stored:
        raise CorruptEntryError(f"cache entry {key} is corrupt: checksum mismatch")
    try:
        (size,) = struct.unpack_from("<Q", view, len(MAGIC))
        header = json.loads(bytes(view[_PREFIX : _PREFIX + size]))
        if header["format"] != _FORMAT or header["key"] != key:
            raise ValueError(f"entry written for key {header['key']!r} in format {header['format']!r}")
        start = _PREFIX + size + _pad(_PREFIX + size)
        payload = view[start:-_DIGEST]
        if len(payload) != header["payload"]:
            raise ValueError("payload size does not match the header")
        handed_over = owned and not view.readonly
        if indexes is None:
            indexes = {}  # one pandas index per distinct small coordinate of the entry
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
    except (ValueError, KeyError, TypeError, IndexError, struct.error) as err:
        raise CorruptEntryError(f"cache entry {key} is corrupt: {err}") from err
