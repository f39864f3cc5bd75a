"""Turn library exceptions (GDAL, zarr, HTTP, Arrow) into :class:`ReadError` messages.

A message names the path, what was being done, the cause in plain words and
what to do, e.g. ``cannot open raster 'http://h/a.tif': HTTP 404 (not
found); check the path or URL``. Credentials in the URL (a signed URL's
signature, a token, a password) are shown as ``***``
(:mod:`terrapipe.core.redact`), in the message and in the library error it is
raised from.

Examples
--------
>>> from terrapipe.io.read_errors import explain, read_error
>>> explain(RuntimeError("HTTP response code: 503"))
('HTTP 503 (server error)', 'the server failed or is overloaded; retry later or check the server')
>>> str(read_error("a.tif", "cannot open raster", FileNotFoundError("a.tif: No such file or directory")))
"cannot open raster 'a.tif': no such file or directory; check the path or URL"
"""

from __future__ import annotations

import contextlib
import json
import re

from terrapipe.core.errors import ReadError
from terrapipe.core.redact import redact_text, redact_url, secrets_of

__all__ = ["credentials_refused", "explain", "read_error", "scrub_chain", "store_error_code"]

_HTTP_CODE = re.compile(
    r"(?:HTTP (?:response |error )?(?:code|error|status)[: =]*|HTTP[: ]+|response_code=|returned error:? |HTTP/\d(?:\.\d)? )"
    r"([45]\d\d)\b",
    re.IGNORECASE,
)  # a status code where a message says it is one (not any number: paths hold numbers too)


#: A ``/vsicurl?opt=...&url=...`` GDAL name quoted in a message (its options are not the message's words).
_VSICURL_NAME = re.compile(r"/vsicurl\?[^\s'\"]*")


def explain(err: BaseException, path: str = "") -> tuple[str, str]:
    """Return ``(cause, what to do)`` for a library exception.

    Recognises missing files, HTTP status codes, time-outs, dropped
    connections, cut-short answers, unreadable or corrupt data and invalid
    JSON metadata; anything else keeps the library's own message. A message
    that only points at a previous error (rasterio's ``Read failed. See
    previous exception for details.``) is explained by that error.

    An error reply of S3, Azure or GCS that GDAL passes on (its XML, or its
    ``<Message>``) is said in words, never quoted: a missing object is ``no
    such object (HTTP 404, NoSuchKey)`` as the byte layer says it
    (:mod:`terrapipe.io.object_store`). ``path``, the file read, chooses the
    hint: the bucket and the key (object stores), the URL (HTTP) or the path.

    Examples
    --------
    >>> explain(RuntimeError("<?xml ?><Error><Code>NoSuchKey</Code></Error>"), "s3://b/a.tif")
    ('no such object (HTTP 404, NoSuchKey)', 'check the bucket and the key, and the endpoint of tp.Storage')
    >>> explain(RuntimeError("HTTP response code: 404"), "https://h/a.tif")
    ('no such object (HTTP 404)', 'check the URL')
    """
    text = str(err).strip() or type(err).__name__
    previous = err.__cause__ or err.__context__
    if "see previous exception" in text.lower() and previous is not None:
        return explain(previous, path)
    low = text.lower()
    words = _VSICURL_NAME.sub("/vsicurl", low)  # a GDAL name's own timeout= option is no time-out
    if "timed out" in words or "timeout" in words:
        return (
            "the server did not answer in time",
            "check that the server is up, or raise the time-out (GDAL_HTTP_TIMEOUT for rasters)",
        )
    store_code = store_error_code(text)
    code = _http_code(text)
    if store_code in _MISSING_CODES or code == 404:
        detail = ", ".join(x for x in ("HTTP 404", store_code if store_code in _MISSING_CODES else "") if x)
        return f"no such object ({detail})", _missing_hint(path)
    if isinstance(err, FileNotFoundError) or "no such file" in low or "does not exist" in low:
        if _where(path) != "local":  # GDAL's look-up of a remote file found nothing (status unknown)
            return "no such object", _missing_hint(path)
        return "no such file or directory", "check the path or URL"
    if store_code is not None:
        return _store_reply(store_code, text)
    if code in (401, 403):
        return f"HTTP {code} (access denied)", "check the credentials or the URL's signature"
    if code == 429:
        return "HTTP 429 (too many requests)", "slow down (fewer workers) or retry later"
    if code is not None and code >= 500:
        return (
            f"HTTP {code} (server error)",
            "the server failed or is overloaded; retry later or check the server",
        )
    if code is not None:
        return f"HTTP {code}", "check the URL and the server"
    if type(err).__name__ in _DROPPED or any(words in low for words in _DROPPED_TEXT):
        return (
            "the connection failed or was closed without an answer",
            "the read was retried and kept failing; check the server, or retry later",
        )
    if type(err).__name__ == "IncompleteRead" or any(words in low for words in _CUT_SHORT_TEXT):
        return (
            "the server's answer was cut short (fewer bytes than announced)",
            "the read was retried and kept failing; check the server or the network, or retry later",
        )
    if isinstance(err, json.JSONDecodeError):
        return (
            f"its metadata is not valid JSON ({err.msg} at line {err.lineno}), the file is corrupt or truncated",
            "re-create or re-download it",
        )
    if "not recognized as" in low or "not a supported file format" in low or "not recognised" in low:
        return (
            "not a format this reader understands (corrupt, truncated or another format)",
            "check the file (gdalinfo / ogrinfo), re-create or re-download it",
        )
    if "no such module: rtree" in low:
        # The file is fine: GDAL runs its spatial index query on an SQLite without the R*Tree module,
        # because a library imported before GDAL (TensorFlow does) loaded its own SQLite process-wide.
        return (
            "GDAL's SQLite has no R*Tree module here: a library imported before it (TensorFlow does) "
            "loaded another SQLite into the process",
            "import terrapipe.io.vector (or pyogrio) before tensorflow, or read without bbox=/mask=",
        )
    if any(word in low for word in ("tiffread", "read error", "ireadblock", "truncat", "corrupt", "decod")):
        return (
            f"the data could not be read or decoded, the file is probably truncated or corrupt ({text})",
            "re-create or re-download the file",
        )
    return text, "check the file"


