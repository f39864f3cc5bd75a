"""JSON (and whole files) over HTTP for the STAC stages, configured by :class:`~terrapipe.io.storage.Storage`.

:class:`JsonClient` sends the STAC API calls, the documents of a static
catalog and stac-geoparquet downloads over HTTP with ``requests`` (one
session per thread and process). The :class:`~terrapipe.io.storage.Storage`
it is given says how: ``headers``, ``request_modifier``, ``timeout``,
``retries``, ``backoff``, ``max_backoff``, ``deadline`` and ``max_bytes``.
Every request is bounded (the promises of ``docs/reliability.md``):

- **An overall deadline.** One operation (a page, a landing page, a
  document, a download) ends within ``Storage.deadline`` seconds
  (``None``: :data:`DEFAULT_DEADLINE`, 120 s), retries, back-off, redirects
  and body included. ``timeout`` bounds each connection attempt and socket
  read; a watchdog shuts the socket down when the deadline passes, so a
  server trickling its headers or body cannot hold a search.
- **A cap on every body, decompressed**: ``Storage.max_bytes`` (``None``:
  :data:`DEFAULT_MAX_BYTES`, 64 MiB, for JSON; :data:`DEFAULT_MAX_FILE_BYTES`,
  1 GiB, for a file). Only ``gzip`` and ``deflate`` are asked for; urllib3
  (>= 2.6) decodes no more than the bytes asked for, so a bomb is stopped at
  the cap, never expanded in memory.
- **Credentials only to their origin** (scheme, host, port): ``headers`` and
  ``request_modifier`` go to the client's ``origin`` (the API or catalog the
  user named), never to another one (a ``next`` link, a catalog link, a
  redirect); the headers of a ``next`` link go only to that link's origin.
  Redirects are followed here (at most :data:`MAX_REDIRECTS`, a loop is an
  error) so the rule holds on every hop, for every header.
- **Retries**: ``429``, ``5xx``, dropped connections, answers cut short and
  time-outs, at most ``retries`` times, after :func:`retry_delay` (the byte
  layer's rule: ``backoff`` doubled per retry, jitter, at most
  ``max_backoff``); ``Retry-After`` is honoured up to ``max_backoff`` and
  never past the deadline. Other error statuses fail at once.
- **Messages** are the caller's error class (``STACSearchError``,
  ``ReadError``), naming ``scheme://host/path`` only
  (:func:`~terrapipe.core.redact.public_url`) and what to do; header values,
  query strings and secrets a server echoes back are never shown.

Why not urllib3's ``Retry`` (pystac-client's choice): it sleeps for a
``Retry-After`` past any deadline and cannot retry a body cut short after
the headers came; why ``requests``: ``request_modifier`` gets a
``requests.Request``, as pystac-client's does.

Examples
--------
>>> retry_delay(0, backoff=0.5, max_backoff=30.0, jitter=0.0)
0.5
>>> retry_delay(3, backoff=0.5, max_backoff=30.0, jitter=0.0, retry_after=10.0)
10.0
>>> deadline_of(Storage()), deadline_of(Storage(deadline=5))
(120.0, 5.0)
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from terrapipe.core.errors import TerrapipeError
from terrapipe.core.optional import require
from terrapipe.core.redact import public_url, redact_text
from terrapipe.io.gdal_log import ensure_log_redaction
from terrapipe.io.paths import Origin, origin_of
from terrapipe.io.storage import Storage
from terrapipe.stac.deprecated import as_storage

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FILE_BYTES",
    "MAX_REDIRECTS",
    "JsonClient",
    "RequestModifier",
    "deadline_of",
    "retry_delay",
]

#: Called with each ``requests.Request`` before it is sent (signing); returns the request or ``None``.
RequestModifier = Callable[[Any], Any]
#: Seconds one operation (a page or document, retries included) may take when ``Storage.deadline`` is None.
DEFAULT_DEADLINE = 120.0
#: Largest JSON body, decompressed, by default (64 MiB).
DEFAULT_MAX_BYTES = 64 * 2**20
#: Largest stac-geoparquet file downloaded whole, by default (1 GiB).
DEFAULT_MAX_FILE_BYTES = 2**30
#: Redirects followed for one request.
MAX_REDIRECTS = 10

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
_CODINGS = ("", "identity", "gzip", "x-gzip", "deflate")
_CHUNK = 64 * 1024
_BASE_HEADERS = {"Accept": "application/geo+json, application/json", "Accept-Encoding": "gzip, deflate"}
_HINTS = {
    429: "the API is rate limiting; wait, make fewer requests or raise Storage(retries=...)",
    401: "access denied; check the credentials (Storage(headers=..., request_modifier=...))",
    403: "access denied; check the credentials (Storage(headers=..., request_modifier=...))",
    404: "not found; check the URL",
}


def deadline_of(storage: Storage) -> float:
    """Seconds one STAC operation may take: ``storage.deadline``, or :data:`DEFAULT_DEADLINE`."""
    return float(storage.deadline or DEFAULT_DEADLINE)


def retry_delay(
    attempt: int, *, backoff: float, max_backoff: float, jitter: float = 0.5, retry_after: float | None = None
) -> float:
    """Seconds to wait before retry number ``attempt + 1``.

    ``backoff * 2**attempt``, shortened at random by up to ``jitter`` (a
    fraction), raised to ``retry_after`` when the server sent one, at most
    ``max_backoff``.

    Examples
    --------
    >>> [retry_delay(a, backoff=1.0, max_backoff=5.0, jitter=0.0) for a in range(4)]
    [1.0, 2.0, 4.0, 5.0]
    >>> 0.5 <= retry_delay(0, backoff=1.0, max_backoff=5.0) <= 1.0
    True
    """
    delay = backoff * (2.0**attempt) * (1.0 - jitter * random.random())
    if retry_after is not None:
        delay = max(delay, retry_after)
    return float(min(delay, max_backoff))


# -- the watchdog: an overall deadline for requests whose socket reads each have their own time-out ----
class _Deadline:
    """The deadline of one request: when it passes, a timer shuts the request's connection down.

    A socket time-out bounds each read, not a request; shut down, the blocked
    read returns and :attr:`expired` tells why. Our sessions' connections
    attach themselves to the deadline in force in their thread (:func:`_new_session`).
    """

    __slots__ = ("connection", "expired", "stop")

    def __init__(self, stop: float) -> None:
        self.stop, self.expired, self.connection = stop, False, None

    def fire(self) -> None:
        self.expired = True
        if self.connection is not None:
            _shut(self.connection)

    def attach(self, connection: Any) -> None:
        self.connection = connection
        if self.expired:
            _shut(connection)


class _InForce(threading.local):
    deadline: _Deadline | None = None


_IN_FORCE = _InForce()


@contextlib.contextmanager
def _within(stop: float) -> Iterator[_Deadline]:
    """Run a request of this thread under a :class:`_Deadline` ending at ``stop`` (``time.monotonic()``)."""
    deadline = _Deadline(stop)
    timer = threading.Timer(max(0.0, stop - time.monotonic()), deadline.fire)
    timer.daemon = True
    timer.start()
    previous, _IN_FORCE.deadline = _IN_FORCE.deadline, deadline  # a request made inside a modifier nests
    try:
        yield deadline
    finally:
        timer.cancel()
        _IN_FORCE.deadline = previous


def _attach(connection: Any) -> None:
    if _IN_FORCE.deadline is not None:
        _IN_FORCE.deadline.attach(connection)


def _shut(connection: Any) -> None:
    with contextlib.suppress(OSError, AttributeError):
        connection.sock.shutdown(socket.SHUT_RDWR)


def _new_session() -> Any:
    """Make a ``requests.Session`` whose urllib3 connections report to this thread's watchdog."""
    requests = require("requests", extra="stac", feature="STAC over HTTP")
    urllib3 = require("urllib3", extra="stac", feature="STAC over HTTP")

    def tracked(pool: Any) -> Any:
        class Connection(pool.ConnectionCls):  # type: ignore[misc, name-defined]
            def connect(self) -> None:
                _attach(self)
                super().connect()
                _attach(self)

            def request(self, *args: Any, **kwargs: Any) -> None:
                _attach(self)
                super().request(*args, **kwargs)

        return type(pool.__name__, (pool,), {"ConnectionCls": Connection})

    plain = {"http": urllib3.HTTPConnectionPool, "https": urllib3.HTTPSConnectionPool}
    pools = {scheme: tracked(pool) for scheme, pool in plain.items()}

    def track(manager: Any) -> Any:  # a SOCKS proxy's pools keep their own classes (and no watchdog)
        if all(manager.pool_classes_by_scheme.get(k) is v for k, v in plain.items()):
            manager.pool_classes_by_scheme = pools
        return manager

    class Adapter(requests.adapters.HTTPAdapter):  # type: ignore[misc, name-defined]
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            track(self.poolmanager)

        def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
            return track(super().proxy_manager_for(*args, **kwargs))

    ensure_log_redaction()  # urllib3 logs each request line (query included) at debug level
    session = requests.Session()
    session.mount("http://", Adapter())
    session.mount("https://", Adapter())
    return session


