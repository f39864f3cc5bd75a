"""A small blocking HTTP client for the readers: checked ranges, deadlines, size caps, retries.

Used by :class:`~terrapipe.io.http_store.HTTPStore` (Zarr) and
:class:`~terrapipe.io.http_file.HTTPFile` (file-like access for netCDF and
GeoParquet). Standard library only (``http.client``): it needs no extra
package and is fork-safe, which fsspec's asynchronous HTTP is not (issue #19
plans to move the readers to one byte layer; until then this is what they use).

What it promises (``docs/reliability.md``, "Network reads"):

- **Checked ranges.** A ranged ``GET`` returns exactly the bytes asked for or
  raises :class:`~terrapipe.core.errors.ReadError`: a ``206`` must carry a
  ``Content-Range`` naming the range asked for (start, end and, where the
  caller knows it, the file's total size) and a body of that length; a
  ``200`` (a server that ignores ``Range``, which HTTP allows) is cut to the
  range while it streams, keeping no more than the range in memory.
- **An overall deadline** (:attr:`HTTPOptions.deadline`) for the whole
  request: connection, redirects, every retry and back-off, and every byte of
  the answer. ``timeout`` still bounds each wait for the network; the
  deadline bounds their sum, so a server that trickles a byte a second
  cannot hold a reader for ever.
- **A size cap** (:attr:`HTTPOptions.max_body`) on every answer, counted after
  decompression (a ``Content-Encoding: gzip`` answer is inflated in steps and
  refused as soon as it passes the cap); for a ranged read the cap is the
  range's length. Answers whose end cannot be told from a cut (neither
  ``Content-Length`` nor chunked encoding) are refused.
- **Credentials stay with their origin.** Redirects are followed (at most
  :data:`MAX_REDIRECTS`), but the configured headers (``Authorization``, API
  keys: all of them, whatever their names) are sent only to the scheme, host
  and port they were given for; a query string is never carried over.
- ``429`` and ``5xx`` answers, time-outs, dropped connections and answers cut
  short are retried ``retries`` times with exponential back-off, within the
  deadline. ``404`` is returned (a missing Zarr key is not an error); any
  other failure raises :class:`~terrapipe.core.errors.ReadError` naming the
  URL as ``scheme://host/path``.
- Each thread keeps its own keep-alive connection per origin; a forked
  process drops the connections it inherited. A connection on which the
  server sent bytes nobody asked for is not reused.

Examples
--------
>>> from terrapipe.io.http_client import ByteRange, HTTPOptions, range_header
>>> HTTPOptions(timeout=5).retries
3
>>> HTTPOptions.make(headers={"Authorization": "Bearer abc"})
HTTPOptions(timeout=30.0, retries=3, retry_delay=0.5, deadline=120.0, max_body=268435456, headers={'Authorization': '***'})
>>> range_header(10, 20), range_header(10, None), range_header(None, 5)
('bytes=10-19', 'bytes=10-', 'bytes=-5')
>>> ByteRange(10, 20).expected(15), ByteRange(None, 5).expected(100)
((10, 14), (95, 99))
"""

from __future__ import annotations

import http.client
import io
import os
import re
import select
import threading
import time
import urllib.parse
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from terrapipe.core.errors import InvalidArgumentError, ReadError
from terrapipe.io.paths import origin_of
from terrapipe.io.read_errors import explain
from terrapipe.io.redact import public_url, redact_headers

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

#: Seconds one request may take in all (connection, redirects, retries, back-off, body).
DEFAULT_DEADLINE = 120.0
#: Largest answer body kept, in bytes, counted after decompression (256 MiB).
DEFAULT_MAX_BODY = 256 * 1024 * 1024
#: Redirects followed per request.
MAX_REDIRECTS = 5

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
_BLOCK = 1024 * 1024  # bytes read (or inflated) per step
_SMALL_BODY = 64 * 1024  # what is read of an error or redirect answer before the connection is dropped
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


