"""A read-only, seekable file over HTTP(S): :class:`~terrapipe.io.object_file.ObjectFile` opened by its first byte.

For libraries that take a Python file object (netCDF, Parquet, FlatGeobuf
readers): each read is one checked ranged GET, the size comes from the first
GET (never a HEAD, which a URL presigned for GET refuses). :func:`open_http`
wraps it in ``io.BufferedReader`` to merge small reads.

Examples
--------
>>> from terrapipe.io.object_file import ObjectFile
>>> issubclass(HTTPFile, ObjectFile)
True
"""

from __future__ import annotations

import io

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.redact import public_url
from terrapipe.io.object_file import ObjectFile
from terrapipe.io.storage import Storage, cloud_of

__all__ = ["HTTPFile", "open_http"]


class HTTPFile(ObjectFile):
    """Read-only raw file over an ``http(s)://`` URL whose reads are checked range requests.

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
