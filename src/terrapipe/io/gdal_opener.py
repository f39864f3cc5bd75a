"""Remote rasters read by GDAL through terrapipe's byte layer: rasterio's ``opener``.

GDAL's own network layer (``/vsicurl/``) takes a ``206`` whose
``Content-Range`` is not the range it asked for (wrong pixels, silently),
does not notice a file replaced between its requests, and sends the
credentials of ``GDAL_HTTP_HEADERS`` wherever curl goes (a redirect's host;
a reader thread keeps them as a thread-local option). So a raster at an
``http(s)://`` URL is opened with ``rasterio.open(name, opener=...)``
(:func:`open_dataset`): GDAL gets a name without URL, query or credential,
and reads every byte through Python callbacks served by
:mod:`terrapipe.io.http_reads` (each range checked, ``Content-Range``
compared, a size or ``ETag`` change refused, one deadline per request, the
storage's headers only to their origin, retries).

What the callbacks serve (:class:`RemoteBytes`, one per URL and open):

- small plain reads (the header, the tile index) from blocks of
  :data:`BLOCK_BYTES` (a larger one, a tile read by itself, is fetched
  exactly and not kept), consecutive missing blocks in one request, at most
  :data:`MAX_CACHED_BLOCKS` of them kept per file, shared by every open of
  it in the process (each reader thread opens its own handle; at most
  :data:`MAX_SHARED_FILES` files, as GDAL's ``/vsicurl/`` cache is shared;
  GDAL's block cache holds the decoded tiles above); a new open asks for
  the first block again (:func:`current`): a file replaced at the server
  since gets fresh bytes, and a version of its own in the
  :class:`~terrapipe.io.raster_array.RasterSource` (no handle of the old
  file serves it);
- GDAL's multi-range reads (the tiles of a window: one call) as ranged GETs,
  ranges less than :data:`MERGE_GAP` apart merged, the requests run at once
  on this process's pool (``Storage.concurrency`` per read).

A failed request cannot be raised through GDAL (rasterio's callbacks would
leave the exception pending): the callback returns no bytes (a plain read)
or zeros (a multi-range read) and the opener keeps the failure;
:func:`failure_of` hands it to :func:`terrapipe.io.raster_array.attempt`
after every operation, which refuses the read with it (``ReadError`` naming
``scheme://host/path``) and closes the handle, so GDAL's copy of those zeros
goes with it. The failure stays with the dataset: one GDAL went on from
(an overview or a mask directory it could not read is "none" to GDAL) is
refused at its next read too.

Side-cars (``.aux.xml``, ``.msk``, ``.ovr``): the folder GDAL lists holds the
file alone (no side-car asked for), or, where side-cars are read
(``sidecars=True``), nothing: GDAL then asks for each side-car name, and each
is looked up with one ranged ``GET`` through the byte layer (remembered per
process until :func:`forget` of the file). A URL with a query string signs
the file only: no side-car is asked for there.

rasterio keeps its openers in context variables, one dict per thread; a
handle opened on one thread and closed on another (a thread's handles closed
at its end, a garbage collection) would not be found.
:func:`terrapipe._compat.share_rasterio_opener_registries` gives the process
one dict of each (rasterio 1.4's private names, reached there only).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import itertools
import os
import posixpath
import threading
import urllib.parse
import weakref
from collections import OrderedDict
from typing import Any

from rasterio.abc import MultiByteRangeResourceContainer

from terrapipe._compat import share_rasterio_opener_registries
from terrapipe.core.errors import ReadError
from terrapipe.core.per_process import PerProcess
from terrapipe.core.redact import public_url
from terrapipe.io import http_reads
from terrapipe.io.gdal_env import NETCDF_HDF_EXTENSIONS
from terrapipe.io.storage import Storage

__all__ = [
    "BLOCK_BYTES",
    "MAX_CACHED_BLOCKS",
    "MAX_SHARED_FILES",
    "MERGE_GAP",
    "OpenFailedError",
    "RemoteBytes",
    "RemoteOpener",
    "current",
    "current_soon",
    "failure_of",
    "forget",
    "held_version",
    "open_dataset",
    "probe",
    "probe_soon",
    "uses_opener",
]

#: Bytes of one block of plain reads (the first one also gives the file's size).
BLOCK_BYTES = 16 * 1024
#: Blocks of plain reads kept per remote file (2 MiB; all opens of it share them).
MAX_CACHED_BLOCKS = 128
#: Ranges of one multi-range read closer than this are fetched in one request.
MERGE_GAP = 64 * 1024
#: Side-car answers remembered per process.
_MAX_PROBES = 4096
#: Remote files whose size, ETag and plain-read blocks the process keeps for every open of them
#: (each thread opens its own handle: without this, each open asked the server for the header again).
MAX_SHARED_FILES = 32


#: GDAL's bucket file systems a raster read through the byte layer may have been named with.
_BUCKET_NAMES = ("/vsis3/", "/vsigs/", "/vsiaz/", "/vsiadls/")
_BUCKET_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "azure", "abfs", "abfss")


def uses_opener(path: str, name: str, storage: Storage | None = None) -> bool:
    """Whether the raster ``path`` (GDAL name ``name``) is read through the byte layer.

    An ``http(s)://`` URL that :func:`~terrapipe.io.paths.gdal_path` gives as
    ``/vsicurl?`` (not a GeoPackage, SQLite or netCDF file), and a bucket URL
    (``s3://``, ``gs://``, ``az://``) read with a ``storage`` (without one,
    GDAL's own configuration applies); never a VRT (whose sources GDAL opens
    itself: :mod:`terrapipe.io.remote_sources`).

    Examples
    --------
    >>> uses_opener("https://h/a.tif", "/vsicurl?empty_dir=yes&url=https%3A%2F%2Fh%2Fa.tif")
    True
    >>> uses_opener("https://h/a.vrt", "/vsicurl?empty_dir=yes&url=x"), uses_opener("a.tif", "/d/a.tif")
    (False, False)
    >>> uses_opener("https://h/sst.nc", "/vsicurl?empty_dir=yes&url=x")  # GDAL's netCDF driver: its own /vsicurl/
    False
    >>> uses_opener("s3://b/a.tif", "/vsis3/b/a.tif"), uses_opener("s3://b/a.tif", "/vsis3/b/a.tif", Storage())
    (False, True)
    """
    scheme = path.split("://", 1)[0].lower() if "://" in path else ""
    if name.startswith("/vsicurl?"):
        ok = scheme in ("http", "https")
    elif name.startswith(_BUCKET_NAMES):
        ok = storage is not None and scheme in _BUCKET_SCHEMES
    else:
        return False
    ending = urllib.parse.urlsplit(path).path.lower()
    # a VRT's sources GDAL opens itself; a netCDF/HDF file GDAL's netCDF driver maps with userfaultfd,
    # whose thread would call the opener while a close holds the GIL (see _NETCDF_SIGNATURES)
    return ok and not ending.endswith((".vrt", *NETCDF_HDF_EXTENSIONS))


def _gdal_storage(storage: Storage | None) -> Storage:
    """Return the storage of a read without one: the environment's, with GDAL's time-out and retries if set."""
    if storage is not None:
        return storage
    from terrapipe.io.gdal_env import _configured

    changes: dict[str, Any] = {}
    timeout = _configured("GDAL_HTTP_TIMEOUT")
    retries = _configured("GDAL_HTTP_MAX_RETRY")
    try:
        if timeout is not None and float(timeout) > 0:  # curl's limit on a whole request
            changes["timeout"] = changes["deadline"] = float(timeout)
        if retries is not None:
            changes["retries"] = max(0, int(retries))
    except ValueError:
        pass
    base = Storage.from_env()
    return base.with_options(**changes) if changes else base


#: Numbers the opens (the folder of each name GDAL gets).
_OPENS = itertools.count()
#: The open files' openers by the name GDAL has (``tp/<id>/<file name>``): gone with the dataset.
_OPENERS: weakref.WeakValueDictionary[str, RemoteOpener] = weakref.WeakValueDictionary()


def failure_of(dataset: Any) -> BaseException | None:
    """Return the first failure of the byte layer under GDAL for ``dataset`` (any read since its open), or ``None``.

    A failed read hands GDAL no bytes or zeros; GDAL may go on without them
    (an overview or a mask directory it could not read is "none"): the
    dataset is not to be read from again, nor what it gave trusted.
    """
    name = str(getattr(dataset, "name", ""))
    if not name.startswith("/vsiriopener_"):
        return None
    opener = _OPENERS.get(name.split("/", 2)[-1])
    return None if opener is None else opener.failure


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    return _POOL.get()


_POOL: PerProcess[concurrent.futures.ThreadPoolExecutor] = PerProcess(
    lambda: concurrent.futures.ThreadPoolExecutor(32, "terrapipe-gdal-ranges")
)


class RemoteBytes:
    """One remote file as GDAL reads it: checked ranged reads, its size, a bounded block cache.

    Parameters
    ----------
    url
        The ``http(s)://`` URL (a query string is sent, never shown).
    storage
        Headers, time-outs, deadline, retries, cap.
    first
        The first block and the file's size, ``(bytes, size, etag)``, when already read.

    Raises
    ------
    ReadError
        When the first block cannot be read (no such file, refused, no answer).
    """

    def __init__(
        self, url: str, storage: Storage, first: tuple[bytes, int, str | None] | None = None
    ) -> None:
        self.url = url
        self.storage = storage
        self._lock = threading.Lock()
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        if first is None:
            first = _first_block(url, storage)
        body, self.size, self.etag = first
        if body:
            self._blocks[0] = body
        # what tells this file from another at its URL: its size, ETag and first block (a server whose ETag is
        # its mtime and size, nginx's, gives a file replaced by one of the same size and mtime the same ETag)
        digest = hashlib.sha256(body).hexdigest()
        self.version: tuple[int, str, str] = (self.size, self.etag or "", digest)

    def __repr__(self) -> str:
        return f"RemoteBytes({public_url(self.url)!r}, size={self.size})"

    def _get(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive), one checked ranged GET: the same file (size, ETag) or a ReadError."""
        if not _is_http(self.url):
            body, size, etag = _bucket_range(self.url, self.storage, start, end)
            if size != self.size:
                raise ReadError(
                    f"cannot read {public_url(self.url)!r}: the object's size changed from {self.size} to {size} "
                    "bytes between requests (replaced while being read?); open it again"
                )
        else:
            reply = http_reads.read(
                self.url, self.storage, byte_range=http_reads.ByteRange(start, end), expected_total=self.size
            ).found(self.url, hint="was it removed?")
            body, etag = reply.body, reply.headers.get("etag")
        if self.etag is not None and etag is not None and etag != self.etag:
            raise ReadError(
                f"cannot read {public_url(self.url)!r}: the file changed between requests (ETag {self.etag} "
                f"then {etag}: replaced while being read?); open it again"
            )
        if len(body) != end - start:
            raise ReadError(
                f"cannot read bytes {start}-{end} of {public_url(self.url)!r}: got {len(body)} bytes"
            )
        return body

    def read_at(self, offset: int, nbytes: int) -> bytes:
        """Return up to ``nbytes`` bytes from ``offset`` (fewer at the end of the file), through the block cache."""
        end = min(self.size, offset + max(0, nbytes))
        if offset >= end:
            return b""
        if end - offset > 2 * BLOCK_BYTES:  # a tile read by itself: exactly it, kept by GDAL's block cache
            kept = self.cached(offset, end - offset)
            return kept if kept is not None else self._get(offset, end)
        first, last = offset // BLOCK_BYTES, (end - 1) // BLOCK_BYTES
        with self._lock:
            have = {i: self._blocks[i] for i in range(first, last + 1) if i in self._blocks}
            for i in have:
                self._blocks.move_to_end(i)
        missing = [i for i in range(first, last + 1) if i not in have]
        runs: list[list[int]] = []
        for i in missing:  # consecutive missing blocks: one request
            if runs and runs[-1][-1] == i - 1:
                runs[-1].append(i)
            else:
                runs.append([i])
        for run in runs:
            start, stop = run[0] * BLOCK_BYTES, min(self.size, (run[-1] + 1) * BLOCK_BYTES)
            data = self._get(start, stop)
            for i in run:
                have[i] = data[(i - run[0]) * BLOCK_BYTES : (i - run[0] + 1) * BLOCK_BYTES]
        with self._lock:
            for i in missing:
                self._blocks[i] = have[i]
            while len(self._blocks) > MAX_CACHED_BLOCKS:
                self._blocks.popitem(last=False)
        joined = b"".join(have[i] for i in range(first, last + 1))
        skip = offset - first * BLOCK_BYTES
        return joined[skip : skip + end - offset]

    def cached(self, offset: int, nbytes: int) -> bytes | None:
        """Return the bytes when every block they lie in is cached, else ``None`` (no request)."""
        first, last = offset // BLOCK_BYTES, (offset + nbytes - 1) // BLOCK_BYTES
        with self._lock:
            if not all(i in self._blocks for i in range(first, last + 1)):
                return None
            joined = b"".join(self._blocks[i] for i in range(first, last + 1))
        skip = offset - first * BLOCK_BYTES
        return joined[skip : skip + nbytes]

    def read_ranges(self, offsets: list[int], sizes: list[int]) -> list[bytes]:
        """Return the bytes of each range (exactly ``sizes[i]`` each), nearby ones merged, fetched at once."""
        out: list[bytes | None] = [None] * len(offsets)
        wanted: list[tuple[int, int, int]] = []  # (start, end, index)
        for index, (start, size) in enumerate(zip(offsets, sizes, strict=True)):
            if size <= 0:
                out[index] = b""
                continue
            if start + size > self.size:
                raise ReadError(
                    f"cannot read bytes {start}-{start + size} of {public_url(self.url)!r}: past its end "
                    f"({self.size} bytes; a damaged or truncated file?)"
                )
            kept = self.cached(start, size)
            if kept is not None:
                out[index] = kept
            else:
                wanted.append((start, start + size, index))
        wanted.sort()
        groups: list[list[tuple[int, int, int]]] = []
        for item in wanted:
            if groups and item[0] - max(end for _, end, _ in groups[-1]) <= MERGE_GAP:
                groups[-1].append(item)
            else:
                groups.append([item])
        spans = [(group[0][0], max(end for _, end, _ in group)) for group in groups]
        if len(spans) == 1:
            bodies = [self._get(*spans[0])]
        elif spans:
            futures = [_pool().submit(self._get, start, end) for start, end in spans]
            bodies = [future.result() for future in futures]
        else:
            bodies = []
        for (span_start, _), body, group in zip(spans, bodies, groups, strict=True):
            for start, end, index in group:
                out[index] = body[start - span_start : end - span_start]
        return [b"" if part is None else part for part in out]


