"""Checked HTTP(S) reads for the byte layer: urllib3 and obstore, with what neither checks added on top.

:func:`read` and :func:`read_async` return the bytes of an ``http(s)://``
URL (all of them or one :class:`ByteRange`), configured by one
:class:`~terrapipe.io.storage.Storage`. The readers (``HTTPStore`` for
Zarr, ``HTTPFile`` for netCDF, GeoParquet and FlatGeobuf, the cache's
change check) and :mod:`terrapipe.io.object_store` read HTTP through here;
the STAC client (:mod:`terrapipe.stac.http_json`: API calls, catalog
documents, stac-geoparquet files) sends its requests through the same
urllib3 pools (:func:`_pool`), deadline watchdog, retry driver
(:func:`drive`), ``Retry-After`` rule (:func:`retry_after_of`) and redirect
rule (:func:`follow`), and hands ``request_modifier`` the same
``requests.Request`` (:func:`_signed`).

Transports
----------
Two clients send the requests, with the same checks, time-outs (connecting:
``min(timeout, 10 s)``), retries, deadline and cap (below):

- **urllib3** (one ``PoolManager`` per process and ``Storage.concurrency``)
  sends a blocking :func:`read` (``HTTPFile``, ``fetch``, a whole object or
  one range of :func:`object_store.get <terrapipe.io.object_store.get>`):
  less work per read than a trip through an event loop into obstore;
- **obstore** (``obstore.store.HTTPStore``, one store per ``Storage``, origin
  and process) sends :func:`read_async` (Zarr's ``HTTPStore``) and a
  ``read(..., pooled=True)`` (a chip's reader threads;
  :func:`object_store.get_ranges <terrapipe.io.object_store.get_ranges>`):
  many reads at once beside decoding go faster on it, as it waits without the
  GIL. It also sends a blocking read where the environment names a proxy for
  the URL (reqwest, under obstore, reads ``*_proxy``/``no_proxy``, as the
  urllib3 pools made for it do: :func:`_proxy_for`) or urllib3 is not installed.

Where obstore cannot be trusted to send a request, urllib3 does, measured by
running ``tests/servers/hostile_http.py`` against obstore 0.12.1 directly:

- **headers** (``Storage.headers``): reqwest, under obstore, follows
  redirects itself and sends every header but ``Authorization``/``Cookie``
  on to another host (an ``X-Api-Key`` reached ``localhost`` after a
  redirect from ``127.0.0.1``). Requests with headers go through urllib3;
  :func:`follow` follows their redirects, sending the configured headers
  and the signature only to a hop at the URL's origin (scheme, host, port);
- **an answer without** ``Content-Length`` (chunked): obstore refuses it;
  urllib3 reads it again, within the cap and the same deadline;
- **a process forked after this one used obstore**: obstore's tokio
  runtime is process-wide and its threads are not copied by ``fork``, so any
  read there hangs, with a new store too (measured). Such a process reads
  HTTP(S) through urllib3 (one pool per process); no fork hook is installed.

What obstore checks itself (so a wrong answer is an error before we see
it): a ranged request answered ``200`` (``NotSupported``: the whole file is
then read and cut to the range here, as HTTP allows), a ``206`` whose
``Content-Range`` names other bytes, an answer without ``Content-Length``
(refused, see above), a body cut before its ``Content-Length``,
bytes sent on an idle kept-alive connection (the forged next answer).
What it does not check, done here for both transports: a ``206`` body
longer or shorter than its ``Content-Range`` (obstore returned 2048 bytes
for 4096 asked, and its ``get_ranges`` panicked), the file's total size
changing between requests, ``Content-Encoding`` (obstore hands back gzip
bytes as the file's: refused for a range, inflated within the cap for a
whole read), any cap on the body (obstore read a 4 GiB answer into
memory), an overall deadline, ``Retry-After``.

Measured (``benchmarks/bench_http_reads.py``: 200 ranged reads of 64 KiB
from ``tests/servers/http_range.py`` on 127.0.0.1, medians of 21 interleaved
rounds on the shared 2-core machine at load 4.1): raw ``obstore.get_range``
0.096 s; :func:`read` over urllib3 0.148 s, over obstore 0.208 s; from 16
threads at once 0.154 s and 0.219 s; :func:`read_async` with 16 in flight
0.130 s. Reads of 4 MiB, 40 of them (load 5.5): urllib3 0.168 s, obstore
0.264 s. End to end (``--e2e``, 31 rounds, load 2.6-3.0), urllib3 for the
blocking reads against obstore for all: a netCDF3 file of 40 variables through
``HTTPFile`` 0.191 vs 0.243 s (200 variables: 0.46 vs 0.63 s), a FlatGeobuf
bbox 0.193 vs 0.223 s; ``read_zarr(url).chip()`` is pooled (obstore), as its
reader threads went no faster on urllib3 (0.120 s, against 0.107-0.124 s).
Each 206 body is read in one piece when its length is known and joined once
(a body grown chunk by chunk cost 3 copies: 24 ms for a 4 MiB range over
urllib3, about 3 ms now). fsspec's HTTP filesystem needs aiohttp, which no
extra installs, so it was not a candidate for HTTP.

Promises
--------
- **Checked ranges**: exactly the bytes asked for, or a
  :class:`~terrapipe.core.errors.ReadError`; ``expected_total`` refuses an
  answer for a file of another size (replaced between requests).
- **One deadline per read** (``Storage.deadline``; ``None``:
  :data:`DEFAULT_DEADLINE`, the STAC client's too): connection,
  redirects, every retry and back-off and every byte. obstore's read is
  cancelled when it passes; a urllib3 request has its socket shut by a
  watchdog. ``Storage.timeout`` bounds each try.
- **A cap** on every body (``Storage.max_bytes``; ``None``:
  :data:`DEFAULT_MAX_BODY`), decompressed size included; a ranged read is
  capped at its range.
- **One retry policy** (:func:`drive`, the STAC client's too):
  ``429``, ``5xx``, dropped connections, time-outs and bodies cut short are
  retried ``Storage.retries`` times, ``backoff`` doubled per retry up to
  ``max_backoff``, within the deadline. obstore applies it with its own
  jittered back-off and does not read ``Retry-After``; urllib3 requests
  honour ``Retry-After`` up to ``max_backoff``.
- Messages name ``scheme://host/path`` only.

Examples
--------
>>> ByteRange(10, 20).header(), ByteRange(None, 5).expected(100)
('bytes=10-19', (95, 99))
>>> deadline_of(Storage()), max_body_of(Storage(max_bytes=10))
(120.0, 10)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import heapq
import importlib.util
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
from terrapipe.core.optional import require
from terrapipe.core.redact import public_url
from terrapipe.io import obstore_runtime
from terrapipe.io.gdal_log import ensure_log_redaction
from terrapipe.io.obstore_runtime import run_on_thread_loop
from terrapipe.io.paths import origin_of
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
    "run_on_thread_loop",
]


#: Seconds one read may take in all when ``Storage.deadline`` is None (the STAC client's default too).
DEFAULT_DEADLINE = 120.0
#: Largest body kept when ``Storage.max_bytes`` is None, in bytes, counted after decompression (256 MiB).
DEFAULT_MAX_BODY = 256 * 1024 * 1024
#: Redirects followed per request (reqwest's limit, under obstore; urllib3 is given the same).
MAX_REDIRECTS = 10

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_CHUNK = 1024 * 1024
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_OTHER_RANGE = re.compile(r"Requested (\d+)\.\.(\d+), got (\d+)\.\.(\d+)")


def deadline_of(storage: Storage) -> float:
    """Seconds one read may take: ``storage.deadline``, or :data:`DEFAULT_DEADLINE`."""
    return float(storage.deadline or DEFAULT_DEADLINE)


def max_body_of(storage: Storage) -> int:
    """Largest body in bytes: ``storage.max_bytes``, or :data:`DEFAULT_MAX_BODY`."""
    return int(storage.max_bytes or DEFAULT_MAX_BODY)


def retry_delay(
    attempt: int, *, backoff: float, max_backoff: float, jitter: float = 0.5, retry_after: float | None = None
) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (every HTTP request of terrapipe's, both transports).

    ``backoff * 2**attempt``, shortened at random by up to ``jitter`` (a
    fraction), raised to ``retry_after`` when the server sent one, at most
    ``max_backoff``.

    Examples
    --------
    >>> [retry_delay(a, backoff=1.0, max_backoff=5.0, jitter=0.0) for a in range(4)]
    [1.0, 2.0, 4.0, 5.0]
    >>> retry_delay(3, backoff=0.5, max_backoff=30.0, jitter=0.0, retry_after=10.0)
    10.0
    """
    delay = backoff * (2.0**attempt) * (1.0 - jitter * random.random())
    if retry_after is not None:
        delay = max(delay, retry_after)
    return float(min(delay, max_backoff))


