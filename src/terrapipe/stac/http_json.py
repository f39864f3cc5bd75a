"""JSON (and whole files) over HTTP for the STAC stages, configured by :class:`~terrapipe.io.storage.Storage`.

:class:`JsonClient` sends the STAC API calls, static catalog documents and
stac-geoparquet downloads through the byte layer's one request,
:func:`~terrapipe.io.http_reads.exchange` (urllib3; deadline, retries,
``Retry-After``, redirects, credentials only to their origin, the body
within its cap, inflated a step at a time). What is here: JSON in and out,
POST bodies, the API's ``origin`` for credentials (a ``next`` link's own
headers go only to that link's origin), the caps (``Storage.max_bytes``,
else :data:`DEFAULT_MAX_BYTES` for JSON, :data:`DEFAULT_MAX_FILE_BYTES` for a
file), and error statuses worded for STAC, in the caller's error class,
naming ``scheme://host/path`` only, secrets echoed back removed. The promises
are in ``docs/reliability.md`` ("STAC search against hostile servers"); urllib3's ``Retry``
(pystac-client's choice) is not used: it sleeps past any deadline for a
``Retry-After`` and cannot retry a body cut short. ``request_modifier`` gets
a ``requests.Request``, as pystac-client's does.

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
        """Send one request (``"GET"`` or ``"POST"`` of JSON ``body``) and return the decoded JSON answer.

        ``headers`` go with this request only, to the URL's origin only (a
        ``next`` link's); a failure is ``error``, saying what was being done
        (``what``, e.g. ``"search the STAC API"``) at ``scheme://host/path``.
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
                accept=_ACCEPT, origin=self.origin, judge=judge, counted=count, secrets=values,
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