def _is_http(url: str) -> bool:
    return url.split("://", 1)[0].lower() in ("http", "https")


def _bucket_range(url: str, storage: Storage, start: int, end: int) -> tuple[bytes, int, str | None]:
    """Read bytes ``start`` to ``end`` of a bucket object through obstore: ``(bytes, object size, ETag)``.

    ``end`` past the object's end gives the bytes there are (the first block of a small object);
    :func:`terrapipe.io.object_store.get_range` checks the range answered.
    """
    from terrapipe.io.object_store import get_range

    got = get_range(url, storage, start, end)
    return got.body, got.size, got.etag


def _first_block(url: str, storage: Storage, deadline: float | None = None) -> tuple[bytes, int, str | None]:
    """Read the first block of ``url``: its bytes, the file's size and ``ETag`` (ReadError: not there)."""
    if not _is_http(url):
        return _bucket_range(url, storage, 0, BLOCK_BYTES)
    try:
        reply = http_reads.read(
            url, storage, byte_range=http_reads.ByteRange(0, BLOCK_BYTES), deadline=deadline
        )
    except http_reads.PastEndError:  # an empty file
        return b"", 0, None
    reply = reply.found(url, sized=True)
    assert reply.total is not None
    expected = min(BLOCK_BYTES, reply.total)
    if len(reply.body) != expected:
        raise ReadError(
            f"cannot read {public_url(url)!r}: got {len(reply.body)} of its first {expected} bytes"
        )
    return reply.body, reply.total, reply.headers.get("etag")