class _Sessions(threading.local):
    """One session per thread, made anew after a fork."""

    pid = -1
    session: Any = None

    def get(self) -> Any:
        if self.pid != os.getpid():
            self.pid, self.session = os.getpid(), _new_session()
        return self.session


# -- outcomes of one attempt ------------------------------------------------------------------------
class _ExpiredError(Exception):
    """The deadline passed."""


class _TooBigError(Exception):
    """The body passed the cap."""


class _ProblemError(Exception):
    """A failure: retried when ``retry`` (then ``retry_after`` is the server's wish)."""

    def __init__(
        self, problem: str, hint: str, *, retry: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(problem)
        self.problem, self.hint, self.retry, self.retry_after = problem, hint, retry, retry_after


def _cut(retry: bool = True) -> _ProblemError:
    return _ProblemError(
        "the answer was cut short or garbled",
        "check the server or the network, or try again later",
        retry=retry,
    )


class JsonClient:
    """Send requests with the time-outs, retries, deadline, body cap and credentials of a ``Storage``.

    Parameters
    ----------
    storage
        The configuration (default ``Storage()``); see the module doc.
    origin
        URL of the server the credentials (headers, request modifier) are
        for; ``None``: each request's own URL (never a redirect elsewhere).

    Notes
    -----
    Pickles without its sessions (each process opens its own).
    """

    def __init__(self, storage: Storage | None = None, *, origin: str | None = None) -> None:
        self.storage = as_storage(storage)
        self.origin: Origin | None = origin_of(origin) if origin is not None else None
        self._sessions = _Sessions()
        #: Bytes received from the network (for stage stats).
        self.bytes_received = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"storage": self.storage, "origin": self.origin, "bytes_received": self.bytes_received}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.__dict__.update(state, _sessions=_Sessions())

    def __repr__(self) -> str:
        return f"JsonClient({self.storage!r})"

    def without_credentials(self) -> JsonClient:
        """Return the same client with no headers and no request modifier (for a catalog with no origin)."""
        return JsonClient(self.storage.with_options(headers=(), request_modifier=None))

    def request(
        self,
        method: str,
        url: str,
        *,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        error: type[TerrapipeError],
        what: str,
    ) -> Any:
        """Send one request (retried, within the deadline) and return the decoded JSON answer.

        Parameters
        ----------
        method
            ``"GET"`` or ``"POST"``.
        url
            The URL (query string included for GET).
        body
            JSON body of a POST.
        headers
            Headers of this request only (a ``next`` link's), sent to the URL's origin only.
        error
            The exception class raised on failure.
        what
            What is being done, for messages (``"search the STAC API"``).

        Raises
        ------
        TerrapipeError
            ``error``, naming ``scheme://host/path``: a failure retries did
            not cure, an error status, the deadline, a body over the cap, or
            an answer that is not JSON.
        """
        cap = self.storage.max_bytes or DEFAULT_MAX_BYTES
        content, kind = self._exchange(method, url, body, headers, error=error, what=what, cap=cap)
        return _decode_json(content, error=error, what=what, shown=public_url(url), content_type=kind)

    def request_bytes(self, url: str, *, error: type[TerrapipeError], what: str) -> bytes:
        """GET ``url`` and return its body (cap: ``max_bytes`` or :data:`DEFAULT_MAX_FILE_BYTES`)."""
        cap = self.storage.max_bytes or DEFAULT_MAX_FILE_BYTES
        return self._exchange("GET", url, None, None, error=error, what=what, cap=cap)[0]

    def _exchange(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        *,
        error: type[TerrapipeError],
        what: str,
        cap: int,
    ) -> tuple[bytes, str]:
        opts = self.storage
        shown = public_url(url)
        values = [*(v for _, v in opts.headers), *(headers or {}).values()]

        def scrub(text: str) -> str:
            return redact_text(text, url, values=values)

        deadline = deadline_of(opts)
        stop = time.monotonic() + deadline
        last: _ProblemError | None = None
        for attempt in range(opts.retries + 1):
            if attempt:
                assert last is not None
                delay = retry_delay(
                    attempt - 1,
                    backoff=opts.backoff,
                    max_backoff=opts.max_backoff,
                    retry_after=last.retry_after,
                )
                if time.monotonic() + delay >= stop:
                    break
                time.sleep(delay)
            try:
                with _within(stop) as watchdog:
                    return self._attempt(method, url, body, headers, cap, watchdog)
            except _ExpiredError:
                break
            except _TooBigError:
                raise error(
                    f"cannot {what} at {shown}: the answer is larger than the cap of {_size(cap)} "
                    "(decompressed); raise Storage(max_bytes=...) if it is expected, or check the server"
                ) from None
            except _ProblemError as problem:
                last = problem
                if not problem.retry:
                    raise error(
                        f"cannot {what} at {shown}: {scrub(problem.problem)}; {problem.hint}"
                    ) from None
        else:
            assert last is not None
            tries = f" (after {opts.retries + 1} attempts)" if opts.retries else ""
            raise error(f"cannot {what} at {shown}: {scrub(last.problem)}{tries}; {last.hint}") from None
        before = f"; last problem before it: {scrub(last.problem)}" if last is not None else ""
        raise error(
            f"cannot {what} at {shown}: no complete answer within the deadline of {deadline:g} s (one request "
            f"with its retries, redirects and body{before}); check the server, or raise Storage(deadline=...)"
        ) from None

    def _attempt(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        cap: int,
        watchdog: _Deadline,
    ) -> tuple[bytes, str]:
        """One try: send, follow redirects, read the body."""
        opts = self.storage
        credential_origin = self.origin or origin_of(url)
        given_origin = origin_of(url)
        seen = {(method, url)}
        withheld = False
        for _ in range(MAX_REDIRECTS + 1):
            hop = origin_of(url)
            trusted = hop is not None and hop == credential_origin
            sent = dict(_BASE_HEADERS)
            if trusted:
                sent.update(opts.headers)
            withheld = withheld or (not trusted and bool(opts.headers or opts.request_modifier))
            if headers and hop == given_origin:
                sent.update(headers)
            response = self._send(method, url, body, sent, trusted, watchdog)
            with contextlib.closing(response):
                status = int(response.status_code)
                location = response.headers.get("Location")
                if status in _REDIRECT_STATUS and location:
                    url = urllib.parse.urljoin(url, location)
                    if status == 303 or (status in (301, 302) and method == "POST"):
                        method, body = "GET", None
                    if (method, url) in seen:
                        raise _ProblemError(
                            f"the server redirects in a loop (back to {public_url(url)})",
                            "check the URL and the server",
                        )
                    seen.add((method, url))
                    continue
                if 200 <= status < 300:
                    return self._read(response, cap, watchdog), str(
                        response.headers.get("Content-Type") or ""
                    )
                detail = _excerpt(self._read_some(response, watchdog))
                hint = _HINTS.get(status) or (
                    "the server failed; try again later or simplify the query"
                    if status >= 500
                    else "the server rejected the request; check the query parameters"
                )
                if status in (401, 403) and withheld:
                    hint = (
                        f"access denied; the credentials given (Storage(headers=..., request_modifier=...)) are "
                        f"for {_origin_text(credential_origin)} and are never sent to {_origin_text(hop)} "
                        "(credentials go only to the origin they were given for)"
                    )
                retry_after = _retry_after(response.headers.get("Retry-After"))
                raise _ProblemError(
                    f"HTTP {status}{detail}", hint, retry=status in _RETRY_STATUS, retry_after=retry_after
                )
        raise _ProblemError(f"more than {MAX_REDIRECTS} redirects", "check the URL and the server")

    def _send(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None,
        headers: dict[str, str],
        trusted: bool,
        watchdog: _Deadline,
    ) -> Any:
        requests = require("requests", extra="stac", feature="STAC over HTTP")
        session = self._sessions.get()
        request = requests.Request(
            method, url, headers=headers, json=dict(body) if body is not None else None
        )
        if trusted and self.storage.request_modifier is not None:
            request = self.storage.request_modifier(request) or request
        prepared = session.prepare_request(request)
        per_read = min(self.storage.timeout, watchdog.stop - time.monotonic())
        if per_read <= 0 or watchdog.expired:
            raise _ExpiredError()
        try:
            response = session.send(
                prepared, timeout=(per_read, per_read), allow_redirects=False, stream=True
            )
        except requests.RequestException as err:
            if watchdog.expired:
                raise _ExpiredError() from None
            if isinstance(err, requests.Timeout):
                raise _ProblemError(
                    f"no answer within {per_read:g} s",
                    "check that the server is up, or raise Storage(timeout=...)",
                    retry=True,
                ) from None
            if isinstance(err, requests.ConnectionError):
                dropped = any(
                    w in str(err).lower() for w in ("remotedisconnected", "without response", "reset by peer")
                )
                problem = (
                    "the server closed the connection without answering" if dropped else "cannot connect"
                )
                raise _ProblemError(
                    problem, "check that the server is running and the URL is right", retry=True
                ) from None
            raise _cut(retry=True) from None
        if watchdog.expired:
            response.close()
            raise _ExpiredError()
        return response

    def _read(self, response: Any, cap: int, watchdog: _Deadline) -> bytes:
        """Return the whole body, decoded, at most ``cap`` bytes."""
        encoding = str(response.headers.get("Content-Encoding") or "").strip().lower()
        if encoding not in _CODINGS:
            raise _ProblemError(
                f"the answer's Content-Encoding is {encoding[:40]!r}, which was not asked for",
                "check the server (only gzip and deflate are accepted)",
            )
        length = response.headers.get("Content-Length")
        if not encoding and length and length.strip().isdigit() and int(length) > cap:
            raise _TooBigError()
        parts: list[bytes] = []
        size = 0
        while True:
            chunk = self._chunk(response, watchdog, _CHUNK)
            if not chunk:
                return b"".join(parts)
            size += len(chunk)
            if size > cap:
                raise _TooBigError()
            parts.append(chunk)

    def _chunk(self, response: Any, watchdog: _Deadline, amount: int) -> bytes:
        urllib3 = require("urllib3", extra="stac", feature="STAC over HTTP")
        raw = response.raw
        before = raw.tell()
        try:
            chunk = bytes(raw.read(amount, decode_content=True))
        except urllib3.exceptions.DecodeError:
            raise _ProblemError("the compressed answer is corrupt", "check the server") from None
        except (urllib3.exceptions.HTTPError, OSError) as err:
            if watchdog.expired:
                raise _ExpiredError() from None
            if isinstance(err, urllib3.exceptions.ReadTimeoutError | TimeoutError):
                raise _ProblemError(
                    f"no data for {self.storage.timeout:g} s while reading the answer",
                    "check that the server is up, or raise Storage(timeout=...)",
                    retry=True,
                ) from None
            raise _cut() from None
        finally:
            self.bytes_received += raw.tell() - before
        if watchdog.expired:
            raise _ExpiredError()
        return chunk

    def _read_some(self, response: Any, watchdog: _Deadline) -> bytes:
        """Return the start of an error answer's body (for the message)."""
        try:
            return self._chunk(response, watchdog, 4096)
        except Exception:  # only a detail of a message
            return b""


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds, fractions allowed, or an HTTP date), if readable."""
    if not value:
        return None
    urllib3 = require("urllib3", extra="stac", feature="STAC over HTTP")
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return float(urllib3.util.Retry(retry_after_max=10**6).parse_retry_after(value))
    except (urllib3.exceptions.InvalidHeader, ValueError, OverflowError):
        return None


def _origin_text(origin: Origin | None) -> str:
    return "(no server)" if origin is None else "{}://{}:{}".format(*origin)


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n} bytes"


def _excerpt(content: bytes, shown: int = 300) -> str:
    text = content[:shown].decode("utf-8", "replace").strip()
    return f" ({text}{'...' if len(content) > shown else ''})" if text else ""


def _decode_json(
    content: bytes, *, error: type[TerrapipeError], what: str, shown: str, content_type: str = ""
) -> Any:
    kind = f" (Content-Type {content_type.split(';')[0].strip()[:60]!r})" if content_type else ""
    try:
        return json.loads(content)
    except json.JSONDecodeError as err:
        problem = f"not JSON{kind} ({err.msg} at byte {err.pos}){_excerpt(content)}"
    except UnicodeDecodeError:
        problem = f"not UTF-8 text{kind}"
    except RecursionError:
        problem = "JSON nested too deeply"
    except ValueError:  # an integer too long to convert
        problem = "JSON that holds a number Python refuses"
    raise error(
        f"cannot {what} at {shown}: the answer is {problem}; check that the URL points to a STAC API or STAC JSON"
    ) from None


def __getattr__(name: str) -> Any:
    if name == "HttpOptions":  # deprecated: tp.Storage is the one configuration
        from terrapipe.stac.deprecated import HttpOptions

        return HttpOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
