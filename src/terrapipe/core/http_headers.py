r"""What an HTTP header may hold (RFC 9110), checked before any request: one rule for every client.

The byte layer (:mod:`terrapipe.io.http_reads`), the STAC client and GDAL's
``/vsicurl/`` reads (:func:`terrapipe.io.gdal_env.header_options`) all send
``Storage(headers=...)``; a value with a control character (a NUL: GDAL cuts
the value there and sends another credential; a line break: another header)
or a character outside latin-1 (a bare ``UnicodeEncodeError`` naming the
character's position in the secret) is refused here, by the header's name,
never showing its value.

Examples
--------
>>> check_headers({"Authorization": "Bearer x"})
>>> try:
...     check_headers({"X-Key": "a\x00b"})
... except InvalidArgumentError as err:
...     print(str(err)[:47])
the value of header 'X-Key' cannot be sent over
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from terrapipe.core.errors import InvalidArgumentError

__all__ = ["check_headers"]

_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")  # visible ASCII, SP, HTAB, obs-text


def check_headers(headers: Mapping[str, str]) -> None:
    """Refuse, by name and never showing the value, a header HTTP cannot carry (see the module notes)."""
    for name, value in headers.items():
        if not _NAME.fullmatch(name):
            raise InvalidArgumentError(
                f"{name!r} is not a valid HTTP header name; check Storage(headers=...)"
            )
        if not _VALUE.fullmatch(value):
            raise InvalidArgumentError(
                f"the value of header {name!r} cannot be sent over HTTP (it holds a control character, such "
                "as a NUL or a line break, or a character outside latin-1); check Storage(headers=...) "
                "(value not shown)"
            )