class _Kept:
    """What the process keeps of remote files: side-car answers and the files' shared bytes, and their lock.

    One per process (:class:`~terrapipe.core.per_process.PerProcess`): a forked child starts with
    none, and with a lock no parent thread held at the fork (a reader thread inside a read while
    the parent forked a DataLoader worker would have left it held for ever in the child).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # side-car URL (with the storage as given) -> its first block, size and ETag, or None (not there)
        self.probes: OrderedDict[tuple[str, Storage | None], tuple[bytes, int, str | None] | None] = (
            OrderedDict()
        )
        # (URL, storage as given) -> the file's bytes all its opens share (its size and ETag: one file)
        self.files: OrderedDict[tuple[str, Storage | None], RemoteBytes] = OrderedDict()
        # side-car look-ups under way (probe_soon): a probe of the same name waits for its answer
        self.pending: dict[tuple[str, Storage | None], concurrent.futures.Future[Any]] = {}


_KEPT: PerProcess[_Kept] = PerProcess(_Kept)
#: Answers that say a side-car is not there (as GDAL drops it locally): S3 answers 403 for a key a caller may not list.
_ABSENT = ("HTTP 404", "no such object", "access denied", "HTTP 410", "(HTTP 403", "(HTTP 401")


def probe(
    url: str, storage: Storage | None, deadline: float | None = None
) -> tuple[bytes, int, str | None] | None:
    """Return the first block, size and ETag of a side-car ``url``, or ``None`` when it is not there (remembered).

    One ranged ``GET`` (``deadline``: seconds it may take, retries included). A 404 or 410 is
    'not there'; so is a 401 or 403 (S3 answers 403 for a key a caller may not list) unless a
    ``HEAD`` then says it is there (a server that lists a file it will not send: a ReadError, as
    GDAL would drop it silently). A look-up :func:`probe_soon` started is waited for, not asked again.

    Raises
    ------
    ReadError
        No answer (time-out, refused connection, ``5xx`` after the retries): whether it is there
        is unknown; or there but refused.
    """
    key = (url, storage)
    kept = _KEPT.get()
    with kept.lock:
        if key in kept.probes:
            kept.probes.move_to_end(key)
            return kept.probes[key]
        pending = kept.pending.get(key)
    if pending is not None:
        result: tuple[bytes, int, str | None] | None = pending.result()
        return result
    found = _look_up(url, storage, deadline)
    _remember(kept, key, found)
    return found


def probe_soon(url: str, storage: Storage | None, deadline: float | None = None) -> None:
    """Start :func:`probe` of the side-car ``url`` on the process's pool, unless answered or under way.

    The side-cars of a raster are looked up at once, and while the raster itself is
    opened (:func:`terrapipe.io.sidecars.start_probes`), instead of one request after
    another: each costs a round trip. A look-up that fails is not remembered (the
    :func:`probe` that waits for it raises its error; none may, when the side-car is
    not needed after all).
    """
    key = (url, storage)
    kept = _KEPT.get()
    with kept.lock:
        if key in kept.probes or key in kept.pending:
            return
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        kept.pending[key] = future

    def run() -> None:
        try:
            found = _look_up(url, storage, deadline)
        except BaseException as err:  # handed to the probe that waits for it
            with kept.lock:
                if kept.pending.get(key) is future:
                    del kept.pending[key]
            future.set_exception(err)
            return
        with kept.lock:
            if kept.pending.get(key) is future:  # not forgotten meanwhile
                del kept.pending[key]
                _remember(kept, key, found, locked=True)
        future.set_result(found)

    _pool().submit(run)


def _look_up(
    url: str, storage: Storage | None, deadline: float | None
) -> tuple[bytes, int, str | None] | None:
    """Ask for the side-car ``url``: its first block, size and ETag, or ``None`` (not there): :func:`probe`'s request."""
    resolved = _gdal_storage(storage)
    try:
        return _first_block(url, resolved, deadline)
    except ReadError as err:
        text = str(err)
        if not any(word in text for word in _ABSENT):
            raise
        if "access denied" in text:
            try:
                listed = http_reads.read(url, resolved, method="HEAD", deadline=deadline).status == 200
            except ReadError:
                listed = False
            if listed:
                raise ReadError(f"{text} (a HEAD of it says it is there)") from None
        return None


