"""A read-only, seekable file object over the byte layer (:mod:`terrapipe.io.object_store`).

Readers that take a file object (pyarrow's Parquet reader, scipy's and
h5netcdf's netCDF readers, the FlatGeobuf checks) read ``s3://``, ``gs://``,
``az://``/``abfs://`` and ``http(s)://`` URLs through it, each ``read`` one
ranged GET. The size comes from a first ranged GET, never a HEAD (a URL
signed for GET refuses it; the GCS emulator answers none): of the last
``tail_bytes`` (kept: a Parquet footer), or of the first byte; Azure Blob,
which takes no suffix range, gets one HEAD. HTTP(S) reads are checked by
:mod:`terrapipe.io.http_reads`, a size changed since the open included;
every read must state the ``ETag`` the open's did (where the server gives
one), so an object replaced by another of the same size between reads is a
:class:`~terrapipe.core.errors.ReadError`, never bytes of two versions.
:class:`HTTPFile` is one for an ``http(s)://`` URL opened by its first byte
(netCDF, FlatGeobuf); :func:`open_http` buffers it (``io.BufferedReader``
merges small reads).

Examples
--------
>>> with open("blob.bin", "wb") as f:
...     _ = f.write(b"0123456789")
>>> with ObjectFile("blob.bin") as f:
...     _ = f.seek(-4, 2)
...     f.read(), f.size
(b'6789', 10)
"""

from __future__ import annotations

import io
import threading
from typing import Any

from terrapipe.core.errors import InvalidArgumentError, ReadError
from terrapipe.core.redact import public_url
from terrapipe.io import http_reads, object_store, obstore_runtime
from terrapipe.io.storage import Storage, cloud_of

__all__ = ["HTTPFile", "ObjectFile", "open_http"]

# The last bytes fetched first for an HTTP(S) URL: they give the size and hold a Parquet footer.
TAIL_BYTES = 64 * 1024


