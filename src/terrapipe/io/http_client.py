"""The readers' HTTP requests, now a few names over the byte layer (:mod:`terrapipe.io.http_reads`).

:func:`fetch` is :func:`terrapipe.io.http_reads.read`. :class:`HTTPOptions` is
deprecated: it builds the :class:`~terrapipe.io.storage.Storage` of the same
meaning (``retry_delay`` is ``backoff``, ``max_body`` is ``max_bytes``).

Examples
--------
>>> import warnings
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore", DeprecationWarning)
...     HTTPOptions(timeout=5, retry_delay=0.1, max_body=1000)
Storage(s3_endpoint=None, azure_endpoint=None, gcs_endpoint=None, region=None, credentials=[], timeout=5.0, deadline=120.0, retries=3, concurrency=16, max_bytes=1000)
>>> range_header(10, 20), range_header(None, 5)
('bytes=10-19', 'bytes=-5')
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from terrapipe.core.errors import TerrapipeDeprecationWarning
from terrapipe.io.http_reads import DEFAULT_DEADLINE, DEFAULT_MAX_BODY, MAX_REDIRECTS, ByteRange, Reply, read
from terrapipe.io.storage import Storage

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_BODY",
    "MAX_REDIRECTS",
    "ByteRange",
    "HTTPOptions",
    "HTTPResponse",
    "fetch",
    "range_header",
]

#: The checked answer of :func:`fetch` (status, lower-case headers, body, the file's total size).
HTTPResponse = Reply


class _StorageAlias(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        """Count every Storage as an HTTPOptions."""
        return isinstance(obj, Storage)


class _HTTPOptions(metaclass=_StorageAlias):
    """Deprecated: build a ``tp.Storage`` instead (this returns one; every ``Storage`` is an ``HTTPOptions``)."""

    def __new__(  # type: ignore[misc]
        cls,
        timeout: float = 30.0,
        retries: int = 3,
        retry_delay: float = 0.5,
        headers: Mapping[str, str] | tuple[tuple[str, str], ...] = (),
        deadline: float = DEFAULT_DEADLINE,
        max_body: int = DEFAULT_MAX_BODY,
        _stacklevel: int = 2,
    ) -> Storage:
        """Warn, and return the Storage these options mean."""
        warnings.warn(
            "terrapipe.io.HTTPOptions is deprecated: pass a tp.Storage(timeout=..., retries=..., "
            "backoff=..., headers=..., deadline=..., max_bytes=...) instead",
            TerrapipeDeprecationWarning,
            stacklevel=_stacklevel,
        )
        pairs = tuple(sorted((str(k), str(v)) for k, v in dict(headers or {}).items()))
        return Storage(
            timeout=float(timeout), retries=int(retries), backoff=float(retry_delay), headers=pairs,
            deadline=float(deadline), max_bytes=int(max_body),
        )  # fmt: skip

    @classmethod
    def make(cls, **kwargs: Any) -> Storage:
        """Build a Storage from the same keywords (``headers`` as a mapping); deprecated, as the class."""
        return cls.__new__(cls, _stacklevel=3, **kwargs)


if TYPE_CHECKING:  # to a type checker the old name is the new class: annotations keep meaning it
    HTTPOptions = Storage
else:
    HTTPOptions = _HTTPOptions
    HTTPOptions.__name__ = HTTPOptions.__qualname__ = "HTTPOptions"


def range_header(start: int | None, stop: int | None) -> str:
    """Return the ``Range`` header value of ``ByteRange(start, stop)``."""
    return ByteRange(start, stop).header()


def fetch(
    url: str,
    options: Storage | None = None,
    *,
    method: str = "GET",
    byte_range: ByteRange | None = None,
    range_value: str | None = None,
    expected_total: int | None = None,
) -> Reply:
    """Send one checked request (see :func:`terrapipe.io.http_reads.read`); return 200, 206 or 404.

    ``range_value`` is the same as ``byte_range``, as a ``Range`` header value.
    """
    wanted = byte_range if byte_range is not None else (ByteRange.parse(range_value) if range_value else None)
    return read(url, options, method=method, byte_range=wanted, expected_total=expected_total)
