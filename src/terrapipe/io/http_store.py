"""A read-only Zarr store over plain HTTP(S), with byte ranges, retries and time-outs.

``read_zarr("https://host/cube.zarr")`` reads through :class:`HTTPStore`:
one ``GET`` per metadata document or chunk (``Range`` for partial reads),
through :func:`~terrapipe.io.http_client.fetch`: the standard library's
``http.client`` on keep-alive connections that each thread keeps for itself,
with every answer checked (a ranged read returns exactly the bytes asked for,
and the size of a key must not change between its ranged reads), an overall
deadline per request, a size cap per answer, and the headers sent to the
store's own origin only.

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
from terrapipe.io.http_client import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_BODY,
    ByteRange,
    HTTPOptions,
    HTTPResponse,
    fetch,
)
from terrapipe.io.redact import public_url

__all__ = ["HTTPStore"]


#: Keys whose total size the store remembers (to see a file replaced between ranged reads).
MAX_REMEMBERED_SIZES = 4096


def _byte_range(byte_range: ByteRequest | None) -> ByteRange | None:
    if byte_range is None:
        return None
    if isinstance(byte_range, RangeByteRequest):
        return ByteRange(byte_range.start, byte_range.end)
    if isinstance(byte_range, OffsetByteRequest):
        return ByteRange(byte_range.offset, None)
    if isinstance(byte_range, SuffixByteRequest):
        return ByteRange(None, byte_range.suffix)
    raise InvalidArgumentError(f"unknown byte range request {byte_range!r}")


def _is_empty(byte_range: ByteRequest | None) -> bool:
    if isinstance(byte_range, RangeByteRequest):
        return byte_range.end <= byte_range.start
    return isinstance(byte_range, SuffixByteRequest) and byte_range.suffix == 0


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
        Extra request headers (e.g. ``{"Authorization": "Bearer ..."}``),
        sent to the store's own origin only (never after a redirect to
        another scheme, host or port).
    deadline
        Seconds one request may take in all (connection, redirects, retries,
        back-off and the whole answer); default
        :data:`~terrapipe.io.http_client.DEFAULT_DEADLINE`. Raise it for
        large chunks over a slow link.
    max_body
        Largest answer in bytes, counted after decompression; default
        :data:`~terrapipe.io.http_client.DEFAULT_MAX_BODY`. A ranged read is
        capped at the range's length.

    Examples
    --------
    >>> from terrapipe.io.http_store import HTTPStore
    >>> store = HTTPStore("http://127.0.0.1:8080/cube.zarr")
    >>> store.url_for("t2m/zarr.json")
    'http://127.0.0.1:8080/cube.zarr/t2m/zarr.json'
    >>> store.read_only, store.supports_listing
    (True, False)
    >>> HTTPStore("https://h/cube.zarr?token=abc&x=1", headers={"X-Api-Key": "k"})
    HTTPStore('https://h/cube.zarr')
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
        deadline: float = DEFAULT_DEADLINE,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        if not read_only:
            raise InvalidArgumentError(f"HTTPStore is read-only, got read_only={read_only!r}")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgumentError(f"HTTPStore needs an http(s):// URL, got {public_url(url)!r}")
        super().__init__(read_only=True)
        self.url = url.rstrip("/")
        self.options = HTTPOptions.make(
            timeout=timeout,
            retries=retries,
            retry_delay=retry_delay,
            headers=headers,
            deadline=deadline,
            max_body=max_body,
        )
        self._sizes: dict[str, int] = {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HTTPStore) and other.url == self.url

    def __hash__(self) -> int:
        return hash((type(self), self.url))

    def __repr__(self) -> str:
        return f"HTTPStore({public_url(self.url)!r})"

    def __str__(self) -> str:
        # zarr puts str(store) into its own messages and warnings: scheme://host/path only
        return public_url(self.url)

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
            deadline=opts.deadline,
            max_body=opts.max_body,
        )

    def url_for(self, key: str) -> str:
        """Return the URL of one key of the store (a query string of the root URL is kept)."""
        parts = urllib.parse.urlsplit(self.url)
        path = f"{parts.path.rstrip('/')}/{urllib.parse.quote(key)}"
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))

    def request(self, method: str, key: str, byte_range: ByteRequest | None = None) -> HTTPResponse:
        """Send one blocking request for ``key`` (see :func:`~terrapipe.io.http_client.fetch`).

        The body is exactly the bytes asked for; a read of a key whose total
        size differs from the one an earlier ranged read saw is a
        :class:`~terrapipe.core.errors.ReadError` (the key was replaced).
        """
        wanted = _byte_range(byte_range)
        known = self._sizes.get(key) if method == "GET" else None
        response = fetch(
            self.url_for(key), self.options, method=method, byte_range=wanted, expected_total=known
        )
        if wanted is not None and response.total is not None and known is None:
            if len(self._sizes) >= MAX_REMEMBERED_SIZES:
                self._sizes.pop(next(iter(self._sizes)))
            self._sizes[key] = response.total
        return response

    # -- the Store interface ----------------------------------------------------
    async def get(
        self,
        key: str,
        prototype: BufferPrototype,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """Return the value of ``key`` (or a byte range of it); ``None`` if it does not exist."""
        if _is_empty(byte_range):
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
            f"cannot list {public_url(self.url)!r}: HTTP has no directory listing; "
            "open it with consolidated metadata"
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
        self.__dict__.update({"_sizes": {}, **state})  # a store pickled before sizes were kept
