"""Keep credentials out of messages: an allowlist of what a URL may show.

Error messages, warnings, stats, reprs and source ids name a URL by
:func:`public_url`: ``scheme://host[:port]/path``, nothing else. No user
name, password, query string or fragment is ever shown, whatever the
parameters are called: a presigned S3 URL, an Azure SAS URL and an API key
in ``?subscription-key=`` are all cut the same way, so there is no list of
secret parameter names to keep up to date. Header values are never shown
(:func:`redact_headers`). The one ``name@`` kept is an Azure Data Lake or
WASB URL's container (``abfs://container@account.dfs.core.windows.net/path``):
it names where the data is, not who reads it (a ``name:password@`` is cut
there too).

Texts written by others (GDAL, pyogrio, an error page a server sent back)
are cleaned by :func:`redact_text`: every URL in them, plain or
percent-encoded, is cut to ``scheme://host/path``, a query string in a
request line (``GET /search?sig=... HTTP/1.1``) is dropped, and the secret
values the caller knows (the password and query values of its URLs, header
values) are masked wherever they still appear. A value shorter than
:data:`MIN_SECRET` characters is never masked on its own: the ``r`` of an
Azure ``sp=r`` would garble every ``r`` of the message (the URLs holding it
are cut whole).

Examples
--------
>>> public_url("https://user:pw@Example.com:8443/stac/search?collections=s2&token=abc#frag")
'https://example.com:8443/stac/search'
>>> redact_headers({"Authorization": "Bearer abc", "Accept": "application/json"})
{'Authorization': '***', 'Accept': '***'}
>>> sas = "https://acc.blob.core.windows.net/c/a.tif?sv=2024-08-04&sp=r&sr=b&sig=k3y%2Bsigned"
>>> redact_text("cannot open /vsicurl?url=" + urllib.parse.quote(sas, safe="") + " (sp=r): rasterio", sas)
'cannot open /vsicurl?url=https://acc.blob.core.windows.net/c/a.tif?*** (sp=r): rasterio'
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from collections.abc import Iterable, Mapping

__all__ = [
    "MASK",
    "MIN_SECRET",
    "public_url",
    "redact_headers",
    "redact_text",
    "redact_url",
    "redact_urls",
    "secrets_of",
]

#: What replaces a secret value.
MASK = "***"
_PATH_PARAMETER = re.compile(r";[^/;=]*=[^/]*")
#: Shortest value masked on its own in a text (shorter ones would garble it; their URLs are cut whole).
MIN_SECRET = 6


def public_url(url: str) -> str:
    """Return ``scheme://host[:port]/path`` of a URL; a local path comes back unchanged.

    Parameters
    ----------
    url
        A URL or a local path.

    Returns
    -------
    str
        The URL reduced to its scheme, host, port and path, less the
        ``;name=value`` parameters of its segments (``"(unreadable URL)"``
        for a URL that cannot be parsed).

    Examples
    --------
    >>> public_url("s3://bucket/a.tif?X-Amz-Signature=abc")
    's3://bucket/a.tif'
    >>> public_url("https://h/app;jsessionid=0A1B2C/items/a.json")
    'https://h/app/items/a.json'
    >>> public_url("/data/cube.zarr")
    '/data/cube.zarr'
    >>> public_url("abfs://data@Acct.dfs.core.windows.net/matrix/a.tif")
    'abfs://data@acct.dfs.core.windows.net/matrix/a.tif'
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return "(unreadable URL)" if "://" in url else url
    if not parts.netloc:
        return _not_a_network_url(url, parts)
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    container = _container_of(parts)
    if container:
        netloc = f"{container}@{netloc}"
    path = _PATH_PARAMETER.sub("", parts.path)  # ";jsessionid=..." in a path segment
    if not parts.scheme:  # "//user:pw@host/path": scheme-relative
        return f"//{netloc}{path}"
    return urllib.parse.urlunsplit((parts.scheme.lower(), netloc, path, "", ""))


def _not_a_network_url(url: str, parts: urllib.parse.SplitResult) -> str:
    """:func:`public_url` of a text without ``//host``: a local path, ``file:``, ``data:``, a connection string."""
    scheme = parts.scheme.lower()
    if scheme and url[len(scheme) :].startswith("://"):  # file:///data/a.tif, unix:///run/redis.sock
        return f"{scheme}://{_PATH_PARAMETER.sub('', parts.path)}"
    if scheme == "file":  # file:/data/a.tif
        return f"file:{_PATH_PARAMETER.sub('', parts.path)}"
    if len(scheme) > 1:  # a one-letter scheme is a Windows drive
        opaque = parts.path
        if scheme == "data":  # the content itself
            return f"data:{MASK}"
        if "@" in opaque:  # "user:pw@host/a": the credentials before the last "@"
            return f"{MASK}@{_PATH_PARAMETER.sub('', opaque.rpartition('@')[2])}"
        # an identifier ("stac:collection", "EPSG:4326", "urn:..."): as written, less any query or fragment
        return f"{url[: len(scheme)]}:{_PATH_PARAMETER.sub('', opaque)}"
    if _CONNECTION.fullmatch(url.strip()):
        return _connection_string(url)
    if "://" in url or "%3a%2f%2f" in url.lower():  # a URL inside a path: "/vsicurl/https://user:pw@h/a"
        return redact_urls(url)
    return url


