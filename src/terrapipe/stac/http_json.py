"""JSON over HTTP for the STAC stages: bounded in time and size, retried, credentials kept to their origin.

:class:`HttpOptions` says how requests are made (headers, a request
modifier, time-outs, retries, back-off, deadline, body cap); :class:`JsonClient`
sends them with ``requests`` (one session per thread and process, never
shared across a fork) and returns the decoded JSON.

Every request is bounded (the promises of ``docs/reliability.md``):

- **An overall deadline.** One operation (a search page, a landing page, one
  document of a static catalog, a stac-geoparquet download) ends within
  ``deadline`` seconds, its retries, back-off waits, redirects and the
  reading of its body included (default :data:`DEFAULT_DEADLINE`, 120 s).
  ``timeout`` only bounds each connection attempt and each socket read; a
  watchdog shuts the connection down when the deadline passes, so a server
  that sends one byte per second (headers or body) cannot hold a search.
  On expiry the caller's error class says which deadline it was, its value
  and ``deadline=``.
- **A cap on every body, decompressed.** Bodies are streamed and decoded
  here (``gzip``, ``deflate``; no other content coding is asked for) in
  bounded steps; more than ``max_bytes`` bytes once decompressed (default
  :data:`DEFAULT_MAX_BYTES`, 64 MiB, for a JSON document;
  :data:`DEFAULT_MAX_FILE_BYTES`, 1 GiB, for a stac-geoparquet file) is an
  error naming the URL and the cap, raised after reading at most the cap.
- **Credentials only to their origin.** ``headers`` and ``request_modifier``
  are credentials of one origin (scheme, host and port): the client's
  ``origin`` when it has one (the STAC API or catalog the user named), else
  the URL each request is made for. A request to another origin (a ``next``
  link, a link of a static catalog, a redirect) is sent without them; the
  headers a ``next`` link carries go only to that link's own origin.
  Redirects are followed here (at most :data:`MAX_REDIRECTS`; a loop is an
  error) so that the rule holds on every hop, for every header (``requests``
  itself drops only ``Authorization``).
- **Retries.** ``429``, ``5xx``, dropped connections, answers cut short and
  socket time-outs are retried at most ``retries`` times, after an
  exponential back-off with jitter (:func:`retry_delay`); a ``Retry-After``
  header is honoured up to ``max_backoff`` seconds, and never past the
  deadline. Any other error status fails at once.
- **Messages.** The final error is the ``error`` class the caller asks for
  (:class:`~terrapipe.core.errors.StacSearchError` for searches,
  :class:`~terrapipe.core.errors.ReadError` for reading an item), names the
  URL as ``scheme://host/path`` (:func:`~terrapipe.stac.redact.public_url`)
  and says what to do; header values, query strings and the secrets a server
  echoes back in an error body are never shown.

Written on ``requests`` until the one byte layer of issue #19 replaces it:
``requests`` has no overall deadline and no decompressed-size cap, hence the
watchdog and the bounded decoder here.

Examples
--------
>>> HttpOptions.make(headers={"Authorization": "Bearer secret"}, timeout=5)
HttpOptions(headers={'Authorization': '***'}, timeout=5.0, retries=3, backoff=0.5, max_backoff=30.0, deadline=120.0, max_bytes=None)
>>> retry_delay(0, backoff=0.5, max_backoff=30.0, jitter=0.0)
0.5
>>> retry_delay(3, backoff=0.5, max_backoff=30.0, jitter=0.0, retry_after=10.0)
10.0
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import os
import random
import socket
import threading
import time
import urllib.parse
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from terrapipe.core.errors import InvalidArgumentError, TerrapipeError
from terrapipe.core.optional import require
from terrapipe.io.paths import Origin, origin_of
from terrapipe.io.redact import redact_urls, secrets_of
from terrapipe.stac.redact import MASK, public_url, redact_headers

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FILE_BYTES",
    "MAX_REDIRECTS",
    "HttpOptions",
    "JsonClient",
    "RequestModifier",
    "retry_delay",
]

#: Called with each ``requests.Request`` before it is sent (e.g. to sign it);
#: returns the request to send, or ``None`` after changing it in place.
RequestModifier = Callable[[Any], Any]

#: ``(scheme, host, port)`` of a URL, lowercased, the port filled in.

#: Seconds one operation (a page or document, retries included) may take, by default.
DEFAULT_DEADLINE = 120.0
#: Largest JSON body, decompressed, by default (64 MiB).
DEFAULT_MAX_BYTES = 64 * 2**20
#: Largest stac-geoparquet file downloaded over HTTP, by default (1 GiB).
DEFAULT_MAX_FILE_BYTES = 2**30
#: Redirects followed for one request.
MAX_REDIRECTS = 10

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
_BODY_SHOWN = 300
_ERROR_BODY_READ = 4096
_CHUNK = 64 * 1024
_STEP = 2**20
_BASE_HEADERS = {"Accept": "application/geo+json, application/json", "Accept-Encoding": "gzip, deflate"}


def _origin_text(origin: Origin | None) -> str:
    if origin is None:
        return "(no server)"
    scheme, host, port = origin
    return f"{scheme}://{host}:{port}"


@dataclass(frozen=True, repr=False)
class HttpOptions:
    """How the STAC stages make HTTP requests.

    Attributes
    ----------
    headers
        Extra request headers as ``(name, value)`` pairs (values are never
        shown), sent only to the origin they are given for (see the module doc).
    timeout
        Seconds to wait for a connection and, separately, for each read.
    retries
        How many times a 429/5xx answer, a dropped connection or a time-out
        is retried (0: never).
    backoff
        Delay before the first retry, in seconds; doubled at each retry,
        with jitter.
    max_backoff
        Upper bound of one delay, ``Retry-After`` included.
    request_modifier
        Called with each ``requests.Request`` to the credentials' origin
        before it is sent (signing); returns the request to send or ``None``
        after changing it in place.
    deadline
        Seconds one operation (a page, a document, a file download) may take
        in all: retries, back-off, redirects and reading the body included.
    max_bytes
        Largest body accepted, decompressed, in bytes; ``None``:
        :data:`DEFAULT_MAX_BYTES` for JSON, :data:`DEFAULT_MAX_FILE_BYTES`
        for a stac-geoparquet file.
    """

    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    request_modifier: RequestModifier | None = field(default=None, compare=False)
    deadline: float = DEFAULT_DEADLINE
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise InvalidArgumentError(f"timeout must be > 0 seconds, got {self.timeout!r}")
        if self.retries < 0:
            raise InvalidArgumentError(f"retries must be >= 0, got {self.retries!r}")
        if self.backoff < 0 or self.max_backoff < 0:
            msg = f"backoff and max_backoff must be >= 0, got {self.backoff!r} and {self.max_backoff!r}"
            raise InvalidArgumentError(msg)
        if self.request_modifier is not None and not callable(self.request_modifier):
            raise InvalidArgumentError(f"request_modifier must be callable, got {self.request_modifier!r}")
        if not self.deadline > 0:
            raise InvalidArgumentError(f"deadline must be > 0 seconds, got {self.deadline!r}")
        if self.max_bytes is not None and (isinstance(self.max_bytes, bool) or self.max_bytes < 1):
            raise InvalidArgumentError(
                f"max_bytes must be a positive number of bytes, got {self.max_bytes!r}"
            )

    @classmethod
    def make(
        cls,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        request_modifier: RequestModifier | None = None,
        deadline: float | None = None,
        max_bytes: int | None = None,
    ) -> HttpOptions:
        """Build options from keyword arguments (``headers`` as a mapping).

        Raises
        ------
        InvalidArgumentError
            For a non-positive time-out, deadline or cap, negative retries or
            back-off, or a request modifier that is not callable.
        """
        if headers is not None and not isinstance(headers, Mapping):
            raise InvalidArgumentError(f"headers must be a mapping of names to values, got {type(headers)!r}")
        pairs = tuple((str(k), str(v)) for k, v in (headers or {}).items())
        try:
            return cls(
                headers=pairs,
                timeout=float(timeout),
                retries=int(retries),
                backoff=float(backoff),
                max_backoff=float(max_backoff),
                request_modifier=request_modifier,
                deadline=float(deadline) if deadline is not None else DEFAULT_DEADLINE,
                max_bytes=int(max_bytes) if max_bytes is not None else None,
            )
        except (TypeError, ValueError) as err:
            raise InvalidArgumentError(f"bad HTTP option: {err}") from None

    def without_credentials(self) -> HttpOptions:
        """Return the same options with no headers and no request modifier."""
        return HttpOptions(
            timeout=self.timeout,
            retries=self.retries,
            backoff=self.backoff,
            max_backoff=self.max_backoff,
            deadline=self.deadline,
            max_bytes=self.max_bytes,
        )

    def __repr__(self) -> str:
        shown = redact_headers(dict(self.headers))
        return (
            f"HttpOptions(headers={shown}, timeout={self.timeout}, retries={self.retries}, "
            f"backoff={self.backoff}, max_backoff={self.max_backoff}, deadline={self.deadline}, "
            f"max_bytes={self.max_bytes})"
        )


def retry_delay(
    attempt: int,
    *,
    backoff: float,
    max_backoff: float,
    jitter: float = 0.5,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt + 1``.

    The delay is ``backoff * 2**attempt``, shortened at random by up to
    ``jitter`` (a fraction) so that many clients do not retry in step,
    raised to ``retry_after`` when the server sent one, and capped at
    ``max_backoff``.

    Parameters
    ----------
    attempt
        0 for the first retry.
    backoff, max_backoff
        First delay and upper bound, in seconds.
    jitter
        Fraction of the delay that may be removed at random (0: none).
    retry_after
        Seconds the server asked for (``Retry-After``), if any.

    Returns
    -------
    float
        The delay in seconds.

    Examples
    --------
    >>> [retry_delay(a, backoff=1.0, max_backoff=5.0, jitter=0.0) for a in range(4)]
    [1.0, 2.0, 4.0, 5.0]
    >>> 0.5 <= retry_delay(0, backoff=1.0, max_backoff=5.0) <= 1.0
    True
    """
    delay = backoff * (2.0**attempt)
    if jitter:
        delay *= 1.0 - jitter * random.random()
    if retry_after is not None:
        delay = max(delay, retry_after)
    return float(min(delay, max_backoff))


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# -- the watchdog: an overall deadline for a request whose socket reads each have their own time-out ----
class _Tracking(threading.local):
    """The watchdog of the request this thread is making, if any."""

    watchdog: _Watchdog | None = None