class ObjectFile(io.RawIOBase):
    """A read-only file over ``url`` whose reads are ranged GETs through the byte layer.

    Parameters
    ----------
    url
        Object URL (``s3://``, ``gs://``, ``az://``, ``abfs://``), HTTP(S)
        URL (presigned and SAS included) or local path.
    storage
        Configuration (default ``Storage.from_env()``).
    tail_bytes
        How many of the last bytes the first GET reads and keeps (``0``: the
        first byte only; not for Azure Blob, which gets a HEAD).

    Raises
    ------
    ReadError
        No such object, access denied, a time-out (named ``scheme://host/path``).
    """

    def __init__(self, url: str, storage: Storage | None = None, *, tail_bytes: int = TAIL_BYTES) -> None:
        super().__init__()
        self.url = url
        self.storage = storage
        self._pos = 0
        self._lock = threading.Lock()
        self._tail_start = 0
        self._tail = b""
        self._tail_bytes = tail_bytes
        self.bytes_read = 0
        #: The object's ``ETag`` at the open (``None``: the server gives none); every later read must
        #: state the same one, so an object replaced by another of the same size is refused, not mixed.
        self.etag: str | None = None
        if cloud_of(url) == "azure":  # Azure Blob takes no suffix range: one HEAD
            info = object_store.head(url, storage)
            self.size, self.etag = info.size, info.etag
        else:
            self.size = self._size_from_tail()

    def __repr__(self) -> str:  # the URL without its query: a presigned URL's signature is a secret
        return f"{type(self).__name__}({public_url(self.url)!r})"

    @property
    def name(self) -> str:
        """The URL as ``scheme://host/path`` (what ``io.BufferedReader``'s repr shows)."""
        return public_url(self.url)

    def _http_tail(self) -> int:
        """GET the last ``tail_bytes`` (or the first byte) of an HTTP(S) URL, checked; return the total."""
        suffix = self._tail_bytes > 0
        first = http_reads.ByteRange(0, 1)
        try:
            try:
                wanted = http_reads.ByteRange(None, self._tail_bytes) if suffix else first
                reply = http_reads.read(self.url, self.storage, byte_range=wanted)
            except ReadError as err:  # suffix ranges refused: 416 when longer than the object (rclone),
                if "deadline" in str(err) or not suffix:  # the connection dropped (Azurite); the first
                    raise  # byte states the size
                suffix = False
                reply = http_reads.read(self.url, self.storage, byte_range=first)
        except http_reads.PastEndError:  # no first byte: an empty file
            return 0
        total = reply.found(self.url, sized=True).total
        assert total is not None
        self.etag = reply.headers.get("etag")
        if suffix:  # the last bytes: kept (a Parquet footer)
            self._tail_start, self._tail = total - len(reply.body), reply.body
        return total

    def _size_from_tail(self) -> int:
        """GET the last ``tail_bytes`` (no HEAD): keep them and return the total the answer states."""
        if cloud_of(self.url) == "http":
            return self._http_tail()
        obs = obstore_runtime.load_obstore()
        config = obstore_runtime.storage_or_env(self.storage)
        store, key = object_store._locate(self.url, config)

        def fetch(options: Any) -> tuple[int, int, bytes, str | None]:
            async def read() -> tuple[int, int, bytes, str | None]:
                result = await obs.get_async(store, key, options=options)
                size, start = int(result.meta["size"]), int(result.range[0])
                return size, start, bytes(await result.bytes_async()), result.meta.get("e_tag")

            return obstore_runtime.run_on_thread_loop(read(), config.deadline)

        try:
            try:
                total, start, data, self.etag = fetch(
                    {"range": {"suffix": self._tail_bytes} if self._tail_bytes else (0, 1)}
                )
                if not self._tail_bytes:
                    data = b""  # the first byte, asked for the size only: not a tail to keep
            except Exception:
                # the suffix refused: some S3 servers answer 416 for an object shorter than it, the GCS
                # emulator and Azure ignore suffix ranges; the answer for the first byte states the total
                # (and a refused or missing object fails here again, with its own error)
                total, start, data, self.etag = fetch({"range": (0, 1)})
                if total > 1:
                    data = b""  # read again when asked; only the size is wanted here
        except Exception as err:  # obstore's errors: named, without the signed URL
            raise object_store._error(err, self.url, config, "read") from None
        if data and start + len(data) != total:
            raise ReadError(
                f"cannot read {public_url(self.url)!r}: asked for its last bytes, got bytes {start}-"
                f"{start + len(data)} of {total}; the server does not answer range requests correctly"
            )
        self._tail_start, self._tail = start, data
        return total

    def readable(self) -> bool:
        """Return True: the object can be read."""
        return True

    def seekable(self) -> bool:
        """Return True: reads are ranged GETs at any offset."""
        return True

    def tell(self) -> int:
        """Return the position."""
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` (from the start, the position or the end) and return the position."""
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"whence must be 0, 1 or 2, got {whence!r}")
        if pos < 0:
            raise ValueError(f"cannot seek to {pos}: before the start of the object")
        self._pos = pos
        return pos

    def read_at(self, nbytes: int, offset: int) -> bytes:
        """Return up to ``nbytes`` bytes from ``offset`` (one ranged GET, or none from the kept tail)."""
        data = self._read_at(nbytes, offset)
        self.bytes_read += len(data)
        return data

    def _read_at(self, nbytes: int, offset: int) -> bytes:
        end = min(self.size, offset + max(0, nbytes))
        if offset >= end:
            return b""
        if self._tail and offset >= self._tail_start:
            return self._tail[offset - self._tail_start : end - self._tail_start]
        if cloud_of(self.url) == "http":  # checked, and refused if the object's size changed since the open
            wanted = http_reads.ByteRange(offset, end)
            reply = http_reads.read(self.url, self.storage, byte_range=wanted, expected_total=self.size)
            body = reply.found(self.url, hint="was it removed?").body
            self._check_same(reply.headers.get("etag"), self.size)
            return body
        got = object_store.get_range(self.url, self.storage, offset, end)
        self._check_same(got.etag, got.size)
        return got.body

    def _check_same(self, etag: str | None, size: int) -> None:
        """Refuse a read of another version of the object than the open's (its size or ``ETag`` changed)."""
        if size != self.size or (self.etag is not None and etag is not None and etag != self.etag):
            was, now = (self.size, self.etag), (size, etag)
            raise ReadError(
                f"cannot read {public_url(self.url)!r}: the object changed since it was opened ((size, ETag) "
                f"was {was}, now {now}: replaced while being read?); open it again"
            )

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all the rest when negative) from the position."""
        with self._lock:
            nbytes = self.size - self._pos if size is None or size < 0 else size
            data = self.read_at(nbytes, self._pos)
            self._pos += len(data)
            return data

    def readall(self) -> bytes:
        """Read the rest of the object."""
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        """Read into ``buffer``; return the number of bytes read."""
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_tail")} | {"bytes_read": 0}

    def __setstate__(self, state: dict[str, Any]) -> None:
        io.RawIOBase.__init__(self)
        self.__dict__.update({**state, "_lock": threading.Lock(), "_tail": b"", "_tail_start": 0})


class HTTPFile(ObjectFile):
    """An :class:`ObjectFile` over an ``http(s)://`` URL whose size comes from a GET of its first byte.

    ``options``: a :class:`~terrapipe.io.storage.Storage` (default
    ``Storage.from_env()``). A 404, a failing server or an answer that is not
    the bytes asked for is a :class:`~terrapipe.core.errors.ReadError`.
    """

    def __init__(self, url: str, options: Storage | None = None) -> None:
        if cloud_of(url) != "http":
            raise InvalidArgumentError(f"HTTPFile needs an http(s):// URL, got {public_url(url)!r}")
        super().__init__(url, options, tail_bytes=0)

    @property
    def options(self) -> Storage | None:
        """The configuration given (``storage``)."""
        return self.storage

    def __repr__(self) -> str:
        return f"HTTPFile({public_url(self.url)!r}, size={self.size!r})"


def open_http(
    url: str, options: Storage | None = None, *, buffer_size: int = 256 * 1024
) -> io.BufferedReader:
    """Open ``url`` as a buffered, seekable binary file (reads of ``buffer_size`` at least)."""
    return io.BufferedReader(HTTPFile(url, options), buffer_size=buffer_size)
