"""Read one STAC JSON document (item, collection, catalog) from a local path, a bucket or an HTTP URL.

Local files are read directly; objects in buckets (``s3://``, ``az://``,
``abfs://``, ``gs://``) through the byte layer :mod:`terrapipe.io.object_store`
and HTTP URLs through :class:`~terrapipe.stac.http_json.JsonClient`, both configured by one
:class:`~terrapipe.io.storage.Storage` (deadline, body cap, retries; HTTP credentials kept to their
origin; messages naming ``scheme://host/path``). The deadline and the cap are the STAC ones
(``Storage.deadline`` or 120 s; ``Storage.max_bytes`` or 64 MiB) wherever the document is.

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
import os
from typing import Any

from terrapipe.core.errors import ReadError, TerrapipeError
from terrapipe.core.redact import public_url
from terrapipe.io.object_store import get as get_object
from terrapipe.io.object_store import is_object_url
from terrapipe.io.storage import Storage
from terrapipe.stac.hrefs import is_http, local_path
from terrapipe.stac.http_json import DEFAULT_MAX_BYTES, JsonClient, deadline_of

__all__ = ["read_document"]


def read_document(
    href: str,
    *,
    client: JsonClient,
    error: type[TerrapipeError],
    what: str,
    storage: Storage | None = None,
) -> Any:
    """Return the decoded JSON at ``href``.

    Parameters
    ----------
    href
        Local path, ``file://`` URI, object URL (``s3://``, ``az://``, ``gs://``) or ``http(s)://`` URL.
    client
        The HTTP client for URLs; its ``storage`` gives the deadline and the cap everywhere.
    error
        The exception class raised on failure.
    what
        What is being done, for messages (``"read the STAC item"``).
    storage
        How to reach buckets (default ``Storage.from_env()``).

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
    shown = public_url(href)
    if is_object_url(href):
        cap = client.storage.max_bytes or DEFAULT_MAX_BYTES
        try:
            content = get_object(href, storage, max_bytes=cap, deadline=deadline_of(client.storage))
        except ReadError as err:
            raise error(f"cannot {what}: {err}") from None
        return _decode(content, shown, error, what)
    path = local_path(href)
    try:
        with open(path, "rb") as handle:
            cap = client.storage.max_bytes or DEFAULT_MAX_BYTES
            if os.fstat(handle.fileno()).st_size > cap:
                raise error(
                    f"cannot {what} at {shown!r}: the file is larger than the cap of {cap} bytes; "
                    "raise max_bytes= if it is expected"
                )
            content = handle.read(cap + 1)
    except FileNotFoundError:
        raise error(f"cannot {what} at {shown!r}: no such file; check the path") from None
    except IsADirectoryError:
        raise error(f"cannot {what} at {shown!r}: it is a folder; give the JSON file inside it") from None
    except OSError as err:
        raise error(f"cannot {what} at {shown!r}: {err.strerror or err}; check the file") from err
    return _decode(content, shown, error, what)


def _decode(content: bytes, shown: str, error: type[TerrapipeError], what: str) -> Any:
    """Return the JSON in ``content`` or raise ``error`` naming ``shown``."""
    try:
        return json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        reason = f"{err.msg} at byte {err.pos}" if isinstance(err, json.JSONDecodeError) else "not UTF-8 text"
        raise error(
            f"cannot {what} at {shown!r}: not valid JSON ({reason}); fix or re-create the file"
        ) from None
    except (RecursionError, ValueError) as err:  # nested too deep; an integer too long to convert
        reason = "nested too deeply" if isinstance(err, RecursionError) else "a number Python refuses"
        raise error(
            f"cannot {what} at {shown!r}: not valid JSON ({reason}); fix or re-create the file"
        ) from None
