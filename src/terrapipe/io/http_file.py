"""A read-only, seekable file over HTTP range requests.

:class:`HTTPFile` lets libraries that take a Python file object (scipy's and
h5netcdf's netCDF readers, pyarrow's Parquet reader) read a remote file
lazily: each ``read`` becomes one ``Range`` request, through
:func:`~terrapipe.io.http_client.fetch` (retries, time-outs, an overall
deadline per request, fork safety). Every answer is checked: a read returns
exactly the bytes at the position or raises
:class:`~terrapipe.core.errors.ReadError` (a ``Content-Range`` for other
bytes, a body of another length, a total size other than the one the file
was opened with all are errors). Wrap it in ``io.BufferedReader`` to merge
small reads.

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
from terrapipe.io.http_client import ByteRange, HTTPOptions, fetch
from terrapipe.io.redact import public_url

__all__ = ["HTTPFile", "open_http"]


class HTTPFile(io.RawIOBase):
    """Read-only raw file whose reads are HTTP range requests.

    Parameters
    ----------
    url
        The file's ``http(s)://`` URL.
    options
        Time-out, deadline (per read), retries and headers (sent to the URL's
        own origin only).

    Raises
    ------
    ReadError
        When the URL does not exist (404), the server fails, or an answer is
        not the bytes asked for.
    """

    def __init__(self, url: str, options: HTTPOptions | None = None) -> None:
        super().__init__()
        self.url = url
        self.options = options or HTTPOptions()
        self._pos = 0
        self.bytes_read = 0
        self._size = self._fetch_size()

    def __repr__(self) -> str:
        return f"HTTPFile({public_url(self.url)!r}, size={self._size!r})"

    @property
    def name(self) -> str:
        """The URL as ``scheme://host/path`` (what ``io.BufferedReader``'s repr shows)."""
        return public_url(self.url)

    def _fetch_size(self) -> int:
        shown = public_url(self.url)
        response = fetch(self.url, self.options, method="HEAD")
        if response.status == 404:
            raise ReadError(f"cannot open {shown!r}: HTTP 404 (not found); check the path or URL")
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":
            raise ReadError(
                f"cannot open {shown!r}: the server sends the file {encoding}-encoded, so its size and "
                "ranges are not the file's; serve it without Content-Encoding"
            )
        length = response.headers.get("content-length", "")
        if not length.strip().isdigit():
            raise ReadError(
                f"cannot open {shown!r}: the server sends no valid Content-Length ({length!r}); "
                "cannot read by ranges"
            )
        return int(length)

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
        response = fetch(
            self.url,
            self.options,
            byte_range=ByteRange(self._pos, self._pos + want),
            expected_total=self._size,
        )
        if response.status == 404:
            raise ReadError(
                f"cannot read {public_url(self.url)!r}: HTTP 404 (not found); was the file removed?"
            )
        body = response.body  # exactly the bytes asked for (fetch checks the answer)
        if len(body) != want:  # pragma: no cover - fetch refuses such answers
            raise ReadError(f"cannot read {public_url(self.url)!r}: got {len(body)} bytes for {want}")
        n = len(body)
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
    url: str, options: HTTPOptions | None = None, *, buffer_size: int = 256 * 1024
) -> io.BufferedReader:
    """Open ``url`` as a buffered, seekable binary file (reads of ``buffer_size`` at least)."""
    return io.BufferedReader(HTTPFile(url, options), buffer_size=buffer_size)