@dataclass(frozen=True, repr=False)
class HTTPOptions:
    """How requests are made.

    Attributes
    ----------
    timeout
        Seconds to wait for a connection or for the next bytes of an answer.
    retries
        Retries of a 429/5xx answer, a time-out, a dropped connection or an
        answer cut short.
    retry_delay
        First back-off in seconds, doubled at each retry.
    headers
        Extra request headers, as sorted ``(name, value)`` pairs (their values
        never appear in the repr or in messages). They are sent to the origin
        of the URL asked for only, never to another host after a redirect.
    deadline
        Seconds one request may take in all, every try, back-off and byte of
        the answer included (default :data:`DEFAULT_DEADLINE`). On expiry a
        :class:`~terrapipe.core.errors.ReadError` names it.
    max_body
        Largest answer body in bytes, counted after decompression (default
        :data:`DEFAULT_MAX_BODY`); a larger one is a
        :class:`~terrapipe.core.errors.ReadError`. A ranged read is capped at
        the range's length whatever this is.
    """

    timeout: float = 30.0
    retries: int = 3
    retry_delay: float = 0.5
    headers: tuple[tuple[str, str], ...] = field(default=())
    deadline: float = DEFAULT_DEADLINE
    max_body: int = DEFAULT_MAX_BODY

    def __post_init__(self) -> None:
        if not self.timeout > 0 or self.retries < 0 or self.retry_delay < 0:
            msg = (
                "timeout must be > 0 and retries, retry_delay >= 0; got "
                f"timeout={self.timeout!r}, retries={self.retries!r}, retry_delay={self.retry_delay!r}"
            )
            raise InvalidArgumentError(msg)
        if not self.deadline > 0 or not self.max_body > 0:
            msg = f"deadline and max_body must be > 0; got deadline={self.deadline!r}, max_body={self.max_body!r}"
            raise InvalidArgumentError(msg)

    def __repr__(self) -> str:
        shown = redact_headers(dict(self.headers))
        return (
            f"HTTPOptions(timeout={self.timeout!r}, retries={self.retries!r}, "
            f"retry_delay={self.retry_delay!r}, deadline={self.deadline!r}, "
            f"max_body={self.max_body!r}, headers={shown})"
        )

    __str__ = __repr__

    @classmethod
    def make(
        cls,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        retry_delay: float = 0.5,
        headers: Mapping[str, str] | None = None,
        deadline: float = DEFAULT_DEADLINE,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> HTTPOptions:
        """Build options from keyword arguments (``headers`` as a mapping)."""
        pairs = tuple(sorted((str(k), str(v)) for k, v in (headers or {}).items()))
        return cls(
            timeout=float(timeout),
            retries=int(retries),
            retry_delay=float(retry_delay),
            headers=pairs,
            deadline=float(deadline),
            max_body=int(max_body),
        )


@dataclass(frozen=True)
class ByteRange:
    """A byte range to ask for: ``[start, stop)``, ``start`` to the end, or the last ``stop`` bytes.

    ``ByteRange(10, 20)`` is bytes 10 to 19, ``ByteRange(10, None)`` bytes 10
    to the end, ``ByteRange(None, 5)`` the last 5 bytes.
    """

    start: int | None
    stop: int | None

    def __post_init__(self) -> None:
        start, stop = self.start, self.stop
        if start is None and stop is None:
            raise InvalidArgumentError("a byte range needs a start or a stop")
        if (start is not None and start < 0) or (stop is not None and stop < 0):
            raise InvalidArgumentError(f"a byte range cannot be negative, got {self!r}")
        if start is not None and stop is not None and stop <= start:
            raise InvalidArgumentError(f"a byte range must not be empty, got {self!r}")

    @classmethod
    def parse(cls, value: str) -> ByteRange:
        """Read a ``Range`` header value (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``)."""
        match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)-(\d*)\s*", value)
        if match is None or not (match.group(1) or match.group(2)):
            raise InvalidArgumentError(
                f"expected one range 'bytes=a-b', 'bytes=a-' or 'bytes=-n', got {value!r}"
            )
        first, last = match.group(1), match.group(2)
        if not first:
            return cls(None, int(last))
        return cls(int(first), int(last) + 1 if last else None)

    def header(self) -> str:
        """Return the ``Range`` header value."""
        return range_header(self.start, self.stop)

    def expected(self, total: int) -> tuple[int, int] | None:
        """``(first, last)`` byte (inclusive) a server must send for a file of ``total`` bytes.

        ``None`` when the range lies wholly past the end (an HTTP 416).
        """
        if self.start is None:
            assert self.stop is not None
            return (max(0, total - self.stop), total - 1) if total and self.stop else None
        if self.start >= total:
            return None
        last = total - 1 if self.stop is None else min(self.stop, total) - 1
        return self.start, last

    @property
    def length(self) -> int | None:
        """The most bytes the answer can hold (``None`` for ``start`` to the end)."""
        if self.start is None:
            return self.stop
        return None if self.stop is None else self.stop - self.start