#: An Azure connection string (``DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...``).
_CONNECTION = re.compile(
    r"(?<![A-Za-z])[A-Za-z]{1,64}+=[^;\s'\"]{0,1024}+(?:;[A-Za-z]{1,64}+=[^;\s'\"]{0,1024}+)++;?"
)  # possessive and bounded: linear on a long message (no backtracking)
#: Its settings that name where the data is, shown; every other value (keys, signatures) is masked.
_CONNECTION_SHOWN = frozenset(
    {"defaultendpointsprotocol", "accountname", "endpointsuffix", "blobendpoint", "dfsendpoint", "queueendpoint",
     "tableendpoint", "fileendpoint", "endpoint", "entitypath"}
)  # fmt: skip


def _connection_string(text: str) -> str:
    pairs = []
    for pair in text.strip().strip(";").split(";"):
        name, _, value = pair.partition("=")
        shown = public_url(value) if name.lower() in _CONNECTION_SHOWN else MASK
        pairs.append(f"{name}={shown}")
    return ";".join(pairs) + (";" if text.rstrip().endswith(";") else "")


#: Schemes whose ``name@`` names a container (``abfs://container@account.dfs.core.windows.net/path``).
_CONTAINER_SCHEMES = frozenset({"abfs", "abfss", "wasb", "wasbs"})


def _container_of(parts: urllib.parse.SplitResult) -> str:
    """Return the container of an Azure ``container@account`` URL ("" for others and a ``user:password@``)."""
    if parts.scheme.lower() not in _CONTAINER_SCHEMES or "@" not in parts.netloc:
        return ""
    userinfo = parts.netloc.rpartition("@")[0]
    return "" if ":" in userinfo else userinfo


#: The same as :func:`public_url` (kept for the modules that call it by this name).
redact_url = public_url


def redact_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Return the header names with every value masked.

    Examples
    --------
    >>> redact_headers(None)
    {}
    """
    return {str(name): MASK for name in (headers or {})}


def secrets_of(url: str) -> list[str]:
    """Return what a URL carries beyond ``scheme://host/path``: password, query and path parameter values, as written.

    Examples
    --------
    >>> secrets_of("https://me:pw@h/a.tif?X-Amz-Signature=a%2Bc&bbox=1,2")
    ['pw', 'a%2Bc', '1,2']
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
    found.extend(value for pair in parts.query.split("&") if (value := pair.partition("=")[2]))
    found.extend(match.group(0).partition("=")[2] for match in _PATH_PARAMETER.finditer(parts.path))
    return found


def _forms(text: str) -> set[str]:
    """``text`` as written, decoded, and percent-encoded (once and twice, as GDAL writes a URL in a path)."""
    decoded = urllib.parse.unquote_plus(text)
    once = urllib.parse.quote(text, safe="")
    twice = urllib.parse.quote(once, safe="")
    return {
        text,
        decoded,
        once,
        twice,
        urllib.parse.quote(decoded, safe=""),
        urllib.parse.quote_plus(decoded),
    }


def redact_text(text: str, *urls: str, values: Iterable[str] = ()) -> str:
    """Return ``text`` safe to show: URLs cut to ``scheme://host/path``, known secrets masked.

    Parameters
    ----------
    text
        A message, often another library's.
    urls
        URLs the message may name, in any form (plain, decoded, percent-encoded):
        each is replaced by its :func:`public_url`, and its password and query
        values (:func:`secrets_of`) are masked where they appear on their own.
    values
        Other secret values (header values): masked, and so is each word of them.

    Returns
    -------
    str
        The message, safe to show.

    Examples
    --------
    >>> redact_text("403 for https://h/a?sig=abcdef123 (sig abcdef123, sp=r)", "https://h/a?sig=abcdef123&sp=r")
    '403 for https://h/a?*** (sig ***, sp=r)'
    >>> redact_text("bad key Zk3y-s3cr3t (Bearer Zk3y-s3cr3t)", values=["Bearer Zk3y-s3cr3t"])
    'bad key *** (***)'
    """
    secrets: set[str] = set()
    for url in urls:
        cut = _cut(url)
        if cut != url:
            for form in sorted(_forms(url), key=len, reverse=True):
                text = text.replace(form, cut)
        for written in secrets_of(url):
            secrets.update(_forms(written))
    for value in values:
        secrets.update({value, *value.split(), *_basic_decoded(value)})
    text = redact_urls(text)
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= MIN_SECRET:
            text = text.replace(secret, MASK)
    return text