def _remember(
    kept: _Kept,
    key: tuple[str, Storage | None],
    found: tuple[bytes, int, str | None] | None,
    *,
    locked: bool = False,
) -> None:
    """Keep a side-car's answer for the process (at most ``_MAX_PROBES``; ``locked``: the caller holds the lock)."""
    with contextlib.nullcontext() if locked else kept.lock:
        kept.probes[key] = found
        kept.probes.move_to_end(key)
        while len(kept.probes) > _MAX_PROBES:
            kept.probes.popitem(last=False)


def _shared(url: str, storage: Storage | None, resolved: Storage) -> RemoteBytes:
    """Return the process's :class:`RemoteBytes` of ``url`` read with ``storage`` (made, and its first block read, if none)."""
    key = (url, storage)
    kept = _KEPT.get()
    with kept.lock:
        found = kept.files.get(key)
        if found is not None:
            kept.files.move_to_end(key)
            return found
    made = RemoteBytes(url, resolved)  # outside the lock: a request
    with kept.lock:
        found = kept.files.setdefault(key, made)
        kept.files.move_to_end(key)
        while len(kept.files) > MAX_SHARED_FILES:
            kept.files.popitem(last=False)
    return found


def current(url: str, storage: Storage | None) -> RemoteBytes:
    """Return the process's :class:`RemoteBytes` of ``url`` for a new open: the file now at the URL.

    Where the process keeps the file from an earlier open, its first block is
    asked for again (one request): another size, ETag or first 16 KiB is
    another file (replaced at the server since), whose bytes replace the kept
    ones, and the side-car answers are forgotten. Its :attr:`RemoteBytes.version`
    goes into the :class:`~terrapipe.io.raster_array.RasterSource`, so no
    handle opened on the old file serves the new open.

    Raises
    ------
    ReadError
        The first block cannot be read (no such file, refused, no answer).
    """
    key = (url, storage)
    kept = _KEPT.get()
    resolved = _gdal_storage(storage)
    with kept.lock:
        found = kept.files.get(key)
    if found is None:
        return _shared(url, storage, resolved)
    fresh = RemoteBytes(url, resolved, _first_block(url, resolved))
    if fresh.version == found.version:
        return found
    forget(url)
    with kept.lock:
        kept.files[key] = fresh
        while len(kept.files) > MAX_SHARED_FILES:
            kept.files.popitem(last=False)
    return fresh


