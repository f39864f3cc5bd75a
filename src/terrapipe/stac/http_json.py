"""JSON (and whole files) over HTTP for the STAC stages, configured by :class:`~terrapipe.io.storage.Storage`.

:class:`JsonClient` sends the STAC API calls, the documents of a static
catalog and stac-geoparquet downloads through the byte layer's one request,
:func:`~terrapipe.io.http_reads.exchange` (urllib3 pools per process and
``Storage.concurrency``, the environment's ``*_proxy``, one watchdog thread
for every deadline, retries, redirects, credentials, the body within its cap).
What is here: JSON in and out, POST bodies, the API's origin for the
credential rule below, error statuses and failures worded for STAC. The
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
  1 GiB, for a file). Only ``gzip`` and ``deflate`` are asked for, and
  inflated a step at a time, so a bomb is stopped at the cap, never expanded
  in memory.
- **Credentials only to their origin** (scheme, host, port): ``headers`` and
  ``request_modifier`` go to the client's ``origin`` (the API or catalog the
  user named), never to another one (a ``next`` link, a catalog link, a
  redirect); the headers of a ``next`` link go only to that link's origin.
  Redirects are followed by terrapipe (at most :data:`MAX_REDIRECTS`, a loop
  is an error) so the rule holds on every hop, for every header.
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
from terrapipe.core.redact import public_url, redact_text
from terrapipe.io.http_reads import (
    _FAILURES,
    _RETRY_STATUS,
    DEFAULT_DEADLINE,
    MAX_REDIRECTS,
    _RetryError,
    deadline_of,
    describe,
    exchange,
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

_ACCEPT = {"Accept": "application/geo+json, application/json", "Accept-Encoding": "gzip, deflate"}
_HINTS = {
    429: "the API is rate limiting; wait, make fewer requests or raise Storage(retries=...)",
    401: "access denied; check the credentials (Storage(headers=..., request_modifier=...))",
    403: "access denied; check the credentials (Storage(headers=..., request_modifier=...))",
    404: "not found; check the URL",
}


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

        def count(n: int) -> None:
            self.bytes_received += n

        def judge(
            status: int, got: Mapping[str, str], text: bytes, wait: float | None, to: Origin | None
        ) -> Exception:
            return _status_error(
                status, text, wait, None if to is None else (self.origin or origin_of(url), to)
            )

        deadline = deadline_of(opts)
        try:
            reply = exchange(
                url, opts, time.monotonic() + deadline, cap, method=method, json_body=body, headers=headers,
                accept=_ACCEPT, origin=self.origin, judge=judge, counted=count,
            )  # fmt: skip
        except _FAILURES as err:
            raise error(f"cannot {what} at {shown}: {scrub(describe(err, opts, deadline))}") from None
        return reply.body, str(reply.headers.get("content-type") or "")


def _status_error(
    status: int, text: bytes, retry_after: float | None, kept: tuple[Origin | None, Origin] | None
) -> Exception:
    """Word an error status for STAC (429 and 5xx are retried; ``kept``: credentials' origin, hop denied)."""
    hint = _HINTS.get(status) or (
        "the server failed; try again later or simplify the query"
        if status >= 500
        else "the server rejected the request; check the query parameters"
    )
    if status in (401, 403) and kept is not None:
        hint = (
            "access denied; the credentials given (Storage(headers=..., request_modifier=...)) are for "
            f"{_origin_text(kept[0])} and are never sent to {_origin_text(kept[1])} (credentials go "
            "only to the origin they were given for)"
        )
    problem = f"HTTP {status}{_excerpt(text[:4096])}"
    if status in _RETRY_STATUS:
        return _RetryError(problem, retry_after, hint)
    return ReadError(f"{problem}; {hint}")


def _origin_text(origin: Origin | None) -> str:
    return "(no server)" if origin is None else "{}://{}:{}".format(*origin)


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