def _delay(attempt: int, storage: Storage, retry_after: float | None = None) -> float:
    return retry_delay(
        attempt, backoff=storage.backoff, max_backoff=storage.max_backoff, retry_after=retry_after
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
        if self.start is None:
            return f"bytes=-{self.stop}"
        return f"bytes={self.start}-" + ("" if self.stop is None else str(self.stop - 1))

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

    def obstore_range(self) -> Any:
        """Return the range as obstore's ``GetOptions["range"]``."""
        if self.start is None:
            return {"suffix": self.stop}
        if self.stop is None:
            return {"offset": self.start}
        return (self.start, self.stop)


@dataclass(frozen=True)
class Reply:
    """Status (200, 206 or 404), headers (lower-case names), checked body and the file's total size."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    total: int | None = None


class PastEndError(ReadError):
    """The range asked for lies wholly past the end of the file (HTTP 416)."""


# -- failures inside one try ---------------------------------------------------------------------
class _RefusedError(Exception):
    """The answer is wrong in a way no retry mends."""


class _RetryError(Exception):
    """A failure worth another try (``retry_after``: the server's wish, in seconds)."""

    def __init__(self, cause: str, retry_after: float | None = None, hint: str = "") -> None:
        super().__init__(cause)
        self.retry_after = retry_after
        self.hint = hint or "check the server, or retry later"


class _CutShortError(_RetryError):
    """The body broke off after the headers came (obstore retried the request, not the body)."""


class _ExpiredError(Exception):
    """The deadline passed (``last``: the failure of the try before, if any)."""

    def __init__(self, last: _RetryError | None = None) -> None:
        super().__init__(str(last) if last is not None else "")
        self.last = last


class _NoLengthError(Exception):
    """obstore refuses a body without ``Content-Length`` (chunked): urllib3 reads it, within the cap."""


class _DeniedError(Exception):
    """HTTP 401/403."""


# -- the checks, one place for both transports ---------------------------------------------------
@dataclass
class _Answer:
    """What a transport learnt from the headers of a 200 or 206 answer."""

    status: int
    start: int  # the first byte of the file in the body
    last: int | None  # the last byte (inclusive) a 206 names
    total: int | None  # the file's size, where the answer tells it
    length: int | None  # bytes the body holds, as announced
    encoding: str
    headers: dict[str, str]


def _size_changed(before: int, now: int) -> str:
    return (
        f"the file's size changed from {before} to {now} bytes between requests "
        "(replaced while being read?); open it again"
    )


def _too_large(cap: int, what: str) -> _RefusedError:
    return _RefusedError(f"its answer is larger than {what} of {cap} bytes")


class _Body:
    """Check an answer's headers, then collect its body chunk by chunk within the cap (or the range)."""

    def __init__(self, answer: _Answer, want: ByteRange | None, expected_total: int | None, cap: int) -> None:
        self.answer, self.want, self.cap = answer, want, cap
        self.expected_total = expected_total
        self.parts: list[bytes] = []  # the body's kept pieces, joined once at the end (no regrowth copies)
        self.held = 0  # bytes in parts
        self.seen = 0
        asked = want.header() if want is not None else ""
        self.asked = asked
        enc = answer.encoding
        if want is not None and enc != "identity":
            raise _RefusedError(
                f"it answered a request for {asked} with a {enc}-encoded body (asked for identity): "
                "its bytes are not the file's bytes"
            )
        if want is None and answer.status == 206:
            raise _RefusedError("it answered a request for the whole file with 206 (a part of it)")
        if enc not in ("identity", "gzip", "x-gzip", "deflate"):
            raise _RefusedError(f"it sent the answer {enc}-encoded, which terrapipe cannot decode")
        self.inflate: Any = None
        if enc != "identity":
            self.inflate = zlib.decompressobj(31 if "gzip" in enc else zlib.MAX_WBITS)
        total = answer.total
        if answer.status == 206:
            assert want is not None
            if total is None:
                raise _RefusedError(f"its 206 answer to {asked} has no usable Content-Range")
            if expected_total is not None and total != expected_total:
                raise _RefusedError(_size_changed(expected_total, total))
            exp = want.expected(total)
            got = (answer.start, answer.last)
            if exp is None or got != exp:
                want_text = "nothing (past the end)" if exp is None else f"bytes {exp[0]}-{exp[1]}/{total}"
                raise _RefusedError(
                    f"it answered {asked} with Content-Range 'bytes {got[0]}-{got[1]}/{total}' instead of "
                    f"{want_text}: those are other bytes of the file"
                )
            self.size = exp[1] - exp[0] + 1
            if answer.length is not None and answer.length != self.size:
                raise _RefusedError(self._not_the_range(answer.length, "has Content-Length"))
        else:
            length = answer.length if enc == "identity" else None
            if expected_total is not None and length is not None and length != expected_total:
                raise _RefusedError(_size_changed(expected_total, length))
            if want is None and length is not None and length > cap:
                raise _too_large(cap, "the cap (max_body)")

    def _not_the_range(self, n: int, verb: str) -> str:
        a = self.answer
        return (
            f"its answer to {self.asked} {verb} {n} bytes, not the {self.size} of its Content-Range "
            f"'bytes {a.start}-{a.last}/{a.total}'"
        )

    def _keep(self, chunk: bytes) -> None:
        if chunk:
            self.parts.append(chunk)
            self.held += len(chunk)

    def feed(self, chunk: bytes) -> bool:
        """Take the next piece of the body; ``False`` once nothing more is needed."""
        if self.answer.status == 206:
            self._keep(chunk)
            if self.held > self.size:
                raise _RefusedError(self._not_the_range(self.held, "holds at least"))
            return True
        if self.inflate is not None:
            return self._feed_inflated(chunk)
        want, low = self.want, self.seen
        self.seen += len(chunk)
        if want is None:
            self._keep(chunk)
            if self.held > self.cap:
                raise _too_large(self.cap, "the cap (max_body)")
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
            raise _too_large(self.cap, "the cap (max_body)")
        return want.stop is None or self.seen < want.stop

    def _feed_inflated(self, chunk: bytes) -> bool:
        data = chunk
        while data:
            try:
                out = self.inflate.decompress(data, min(_CHUNK, self.cap + 1 - self.held))
            except zlib.error as err:
                raise _RefusedError(
                    f"its {self.answer.encoding}-encoded answer cannot be decoded ({err})"
                ) from err
            self._keep(out)
            if self.held > self.cap:
                raise _too_large(self.cap, "the cap (max_body)")
            if self.inflate.eof:
                data = self.inflate.unused_data
                if data:
                    self.inflate = zlib.decompressobj(31)
            else:
                data = self.inflate.unconsumed_tail
        return True

    def reply(self, complete: bool) -> Reply:
        """Return the checked reply once the body ended (``complete``) or was left (a range cut from a 200)."""
        a, want = self.answer, self.want
        if a.status == 206:
            if self.held != self.size:
                raise _RefusedError(self._not_the_range(self.held, "holds"))
            return Reply(206, a.headers, b"".join(self.parts), a.total)
        if self.inflate is not None and not self.inflate.eof:
            raise _RetryError(f"its {a.encoding}-encoded answer was cut short")
        total = (self.seen if complete else a.length) if self.inflate is None else self.held
        if self.expected_total is not None and total is not None and total != self.expected_total:
            raise _RefusedError(_size_changed(self.expected_total, total))
        if want is not None and total is not None and want.expected(total) is None:
            raise PastEndError(f"{want.header()} lies past the end of the file ({total} bytes)")
        return Reply(200, a.headers, b"".join(self.parts), total)


# -- obstore ---------------------------------------------------------------------------------------
def _uses_obstore(storage: Storage) -> bool:
    """Whether obstore may send this request (no headers to keep at home, nothing to sign, not a forked child)."""
    return not storage.headers and storage.request_modifier is None and obstore_runtime.obstore_usable()


_HAS_URLLIB3: list[bool] = []  # whether urllib3 is installed (looked up once)
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def _proxy_for(url: str) -> str | None:
    """Return the proxy the environment names for ``url`` (``*_proxy``, ``no_proxy``), or ``None``.

    obstore's client (reqwest) and ``requests`` send their requests through
    it; our urllib3 pools are made for it (:func:`_pool`).
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


def _blocking_by_urllib3(url: str, pooled: bool) -> bool:
    """Whether a blocking :func:`read` goes through urllib3 rather than obstore.

    It does where urllib3 is installed, no proxy of the environment applies
    (obstore's client reads ``*_proxy``; urllib3's pools do not) and the read is
    not ``pooled``: one read at a time costs less through urllib3 than through
    an event loop into obstore, and a file read by ranges one after another
    (``HTTPFile``: netCDF, FlatGeobuf checks) gets faster; many threads reading
    while others decode (a chip's reader threads, :func:`object_store.get_ranges
    <terrapipe.io.object_store.get_ranges>`) go faster on obstore, which waits
    without the GIL (``benchmarks/bench_http_reads.py --e2e``; the module doc).
    Both transports make the same checks under the same time-outs, retries and deadline.
    """
    if pooled:
        return False
    if not _HAS_URLLIB3:
        _HAS_URLLIB3.append(importlib.util.find_spec("urllib3") is not None)
    return _HAS_URLLIB3[0] and _proxy_for(url) is None


def _http_date(value: Any) -> str | None:
    """``Last-Modified`` for obstore's ``last_modified``; ``None`` for none.

    obstore fills in the Unix epoch when the server sent no ``Last-Modified``;
    a real file is never dated 1970-01-01T00:00:00Z, so the epoch is "no date"
    (the cache's change check tells a file without ETag or date from a Zarr folder).
    """
    if value is None:
        return None
    if isinstance(value, dt.datetime) and value.timestamp() == 0:
        return None
    try:
        return email.utils.format_datetime(value, usegmt=True)
    except (TypeError, ValueError):
        return str(value)


def _meta_headers(meta: Mapping[str, Any], attributes: Mapping[str, Any] | None = None) -> dict[str, str]:
    headers = {str(k).lower(): str(v) for k, v in (attributes or {}).items()}
    for name, value in (
        ("etag", meta.get("e_tag")),
        ("last-modified", _http_date(meta.get("last_modified"))),
    ):
        if value:
            headers[name] = str(value)
    return headers


def _status_failure(
    status: int, text: str, want: ByteRange | None, retry_after: float | None = None
) -> Exception:
    """Return what an answer's error status (not 200, 206 or 404) means, for both transports.

    ``text`` is the answer's body (urllib3) or obstore's error, which holds
    it: an S3/Azure/GCS code refusing the credentials is access denied,
    whatever the status (an expired URL: 400 on some servers). 429 and 5xx
    are retried, worded as every reader words them (``read_errors.explain``).
    """
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


def _timed_out(storage: Storage) -> _RetryError:
    return _RetryError(
        f"the server did not answer within {storage.timeout:g} s",
        hint="check that it is up, or raise the timeout: tp.Storage(timeout=...)",
    )


def _is_timeout(text: str) -> bool:
    return "TimedOut" in text or "kind: Timeout" in text or "timed out" in text.lower()


def _obstore_failure(err: BaseException, want: ByteRange | None, storage: Storage) -> Exception:
    """Turn an obstore error into ours; its text (which holds the whole URL) is never shown."""
    text = str(err)
    name = type(err).__name__
    if name == "PanicException":
        return _RefusedError("its answer could not be read (obstore failed on it)")
    match = _OTHER_RANGE.search(text)
    if match is not None and want is not None:
        a, b, c, d = (int(x) for x in match.groups())
        return _RefusedError(
            f"it answered bytes={a}-{b - 1} with bytes {c}-{d - 1} (its Content-Range): those are other "
            "bytes of the file"
        )
    if "Content-Length Header missing" in text:
        return _NoLengthError()
    if "TooManyRedirects" in text or "too many redirects" in text.lower():
        return _RefusedError(f"more than {MAX_REDIRECTS} redirects")
    if "builder error" in text:  # the URL asked for was checked: this is where a redirect pointed
        return _RefusedError("it redirects to a URL that is not a usable http(s) URL")
    code = obstore_runtime.status_of(text)
    if isinstance(err, FileNotFoundError) or name == "NotFoundError" or code == 404:
        return FileNotFoundError()
    if code is not None:
        return _status_failure(code, text, want)
    if name in ("PermissionDeniedError", "UnauthenticatedError"):
        return _DeniedError(", ".join(x for x in (name, obstore_runtime.denied_code(text)) if x))
    if _is_timeout(text):
        return _timed_out(storage)
    return _RetryError(
        "the connection failed or the server's answer could not be parsed (a malformed header or length)"
    )


async def _obstore_read(
    url: str, storage: Storage, method: str, want: ByteRange | None, expected_total: int | None, cap: int
) -> Reply:
    """Read with obstore (which retries the requests); a body that breaks off is read again here."""
    attempt = 0
    while True:
        try:
            return await _obstore_once(url, storage, method, want, expected_total, cap)
        except _CutShortError:
            if attempt >= storage.retries:
                raise _timed_out(storage) from None
            await asyncio.sleep(_delay(attempt, storage))
            attempt += 1


async def _obstore_once(
    url: str, storage: Storage, method: str, want: ByteRange | None, expected_total: int | None, cap: int
) -> Reply:
    obs = obstore_runtime.load_obstore()
    store, key = obstore_runtime.http_store(url, storage)
    try:
        if method == "HEAD":
            meta = await obs.head_async(store, key)
            headers = {**_meta_headers(meta), "content-length": str(int(meta["size"]))}
            return Reply(200, headers, b"", int(meta["size"]))
        ranged = want is not None
        try:
            options = {"range": want.obstore_range()} if want is not None else {}
            result = await obs.get_async(store, key, options=options)
        except Exception as err:
            if want is None or "Range request not supported" not in str(err):
                raise
            result = await obs.get_async(store, key)  # a 200 to a ranged request: cut it here
            ranged = False
        meta = result.meta
        first, end = (int(x) for x in result.range)
        attributes = dict(result.attributes)
        encoding = str(attributes.get("Content-Encoding", "identity")).strip().lower() or "identity"
        answer = _Answer(
            status=206 if ranged else 200,
            start=first,
            last=end - 1 if ranged else None,
            total=int(meta["size"]),
            length=end - first if ranged else int(meta["size"]),
            encoding=encoding,
            headers=_meta_headers(meta, attributes),
        )
        body = _Body(answer, want, expected_total, cap)
        complete = True
        stream = result.stream(min_chunk_size=_CHUNK).__aiter__()
        while True:
            try:
                chunk = await stream.__anext__()
            except StopAsyncIteration:
                break
            except Exception as err:  # obstore retried a body cut short itself, not one that timed out
                if _is_timeout(str(err)):
                    raise _CutShortError(str(_timed_out(storage))) from None
                raise _RetryError("the server's answer was cut short, on every try") from None
            if not body.feed(bytes(chunk)):
                complete = False
                break
        return body.reply(complete)
    except (_RefusedError, _RetryError, ReadError):
        raise
    except BaseException as err:
        if isinstance(err, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
            raise
        failure = _obstore_failure(err, want, storage)
        if isinstance(failure, FileNotFoundError):
            return Reply(404, {}, b"")
        raise failure from None


# -- urllib3 (headers to keep at home, forked children) --------------------------------------------
class _Deadlines:
    """One process's watch over its reads' deadlines: a heap and a thread, made on first use.

    Kept per process id and never taken over from a parent (whose lock a
    fork may have copied while held): a forked child makes its own.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.heap: list[tuple[float, int, _Watchdog]] = []
        self.wake = threading.Condition(threading.Lock())
        threading.Thread(target=self._watch, name="terrapipe-http-deadlines", daemon=True).start()

    def add(self, end: float, watch: _Watchdog) -> None:
        with self.wake:
            heapq.heappush(self.heap, (end, id(watch), watch))
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


_DEADLINES: list[_Deadlines] = []


def _deadlines() -> _Deadlines:
    if not _DEADLINES or _DEADLINES[0].pid != os.getpid():
        _DEADLINES[:] = [_Deadlines()]  # the first reads of a process may race here: each watch works
    return _DEADLINES[0]


class _Watchdog:
    """Shut the sockets of one read's requests when its deadline passes (a socket time-out bounds each wait).

    One thread per process watches every read's deadline (:class:`_Deadlines`):
    a timer thread per request cost 0.7 ms a read.
    """

    def __init__(self, end: float) -> None:
        self.end = end
        self.fired = False
        self.done = False
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
_POOLS_LOCK: list[tuple[int, threading.Lock]] = []  # per process: a fork may copy a lock while held
_MAX_POOLS = 8  # one per pool size (Storage.concurrency) and proxy in use


def _pool(storage: Storage, proxy: str | None = None) -> Any:
    """Return the process's ``PoolManager`` for ``storage.concurrency`` (a ``ProxyManager`` for ``proxy``).

    Its connections report to the deadline in force in their thread
    (:class:`_Watchdog`), but a SOCKS proxy's, which keep their own classes.
    """
    urllib3 = require("urllib3", feature="HTTP reads with headers or in a forked process")
    key = (os.getpid(), storage.concurrency, proxy)
    if not _POOLS_LOCK or _POOLS_LOCK[0][0] != key[0]:
        _POOLS_LOCK[:] = [(key[0], threading.Lock())]
    with _POOLS_LOCK[0][1]:
        pool = _POOLS.get(key)
        if pool is not None:
            return pool

        class Watched:
            def request(self, *args: Any, **kwargs: Any) -> Any:
                watch = getattr(_WATCH, "watch", None)
                if watch is not None:
                    watch.add(self)
                return super().request(*args, **kwargs)  # type: ignore[misc]

        conn = type("Conn", (Watched, urllib3.connection.HTTPConnection), {})
        sconn = type("SConn", (Watched, urllib3.connection.HTTPSConnection), {})
        ensure_log_redaction()  # urllib3 logs each request line (query included) at debug level
        manager = _manager(urllib3, storage.concurrency, proxy)
        if not (proxy or "").startswith("socks"):
            manager.pool_classes_by_scheme = {
                "http": type("Pool", (urllib3.HTTPConnectionPool,), {"ConnectionCls": conn}),
                "https": type("SPool", (urllib3.HTTPSConnectionPool,), {"ConnectionCls": sconn}),
            }
        for stale in [k for k in _POOLS if k[0] != os.getpid()]:
            del _POOLS[stale]  # the parent's pools, inherited through fork: never used here
        while len(_POOLS) >= _MAX_POOLS:
            del _POOLS[next(iter(_POOLS))]
        _POOLS[key] = manager
        return manager


def _manager(urllib3: Any, size: int, proxy: str | None) -> Any:
    options = {"maxsize": size, "block": False, "ssl_context": _trusted()}
    if proxy is None:
        return urllib3.PoolManager(**options)
    if proxy.startswith("socks"):
        if importlib.util.find_spec("socks") is None:
            raise MissingDependencyError(
                "a SOCKS proxy (named by the environment's *_proxy) needs the Python package 'PySocks', "
                "which is not installed; install it with: pip install pysocks"
            )
        return require("urllib3.contrib.socks").SOCKSProxyManager(proxy, **options)
    parts = urllib.parse.urlsplit(proxy)
    basic = ":".join(urllib.parse.unquote(x or "") for x in (parts.username, parts.password))
    headers = urllib3.make_headers(proxy_basic_auth=basic) if parts.username else None
    return urllib3.ProxyManager(proxy, proxy_headers=headers, **options)


def _trusted() -> ssl.SSLContext:
    """Trust the system's certificate authorities and certifi's (what the STAC client on ``requests`` trusted).

    Instead of certifi's, the bundle (a file or a folder) that
    ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` names, where set. certifi's
    serves a Python without the system's authorities (python.org's on macOS).
    """
    context = ssl.create_default_context()
    extra = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if not extra and importlib.util.find_spec("certifi") is not None:
        extra = importlib.import_module("certifi").where()
    if not extra:
        return context
    with contextlib.suppress(OSError, ssl.SSLError):  # no such bundle: the system's alone
        context.load_verify_locations(**{"capath" if os.path.isdir(extra or "") else "cafile": extra})
    return context


def retry_after_of(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds, fractions allowed, or an HTTP date), if readable."""
    text = (value or "").strip()
    with contextlib.suppress(ValueError):
        seconds = float(text)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
        when = email.utils.parsedate_to_datetime(text)
        return max(0.0, when.timestamp() - time.time())
    return None


T = TypeVar("T")


def drive(once: Callable[[_Watchdog], T], storage: Storage, end: float) -> T:
    """Call ``once`` until it returns: every urllib3 request's retries, back-off and deadline.

    ``once`` gets the :class:`_Watchdog` that shuts its connections at
    ``end`` (``time.monotonic()``). A :class:`_RetryError` is tried again at
    most ``storage.retries`` times, after :func:`retry_delay` (``Retry-After``
    first, never past ``end``), then raised; the deadline raises
    :class:`_ExpiredError` holding the last failure. Anything else is raised at once.
    """
    attempt, last = 0, None
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
        if attempt >= storage.retries:
            raise last
        delay = _delay(attempt, storage, last.retry_after)
        if time.monotonic() + delay >= end:
            raise _ExpiredError(last)
        time.sleep(delay)
        attempt += 1


def _urllib3_once(
    url: str,
    storage: Storage,
    method: str,
    want: ByteRange | None,
    expected_total: int | None,
    cap: int,
    end: float,
) -> Reply:
    urllib3 = require("urllib3", feature="HTTP reads with headers or in a forked process")
    wait = max(0.001, min(storage.timeout, end - time.monotonic()))
    limits = urllib3.Timeout(connect=min(wait, 10.0), read=wait)  # connecting: obstore's min(timeout, 10 s)

    def send(method: str, hop: str, body: Any) -> Any:
        home = hop == url or origin_of(hop) == origin_of(url)  # credentials go to the URL's origin only
        headers = {**(dict(storage.headers) if home else {}), "Accept-Encoding": "identity"}
        if want is not None:
            headers["Range"] = want.header()
        if storage.request_modifier is not None and home:  # signed anew on every try
            hop, headers, _ = _signed(hop, method, headers, storage.request_modifier)
        try:
            return _pool(storage, _proxy_for(hop)).request(
                method, hop, headers=headers, retries=False, redirect=False, timeout=limits,
                preload_content=False, decode_content=False,
            )  # fmt: skip
        except urllib3.exceptions.LocationValueError:
            raise _RefusedError("it redirects to a URL that is not a usable http(s) URL") from None
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise _RetryError(f"the connection failed ({type(err).__name__})") from None

    response = follow(method, url, send)
    try:
        return _urllib3_answer(response, method, want, expected_total, cap)
    finally:
        response.close()
        response.release_conn()


_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})


