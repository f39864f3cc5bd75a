"""Compressed cache entries: Blosc frames decoded straight into the hit's own buffer.

A cache entry (:mod:`terrapipe.cache.entry`) is mostly raw array bytes; the
stores that move it through a disk or a socket keep it compressed with a fast
codec so a hit moves fewer bytes: Blosc with byte shuffle (``typesize`` 2, the
uint16 imagery that dominates; other dtypes are still compressed, a little
less) and LZ4 (``"lz4"``, the default: decodes at several GB/s) or Zstandard
level 1 (``"zstd"``: smaller, slower to decode). Each frame is one Blosc
buffer of at most ``FRAME_BYTES`` decoded bytes, decoded with no intermediate
copy into a buffer the hit owns.

Verification: a frame's Blosc header must announce exactly the size the
caller expects and exactly the bytes it has (no frame decodes past its end
or into a neighbour); a frame Blosc refuses raises
:class:`~terrapipe.cache.entry.CorruptEntryError`. The checksum is the
entry's own CRC-32, verified on the **decoded** bytes by
:func:`~terrapipe.cache.entry.unpack_entry` (a flipped bit that still
decodes gives other bytes, which fail it).

A framed value (:func:`compress_entry`, what :class:`~terrapipe.cache.redis_store.RedisStore`
stores)::

    b"TPCFRAM1"                magic and format version (8 bytes)
    decoded size               little-endian uint64
    frame count                little-endian uint32
    frame sizes                little-endian uint64 each
    frames                     Blosc buffers, in order

Examples
--------
>>> data = bytes(range(256)) * 1000
>>> framed = compress_entry(data, "lz4")
>>> len(framed) < len(data), bytes(decompress_entry(framed, "k")) == data
(True, True)
>>> decompress_entry(framed[:-1], "k")
Traceback (most recent call last):
...
terrapipe.cache.entry.CorruptEntryError: cache entry k is corrupt: frame sizes do not match the value
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from terrapipe.cache.entry import CorruptEntryError
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.optional import require

__all__ = [
    "CODECS",
    "FRAME_BYTES",
    "FRAME_MAGIC",
    "TYPESIZE",
    "blosc_frame",
    "check_announced",
    "check_codec",
    "compress_entry",
    "decode_frame_into",
    "decompress_entry",
]

#: Codec name -> (Blosc compressor, level).
CODECS: dict[str, tuple[str, int]] = {"lz4": ("lz4", 1), "zstd": ("zstd", 1)}
#: Bytes shuffled together (uint16 imagery).
TYPESIZE = 2
#: Decoded bytes per frame at most.
FRAME_BYTES = 8 * 2**20
#: First bytes of a framed value.
FRAME_MAGIC = b"TPCFRAM1"
_BLOSC_HEADER = 16


def check_codec(codec: Any) -> str:
    """Return ``codec`` if it is one of :data:`CODECS`, else raise :class:`InvalidArgumentError`."""
    if not isinstance(codec, str) or codec not in CODECS:
        raise InvalidArgumentError(f"cache codec must be one of {sorted(CODECS)}, got {codec!r}")
    return codec


def _blosc() -> Any:
    return require("numcodecs.blosc", feature="compressed cache entries")


def blosc_frame(data: bytes | bytearray | memoryview, codec: str) -> bytes:
    """Compress one frame (any size up to 2 GiB) with Blosc, byte shuffle, ``codec``."""
    cname, level = CODECS[check_codec(codec)]
    view = memoryview(data).cast("B")
    dtype = np.uint16 if len(view) % TYPESIZE == 0 else np.uint8
    frame: bytes = _blosc().compress(np.frombuffer(view, dtype=dtype), cname.encode(), level, 1)
    return frame


def decode_frame_into(frame: bytes | bytearray | memoryview, out: memoryview, key: str) -> None:
    """Decode one Blosc frame into ``out``, which it must fill exactly.

    Raises
    ------
    CorruptEntryError
        When the frame's header announces another decoded size or another
        compressed size than ``len(frame)``, or Blosc refuses it.
    """
    src = memoryview(frame).cast("B")
    if len(src) < _BLOSC_HEADER:
        raise CorruptEntryError(f"cache entry {key} is corrupt: a compressed frame is truncated")
    (nbytes,) = struct.unpack_from("<I", src, 4)  # header: version, versionlz, flags, typesize,
    (cbytes,) = struct.unpack_from("<I", src, 12)  # nbytes, blocksize, cbytes (uint32 each)
    if nbytes != len(out) or cbytes != len(src):
        raise CorruptEntryError(
            f"cache entry {key} is corrupt: a compressed frame announces {nbytes} bytes in {cbytes}, "
            f"expected {len(out)} in {len(src)}"
        )
    try:
        _blosc().decompress(src, out)
    except (RuntimeError, ValueError) as err:
        raise CorruptEntryError(f"cache entry {key} is corrupt: a compressed frame does not decode") from err


def check_announced(nbytes: int, max_bytes: int | None, key: str) -> None:
    """Raise :class:`CorruptEntryError` when a value announces an entry above ``max_bytes``."""
    if max_bytes is not None and nbytes > max_bytes:
        raise CorruptEntryError(
            f"cache entry {key} is corrupt: it announces {nbytes} bytes, more than the {max_bytes} the store "
            "takes (max_entry_bytes)"
        )


def compress_entry(data: bytes | bytearray | memoryview, codec: str = "lz4") -> bytes:
    """Return ``data`` as a framed value (see the module doc)."""
    view = memoryview(data).cast("B")
    frames = [blosc_frame(view[i : i + FRAME_BYTES], codec) for i in range(0, len(view), FRAME_BYTES)]
    head = FRAME_MAGIC + struct.pack("<QI", len(view), len(frames))
    sizes = struct.pack(f"<{len(frames)}Q", *(len(f) for f in frames))
    return b"".join([head, sizes, *frames])


def decompress_entry(
    value: bytes | bytearray | memoryview, key: str, *, max_bytes: int | None = None
) -> memoryview:
    """Decode a framed value into a new writable buffer the caller owns.

    ``max_bytes``: a value announcing a larger entry is corrupt (nothing is
    allocated for it).

    Raises
    ------
    CorruptEntryError
        For a value that is not a framed value, whose frame table does not
        match its size, or a frame that does not decode (see
        :func:`decode_frame_into`).
    """
    src = memoryview(value).cast("B")
    prefix = len(FRAME_MAGIC) + 12
    if len(src) < prefix or bytes(src[: len(FRAME_MAGIC)]) != FRAME_MAGIC:
        raise CorruptEntryError(f"cache entry {key} is corrupt: not a compressed terrapipe cache entry")
    nbytes, count = struct.unpack_from("<QI", src, len(FRAME_MAGIC))
    check_announced(nbytes, max_bytes, key)
    if count != -(-nbytes // FRAME_BYTES) or len(src) < prefix + 8 * count:
        raise CorruptEntryError(f"cache entry {key} is corrupt: its frame table does not match its size")
    sizes = struct.unpack_from(f"<{count}Q", src, prefix)
    start = prefix + 8 * count
    if start + sum(sizes) != len(src):
        raise CorruptEntryError(f"cache entry {key} is corrupt: frame sizes do not match the value")
    out = np.empty(nbytes, dtype=np.uint8).data.cast("B")  # not zeroed: every frame fills its part
    for i, size in enumerate(sizes):
        decode_frame_into(
            src[start : start + size], out[i * FRAME_BYTES : min(nbytes, (i + 1) * FRAME_BYTES)], key
        )
        start += size
    return out