@dataclass(frozen=True)
class HTTPResponse:
    """Status, headers (lower-case names) and body of one answer.

    ``total`` is the size of the whole file where the answer tells it (the
    ``Content-Range`` total of a ``206``, the length of a ``200``), else ``None``.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    total: int | None = None


# -- errors inside a try ------------------------------------------------------------------------
class _DeadlineExpiredError(Exception):
    """The request's overall deadline ran out."""


class _RefusedError(Exception):
    """The answer is wrong in a way that a retry will not mend: a ReadError at once."""


class _CutShortError(Exception):
    """The answer ended before it was complete: retried like a dropped connection."""


# -- deadline-aware sockets ---------------------------------------------------------------------
class _Guard:
    """The end of a request's deadline, and the per-wait timeout under it."""

    def __init__(self, options: HTTPOptions) -> None:
        self.end = time.monotonic() + options.deadline
        self.timeout = options.timeout

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def wait(self) -> float:
        """Seconds the next network wait may take; raises once the deadline has passed."""
        left = self.remaining()
        if left <= 0:
            raise _DeadlineExpiredError
        return min(self.timeout, left)

    def check(self) -> None:
        self.wait()


class _GuardedRaw(io.RawIOBase):
    """The socket's reads, each bounded by the deadline (``http.client`` reads headers and body here)."""

    def __init__(self, sock: Any, guard: _Guard) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # takes part in the socket's reference count
        self._guard = guard
        self._timeout: float | None = None  # as last set on the socket (setting it costs system calls)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wait = self._guard.wait()
        if wait != self._timeout:
            self._sock.settimeout(wait)
            self._timeout = wait
        try:
            n: int | None = self._raw.readinto(buffer)
        except TimeoutError:
            if self._guard.remaining() <= 0:
                raise _DeadlineExpiredError from None
            raise
        return n or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


class _SocketView:
    """What ``HTTPResponse`` sees of the socket: a ``makefile`` over :class:`_GuardedRaw`."""

    def __init__(self, sock: Any, guard: _Guard) -> None:
        self._sock, self._guard = sock, guard

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_GuardedRaw(self._sock, self._guard))


class _GuardedResponse(http.client.HTTPResponse):
    def __init__(
        self, sock: Any, debuglevel: int = 0, method: str | None = None, url: str | None = None
    ) -> None:
        guard = _CONNECTIONS.guard
        view = sock if guard is None else _SocketView(sock, guard)
        super().__init__(cast(Any, view), debuglevel, method, url)


class _Connection(http.client.HTTPConnection):
    response_class = _GuardedResponse


class _SecureConnection(http.client.HTTPSConnection):
    # the TLS handshake needs no guard: CPython bounds a whole do_handshake() by the socket's
    # time-out, which is set from the deadline before connecting
    response_class = _GuardedResponse


_Key = tuple[str, str, int]


