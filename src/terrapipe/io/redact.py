"""Keep credentials out of messages: redact URLs, headers and texts before they are shown.

Error messages, warnings, stats and reprs of the readers and the STAC stages
name the file or URL they talk to, never the secrets that come with it:
passwords in ``user:password@host``, query parameters that carry tokens,
keys or signatures (``token=``, ``sig=``, ``X-Amz-Signature=``,
``subscription-key=``, ``AWSAccessKeyId=``, SAS parameters, ...) and request
header values. :func:`redact_text` also cleans a library's own
message (GDAL names the ``/vsicurl?...`` path it failed on, percent-encoded).

Examples
--------
>>> redact_url("https://user:pw@example.com/stac/search?collections=s2&token=abc&sig=x%2By")
'https://user:***@example.com/stac/search?collections=s2&token=***&sig=***'
>>> redact_headers({"Authorization": "Bearer abc", "Accept": "application/json"})
{'Authorization': '***', 'Accept': '***'}
>>> redact_text("cannot open /vsicurl?url=https%3A%2F%2Fh%2Fa.tif%3Fsig%3Dabc%252B1", "https://h/a.tif?sig=abc%2B1")
'cannot open /vsicurl?url=https%3A%2F%2Fh%2Fa.tif%3Fsig%3D***'
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping

__all__ = [
    "MASK",
    "is_secret_name",
    "public_url",
    "redact_headers",
    "redact_text",
    "redact_url",
    "redact_urls",
    "secrets_of",
]

#: What replaces a secret.
MASK = "***"

# Parts of a query parameter name that mark a credential, looked for in the name lowercased with
# its separators removed ("X-Amz-Security-Token" -> "xamzsecuritytoken"). Compounds written without
# separators ("apikey", "subscriptionkey") are listed, since a name's words cannot be told apart there.
_SECRET_PARTS = re.compile(
    r"token|secret|passw|passphrase|sig|credential|auth|sess(?:ion)?id"
    r"|(?:api|access|account|subscription|private|shared|master|signing|client)key"
)
# Whole names (separators removed) that carry credentials.
_SECRET_NAMES = frozenset({"key", "code", "pass", "pwd", "jwt", "sas"})
# Last words of a name that carry credentials ("subscription-key", "AccountKey", "db_pwd");
# a word that merely contains one ("keyword") does not count.
_SECRET_LAST_WORDS = frozenset({"key", "pwd", "pass"})
# The words of a name: split at separators and at camelCase boundaries ("AWSAccessKeyId").
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# Azure SAS fields that, together, make a credential even though they look harmless.
_SAS_FIELDS = frozenset(
    {"se", "sp", "sv", "sr", "st", "ss", "srt", "skoid", "sktid", "skt", "ske", "sks", "skv"}
)


def is_secret_name(name: str) -> bool:
    """Whether a query parameter named ``name`` may carry a credential.

    Case and separators (``-``, ``_``, ``.``, camelCase) do not matter. A
    name counts when it contains a credential word (``token``, ``secret``,
    ``password``, ``signature``/``sig``, ``credential``, ``auth``, a session
    id, ``apikey``, ``accesskey``, ``subscriptionkey``, ...), when its last
    word is ``key`` (``subscription-key``, ``AccountKey``) or ``pwd``/``pass``,
    when it is ``key``, ``code``, ``jwt`` or ``sas``, or when it is one of the
    Azure SAS fields (``se``, ``sp``, ``sv``, ...). A name that merely
    contains ``key`` in another word (``keyword``) does not.

    Parameters
    ----------
    name
        A query parameter name, decoded.

    Returns
    -------
    bool
        True when its value must not be shown (nor enter a fingerprint).

    Examples
    --------
    >>> [is_secret_name(n) for n in ("access_token", "X-Amz-Signature", "se", "bbox", "collections")]
    [True, True, True, False, False]
    >>> [is_secret_name(n) for n in ("subscription-key", "x-api-key", "AWSAccessKeyId", "keyword", "sortby")]
    [True, True, True, False, False]
    """
    lowered = name.lower()
    compact = re.sub(r"[^a-z0-9]", "", lowered)
    if lowered in _SAS_FIELDS or compact in _SECRET_NAMES or _SECRET_PARTS.search(compact):
        return True
    words = _WORDS.findall(name)
    return bool(words) and words[-1].lower() in _SECRET_LAST_WORDS


def redact_url(url: str) -> str:
    """Return ``url`` with its password and secret query values replaced by ``***``.

    Parameters
    ----------
    url
        Any URL or path; strings that are not URLs come back unchanged.

    Returns
    -------
    str
        The URL, safe to print.

    Examples
    --------
    >>> redact_url("/data/catalog.json")
    '/data/catalog.json'
    >>> redact_url("http://127.0.0.1:8080/search?limit=10")
    'http://127.0.0.1:8080/search?limit=10'
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        shown = [f"{name}={MASK}" if is_secret_name(name) else f"{name}={value}" for name, value in pairs]
        query = "&".join(shown)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def public_url(url: str) -> str:
    """Return ``scheme://host[:port]/path`` of a URL; a local path comes back unchanged.

    What a repr, ``str()`` or error message of the HTTP readers shows of a URL:
    no user name, password, query string or fragment, whatever their names
    (an allowlist of the parts, where :func:`redact_url` masks the values of
    the query parameters it knows to be secret).

    Parameters
    ----------
    url
        A URL or a local path.

    Returns
    -------
    str
        The URL reduced to its scheme, host, port and path.

    Examples
    --------
    >>> public_url("https://me:pw@Example.com:8443/cube.zarr/t2m/zarr.json?anything=abc#frag")
    'https://example.com:8443/cube.zarr/t2m/zarr.json'
    >>> public_url("/data/cube.zarr")
    '/data/cube.zarr'
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return "(unreadable URL)" if "://" in url else url
    if not parts.scheme or not parts.netloc:
        return url
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urllib.parse.urlunsplit((parts.scheme.lower(), netloc, parts.path, "", ""))


def redact_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Return the header names with every value masked (values may hold credentials).

    Examples
    --------
    >>> redact_headers(None)
    {}
    """
    return {str(name): MASK for name in (headers or {})}


