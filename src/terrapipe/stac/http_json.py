"""JSON over HTTP for the STAC stages: time-outs, bounded retries with back-off, redaction.

:class:`HttpOptions` says how requests are made (headers, a request
modifier, time-out, retries, back-off); :class:`JsonClient` sends them with
``requests`` (one session per thread and process, never shared across a
fork) and returns the decoded JSON.

- ``429``, ``5xx``, dropped connections, answers cut short and time-outs
  are retried at most ``retries`` times, after an exponential back-off with
  jitter (:func:`retry_delay`); a ``Retry-After`` header is honoured up to
  ``max_backoff`` seconds.
- Any other error status fails at once.
- The final error is the ``error`` class the caller asks for
  (:class:`~terrapipe.core.errors.StacSearchError` for searches,
  :class:`~terrapipe.core.errors.ReadError` for reading an item), names the
  URL (redacted: :mod:`terrapipe.stac.redact`) and says what to do. Header
  values never appear in messages or reprs.

Examples
--------
>>> HttpOptions.make(headers={"Authorization": "Bearer secret"}, timeout=5)
HttpOptions(headers={'Authorization': '***'}, timeout=5.0, retries=3, backoff=0.5, max_backoff=30.0)
>>> retry_delay(0, backoff=0.5, max_backoff=30.0, jitter=0.0)
0.5
>>> retry_delay(3, backoff=0.5, max_backoff=30.0, jitter=0.0, retry_after=10.0)
10.0
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from terrapipe.core.errors import InvalidArgumentError, TerrapipeError
from terrapipe.core.optional import require
from terrapipe.stac.redact import redact_headers, redact_url

__all__ = ["HttpOptions", "JsonClient", "RequestModifier", "retry_delay"]

#: Called with each ``requests.Request`` before it is sent (e.g. to sign it);
#: returns the request to send, or ``None`` after changing it in place.
RequestModifier = Callable[[Any], Any]

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_BODY_SHOWN = 300


@dataclass(frozen=True, repr=False)
class HttpOptions:
    """How the STAC stages make HTTP requests.

    Attributes
    ----------
    headers
        Extra request headers as ``(name, value)`` pairs (values are never shown).
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
        Called with each ``requests.Request`` before it is sent (signing);
        returns the request to send or ``None`` after changing it in place.
    """

    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    request_modifier: RequestModifier | None = field(default=None, compare=False)

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
    ) -> HttpOptions:
        """Build options from keyword arguments (``headers`` as a mapping).

        Raises
        ------
        InvalidArgumentError
            For a non-positive time-out, negative retries or back-off, or a
            request modifier that is not callable.
        """
        if headers is not None and not isinstance(headers, Mapping):
            raise InvalidArgumentError(f"headers must be a mapping of names to values, got {type(headers)!r}")
        pairs = tuple((str(k), str(v)) for k, v in (headers or {}).items())
        return cls(
            headers=pairs,
            timeout=float(timeout),
            retries=int(retries),
            backoff=float(backoff),
            max_backoff=float(max_backoff),
            request_modifier=request_modifier,
        )

    def __repr__(self) -> str:
        shown = redact_headers(dict(self.headers))
        return (
            f"HttpOptions(headers={shown}, timeout={self.timeout}, retries={self.retries}, "
            f"backoff={self.backoff}, max_backoff={self.max_backoff})"
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


class _Sessions(threading.local):
    """One ``requests.Session`` per thread, dropped after a fork."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.session: Any = None

    def get(self) -> Any:
        if self.pid != os.getpid() or self.session is None:
            requests = require("requests", extra="stac", feature="STAC over HTTP")
            self.pid, self.session = os.getpid(), requests.Session()
        return self.session