def follow(method: str, url: str, send: Callable[[str, str, Any], Any], body: Any = None) -> Any:
    """Send ``method url`` with ``send(method, url, body)`` and follow its redirects: the one redirect rule.

    ``send`` decides what each hop carries (credentials only to their
    origin); the final answer is returned. At most :data:`MAX_REDIRECTS`
    hops; a loop, or a ``Location`` that is not an ``http(s)`` URL, is a
    :class:`_RefusedError`. A ``303`` (and a ``301``/``302`` after a POST)
    goes on as a GET without the body; the URL's query is never carried to
    another URL.
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


def _urllib3_answer(
    response: Any, method: str, want: ByteRange | None, expected_total: int | None, cap: int
) -> Reply:
    status = int(response.status)
    headers = {str(k).lower(): str(v) for k, v in response.headers.items()}
    if status == 404:
        return Reply(404, headers, b"")
    if status not in (200, 206):
        text = response.read(64 * 1024, decode_content=False).decode("utf-8", "replace")
        raise _status_failure(status, text, want, retry_after_of(headers.get("retry-after")))
    raw_length = headers.get("content-length", "").strip()
    length = int(raw_length) if raw_length.isascii() and raw_length.isdigit() else None
    if method == "HEAD":
        return Reply(200, headers, b"", length)
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    if length is None and not chunked:
        raise _RefusedError(
            "its answer has no valid Content-Length and no chunked encoding: a cut cannot be told from the end"
        )
    answer = _Answer(
        status, 0, None, length, length, headers.get("content-encoding", "identity").strip().lower(), headers
    )
    if status == 206:
        match = _CONTENT_RANGE.match(headers.get("content-range", ""))
        if match is None or match.group(3) == "*":
            raise _RefusedError(
                f"its 206 answer has no usable Content-Range ({headers.get('content-range')!r})"
            )
        answer.start, answer.last, answer.total = (int(x) for x in match.groups())
    body = _Body(answer, want, expected_total, cap)
    # one read for a body of known size (a range, or a whole file within the cap): one buffer, no joins
    whole = status == 206 or (want is None and answer.encoding == "identity" and length is not None)
    step = (body.size if status == 206 else length or _CHUNK) if whole else _CHUNK
    complete = True
    try:
        for chunk in response.stream(max(1, step), decode_content=False):
            if not body.feed(chunk):
                complete = False
                break
    except require("urllib3").exceptions.ProtocolError as err:
        raise _RetryError(f"the server's answer was cut short ({type(err).__name__})") from None
    return body.reply(complete)


def _urllib3_read(
    url: str,
    storage: Storage,
    method: str,
    want: ByteRange | None,
    expected_total: int | None,
    cap: int,
    end: float,
) -> Reply:
    urllib3 = require("urllib3", feature="HTTP reads with headers or in a forked process")

    def once(watch: _Watchdog) -> Reply:
        try:
            return _urllib3_once(url, storage, method, want, expected_total, cap, end)
        except ReadError:  # an answer no retry mends (416, 410...): an OSError, but not the network's
            raise
        except (TimeoutError, urllib3.exceptions.TimeoutError):
            raise _timed_out(storage) from None
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise _RetryError(f"the connection failed ({type(err).__name__})") from None

    return drive(once, storage, end)


# -- the entry points -------------------------------------------------------------------------------
def _check_url(url: str) -> None:
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as err:
        raise InvalidArgumentError(f"not a valid URL: {public_url(url)!r}") from err
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError(f"expected an http(s):// URL, got {public_url(url)!r}")


def _named(err: BaseException, url: str, storage: Storage, limit: float) -> ReadError:
    """Return the error users see for a failed read: ``scheme://host/path``, what happened, what to do."""
    shown = public_url(url)
    if isinstance(err, TimeoutError | _ExpiredError):
        before = f" (the last try failed: {err})" if isinstance(err, _ExpiredError) and str(err) else ""
        return ReadError(
            f"cannot read {shown!r}: no complete answer within the deadline of {limit:g} s for the whole "
            f"request (retries, back-off and redirects included){before}; the server is too slow or sends its "
            "answer a trickle at a time; if the data is large and the link slow, raise the deadline: "
            "tp.Storage(deadline=...), or deadline= of read_zarr/HTTPStore"
        )
    if isinstance(err, ReadError):
        return type(err)(f"cannot read {shown!r}: {err}")
    if isinstance(err, _RefusedError):
        return ReadError(f"cannot read {shown!r}: {err}; the server's answer cannot be trusted")
    if isinstance(err, _DeniedError):
        return ReadError(
            f"cannot read {shown!r}: access denied ({err}); check the headers of tp.Storage or the URL's "
            "signature or token (an expired or altered presigned or SAS URL is refused the same way)"
        )
    hint = err.hint if isinstance(err, _RetryError) else "check the server, or retry later"
    return ReadError(f"cannot read {shown!r}: {err} (after {storage.retries + 1} tries); {hint}")


