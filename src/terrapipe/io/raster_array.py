"""Lazy, thread-safe, picklable pixel access to a raster file.

:class:`RasterArray` is an xarray ``BackendArray``: indexing it reads just
the window asked for, with ``DatasetReader.read(window=...)``. It holds a
:class:`RasterSource` (the path and open options: plain data) and never a
rasterio dataset, so it pickles cheaply and a DataLoader worker, forked or
spawned, opens the file itself.

Handles live in a per-thread cache (:func:`acquire`): each thread opens its own
``DatasetReader`` (a GDAL dataset must not be used by two threads at once),
keeps up to :data:`MAX_HANDLES_PER_THREAD` of them, and reads without a lock.
After a fork the child drops the handles it inherited (their file offsets and
HTTP connections belong to the parent) and opens new ones.

A local file's handle is keyed by its stamp (mtime, size, inode, device, ctime:
:func:`file_stamp`, taken once when the array is opened), and every later open
of it for that array (another thread's first read, a reopen after an eviction,
a failure or a fork) checks that the file at the path still has that stamp: a
file replaced (``os.replace``, as a COG is published), rewritten or removed
since is a :class:`~terrapipe.core.errors.ReadError` (open it again), never the
other file's pixels under the array's geometry. A thread's open handle is
checked before and after each read (a ``stat`` each, ~2 µs against a block's
decode): a file rewritten in place under it (``cp`` over it, ``rsync
--inplace``: the same inode, new bytes) is that ReadError too, never one array
of old cached blocks and new ones; a file replaced at the path (another inode)
or removed leaves the handle reading the file it opened, whole. A remote file has no such stamp (asking the
server at each open or read would cost a request): its handles, in every
thread, are dropped at their next use after :func:`forget_remote` (the cache
calls it when a remote input's change check reports a change, before it
recomputes), which also makes GDAL forget what it cached of the URL.

A source read through a :class:`~terrapipe.io.storage.Storage` opens and reads
inside ``storage.rasterio_env(url)`` (thread-local GDAL options, never
``os.environ``), in whichever thread opens it, each time it is opened. The
storage is part of the handle's key, so two storages never share a handle;
when a URL is opened with another storage than the one that last opened it,
GDAL's cache of that URL (size, downloaded blocks) is dropped first, so that
one storage's credentials never answer for another's.

Why not rioxarray's backend: its default lock is one process-wide lock, so
parallel reads (several threads, several files, HTTP) run one at a time; with
``lock=False`` it reopens the file for every read; and xarray's
``CachingFileManager`` keeps using handles inherited through ``fork``.

Examples
--------
>>> import numpy as np, rasterio
>>> from rasterio.transform import from_origin
>>> with rasterio.open("a.tif", "w", driver="GTiff", width=4, height=3, count=1, dtype="uint8",
...                    crs="EPSG:32631", transform=from_origin(0, 30, 10, 10)) as dst:
...     dst.write(np.arange(12, dtype="uint8").reshape(1, 3, 4))
>>> src = RasterSource(path="a.tif", gdal_path="a.tif")
>>> arr = RasterArray(src, shape=(1, 3, 4), dtype=np.dtype("uint8"), bands=(1,))
>>> from xarray.core import indexing
>>> arr[indexing.BasicIndexer((0, slice(1, 3), slice(None, None, 2)))]
array([[ 4,  6],
       [ 8, 10]], dtype=uint8)
"""

from __future__ import annotations

import atexit
import os
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.errors import RasterioError
from rasterio.windows import Window
from xarray.backends import BackendArray

from terrapipe._compat import variable_data, xarray_indexing
from terrapipe.core.errors import ReadError, TerrapipeError
from terrapipe.core.redact import redact_url, secrets_of
from terrapipe.io.gdal_cache import forget_remote_file
from terrapipe.io.gdal_env import PLAIN_FORM_PREFIXES, gdal_env, plain_url_env
from terrapipe.io.gdal_fork import keep_unclosed_in_children
from terrapipe.io.gdal_opener import OpenFailedError, failure_of, open_dataset, uses_opener
from terrapipe.io.gdal_opener import forget as forget_sidecar_answers
from terrapipe.io.gdal_setup import ensure_gdal_setup, gdal_messages
from terrapipe.io.paths import gdal_path, is_remote, local_file_of, quote_url
from terrapipe.io.read_errors import read_error, scrub_chain, store_error_code
from terrapipe.io.remote_sources import check_remote_sources
from terrapipe.io.stamped_file import file_stamp
from terrapipe.io.storage import Storage

__all__ = [
    "MAX_HANDLES_PER_THREAD",
    "DirectBlocks",
    "RasterArray",
    "RasterSource",
    "acquire",
    "attempt",
    "close_thread_handles",
    "direct_blocks",
    "file_stamp",
    "forget",
    "forget_remote",
    "open_handle_count",
]

T = TypeVar("T")

#: How many datasets one thread keeps open (least recently used are closed).
MAX_HANDLES_PER_THREAD = 32

_PROCESS_LOCK = threading.Lock()

#: The key of an axis taken whole.
_ALL = slice(None)

#: xarray's basic and outer indexer classes (looked up at the first read).
_WINDOW_KEYS: tuple[type[Any], ...] = ()