class _Connections(threading.local):
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.pool: dict[_Key, http.client.HTTPConnection] = {}
        self.guard: _Guard | None = None

    def get(self, key: _Key, guard: _Guard) -> http.client.HTTPConnection:
        if self.pid != os.getpid():  # inherited through fork: those sockets are the parent's
            self.pid, self.pool = os.getpid(), {}
        conn = self.pool.get(key)
        if conn is not None and conn.sock is not None and _has_unasked_bytes(conn.sock):
            self.drop(key)  # the server closed it, or sent bytes nobody asked for
            conn = None
        if conn is None:
            scheme, host, port = key
            cls = _SecureConnection if scheme == "https" else _Connection
            conn = cls(host, port, timeout=guard.wait())
            self.pool[key] = conn
        wait = guard.wait()
        conn.timeout = wait  # for a new connection
        if conn.sock is not None:
            conn.sock.settimeout(wait)  # for sending on a kept one
        self.guard = guard
        return conn

    def drop(self, key: _Key) -> None:
        conn = self.pool.pop(key, None)
        if conn is not None:
            conn.close()


def _has_unasked_bytes(sock: Any) -> bool:
    """Whether an idle kept-alive socket is readable (closed by the server, or stray bytes).

    Bytes a server sends before it is asked must never be read as the next
    answer (a second, forged answer appended to the first).
    """
    pending = getattr(sock, "pending", None)  # bytes TLS has decrypted but nobody read
    if callable(pending) and pending():
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


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


# -- reading answers ------------------------------------------------------------------------------
def _too_large(cap: int, what: str) -> _RefusedError:
    hint = (
        "raise max_body= (HTTPOptions, HTTPStore) if the file really is that large"
        if "max_body" in what
        else "the server sends more than it was asked for"
    )
    return _RefusedError(
        f"the answer is larger than {what} of {cap} bytes (decompressed size counted); {hint}"
    )


def _read_capped(response: http.client.HTTPResponse, cap: int, guard: _Guard, what: str) -> bytes:
    """Return the whole body, refused as soon as it passes ``cap`` bytes."""
    promised = response.length
    if promised is not None and promised > cap:
        raise _too_large(cap, what)
    if promised is not None:
        # one read into one buffer of the announced size (IncompleteRead if cut short); every
        # wait for the network inside it is bounded by the deadline (_GuardedRaw)
        return response.read()
    body = bytearray()
    while True:
        guard.check()
        piece = response.read(min(_BLOCK, cap + 1 - len(body)))
        if not piece:
            _check_complete(promised, len(body))
            return bytes(body)
        body += piece
        if len(body) > cap:
            raise _too_large(cap, what)


def _inflate(response: http.client.HTTPResponse, encoding: str, cap: int, guard: _Guard) -> bytes:
    """Inflate a gzip/deflate body in steps, refused as soon as it passes ``cap`` bytes."""
    wbits = 47 if encoding in ("gzip", "x-gzip") else 15  # 47: gzip or zlib header
    what = "the cap (max_body)"
    decoder = zlib.decompressobj(wbits)
    out = bytearray()
    seen_input = 0
    promised = response.length
    while True:
        guard.check()
        data = response.read(min(_BLOCK, cap + 1))
        if not data:
            _check_complete(promised, seen_input)
            break
        seen_input += len(data)
        while data:
            guard.check()
            try:
                out += decoder.decompress(data, min(_BLOCK, cap + 1 - len(out)))
            except zlib.error as err:
                raise _RefusedError(f"its {encoding}-encoded answer cannot be decoded ({err})") from err
            if len(out) > cap:
                raise _too_large(cap, what)
            if decoder.eof:
                data = decoder.unused_data  # a further gzip member
                if data:
                    decoder = zlib.decompressobj(wbits)
            else:
                data = decoder.unconsumed_tail
    if seen_input and not decoder.eof:
        raise _CutShortError(f"its {encoding}-encoded answer was cut short")
    return bytes(out)


