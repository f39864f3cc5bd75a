"""A read-only, seekable file over HTTP(S): :class:`~terrapipe.io.object_file.ObjectFile` opened by its first byte.

:class:`HTTPFile` lets libraries that take a Python file object (scipy's and
h5netcdf's netCDF readers, pyarrow's Parquet reader, the FlatGeobuf checks)
read a remote file lazily, each read one checked ranged GET
(:func:`terrapipe.io.http_reads.read`). The size comes from the first GET (of
the first byte), never a HEAD (a URL presigned for GET refuses it); every read
returns exactly the bytes at the position, from a file of that size, or
raises :class:`~terrapipe.core.errors.ReadError`. Wrap it in
``io.BufferedReader`` (:func:`open_http`) to merge small reads.

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
