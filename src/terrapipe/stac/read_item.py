"""``read_stac_item``: STAC item JSON files (local, in a bucket or over HTTP) to ``pystac.Item``.

:func:`open_stac_item` reads one; the :class:`ReadSTACItem` stage reads a
pipe of hrefs. A file that cannot be read (missing, HTTP 404, time-out after
retries) raises :class:`~terrapipe.core.errors.ReadError`; a document that
is not a valid item raises :class:`~terrapipe.core.errors.STACSearchError`.
Both name the href. Relative asset hrefs are resolved against the item's own
href, so an item read over HTTP points at its assets over HTTP. How files
are reached (bucket credentials, HTTP headers, time-outs, retries, deadline,
body cap) is one :class:`~terrapipe.io.storage.Storage`, ``storage=``.

Examples
--------
>>> import terrapipe as tp, terrapipe.stac
>>> world = tp.datasets.sample_world()
>>> href = world.root / "stac" / "demo-dem" / "demo-dem-30m" / "demo-dem-30m.json"
>>> [item.id for item in tp.from_items([href]).read_stac_item()]
['demo-dem-30m']
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from terrapipe.core.errors import InvalidArgumentError, ReadError, TerrapipeError
from terrapipe.core.on_error import OnError, check_on_error, handle_error
from terrapipe.core.pipe import IterDataPipe, Stage, register
from terrapipe.core.redact import public_url
from terrapipe.io.object_store import is_object_url
from terrapipe.io.storage import Storage
from terrapipe.stac.deprecated import with_keywords
from terrapipe.stac.documents import read_document
from terrapipe.stac.hrefs import is_http, local_path
from terrapipe.stac.http_json import JsonClient
from terrapipe.stac.items import ItemModifier, item_from_dict
from terrapipe.stac.keywords import renamed_source, transport_keywords

__all__ = ["ReadSTACItem", "open_stac_item"]

_TRANSPORT = ("headers", "timeout", "retries", "backoff", "max_backoff")


def _href(value: Any) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        shown = f": {value!r}" if len(repr(value)) <= 80 else ""  # never a whole item (geometry included)
        raise InvalidArgumentError(
            f"read_stac_item takes item hrefs (paths or URLs), got {type(value).__name__}{shown}; "
            "items already read go straight to stack_stac"
        )
    return value if is_http(value) or is_object_url(value) else os.path.abspath(local_path(value))


def open_stac_item(
    href: str | os.PathLike[str],
    *,
    client: JsonClient | None = None,
    modifier: ItemModifier | None = None,
    storage: Storage | None = None,
) -> Any:
    """Read one STAC item.

    Parameters
    ----------
    href
        Local path, ``file://`` URI, bucket URL or ``http(s)://`` URL of the item JSON.
    client
        The HTTP client to reuse (its storage is used); one for ``storage`` when omitted.
    modifier
        Called with the item (signing); returns the item to use or ``None``.
    storage
        How to reach the file (default: ``Storage.from_env()`` for a bucket,
        ``Storage()`` over HTTP).

    Returns
    -------
    pystac.Item
        The item, with its self href set and asset hrefs absolute.

    Raises
    ------
    ReadError
        If the file cannot be read.
    STACSearchError
        If it is not a valid STAC item.
    """
    text = _href(href)
    client = client or JsonClient(storage)  # no origin: credentials go to the href's own
    record = read_document(text, client=client, error=ReadError, what="read the STAC item", storage=storage)
    return item_from_dict(record, where=public_url(text), href=text, modifier=modifier)


@register("read_stac_item")
class ReadSTACItem(Stage[Any]):
    """Read the STAC item at each href of the source pipe.

    Parameters
    ----------
    source
        Pipe of item hrefs (paths, ``file://`` URIs, bucket or HTTP URLs).
    storage
        How files are reached (see :func:`open_stac_item`). Its ``headers`` and
        ``request_modifier`` go to the origin of each href only (never after a
        redirect elsewhere).
    modifier
        Called with each item before it is yielded.
    on_error
        ``"raise"``, ``"skip"`` or ``"warn"`` for an item that cannot be read.
    **deprecated
        For one release (each warns with
        :class:`~terrapipe.core.errors.TerrapipeDeprecationWarning`): ``source_dp=``
        (now ``source``) and ``headers``, ``timeout``, ``retries``, ``backoff``,
        ``max_backoff`` (now fields of ``storage``).

    Raises
    ------
    ReadError, STACSearchError
        When iterating with ``on_error="raise"`` (see :func:`open_stac_item`).

    Notes
    -----
    One item per href, in order; holds no position of its own (resuming its
    source resumes it). ``len()`` is the source's.
    """

    stateless = True

    def __init__(
        self,
        source: IterDataPipe[Any] | None = None,
        *,
        storage: Storage | None = None,
        modifier: ItemModifier | None = None,
        on_error: OnError = "raise",
        **deprecated: Any,
    ) -> None:
        super().__init__()
        self.source = renamed_source("read_stac_item", source, deprecated)
        loose = transport_keywords("read_stac_item", deprecated, _TRANSPORT)
        self.on_error = check_on_error(on_error)
        if modifier is not None and not callable(modifier):
            raise InvalidArgumentError(f"modifier must be callable, got {modifier!r}")
        self.modifier = modifier
        self.storage = with_keywords("read_stac_item", storage, loose)
        self._client = JsonClient(self.storage)  # no origin: credentials go to each href's own

    def __iter__(self) -> Iterator[Any]:
        for href in self.source:
            received = self._client.bytes_received
            try:
                item = open_stac_item(href, client=self._client, modifier=self.modifier, storage=self.storage)
            except TerrapipeError as err:
                handle_error(err, on_error=self.on_error, stats=self.stats)
                continue
            finally:
                self.stats.bytes_read += self._client.bytes_received - received
            self.stats.elements += 1
            yield item

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]
