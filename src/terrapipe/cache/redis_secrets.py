"""The secrets of a Redis (or cache store) URL, in every form a server or a client may echo them, masked.

A ``redis://user:password@host`` URL carries its password URL-encoded
(``p%40ss`` for ``p@ss``); redis-py decodes it before sending ``AUTH``, and a
server that refuses the command echoes its arguments (Redis's own ``ERR
unknown command 'AUTH', with args beginning with: 'user' 'p@ss'``, a
proxy's ``WRONGPASS``). So an error built from what the server said holds
the decoded form, which masking the URL's text alone does not catch.

Examples
--------
>>> url = "redis://alice:p%40ss%3Aw0rd@127.0.0.1:6379/0"
>>> masked("AUTH refused: 'alice' 'p@ss:w0rd'", url_secrets(url))
"AUTH refused: '***' '***'"
"""

from __future__ import annotations

import traceback
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["leaks", "masked", "url_secrets"]

#: Secrets shorter than this are not masked (a one-letter user would mask every such letter).
_SHORTEST = 3


def url_secrets(url: str) -> list[str]:
    """Return the user, password and query values of ``url``, as written and decoded, longest first."""
    try:
        parts = urlsplit(url)
        found = [parts.password, parts.username]
    except ValueError:
        return []
    found += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
    found += [raw.partition("=")[2] for raw in parts.query.split("&")]
    forms = {form for secret in found if secret for form in (secret, unquote(secret))}
    return sorted((s for s in forms if len(s) >= _SHORTEST), key=len, reverse=True)


def masked(text: str, secrets: list[str]) -> str:
    """``text`` with each of ``secrets`` replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def leaks(err: BaseException, secrets: list[str]) -> bool:
    """Whether ``err`` or an exception chained to it (what a traceback prints) shows one of ``secrets``."""
    text = "".join(traceback.format_exception(err))
    return any(secret in text for secret in secrets)