def secrets_of(url: str) -> list[str]:
    """Return the secret values a URL carries, as written in it: password and secret query values.

    Examples
    --------
    >>> secrets_of("https://me:pw@h/a.tif?X-Amz-Signature=a%2Bc&bbox=1,2")
    ['pw', 'a%2Bc']
    >>> secrets_of("/data/a.tif")
    []
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return []
    if not parts.scheme or not parts.netloc:
        return []
    found = []
    userinfo = parts.netloc.rpartition("@")[0]
    if ":" in userinfo:
        found.append(userinfo.split(":", 1)[1])
    for pair in parts.query.split("&"):
        name, _, value = pair.partition("=")
        if value and is_secret_name(urllib.parse.unquote_plus(name)):
            found.append(value)
    return found


def redact_text(text: str, *urls: str) -> str:
    """Return ``text`` with the secret values of ``urls`` replaced by ``***``.

    Each secret is looked for as written in the URL, decoded, and
    percent-encoded once more (the form it takes inside GDAL's
    ``/vsicurl?url=...`` path), so a library's message about the URL is safe
    to show.

    Parameters
    ----------
    text
        The message.
    urls
        The URLs whose secrets must not appear (see :func:`secrets_of`).

    Returns
    -------
    str
        The message, safe to show.
    """
    values: set[str] = set()
    for url in urls:
        for written in secrets_of(url):
            decoded = urllib.parse.unquote_plus(written)
            values.update(
                {
                    written,
                    decoded,
                    urllib.parse.quote(written, safe=""),
                    urllib.parse.quote(decoded, safe=""),
                    urllib.parse.quote_plus(decoded),
                }
            )
    for value in sorted(values, key=len, reverse=True):
        if value:
            text = text.replace(value, MASK)
    return text


_URL = re.compile(
    r"(?:https?|s3|gs|az)://[^\s'\"<>]+|(?:https?|s3|gs|az)%3A%2F%2F[^\s'\"<>&]+", re.IGNORECASE
)


def redact_urls(text: str) -> str:
    """Return ``text`` with every URL and secret query parameter in it redacted.

    URLs may be plain or percent-encoded (as GDAL writes them); a query
    parameter is recognised without its URL too (a request line).

    For messages that come from elsewhere (a library's log line), where the
    URL is not known in advance.

    Examples
    --------
    >>> redact_urls("HTTP error code: 503 - https://h/a.tif?X-Amz-Signature=abc. Retrying")
    'HTTP error code: 503 - https://h/a.tif?X-Amz-Signature=***. Retrying'
    >>> redact_urls("/vsicurl?url=https%3A%2F%2Fh%2Fa.tif%3Ftoken%3Dabc failed")
    '/vsicurl?url=https://h/a.tif?token=*** failed'
    >>> redact_urls('"GET /search?limit=2&sig=abc HTTP/1.1" 200')
    '"GET /search?limit=2&sig=*** HTTP/1.1" 200'
    """

    def clean(match: re.Match[str]) -> str:
        url = match.group(0)
        if "://" not in url:
            url = urllib.parse.unquote(url)
        trail = ""
        while url and url[-1] in ".,;:)":
            url, trail = url[:-1], url[-1] + trail
        return redact_url(url) + trail

    def clean_parameter(match: re.Match[str]) -> str:
        name = match.group(2)
        return (
            f"{match.group(1)}{name}={MASK}" if is_secret_name(urllib.parse.unquote(name)) else match.group(0)
        )

    return _PARAMETER.sub(clean_parameter, _URL.sub(clean, text))


# A query parameter anywhere (a request line "GET /a.tif?token=... HTTP/1.1" has no scheme).
_PARAMETER = re.compile(r"([?&])([A-Za-z0-9_.%-]+)=([^&\s'\"#<>]*[^&\s'\"#<>.,;:)])")