def _window_keys() -> tuple[type[Any], ...]:
    """Return xarray's ``(BasicIndexer, OuterIndexer)``, the keys :meth:`RasterArray._plain_window` reads straight."""
    global _WINDOW_KEYS
    if not _WINDOW_KEYS:
        indexing = xarray_indexing()
        _WINDOW_KEYS = (indexing.BasicIndexer, indexing.OuterIndexer)
    return _WINDOW_KEYS


#: How many times each remote file (by its GDAL name) was forgotten with :func:`forget_remote`;
#: a handle opened under an older count is stale. One entry per URL that changed or failed.
_GENERATIONS: dict[str, int] = {}
_GENERATIONS_LOCK = threading.Lock()


@dataclass(frozen=True)
class RasterSource:
    """How to open one raster: what pickles instead of a dataset.

    Attributes
    ----------
    path
        The path or URL as the user gave it (for messages and ``encoding["source"]``).
    gdal_path
        The name rasterio opens (``/vsicurl?...`` for HTTP).
    overview_level
        Open this overview (0 = the first, largest one) instead of the full resolution.
    options
        Extra ``rasterio.open`` keywords (GDAL open options) as sorted pairs.
    stamp
        :func:`file_stamp` of a local file when it was opened, ``(mtime_ns, size,
        inode, device, ctime_ns)`` (older callers: its first three or four): a file rewritten in
        place, or replaced by another of the same size and mtime (``cp -p``), gets
        a fresh handle instead of a stale cached one, and :meth:`open` refuses a
        file at the path that no longer has it.
    storage
        Where the file lives and how to reach it (``None``: GDAL's process-wide
        configuration, as before). Every open and read enters
        ``storage.rasterio_env(path)``; its ``repr`` shows no credential.
    version
        For a file GDAL reads through the byte layer: its size, ETag and first
        block's digest when it was opened (:func:`terrapipe.io.gdal_opener.current`).
        A file replaced at the server gets a source of its own (no handle of the
        old file serves it), and an open of the old source is refused.
    """

    path: str
    gdal_path: str
    overview_level: int | None = None
    options: tuple[tuple[str, Hashable], ...] = ()
    stamp: tuple[int, ...] | None = None
    storage: Storage | None = None
    version: tuple[int, str, str] | None = None

    def env(self) -> AbstractContextManager[Any]:
        """Return the GDAL environment to open and read in: ``storage.rasterio_env(url)``, GDAL's defaults, or none.

        A remote file without a storage gets terrapipe's per-open defaults
        (:func:`terrapipe.io.gdal_env.gdal_env`); a local one no environment.
        """
        ensure_gdal_setup()  # fork hook, log filter, cache sizes: once per process, at the first read
        if self.storage is None and not is_remote(self.path):
            return nullcontext()
        if (
            self.through_byte_layer
        ):  # GDAL reads it through terrapipe's byte layer: no GDAL option, no credential
            return nullcontext()
        key = (self.gdal_path, self.storage)
        if key in _ENTERED.keys:  # a read that opens the file: inside this environment already
            return nullcontext()  # (entered twice, a storage's headers were sent twice: 'A: x', 'A: x')
        if self.storage is None:
            env: AbstractContextManager[Any] = gdal_env()
        else:
            env = self.storage.rasterio_env(_storage_url(self.path))
        if self.gdal_path.startswith(PLAIN_FORM_PREFIXES):  # /vsicurl/<URL?query>: empty_dir, use_head=no
            env = plain_url_env(self.gdal_path, env)
        return _entered(key, env)

    @property
    def through_byte_layer(self) -> bool:
        """Whether GDAL reads this file through terrapipe's byte layer (:mod:`terrapipe.io.gdal_opener`)."""
        return uses_opener(self.path, self.gdal_path, self.storage)

    def open(self) -> rasterio.io.DatasetReader:
        """Open a new dataset (callers normally use :func:`acquire`)."""
        kwargs: dict[str, Any] = dict(self.options)
        if self.overview_level is not None:
            kwargs["overview_level"] = self.overview_level
        if self.through_byte_layer:
            # gdal_path(sidecars=True), Storage(sidecars=True): GDAL asks for each side-car
            sidecars = "list_dir=no" in self.gdal_path or (
                self.storage is not None and self.storage.sidecars is True
            )
            dataset = open_dataset(
                quote_url(self.path), self.storage, sidecars=sidecars, version=self.version, **kwargs
            )
            try:
                check_remote_sources(self.path, dataset)
            except ReadError:
                dataset.close()
                raise
            return dataset
        with self.env():
            try:
                dataset = rasterio.open(self.gdal_path, "r", sharing=False, **kwargs)
            except (RasterioError, OSError):  # a file removed or replaced (no such overview) since
                if self.stamp is not None:
                    self._check_same_file()
                raise
            try:
                check_remote_sources(self.path, dataset)  # a VRT at a URL naming a file on this machine
                if self.stamp is not None:
                    self._check_same_file()
            except (ReadError, _FileChangedError):
                dataset.close()
                raise
            return dataset

    def _stamped_path(self) -> str:
        """Return the file :attr:`stamp` describes: :attr:`gdal_path`, or the file a GDAL name reads (``GTIFF_DIR:1:<file>``)."""
        name = self.gdal_path
        if name.startswith("/") and not name.startswith("/vsi"):  # a plain path: the usual case, no parsing
            return name
        return local_file_of(name) or name

    def _check_same_file(self) -> None:
        """Refuse the file at :attr:`gdal_path` unless it is the one :attr:`stamp` describes (stat after the open)."""
        stamp = self.stamp
        assert stamp is not None
        try:
            now: tuple[int, ...] | None = file_stamp(self._stamped_path())
        except OSError:
            now = None
        if now is not None and now[: len(stamp)] == stamp:
            return
        what = "removed" if now is None else "replaced or rewritten"
        fields = ", ".join(("mtime_ns", "size", "inode", "device", "ctime_ns")[: len(stamp)])
        now_text = "none" if now is None else str(now[: len(stamp)])
        cause = f"the file changed since it was opened ({what}: ({fields}) was {stamp}, now {now_text})"
        raise _FileChangedError(
            cause, "open it again (open_raster/read_raster) to read the file now at that path"
        )

    def check_not_rewritten(self) -> None:
        """Refuse reading on through an open handle when the file it has open was rewritten in place.

        The file at the path has the stamp's inode and device (so it is the
        file the handle holds open: its inode cannot be reused while it is)
        but another mtime, size or status-change time: ``cp`` over it (with
        ``-p`` too), ``rsync --inplace``, a writer's ``r+``. GDAL would give the new bytes for the blocks it has
        not cached and the old for those it has. A file replaced at the path
        (another inode) or removed leaves the handle reading the file it
        opened, whole.
        """
        stamp = self.stamp
        assert stamp is not None
        try:
            now = file_stamp(self._stamped_path())
        except OSError:
            return
        if now[: len(stamp)] == stamp or now[2:4][: len(stamp) - 2] != stamp[2:4]:
            return
        fields = [i for i in (0, 1, 4) if i < len(stamp)]  # mtime_ns, size, ctime_ns
        was, changed = tuple(stamp[i] for i in fields), tuple(now[i] for i in fields)
        cause = f"the file was rewritten in place since it was opened ((mtime_ns, size, ctime_ns) was {was}, now {changed})"
        raise _FileChangedError(
            cause, "open it again (open_raster/read_raster) to read the file now at that path"
        )