_DROPPED = frozenset(
    {"RemoteDisconnected", "ConnectionResetError", "BrokenPipeError", "ConnectionAbortedError"}
)
_DROPPED_TEXT = (
    "empty reply from server",
    "remote end closed connection",
    "connection reset",
    "connection aborted",
)
_CUT_SHORT_TEXT = ("transfer closed with", "partial file", "incompleteread", "connection broken")


#: Error codes of S3, Azure and GCS (their XML replies; GDAL passes them on) that mean a missing object.
_MISSING_CODES = frozenset(
    {"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "BlobNotFound", "ContainerNotFound", "ResourceNotFound"}
)
#: What AWS and Azure write in ``<Message>`` for them (GDAL passes on the message alone when there is one).
_MISSING_MESSAGES = {
    "the specified key does not exist": "NoSuchKey",
    "the specified bucket does not exist": "NoSuchBucket",
    "the specified version does not exist": "NoSuchVersion",
    "the specified blob does not exist": "BlobNotFound",
    "the specified container does not exist": "ContainerNotFound",
    "the specified resource does not exist": "ResourceNotFound",
}
#: Error codes of a busy or failing store (GDAL retried them already).
_BUSY_CODES = frozenset(
    {"SlowDown", "ServerBusy", "TooManyRequests", "RequestLimitExceeded", "Throttling", "ThrottlingException"}
)
_FAILED_CODES = frozenset({"InternalError", "InternalServerError", "ServiceUnavailable", "OperationTimedOut"})
_STORE_CODE = re.compile(r"<Code>\s*([A-Za-z][A-Za-z0-9.]{0,63})\s*</Code>")
_STORE_MESSAGE = re.compile(r"<Message>\s*([^<]{1,300}?)\s*</Message>")
_BUCKET_VSI = ("/vsis3/", "/vsigs/", "/vsiaz/", "/vsiadls/", "/vsioss/", "/vsiswift/")


def store_error_code(text: str) -> str | None:
    """Return the error code of an S3/Azure/GCS error reply that ``text`` quotes (or whose message it is).

    A text with a store's error code is a final answer of the store (GDAL
    retried what it retries): no cause for another try.

    Examples
    --------
    >>> store_error_code('<?xml version="1.0"?><Error><Code>NoSuchKey</Code></Error>')
    'NoSuchKey'
    >>> store_error_code("The specified key does not exist."), store_error_code("HTTP response code: 404")
    ('NoSuchKey', None)
    """
    found = _STORE_CODE.search(text)
    if found is not None:
        return found.group(1)
    low = text.lower()
    return next((code for words, code in _MISSING_MESSAGES.items() if words in low), None)


def _where(path: str) -> str:
    """``"bucket"``, ``"http"`` or ``"local"`` (also for no path)."""
    from terrapipe.io.paths import is_http, is_remote

    path = str(path)
    if not path or not is_remote(path):
        return "local"
    if is_http(path) or "/vsicurl" in path:
        return "http"
    return "bucket"


def _missing_hint(path: str) -> str:
    where = _where(path)
    if where == "bucket":
        return "check the bucket and the key, and the endpoint of tp.Storage"
    return "check the URL" if where == "http" else "check the path or URL"


def _store_reply(code: str, text: str) -> tuple[str, str]:
    """Say what a store's error reply (not a missing object) means, naming its code, never quoting its XML."""
    from terrapipe.io.obstore_runtime import DENIED_CODES

    if code in DENIED_CODES:
        return f"access denied ({code})", "check the credentials or the URL's signature"
    if code in _BUSY_CODES:
        return f"the store is busy ({code})", "slow down (fewer workers) or retry later"
    if code in _FAILED_CODES:
        return f"the store failed ({code})", "retry later or check the server"
    message = _STORE_MESSAGE.search(text)
    said = f": {message.group(1)}" if message is not None else ""
    return f"the store refused the request ({code}{said})", "check the URL and the settings of tp.Storage"


def _http_code(text: str) -> int | None:
    if "http" not in text.lower():
        return None
    for match in _HTTP_CODE.finditer(text):
        return int(match.group(1))
    return None


def credentials_refused(err: BaseException) -> bool:
    """Whether an error of the byte layer (obstore) says the credentials or the signature were refused.

    Its class (``PermissionDeniedError``, ``UnauthenticatedError``), an HTTP
    401 or 403 status in its text, or an S3/Azure/GCS error code that refuses
    credentials whatever the status (:data:`~terrapipe.io.obstore_runtime.DENIED_CODES`).

    >>> credentials_refused(RuntimeError("Server returned non-2xx status code: 403 Forbidden"))
    True
    >>> credentials_refused(RuntimeError("status code: 400, <Code>ExpiredToken</Code>"))
    True
    >>> credentials_refused(RuntimeError("status code: 404, no such key tiles/403/AccessDenied.tif"))
    False
    """
    from terrapipe.io.obstore_runtime import denied_code, status_of

    text = str(err)
    if type(err).__name__ in ("PermissionDeniedError", "UnauthenticatedError") or status_of(text) in (
        401,
        403,
    ):
        return True
    return denied_code(text) is not None


def read_error(
    path: str, action: str, err: BaseException | None = None, *, cause: str = "", hint: str = ""
) -> ReadError:
    """Build a :class:`ReadError` ``"{action} {path!r}: {cause}; {hint}"``.

    Parameters
    ----------
    path
        The path or URL as the user gave it (shown with its credentials
        redacted).
    action
        What failed, e.g. ``"cannot open raster"``.
    err
        The library exception; its cause and hint are used unless given.
        When ``path`` carries credentials, they are also removed from the
        text of ``err`` and of the errors it chains to, since it becomes the
        new error's ``__cause__`` and is printed with it.
    cause, hint
        Override the explanation.
    """
    auto_cause, auto_hint = explain(err, path) if err is not None else ("", "")
    cause = cause or auto_cause
    hint = hint or auto_hint
    message = f"{action} {redact_url(path)!r}: {cause}" + (f"; {hint}" if hint else "")
    if secrets_of(path):
        message = redact_text(message, path)
        if err is not None:
            scrub_chain(err, path)
    return ReadError(message)


def scrub_chain(err: BaseException, path: str) -> None:
    """Remove ``path``'s credentials from the text of ``err`` and the errors it chains to, in place.

    An error whose text cannot be changed is replaced, in the chain, by a
    ``RuntimeError`` with its type's name and the redacted text.
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        _scrub_one(current, path)
        following = current.__cause__ or current.__context__
        if following is not None and _shows_secret(following, path):
            _scrub_one(following, path)
            if _shows_secret(following, path):
                stand_in = RuntimeError(f"{type(following).__name__}: {redact_text(str(following), path)}")
                current.__cause__, current.__suppress_context__ = stand_in, True
                following = stand_in
        current = following


def _shows_secret(err: BaseException, path: str) -> bool:
    text = f"{err} {err!r}"
    return redact_text(text, path) != text


def _scrub_one(err: BaseException, path: str) -> None:
    with contextlib.suppress(AttributeError, TypeError):  # read-only in some extension types
        err.args = tuple(redact_text(a, path) if isinstance(a, str) else a for a in err.args)
    for name in ("errmsg", "filename", "filename2", "strerror", "msg"):
        value = getattr(err, name, None)
        if isinstance(value, str):
            with contextlib.suppress(AttributeError, TypeError):
                setattr(err, name, redact_text(value, path))