def held_version(url: str, storage: Storage | None) -> tuple[int, str, str] | None:
    """Return the :attr:`RemoteBytes.version` of ``url`` the process keeps from an earlier open, or ``None`` (no request)."""
    kept = _KEPT.get()
    with kept.lock:
        found = kept.files.get((url, storage))
    return None if found is None else found.version


def current_soon(url: str, storage: Storage | None) -> concurrent.futures.Future[RemoteBytes]:
    """Run :func:`current` on the byte layer's pool (an open from the kept bytes goes on meanwhile)."""
    return _pool().submit(current, url, storage)


def forget(url: str) -> None:
    """Forget what the process keeps of the file ``url`` and its side-cars (it changed, or a read of it failed)."""
    kept = _KEPT.peek()
    if kept is None:
        return
    with kept.lock:
        for key in [k for k in kept.probes if k[0].startswith(url)]:
            del kept.probes[key]
        for key in [k for k in kept.pending if k[0].startswith(url)]:  # its answer is not kept
            del kept.pending[key]
        for key in [k for k in kept.files if k[0] == url]:
            del kept.files[key]


class _File:
    """The file object GDAL reads (rasterio's callbacks): never raises; a failure is kept for :func:`failure_of`."""

    def __init__(self, data: RemoteBytes, owner: RemoteOpener) -> None:
        self._data = data
        self._owner = owner
        self._pos = 0

    def __enter__(self) -> _File:
        return self

    def __exit__(self, *args: object) -> None:
        return None

    def close(self) -> None:
        """Nothing to release: connections belong to the process's pool."""

    def tell(self) -> int:
        """Return the position."""
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move to ``offset`` from the start, the position or the end."""
        if whence == os.SEEK_CUR:
            offset += self._pos
        elif whence == os.SEEK_END:
            offset += self._data.size
        self._pos = max(0, offset)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        """Read ``size`` bytes (a failure: none, kept for :func:`failure_of`)."""
        nbytes = self._data.size - self._pos if size is None or size < 0 else size
        try:
            data = self._data.read_at(self._pos, nbytes)
        except Exception as err:  # GDAL sees a short read; the reader raises the failure kept
            self._owner.fail(err)
            return b""
        self._pos += len(data)
        return data

    def get_byte_ranges(self, offsets: list[int], sizes: list[int]) -> list[bytes]:
        """GDAL's multi-range read (a failure: zeros of each size, the failure kept and raised by the reader)."""
        try:
            return self._data.read_ranges(offsets, sizes)
        except Exception as err:
            self._owner.fail(err)
            return [bytes(int(size)) for size in sizes]


