"""A small blocking HTTP client for the readers: ranges, retries, time-outs, fork safety.

Used by :class:`~terrapipe.io.http_store.HTTPStore` (Zarr) and
:class:`~terrapipe.io.http_file.HTTPFile` (file-like access for netCDF and
GeoParquet). Standard library only (``http.client``).

- Each thread keeps its own keep-alive connection per host; a forked process
  drops the connections it inherited and opens its own.
- ``429`` and ``5xx`` answers, time-outs, dropped connections and answers
  cut short are retried ``retries`` times with exponential back-off (every
  request it sends is a ``GET`` or ``HEAD``: repeating one is harmless).
- ``404`` is returned (a missing Zarr key is not an error); any other failure
  raises :class:`~terrapipe.core.errors.ReadError` naming the URL.

Examples
--------
>>> from terrapipe.io.http_client import HTTPOptions, range_header
>>> HTTPOptions(timeout=5).retries
3
>>> HTTPOptions.make(headers={"Authorization": "Bearer abc"})
HTTPOptions(timeout=30.0, retries=3, retry_delay=0.5, headers={'Authorization': '***'})
>>> range_header(10, 20), range_header(10, None), range_header(None, 5)
('bytes=10-19', 'bytes=10-', 'bytes=-5')
"""

from __future__ import annotations

import http.client
import os
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from terrapipe.core.errors import InvalidArgumentError, ReadError
from terrapipe.io.read_errors import explain
from terrapipe.io.redact import redact_headers, redact_url

__all__ = ["HTTPOptions", "HTTPResponse", "fetch", "range_header"]

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, repr=False)
class HTTPOptions:
    """How requests are made.

    Attributes
    ----------
    timeout
        Seconds to wait for a connection or for data.
    retries
        Retries of a 429/5xx answer, a time-out, a dropped connection or an
        answer cut short.
    retry_delay
        First back-off in seconds, doubled at each retry.
    headers
        Extra request headers, as sorted ``(name, value)`` pairs (their values
        never appear in the repr or in messages).
    """

    timeout: float = 30.0
    retries: int = 3
    retry_delay: float = 0.5
    headers: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.timeout > 0 or self.retries < 0 or self.retry_delay < 0:
            msg = (
                "timeout must be > 0 and retries, retry_delay >= 0; got "
                f"timeout={self.timeout!r}, retries={self.retries!r}, retry_delay={self.retry_delay!r}"
            )
            raise InvalidArgumentError(msg)

    def __repr__(self) -> str:
        shown = redact_headers(dict(self.headers))
        return (
            f"HTTPOptions(timeout={self.timeout!r}, retries={self.retries!r}, "
            f"retry_delay={self.retry_delay!r}, headers={shown})"
        )

    @classmethod
    def make(
        cls,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        retry_delay: float = 0.5,
        headers: Mapping[str, str] | None = None,
    ) -> HTTPOptions:
        """Build options from keyword arguments (``headers`` as a mapping)."""
        pairs = tuple(sorted((str(k), str(v)) for k, v in (headers or {}).items()))
        return cls(
            timeout=float(timeout), retries=int(retries), retry_delay=float(retry_delay), headers=pairs
        )


@dataclass(frozen=True)
class HTTPResponse:
    """Status, headers (lower-case names) and body of one answer."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class _Connections(threading.local):
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.pool: dict[tuple[str, str, int, float], http.client.HTTPConnection] = {}

    def get(self, key: tuple[str, str, int, float]) -> http.client.HTTPConnection:
        if self.pid != os.getpid():  # inherited through fork: those sockets are the parent's
            self.pid, self.pool = os.getpid(), {}
        conn = self.pool.get(key)
        if conn is None:
            scheme, host, port, timeout = key
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            conn = cls(host, port, timeout=timeout)
            self.pool[key] = conn
        return conn

    def drop(self, key: tuple[str, str, int, float]) -> None:
        conn = self.pool.pop(key, None)
        if conn is not None:
            conn.close()


_CONNECTIONS = _Connections()


def range_header(start: int | None, stop: int | None) -> str:
    """Return a ``Range`` header value: ``[start, stop)``, ``start-`` or the last ``stop`` bytes."""
    if start is None:
        if stop is None:
            raise InvalidArgumentError("range_header needs start or stop")
        return f"bytes=-{stop}"
    if stop is None:
        return f"bytes={start}-"
    return f"bytes={start}-{stop - 1}"


def fetch(
    url: str, options: HTTPOptions, *, method: str = "GET", range_value: str | None = None
) -> HTTPResponse:
    """Send one request with retries; return the answer (``200``, ``206`` or ``404``).

    Raises
    ------
    ReadError
        On an error status other than 404 (after retries for 429/5xx), or
        time-outs and connection failures that outlast the retries.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError(f"expected an http(s):// URL, got {redact_url(url)!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    key = (parts.scheme, parts.hostname, port, options.timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = dict(options.headers)
    if range_value:
        headers["Range"] = range_value
    shown = redact_url(url)
    delay = options.retry_delay
    for attempt in range(options.retries + 1):
        last = attempt == options.retries
        tries = f" (after {attempt + 1} tries)" if attempt else ""
        conn = _CONNECTIONS.get(key)
        try:
            conn.request(method, target, headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.will_close:
                _CONNECTIONS.drop(key)
        except TimeoutError as err:
            _CONNECTIONS.drop(key)
            if last:
                msg = (
                    f"cannot read {shown!r}: the server did not answer within {options.timeout:g} s{tries}; "
                    "check that it is up, or raise the timeout"
                )
                raise ReadError(msg) from err
            time.sleep(delay)
            delay *= 2
            continue
        except (http.client.HTTPException, OSError) as err:
            _CONNECTIONS.drop(key)
            if last:
                cause, hint = explain(err)
                raise ReadError(f"cannot read {shown!r}: {cause}{tries}; {hint}") from err
            time.sleep(delay)
            delay *= 2
            continue
        status = response.status
        if status in _RETRY_STATUS and not last:
            time.sleep(delay)
            delay *= 2
            continue
        if status in (200, 206, 404):
            names = {k.lower(): v for k, v in response.getheaders()}
            return HTTPResponse(status=status, headers=names, body=body)
        cause, hint = explain(RuntimeError(f"HTTP status {status}"))
        raise ReadError(f"cannot read {shown!r}: {cause}{tries}; {hint}")
    raise AssertionError("unreachable")  # pragma: no cover
