"""Keep credentials out of the STAC stages' messages (the helpers live in :mod:`terrapipe.io.redact`).

They are shared with the readers, whose messages name URLs too. Errors,
warnings and reprs of the STAC stages name a URL by :func:`public_url`:
``scheme://host[:port]/path`` only, without user, password, query string or
fragment (a search's parameters are named separately, from the query).

Examples
--------
>>> redact_url("https://example.com/search?collections=s2&token=abc")
'https://example.com/search?collections=s2&token=***'
>>> public_url("https://me:pw@Example.com:8443/stac/search?collections=s2&token=abc#frag")
'https://example.com:8443/stac/search'
>>> public_url("/data/catalog.json")
'/data/catalog.json'
"""

from __future__ import annotations

import urllib.parse

from terrapipe.io.redact import MASK, is_secret_name, redact_headers, redact_text, redact_url

__all__ = ["MASK", "is_secret_name", "public_url", "redact_headers", "redact_text", "redact_url"]


def public_url(url: str) -> str:
    """Return ``scheme://host[:port]/path`` of a URL; a local path comes back unchanged.

    What an error message, warning or repr may show of a URL: no user name,
    password, query string or fragment, whatever their names.

    Parameters
    ----------
    url
        A URL or a local path.

    Returns
    -------
    str
        The URL reduced to its scheme, host, port and path.
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
