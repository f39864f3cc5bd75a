"""obstore in this process: the module (with its fork check), the stores kept for reuse, a loop per thread.

Shared by :mod:`terrapipe.io.object_store` (buckets and local files) and the
Zarr stores on obstore (:mod:`terrapipe.io.zarr_object_store`). obstore's
runtime threads do not survive ``fork`` (``docs/storage.md``, "Loader workers
and fork"): :func:`load_obstore` refuses to run in a process forked after it
was used, and stores are kept per process. Nothing here runs at import.

Examples
--------
>>> import asyncio
>>> async def two() -> int:
...     await asyncio.sleep(0)
...     return 2
>>> run_on_thread_loop(two(), limit=5.0)
2
>>> sorted(DENIED_CODES)[:2]
['AccessDenied', 'AllAccessDisabled']
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import os
import re
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from terrapipe.core.errors import InvalidArgumentError, TerrapipeError, WorkerError
from terrapipe.core.optional import require
from terrapipe.core.redact import public_url
from terrapipe.io.storage import Storage

__all__ = [
    "DENIED_CODES",
    "ERROR_CODE",
    "MAX_STORES",
    "STORES",
    "cached_store",
    "denied_code",
    "load_obstore",
    "run_on_thread_loop",
    "status_of",
    "storage_or_env",
    "used_in_pid",
]

_T = TypeVar("_T")

#: Stores kept for reuse, per ``(Storage, root, process id)``: equal Storages (credentials included)
#: share one store and its connection pool; a forked worker makes its own.
STORES: collections.OrderedDict[tuple[Storage, str, int], Any] = collections.OrderedDict()
#: At most this many stores are kept (the least recently used is dropped).
MAX_STORES = 64
_STORES_LOCK = threading.Lock()
# The process that first used obstore: its runtime's threads exist only there (see load_obstore).
_USED_IN_PID: int | None = None

#: The error code in an S3/Azure/GCS XML answer.
ERROR_CODE = re.compile(r"<Code>([A-Za-z]{1,64})</Code>")
_STATUS = re.compile(r"status code: (\d{3})")
#: Error codes (S3, Azure, GCS XML) that mean the credentials or the signature were refused, whatever
#: the status a server sends with them (an expired presigned URL: 403 on AWS, 400 on some servers).
DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AuthenticationFailed",
        "AuthorizationFailure",
        "AuthorizationPermissionMismatch",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "NoAuthenticationInformation",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)


def status_of(text: str) -> int | None:
    """Return the HTTP status an obstore error's text names, if any."""
    match = _STATUS.search(text)
    return int(match.group(1)) if match else None


def denied_code(text: str) -> str | None:
    """Return the S3/Azure/GCS error code in ``text`` that refuses the credentials (an expired URL: 400), if any."""
    match = ERROR_CODE.search(text)
    return match.group(1) if match and match.group(1) in DENIED_CODES else None


def storage_or_env(storage: Storage | None) -> Storage:
    """Return ``storage``, or ``Storage.from_env()`` for ``None``; refuse anything else.

    Examples
    --------
    >>> storage_or_env(Storage(retries=1)).retries
    1
    """
    if storage is None:
        return Storage.from_env()
    if not isinstance(storage, Storage):
        raise InvalidArgumentError(f"storage must be a terrapipe Storage, got {type(storage).__name__}")
    return storage


def used_in_pid() -> int | None:
    """Return the id of the process that first used obstore here (``None``: not used yet)."""
    return _USED_IN_PID


def load_obstore() -> Any:
    """Return the obstore module, refusing to run in a process forked after it was used (it would hang)."""
    global _USED_IN_PID
    module = require("obstore", extra="cloud", feature="object storage")
    pid = os.getpid()
    with _STORES_LOCK:
        if _USED_IN_PID is None:
            _USED_IN_PID = pid
        elif pid != _USED_IN_PID:
            raise WorkerError(
                f"cannot read from object storage in process {pid}: it was forked from process {_USED_IN_PID} "
                "after that process had used the object store, and obstore's I/O threads do not survive a fork "
                "(the read would hang); start loader workers with multiprocessing_context='forkserver' or "
                "'spawn' (tp.loader does so itself when the pipe pickles: use functions defined at module "
                "level, not lambdas), or read no bucket in the main process before the workers start"
            )
    return module


def cached_store(storage: Storage, root: str, url: str) -> Any:
    """Return the store of ``root`` for ``storage``, made once (a new store opens new connections)."""
    # a forked worker makes its own: a client's threads do not survive fork
    key = (storage, root, os.getpid())
    with _STORES_LOCK:
        store = STORES.get(key)
        if store is not None:
            STORES.move_to_end(key)
            return store
    if root.startswith("/") or "@" not in root:
        target = url
    else:  # abfs://container@account/: rebuild the URL store_for understands
        scheme, rest = root.split("://", 1)
        container, account = rest.rstrip("/").split("@", 1)
        target = f"{scheme}://{container}@{account}.dfs.core.windows.net/"
    try:
        store = storage.store_for(target)
    except TerrapipeError:
        raise
    except Exception as err:  # obstore refuses the configuration; its text may echo a value
        raise InvalidArgumentError(
            f"cannot set up the store for {public_url(root)!r} ({type(err).__name__}); check the fields of tp.Storage"
        ) from None
    with _STORES_LOCK:
        STORES[key] = store
        while len(STORES) > MAX_STORES:
            STORES.popitem(last=False)
    return store


class _Loop:
    """One thread's event loop (:func:`run_on_thread_loop`), closed with the thread."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()

    def __del__(self) -> None:
        if self.pid == os.getpid():
            with contextlib.suppress(Exception):
                self.loop.close()


_LOOPS = threading.local()


def run_on_thread_loop(coro: Coroutine[Any, Any, _T], limit: float | None = None) -> _T:
    """Run ``coro`` (within ``limit`` seconds, if given) on this thread's own event loop; return its result.

    The loop is made on the thread's first call (anew in a forked child) and
    closed with the thread: ``asyncio.run`` per read cost 3 ms, a hop to one
    shared loop thread 1 ms (``benchmarks/bench_http_reads.py``). Called from
    a running event loop (a notebook), it runs beside it, on a thread of its own.
    """
    bounded = coro if limit is None else asyncio.wait_for(coro, limit)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a notebook: run it beside the loop
            return pool.submit(asyncio.run, bounded).result()
    state: _Loop | None = getattr(_LOOPS, "state", None)
    if state is None or state.pid != os.getpid():  # first call of this thread, or a forked child
        state = _LOOPS.state = _Loop()
    return state.loop.run_until_complete(bounded)
