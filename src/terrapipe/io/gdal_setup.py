"""What terrapipe changes in the process, done once, when a stage first reads through GDAL.

Importing terrapipe changes nothing in the process. The first open of a
raster or of a GDAL vector (in each process: a spawned DataLoader worker does
it again; a forked one inherits it) calls :func:`ensure_gdal_setup`, which,
once and under a lock:

- registers the fork hook of :mod:`terrapipe.io.gdal_fork` (``os.register_at_fork``:
  no GDAL HTTP connection is shared with a forked worker);
- adds the redacting log filter of :mod:`terrapipe.io.gdal_log` to rasterio's,
  urllib3's and odc-stac's loggers (no signed URL in the logs);
- sets GDAL's per-process cache sizes (:func:`terrapipe.io.gdal_env.apply_process_settings`),
  unless you set them.

Nothing else of the process changes: ``os.environ`` is never written, and the
GDAL libraries are only looked up (``ctypes`` with ``RTLD_NOLOAD``) when a
process forks or a remote read failed.

Examples
--------
>>> ensure_gdal_setup()
>>> ensure_gdal_setup()  # idempotent
>>> from terrapipe.io import gdal_fork
>>> gdal_fork.hook_installed()
True
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from terrapipe.io.gdal_env import apply_process_settings
from terrapipe.io.gdal_fork import install_fork_hook
from terrapipe.io.gdal_log import collecting_messages, ensure_log_redaction

__all__ = ["ensure_gdal_setup", "gdal_messages", "gdal_setup_done"]

_LOCK = threading.Lock()
_DONE = False


def ensure_gdal_setup() -> None:
    """Install the fork hook and the log filter, and set GDAL's cache sizes: once per process, thread-safe."""
    global _DONE
    if _DONE:  # the common case: one global read, no lock
        return
    with _LOCK:
        if _DONE:
            return
        install_fork_hook()
        ensure_log_redaction()
        apply_process_settings()
        atexit.register(_close_at_exit)
        _DONE = True


def _close_at_exit() -> None:
    """Close the main thread's raster handles inside their environments when the process ends.

    Left to rasterio's deallocation, a GeoPackage on ``s3://`` was closed
    without the storage's credentials and GDAL's SQLite layer asked the
    instance-metadata server 169.254.169.254 for a role (its close looks for
    ``<name>-wal``).
    """
    handles = sys.modules.get("terrapipe.io.raster_array")  # not imported: no handle to close (and no cycle)
    if handles is None:
        return
    with contextlib.suppress(Exception):  # at exit: nothing to report to
        handles.close_thread_handles()


def gdal_setup_done() -> bool:
    """Whether :func:`ensure_gdal_setup` has run in this process (or in the parent it was forked from)."""
    return _DONE


@contextmanager
def gdal_messages() -> Iterator[list[str]]:
    """Set GDAL up (:func:`ensure_gdal_setup`) and collect the calling thread's GDAL messages in the block.

    A GDAL read follows: the log filter keeps its records (redacted), so the
    reader can say why a read failed (:func:`terrapipe.io.gdal_log.collecting_messages`).
    """
    ensure_gdal_setup()
    with collecting_messages() as collected:
        yield collected
