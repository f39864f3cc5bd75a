"""Keep credentials out of the STAC stages' messages (the helpers live in :mod:`terrapipe.core.redact`).

Errors, warnings and reprs of the STAC stages name a URL by :func:`public_url`:
``scheme://host[:port]/path`` only, without user, password, query string or
fragment (a search's parameters are named separately, from the query).

Examples
--------
>>> public_url("https://me:pw@Example.com:8443/stac/search?collections=s2&token=abc#frag")
'https://example.com:8443/stac/search'
>>> public_url("/data/catalog.json")
'/data/catalog.json'
"""

from __future__ import annotations

from terrapipe.core.redact import MASK, public_url, redact_headers, redact_text, redact_url

__all__ = ["MASK", "public_url", "redact_headers", "redact_text", "redact_url"]
