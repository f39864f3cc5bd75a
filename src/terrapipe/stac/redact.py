"""Keep credentials out of the STAC stages' messages (the helpers live in :mod:`terrapipe.io.redact`).

They are shared with the readers, whose messages name URLs too.

Examples
--------
>>> redact_url("https://example.com/search?collections=s2&token=abc")
'https://example.com/search?collections=s2&token=***'
"""

from __future__ import annotations

from terrapipe.io.redact import MASK, is_secret_name, redact_headers, redact_text, redact_url

__all__ = ["MASK", "is_secret_name", "redact_headers", "redact_text", "redact_url"]