class _FileChangedError(OSError):
    """A local file changed (replaced, rewritten, removed) since its array was opened: open it again.

    Raised by :meth:`RasterSource.open`, inside every read's and open's failure handling
    (:func:`attempt`, :meth:`RasterArray._read_plain`, the STAC native reads), which turns it
    into a ``ReadError`` naming the file, the window or the asset, as any failed open; a
    ``ReadError`` itself would be handed back as it is by the native reads (``settled``).
    :attr:`cause` and :attr:`hint` are its words.
    """

    def __init__(self, cause: str, hint: str = "") -> None:
        super().__init__(f"{cause}; {hint}" if hint else cause)
        self.cause = cause
        self.hint = hint


class _Entered(threading.local):
    def __init__(self) -> None:
        self.keys: list[tuple[str, Storage | None]] = []  # (GDAL name, storage) of the environments entered


_ENTERED = _Entered()


@contextmanager
def _entered(key: tuple[str, Storage | None], env: AbstractContextManager[Any]) -> Iterator[None]:
    """Enter ``env``, the environment of the source ``key``, noting it for :meth:`RasterSource.env`."""
    _ENTERED.keys.append(key)
    try:
        with env:
            yield
    finally:
        _ENTERED.keys.pop()


#: GDAL object-store paths and the URL scheme :meth:`Storage.gdal_options` translates for them.
_SCHEME_OF_VSI = {"/vsis3/": "s3://", "/vsigs/": "gs://", "/vsiaz/": "az://", "/vsiadls/": "abfs://"}


def _storage_url(path: str) -> str:
    """Return the URL a storage translates for ``path`` (``/vsis3/b/k`` is ``s3://b/k``)."""
    for prefix, scheme in _SCHEME_OF_VSI.items():
        if path.startswith(prefix):
            return scheme + path[len(prefix) :]
    return path


#: Which storage (``None``: none) last opened each remote GDAL path; GDAL's cache of a path is
#: dropped before another storage opens it (one entry per remote path opened with a storage).
_LAST_STORAGE: dict[str, Storage | None] = {}
_LAST_STORAGE_LOCK = threading.Lock()


def _switch_storage(source: RasterSource) -> None:
    """Drop GDAL's cache of a remote file before it is opened with another storage than last time."""
    if not is_remote(source.path):
        return
    with _LAST_STORAGE_LOCK:
        if source.storage is None and source.gdal_path not in _LAST_STORAGE:
            return  # never opened with a storage: today's behaviour, no bookkeeping
        changed = _LAST_STORAGE.get(source.gdal_path) != source.storage
        _LAST_STORAGE[source.gdal_path] = source.storage
    if changed:
        forget_remote_file(source.path, source.storage)