_TRACKING = _Tracking()


class _Watchdog:
    """Shut the connection in use down when the deadline passes.

    A socket time-out bounds each read, not a request: a server sending one
    byte per time-out would never time out. The connections of our sessions
    report to the watchdog of their thread (:func:`_pool_classes`); when the
    timer fires, the socket is shut down, the blocked read returns and the
    request fails; :attr:`expired` then tells the deadline was the cause.
    """

    def __init__(self, stop: float) -> None:
        self.stop = stop
        self.expired = False
        self._connection: Any = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def __enter__(self) -> _Watchdog:
        _TRACKING.watchdog = self
        self._timer = threading.Timer(max(0.0, self.stop - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        _TRACKING.watchdog = None
        self._connection = None

    def attach(self, connection: Any) -> None:
        with self._lock:
            self._connection = connection
            if self.expired:
                _shut(connection)

    def _fire(self) -> None:
        with self._lock:
            self.expired = True
            if self._connection is not None:
                _shut(self._connection)


def _shut(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


_POOLS: dict[str, Any] = {}


def _pool_classes() -> dict[str, Any]:
    """urllib3 pool classes whose connections report to the thread's watchdog (made once)."""
    if not _POOLS:
        urllib3 = require("urllib3", extra="stac", feature="STAC over HTTP")
        connection_module = require("urllib3.connection", extra="stac", feature="STAC over HTTP")

        def tracked(base: Any) -> Any:
            class Tracked(base):  # type: ignore[misc, valid-type]
                def connect(self) -> None:
                    super().connect()
                    watchdog = _TRACKING.watchdog
                    if watchdog is not None:
                        watchdog.attach(self)

                def request(self, *args: Any, **kwargs: Any) -> None:
                    watchdog = _TRACKING.watchdog
                    if watchdog is not None:
                        watchdog.attach(self)
                    super().request(*args, **kwargs)

            return Tracked

        http_pool = type(
            "HTTPPool",
            (urllib3.HTTPConnectionPool,),
            {"ConnectionCls": tracked(connection_module.HTTPConnection)},
        )
        https_pool = type(
            "HTTPSPool",
            (urllib3.HTTPSConnectionPool,),
            {"ConnectionCls": tracked(connection_module.HTTPSConnection)},
        )
        _POOLS.update({"http": http_pool, "https": https_pool})
    return _POOLS


def _new_session() -> Any:
    requests = require("requests", extra="stac", feature="STAC over HTTP")

    urllib3 = require("urllib3", extra="stac", feature="STAC over HTTP")
    plain = {"http": urllib3.HTTPConnectionPool, "https": urllib3.HTTPSConnectionPool}

    def track(manager: Any) -> None:
        # only urllib3's own pools are swapped: a SOCKS proxy's pools keep their classes (and no watchdog)
        if all(manager.pool_classes_by_scheme.get(k) is v for k, v in plain.items()):
            manager.pool_classes_by_scheme = _pool_classes()

    class Adapter(requests.adapters.HTTPAdapter):  # type: ignore[misc, name-defined]
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            track(self.poolmanager)

        def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(*args, **kwargs)
            track(manager)
            return manager

    session = requests.Session()
    session.mount("http://", Adapter())
    session.mount("https://", Adapter())
    return session


class _Sessions(threading.local):
    """One ``requests.Session`` per thread, dropped after a fork."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.session: Any = None

    def get(self) -> Any:
        if self.pid != os.getpid() or self.session is None:
            self.pid, self.session = os.getpid(), _new_session()
        return self.session


# -- outcomes of one attempt ------------------------------------------------------------------------
class _ExpiredError(Exception):
    """The deadline passed."""


class _FailError(Exception):
    """A failure retries will not cure."""

    def __init__(self, problem: str, hint: str) -> None:
        super().__init__(problem)
        self.problem, self.hint = problem, hint


class _RetryError(Exception):
    """A failure worth retrying."""

    def __init__(
        self, problem: str, hint: str, cause: BaseException | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(problem)
        self.problem, self.hint, self.cause, self.retry_after = problem, hint, cause, retry_after


class _Body:
    """Collect a body, decoding ``gzip``/``deflate`` in bounded steps, at most ``cap`` bytes decoded."""

    def __init__(self, encoding: str, cap: int) -> None:
        coding = encoding.strip().lower()
        self._deflate = coding == "deflate"
        self._z: Any = None
        if coding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding not in ("", "identity", "deflate"):
            raise _FailError(
                f"the answer's Content-Encoding is {encoding[:40]!r}, which was not asked for",
                "check the server (only gzip and deflate are accepted)",
            )
        self.cap = cap
        self.size = 0
        self._parts: list[bytes] = []
        self._members = 1
        self._trailing = False

    def feed(self, data: bytes) -> None:
        if self._deflate and self._z is None:  # zlib-wrapped or raw deflate: servers send both
            zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0
            self._z = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
        if self._z is None:
            self._add(data)
            return
        pending = data
        while pending:
            if self._z.eof:
                if self._deflate or self._trailing:
                    return  # bytes after the end of the stream are ignored (as gzip(1) and urllib3 do)
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)  # another gzip member follows
                self._members += 1
            try:
                # at most _STEP bytes at a time: one step of a bomb never holds much more than the cap
                self._add(self._z.decompress(pending, min(self.cap - self.size + 1, _STEP)))
            except zlib.error as err:
                if self._members > 1:  # padding after the last member, not a member
                    self._trailing = True
                    return
                raise _FailError(f"the compressed answer is corrupt ({err})", "check the server") from None
            pending = self._z.unconsumed_tail or (self._z.unused_data if self._z.eof else b"")

    def finish(self) -> bytes:
        if self._z is not None and not self._trailing:
            try:
                self._add(self._z.flush())
            except zlib.error as err:
                raise _FailError(f"the compressed answer is corrupt ({err})", "check the server") from None
            if not self._z.eof and self.size:
                raise _RetryError("the compressed answer was cut short", "check the server or the network")
        return b"".join(self._parts)

    def _add(self, piece: bytes) -> None:
        if piece:
            self.size += len(piece)
            if self.size > self.cap:
                raise _TooBigError()
            self._parts.append(piece)


class _TooBigError(Exception):
    """The body passed the cap."""


class JsonClient:
    """Send JSON requests with the retry policy, deadline and body cap of :class:`HttpOptions`.

    Parameters
    ----------
    options
        Headers, time-out, retries, back-off, request modifier, deadline, body cap.
    origin
        URL of the server the options' credentials (headers, request
        modifier) are for; only requests to its origin carry them. ``None``:
        each request's own URL (they never follow a redirect elsewhere).

    Notes
    -----
    The client pickles without its sessions (each process opens its own).
    """

    def __init__(self, options: HttpOptions | None = None, *, origin: str | None = None) -> None:
        self.options = options or HttpOptions()
        self.origin: Origin | None = origin_of(origin) if origin is not None else None
        self._sessions = _Sessions()
        #: Bytes of response bodies received (for stage stats).
        self.bytes_received = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"options": self.options, "origin": self.origin, "bytes_received": self.bytes_received}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.options = state["options"]
        self.origin = state["origin"]
        self.bytes_received = state["bytes_received"]
        self._sessions = _Sessions()

    def __repr__(self) -> str:
        return f"JsonClient({self.options!r})"

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
        """Send one request (with retries, within the deadline) and return the decoded JSON answer.

        Parameters
        ----------
        method
            ``"GET"`` or ``"POST"``.
        url
            The URL (query string included for GET).
        body
            JSON body of a POST.
        headers
            Headers for this request only (e.g. from a ``next`` link), sent
            to the URL's origin only, with the options' headers where the
            credentials' origin is the same.
        error
            The exception class raised on failure.
        what
            What is being done, for messages (``"search the STAC API"``).

        Returns
        -------
        Any
            The decoded JSON.

        Raises
        ------
        TerrapipeError
            ``error``, naming the URL (``scheme://host/path``), on a failure
            that retries did not cure, an error status, a deadline passed, a
            body over the cap, or an answer that is not JSON.
        """
        cap = self.options.max_bytes or DEFAULT_MAX_BYTES
        content, kind = self._exchange(
            method, url, body=body, headers=headers, error=error, what=what, cap=cap
        )
        return _decode_json(content, error=error, what=what, shown=public_url(url), content_type=kind)

    def request_bytes(self, url: str, *, error: type[TerrapipeError], what: str) -> bytes:
        """GET ``url`` (with retries, within the deadline) and return the body as bytes.

        The body cap is ``max_bytes`` or :data:`DEFAULT_MAX_FILE_BYTES`.

        Raises
        ------
        TerrapipeError
            ``error``, naming the URL, as :meth:`request` does.
        """
        cap = self.options.max_bytes or DEFAULT_MAX_FILE_BYTES
        content, _ = self._exchange("GET", url, body=None, headers=None, error=error, what=what, cap=cap)
        return content

    def _exchange(
        self,
        method: str,
        url: str,
        *,
        body: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        error: type[TerrapipeError],
        what: str,
        cap: int,
    ) -> tuple[bytes, str]:
        requests = require("requests", extra="stac", feature="STAC over HTTP")
        opts = self.options
        shown = public_url(url)
        secrets = self._secrets(url, headers)
        stop = time.monotonic() + opts.deadline
        attempts = opts.retries + 1
        last: _RetryError | None = None
        for attempt in range(attempts):
            try:
                return self._attempt(requests, method, url, body, headers, cap=cap, stop=stop)
            except _ExpiredError:
                raise error(_deadline_message(what, shown, opts.deadline, last)) from None
            except _TooBigError:
                msg = (
                    f"cannot {what} at {shown}: the answer is larger than the cap of {_size(cap)} "
                    "(decompressed); raise max_bytes= if it is expected, or check the server"
                )
                raise error(msg) from None
            except _FailError as fail:
                raise error(
                    f"cannot {what} at {shown}: {_scrub_text(fail.problem, secrets)}; {fail.hint}"
                ) from None
            except _RetryError as retry:
                last = retry
            if attempt + 1 < attempts:
                delay = retry_delay(
                    attempt, backoff=opts.backoff, max_backoff=opts.max_backoff, retry_after=last.retry_after
                )
                if time.monotonic() + delay >= stop:
                    raise error(_deadline_message(what, shown, opts.deadline, last)) from None
                time.sleep(delay)
        assert last is not None
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        msg = f"cannot {what} at {shown}: {_scrub_text(last.problem, secrets)}{tries}; {last.hint}"
        cause = last.cause
        raise error(msg) from (_scrub(cause) if cause is not None else None)

    def _secrets(self, url: str, headers: Mapping[str, str] | None) -> list[str]:
        """Values that must never be shown: header values (and their words), secrets of the URL."""
        values = [*secrets_of(url)]
        for value in [v for _, v in self.options.headers] + list((headers or {}).values()):
            values.append(value)
            values.extend(word for word in value.split() if len(word) >= 6)
        return [v for v in values if len(v) >= 3]

    def _attempt(
        self,
        requests: Any,
        method: str,
        url: str,
        body: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        *,
        cap: int,
        stop: float,
    ) -> tuple[bytes, str]:
        """One try: send, follow redirects, read the body; raise ``_RetryError``, ``_FailError``, ``_ExpiredError``."""
        credential_origin = self.origin or origin_of(url)
        given_origin = origin_of(url)
        seen = {(method, url)}
        withheld = False
        with _Watchdog(stop) as watchdog:
            for _ in range(MAX_REDIRECTS + 1):
                hop = origin_of(url)
                trusted = hop is not None and hop == credential_origin
                sent = dict(_BASE_HEADERS)
                if trusted:
                    sent.update(self.options.headers)
                elif self.options.headers or self.options.request_modifier is not None:
                    withheld = True
                if headers and hop == given_origin:
                    sent.update(headers)
                response = self._send(requests, method, url, body, sent, trusted, watchdog)
                complete = False
                try:
                    status = int(response.status_code)
                    location = response.headers.get("Location")
                    if status in _REDIRECT_STATUS and location:
                        target = urllib.parse.urljoin(url, location)
                        if status == 303 or (status in (301, 302) and method == "POST"):
                            method, body = "GET", None
                        if (method, target) in seen:
                            raise _FailError(
                                f"the server redirects in a loop (back to {public_url(target)})",
                                "check the URL and the server",
                            )
                        seen.add((method, target))
                        url = target
                        continue
                    if 200 <= status < 300:
                        content = self._read(response, cap, watchdog)
                        complete = True  # read to its end: the connection can serve the next request
                        return content, str(response.headers.get("Content-Type") or "")
                    detail = _body_excerpt(self._read_some(response, watchdog))
                    hint = _status_hint(status)
                    if status in (401, 403) and withheld:
                        hint = (
                            f"access denied; the credentials given (headers=, request_modifier=) are for "
                            f"{_origin_text(credential_origin)} and are never sent to {_origin_text(hop)} "
                            "(credentials go only to the origin they were given for)"
                        )
                    if status not in _RETRY_STATUS:
                        raise _FailError(f"HTTP {status}{detail}", hint)
                    retry_after = _parse_retry_after(response.headers.get("Retry-After"))
                    raise _RetryError(f"HTTP {status}{detail}", hint, retry_after=retry_after)
                finally:
                    if complete:
                        response.raw.release_conn()
                    else:
                        response.close()
            raise _FailError(f"more than {MAX_REDIRECTS} redirects", "check the URL and the server")

    def _send(
        self,
        requests: Any,
        method: str,
        url: str,
        body: Mapping[str, Any] | None,
        headers: dict[str, str],
        trusted: bool,
        watchdog: _Watchdog,
    ) -> Any:
        session = self._sessions.get()
        request = requests.Request(
            method, url, headers=headers, json=dict(body) if body is not None else None
        )
        if trusted and self.options.request_modifier is not None:
            changed = self.options.request_modifier(request)
            request = changed if changed is not None else request
        prepared = session.prepare_request(request)
        remaining = watchdog.stop - time.monotonic()
        if remaining <= 0 or watchdog.expired:
            raise _ExpiredError()
        per_read = min(self.options.timeout, remaining)
        try:
            response = session.send(
                prepared, timeout=(per_read, per_read), allow_redirects=False, stream=True
            )
        except requests.RequestException as err:
            if watchdog.expired:
                raise _ExpiredError() from None
            raise _request_problem(requests, err, per_read) from None
        if watchdog.expired:
            response.close()
            raise _ExpiredError()
        return response

    def _read(self, response: Any, cap: int, watchdog: _Watchdog) -> bytes:
        """Read a whole body, decoded, at most ``cap`` bytes."""
        length = response.headers.get("Content-Length")
        encoding = str(response.headers.get("Content-Encoding") or "")
        if length and length.strip().isdigit() and not encoding and int(length) > cap:
            raise _TooBigError()
        collected = _Body(encoding, cap)
        wire = 0
        for chunk in self._chunks(response, watchdog):
            wire += len(chunk)
            if wire > cap + _CHUNK:  # wire bytes that decode to nothing are bounded too
                raise _TooBigError()
            collected.feed(chunk)
        return collected.finish()

    def _read_some(self, response: Any, watchdog: _Watchdog) -> bytes:
        """Return the start of an error answer's body (for the message); the rest is not read."""
        try:
            chunk = response.raw.read(_ERROR_BODY_READ, decode_content=True)
        except Exception:  # only a detail for a message
            return b""
        self.bytes_received += len(chunk or b"")
        return bytes(chunk or b"")

    def _chunks(self, response: Any, watchdog: _Watchdog) -> Any:
        raw = response.raw
        urllib3 = require("urllib3", extra="stac", feature="STAC over HTTP")
        while True:
            if watchdog.expired:
                raise _ExpiredError()
            try:
                chunk = raw.read(_CHUNK, decode_content=False)
            except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as err:
                if watchdog.expired:
                    raise _ExpiredError() from None
                if isinstance(err, urllib3.exceptions.ReadTimeoutError | TimeoutError | socket.timeout):
                    raise _RetryError(
                        f"no data for {self.options.timeout:g} s while reading the answer",
                        "check that the server is up, or raise timeout=",
                        err,
                    ) from None
                raise _RetryError(
                    "the answer was cut short (fewer bytes than announced) or garbled",
                    "check the server or the network, or try again later",
                    err,
                ) from None
            if not chunk:
                if watchdog.expired:
                    raise _ExpiredError()
                return
            self.bytes_received += len(chunk)
            yield chunk


def _request_problem(requests: Any, err: BaseException, timeout: float) -> Exception:
    """Return the retry or failure of an exception raised while sending."""
    if isinstance(err, requests.Timeout):
        return _RetryError(
            f"no answer within {timeout:g} s", "check that the server is up, or raise timeout=", err
        )
    if isinstance(err, requests.ConnectionError):
        if _dropped(err):
            return _RetryError(
                "the server closed the connection without answering",
                "check the server, or try again later",
                err,
            )
        return _RetryError("cannot connect", "check that the server is running and the URL is right", err)
    if isinstance(err, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
        return _RetryError(
            "the answer was cut short (fewer bytes than announced) or garbled",
            "check the server or the network, or try again later",
            err,
        )
    return _FailError(type(err).__name__, "check the URL and the request options")


def _deadline_message(what: str, shown: str, deadline: float, last: _RetryError | None) -> str:
    before = f"; last problem before it: {last.problem}" if last is not None else ""
    return (
        f"cannot {what} at {shown}: no complete answer within the deadline of {deadline:g} s "
        f"(deadline=: one request with its retries, redirects and body{before}); check the server, "
        "or raise deadline= (e.g. search_stac(..., deadline=600))"
    )


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n} bytes"


def _scrub_text(text: str, secrets: list[str]) -> str:
    """``text`` with every URL redacted and the given secret values masked."""
    text = redact_urls(text)
    for value in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def _dropped(err: BaseException) -> bool:
    """Whether a connection error means the server accepted the connection, then closed it unanswered."""
    text = str(err).lower()
    return (
        "remotedisconnected" in text
        or "closed connection without response" in text
        or "reset by peer" in text
    )


def _scrub(err: BaseException) -> BaseException:
    """Return a stand-in cause that keeps the error's type name but not its text (which may hold a signed URL)."""
    return RuntimeError(f"{type(err).__name__} (details withheld: they may contain credentials)")


def _decode_json(
    content: bytes, *, error: type[TerrapipeError], what: str, shown: str, content_type: str = ""
) -> Any:
    kind = f" (Content-Type {content_type.split(';')[0].strip()[:60]!r})" if content_type else ""
    try:
        return json.loads(content)
    except json.JSONDecodeError as err:
        msg = (
            f"cannot {what} at {shown}: the answer is not JSON{kind} ({err.msg} at byte {err.pos})"
            f"{_body_excerpt(content)}; check that the URL points to a STAC API or a STAC JSON file"
        )
        raise error(msg) from None
    except UnicodeDecodeError:
        msg = (
            f"cannot {what} at {shown}: the answer is not UTF-8 text{kind}; "
            "check that the URL points to STAC JSON"
        )
        raise error(msg) from None
    except (RecursionError, ValueError) as err:  # nested too deep; an integer too long to convert
        problem = "nested too deeply" if isinstance(err, RecursionError) else "holds a number Python refuses"
        msg = f"cannot {what} at {shown}: the JSON answer {problem}; check that the URL points to STAC JSON"
        raise error(msg) from None


def _body_excerpt(content: bytes) -> str:
    text = content[:_BODY_SHOWN].decode("utf-8", "replace").strip()
    if not text:
        return ""
    more = "..." if len(content) > _BODY_SHOWN else ""
    return f" ({text}{more})"


def _status_hint(status: int) -> str:
    if status == 429:
        return "the API is rate limiting; wait, make fewer requests or raise retries="
    if status >= 500:
        return "the server failed; try again later or simplify the query"
    if status in (401, 403):
        return "access denied; check the credentials (headers=, request_modifier=)"
    if status == 404:
        return "not found; check the URL"
    return "the server rejected the request; check the query parameters"
