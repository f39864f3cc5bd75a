"""GDAL's own messages: redacted before they are logged, and kept to explain a failed read.

rasterio passes every GDAL warning and error to Python's logging (loggers
``rasterio._err`` and ``rasterio._env``); urllib3 (under ``requests``, the
STAC client) logs every URL it requests at debug level. Two things follow:

- GDAL names the URL it failed on, query string included (``HTTP error
  code: 503 - https://host/a.tif?X-Amz-Signature=...``), so a signed URL's
  signature would end up in the logs of a training run. A filter on those
  loggers (:data:`REDACTED_LOGGERS`) redacts every URL in a record
  (:func:`~terrapipe.core.redact.redact_urls`). It is added the first time
  terrapipe reads through GDAL or opens a urllib3 pool
  (:func:`ensure_log_redaction`), never on import.
- When a block read fails, rasterio's exception only says ``Read failed``;
  the reason (``response_code=503``) was a log record just before.
  :func:`collecting_messages` keeps the records of the calling thread while a
  read runs, so the reader can say what really happened.

Examples
--------
>>> import logging
>>> with collecting_messages() as messages:
...     logging.getLogger("rasterio._err").warning("HTTP error code: 503 - https://h/a.tif?sig=abc")
>>> messages
['HTTP error code: 503 - https://h/a.tif?...***']
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from terrapipe.core.redact import redact_urls

__all__ = [
    "GDAL_LOGGERS",
    "REDACTED_LOGGERS",
    "collecting_messages",
    "ensure_log_redaction",
    "install_log_redaction",
    "log_redaction_installed",
]

#: The loggers rasterio sends GDAL's messages to.
GDAL_LOGGERS = ("rasterio._err", "rasterio._env")
#: Every logger whose records are redacted: rasterio's (GDAL's messages, dataset names at
#: debug level) and urllib3's request lines.
REDACTED_LOGGERS = (
    "rasterio",
    *GDAL_LOGGERS,
    "rasterio._base",
    "rasterio._io",
    "rasterio._filepath",
    "rasterio._vsiopener",
    "rasterio.env",
    "rasterio.io",
    "rasterio.session",
    "urllib3.connectionpool",
    "odc.loader._rio",  # odc-stac logs each failed read with its URL ("Failed to load https://...?sig=...")
)
#: Most messages kept per read (the last ones matter).
MAX_MESSAGES = 50


class _Local(threading.local):
    def __init__(self) -> None:
        self.messages: list[str] | None = None


_LOCAL = _Local()


class _RedactAndKeep(logging.Filter):
    """Redact URLs in a record; keep its text for :func:`gdal_messages` of this thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = redact_urls(text)
        if clean != text:
            record.msg, record.args = clean, None
        kept = _LOCAL.messages
        if kept is not None:
            kept.append(clean)
            del kept[:-MAX_MESSAGES]
        return True


_FILTER = _RedactAndKeep()
_LOCK = threading.Lock()
_INSTALLED = False


def install_log_redaction() -> None:
    """Add the filter to every logger of :data:`REDACTED_LOGGERS` that lacks it (thread-safe).

    Also after a ``logging.config.dictConfig`` that replaced the loggers' filters.
    """
    global _INSTALLED
    with _LOCK:
        for name in REDACTED_LOGGERS:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
        _INSTALLED = True


def ensure_log_redaction() -> None:
    """:func:`install_log_redaction` once per process (the first read or urllib3 pool); cheap afterwards."""
    if not _INSTALLED:
        install_log_redaction()


def log_redaction_installed() -> bool:
    """Whether the filter was added in this process (or the parent it was forked from)."""
    return _INSTALLED


@contextmanager
def collecting_messages() -> Iterator[list[str]]:
    """Collect the (redacted) GDAL messages the calling thread logs inside the block.

    Debug messages are collected too when the logger lets them through; a
    logger set above a message's level drops it before it reaches the filter.
    The filter must be installed (:func:`ensure_log_redaction`); readers use
    :func:`terrapipe.io.gdal_setup.gdal_messages`, which also sets GDAL up.
    """
    ensure_log_redaction()
    previous = _LOCAL.messages
    collected: list[str] = []
    _LOCAL.messages = collected
    try:
        yield collected
    finally:
        _LOCAL.messages = previous