class _Handles(OrderedDict[RasterSource, tuple[Any, int]]):
    """One thread's open datasets: source -> (dataset, the source's forget_remote count when it was opened).

    Those still open when the thread ends, or when the process exits (a daemon reader thread's),
    are closed inside their source's environment (:func:`_close`), not by rasterio's deallocation
    outside any: GDAL's SQLite close of a GeoPackage in a bucket then asked 169.254.169.254 for a role.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pid = os.getpid()
        _LIVE_HANDLES[id(self)] = self

    def __setitem__(self, source: RasterSource, value: tuple[Any, int]) -> None:
        if not _AT_EXIT:  # at the first dataset held, not at import: importing terrapipe adds no exit hook
            _AT_EXIT.append(True)
            atexit.register(_close_every_thread_handles)
        super().__setitem__(source, value)

    def close_all(self) -> None:
        """Close every dataset held (none in a forked child: the parent's)."""
        if self.pid != os.getpid():
            return
        while self:
            source, (dataset, _) = self.popitem()
            with suppress(Exception):  # a thread's end or the process's exit: no one to tell
                _close(source, dataset)

    def __del__(self) -> None:
        with suppress(Exception):  # interpreter shutdown
            self.close_all()


#: Every thread's handles (weakly): closed at exit in their sources' environments.
_LIVE_HANDLES: weakref.WeakValueDictionary[int, _Handles] = weakref.WeakValueDictionary()
_AT_EXIT: list[bool] = []


def _close_every_thread_handles() -> None:
    """At exit: close every thread's datasets inside their environments (reader threads still hold some)."""
    for handles in list(_LIVE_HANDLES.values()):
        handles.close_all()


class _ThreadHandles(threading.local):
    def __init__(self) -> None:
        self.pid = os.getpid()
        # source -> (dataset, the source's forget_remote count when it was opened)
        self.datasets: _Handles = _Handles()
        # what the last acquire returned (the most recently used entry of ``datasets``): the next
        # acquire of the same source object takes it without hashing the source twice
        self.last: tuple[RasterSource, rasterio.io.DatasetReader, int] | None = None

    def check_fork(self) -> None:
        if self.pid != os.getpid():
            # Inherited through fork: the parent owns these; forget them unclosed.
            self.pid = os.getpid()
            self.datasets = _Handles()
            self.last = None


_HANDLES = _ThreadHandles()


def _close(source: RasterSource, dataset: rasterio.io.DatasetReader) -> None:
    """Close ``dataset`` inside its source's environment (GDAL's SQLite layer looks at side files on close)."""
    with source.env():  # outside it, /vsis3/ had no credentials: GDAL asked 169.254.169.254 for a role
        dataset.close()


def acquire(source: RasterSource) -> rasterio.io.DatasetReader:
    """Return this thread's open dataset for ``source``, opening it if needed.

    A handle of a remote file opened before :func:`forget_remote` forgot that
    file is closed and the file opened again.

    Raises
    ------
    rasterio.errors.RasterioError
        When the file cannot be opened (callers wrap it in a ``ReadError``).
    """
    handles = _HANDLES
    handles.check_fork()
    generation = _GENERATIONS.get(source.gdal_path, 0)
    last = handles.last
    if last is not None and last[0] is source and last[2] == generation and not last[1].closed:
        if source.stamp is not None:  # an open handle would read on a file rewritten in place
            source.check_not_rewritten()
        return last[1]  # already the most recently used: a window read's usual case (no hashing)
    held = handles.datasets.get(source)
    if held is not None:
        dataset, opened_at = held
        if not dataset.closed and opened_at == generation:
            if source.stamp is not None:
                source.check_not_rewritten()
            handles.datasets.move_to_end(source)
            handles.last = (source, dataset, generation)
            return dataset
        del handles.datasets[source]
        _close(source, dataset)
    _switch_storage(source)
    if source.stamp is not None and not source.gdal_path.startswith("/"):  # NETCDF:"<file>":v, GTIFF_DIR:...
        _close_other_versions(handles, source)  # another version of the file: the old one's handles go first
    dataset = source.open()
    keep_unclosed_in_children(dataset)  # a forked child must not close it (io/gdal_fork.py)
    handles.datasets[source] = (dataset, generation)
    handles.last = (source, dataset, generation)
    while len(handles.datasets) > MAX_HANDLES_PER_THREAD:
        evicted, (oldest, _) = handles.datasets.popitem(last=False)
        _close(evicted, oldest)
    return dataset


def _close_other_versions(handles: _ThreadHandles, source: RasterSource) -> None:
    """Close this thread's handles of ``source``'s file opened under another stamp (an older version of it).

    GDAL's netCDF driver answered a new open of a replaced file with the old file's values while
    a handle of the old one was open (netCDF-C keeps it by name).
    """
    stale = [
        other
        for other in handles.datasets
        if other.gdal_path == source.gdal_path and other.stamp is not None and other.stamp != source.stamp
    ]
    for other in stale:
        dataset, _ = handles.datasets.pop(other)
        handles.last = None
        _close(other, dataset)


def forget(source: RasterSource) -> None:
    """Close this thread's handle of ``source`` and drop what GDAL cached about it, after a failure.

    The next :func:`acquire` opens the file again, and for a remote file GDAL
    asks the server again instead of repeating a cached failure (see
    :mod:`terrapipe.io.gdal_cache`).
    """
    handles = _HANDLES
    handles.check_fork()
    held = handles.datasets.pop(source, None)
    if held is not None:
        handles.last = None
        _close(source, held[0])
    forget_remote_file(source.path, source.storage)
    if source.through_byte_layer:  # its size, ETag and header blocks: asked for again
        forget_sidecar_answers(quote_url(source.path))


def forget_remote(path: str) -> None:
    """Forget everything this process holds of the remote file ``path``: open handles and GDAL's cache.

    Call it when the file is known to have changed on the server (the cache
    does, before it recomputes an entry whose remote input's ETag,
    Last-Modified or size changed). Every thread's open dataset of ``path``
    (any overview, any open options) is closed and opened again at its next
    use, so it reads the new file's header and blocks, not the old ones it
    cached; GDAL's ``/vsicurl/`` cache of the URL (size, downloaded ranges)
    is dropped too (:func:`~terrapipe.io.gdal_cache.forget_remote_file`).
    Costs no request; local paths are ignored (their handles follow the
    file's stamp).

    Parameters
    ----------
    path
        The URL (or remote GDAL path) as given to ``open_raster``/``read_raster``.

    Examples
    --------
    >>> forget_remote("https://example.com/a.tif")
    >>> forget_remote("local.tif")  # nothing to do
    """
    if not is_remote(path):
        return
    with _GENERATIONS_LOCK:
        for name in {gdal_path(path), gdal_path(path, sidecars=True)}:  # opened with its side-cars or not
            _GENERATIONS[name] = _GENERATIONS.get(name, 0) + 1
    forget_remote_file(path)
    forget_sidecar_answers(quote_url(path))


def close_thread_handles() -> None:
    """Close every dataset the calling thread has open."""
    handles = _HANDLES
    handles.check_fork()
    handles.last = None
    while handles.datasets:
        source, (dataset, _) = handles.datasets.popitem()
        _close(source, dataset)


def open_handle_count() -> int:
    """How many datasets the calling thread has open."""
    _HANDLES.check_fork()
    return len(_HANDLES.datasets)


def _axis_plan(key: Any, size: int) -> tuple[int, int, Any]:
    """Split one outer-indexer key into a window ``(start, stop)`` and a local index."""
    if isinstance(key, slice):
        start, stop, step = key.indices(size)
        if step < 0 or start >= stop:
            idx = np.arange(start, stop, step)
            if idx.size == 0:
                return 0, 0, slice(0, 0)
            lo = int(idx.min())
            return lo, int(idx.max()) + 1, idx - lo
        return start, stop, slice(None, None, step) if step != 1 else slice(None)
    if isinstance(key, (int, np.integer)):
        index = int(key) % size if size else 0
        return index, index + 1, 0
    idx = np.asarray(key, dtype=np.int64) % max(size, 1)
    if idx.size == 0:
        return 0, 0, idx
    lo = int(idx.min())
    return lo, int(idx.max()) + 1, idx - lo


def attempt(
    source: RasterSource, operation: Callable[[], T], fail: Callable[[BaseException], ReadError]
) -> T:
    """Run ``operation`` (an open or a read of ``source``); retry a remote file's network faults.

    GDAL retries HTTP 429 and 5xx answers itself (``GDAL_HTTP_MAX_RETRY``),
    but not a connection dropped without an answer or an answer cut short
    (it may even keep a short answer in its cache). For a remote file, such
    a failure, or one whose reason is unknown, is retried here as many times
    as GDAL retries (``GDAL_HTTP_MAX_RETRY``, back-off from
    ``GDAL_HTTP_RETRY_DELAY``, doubled), each time after :func:`forget`, so
    the next try asks the server again. HTTP errors (GDAL retried them
    already; a 404 is final) and local files are not retried.

    Parameters
    ----------
    source
        The file.
    operation
        What to do; it raises ``RasterioError`` or ``OSError`` when it fails.
    fail
        Builds the error to raise from the reason of the last failure.

    Raises
    ------
    ReadError
        ``fail(reason)``, raised from the last failure.
    """
    if not is_remote(source.path):
        return _attempt_local(source, operation, fail)
    if source.storage is not None:
        retries, delay = source.storage.retries, 0.5
    else:
        retries, delay = _retry_settings()
    layer = source.through_byte_layer
    for tries in range(retries + 1):
        with gdal_messages() as messages:
            try:
                with source.env():
                    if not layer:
                        return operation()
                    result = operation()
                kept = _layer_failure(source)  # a failed request under GDAL: zeros or a short read, kept
                if kept is None:
                    return result
                failure, reason = kept, _layer_reason(kept)
            except (RasterioError, OSError, UnicodeError) as err:  # UnicodeError: a damaged CRS or tag text
                kept = _layer_failure(source) if layer else None
                if kept is None and isinstance(err, OpenFailedError):
                    kept = err.error  # the open's
                if kept is not None or (layer and isinstance(err, ReadError)):
                    failure = kept if kept is not None else err
                    reason = _layer_reason(failure)
                else:
                    failure, reason = err, _reason(err, messages)
        forget(source)
        if layer and isinstance(failure, TerrapipeError) and not isinstance(failure, ReadError):
            raise failure  # a storage that cannot be used (a header no HTTP request can hold): as it is
        if layer and isinstance(failure, ReadError):
            break  # the byte layer retried it already (Storage.retries, within its deadline)
        if tries == retries or not _transient(reason):
            break
        time.sleep(delay)
        delay *= 2
    error = fail(reason)
    if secrets_of(source.path):  # GDAL's messages in the chain name the URL
        scrub_chain(failure, source.path)
    raise error from failure


def _layer_failure(source: RasterSource) -> BaseException | None:
    """Return the byte layer's failure under this thread's handle of ``source`` since it was opened, if any."""
    held = _HANDLES.datasets.get(source)
    return None if held is None else failure_of(held[0])


def _layer_reason(failure: BaseException) -> BaseException:
    """Return the byte layer's failure under GDAL as a reason for ``fail``: its words after ``cannot read '<URL>': ``."""
    text = str(failure)
    _, sep, rest = text.partition("': ")
    words = rest if sep and text.startswith("cannot ") else text
    if "within the deadline" in words:  # said as every reader says it: 'the server did not answer in time'
        return TimeoutError(f"timed out: {words}")
    return _LayerError(words)


class _LayerError(OSError):
    """What the byte layer said of a failed request under GDAL (named by the reader's ``fail``)."""


def _attempt_local(
    source: RasterSource, operation: Callable[[], T], fail: Callable[[BaseException], ReadError]
) -> T:
    """:func:`attempt` for a local file: one try; GDAL's messages explain only network failures."""
    try:
        if source.storage is None:
            return operation()
        with source.env():
            return operation()
    except (RasterioError, OSError, UnicodeError) as err:  # UnicodeError: a damaged CRS or tag text
        failure = err
    forget(source)
    raise fail(failure) from failure


def _retry_settings() -> tuple[int, float]:
    """``(retries, first delay)`` from GDAL's settings (see :mod:`terrapipe.io.gdal_env`)."""
    try:
        retries = max(0, int(os.environ.get("GDAL_HTTP_MAX_RETRY", "3")))
    except ValueError:
        retries = 3
    try:
        delay = max(0.0, float(os.environ.get("GDAL_HTTP_RETRY_DELAY", "0.5")))
    except ValueError:
        delay = 0.5
    return retries, delay


def _transient(reason: BaseException) -> bool:
    """Whether a failure of a remote file may pass on a new try (not an HTTP error, not a missing file)."""
    text = str(reason)
    low = text.lower()
    if "no such file" in low or "does not exist" in low or store_error_code(text) is not None:
        return False  # a store's error reply (NoSuchKey: its XML) is final; GDAL retried what it retries
    return _HTTP_ERROR.search(text) is None


_HTTP_ERROR = re.compile(r"HTTP (?:response )?(?:code|error code)[:=]? ?[45]\d\d", re.IGNORECASE)


def _reason(err: BaseException, messages: list[str]) -> BaseException:
    """Return the error that explains a failed read: GDAL's last HTTP or network message, if it logged one.

    rasterio's exception only says that the read failed; GDAL logged why
    just before (``Request for 664-17067 failed with response_code=503``).
    """
    for message in reversed(messages):
        found = _RESPONSE_CODE.search(message)
        if found is not None:
            code = int(found.group(1))
            if code == 0:  # no HTTP answer at all
                return ConnectionResetError("connection reset: no answer from the server")
            if code < 300:  # the answer began, then stopped
                return RuntimeError("transfer closed with outstanding read data remaining")
            return RuntimeError(f"HTTP response code: {code}")
        if "curl error" in message.lower():
            return RuntimeError(message)
    return err


_RESPONSE_CODE = re.compile(r"(?:response_code=|HTTP error code: |HTTP response code on \S+: )(\d+)")


class RasterArray(BackendArray):
    """Lazy ``(band, y, x)`` pixels of one raster file (an xarray ``BackendArray``).

    Parameters
    ----------
    source
        How to open the file.
    shape
        ``(number of bands, height, width)``.
    dtype
        Data type of the values returned (float when ``masked``).
    bands
        The 1-based band indexes the first axis stands for.
    masked
        Read with the file's mask and return NaN where it is not valid.
    lock
        ``None`` (default): no lock, each thread reads with its own handle;
        ``True``: one process-wide lock around every read; or a lock object
        (it must pickle if the array goes to spawned workers).
    """

    def __init__(
        self,
        source: RasterSource,
        *,
        shape: tuple[int, int, int],
        dtype: np.dtype[Any],
        bands: tuple[int, ...],
        masked: bool = False,
        lock: bool | AbstractContextManager[Any] | None = None,
    ) -> None:
        self.source = source
        self.shape = shape
        self.dtype = dtype
        self.bands = bands
        self.masked = masked
        self.lock = lock
        self._local = not is_remote(source.path)
        self._band_list = list(bands)
        # a local file read without a storage, a lock or a mask: one try, no GDAL environment (_read_plain)
        self._plain = self._local and source.storage is None and lock in (None, False) and not masked

    def _lock(self) -> AbstractContextManager[Any]:
        if self.lock is None or self.lock is False:
            return nullcontext()
        if self.lock is True:
            return _PROCESS_LOCK
        return self.lock

    def __getitem__(self, key: Any) -> Any:
        window = self._plain_window(key)
        if window is not None:  # the common case: a window of whole bands, read straight
            if self._plain:
                return self._read_plain(window)
            return self._read_window(self._band_list, window)
        empty = self._empty_window(key)
        if empty is not None:  # xarray's slice decomposition fails on an empty reversed slice (IndexError)
            return empty
        indexing = xarray_indexing()
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.OUTER, self._read)

    def _empty_window(self, key: Any) -> NDArray[Any] | None:
        """Return the empty array a basic or outer ``key`` with an empty slice asks for, else None (no read)."""
        indexing = xarray_indexing()
        if not isinstance(key, indexing.BasicIndexer | indexing.OuterIndexer):
            return None
        shape: list[int] = []
        empty = False
        for part, size in zip(key.tuple, self.shape, strict=True):
            if isinstance(part, slice):
                length = len(range(*part.indices(size)))
                empty = empty or length == 0
                shape.append(length)
            elif not isinstance(part, (int, np.integer)):
                shape.append(int(np.size(part)))
        return np.empty(shape, dtype=self.dtype) if empty else None

    def _plain_window(self, key: Any) -> Window | None:
        """Return the window ``key`` (xarray's indexer) asks for if it takes every band and step-1 rows/columns, else None."""
        if not isinstance(key, _window_keys()):
            return None
        parts = key.tuple
        if len(parts) != 3:
            return None
        bands, rows, columns = parts
        if type(bands) is not slice or bands != _ALL or type(rows) is not slice or type(columns) is not slice:
            return None
        if rows.step not in (None, 1) or columns.step not in (None, 1):
            return None
        _, height, width = self.shape
        y0, y1, _ = rows.indices(height)
        x0, x1, _ = columns.indices(width)
        if y1 <= y0 or x1 <= x0:
            return None
        return Window(x0, y0, x1 - x0, y1 - y0)  # type: ignore[no-untyped-call]

    def _read_plain(self, window: Window, out: NDArray[Any] | None = None) -> NDArray[Any]:
        """:meth:`_read_window` of every band of a local file without storage, lock or mask: one try, inline.

        ``out``: an array of the window's shape and :attr:`dtype` to read into (``None``: a new one).
        """
        source = self.source
        try:
            data = acquire(source).read(self._band_list, window=window, out=out)
            if source.stamp is not None:  # rewritten during the read: part old, part new pixels
                source.check_not_rewritten()
            return data  # type: ignore[no-any-return]
        except (RasterioError, OSError, UnicodeError) as err:  # UnicodeError: a damaged CRS or tag text
            failure = err
        forget(source)
        raise self._window_error(self._band_list, window, failure) from failure

    def _window_error(self, bands: list[int], window: Window, reason: BaseException) -> ReadError:
        action = (
            f"cannot read rows {window.row_off}:{window.row_off + window.height}, "
            f"columns {window.col_off}:{window.col_off + window.width} of bands {bands} of"
        )
        if isinstance(reason, _FileChangedError):
            return read_error(self.source.path, action, reason, cause=reason.cause, hint=reason.hint)
        return read_error(self.source.path, action, reason)

    def _read(self, key: tuple[Any, ...]) -> NDArray[Any]:
        band_key, y_key, x_key = key
        band_sel = np.asarray(self.bands)[band_key]
        band_list = [int(b) for b in np.atleast_1d(band_sel)]
        y0, y1, y_local = _axis_plan(y_key, self.shape[1])
        x0, x1, x_local = _axis_plan(x_key, self.shape[2])
        if not band_list or y1 <= y0 or x1 <= x0:
            full = np.empty((len(band_list), max(y1 - y0, 0), max(x1 - x0, 0)), dtype=self.dtype)
        else:
            full = self._read_window(band_list, Window(x0, y0, x1 - x0, y1 - y0))  # type: ignore[no-untyped-call]
        out = (
            full[:, y_local][:, :, x_local] if not isinstance(y_local, int) else full[:, y_local][:, x_local]
        )
        if np.ndim(band_sel) == 0:
            out = out[0]
        return np.asarray(out)

    def _read_window(self, bands: list[int], window: Window, out: NDArray[Any] | None = None) -> NDArray[Any]:
        """Read ``window`` of ``bands`` (retried as :func:`attempt` does); into ``out`` where given (unmasked only)."""
        if out is not None and self.masked:
            raise ValueError("a masked read cannot fill an array given (its values are converted)")

        def read() -> Any:
            if self.lock is None or self.lock is False:
                data = acquire(self.source).read(bands, window=window, masked=self.masked, out=out)
            else:
                with self._lock():
                    data = acquire(self.source).read(bands, window=window, masked=self.masked, out=out)
            if self.source.stamp is not None:  # rewritten during the read: part old, part new pixels
                self.source.check_not_rewritten()
            return data

        def fail(reason: BaseException) -> ReadError:
            return self._window_error(bands, window, reason)

        data = _attempt_local(self.source, read, fail) if self._local else attempt(self.source, read, fail)
        if self.masked:
            return np.ma.filled(data.astype(self.dtype), np.nan)
        return np.asarray(data)

    def __repr__(self) -> str:
        return (
            f"RasterArray({redact_url(self.source.path)!r}, shape={self.shape}, dtype={self.dtype}, "
            f"bands={self.bands})"
        )


