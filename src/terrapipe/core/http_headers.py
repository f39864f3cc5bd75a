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

__all__ = ["TRANSPORT_HEADERS", "check_headers"]

_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")  # visible ASCII, SP, HTAB, obs-text
_LINE = re.compile(r"([A-Za-z][A-Za-z0-9-]{0,39}) *:")  # the name of a 'Name: value' line


#: Headers that frame or route a message, the transport's to set (RFC 9110 7.6.1, RFC 9112 6): a value of
#: the caller's would promise a body that is not sent (a request left waiting until its deadline), or
#: another connection handling than the client's. (``Content-Length`` is not among them: a
#: ``Storage.request_modifier`` request carries the length of the body it signed.)
TRANSPORT_HEADERS = frozenset(
    {
        "connection",
        "expect",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def _shown_name(name: str) -> str:
    """Show a header name: a valid one (its first 40 characters), a ``'Name: value'`` line by its name only.

    Anything else is not shown: a name that is no token may be a credential (a
    JWT or a base64 key given as the name, its header name as the value).

    Examples
    --------
    >>> _shown_name("X-Key"), _shown_name("Authorization: Bearer t"), _shown_name("eyJh.eyJz/sig=")
    ("'X-Key'", "'Authorization' (and more)", '(not shown)')
    """
    if _NAME.fullmatch(name):
        return repr(name[:40]) + (" (and more)" if len(name) > 40 else "")
    line = _LINE.match(name)
    return f"{line.group(1)!r} (and more)" if line else "(not shown)"


def check_headers(headers: Mapping[str, str]) -> None:
    """Refuse, by name and never showing the value, a header HTTP cannot carry (see the module notes).

    Also refused: a name or value that is not a string, one name given twice
    in different cases (two values, e.g. two credentials, of which a server
    takes either), and :data:`TRANSPORT_HEADERS`.

    Examples
    --------
    >>> check_headers({"Authorization": "Bearer a", "authorization": "Bearer b"})
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: header 'authorization' is given twice ...
    """
    seen: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            shown = _shown_name(name) if isinstance(name, str) else f"a {type(name).__name__}"
            raise InvalidArgumentError(
                f"HTTP header names and values must be strings, got the name {shown} with a "
                f"{type(value).__name__} value; check Storage(headers=...) (value not shown)"
            )
        if not _NAME.fullmatch(name):
            raise InvalidArgumentError(
                f"the header name {_shown_name(name)} is not a valid HTTP header name (a name is one word; "
                "a 'Name: value' line goes in as {'Name': 'value'}); check Storage(headers=...) "
                "(a value is never shown)"
            )
        folded = name.lower()
        if folded in seen:
            raise InvalidArgumentError(
                f"header {folded!r} is given twice ({seen[folded]!r} and {name!r}: HTTP names ignore case, "
                "and a server would take either value); keep one in Storage(headers=...)"
            )
        seen[folded] = name
        if folded in TRANSPORT_HEADERS:
            raise InvalidArgumentError(
                f"header {name!r} frames or routes the message and is the HTTP client's to set; remove it "
                "from Storage(headers=...)"
            )
        if not _VALUE.fullmatch(value):
            raise InvalidArgumentError(
                f"the value of header {name!r} cannot be sent over HTTP (it holds a control character, such "
                "as a NUL or a line break, or a character outside latin-1); check Storage(headers=...) "
                "(value not shown)"
            )
