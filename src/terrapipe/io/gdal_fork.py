"""Keep GDAL's HTTP connections out of forked processes.

GDAL's ``/vsicurl/`` keeps a keep-alive connection pool per thread. A process
forked from a thread that has used it (a DataLoader worker started with
``fork`` after the main process read a remote COG) inherits those sockets:
two workers then send requests on the *same* TCP connection, and each may read
the other's answer. We saw it happen: ``TIFFFillTile: Read error ... got
103253 bytes, expected 116543``, and in other runs a worker waiting until the
HTTP time-out.

The fix: just before the process forks, the forking thread closes its GDAL
connection pool with ``VSICurlClearCache()`` (GDAL also forgets the cached
file sizes and ranges; they are fetched again when needed). The child starts
with no connection and opens its own. This runs in the parent, where GDAL's
locks are in a consistent state; nothing GDAL-related runs in the child.

``VSICurlClearCache`` is not exposed by rasterio or pyogrio, so it is called
through ``ctypes`` on every GDAL library the process has loaded (rasterio and
pyogrio wheels each bundle one), found in ``/proc/self/maps`` (Linux), looked
up with ``RTLD_NOLOAD`` (nothing is loaded), only when a process forks. Where
that is not available the hook does nothing; ``spawn`` workers are unaffected.

A dataset the parent opened must not be closed in the child either: closing
it runs GDAL's driver in a process where the driver's helper threads are gone
(GDAL's netCDF driver serves a netCDF-4 file at ``/vsicurl/`` through
``userfaultfd`` and a handler thread, which the child lacks): a forked
DataLoader worker that dropped the handles it inherited crashed with a
segmentation fault. Every handle kept open is registered with
:func:`keep_unclosed_in_children`; just before a fork they are held in a list
that the child keeps for good (the parent lets go of it after the fork), so
the child never closes them, whichever thread held them; the parent closes
its own as before.

The hook is registered the first time terrapipe reads through GDAL
(:func:`terrapipe.io.gdal_setup.ensure_gdal_setup`), never on import.

Examples
--------
>>> from terrapipe.io.gdal_fork import loaded_gdal_libraries
>>> import rasterio
>>> import sys
>>> bool(loaded_gdal_libraries()) or not sys.platform.startswith("linux")
True
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

__all__ = [
    "clear_gdal_http_connections",
    "gdal_functions",
    "hook_installed",
    "install_fork_hook",
    "keep_unclosed_in_children",
    "loaded_gdal_libraries",
]

_FUNCTIONS: dict[tuple[str, str], Callable[..., None] | None] = {}
#: The last scan of ``/proc/self/maps``: the modules' stamp it was made at, and the GDAL libraries found.
_SCANNED: tuple[tuple[int, str | None], tuple[str, ...]] | None = None
_LOCK = threading.Lock()
_INSTALLED = False
#: The GDAL datasets this process holds open (weakly: they close as before when let go of).
_OPEN: weakref.WeakSet[object] = weakref.WeakSet()
#: Held from just before a fork to just after it (the parent then lets go).
_AT_FORK: list[object] = []
#: The parent's datasets a forked child inherited: never closed in the child.
_INHERITED: list[object] = []


def loaded_gdal_libraries() -> list[str]:
    """Paths of the GDAL shared libraries loaded in this process (Linux; else ``[]``).

    ``/proc/self/maps`` has a line per mapping (over a thousand once torch is
    imported: about 8 ms to read and split), and this runs on every entry of a
    storage's GDAL options. A GDAL library is loaded by importing the extension
    module that links it (rasterio, pyogrio, fiona, osgeo), so the scan is
    kept until ``sys.modules`` changes.
    """
    global _SCANNED
    try:
        stamp = (len(sys.modules), next(reversed(sys.modules), None))
    except RuntimeError:  # another thread imported during the look
        stamp = None
    scanned = _SCANNED
    if stamp is not None and scanned is not None and scanned[0] == stamp:
        return list(scanned[1])
    paths = _scan_gdal_libraries()
    if stamp is not None:
        _SCANNED = (stamp, tuple(paths))
    return paths


def _scan_gdal_libraries() -> list[str]:
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            lines = maps.readlines()
    except OSError:
        return []
    paths = set()
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) == 6:
            path = fields[5].strip()
            name = os.path.basename(path)
            if name.startswith("libgdal") and ".so" in name:
                paths.add(path)
    return sorted(paths)


def _lookup(path: str, name: str, argtypes: tuple[Any, ...]) -> Callable[..., None] | None:
    try:
        library = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        function = getattr(library, name)
    except (OSError, AttributeError):
        return None
    function.restype = None
    function.argtypes = list(argtypes)
    return function  # type: ignore[no-any-return]


def gdal_functions(name: str, argtypes: tuple[Any, ...] = ()) -> list[Callable[..., None]]:
    """Return the C function ``name`` (returning ``void``) of every GDAL library loaded in this process.

    Looked up once per library through ``ctypes`` (rasterio and pyogrio do not
    expose the cache functions); a library without it is left out.

    Parameters
    ----------
    name
        The GDAL function, e.g. ``"VSICurlClearCache"``.
    argtypes
        Its ``ctypes`` argument types.

    Returns
    -------
    list
        One callable per library that has the function.
    """
    found = []
    for path in loaded_gdal_libraries():
        with _LOCK:
            if (path, name) not in _FUNCTIONS:
                _FUNCTIONS[(path, name)] = _lookup(path, name, argtypes)
            function = _FUNCTIONS[(path, name)]
        if function is not None:
            found.append(function)
    return found


def clear_gdal_http_connections() -> int:
    """Call ``VSICurlClearCache()`` in every loaded GDAL; return how many were cleared."""
    functions = gdal_functions("VSICurlClearCache")
    for function in functions:
        function()
    return len(functions)


def keep_unclosed_in_children(dataset: object) -> None:
    """Register an open GDAL dataset so that a process forked later never closes it.

    The parent closes it as before (only a weak reference is kept); a child
    forked while it is open holds it until it exits.

    Parameters
    ----------
    dataset
        A rasterio dataset (anything that can be weakly referenced).

    Examples
    --------
    >>> import rasterio
    >>> from rasterio.io import MemoryFile
    >>> with MemoryFile() as memory:
    ...     with memory.open(driver="GTiff", width=1, height=1, count=1, dtype="uint8") as dataset:
    ...         keep_unclosed_in_children(dataset)
    """
    _OPEN.add(dataset)


def _before_fork() -> None:
    while True:  # held through the fork: the child keeps them
        try:
            _AT_FORK[:] = list(_OPEN)
            break
        except RuntimeError:  # another thread opened one while the set was copied: copy again
            continue
    try:
        clear_gdal_http_connections()
    except Exception:  # never break a fork over a cache
        return


def _after_fork_in_parent() -> None:
    _AT_FORK.clear()


def _after_fork_in_child() -> None:
    _INHERITED.extend(_AT_FORK)
    _AT_FORK.clear()


def install_fork_hook() -> None:
    """Register :func:`clear_gdal_http_connections` to run before every ``os.fork`` (once, thread-safe)."""
    global _INSTALLED
    with _LOCK:
        if _INSTALLED or not hasattr(os, "register_at_fork"):
            return
        os.register_at_fork(
            before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
        )
        _INSTALLED = True


def hook_installed() -> bool:
    """Whether :func:`install_fork_hook` has registered the hook in this process (or its parent)."""
    return _INSTALLED
