"""Read one STAC JSON document (item, collection, catalog) from a local path or an HTTP URL.

Local files are read directly; URLs go through :class:`~terrapipe.stac.http_json.JsonClient`
(time-out, retries, redacted messages).

Examples
--------
>>> import json, pathlib
>>> from terrapipe.core.errors import ReadError
>>> _ = pathlib.Path("item.json").write_text(json.dumps({"type": "Feature", "id": "a"}))
>>> read_document("item.json", client=JsonClient(), error=ReadError, what="read the STAC item")["id"]
'a'
>>> read_document("missing.json", client=JsonClient(), error=ReadError, what="read the STAC item")
Traceback (most recent call last):
...
terrapipe.core.errors.ReadError: cannot read the STAC item at 'missing.json': no such file; check the path
"""

from __future__ import annotations

import json
from typing import Any

from terrapipe.core.errors import TerrapipeError
from terrapipe.stac.hrefs import is_http, local_path
from terrapipe.stac.http_json import JsonClient
from terrapipe.stac.redact import redact_url

__all__ = ["read_document"]


def read_document(href: str, *, client: JsonClient, error: type[TerrapipeError], what: str) -> Any:
    """Return the decoded JSON at ``href``.

    Parameters
    ----------
    href
        Local path, ``file://`` URI or ``http(s)://`` URL.
    client
        The HTTP client for URLs.
    error
        The exception class raised on failure.
    what
        What is being done, for messages (``"read the STAC item"``).

    Returns
    -------
    Any
        The decoded JSON.

    Raises
    ------
    TerrapipeError
        ``error``, naming the href: a missing or unreadable file, an HTTP
        failure (after retries), or text that is not JSON.
    """
    if is_http(href):
        return client.request("GET", href, error=error, what=what)
    path = local_path(href)
    shown = redact_url(href)
    try:
        with open(path, "rb") as handle:
            content = handle.read()
    except FileNotFoundError:
        raise error(f"cannot {what} at {shown!r}: no such file; check the path") from None
    except IsADirectoryError:
        raise error(f"cannot {what} at {shown!r}: it is a folder; give the JSON file inside it") from None
    except OSError as err:
        raise error(f"cannot {what} at {shown!r}: {err.strerror or err}; check the file") from err
    try:
        return json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        reason = f"{err.msg} at byte {err.pos}" if isinstance(err, json.JSONDecodeError) else "not text"
        raise error(
            f"cannot {what} at {shown!r}: not valid JSON ({reason}); fix or re-create the file"
        ) from None