def _stream_slice(
    response: http.client.HTTPResponse, wanted: ByteRange, cap: int, guard: _Guard
) -> tuple[bytes, int | None]:
    """Cut ``wanted`` out of a whole file as it streams (a ``200`` to a ranged request).

    Keeps at most the range (or ``cap`` for ``start``-to-the-end) in memory;
    returns the slice and the file's total size where known.
    """
    kept = bytearray()
    seen = 0
    complete = False
    promised = response.length
    start, stop = wanted.start, wanted.stop
    while True:
        guard.check()
        if start is not None and stop is not None and seen >= stop:
            break  # the rest of the file is not needed: the connection is dropped
        piece = response.read(_BLOCK)
        if not piece:
            _check_complete(promised, seen)
            complete = True
            break
        low, seen = seen, seen + len(piece)
        if start is None:  # the last `stop` bytes
            kept += piece
            assert stop is not None
            del kept[: max(0, len(kept) - stop)]
            continue
        first = max(start, low)
        last = seen if stop is None else min(stop, seen)
        if last > first:
            kept += piece[first - low : last - low]
        if stop is None and len(kept) > cap:
            raise _too_large(cap, "the cap (max_body)")
    return bytes(kept), (seen if complete else _header_length(response))


def _check_complete(promised: int | None, got: int) -> None:
    """Refuse a body that ended before its ``Content-Length`` (``http.client`` returns it short)."""
    if promised is not None and got < promised:
        raise _CutShortError(
            f"the server's answer was cut short ({got} of the {promised} bytes of its Content-Length)"
        )