def _basic_decoded(value: str) -> tuple[str, ...]:
    """Return what an HTTP Basic credential encodes, ``user:password`` and the password (servers log it).

    Examples
    --------
    >>> _basic_decoded("Basic YWxpY2U6czNjcmV0"), _basic_decoded("Bearer YWxpY2U6czNjcmV0")
    (('alice:s3cret', 's3cret'), ())
    """
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return ()
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):  # not base64 of text: nothing else to mask
        return ()
    return decoded, decoded.partition(":")[2]


_URL = re.compile(
    r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+"  # any scheme: redis://:pw@h, ftp://u:pw@h
    r"|(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*%(?:25)?3A%(?:25)?2F%(?:25)?2F[^\s'\"<>&]+"  # encoded once or twice
    r"|//[^\s'\"<>/@]+@[^\s'\"<>]+",  # scheme-relative with a user: //user:pw@host/path
    re.IGNORECASE,
)
# A query string without its URL (a request line "GET /a.tif?token=... HTTP/1.1", the rest of a URL
# whose key has a space: "s3://b/my file.tif?sig=..."), less the punctuation after it; GDAL's
# "/vsicurl?list_dir=no&url=<URL>" keeps its options (the URL in them is cut by _URL).
_QUERY = re.compile(
    r"(?<!vsicurl)(?<!vsicurl_streaming)\?[A-Za-z0-9_.%-]+=(?!(?:https?|s3a?|gcs|gs|azure|az|abfss?|wasbs?|file)(?::|%3A))[^\s'\"<>#]*?(?=[.,;:)]*(?:[\s'\"<>#]|$))",
    re.IGNORECASE,
)


def _cut(url: str) -> str:
    """:func:`public_url`, marked ``?***`` when something (query, user, fragment) was cut."""
    public = public_url(url)  # the same letters but for the case of scheme and host: nothing was cut
    return url if public.lower() == url.lower() else f"{public}?{MASK}"


def redact_urls(text: str) -> str:
    """Return ``text`` with every URL in it cut to ``scheme://host/path`` and every query string dropped.

    A URL that had more (a query, a user, a fragment) is shown as
    ``scheme://host/path?***``; one that had not is left as written
    (percent-encoded ones included, as GDAL writes them). For messages from
    elsewhere, where the URLs are not known in advance.

    Examples
    --------
    >>> redact_urls("HTTP error code: 503 - https://h/a.tif?X-Amz-Signature=abc. Retrying")
    'HTTP error code: 503 - https://h/a.tif?***. Retrying'
    >>> redact_urls("/vsicurl?url=https%3A%2F%2Fh%2Fa.tif%3Ftoken%3Dabc failed")
    '/vsicurl?url=https://h/a.tif?*** failed'
    >>> redact_urls('"GET /search?limit=2&sig=abc HTTP/1.1" 200 for https://me:pw@h/x')
    '"GET /search?*** HTTP/1.1" 200 for https://h/x?***'
    """

    def clean(match: re.Match[str]) -> str:
        url = written = match.group(0)
        trail = ""
        while url and url[-1] in ".,;:)":
            url, trail = url[:-1], url[-1] + trail
        decoded = url
        for _ in range(2):  # once or twice percent-encoded (GDAL writes a URL in a path)
            if "://" not in decoded:
                decoded = urllib.parse.unquote(decoded)
        cut = _cut(decoded)
        return written if cut == decoded else cut + trail

    def connection(match: re.Match[str]) -> str:
        found = match.group(0)
        return _connection_string(found) if _CONNECTION_SECRET.search(found) else found

    if _CONNECTION_SECRET.search(text):
        text = _CONNECTION.sub(connection, text)
    text = _LONE_SECRET.sub(rf"\1={MASK}", text)
    return _QUERY.sub(f"?{MASK}", _URL.sub(clean, text))


#: A connection string's secret setting on its own in a message.
_LONE_SECRET = re.compile(
    r"\b(AccountKey|SharedAccessSignature|SharedAccessKey)=(?!\*\*\*)[^;\s'\"]+", re.IGNORECASE
)
#: What makes a ``name=value;...`` text in a message a connection string to clean.
_CONNECTION_SECRET = re.compile(
    r"(?:^|;)\s*(?:AccountKey|SharedAccessSignature|SharedAccessKey)=", re.IGNORECASE
)