class DirectBlocks:
    """Blocks of an ``open_raster`` variable read straight from its :class:`RasterArray` (``chip``'s reader).

    ``variable[key].values`` of a lazily indexed variable passes through xarray's ``Variable``
    indexing and its lazy wrappers before it reaches :meth:`RasterArray.__getitem__` (~60 µs
    per block on an idle machine, twice that under load); this calls the same read directly,
    with the block's key moved by where the variable's window starts in the file: the plain
    read of a local file without storage or lock (:meth:`RasterArray._read_plain`), else
    the checked, retried read (:meth:`RasterArray._read_window`: a remote file, a storage, a
    lock). Every band, no mask (a masked read converts the values); see :func:`direct_blocks`.
    The pixels land in the array the chip reader allocated, so a chip of a whole block is a
    view of memory no one else holds (no copy).

    Examples
    --------
    >>> import numpy as np, rasterio, xarray as xr
    >>> from rasterio.transform import from_origin
    >>> with rasterio.open("d.tif", "w", driver="GTiff", width=6, height=4, count=1, dtype="uint8",
    ...                    crs="EPSG:32631", transform=from_origin(0, 40, 10, 10)) as dst:
    ...     dst.write(np.arange(24, dtype="uint8").reshape(1, 4, 6))
    >>> from terrapipe.io.raster import open_raster
    >>> window = open_raster("d.tif").isel(y=slice(1, 4), x=slice(2, 6))
    >>> blocks = direct_blocks(window.variable)
    >>> key = (slice(None), slice(0, 2), slice(1, 3))
    >>> blocks.shape_of(key), blocks.read(key).tolist() == window.values[key].tolist()
    ((1, 2, 2), True)
    """

    def __init__(self, backend: RasterArray, starts: tuple[int, int], shape: tuple[int, int, int]) -> None:
        self.backend = backend
        self.starts = starts  # where the variable's rows and columns start in the file
        self.shape = shape  # the variable's shape
        self.dtype = backend.dtype

    def shape_of(self, key: tuple[slice, ...]) -> tuple[int, ...]:
        """Return the shape of the block ``key`` (slices of the variable)."""
        return tuple(len(range(*k.indices(n))) for k, n in zip(key, self.shape, strict=True))

    def read(self, key: tuple[slice, ...], out: NDArray[Any] | None = None) -> NDArray[Any]:
        """Return the pixels of ``key`` (slices of the variable), read into ``out`` when it is given."""
        bands, rows, columns = (k.indices(n) for k, n in zip(key, self.shape, strict=True))
        y0, x0 = self.starts
        whole = bands[0] == 0 and bands[1] == self.shape[0] and bands[2] == 1
        if whole and rows[2] == 1 and columns[2] == 1 and rows[1] > rows[0] and columns[1] > columns[0]:
            window = Window(x0 + columns[0], y0 + rows[0], columns[1] - columns[0], rows[1] - rows[0])  # type: ignore[no-untyped-call]
            backend = self.backend
            if backend._plain:
                return backend._read_plain(window, out)
            return backend._read_window(backend._band_list, window, out)
        file_key = (
            slice(*bands),
            slice(y0 + rows[0], y0 + rows[1], rows[2]),
            slice(x0 + columns[0], x0 + columns[1], columns[2]),
        )
        data = np.asarray(self.backend[xarray_indexing().BasicIndexer(file_key)])
        if out is None:
            return data
        out[...] = data
        return out


