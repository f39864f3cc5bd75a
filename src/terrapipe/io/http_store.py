"""A read-only Zarr store over HTTP(S), on the byte layer's checked reads.

``read_zarr("https://host/cube.zarr")`` reads through :class:`HTTPStore`: one
GET per metadata document or chunk (a range for partial reads) through
:func:`terrapipe.io.http_reads.read_async`. A missing key (HTTP 404) is
``None``, as Zarr expects; a key whose size changes between its ranged reads
is a :class:`~terrapipe.core.errors.ReadError`. zarr's ``ObjectStore`` over
obstore is not used: it checks no body against its range and sends headers
where a redirect leads. HTTP cannot list: a group needs consolidated metadata.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from zarr.abc.buffer import Buffer, BufferPrototype
from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.redact import public_url
from terrapipe.io.http_reads import ByteRange, PastEndError, read_async
from terrapipe.io.storage import Storage

__all__ = ["HTTPStore", "check_not_a_page", "get_pairs"]

#: The names of Zarr's metadata documents (JSON: never a body starting with "<").
_METADATA = frozenset({"zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"})


def check_not_a_page(url: str, key: str, body: bytes | memoryview) -> None:
    """Refuse an HTML page served for a Zarr key: a server answering missing files with a page (a "soft 404").

    Static hosts set up for web sites (a single-page app's fallback, a
    bucket website's error document) answer a missing file with ``200`` and
    an HTML page. zarr asks for keys that do not exist (``zarr.json`` of a v2
    store, missing chunks): the page was then a metadata document that "is not
    valid JSON ... the file is corrupt" or a chunk "whose metadata was edited",
    and missing chunks cannot be told from data. A metadata document starting
    with ``<`` or any key starting with ``<!doctype html`` / ``<html`` is
    refused, naming the key and what to do.

    Raises
    ------
    ReadError
        For such a body.

    Examples
    --------
    >>> check_not_a_page("http://h/a.zarr/v/0.0", "v/0.0", b"binary chunk")
    >>> check_not_a_page("http://h/a.zarr/zarr.json", "zarr.json", b"<html><body>Not found")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.ReadError: cannot read Zarr store key 'http://h/a.zarr/zarr.json': the server answered it with an HTML page, ...
    """
    head = bytes(body[:64]).lstrip().lower()
    name = key.rsplit("/", 1)[-1]
    if not (head.startswith((b"<!doctype html", b"<html")) or (name in _METADATA and head.startswith(b"<"))):
        return
    from terrapipe.io.read_errors import read_error

    cause = (
        "the server answered it with an HTML page, not the key's content: it serves a page for missing files "
        "(a 'soft 404'), so a missing key (a v2 store's zarr.json, a chunk left at its fill value) cannot be told "
        "from content"
    )
    hint = (
        "serve the store so that a missing file answers HTTP 404 (a plain static server or the bucket itself)"
    )
    raise read_error(url, "cannot read Zarr store key", cause=cause, hint=hint)


async def get_pairs(
    store: Store, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
) -> list[Buffer | None]:
    """Get several (key, range) pairs of ``store`` concurrently; when one fails, cancel the others.

    (``asyncio.gather`` alone leaves them reading on for nothing.)
    """
    import asyncio

    tasks = [asyncio.ensure_future(store.get(key, prototype, rng)) for key, rng in key_ranges]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


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


class HTTPStore(Store):
    """Read-only Zarr store for a store published over HTTP(S).

    Parameters
    ----------
    url
        The store's root URL (``https://host/path/cube.zarr``; a query string is sent with every key).
    storage
        The configuration (:class:`~terrapipe.io.storage.Storage`); default
        ``Storage()``. The keywords below, where given, replace its fields.
    timeout, retries, retry_delay, headers, deadline, max_body
        ``Storage``'s ``timeout``, ``retries``, ``backoff``, ``headers``
        (sent to the store's own origin only), ``deadline`` (one request in
        all; ``None``: 120 s) and ``max_bytes`` (``None``: 256 MiB).

    Examples
    --------
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
        storage: Storage | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        retry_delay: float | None = None,
        headers: Mapping[str, str] | None = None,
        read_only: bool = True,
        deadline: float | None = None,
        max_body: int | None = None,
    ) -> None:
        if not read_only:
            raise InvalidArgumentError(f"HTTPStore is read-only, got read_only={read_only!r}")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgumentError(f"HTTPStore needs an http(s):// URL, got {public_url(url)!r}")
        if storage is not None and not isinstance(storage, Storage):
            raise InvalidArgumentError(f"storage must be a tp.Storage, got {type(storage).__name__}")
        super().__init__(read_only=True)
        self.url = url.rstrip("/")
        given = {
            "timeout": timeout, "retries": retries, "backoff": retry_delay, "deadline": deadline,
            "max_bytes": max_body, "headers": None if headers is None else tuple(sorted(headers.items())),
        }  # fmt: skip
        changes = {k: v for k, v in given.items() if v is not None}
        self.storage = (storage or Storage()).with_options(**changes)
        self._sizes: dict[str, int] = {}

    @property
    def options(self) -> Storage:
        """The configuration (``storage``; the name ``HTTPOptions`` objects had)."""
        return self.storage

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HTTPStore) and other.url == self.url and other.storage == self.storage

    def __hash__(self) -> int:
        return hash((type(self), self.url))

    def __repr__(self) -> str:
        return f"HTTPStore({public_url(self.url)!r})"

    def __str__(self) -> str:
        # zarr puts str(store) into its own messages and warnings: scheme://host/path only
        return public_url(self.url)

    def with_read_only(self, read_only: bool = False) -> HTTPStore:
        """Return a copy; only ``read_only=True`` is possible."""
        return HTTPStore(self.url, storage=self.storage, read_only=read_only)

    def url_for(self, key: str) -> str:
        """Return the URL of one key of the store (a query string of the root URL is kept)."""
        parts = urllib.parse.urlsplit(self.url)
        path = f"{parts.path.rstrip('/')}/{urllib.parse.quote(key)}"
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))

    async def _read(self, key: str, byte_range: ByteRequest | None) -> bytes | None:
        wanted = _byte_range(byte_range)
        known = self._sizes.get(key)
        reply = await read_async(self.url_for(key), self.storage, byte_range=wanted, expected_total=known)
        if reply.status == 404:
            return None
        if wanted is None or wanted.start == 0:  # the body begins with the key's first bytes
            check_not_a_page(self.url_for(key), key, reply.body)
        if wanted is not None and reply.total is not None and known is None:
            if len(self._sizes) >= MAX_REMEMBERED_SIZES:
                self._sizes.pop(next(iter(self._sizes)))
            self._sizes[key] = reply.total
        return reply.body

    # -- the Store interface ----------------------------------------------------
    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        """Return the value of ``key`` (or a byte range of it); ``None`` if it does not exist."""
        if isinstance(byte_range, RangeByteRequest) and byte_range.end <= byte_range.start:
            return prototype.buffer.from_bytes(b"")
        if isinstance(byte_range, SuffixByteRequest) and byte_range.suffix == 0:
            return prototype.buffer.from_bytes(b"")
        body = await self._read(key, byte_range)
        return None if body is None else prototype.buffer.from_bytes(body)

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        """Fetch several (key, range) pairs concurrently (see :func:`get_pairs`)."""
        return await get_pairs(self, prototype, key_ranges)

    async def exists(self, key: str) -> bool:
        """Whether ``key`` exists (a GET of its first byte: no HEAD, which GET-signed URLs refuse)."""
        try:
            return await self._read(key, RangeByteRequest(0, 1)) is not None
        except PastEndError:  # an empty value
            return True

    async def set(self, key: str, value: Buffer) -> None:
        """Refuse: the store is read-only."""
        self._check_writable()

    async def delete(self, key: str) -> None:
        """Refuse: the store is read-only."""
        self._check_writable()

    async def list_prefix(self, prefix: str = "") -> AsyncIterator[str]:
        """Refuse: HTTP cannot list (use consolidated metadata)."""
        raise NotImplementedError(
            f"cannot list {public_url(self.url)!r}: HTTP has no directory listing; open it with consolidated metadata"
        )
        yield ""  # pragma: no cover

    list = list_dir = list_prefix  # type: ignore[assignment]

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"_sizes": {}, **state})
