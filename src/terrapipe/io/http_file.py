"""A read-only, seekable file over HTTP(S): each read one checked ranged GET of the byte layer.

:class:`HTTPFile` lets libraries that take a Python file object (scipy's and
h5netcdf's netCDF readers, pyarrow's Parquet reader, pyogrio) read a remote
file lazily through :func:`terrapipe.io.http_reads.read`. The size comes
from the first GET (of the first byte), never a HEAD (a URL presigned for
GET refuses it); every read returns exactly the bytes at the position, from
a file of that size, or raises :class:`~terrapipe.core.errors.ReadError`.
Wrap it in ``io.BufferedReader`` (:func:`open_http`) to merge small reads.

Examples
--------
>>> from terrapipe.io.http_file import HTTPFile
>>> HTTPFile.__mro__[1].__name__
'RawIOBase'
"""

from __future__ import annotations

import io
import os
from typing import Any

from terrapipe.core.errors import ReadError
from terrapipe.core.redact import public_url
from terrapipe.io.http_reads import ByteRange, PastEndError, read
from terrapipe.io.storage import Storage

__all__ = ["HTTPFile", "open_http"]


class HTTPFile(io.RawIOBase):
    """Read-only raw file whose reads are checked HTTP range requests.

    Parameters
    ----------
    url
        The file's ``http(s)://`` URL (a presigned or SAS query is sent, never shown).
    options
        A :class:`~terrapipe.io.storage.Storage` (time-out, deadline per read,
        retries, headers sent to the URL's origin only); default ``Storage.from_env()``.

    Raises
    ------
    ReadError
        When the URL does not exist (404), the server fails, or an answer is
        not the bytes asked for.
    """

    def __init__(self, url: str, options: Storage | None = None) -> None:
        super().__init__()
        self.url, self.options = url, options
        self._pos = 0
        self.bytes_read = 0
        try:
            first = self._get(ByteRange(0, 1), None, "open")
        except PastEndError:  # no first byte: an empty file
            self._size = 0
            return
        if first.total is None:
            raise ReadError(
                f"cannot open {public_url(url)!r}: the server states no size; cannot read by ranges"
            )
        self._size = first.total

    def _get(self, wanted: ByteRange, total: int | None, what: str) -> Any:
        reply = read(self.url, self.options, byte_range=wanted, expected_total=total)
        if reply.status == 404:
            raise ReadError(f"cannot {what} {public_url(self.url)!r}: HTTP 404 (not found); check the URL")
        return reply

    def __repr__(self) -> str:
        return f"HTTPFile({public_url(self.url)!r}, size={self._size!r})"

    @property
    def name(self) -> str:
        """The URL as ``scheme://host/path`` (what ``io.BufferedReader``'s repr shows)."""
        return public_url(self.url)

    @property
    def size(self) -> int:
        """The file's size in bytes."""
        return self._size

    def readable(self) -> bool:
        """Return ``True``."""
        return True

    def seekable(self) -> bool:
        """Return ``True``."""
        return True

    def tell(self) -> int:
        """Return the position."""
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position (``SEEK_SET``, ``SEEK_CUR``, ``SEEK_END``)."""
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        """Read up to ``len(buffer)`` bytes at the position with one range request."""
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        body = self._get(ByteRange(self._pos, self._pos + want), self._size, "read").body
        n = len(body)  # exactly `want`: the byte layer refuses any other answer
        view[:n] = body
        self._pos += n
        self.bytes_read += n
        return n

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "options": self.options, "pos": self._pos, "size": self._size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        io.RawIOBase.__init__(self)
        self.url, self.options = state["url"], state["options"]
        self._pos, self._size, self.bytes_read = state["pos"], state["size"], 0


def open_http(
    url: str, options: Storage | None = None, *, buffer_size: int = 256 * 1024
) -> io.BufferedReader:
    """Open ``url`` as a buffered, seekable binary file (reads of ``buffer_size`` at least)."""
    return io.BufferedReader(HTTPFile(url, options), buffer_size=buffer_size)
