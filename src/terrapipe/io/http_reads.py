"""Checked HTTP(S) reads: urllib3, with what it does not check added on top.

:func:`read` and :func:`read_async` return the bytes of an ``http(s)://``
URL (all of them or one :class:`ByteRange`), configured by one
:class:`~terrapipe.io.storage.Storage`. Every HTTP(S) request outside GDAL is
sent by :func:`exchange`: the byte layer's (``HTTPStore``, ``HTTPFile``,
``ObjectFile``, :mod:`~terrapipe.io.object_store`, the chip's reader threads)
and the STAC client's (:mod:`terrapipe.stac.http_json`). urllib3 sends
(one ``PoolManager`` per process, pool size and proxy); obstore reads only
``s3://``, ``gs://`` and ``az://`` (why: ``docs/storage.md``).

Added here, each for a check urllib3 lacks (``docs/reliability.md``,
"Network reads"): a ``206`` must carry the ``Content-Range`` asked for and
exactly that many bytes, a ``200`` to a range is cut to it, the file's size
must not change between requests (``expected_total``); ``Content-Encoding``
is refused for a range and inflated within the cap for a whole read; a body
with neither ``Content-Length`` nor chunks is refused; one deadline per read
(a watchdog shuts the socket: urllib3 times each wait only), retries and
``Retry-After`` within it (:func:`drive`); redirects carry credentials only
to their origin (:func:`follow`); a ``416`` is :class:`PastEndError`;
401/403 and an S3/Azure/GCS code refusing the credentials are "access
denied"; pools and watchdog per process (fork safe); messages name
``scheme://host/path`` only.

Examples
--------
>>> ByteRange(10, 20).header(), ByteRange(None, 5).expected(100)
('bytes=10-19', (95, 99))
>>> deadline_of(Storage()), max_body_of(Storage(max_bytes=10))
(120.0, 10)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import heapq
import importlib.util
import json
import math
import os
import random
import re
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from terrapipe.core.errors import InvalidArgumentError, MissingDependencyError, ReadError
from terrapipe.core.http_headers import check_headers
from terrapipe.core.optional import require
from terrapipe.core.redact import public_url
from terrapipe.io import obstore_runtime
from terrapipe.io.gdal_log import ensure_log_redaction
from terrapipe.io.paths import Origin, origin_of
from terrapipe.io.read_errors import explain
from terrapipe.io.storage import Storage

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_BODY",
    "MAX_REDIRECTS",
    "ByteRange",
    "Reply",
    "deadline_of",
    "max_body_of",
    "read",
    "read_async",
    "retry_delay",
]


#: Seconds one read may take in all when ``Storage.deadline`` is None (the STAC client's default too).
DEFAULT_DEADLINE = 120.0
#: Largest body kept when ``Storage.max_bytes`` is None, in bytes, counted after decompression (256 MiB).
DEFAULT_MAX_BODY = 256 * 1024 * 1024
#: Redirects followed per request.
MAX_REDIRECTS = 10

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 1024 * 1024
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+)\s*$", re.IGNORECASE)


def deadline_of(storage: Storage) -> float:
    """Seconds one read may take: ``storage.deadline``, or :data:`DEFAULT_DEADLINE`."""
    return float(storage.deadline or DEFAULT_DEADLINE)


def max_body_of(storage: Storage) -> int:
    """Largest body in bytes: ``storage.max_bytes``, or :data:`DEFAULT_MAX_BODY`."""
    return int(storage.max_bytes or DEFAULT_MAX_BODY)


def retry_delay(
    attempt: int, *, backoff: float, max_backoff: float, jitter: float = 0.5, retry_after: float | None = None
) -> float:
    """Seconds before retry ``attempt + 1``: ``backoff * 2**attempt``, cut by up to ``jitter`` at random.

    At least ``retry_after`` (the server's wish), at most ``max_backoff``.

    Examples
    --------
    >>> [retry_delay(a, backoff=1.0, max_backoff=5.0, jitter=0.0) for a in range(4)]
    [1.0, 2.0, 4.0, 5.0]
    >>> retry_delay(3, backoff=0.5, max_backoff=30.0, jitter=0.0, retry_after=10.0)
    10.0
    """
    delay = backoff * (2.0**attempt) * (1.0 - jitter * random.random())
    return float(min(delay if retry_after is None else max(delay, retry_after), max_backoff))


@dataclass(frozen=True)
class ByteRange:
    """Bytes to ask for: ``(10, 20)`` is bytes 10-19, ``(10, None)`` 10 on, ``(None, 5)`` the last 5."""

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
        if self.start is None:
            return f"bytes=-{self.stop}"
        return f"bytes={self.start}-" + ("" if self.stop is None else str(self.stop - 1))

    def expected(self, total: int) -> tuple[int, int] | None:
        """``(first, last)`` byte (inclusive) to send of a file of ``total`` bytes; ``None``: past the end."""
        if self.start is None:
            assert self.stop is not None
            return (max(0, total - self.stop), total - 1) if total and self.stop else None
        if self.start >= total:
            return None
        return self.start, total - 1 if self.stop is None else min(self.stop, total) - 1


@dataclass(frozen=True)
class Reply:
    """Status (200, 206 or 404), headers (case-insensitive names), checked body and the file's total size."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    total: int | None = None

    def found(
        self, url: str, *, what: str = "read", hint: str = "check the URL", sized: bool = False
    ) -> Reply:
        """Return this reply, or raise the one ``ReadError`` of a 404 (with ``sized``: of an answer of no size)."""
        if self.status == 404:
            raise ReadError(f"cannot {what} {public_url(url)!r}: no such object (HTTP 404); {hint}")
        if sized and self.total is None:
            raise ReadError(f"cannot {what} {public_url(url)!r}: the server states no size; check the server")
        return self


class PastEndError(ReadError):
    """The range asked for lies wholly past the end of the file (HTTP 416)."""


# -- failures inside one try (named for the user by describe) ---------------------------------------
class _RefusedError(Exception):
    """The answer is wrong in a way no retry mends."""


class _OtherBytesError(_RefusedError):
    """A 206 for other bytes or of another length: on a kept-alive connection, maybe an answer sent unasked."""


class _TooLargeError(_RefusedError):
    """The body passed the cap (``cap``: bytes, counted after decompression)."""

    def __init__(self, cap: int) -> None:
        size = f"{cap / 2**20:g} MiB" if cap >= 2**20 else f"{cap} bytes"
        super().__init__(
            f"the answer is larger than the cap of {size} (decompressed); raise Storage(max_bytes=...) (or "
            "max_body= of read_zarr/HTTPStore) if it is expected, or check the server"
        )


class _RetryError(Exception):
    """A failure worth another try (``retry_after``: the server's wish, in seconds)."""

    def __init__(self, cause: str, retry_after: float | None = None, hint: str = "") -> None:
        super().__init__(cause)
        self.retry_after = retry_after
        self.hint = hint or "check the server, or retry later"


class _CutShortError(Exception):
    """A 206 body that stopped part way (the connection closed): ``data``, the bytes that came, are kept."""

    def __init__(self, data: bytes, total: int, headers: Any, err: BaseException) -> None:
        super().__init__(str(err))
        self.data, self.total, self.headers = data, total, headers
        self.etag: str | None = headers.get("etag")


class _ResumeError(_RetryError):
    """Part of a range came before the answer was cut short: the rest is asked for next (no try spent)."""

    progress = True


#: Requests for the rest of one range whose answers were cut short, each after some bytes came.
MAX_RESUMES = 64


class _ExpiredError(Exception):
    """The deadline passed (``last``: the failure of the try before, if any)."""

    def __init__(self, last: _RetryError | None = None) -> None:
        super().__init__(str(last) if last is not None else "")
        self.last = last


class _DeniedError(Exception):
    """HTTP 401/403, or a code refusing the credentials."""


# -- the checks of an answer ------------------------------------------------------------------------
def _size_changed(before: int, now: int) -> str:
    return (
        f"the file's size changed from {before} to {now} bytes between requests "
        "(replaced while being read?); open it again"
    )


class _Body:
    """Check a 200 or 206 answer's headers, then collect its body piece by piece within the cap or range."""

    # urllib3 checks a body against its Content-Length only: no Content-Range, no range cut from a 200

    def __init__(
        self, status: int, headers: Any, want: ByteRange | None, expected_total: int | None, cap: int
    ) -> None:
        self.status, self.headers, self.want, self.cap = status, headers, want, cap
        self.expected_total = expected_total
        self.parts: list[bytes] = []  # the kept pieces, joined once at the end (no regrowth copies)
        self.held = self.seen = 0
        raw = headers.get("content-length", "").strip()
        self.length = int(raw) if raw.isascii() and raw.isdigit() else None
        enc = self.encoding = headers.get("content-encoding", "").strip().lower() or "identity"
        self.asked = want.header() if want is not None else ""
        if want is not None and enc != "identity":
            raise _RefusedError(
                f"it answered a request for {self.asked} with a {enc}-encoded body (asked for identity): "
                "its bytes are not the file's bytes"
            )
        if want is None and status == 206:
            raise _OtherBytesError("it answered a request for the whole file with 206 (a part of it)")
        if enc not in ("identity", "gzip", "x-gzip", "deflate"):
            raise _RefusedError(
                f"it sent the answer with Content-Encoding {enc[:40]!r}, which terrapipe cannot decode "
                "(it asks for none, or for gzip or deflate)"
            )
        self.coded = enc != "identity"
        self.inflate: Any = None  # the member being inflated (deflate: zlib-wrapped or raw, as sent)
        self.members = 0  # members inflated to their end
        if status != 206:
            length = self.length if enc == "identity" else None
            if expected_total is not None and length is not None and length != expected_total:
                raise _RefusedError(_size_changed(expected_total, length))
            if want is None and length is not None and length > cap:
                raise _TooLargeError(cap)
            self.size, self.total = length or 0, length  # size: bytes to read in one go (0: unknown)
            return
        assert want is not None
        text = headers.get("content-range", "")
        match = _CONTENT_RANGE.match(text)
        if match is None:
            raise _RefusedError(f"its 206 answer has no usable Content-Range ({text or None!r})")
        self.first, self.last, self.total = (int(x) for x in match.groups())
        if expected_total is not None and self.total != expected_total:
            raise _RefusedError(_size_changed(expected_total, self.total))
        exp = want.expected(self.total)
        if exp != (self.first, self.last):
            shown = "nothing (past the end)" if exp is None else f"bytes {exp[0]}-{exp[1]}/{self.total}"
            raise _OtherBytesError(
                f"it answered {self.asked} with Content-Range 'bytes {self.first}-{self.last}/{self.total}' "
                f"instead of {shown}: those are other bytes of the file"
            )
        self.size = self.last - self.first + 1
        if self.length is not None and self.length != self.size:
            raise _OtherBytesError(self._not_the_range(self.length, "has Content-Length"))

    def _not_the_range(self, n: int, verb: str) -> str:
        return (
            f"its answer to {self.asked} {verb} {n} bytes, not the {self.size} of its Content-Range "
            f"'bytes {self.first}-{self.last}/{self.total}'"
        )

    def _keep(self, chunk: bytes) -> None:
        if chunk:
            self.parts.append(chunk)
            self.held += len(chunk)

    def feed(self, chunk: bytes) -> bool:
        """Take the next piece of the body; ``False`` once nothing more is needed."""
        if self.status == 206:
            self._keep(chunk)
            if self.held > self.size:
                raise _OtherBytesError(self._not_the_range(self.held, "holds at least"))
            return True
        if self.coded:
            return self._feed_inflated(chunk)
        want, low = self.want, self.seen
        self.seen += len(chunk)
        if want is None:
            self._keep(chunk)
            if self.held > self.cap:
                raise _TooLargeError(self.cap)
            return True
        if want.start is None:  # the last `stop` bytes of a whole-file answer
            assert want.stop is not None
            self._keep(chunk)
            if self.held > want.stop:
                tail = b"".join(self.parts)[-want.stop :]
                self.parts, self.held = [tail], len(tail)
            return True
        first = max(want.start, low)
        last = self.seen if want.stop is None else min(want.stop, self.seen)
        if last > first:
            self._keep(chunk[first - low : last - low])
        if want.stop is None and self.held > self.cap:
            raise _TooLargeError(self.cap)
        return want.stop is None or self.seen < want.stop

    # urllib3's decoders (2.8) cap their output too, but never tell a stream cut short (flush gives what
    # came), take garbage after a gzip member and count no bytes on the wire: ours, one member at a time
    def _feed_inflated(self, chunk: bytes) -> bool:
        data = chunk
        while data:
            if self.inflate is None:  # the first member, or one after another (gzip allows several)
                if self.members and not data.strip(b"\0"):
                    return True  # NUL padding after the last member
                wrapped = len(data) < 2 or (data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0)
                bits = 31 if "gzip" in self.encoding else zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS
                self.inflate = zlib.decompressobj(bits)
            try:
                out = self.inflate.decompress(data, min(_CHUNK, self.cap + 1 - self.held))
            except zlib.error as err:
                raise _RefusedError(f"its {self.encoding}-encoded answer cannot be decoded ({err})") from err
            self._keep(out)
            if self.held > self.cap:
                raise _TooLargeError(self.cap)
            if self.inflate.eof:
                data, self.inflate = self.inflate.unused_data, None
                self.members += 1
            else:
                data = self.inflate.unconsumed_tail
        return True

    def reply(self, complete: bool) -> Reply:
        """Return the checked reply once the body ended (``complete``) or was left (a range cut from a 200)."""
        if self.status == 206:
            if self.held != self.size:
                raise _OtherBytesError(self._not_the_range(self.held, "holds"))
            return Reply(206, self.headers, b"".join(self.parts), self.total)
        if self.coded and (self.inflate is not None or not self.members):
            raise _RetryError(f"its {self.encoding}-encoded answer was cut short")
        total = self.held if self.coded else self.seen if complete else self.length
        if self.expected_total is not None and total is not None and total != self.expected_total:
            raise _RefusedError(_size_changed(self.expected_total, total))
        if self.want is not None and total is not None and self.want.expected(total) is None:
            raise PastEndError(f"{self.want.header()} lies past the end of the file ({total} bytes)")
        return Reply(200, self.headers, b"".join(self.parts), total)


# -- the urllib3 transport --------------------------------------------------------------------------
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def _proxy_for(url: str) -> str | None:
    """Return the proxy the environment names for ``url`` (``*_proxy``, ``no_proxy``: as ``requests``).

    urllib3 reads no proxy from the environment (``requests`` does, with the same standard-library calls).
    """
    if not any(name in os.environ for name in _PROXY_VARIABLES):
        return None
    proxies = urllib.request.getproxies_environment()
    parts = urllib.parse.urlsplit(url)
    proxy = proxies.get(parts.scheme.lower()) or proxies.get("all")
    host = parts.hostname or ""
    if not proxy or urllib.request.proxy_bypass(f"{host}:{parts.port}" if parts.port else host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _status_failure(
    status: int, text: str, want: ByteRange | None, retry_after: float | None = None
) -> Exception:
    """Return what an error status (not 200, 206 or 404) means; ``text``: the body (a denial code?)."""
    if 300 <= status < 400:
        return _RefusedError(f"HTTP {status} redirects to a URL that is not a usable http(s) URL")
    if status == 416:
        return PastEndError(f"{want.header() if want else 'the range'} lies past the end of the file")
    code = obstore_runtime.denied_code(text)
    if status in (401, 403) or code:
        return _DeniedError(", ".join(x for x in (f"HTTP {status}", code) if x))
    cause, hint = explain(RuntimeError(f"HTTP status {status}"))
    if status in _RETRY_STATUS:
        return _RetryError(cause, retry_after, hint=hint)
    return ReadError(f"{cause}; {hint}")


_PRUNE_AT = 256  # deadlines kept before the watch thread is woken to drop those of reads done


class _Deadlines:
    """A process's watch on its reads' deadlines: a heap and a thread, made at first use (anew if forked)."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, _Watchdog]] = []
        self.wake = threading.Condition(threading.Lock())
        threading.Thread(target=self._watch, name="terrapipe-http-deadlines", daemon=True).start()

    def add(self, end: float, watch: _Watchdog) -> None:
        with self.wake:
            heapq.heappush(self.heap, (end, id(watch), watch))
            # woken only for an earlier deadline, or to drop the reads done (not per read: two switches)
            if self.heap[0][2] is watch or len(self.heap) > _PRUNE_AT:
                self.wake.notify()

    def _watch(self) -> None:
        while True:
            with self.wake:
                while self.heap and self.heap[0][2].done:
                    heapq.heappop(self.heap)
                if not self.heap:
                    self.wake.wait()
                    continue
                delay = self.heap[0][0] - time.monotonic()
                if delay > 0:
                    self.wake.wait(delay)
                    continue
                watch = heapq.heappop(self.heap)[2]
            watch.fire()


_DEADLINES: dict[tuple[int], _Deadlines] = {}  # (process id,) -> its watch


def _deadlines() -> _Deadlines:
    return _kept(_DEADLINES, (), _Deadlines)


class _Watchdog:
    """Shut the sockets of one read's requests when its deadline passes.

    urllib3's ``Timeout`` (``total=`` too) bounds each socket wait, never a whole answer sent a trickle at a time.
    """

    def __init__(self, end: float) -> None:
        self.fired = self.done = False
        self._conns: list[Any] = []
        self._lock = threading.Lock()
        _deadlines().add(end, self)

    def add(self, conn: Any) -> None:
        with self._lock:
            self._conns.append(conn)
            if self.fired:
                _shut(conn)

    def fire(self) -> None:
        with self._lock:
            if not self.done:
                self.fired = True
                for conn in self._conns:
                    _shut(conn)

    def stop(self) -> None:
        with self._lock:
            self.done = True


def _shut(conn: Any) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


_WATCH = threading.local()
_POOLS: dict[tuple[int, int, str | None], Any] = {}  # (process id, pool size, proxy) -> PoolManager
_ASYNC_POOLS: dict[tuple[int, int], concurrent.futures.ThreadPoolExecutor] = {}  # (pid, threads) -> pool
_LOCK: list[tuple[int, threading.Lock]] = []  # per process: a fork may copy a lock while held
_MAX_POOLS = 8  # of each kind: one per pool size (Storage.concurrency) and proxy in use
T = TypeVar("T")


def _kept(
    cache: dict[Any, T], key: tuple[Any, ...], make: Callable[[], T], drop: Callable[[T], Any] = id
) -> T:
    """Return this process's ``cache[(pid, *key)]``, made once; the parent's (inherited through fork) forgotten."""
    pid = os.getpid()
    found = cache.get((pid, *key))
    if found is not None:
        return found
    if not _LOCK or _LOCK[0][0] != pid:
        _LOCK[:] = [(pid, threading.Lock())]
    with _LOCK[0][1]:
        found = cache.get((pid, *key))
        if found is None:
            for stale in [k for k in cache if k[0] != pid]:
                del cache[stale]  # its threads and connections are not in this process
            while len(cache) >= _MAX_POOLS:
                drop(cache.pop(next(iter(cache))))
            found = cache[(pid, *key)] = make()
        return found


def _pool(storage: Storage, proxy: str | None = None) -> Any:
    """Return the process's ``PoolManager`` for ``storage.concurrency`` (a ``ProxyManager`` for ``proxy``)."""
    return _kept(_POOLS, (storage.concurrency, proxy), lambda: _manager(storage.concurrency, proxy))


def _manager(size: int, proxy: str | None) -> Any:
    """Make a ``PoolManager`` whose connections report to the watchdog in force in their thread (not SOCKS')."""
    urllib3 = require("urllib3", extra="cloud", feature="HTTP(S) reads")
    ensure_log_redaction()  # urllib3 logs each request line (query included) at debug level
    options = {"maxsize": size, "block": False, "ssl_context": _trusted()}
    if proxy is not None and proxy.startswith("socks"):
        if importlib.util.find_spec("socks") is None:
            raise MissingDependencyError(
                "a SOCKS proxy (named by the environment's *_proxy) needs the Python package 'PySocks', "
                "which is not installed; install it with: pip install pysocks"
            )
        return require("urllib3.contrib.socks").SOCKSProxyManager(proxy, **options)
    if proxy is None:
        manager = urllib3.PoolManager(**options)
    else:
        parts = urllib.parse.urlsplit(proxy)  # urllib3's ProxyManager sends no credentials of the proxy URL
        basic = ":".join(urllib.parse.unquote(x or "") for x in (parts.username, parts.password))
        headers = urllib3.make_headers(proxy_basic_auth=basic) if parts.username else None
        manager = urllib3.ProxyManager(proxy, proxy_headers=headers, **options)

    class Watched:
        def request(self, *args: Any, **kwargs: Any) -> Any:
            watch = getattr(_WATCH, "watch", None)
            if watch is not None:
                watch.add(self)
            self.reused = getattr(self, "sock", None) is not None  # kept alive from an earlier request
            return super().request(*args, **kwargs)  # type: ignore[misc]

    conn = type("Conn", (Watched, urllib3.connection.HTTPConnection), {})
    sconn = type("SConn", (Watched, urllib3.connection.HTTPSConnection), {})
    manager.pool_classes_by_scheme = {
        "http": type("Pool", (urllib3.HTTPConnectionPool,), {"ConnectionCls": conn}),
        "https": type("SPool", (urllib3.HTTPSConnectionPool,), {"ConnectionCls": sconn}),
    }
    return manager


def _trusted() -> ssl.SSLContext:
    """Trust the system's authorities and ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, else certifi's.

    urllib3 trusts the system's alone (python.org's Python on macOS has none).
    """
    context = ssl.create_default_context()
    extra = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if not extra and importlib.util.find_spec("certifi") is not None:
        extra = importlib.import_module("certifi").where()  # for a Python without the system's (macOS)
    if extra:
        with contextlib.suppress(OSError, ssl.SSLError):  # no such bundle: the system's alone
            context.load_verify_locations(**{"capath" if os.path.isdir(extra) else "cafile": extra})
    return context


def retry_after_of(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds, fractions allowed, or an HTTP date), if readable."""
    text = (value or "").strip()
    with contextlib.suppress(ValueError):  # ours first: urllib3 reads whole seconds only ('0.6' is invalid)
        seconds = float(text)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    urllib3 = require("urllib3", extra="cloud", feature="HTTP(S) reads")
    with contextlib.suppress(urllib3.exceptions.InvalidHeader, ValueError, OverflowError):  # an HTTP date
        return float(urllib3.util.Retry().parse_retry_after(text))
    return None


def drive(once: Callable[[_Watchdog], T], storage: Storage, end: float) -> T:
    """Call ``once`` until it returns: every request's retries, back-off and deadline (``end``, monotonic).

    A :class:`_RetryError` is tried again at most ``storage.retries`` times,
    after :func:`retry_delay` (``Retry-After`` first, never past ``end``);
    the deadline raises :class:`_ExpiredError` holding the last failure;
    anything else is raised at once. urllib3's ``Retry`` sleeps a ``Retry-After`` past any deadline and
    cannot send again a request whose body (streamed) was cut short.
    """
    attempt, last, resumes = 0, None, 0
    while True:
        watch, previous = _Watchdog(end), getattr(_WATCH, "watch", None)
        _WATCH.watch = watch  # a request made inside a request modifier nests
        try:
            return once(watch)
        except _ExpiredError:
            raise _ExpiredError(last) from None
        except _RetryError as err:
            last = err
        finally:
            watch.stop()
            _WATCH.watch = previous
        if watch.fired or time.monotonic() >= end:
            raise _ExpiredError(last)
        if isinstance(last, _ResumeError) and resumes < MAX_RESUMES:  # bytes came: ask for the rest at once
            resumes += 1
            continue
        if attempt >= storage.retries:
            raise last
        delay = retry_delay(
            attempt, backoff=storage.backoff, max_backoff=storage.max_backoff, retry_after=last.retry_after
        )
        if time.monotonic() + delay >= end:
            raise _ExpiredError(last)
        time.sleep(delay)
        attempt += 1


def follow(method: str, url: str, send: Callable[[str, str, Any], Any], body: Any = None) -> Any:
    """Send ``method url`` with ``send(method, url, body)`` following redirects; return the final answer.

    ``send`` decides what each hop carries. At most :data:`MAX_REDIRECTS`
    hops; a loop or a ``Location`` that is not ``http(s)`` is refused; a
    ``303`` (and a ``301``/``302`` after a POST) goes on as a bodiless GET. urllib3's redirects drop
    a fixed list of header names for good after another host: they cannot sign each hop anew
    (``request_modifier``), send credentials again to a hop back at their origin, or say which hop denied.
    """
    seen = {(method, url)}
    for _ in range(MAX_REDIRECTS + 1):
        response = send(method, url, body)
        status, location = int(response.status), response.headers.get("Location")
        if status not in _REDIRECT_STATUS or not location:
            return response
        response.close()
        response.release_conn()
        url = urllib.parse.urljoin(url, location)
        if origin_of(url) is None:
            raise _RefusedError("it redirects to a URL that is not a usable http(s) URL")
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method, body = "GET", None
        if (method, url) in seen:
            raise _RefusedError(f"the server redirects in a loop (back to {public_url(url)})")
        seen.add((method, url))
    raise _RefusedError(f"more than {MAX_REDIRECTS} redirects")


def _signed(
    url: str, method: str, headers: Mapping[str, str], modifier: Callable[[Any], Any], body: Any = None
) -> tuple[str, dict[str, str], bytes | None]:
    """Hand one request to ``Storage.request_modifier`` (a ``requests.Request``, as pystac-client does).

    Returns the URL (a query it added included), the headers and the body
    (``body``, a POST's JSON, encoded) to send.
    """
    requests = require("requests", extra="stac", feature="Storage(request_modifier=...)")
    try:
        request = requests.Request(method, url, headers=dict(headers), json=body)
        prepared = (modifier(request) or request).prepare()
        signed, sent = str(prepared.url), {str(k): str(v) for k, v in prepared.headers.items()}
        data = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    except Exception as err:  # the hook's own text may hold what it signs with: its type only
        raise ReadError(
            f"Storage.request_modifier failed on it ({type(err).__name__}); it is called with a "
            "requests.Request and returns it, or None after changing it in place"
        ) from None
    parts = urllib.parse.urlsplit(signed)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ReadError("Storage.request_modifier made its URL something other than an http(s) URL")
    return signed, sent, data


#: What an error status means to a caller: ``(status, headers, start of the body, Retry-After,
#: origin the credentials were kept from or None) -> the exception to raise``.
Judge = Callable[[int, Mapping[str, str], bytes, "float | None", "Origin | None"], Exception]


def exchange(
    url: str,
    storage: Storage,
    end: float,
    cap: int,
    *,
    method: str = "GET",
    want: ByteRange | None = None,
    expected_total: int | None = None,
    json_body: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    accept: Mapping[str, str] | None = None,
    origin: Origin | None = None,
    judge: Judge | None = None,
    counted: Callable[[int], None] | None = None,
    secrets: list[str] | None = None,
) -> Reply:
    """Send one request, retried until ``end`` (``time.monotonic()``), and return its checked reply.

    ``storage.headers`` and ``request_modifier`` go only to ``origin``
    (default: the URL itself, never a redirect elsewhere), ``headers`` only to
    the URL's origin, ``accept`` to every hop. The body is exactly the range
    ``want``, or all of it, inflated (``gzip``/``deflate``, when ``accept``
    asks for them) within ``cap`` bytes. ``json_body`` is POSTed as JSON. An
    error status is ``judge``'s to word (``None``: the byte layer's, where
    404 is a reply); with ``judge`` any 2xx is an answer and a body of neither
    length nor chunks is read to its end. ``counted`` gets the bytes received;
    ``secrets`` the header values ``request_modifier`` adds (to scrub from
    messages). Raises the failures of one try (:func:`describe` words them).
    """
    urllib3 = require("urllib3", extra="cloud", feature="HTTP(S) reads")
    home = origin_of(url)
    credentials = origin or home
    forced = {} if accept else {"Accept-Encoding": "identity"}
    if want is not None:
        forced["Range"] = want.header()
    # a 206 cut short: the bytes that came, the file's size and ETag then; the next try asks for the rest
    kept: list[bytes] = []
    state: dict[str, Any] = {"want": want, "total": expected_total, "etag": None}
    need = None if want is None else want.stop  # where the range asked for ends (the rest may ask for more)

    def once(watch: _Watchdog) -> Reply:
        asked = state["want"]
        if asked is not None:
            forced["Range"] = asked.header()
        try:
            wait = max(0.001, min(storage.timeout, end - time.monotonic()))
            limits = urllib3.Timeout(connect=min(wait, 10.0), read=wait)
            hops: list[Origin | None] = []
            withheld = False  # credentials kept from a hop of another origin

            def send(method: str, hop: str, body: Any) -> Any:
                nonlocal withheld
                here = home if hop == url else origin_of(hop)
                hops.append(here)
                ours = (origin is None and hop == url) or (here is not None and here == credentials)
                withheld |= not ours and bool(storage.headers or storage.request_modifier)
                sent = {**(accept or {}), **(dict(storage.headers) if ours else {})}
                if headers and here == home:
                    sent.update(headers)
                sent.update(forced)
                data = None if body is None else json.dumps(dict(body)).encode()
                if data is not None:
                    sent["Content-Type"] = "application/json"
                if storage.request_modifier is not None and ours:  # signed anew on every try
                    before = sent
                    hop, sent, data = _signed(hop, method, sent, storage.request_modifier, body)
                    if secrets is not None:
                        added = (
                            v for k, v in sent.items() if before.get(k) != v and k.lower() != "content-length"
                        )
                        secrets.extend(added)
                check_headers(sent)
                try:
                    return _pool(storage, _proxy_for(hop)).request(
                        method, hop, body=data, headers=sent, retries=False, redirect=False, timeout=limits,
                        preload_content=False, decode_content=False,
                    )  # fmt: skip
                except urllib3.exceptions.LocationValueError:
                    raise _RefusedError("it redirects to a URL that is not a usable http(s) URL") from None

            response = follow(method, url, send, json_body)
            reused = getattr(response.connection, "reused", False)  # before the body gives it back
            try:
                if watch.fired:  # the socket was shut mid-headers: what came is no answer
                    raise _ExpiredError()
                reply = _answer(response, method, asked, state["total"], cap, judge, hops, withheld, counted)
                if watch.fired:  # the socket was shut mid-body: a body read to its "end" is cut
                    raise _ExpiredError()
                if kept:  # the rest of a range cut short before: the same file, then the bytes joined
                    _same_file(state["etag"], reply.headers.get("etag"))
                    rest = reply.body if need is None else reply.body[: need - asked.start]
                    reply = Reply(reply.status, reply.headers, b"".join([*kept, rest]), reply.total)
                return reply
            except _CutShortError as cut:
                if watch.fired:
                    raise _ExpiredError() from None
                _same_file(state["etag"], cut.etag)
                start = asked.start + len(cut.data)
                if need is not None and start >= need:  # the rest asked for more than needed: all came
                    kept.append(cut.data[: need - asked.start])
                    return Reply(206, cut.headers, b"".join(kept), cut.total)
                kept.append(cut.data)
                state["etag"] = state["etag"] or cut.etag
                state["total"] = cut.total  # the rest must come from a file of this size
                # the rest, and as much again (within the file): a server that sends part of every answer
                # (half, to the last byte) still gives what is needed; the extra is cut off
                stop = None if need is None else min(cut.total, need + (need - start))
                state["want"] = ByteRange(start, stop)
                resume = (
                    f"the server's answer was cut short after {sum(map(len, kept))} bytes (ProtocolError)"
                )
                raise _ResumeError(resume) from None
            except _OtherBytesError as err:
                if not reused:
                    raise
                cause = f"{err} (on a kept-alive connection)"  # maybe bytes a server left there, unasked
            finally:
                response.close()  # a body read to its end has given its connection back to the pool
                response.release_conn()
            raise _RetryError(cause)  # again, on another connection
        except ReadError:  # an answer no retry mends (416, 410...): an OSError, but not the network's
            raise
        except (TimeoutError, urllib3.exceptions.HTTPError, OSError) as err:
            raise _transport_failure(urllib3, err, storage) from None

    return drive(once, storage, end)


def _same_file(before: str | None, now: str | None) -> None:
    """Refuse the rest of a range cut short when the file's ETag changed since its first part."""
    if before is not None and now is not None and before != now:
        raise _RefusedError(
            f"the file changed while a range of it was read in parts (ETag {before} then {now}); open it again"
        )


def _transport_failure(urllib3: Any, err: BaseException, storage: Storage) -> _RetryError:
    """Word a request that failed in the network (retried): a time-out, a refused or dropped connection."""
    text = f"{err!r} {err}".lower()
    dropped = any(w in text for w in ("remotedisconnected", "without response", "reset by peer"))
    if isinstance(err, urllib3.exceptions.ProtocolError) and not dropped:
        return _RetryError(f"the server's answer was cut short ({type(err).__name__})")
    if isinstance(err, TimeoutError | urllib3.exceptions.TimeoutError) and not isinstance(
        err,
        urllib3.exceptions.NewConnectionError,  # a subclass of ConnectTimeoutError, refused at once
    ):
        return _RetryError(
            f"the server did not answer within {storage.timeout:g} s",
            hint="check that it is up, or raise the timeout: tp.Storage(timeout=...)",
        )
    what = "it was closed without an answer" if dropped else "cannot connect"  # a drop: no status line
    return _RetryError(
        f"the connection failed: {what} ({type(err).__name__})",
        hint="check the server (is it running?) and the URL, or retry later",
    )


def _answer(
    response: Any,
    method: str,
    want: ByteRange | None,
    expected_total: int | None,
    cap: int,
    judge: Judge | None,
    hops: list[Origin | None],
    withheld: bool,
    counted: Callable[[int], None] | None,
) -> Reply:
    """Check one final answer and read its body (an error status: the start of it, for the message)."""
    status, headers = int(response.status), response.headers  # urllib3's: names case-insensitive
    if not (200 <= status < 300 if judge else status in (200, 206)):
        if status == 404 and judge is None:
            return Reply(404, headers, b"")
        before = response.tell()
        try:
            text = bytes(response.read(64 * 1024, decode_content=True))
        except Exception:  # only the detail of a message
            text = b""
        if counted is not None:
            counted(response.tell() - before)
        retry_after = retry_after_of(headers.get("retry-after"))
        if judge is not None:
            raise judge(status, headers, text, retry_after, hops[-1] if withheld else None)
        raise _status_failure(status, text.decode("utf-8", "replace"), want, retry_after)
    body = _Body(status, headers, want, expected_total, cap) if method != "HEAD" else None
    if body is None:  # HEAD: its Content-Length is the size only in a plain 200 (a 206 may be left unasked)
        if status != 200:
            raise _OtherBytesError(
                f"it answered a HEAD with {status}, not 200: its Content-Length is no size"
            )
        if headers.get("content-encoding", "identity").strip().lower() not in ("", "identity"):
            raise _RefusedError(
                "it answered a HEAD with an encoded (Content-Encoding) body, whose length is not the file's size"
            )
        raw = headers.get("content-length", "").strip()
        return Reply(200, headers, b"", int(raw) if raw.isascii() and raw.isdigit() else None)
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    if body.length is None and not chunked and judge is None:
        raise _RefusedError(
            "its answer has no valid Content-Length and no chunked encoding: a cut cannot be told from the end"
        )
    # one read for a body of known size (a range, or a whole file within the cap): one buffer, no joins
    step = body.size if (status == 206 or (want is None and not body.coded)) and body.size else _CHUNK
    complete = True
    try:
        for chunk in response.stream(step, decode_content=False):
            if counted is not None:
                counted(len(chunk))
            if not body.feed(chunk):
                complete = False
                break
    except Exception as err:  # urllib3's ProtocolError: a 206 cut short keeps what came (the rest asked next)
        if type(err).__name__ != "ProtocolError" or status != 206 or want is None or want.start is None:
            raise
        partial = b"".join(body.parts)
        if not partial or len(partial) >= body.size or body.total is None:
            raise
        raise _CutShortError(partial, body.total, headers, err) from None
    return body.reply(complete)


# -- the entry points -------------------------------------------------------------------------------
def describe(err: BaseException, storage: Storage, limit: float) -> str:
    """Say what went wrong in a failed :func:`exchange` and what to do (after ``cannot <what> <URL>: ``)."""
    if isinstance(err, TimeoutError | _ExpiredError):
        before = f" (the last try failed: {err})" if isinstance(err, _ExpiredError) and str(err) else ""
        return (
            f"no complete answer within the deadline of {limit:g} s for the whole request (retries, back-off, "
            f"redirects and body included){before}; the server is too slow or sends its answer a trickle at a "
            "time; if the data is large and the link slow, raise the deadline: tp.Storage(deadline=...), or "
            "deadline= of read_zarr/HTTPStore"
        )
    if isinstance(err, ReadError | _TooLargeError):
        return str(err)
    if isinstance(err, _RefusedError):
        return f"{err}; the server's answer cannot be used: check the URL and the server"
    if isinstance(err, _DeniedError):
        return (
            f"access denied ({err}); check the headers of tp.Storage or the URL's signature or token (an "
            "expired or altered presigned or SAS URL is refused the same way)"
        )
    hint = err.hint if isinstance(err, _RetryError) else "check the server, or retry later"
    tries = f" (after {storage.retries + 1} tries)" if storage.retries else ""
    return f"{err}{tries}; {hint}"


#: What a read may fail with inside (each named by :func:`describe`; anything else is a bug, raised as is).
_FAILURES = (TimeoutError, _ExpiredError, _RefusedError, _RetryError, _DeniedError, ReadError)


def _prepare(
    url: str, storage: Storage | None, deadline: float | None, max_body: int | None
) -> tuple[Storage, float, int]:
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as err:
        raise InvalidArgumentError(f"not a valid URL: {public_url(url)!r}") from err
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError(f"expected an http(s):// URL, got {public_url(url)!r}")
    config = obstore_runtime.storage_or_env(storage)
    return config, float(deadline or deadline_of(config)), int(max_body or max_body_of(config))


def read(
    url: str,
    storage: Storage | None = None,
    *,
    method: str = "GET",
    byte_range: ByteRange | None = None,
    expected_total: int | None = None,
    deadline: float | None = None,
    max_body: int | None = None,
) -> Reply:
    """Read ``url`` (all of it, or ``byte_range``), checked; return the reply (200, 206 or 404).

    ``url``: ``http(s)://`` (a presigned or SAS query is sent, never shown);
    ``storage``: time-out, deadline, cap, retries and headers (default
    ``Storage.from_env()``); ``method``: ``"GET"`` or ``"HEAD"``; the body is
    exactly ``byte_range``; ``expected_total``: the file's size from an
    earlier request (an answer for another size is refused); ``deadline`` and
    ``max_body`` override ``storage``'s. A :class:`ReadError` is an error
    status other than 404 (after retries for 429/5xx), an answer that is not
    the bytes asked for, a body over the cap, or the deadline.
    """
    config, limit, cap = _prepare(url, storage, deadline, max_body)
    return _read(url, config, method, byte_range, expected_total, limit, cap, time.monotonic() + limit)


def _read(
    url: str,
    config: Storage,
    method: str,
    want: ByteRange | None,
    expected_total: int | None,
    limit: float,
    cap: int,
    end: float,
) -> Reply:
    try:
        if time.monotonic() >= end:  # waited for a thread of read_async's pool until the deadline
            raise _ExpiredError()
        return exchange(url, config, end, cap, method=method, want=want, expected_total=expected_total)
    except _FAILURES as err:
        kind = type(err) if isinstance(err, ReadError) else ReadError  # PastEndError stays one
        raise kind(f"cannot read {public_url(url)!r}: {describe(err, config, limit)}") from None


def _async_pool(threads: int) -> concurrent.futures.ThreadPoolExecutor:
    """Return this process's pool of ``threads`` for :func:`read_async` (anew if forked; a few kept)."""

    def make() -> concurrent.futures.ThreadPoolExecutor:
        return concurrent.futures.ThreadPoolExecutor(threads, "terrapipe-http")

    return _kept(_ASYNC_POOLS, (threads,), make, lambda pool: pool.shutdown(wait=False))


async def read_async(
    url: str,
    storage: Storage | None = None,
    *,
    method: str = "GET",
    byte_range: ByteRange | None = None,
    expected_total: int | None = None,
    deadline: float | None = None,
    max_body: int | None = None,
) -> Reply:
    """:func:`read` in an event loop, on ``Storage.concurrency`` threads (cancelled: it ends on its own)."""
    config, limit, cap = _prepare(url, storage, deadline, max_body)  # a bad URL fails in the caller's task
    args = (url, config, method, byte_range, expected_total, limit, cap, time.monotonic() + limit)
    return await asyncio.get_running_loop().run_in_executor(_async_pool(config.concurrency), _read, *args)
