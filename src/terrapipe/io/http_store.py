"""A read-only Zarr store over plain HTTP(S), with byte ranges, retries and time-outs.

``read_zarr("https://host/cube.zarr")`` reads through :class:`HTTPStore`:
one ``GET`` per metadata document or chunk (``Range`` for partial reads),
with the standard library's ``http.client`` on keep-alive connections that
each thread keeps for itself.

Why our own store rather than fsspec's or obstore's: it needs no extra package
(fsspec's HTTP needs aiohttp), it is fork-safe (fsspec's async filesystems
refuse to run in a forked DataLoader worker: "This class is not fork-safe"),
and it maps failures to :class:`~terrapipe.core.errors.ReadError` naming the
URL. A missing key (HTTP 404) is ``None``, as Zarr expects; 429 and 5xx answers
and dropped connections are retried with back-off; anything else fails.

HTTP cannot list a directory, so the store does not support listing: a group
must carry consolidated metadata (``zarr.consolidate_metadata``), which
:func:`~terrapipe.io.zarr_reader.open_zarr` asks for over HTTP.

This module imports ``zarr``: import it only where zarr is installed.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.io.http_client import HTTPOptions, HTTPResponse, fetch, range_header
from terrapipe.io.redact import redact_url

__all__ = ["HTTPStore"]


def _range_value(byte_range: ByteRequest | None) -> str | None:
    if byte_range is None:
        return None
    if isinstance(byte_range, RangeByteRequest):
        return range_header(byte_range.start, byte_range.end)
    if isinstance(byte_range, OffsetByteRequest):
        return range_header(byte_range.offset, None)
    if isinstance(byte_range, SuffixByteRequest):
        return range_header(None, byte_range.suffix)
    raise InvalidArgumentError(f"unknown byte range request {byte_range!r}")


def _slice_full_body(body: bytes, byte_range: ByteRequest | None) -> bytes:
    """Cut the asked range out of a whole file (for servers that ignore ``Range``)."""
    if isinstance(byte_range, RangeByteRequest):
        return body[byte_range.start : byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return body[byte_range.offset :]
    if isinstance(byte_range, SuffixByteRequest):
        return body[-byte_range.suffix :] if byte_range.suffix else b""
    return body


class HTTPStore(Store):
    """Read-only Zarr store for a store published over HTTP(S).

    Parameters
    ----------
    url
        The store's root URL (``https://host/path/cube.zarr``).
    timeout
        Seconds to wait for a connection or for data before a try fails.
    retries
        How many times to retry a 429/5xx answer, a time-out, a dropped
        connection or an answer cut short.
    retry_delay
        First back-off in seconds (doubled at each retry).
    headers
        Extra request headers (e.g. ``{"Authorization": "Bearer ..."}``).

    Examples
    --------
    >>> from terrapipe.io.http_store import HTTPStore
    >>> store = HTTPStore("http://127.0.0.1:8080/cube.zarr")
    >>> store.url_for("t2m/zarr.json")
    'http://127.0.0.1:8080/cube.zarr/t2m/zarr.json'
    >>> store.read_only, store.supports_listing
    (True, False)
    """

    supports_writes = False
    supports_deletes = False
    supports_partial_writes = False
    supports_listing = False

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        retry_delay: float = 0.5,
        headers: Mapping[str, str] | None = None,
        read_only: bool = True,
    ) -> None:
        if not read_only:
            raise InvalidArgumentError(f"HTTPStore is read-only, got read_only={read_only!r}")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgumentError(f"HTTPStore needs an http(s):// URL, got {redact_url(url)!r}")
        super().__init__(read_only=True)
        self.url = url.rstrip("/")
        self.options = HTTPOptions.make(
            timeout=timeout, retries=retries, retry_delay=retry_delay, headers=headers
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HTTPStore) and other.url == self.url

    def __hash__(self) -> int:
        return hash((type(self), self.url))

    def __repr__(self) -> str:
        return f"HTTPStore({redact_url(self.url)!r})"

    def __str__(self) -> str:
        # zarr puts str(store) into its own messages and warnings: never the credentials
        return redact_url(self.url)

    def with_read_only(self, read_only: bool = False) -> HTTPStore:
        """Return a copy; only ``read_only=True`` is possible."""
        opts = self.options
        return HTTPStore(
            self.url,
            timeout=opts.timeout,
            retries=opts.retries,
            retry_delay=opts.retry_delay,
            headers=dict(opts.headers),
            read_only=read_only,
        )

    def url_for(self, key: str) -> str:
        """Return the URL of one key of the store."""
        return f"{self.url}/{urllib.parse.quote(key)}"

    def request(self, method: str, key: str, byte_range: ByteRequest | None = None) -> HTTPResponse:
        """Send one blocking request for ``key`` (see :func:`~terrapipe.io.http_client.fetch`)."""
        response = fetch(self.url_for(key), self.options, method=method, range_value=_range_value(byte_range))
        if response.status == 200 and byte_range is not None:
            return HTTPResponse(
                response.status, response.headers, _slice_full_body(response.body, byte_range)
            )
        return response

    # -- the Store interface ----------------------------------------------------
    async def get(
        self,
        key: str,
        prototype: BufferPrototype,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """Return the value of ``key`` (or a byte range of it); ``None`` if it does not exist."""
        if isinstance(byte_range, RangeByteRequest) and byte_range.end <= byte_range.start:
            return prototype.buffer.from_bytes(b"")
        response = await asyncio.to_thread(self.request, "GET", key, byte_range)
        if response.status == 404:
            return None
        return prototype.buffer.from_bytes(response.body)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        """Fetch several (key, range) pairs concurrently."""
        return list(await asyncio.gather(*(self.get(key, prototype, rng) for key, rng in key_ranges)))

    async def exists(self, key: str) -> bool:
        """Whether ``key`` exists (a ``HEAD`` request)."""
        response = await asyncio.to_thread(self.request, "HEAD", key)
        return response.status != 404

    async def set(self, key: str, value: Buffer) -> None:
        """Refuse: the store is read-only."""
        self._check_writable()

    async def delete(self, key: str) -> None:
        """Refuse: the store is read-only."""
        self._check_writable()

    def _no_listing(self) -> NotImplementedError:
        return NotImplementedError(
            f"cannot list {self.url!r}: HTTP has no directory listing; open it with consolidated metadata"
        )

    async def list(self) -> AsyncIterator[str]:
        """Refuse: HTTP cannot list (use consolidated metadata)."""
        raise self._no_listing()
        yield ""  # pragma: no cover

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        """Refuse: HTTP cannot list (use consolidated metadata)."""
        raise self._no_listing()
        yield ""  # pragma: no cover

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        """Refuse: HTTP cannot list (use consolidated metadata)."""
        raise self._no_listing()
        yield ""  # pragma: no cover

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