def _header_length(response: http.client.HTTPResponse) -> int | None:
    """Return the ``Content-Length`` as sent, where it is one plain number (else ``None``)."""
    value = (response.getheader("content-length") or "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def _ends_knowably(response: http.client.HTTPResponse) -> bool:
    """Whether a cut can be told from the end: a valid ``Content-Length``, or chunked encoding."""
    return bool(response.chunked) or (response.length is not None and _header_length(response) is not None)


def _encoding(response: http.client.HTTPResponse) -> str:
    return (response.getheader("content-encoding") or "identity").strip().lower()


def _read_ranged(
    response: http.client.HTTPResponse,
    wanted: ByteRange,
    expected_total: int | None,
    options: HTTPOptions,
    guard: _Guard,
) -> tuple[bytes, int | None]:
    """Check and read the answer to a ranged ``GET`` (a ``206``, or a ``200`` to cut)."""
    asked = wanted.header()
    encoding = _encoding(response)
    if encoding != "identity":
        raise _RefusedError(
            f"it answered a request for {asked} with a {encoding}-encoded body (asked for identity): "
            "its bytes are not the file's bytes"
        )
    if not _ends_knowably(response):
        raise _RefusedError(
            "its answer has no valid Content-Length and no chunked encoding: a cut cannot be told from the end"
        )
    if response.status == 200:
        length = _header_length(response)
        if expected_total is not None and length is not None and length != expected_total:
            raise _RefusedError(_size_changed(expected_total, length))
        body, total = _stream_slice(response, wanted, options.max_body, guard)
        if total is not None and wanted.expected(total) is None:
            raise _RefusedError(f"{asked} lies past the end of the file ({total} bytes)")
        if expected_total is not None and total is not None and total != expected_total:
            raise _RefusedError(_size_changed(expected_total, total))
        return body, total
    content_range = response.getheader("content-range")
    match = _CONTENT_RANGE.match(content_range or "")
    if match is None or match.group(3) == "*":
        raise _RefusedError(
            f"its 206 answer to {asked} has no usable Content-Range ({content_range!r}; "
            "expected 'bytes first-last/total')"
        )
    first, last, total = int(match.group(1)), int(match.group(2)), int(match.group(3))
    if expected_total is not None and total != expected_total:
        raise _RefusedError(_size_changed(expected_total, total))
    expected = wanted.expected(total)
    if expected is None or (first, last) != expected:
        want = "nothing (past the end)" if expected is None else f"bytes {expected[0]}-{expected[1]}/{total}"
        raise _RefusedError(
            f"it answered {asked} with Content-Range 'bytes {first}-{last}/{total}' instead of {want}: "
            "those are other bytes of the file"
        )
    size = last - first + 1
    length = _header_length(response)
    if length is not None and length != size:
        raise _RefusedError(
            f"its answer to {asked} has Content-Length {length} but Content-Range 'bytes {first}-{last}/{total}' "
            f"({size} bytes)"
        )
    body = _read_capped(response, size, guard, f"the range asked for ({asked})")
    if len(body) != size:
        raise _RefusedError(
            f"its answer to {asked} holds {len(body)} bytes, not the {size} of its Content-Range"
        )
    return body, total


def _size_changed(before: int, now: int) -> str:
    return (
        f"the file's size changed from {before} to {now} bytes between requests "
        "(replaced while being read?); open it again"
    )


def _read_whole(response: http.client.HTTPResponse, options: HTTPOptions, guard: _Guard) -> bytes:
    """Read the answer to a plain ``GET``, inflating gzip/deflate within the cap."""
    if response.status == 206:
        raise _RefusedError("it answered a request for the whole file with 206 (a part of it)")
    if not _ends_knowably(response):
        raise _RefusedError(
            "its answer has no valid Content-Length and no chunked encoding: a cut cannot be told from the end"
        )
    encoding = _encoding(response)
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _inflate(response, encoding, options.max_body, guard)
    if encoding != "identity":
        raise _RefusedError(
            f"it sent the answer {encoding}-encoded, which terrapipe cannot decode (asked for identity)"
        )
    return _read_capped(response, options.max_body, guard, "the cap (max_body)")


def _discard(response: http.client.HTTPResponse) -> None:
    """Read a small answer we do not use (so the connection can be reused)."""
    if response.length is not None and response.length <= _SMALL_BODY:
        response.read()


# -- one request ----------------------------------------------------------------------------------
def _checked_origin(url: str) -> _Key:
    """Return the origin of a URL :func:`_split` accepted (an HTTP(S) URL with a host)."""
    origin = origin_of(url)
    assert origin is not None, "_split accepted a URL without an origin"
    return origin


def _split(url: str) -> urllib.parse.SplitResult:
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as err:
        raise InvalidArgumentError(f"not a valid URL: {public_url(url)!r}") from err
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError(f"expected an http(s):// URL, got {public_url(url)!r}")
    return parts


def _once(
    url: str,
    options: HTTPOptions,
    method: str,
    wanted: ByteRange | None,
    expected_total: int | None,
    guard: _Guard,
) -> HTTPResponse:
    """One try: send, follow redirects (credentials only to their origin), check and read the answer."""
    home = _checked_origin(url)
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        parts = _split(current)
        key = _checked_origin(current)
        headers = dict(options.headers) if key == home else {}
        if wanted is not None:
            headers["Range"] = wanted.header()
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = _CONNECTIONS.get(key, guard)
        try:
            conn.request(method, target, headers=headers)
            response = conn.getresponse()
            result = _handle(response, current, options, method, wanted, expected_total, guard)
        except BaseException:
            _CONNECTIONS.drop(key)
            raise
        finally:
            _CONNECTIONS.guard = None
        if response.will_close or not response.isclosed():
            _CONNECTIONS.drop(key)  # closed by the server, or body left unread
        if isinstance(result, str):
            current = result
            continue
        return result
    raise _RefusedError(f"more than {MAX_REDIRECTS} redirects")


def _handle(
    response: http.client.HTTPResponse,
    url: str,
    options: HTTPOptions,
    method: str,
    wanted: ByteRange | None,
    expected_total: int | None,
    guard: _Guard,
) -> HTTPResponse | str:
    """Return the checked answer, or the next URL of a redirect."""
    status = response.status
    names = {k.lower(): v for k, v in response.getheaders()}
    if status in _REDIRECT_STATUS:
        location = response.getheader("location")
        _discard(response)
        if not location:
            raise _RefusedError(f"HTTP {status} (a redirect) without a Location")
        nxt = urllib.parse.urljoin(url, location.strip())
        try:
            _split(nxt)
        except InvalidArgumentError as err:
            raise _RefusedError(
                f"HTTP {status} redirects to a URL that is not a usable http(s) URL ({public_url(nxt)!r})"
            ) from err
        return nxt
    if status == 404:
        _discard(response)
        return HTTPResponse(status=404, headers=names, body=b"")
    if status not in (200, 206):
        _discard(response)
        return HTTPResponse(status=status, headers=names, body=b"")
    if method == "HEAD":
        response.read()  # nothing to read: marks the answer done, so the connection is kept
        return HTTPResponse(status=status, headers=names, body=b"", total=_header_length(response))
    if wanted is not None:
        body, total = _read_ranged(response, wanted, expected_total, options, guard)
        return HTTPResponse(status=status, headers=names, body=body, total=total)
    body = _read_whole(response, options, guard)
    if expected_total is not None and len(body) != expected_total:
        raise _RefusedError(_size_changed(expected_total, len(body)))
    return HTTPResponse(status=status, headers=names, body=body, total=len(body))


def fetch(
    url: str,
    options: HTTPOptions,
    *,
    method: str = "GET",
    byte_range: ByteRange | None = None,
    range_value: str | None = None,
    expected_total: int | None = None,
) -> HTTPResponse:
    """Send one request with retries; return the checked answer (``200``, ``206`` or ``404``).

    Parameters
    ----------
    url
        An ``http(s)://`` URL.
    options
        Time-out, deadline, size cap, retries and headers.
    method
        ``"GET"`` or ``"HEAD"``.
    byte_range
        The bytes to read (``range_value``: the same as a ``Range`` header
        value). The body returned is exactly those bytes.
    expected_total
        The file's size as known from earlier requests: an answer for a file
        of another size is refused (the file was replaced).

    Raises
    ------
    ReadError
        On an error status other than 404 (after retries for 429/5xx),
        time-outs and connection failures that outlast the retries, an answer
        that is not the range asked for, larger than the cap, or slower than
        the deadline.
    """
    wanted = byte_range if byte_range is not None else (ByteRange.parse(range_value) if range_value else None)
    _split(url)
    shown = public_url(url)
    guard = _Guard(options)
    delay = options.retry_delay
    cause, hint = "", ""
    error: BaseException | None = None
    for attempt in range(options.retries + 1):
        last = attempt == options.retries
        tries = f" (after {attempt + 1} tries)" if attempt else ""
        try:
            response = _once(url, options, method, wanted, expected_total, guard)
        except _DeadlineExpiredError:
            raise _deadline_error(shown, options, attempt + 1, cause) from None
        except _RefusedError as err:
            raise ReadError(
                f"cannot read {shown!r}: {err}{tries}; the server's answer cannot be trusted"
            ) from None
        except _CutShortError as err:
            cause, hint = f"{err}", "the read was retried and kept failing; check the server, or retry later"
            error = err
        except TimeoutError as err:
            cause = f"the server did not answer within {options.timeout:g} s"
            hint = "check that it is up, or raise the timeout"
            error = err
        except (http.client.HTTPException, OSError) as err:
            cause, hint = explain(err)
            error = err
        else:
            status = response.status
            if status in (200, 206, 404):
                return response
            cause, hint = explain(RuntimeError(f"HTTP status {status}"))
            error = RuntimeError(f"HTTP status {status}")
            if status not in _RETRY_STATUS:
                raise ReadError(f"cannot read {shown!r}: {cause}{tries}; {hint}")
        if last:
            raise ReadError(f"cannot read {shown!r}: {cause}{tries}; {hint}") from error
        if guard.remaining() <= delay:
            raise _deadline_error(shown, options, attempt + 1, cause) from error
        time.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def _deadline_error(shown: str, options: HTTPOptions, tries: int, cause: str) -> ReadError:
    before = f" (the last try failed: {cause})" if cause else ""
    return ReadError(
        f"cannot read {shown!r}: no complete answer within the deadline of {options.deadline:g} s "
        f"for the whole request (deadline=, {tries} {'try' if tries == 1 else 'tries'}){before}; the server "
        "is too slow or sends its answer a trickle at a time; if the data is large and the link slow, "
        "raise the deadline: HTTPStore(deadline=...) or HTTPOptions(deadline=...)"
    )
