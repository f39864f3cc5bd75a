"""JSON (and whole files) over HTTP for the STAC stages, configured by :class:`~terrapipe.io.storage.Storage`.

:class:`JsonClient` sends the STAC API calls, the documents of a static
catalog and stac-geoparquet downloads over HTTP through the byte layer's
urllib3 pools (:mod:`terrapipe.io.http_reads`: one pool per process and
``Storage.concurrency``, the environment's ``*_proxy``, one watchdog thread
for every deadline, :func:`~terrapipe.io.http_reads.drive` for the retries).
What is here: JSON in and out, POST bodies, redirects with the credential
rule below, error statuses worded for STAC. The
:class:`~terrapipe.io.storage.Storage` it is given says how: ``headers``,
``request_modifier``, ``timeout``, ``retries``, ``backoff``,
``max_backoff``, ``deadline`` and ``max_bytes``. Every request is bounded
(the promises of ``docs/reliability.md``):

- **An overall deadline.** One operation (a page, a landing page, a
  document, a download) ends within ``Storage.deadline`` seconds
  (``None``: :data:`DEFAULT_DEADLINE`, 120 s), retries, back-off, redirects
  and body included. ``timeout`` bounds each connection attempt and socket
  read; the watchdog shuts the socket down when the deadline passes, so a
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
the headers came. ``request_modifier`` gets a ``requests.Request``, as
pystac-client's does (``requests`` is needed only then).

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

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from terrapipe.core.errors import ReadError, TerrapipeError
from terrapipe.core.optional import require
from terrapipe.core.redact import public_url, redact_text
from terrapipe.io.http_reads import (
    _RETRY_STATUS,
    DEFAULT_DEADLINE,
    MAX_REDIRECTS,
    _ExpiredError,
    _pool,
    _proxy_for,
    _RefusedError,
    _RetryError,
    _signed,
    _Watchdog,
    check_headers,
    deadline_of,
    drive,
    follow,
    retry_after_of,
    retry_delay,
)
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
#: Largest JSON body, decompressed, by default (64 MiB).
DEFAULT_MAX_BYTES = 64 * 2**20
#: Largest stac-geoparquet file downloaded whole, by default (1 GiB).
DEFAULT_MAX_FILE_BYTES = 2**30

_CODINGS = ("", "identity", "gzip", "x-gzip", "deflate")
_CHUNK = 64 * 1024
_BASE_HEADERS = {"Accept": "application/geo+json, application/json", "Accept-Encoding": "gzip, deflate"}
_HINTS = {
    429: "the API is rate limiting; wait, make fewer requests or raise Storage(retries=...)",
    401: "access denied; check the credentials (Storage(headers=..., request_modifier=...))",
    403: "access denied; check the credentials (Storage(headers=..., request_modifier=...))",
    404: "not found; check the URL",
}


class _TooBigError(Exception):
    """The body passed the cap."""


class _FailedError(Exception):
    """A failure no retry mends."""

    def __init__(self, problem: str, hint: str) -> None:
        super().__init__(problem)
        self.problem, self.hint = problem, hint


def _problem(problem: str, hint: str, *, retry: bool = False, retry_after: float | None = None) -> Exception:
    return _RetryError(problem, retry_after, hint) if retry else _FailedError(problem, hint)


def _cut(retry: bool = True) -> Exception:
    return _problem(
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

    """

    def __init__(self, storage: Storage | None = None, *, origin: str | None = None) -> None:
        self.storage = as_storage(storage)
        self.origin: Origin | None = origin_of(origin) if origin is not None else None
        #: Bytes received from the network (for stage stats).
        self.bytes_received = 0

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
        try:
            return drive(
                lambda watch: self._attempt(method, url, body, headers, cap, watch),
                opts,
                time.monotonic() + deadline,
            )
        except _TooBigError:
            raise error(
                f"cannot {what} at {shown}: the answer is larger than the cap of {_size(cap)} "
                "(decompressed); raise Storage(max_bytes=...) if it is expected, or check the server"
            ) from None
        except _FailedError as failed:
            raise error(f"cannot {what} at {shown}: {scrub(failed.problem)}; {failed.hint}") from None
        except _RetryError as last:
            tries = f" (after {opts.retries + 1} attempts)" if opts.retries else ""
            raise error(f"cannot {what} at {shown}: {scrub(str(last))}{tries}; {last.hint}") from None
        except _ExpiredError as expired:
            before = f"; last problem before it: {scrub(str(expired.last))}" if expired.last else ""
            raise error(
                f"cannot {what} at {shown}: no complete answer within the deadline of {deadline:g} s (one "
                f"request with its retries, redirects and body{before}); check the server, or raise "
                "Storage(deadline=...)"
            ) from None

    def _attempt(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        cap: int,
        watch: _Watchdog,
    ) -> tuple[bytes, str]:
        """One try: send, follow redirects (credentials only to their origin), read the body."""
        opts = self.storage
        credential_origin = self.origin or origin_of(url)
        given_origin = origin_of(url)
        hops: list[
            tuple[Origin | None, bool]
        ] = []  # each hop's origin, and whether credentials were withheld

        def send(method: str, url: str, body: Any) -> Any:
            hop = origin_of(url)
            trusted = hop is not None and hop == credential_origin
            sent = dict(_BASE_HEADERS)
            if trusted:
                sent.update(opts.headers)
            hops.append((hop, not trusted and bool(opts.headers or opts.request_modifier)))
            if headers and hop == given_origin:
                sent.update(headers)
            return self._send(method, url, body, sent, trusted, watch)

        try:
            response = follow(method, url, send, body)
        except _RefusedError as err:
            raise _FailedError(str(err), "check the URL and the server") from None
        try:
            status = int(response.status)
            if 200 <= status < 300:
                return self._read(response, cap, watch), str(response.headers.get("Content-Type") or "")
            detail = _excerpt(self._read_some(response, watch))
            hint = _HINTS.get(status) or (
                "the server failed; try again later or simplify the query"
                if status >= 500
                else "the server rejected the request; check the query parameters"
            )
            if status in (401, 403) and any(withheld for _, withheld in hops):
                hint = (
                    f"access denied; the credentials given (Storage(headers=..., request_modifier=...)) are "
                    f"for {_origin_text(credential_origin)} and are never sent to {_origin_text(hops[-1][0])} "
                    "(credentials go only to the origin they were given for)"
                )
            retry_after = retry_after_of(response.headers.get("Retry-After"))
            raise _problem(
                f"HTTP {status}{detail}", hint, retry=status in _RETRY_STATUS, retry_after=retry_after
            )
        finally:
            response.close()  # a body read to its end has given its connection back to the pool
            response.release_conn()

    def _send(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None,
        headers: dict[str, str],
        trusted: bool,
        watch: _Watchdog,
    ) -> Any:
        urllib3 = require("urllib3", extra="stac", feature="STAC over HTTP")
        data = None if body is None else json.dumps(dict(body)).encode()
        if data is not None:
            headers = {**headers, "Content-Type": "application/json"}
        if trusted and self.storage.request_modifier is not None:
            try:
                url, headers, data = _signed(url, method, headers, self.storage.request_modifier, body)
            except ReadError as err:
                raise _FailedError(*str(err).split("; ", 1)) from None
        check_headers(headers)
        per_read = min(self.storage.timeout, watch.end - time.monotonic())
        if per_read <= 0 or watch.fired:
            raise _ExpiredError()
        try:
            response = _pool(self.storage, _proxy_for(url)).request(
                method, url, body=data, headers=headers, retries=False, redirect=False,
                timeout=urllib3.Timeout(connect=per_read, read=per_read), preload_content=False,
            )  # fmt: skip
        except (urllib3.exceptions.HTTPError, OSError) as err:
            if watch.fired:
                raise _ExpiredError() from None
            if isinstance(err, TimeoutError | urllib3.exceptions.TimeoutError) and not isinstance(
                err, urllib3.exceptions.NewConnectionError
            ):
                raise _problem(
                    f"no answer within {per_read:g} s",
                    "check that the server is up, or raise Storage(timeout=...)",
                    retry=True,
                ) from None
            text = f"{err!r} {err}".lower()
            dropped = any(w in text for w in ("remotedisconnected", "without response", "reset by peer"))
            problem = "the server closed the connection without answering" if dropped else "cannot connect"
            raise _problem(
                problem, "check that the server is running and the URL is right", retry=True
            ) from None
        if watch.fired:
            response.close()
            raise _ExpiredError()
        return response

    def _read(self, response: Any, cap: int, watch: _Watchdog) -> bytes:
        """Return the whole body, decoded, at most ``cap`` bytes."""
        encoding = str(response.headers.get("Content-Encoding") or "").strip().lower()
        if encoding not in _CODINGS:
            raise _problem(
                f"the answer's Content-Encoding is {encoding[:40]!r}, which was not asked for",
                "check the server (only gzip and deflate are accepted)",
            )
        length = response.headers.get("Content-Length")
        if not encoding and length and length.strip().isdigit() and int(length) > cap:
            raise _TooBigError()
        parts: list[bytes] = []
        size = 0
        while True:
            chunk = self._chunk(response, watch, _CHUNK)
            if not chunk:
                return b"".join(parts)
            size += len(chunk)
            if size > cap:
                raise _TooBigError()
            parts.append(chunk)

    def _chunk(self, response: Any, watch: _Watchdog, amount: int) -> bytes:
        urllib3 = require("urllib3", extra="stac", feature="STAC over HTTP")
        before = response.tell()
        try:
            chunk = bytes(response.read(amount, decode_content=True))
        except urllib3.exceptions.DecodeError:
            raise _problem("the compressed answer is corrupt", "check the server") from None
        except (urllib3.exceptions.HTTPError, OSError) as err:
            if watch.fired:
                raise _ExpiredError() from None
            if isinstance(err, urllib3.exceptions.ReadTimeoutError | TimeoutError):
                raise _problem(
                    f"no data for {self.storage.timeout:g} s while reading the answer",
                    "check that the server is up, or raise Storage(timeout=...)",
                    retry=True,
                ) from None
            raise _cut() from None
        finally:
            self.bytes_received += response.tell() - before
        if watch.fired:
            raise _ExpiredError()
        return chunk

    def _read_some(self, response: Any, watch: _Watchdog) -> bytes:
        """Return the start of an error answer's body (for the message)."""
        try:
            return self._chunk(response, watch, 4096)
        except Exception:  # only a detail of a message
            return b""


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
