"""Turn library exceptions (GDAL, zarr, HTTP, Arrow) into :class:`ReadError` messages.

A message names the path, what was being done, the cause in plain words and
what to do, e.g. ``cannot open raster 'http://h/a.tif': HTTP 404 (not
found); check the path or URL``.

Examples
--------
>>> from terrapipe.io.read_errors import explain, read_error
>>> explain(RuntimeError("HTTP response code: 503"))
('HTTP 503 (server error)', 'the server failed or is overloaded; retry later or check the server')
>>> str(read_error("a.tif", "cannot open raster", FileNotFoundError("a.tif: No such file or directory")))
"cannot open raster 'a.tif': no such file or directory; check the path or URL"
"""

from __future__ import annotations

import re

from terrapipe.core.errors import ReadError

__all__ = ["explain", "read_error"]

_HTTP_CODE = re.compile(r"(?:HTTP (?:response )?(?:code|error|status)[: ]*|\b)([45]\d\d)\b", re.IGNORECASE)


def explain(err: BaseException) -> tuple[str, str]:
    """Return ``(cause, what to do)`` for a library exception.

    Recognises missing files, HTTP status codes, time-outs and unreadable or
    corrupt data; anything else keeps the library's own message.
    """
    text = str(err).strip() or type(err).__name__
    low = text.lower()
    if "timed out" in low or "timeout" in low:
        return (
            "the server did not answer in time",
            "check that the server is up, or raise the time-out (GDAL_HTTP_TIMEOUT for rasters)",
        )
    if isinstance(err, FileNotFoundError) or "no such file" in low or "does not exist" in low:
        return "no such file or directory", "check the path or URL"
    code = _http_code(text)
    if code == 404:
        return "HTTP 404 (not found)", "check the path or URL"
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
    if "not recognized as" in low or "not a supported file format" in low or "not recognised" in low:
        return (
            "not a format this reader understands (corrupt, truncated or another format)",
            "check the file (gdalinfo / ogrinfo), re-create or re-download it",
        )
    if any(word in low for word in ("tiffread", "read error", "ireadblock", "truncat", "corrupt", "decod")):
        return (
            f"the data could not be read or decoded, the file is probably truncated or corrupt ({text})",
            "re-create or re-download the file",
        )
    return text, "check the file"


def _http_code(text: str) -> int | None:
    if "http" not in text.lower():
        return None
    for match in _HTTP_CODE.finditer(text):
        return int(match.group(1))
    return None


def read_error(
    path: str, action: str, err: BaseException | None = None, *, cause: str = "", hint: str = ""
) -> ReadError:
    """Build a :class:`ReadError` ``"{action} {path!r}: {cause}; {hint}"``.

    Parameters
    ----------
    path
        The path or URL as the user gave it.
    action
        What failed, e.g. ``"cannot open raster"``.
    err
        The library exception; its cause and hint are used unless given.
    cause, hint
        Override the explanation.
    """
    auto_cause, auto_hint = explain(err) if err is not None else ("", "")
    cause = cause or auto_cause
    hint = hint or auto_hint
    message = f"{action} {path!r}: {cause}" + (f"; {hint}" if hint else "")
    return ReadError(message)
