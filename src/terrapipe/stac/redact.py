"""Keep credentials out of messages: redact URLs and headers before they are shown.

Error messages and reprs of the STAC stages name the URL they talk to, never
the secrets that come with it: passwords in ``user:password@host``, query
parameters that carry tokens or signatures (``token=``, ``sig=``,
``X-Amz-Signature=``, SAS parameters, ...) and request header values.

Examples
--------
>>> redact_url("https://user:pw@example.com/stac/search?collections=s2&token=abc&sig=x%2By")
'https://user:***@example.com/stac/search?collections=s2&token=***&sig=***'
>>> redact_headers({"Authorization": "Bearer abc", "Accept": "application/json"})
{'Authorization': '***', 'Accept': '***'}
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping

__all__ = ["MASK", "is_secret_name", "redact_headers", "redact_url"]

#: What replaces a secret.
MASK = "***"

# Query parameter names that carry credentials (case-insensitive, whole name or part of it).
_SECRET_PARTS = re.compile(r"token|secret|passw|sig|credential|auth|api[-_]?key|^key$|^code$", re.IGNORECASE)
# Azure SAS fields that, together, make a credential even though they look harmless.
_SAS_FIELDS = frozenset(
    {"se", "sp", "sv", "sr", "st", "ss", "srt", "skoid", "sktid", "skt", "ske", "sks", "skv"}
)


def is_secret_name(name: str) -> bool:
    """Whether a query parameter named ``name`` may carry a credential.

    Examples
    --------
    >>> [is_secret_name(n) for n in ("access_token", "X-Amz-Signature", "se", "bbox", "collections")]
    [True, True, True, False, False]
    """
    return bool(_SECRET_PARTS.search(name)) or name.lower() in _SAS_FIELDS


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


def redact_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Return the header names with every value masked (values may hold credentials).

    Examples
    --------
    >>> redact_headers(None)
    {}
    """
    return {str(name): MASK for name in (headers or {})}
