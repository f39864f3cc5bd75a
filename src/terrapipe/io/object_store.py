"""The byte layer: read whole objects, byte ranges, sizes and listings from any store.

:func:`get`, :func:`head`, :func:`size` and :func:`list_objects` read
``s3://``, ``az://``/``abfs://``, ``gs://`` (obstore), ``http(s)://``
(public, presigned or SAS URLs, through :mod:`terrapipe.io.http_reads`: a GET,
never a HEAD first) and local paths or ``file://`` URIs, configured by one
:class:`~terrapipe.io.storage.Storage` (``Storage.from_env()`` when none is
given). A ranged read returns exactly the bytes asked for, or a
:class:`~terrapipe.core.errors.ReadError` naming ``scheme://host/path`` only
(never a query string, user or key; the library's exception, which holds the
full URL, is not chained) and saying whether there was no such object or
access was denied, with a hint on configuring ``Storage``. Why obstore for
buckets, and why a process forked after it ran cannot read them
(:func:`worker_start_method`): ``docs/storage.md``.

Examples
--------
>>> import pathlib
>>> _ = pathlib.Path("blob.bin").write_bytes(b"0123456789")
>>> get("blob.bin", range=(2, 5))
b'234'
>>> size("blob.bin")
10
>>> join_url("s3://bucket/stac/catalog.json", "./col/collection.json")
's3://bucket/stac/col/collection.json'
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import pickle
import posixpath
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from terrapipe.core.errors import InvalidArgumentError, ReadError
from terrapipe.core.redact import public_url
from terrapipe.io import http_reads
from terrapipe.io.obstore_runtime import (
    ERROR_CODE,
    cached_store,
    denied_code,
    load_obstore,
    run_on_thread_loop,
    status_of,
    storage_or_env,
    used_in_pid,
)
from terrapipe.io.storage import Storage, cloud_of, split_url

__all__ = [
    "OBJECT_SCHEMES",
    "ObjectInfo",
    "RangeRead",
    "get",
    "get_range",
    "get_ranges",
    "head",
    "is_object_url",
    "join_url",
    "list_objects",
    "size",
]

#: URL schemes of object stores (read through obstore; everything else is HTTP or local).
OBJECT_SCHEMES = ("s3", "s3a", "az", "azure", "abfs", "abfss", "gs", "gcs")

# obstore_runtime's helpers under the names the Zarr store (io/zarr_object_store.py) calls
_storage = storage_or_env
_obstore = load_obstore


@dataclass(frozen=True)
class ObjectInfo:
    """What :func:`head` knows of an object: its size and version stamps."""

    size: int
    etag: str | None
    last_modified: Any


def is_object_url(url: str) -> bool:
    """Whether ``url`` is on an object store (``s3://``, ``az://``, ``abfs://``, ``gs://``...).

    Examples
    --------
    >>> [is_object_url(u) for u in ("s3://b/k", "gs://b/k", "https://h/k", "/tmp/k")]
    [True, True, False, False]
    """
    return "://" in url and url.split("://", 1)[0].lower() in OBJECT_SCHEMES


def join_url(base: str, href: str) -> str:
    """Resolve ``href`` against the object at ``base`` within its bucket (``..`` stays in the bucket).

    An absolute ``href`` (any scheme) is returned as given; ``/key`` is
    rooted at the bucket.

    Examples
    --------
    >>> join_url("gs://b/a/b/catalog.json", "../../../x/item.json")
    'gs://b/x/item.json'
    >>> join_url("az://c/cat.json", "https://h/x.json")
    'https://h/x.json'
    """
    if "://" in href and len(href.split("://", 1)[0]) > 1:
        return href
    parts = urllib.parse.urlsplit(base)
    directory = posixpath.dirname(parts.path) or "/"
    target = href.split("?", 1)[0].split("#", 1)[0]
    joined = target if target.startswith("/") else posixpath.join(directory, target)
    normal = posixpath.normpath("/" + joined.lstrip("/"))
    while normal.startswith("/.."):  # no climbing out of the bucket
        normal = normal[3:] or "/"
    if target.endswith("/") and not normal.endswith("/"):
        normal += "/"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, normal, "", ""))


def _locate(url: str, storage: Storage) -> tuple[Any, str]:
    """Return the store and the key of ``url`` within it."""
    text = os.fspath(url)
    cloud = cloud_of(text)
    if cloud in ("local", "file"):
        if cloud == "file":
            text = urllib.request.url2pathname(urllib.parse.urlsplit(text).path)
        path = os.path.abspath(os.path.expanduser(text))
        return cached_store(storage, "/", "/"), path.lstrip("/")
    bucket, key, account = split_url(text)
    scheme = text.split("://", 1)[0].lower()
    root = f"{scheme}://{bucket}@{account}/" if account else f"{scheme}://{bucket}/"
    return cached_store(storage, root, root), key


class _BucketScan:
    """A pickle's sink that keeps nothing and tells whether the bytes name a bucket (``s3://``...)."""

    MARKERS = tuple(f"{scheme}://".encode() for scheme in OBJECT_SCHEMES)

    def __init__(self) -> None:
        self.found = False
        self.tail = b""

    def write(self, data: bytes) -> int:
        size = memoryview(data).nbytes
        if size > 1 << 20:  # an array's buffer, written out of band of the frames: not searched, not copied
            self.tail = b""
        elif not self.found:
            window = self.tail + bytes(data)
            self.found = any(marker in window for marker in self.MARKERS)
            self.tail = window[-8:]
        return size


def worker_start_method(default: str, pipe: Any) -> str:
    """Return the start method for loader worker processes: ``"forkserver"`` for a bucket pipe after obstore ran.

    A child forked after this process used obstore cannot use it. So when
    the default is ``"fork"``, obstore ran here and ``pipe`` pickles naming a
    bucket (an ``s3://``, ``gs://``, ``az://``... URL: its items, a stage's
    URL, an opened store), workers start from the forkserver, preloaded with
    ``terrapipe`` (a script must then start the loader under ``if __name__ ==
    "__main__":``). Any other pipe is forked as before. The pipe is pickled
    into a sink that keeps nothing (``docs/storage.md``, "Loader workers and fork").

    Examples
    --------
    >>> worker_start_method("spawn", ["s3://bucket/a.tif"])
    'spawn'
    """
    if default != "fork" or os.getpid() != used_in_pid():
        return default
    scan = _BucketScan()
    try:
        pickle.Pickler(scan, protocol=pickle.HIGHEST_PROTOCOL).dump(pipe)  # arrays as buffers: no copy
    except Exception:  # lambdas, local functions, open handles: it can only be forked
        return default
    if not scan.found:
        return default
    # the forkserver imports terrapipe (and torch) once, not each worker (benchmarks/bench_worker_start.py)
    multiprocessing.get_context("forkserver").set_forkserver_preload(["terrapipe"])
    return "forkserver"


def _error(err: BaseException, url: str, storage: Storage, what: str) -> ReadError:
    """Build the :class:`ReadError` for ``err``, naming ``scheme://host/path`` and nothing secret."""
    where = public_url(url)
    text = str(err)
    status_code = status_of(text)
    code = ERROR_CODE.search(text)
    detail = ", ".join(
        x for x in (f"HTTP {status_code}" if status_code else "", code.group(1) if code else "") if x
    )
    detail = f" ({detail})" if detail else ""
    name = type(err).__name__
    cloud = cloud_of(url) if "://" in url else "local"
    if isinstance(err, TimeoutError | asyncio.TimeoutError):
        return ReadError(
            f"cannot {what} {where!r}: no answer within the deadline of {storage.deadline} s; "
            "raise Storage(deadline=...) or check the server"
        )
    denied = name in ("PermissionDeniedError", "UnauthenticatedError") or status_code in (401, 403)
    denied = denied or denied_code(text) is not None
    if storage.anonymous and status_code == 400 and cloud == "s3":
        denied = True  # some S3 servers answer an unsigned request to a private bucket with 400
    if denied:
        how = {
            "s3": "key_id/secret (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
            "azure": "account_name with account_key or sas_token (AZURE_STORAGE_*)",
            "gcs": "gcs_credentials or gcs_token (GOOGLE_APPLICATION_CREDENTIALS)",
        }.get(cloud, "the URL's signature or token")
        unsigned = " the request was unsigned (anonymous=True);" if storage.anonymous else ""
        return ReadError(
            f"cannot {what} {where!r}: access denied{detail};{unsigned} check the credentials of "
            f"tp.Storage: {how}, and that they may read this object (an expired or altered presigned "
            "or SAS URL is refused the same way)"
        )
    if isinstance(err, FileNotFoundError) or name == "NotFoundError" or status_code == 404:
        return ReadError(
            f"cannot {what} {where!r}: no such object{detail}; check the bucket and the key, and the "
            "endpoint of tp.Storage"
        )
    if status_code in (405, 501):  # a request the server lacks (the GCS emulator's HEAD), not obstore's class
        return ReadError(
            f"cannot {what} {where!r}: the server does not implement this request{detail}; real S3, GCS and "
            "Azure do (an emulator may not): use a server that does, or read the object whole"
        )
    said = name if not status_code else "the server failed" if status_code >= 500 else "the server refused it"
    return ReadError(
        f"cannot {what} {where!r}: {said}{detail}; check the endpoint and the network, or raise "
        "Storage(retries=...)"
    )


def _http_get(
    url: str, config: Storage, range: tuple[int, int] | None, deadline: float | None, cap: int | None
) -> bytes:
    """Read an HTTP(S) URL through the checked reads of :mod:`terrapipe.io.http_reads`."""
    wanted = None if range is None else http_reads.ByteRange(range[0], range[1])
    try:
        reply = http_reads.read(url, config, byte_range=wanted, deadline=deadline, max_body=cap)
    except http_reads.PastEndError as err:
        raise ReadError(f"{err} (past the end of the object?)") from None
    body = reply.found(url).body
    # A range running past the end comes back short (a 206 of the bytes there are): as a local or bucket read
    return body if range is None else _exact(body, range[0], range[1], public_url(url))


def _exact(data: bytes, start: int, end: int, where: str, whole: bool = False) -> bytes:
    """Return ``data``, checked to be all the bytes ``start`` to ``end`` (exclusive; ``whole``: of the object)."""
    if len(data) == end - start:
        return data
    if whole:
        raise ReadError(f"cannot read {where!r}: got {len(data)} bytes of {end}; read again")
    raise ReadError(
        f"cannot read bytes {start}-{end} of {where!r}: got {len(data)} bytes, not {end - start} "
        "(past the end of the object?)"
    )


def get(
    url: str,
    storage: Storage | None = None,
    *,
    range: tuple[int, int] | None = None,
    deadline: float | None = None,
    max_bytes: int | None = None,
) -> bytes:
    """Return the bytes of ``url`` (all of them, or ``range=(start, end)``, end exclusive): exactly those.

    ``url``: an object URL, an HTTP(S) URL (presigned and SAS included) or a
    local path; ``storage``: the configuration (default ``Storage.from_env()``);
    ``deadline``: seconds the whole read may take (default ``storage.deadline``);
    ``max_bytes``: refuse a larger object, before its body is read (default
    ``storage.max_bytes``). No such object, access denied, a time-out, a short
    or wrong-sized answer or an object over ``max_bytes`` is a :class:`ReadError`.
    """
    config = storage_or_env(storage)
    cap = max_bytes if max_bytes is not None else config.max_bytes
    limit = deadline if deadline is not None else config.deadline
    where = public_url(url)
    if range is not None:
        start, end = (int(range[0]), int(range[1]))
        if start < 0 or end <= start:
            raise InvalidArgumentError(f"range must be (start, end) with 0 <= start < end, got {range!r}")
        if cap is not None and end - start > cap:
            raise ReadError(
                f"cannot read {where!r}: the range of {end - start} bytes is over the cap of {cap}"
            )
    if cloud_of(url) == "http":
        return _http_get(url, config, range, limit, cap)
    obs = load_obstore()
    store, key = _locate(url, config)

    async def read() -> bytes:
        if range is not None:
            return bytes(await obs.get_range_async(store, key, start=start, end=end))
        result = await obs.get_async(store, key)
        expected = int(result.meta["size"])
        if cap is not None and expected > cap:  # refused before the body is read
            raise ReadError(
                f"cannot read {where!r}: the object is {expected} bytes, over the cap of {cap}; "
                "raise max_bytes if it is expected"
            )
        return _exact(bytes(await result.bytes_async()), 0, expected, where, whole=True)

    try:
        data = run_on_thread_loop(read(), limit)
    except (ReadError, InvalidArgumentError):
        raise
    except Exception as err:  # obstore's errors (and time-outs): named, without the signed URL
        if "NotPartial" in str(err) or "non-partial" in str(err):
            raise ReadError(
                f"cannot read bytes {start}-{end} of {where!r}: the server answered the range with the whole "
                "object (status 200, not 206); it does not support range requests correctly"
            ) from None
        raise _error(err, url, config, "read") from None
    return data if range is None else _exact(data, start, end, where)


def get_ranges(
    url: str,
    ranges: list[tuple[int, int]],
    storage: Storage | None = None,
    *,
    deadline: float | None = None,
) -> list[bytes]:
    """Return the bytes of several ``(start, end)`` ranges of ``url`` (end exclusive), in their order.

    The requests run concurrently and nearby ranges are merged into one
    request (obstore's ``get_ranges``); each answer is checked to be exactly
    its range.

    Raises
    ------
    ReadError
        As :func:`get`, or when a range comes back short (past the end of the object).
    """
    config = storage_or_env(storage)
    limit = deadline if deadline is not None else config.deadline
    where = public_url(url)
    for start, end in ranges:
        if start < 0 or end <= start:
            raise InvalidArgumentError(
                f"ranges must be (start, end) with 0 <= start < end, got {(start, end)!r}"
            )
    if not ranges:
        return []
    if cloud_of(url) == "http":  # one checked request per range, concurrently
        bounds = [(int(a), int(b)) for a, b in ranges]
        if len(bounds) == 1:
            return [_http_get(url, config, bounds[0], limit, None)]
        with concurrent.futures.ThreadPoolExecutor(min(len(bounds), config.concurrency)) as pool:
            return list(pool.map(lambda b: _http_get(url, config, b, limit, None), bounds))
    obs = load_obstore()
    store, key = _locate(url, config)
    starts = [int(r[0]) for r in ranges]
    ends = [int(r[1]) for r in ranges]

    async def read() -> list[Any]:
        return list(await obs.get_ranges_async(store, key, starts=starts, ends=ends))

    try:
        parts = run_on_thread_loop(read(), limit)
    except BaseException as err:  # a body shorter than its range makes obstore panic (PanicException)
        if isinstance(err, KeyboardInterrupt | SystemExit):
            raise
        raise _error(err, url, config, "read") from None
    return [_exact(bytes(p), start, end, where) for p, (start, end) in zip(parts, ranges, strict=True)]


@dataclass(frozen=True)
class RangeRead:
    """What :func:`get_range` read: the bytes, and the object's size and ``ETag`` as the answer stated them."""

    body: bytes
    size: int
    etag: str | None


def get_range(url: str, storage: Storage | None, start: int, end: int) -> RangeRead:
    """Read bytes ``start`` to ``end`` (exclusive) of a bucket object with its size and ``ETag``: exactly those.

    ``end`` past the object's end gives the bytes there are. Callers compare
    the ``ETag`` of each read with the first one's: an object replaced between
    reads (even by one of the same size) is then refused, not mixed.
    Any answer but the range asked for (clipped to the size) is a
    :class:`ReadError`, as are no such object, access denied and a time-out.
    """
    config = storage_or_env(storage)
    obs = load_obstore()
    store, key = _locate(url, config)

    async def read() -> tuple[bytes, int, str | None, tuple[int, int]]:
        result = await obs.get_async(store, key, options={"range": (start, end)})
        got = (int(result.range[0]), int(result.range[1]))
        return bytes(await result.bytes_async()), int(result.meta["size"]), result.meta.get("e_tag"), got

    try:
        body, size, etag, got = run_on_thread_loop(read(), config.deadline)
    except ReadError:
        raise
    except Exception as err:  # obstore's errors (a range past the end included): named, without a signature
        raise _error(err, url, config, "read") from None
    if got != (start, min(end, size)) or len(body) != got[1] - got[0]:
        raise ReadError(
            f"cannot read bytes {start}-{end} of {public_url(url)!r}: the store answered bytes {got[0]}-{got[1]} "
            f"({len(body)} bytes); check the endpoint"
        )
    return RangeRead(body, size, etag)


def head(url: str, storage: Storage | None = None) -> ObjectInfo:
    """Return the size and version stamps of ``url`` (one HEAD request; not for GET-only presigned URLs).

    Raises
    ------
    ReadError
        No such object, access denied, a time-out.
    """
    config = storage_or_env(storage)
    if cloud_of(url) == "http":
        reply = http_reads.read(url, config, method="HEAD").found(url, what="look up", sized=True)
        assert reply.total is not None
        return ObjectInfo(reply.total, reply.headers.get("etag"), reply.headers.get("last-modified"))
    obs = load_obstore()
    store, key = _locate(url, config)

    async def look() -> Any:
        return await obs.head_async(store, key)

    try:
        meta = run_on_thread_loop(look(), config.deadline)
    except Exception as err:
        raise _error(err, url, config, "look up") from None
    return ObjectInfo(size=int(meta["size"]), etag=meta.get("e_tag"), last_modified=meta.get("last_modified"))


def size(url: str, storage: Storage | None = None) -> int:
    """Return the size of ``url`` in bytes (see :func:`head`)."""
    return head(url, storage).size


def list_objects(prefix: str, storage: Storage | None = None, *, max_items: int = 100_000) -> list[str]:
    """Return the URLs of the objects under ``prefix`` (``s3://bucket/prefix/``, ``gs://``, a folder...), sorted.

    More than ``max_items`` objects is a :class:`ReadError` (a listing is never
    silently cut), as are access denied, no such bucket and a time-out.
    """
    obs = load_obstore()
    config = storage_or_env(storage)
    if "://" not in prefix or cloud_of(prefix) in ("file", "local"):
        root = os.path.abspath(os.path.expanduser(urllib.request.url2pathname(prefix.split("://", 1)[-1])))
        found: list[str] = []
        for folder, _, files in os.walk(root):
            found.extend(os.path.join(folder, name) for name in files)
            if len(found) > max_items:
                raise ReadError(f"cannot list {root!r}: more than {max_items} files; raise max_items")
        return sorted(found)
    if cloud_of(prefix) == "http":
        raise InvalidArgumentError(f"cannot list {public_url(prefix)!r}: an HTTP server has no listing")
    store, key = _locate(prefix, config)
    scheme, netloc = urllib.parse.urlsplit(prefix)[:2]

    async def collect() -> list[str]:
        out: list[str] = []
        async for batch in obs.list(store, prefix=key or None, chunk_size=1000):
            out.extend(f"{scheme}://{netloc}/{meta['path']}" for meta in batch)
            if len(out) > max_items:
                raise ReadError(
                    f"cannot list {public_url(prefix)!r}: more than {max_items} objects; raise max_items"
                )
        return out

    try:
        return sorted(run_on_thread_loop(collect(), config.deadline))
    except ReadError:
        raise
    except Exception as err:
        raise _error(err, prefix, config, "list") from None