class RemoteOpener(MultiByteRangeResourceContainer):  # type: ignore[misc]
    """rasterio's opener for one remote raster: its file, and its side-cars where asked for.

    Parameters
    ----------
    url
        The raster's ``http(s)://`` URL.
    storage
        How to reach it (``None``: the environment's, GDAL's time-out and retries).
    name
        The name GDAL opens (``tp/<id>/<file name>``): its folder holds the file's side-cars.
    sidecars
        Whether GDAL may ask for side-cars (each looked up once per process).
    """

    def __init__(self, url: str, storage: Storage | None, name: str, *, sidecars: bool) -> None:
        self.url = url
        self.storage = storage
        self.name = name
        self.sidecars = sidecars and not urllib.parse.urlsplit(url).query
        self._resolved = _gdal_storage(storage)
        self._main: RemoteBytes | None = None
        self.failure: BaseException | None = None

    def fail(self, err: BaseException) -> None:
        """Keep the first failure (raised by the reader: :func:`failure_of`)."""
        if self.failure is None:
            self.failure = err

    def _url_of(self, path: str) -> str | None:
        """Return the URL of the GDAL name ``path``: the file's, a side-car's next to it, or ``None``."""
        if path == self.name:
            return self.url
        if not self.sidecars or posixpath.dirname(path) != posixpath.dirname(self.name):
            return None
        parts = urllib.parse.urlsplit(self.url)
        folder = parts.path.rsplit("/", 1)[0]
        leaf = posixpath.basename(path)
        sibling = urllib.parse.quote(leaf) if _is_http(self.url) else leaf  # a bucket's key as it is
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, f"{folder}/{sibling}", "", ""))

    def _bytes(self, path: str) -> RemoteBytes | None:
        url = self._url_of(path)
        if url is None:
            return None
        if url == self.url:
            if self._main is None:
                self._main = _shared(url, self.storage, self._resolved)
            return self._main
        first = probe(url, self.storage)
        return None if first is None else RemoteBytes(url, self._resolved, first)

    def open(self, path: str, mode: str = "rb", **kwds: Any) -> _File:
        """Open ``path`` for reading (a missing side-car: ``FileNotFoundError``)."""
        if "r" not in mode:
            raise PermissionError(f"{public_url(self.url)!r} is read-only")
        return _File(self._found(path), self)

    def _found(self, path: str) -> RemoteBytes:
        """Return the bytes of ``path``, or raise ``FileNotFoundError`` (a failure kept for the reader)."""
        try:
            data = self._bytes(path)
        except Exception as err:  # raised by the reader (failure_of), not through GDAL
            self.fail(err)
            raise FileNotFoundError(path) from None
        if data is None:
            raise FileNotFoundError(path)
        return data

    def isfile(self, path: str) -> bool:
        """Whether ``path`` is the file or a side-car found."""
        try:
            return self._bytes(path) is not None
        except Exception as err:  # raised by the reader (failure_of), not through GDAL
            self.fail(err)
            return False

    def isdir(self, path: str) -> bool:
        """Whether ``path`` is the file's folder."""
        return path == posixpath.dirname(self.name)

    def ls(self, path: str) -> list[str]:
        """Return the folder's listing: the file alone (no side-car asked for), or nothing (GDAL asks for each)."""
        return [] if self.sidecars else [posixpath.basename(self.name)]

    def mtime(self, path: str) -> int:
        """No modification time is known."""
        return 0

    def rm(self, path: str) -> None:
        """Refuse: remote rasters are read-only."""
        raise PermissionError(f"{public_url(self.url)!r} is read-only")

    def size(self, path: str) -> int:
        """Return the size of ``path`` (``FileNotFoundError``: not there)."""
        if path == "test":  # rasterio's check that the opener works
            raise FileNotFoundError(path)
        return self._found(path).size