#: What a read may fail with inside (each named by :func:`_named`; anything else is a bug, raised as is).
_FAILURES = (TimeoutError, _ExpiredError, _RefusedError, _RetryError, _DeniedError, ReadError)


def _prepare(
    url: str, storage: Storage | None, deadline: float | None, max_body: int | None
) -> tuple[Storage, float, int]:
    _check_url(url)
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
    pooled: bool = False,
) -> Reply:
    """Read ``url`` (all of it, or ``byte_range``), checked; return the reply (200, 206 or 404).

    Parameters
    ----------
    url
        An ``http(s)://`` URL (a presigned or SAS query is sent, never shown).
    storage
        Time-out, deadline, cap, retries and headers (default ``Storage.from_env()``).
    method
        ``"GET"`` or ``"HEAD"``.
    byte_range
        The bytes to read; the body returned is exactly those.
    expected_total
        The file's size as known from an earlier request: an answer for a
        file of another size is refused.
    deadline, max_body
        Override ``storage``'s deadline and body cap for this read.
    pooled
        The caller is one of many threads reading at once while others
        decode (a chip's reader threads): the request then goes through
        obstore, which waits without holding the GIL. Otherwise it goes
        through urllib3 (less work per read), unless the environment names a
        proxy for the URL or urllib3 is not installed. Both make the same checks.

    Raises
    ------
    ReadError
        An error status other than 404 (after retries for 429/5xx), an answer
        that is not the bytes asked for, a body over the cap, the deadline.
    """
    config, limit, cap = _prepare(url, storage, deadline, max_body)
    end = time.monotonic() + limit
    try:
        if _uses_obstore(config) and not _blocking_by_urllib3(url, pooled):
            with contextlib.suppress(_NoLengthError):  # chunked: urllib3 reads it
                coro = _obstore_read(url, config, method, byte_range, expected_total, cap)
                return run_on_thread_loop(coro, limit)
        return _urllib3_read(url, config, method, byte_range, expected_total, cap, end)
    except _FAILURES as err:
        raise _named(err, url, config, limit) from None


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
    """:func:`read` in an event loop (obstore's own futures; urllib3 in a thread)."""
    config, limit, cap = _prepare(url, storage, deadline, max_body)
    end = time.monotonic() + limit
    try:
        if _uses_obstore(config):
            with contextlib.suppress(_NoLengthError):  # chunked: urllib3 reads it
                coro = _obstore_read(url, config, method, byte_range, expected_total, cap)
                return await asyncio.wait_for(coro, limit)
        args = (url, config, method, byte_range, expected_total, cap, end)
        return await asyncio.to_thread(_urllib3_read, *args)
    except _FAILURES as err:
        raise _named(err, url, config, limit) from None