def direct_blocks(variable: Any) -> DirectBlocks | None:
    """Return a :class:`DirectBlocks` for a variable ``open_raster`` made, else ``None`` (read it through xarray).

    The variable must be a window of an unmasked :class:`RasterArray` (local or remote, with
    or without storage or lock), every band, rows and columns in steps of 1: xarray's copy-on-write and lazy
    wrappers around it and nothing else (no memory cache, no other selection), as
    ``open_raster`` builds it and ``isel`` with slices keeps it.
    """
    indexing = xarray_indexing()
    data = variable_data(variable)
    if type(data) is not indexing.CopyOnWriteArray:
        return None
    lazy = data.array
    if type(lazy) is not indexing.LazilyIndexedArray or type(lazy.key) is not indexing.BasicIndexer:
        return None
    backend = lazy.array
    if type(backend) is not RasterArray or backend.masked or len(lazy.key.tuple) != 3:
        return None
    parts = lazy.key.tuple
    if not all(type(k) is slice for k in parts):
        return None
    bands, rows, columns = (k.indices(n) for k, n in zip(parts, backend.shape, strict=True))
    if bands != (0, backend.shape[0], 1) or rows[2] != 1 or columns[2] != 1:
        return None
    shape = (backend.shape[0], max(rows[1] - rows[0], 0), max(columns[1] - columns[0], 0))
    if tuple(variable.shape) != shape:
        return None
    return DirectBlocks(backend, (rows[0], columns[0]), shape)