_SHARED: list[bool] = []
_SHARE_LOCK = threading.Lock()


def _share_registries() -> None:
    """Share rasterio's opener registries across threads, once per process (see the module's doc)."""
    if _SHARED:
        return
    with _SHARE_LOCK:  # one thread replaces them: two at once could each keep an opener the other drops
        if not _SHARED:
            share_rasterio_opener_registries()
            _SHARED.append(True)


#: First bytes of files GDAL's netCDF driver opens (netCDF-3 CDF-1/2/5, HDF5 and so netCDF-4, HDF4). That
#: driver maps a /vsi file with userfaultfd, served by a thread of its own that calls the opener (so needs
#: the GIL); closing the dataset joins that thread while rasterio's close holds the GIL: the process hung
#: for ever (CI: a stale handle closed in acquire). A file at a URL ending .nc/.h5 is read by GDAL's own
#: /vsicurl/ (:func:`uses_opener`), never through the opener; one without such an ending is refused.
_NETCDF_SIGNATURES = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n", b"\x0e\x03\x13\x01")


def open_dataset(
    url: str,
    storage: Storage | None,
    *,
    sidecars: bool,
    version: tuple[int, str, str] | None = None,
    **kwargs: Any,
) -> Any:
    """Open the raster at ``url`` with rasterio, every byte read through the byte layer.

    ``version``: the :attr:`RemoteBytes.version` the caller opened (:func:`current`):
    where the process now keeps another, the file was replaced at the server
    since, and the open is refused (an :class:`OpenFailedError` of a ReadError).
    ``kwargs``: ``rasterio.open``'s (``overview_level``, open options).
    A failure of the byte layer is raised as it is (a ``ReadError`` naming
    ``scheme://host/path``); GDAL's own error otherwise.
    """
    import rasterio

    _share_registries()
    leaf = posixpath.basename(urllib.parse.urlsplit(url).path) or "file"
    name = (
        f"tp/{os.getpid()}-{next(_OPENS)}/{urllib.parse.unquote(leaf)}"  # unique in the process (no urandom)
    )
    try:
        data = _shared(url, storage, _gdal_storage(storage))
        head = data.read_at(0, 8)
    except (
        Exception
    ) as err:  # the open's first read, failed: raised as any failed open (the reader names the asset)
        raise _failed(err) from None
    if version is not None and data.version != version:  # replaced at the server since the array was opened
        raise _failed(
            ReadError(
                f"cannot read raster {public_url(url)!r}: the file at the URL changed since it was opened "
                f"(size, ETag and first block {version[:2]} then {data.version[:2]}); open it again (open_raster/read_raster) "
                "to read the file now there"
            )
        )
    if head.startswith(_NETCDF_SIGNATURES):
        raise ReadError(
            f"cannot read raster {public_url(url)!r}: it is a netCDF or HDF file at a URL whose path does not "
            "end in its extension (.nc, .nc4, .h5, .hdf), which GDAL cannot read through terrapipe's byte "
            "layer; give the URL with that ending, or open the file with tp.open_xarray"
        )
    opener = RemoteOpener(url, storage, name, sidecars=sidecars)
    opener._main = data  # the bytes checked above, not another version kept since
    _OPENERS[name] = opener
    try:
        dataset = rasterio.open(name, "r", opener=opener, sharing=False, **kwargs)
    except Exception:
        if opener.failure is not None:
            raise _failed(opener.failure) from None
        raise
    if opener.failure is not None:
        dataset.close()
        raise _failed(opener.failure)
    return dataset


class OpenFailedError(OSError):
    """The byte layer's failure under GDAL's open (``error``: the ReadError), for the reader to name the file or asset."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _failed(failure: BaseException) -> BaseException:
    """Return a storage that cannot be used as it is, a failed read as an :class:`OpenFailedError`."""
    if isinstance(failure, ReadError) or not isinstance(failure, Exception):
        return OpenFailedError(failure)
    return failure