class JsonClient:
    """Send JSON requests with the retry policy of :class:`HttpOptions`.

    Parameters
    ----------
    options
        Headers, time-out, retries, back-off, request modifier.

    Notes
    -----
    The client pickles without its sessions (each process opens its own).
    """

    def __init__(self, options: HttpOptions | None = None) -> None:
        self.options = options or HttpOptions()
        self._sessions = _Sessions()
        #: Bytes of response bodies received (for stage stats).
        self.bytes_received = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"options": self.options, "bytes_received": self.bytes_received}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.options = state["options"]
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
        """Send one request (with retries) and return the decoded JSON answer.

        Parameters
        ----------
        method
            ``"GET"`` or ``"POST"``.
        url
            The URL (query string included for GET).
        body
            JSON body of a POST.
        headers
            Headers for this request only (e.g. from a ``next`` link), added
            to the options' headers.
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
            ``error``, naming the (redacted) URL, on a failure that retries
            did not cure, an error status or an answer that is not JSON.
        """
        content = self._exchange(method, url, body=body, headers=headers, error=error, what=what)
        return _decode_json(content, error=error, what=what, shown=redact_url(url))

    def request_bytes(self, url: str, *, error: type[TerrapipeError], what: str) -> bytes:
        """GET ``url`` (with retries) and return the body as bytes.

        Raises
        ------
        TerrapipeError
            ``error``, naming the (redacted) URL, as :meth:`request` does.
        """
        return self._exchange("GET", url, body=None, headers=None, error=error, what=what)

    def _exchange(
        self,
        method: str,
        url: str,
        *,
        body: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        error: type[TerrapipeError],
        what: str,
    ) -> bytes:
        requests = require("requests", extra="stac", feature="STAC over HTTP")
        opts = self.options
        shown = redact_url(url)
        all_headers = {"Accept": "application/geo+json, application/json", **dict(opts.headers)}
        all_headers.update(headers or {})
        attempts = opts.retries + 1
        last_problem = ""
        for attempt in range(attempts):
            retry_after: float | None = None
            try:
                response = self._send(requests, method, url, body, all_headers)
            except requests.Timeout as err:
                last_problem = f"no answer within {opts.timeout:g} s"
                hint = "check that the server is up, or raise timeout="
                cause: BaseException = err
            except requests.ConnectionError as err:
                if _dropped(err):
                    last_problem = "the server closed the connection without answering"
                    hint = "check the server, or try again later"
                else:
                    last_problem = "cannot connect"
                    hint = "check that the server is running and the URL is right"
                cause = err
            except (
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ) as err:
                last_problem = "the answer was cut short (fewer bytes than announced) or garbled"
                hint = "check the server or the network, or try again later"
                cause = err
            except requests.RequestException as err:
                msg = f"cannot {what} at {shown}: {type(err).__name__}; check the URL and the request options"
                raise error(msg) from None
            else:
                status = int(response.status_code)
                content = response.content or b""
                self.bytes_received += len(content)
                if 200 <= status < 300:
                    return bytes(content)
                detail = _body_excerpt(content)
                if status not in _RETRY_STATUS:
                    msg = f"cannot {what} at {shown}: HTTP {status}{detail}; {_status_hint(status)}"
                    raise error(msg)
                last_problem = f"HTTP {status}{detail}"
                hint = _status_hint(status)
                retry_after = _parse_retry_after(response.headers.get("Retry-After"))
                cause = RuntimeError(last_problem)
            if attempt + 1 < attempts:
                time.sleep(
                    retry_delay(
                        attempt, backoff=opts.backoff, max_backoff=opts.max_backoff, retry_after=retry_after
                    )
                )
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        msg = f"cannot {what} at {shown}: {last_problem}{tries}; {hint}"
        raise error(msg) from (cause if shown == url else _scrub(cause))

    def _send(
        self, requests: Any, method: str, url: str, body: Mapping[str, Any] | None, headers: dict[str, str]
    ) -> Any:
        session = self._sessions.get()
        request = requests.Request(
            method, url, headers=headers, json=dict(body) if body is not None else None
        )
        if self.options.request_modifier is not None:
            changed = self.options.request_modifier(request)
            request = changed if changed is not None else request
        prepared = session.prepare_request(request)
        timeout = (self.options.timeout, self.options.timeout)
        return session.send(prepared, timeout=timeout, allow_redirects=True)


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


def _decode_json(content: bytes, *, error: type[TerrapipeError], what: str, shown: str) -> Any:
    try:
        return json.loads(content)
    except json.JSONDecodeError as err:
        msg = (
            f"cannot {what} at {shown}: the answer is not JSON ({err.msg} at byte {err.pos})"
            f"{_body_excerpt(content)}; check that the URL points to a STAC API or a STAC JSON file"
        )
        raise error(msg) from None
    except UnicodeDecodeError:
        msg = f"cannot {what} at {shown}: the answer is not text; check that the URL points to STAC JSON"
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
