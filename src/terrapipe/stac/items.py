"""STAC item dicts to ``pystac.Item``: checked, hrefs made absolute, modifier applied.

Every search backend and :func:`~terrapipe.stac.read_item.open_stac_item`
builds its items here, so a malformed item always fails the same way: a
:class:`~terrapipe.core.errors.STACSearchError` naming the item and where it
came from.

Examples
--------
>>> record = {"type": "Feature", "stac_version": "1.1.0", "id": "a", "geometry": None,
...           "properties": {"datetime": "2024-06-19T10:30:00Z"}, "links": [],
...           "assets": {"red": {"href": "B04.tif"}}}
>>> item = item_from_dict(record, where="/data/a/a.json", href="/data/a/a.json")
>>> item.id, item.assets["red"].href
('a', '/data/a/B04.tif')
>>> item_from_dict({"type": "Feature", "id": "b"}, where="http://127.0.0.1:8080/search")
Traceback (most recent call last):
...
terrapipe.core.errors.STACSearchError: malformed STAC item 'b' from http://127.0.0.1:8080/search: missing 'properties'; fix the item, or skip bad items with on_error='skip'
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from terrapipe._compat import pystac_old_extension_ids
from terrapipe.core.errors import InvalidArgumentError, STACSearchError
from terrapipe.core.optional import require
from terrapipe.stac.hrefs import is_absolute, join_href

__all__ = [
    "CURRENT_EXTENSIONS",
    "CURRENT_STAC_VERSION",
    "ItemModifier",
    "absolute_item",
    "item_from_dict",
    "plain_record",
]

#: Called with each ``pystac.Item`` (e.g. ``planetary_computer.sign_inplace``);
#: returns the item to use, or ``None`` after changing it in place.
ItemModifier = Callable[[Any], Any]

_REQUIRED = ("id", "properties", "assets")


def item_from_dict(
    record: Any,
    *,
    where: str,
    href: str | None = None,
    modifier: ItemModifier | None = None,
    hint: str = "fix the item, or skip bad items with on_error='skip'",
) -> Any:
    """Build a ``pystac.Item`` from a STAC item dict.

    Parameters
    ----------
    record
        The item as decoded JSON (it is not modified).
    where
        Where it came from (URL or path, already redacted), for messages.
    href
        The item's own href, if it has one: relative asset hrefs are resolved
        against it and it becomes the item's self href.
    modifier
        Called with the item (signing, patching); see :data:`ItemModifier`.
    hint
        What to do, at the end of an error's message.

    Returns
    -------
    pystac.Item
        The item.

    Raises
    ------
    STACSearchError
        If the record is not a STAC item (not a dict, not a Feature, missing
        ``id``/``properties``/``assets``) or pystac refuses it.
    """
    pystac = require("pystac", feature="STAC items")
    ident = record.get("id") if isinstance(record, Mapping) else None
    shown = repr(ident) if ident is not None else "(without id)"
    problem = _problem(record)
    if problem:
        raise STACSearchError(_message(shown, where, problem, hint))
    # pystac changes the dict it is given: copy the parts it changes (not the geometry, which is large).
    record = dict(record)
    record["properties"] = dict(record["properties"])
    assets = {}
    for key, asset in record["assets"].items():
        if isinstance(asset, Mapping):
            asset = dict(asset)
            if href is not None and isinstance(asset.get("href"), str) and not is_absolute(asset["href"]):
                asset["href"] = join_href(href, asset["href"])  # URLs and absolute paths stay as they are
        assets[key] = asset
    record["assets"] = assets
    links = [dict(link) for link in record.get("links") or [] if isinstance(link, Mapping)]
    record["links"] = [link for link in links if link.get("rel") != "self"] if href is not None else links
    try:
        migrate = _needs_migration(pystac, record)
        item = pystac.Item.from_dict(record, href=href, migrate=migrate, preserve_dict=False)
    except (KeyError, ValueError, TypeError, AttributeError, pystac.STACError) as err:
        reason = f"missing {err}" if isinstance(err, KeyError) else str(err) or type(err).__name__
        raise STACSearchError(_message(shown, where, reason, hint)) from err
    if modifier is not None:
        changed = modifier(item)
        if changed is not None:
            if not isinstance(changed, pystac.Item):
                msg = f"the item modifier returned {type(changed).__name__} for item {shown}; return a pystac.Item or None"
                raise STACSearchError(msg)
            item = changed
    return item


_OLD_EXTENSIONS: set[str] | None = None


def _needs_migration(pystac: Any, record: Mapping[str, Any]) -> bool:
    """Whether pystac's migration would change the item (an older STAC or extension version).

    Migrating deep-copies the whole item, so items that are current skip it.
    """
    global _OLD_EXTENSIONS
    if record.get("stac_version") != pystac.get_stac_version():
        return True
    if _OLD_EXTENSIONS is None:
        old = pystac_old_extension_ids()
        if old is None:  # pragma: no cover - pystac internals moved
            return True
        _OLD_EXTENSIONS = set(old)
    return any(uri in _OLD_EXTENSIONS for uri in record.get("stac_extensions") or [])


def _problem(record: Any) -> str:
    if not isinstance(record, Mapping):
        return f"expected a JSON object, got {type(record).__name__}"
    if record.get("type") != "Feature":
        return f"'type' is {record.get('type')!r}, not 'Feature'"
    for key in _REQUIRED:
        if key not in record:
            return f"missing {key!r}"
    if not isinstance(record["properties"], Mapping):
        return "'properties' is not an object"
    if not isinstance(record["assets"], Mapping):
        return "'assets' is not an object"
    return _geometry_problem(record.get("geometry"))


def _geometry_problem(geometry: Any) -> str:
    """Why ``geometry`` is not a GeoJSON geometry (``""`` if it is one, or ``None``)."""
    if geometry is None:
        return ""
    shapely_geometry = require("shapely.geometry", feature="STAC items")
    try:
        shapely_geometry.shape(geometry)
    except Exception as err:  # shapely raises several kinds for a malformed geometry
        return f"'geometry' is not a GeoJSON geometry ({type(err).__name__}: {err})"
    return ""


_REASON_CHARS = 200


def _message(shown: str, where: str, reason: str, hint: str) -> str:
    if len(reason) > _REASON_CHARS:  # a library's message may quote the whole item
        reason = reason[: _REASON_CHARS - 3] + "..."
    return f"malformed STAC item {shown} from {where}: {reason}; {hint}"


def _self_href(record: Mapping[str, Any]) -> str | None:
    """Return the absolute href of an item dict's ``self`` link, if it has one."""
    for link in record.get("links") or []:
        if isinstance(link, Mapping) and link.get("rel") == "self" and isinstance(link.get("href"), str):
            href = str(link["href"])
            return href if is_absolute(href) else None
    return None


def _check_relative_self(record: Mapping[str, Any]) -> None:
    """Refuse relative asset hrefs of an item dict whose self link is relative too (it anchors nothing).

    pystac would resolve such a self link against the working directory, so the
    same item would read other files from another folder.
    """
    selfs = [
        link.get("href")
        for link in record.get("links") or []
        if isinstance(link, Mapping) and link.get("rel") == "self" and isinstance(link.get("href"), str)
    ]
    if not selfs or is_absolute(str(selfs[0])) or not isinstance(record.get("assets"), Mapping):
        return
    for key, asset in record["assets"].items():
        href = asset.get("href") if isinstance(asset, Mapping) else None
        if isinstance(href, str) and href and not is_absolute(href):
            msg = (
                f"STAC item {record.get('id')!r}, asset {key!r}: the href {href!r} is relative and so is the "
                f"item's self link {selfs[0]!r}, which anchors it nowhere (never the working directory); read "
                "the item from its file or URL (read_stac_item), make the self link or the href absolute"
            )
            raise STACSearchError(msg)


def absolute_item(element: Any, *, where: str) -> Any:
    """Return ``element`` (a ``pystac.Item`` or an item dict) as a ``pystac.Item`` whose asset hrefs are absolute.

    Relative asset hrefs (``./B04.tif``, ``../cogs/B04.tif``) are resolved
    against the item's self link (for a ``pystac.Item``: its self href, set
    when it was read from a file or URL), never against the working
    directory, as pystac resolves them (and odc-stac reads them). A
    ``pystac.Item`` that needs no change is returned as it is (else a copy:
    the caller's item is never changed).

    Parameters
    ----------
    element
        A ``pystac.Item``, or a STAC item as decoded JSON (ndjson,
        stac-geoparquet, ``json.load``).
    where
        What it is, for messages (e.g. ``"stack_stac's input (element 3)"``).

    Returns
    -------
    pystac.Item
        The item.

    Raises
    ------
    InvalidArgumentError
        If ``element`` is neither (the message names its type, never its content).
    STACSearchError
        For a dict that is not a STAC item, or a relative asset href with
        no self link to resolve it against, naming the item and asset.

    Examples
    --------
    >>> record = {"type": "Feature", "stac_version": "1.1.0", "id": "a", "geometry": None,
    ...           "properties": {"datetime": "2024-06-19T10:30:00Z"}, "assets": {"red": {"href": "./B04.tif"}},
    ...           "links": [{"rel": "self", "href": "https://h/items/a.json"}]}
    >>> absolute_item(record, where="a list").assets["red"].href
    'https://h/items/B04.tif'
    >>> absolute_item("a.json", where="stack_stac's input (element 0)")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: stack_stac's input (element 0) is a str, not a STAC item: pass pystac.Item objects or STAC item dicts (read files with read_stac_item)
    """
    pystac = require("pystac", feature="STAC items")
    if isinstance(element, Mapping):
        _check_relative_self(element)
        element = item_from_dict(
            element, where=where, href=_self_href(element), hint="fix the item or leave it out"
        )
    if not isinstance(element, pystac.Item):
        msg = (
            f"{where} is a {type(element).__name__}, not a STAC item: pass pystac.Item objects or STAC item "
            "dicts (read files with read_stac_item)"
        )
        raise InvalidArgumentError(msg)
    changes: dict[str, str] = {}
    for key, asset in element.assets.items():
        href = asset.href
        if not isinstance(href, str) or not href:
            raise STACSearchError(f"STAC item {element.id!r}, asset {key!r} has no href; fix the item")
        # pystac's resolution, which odc-stac reads with: against the self href, RFC 3986 (a path such as
        # '/data/a.tif' in an item served over HTTP is a path on that host)
        resolved = (
            href if is_absolute(href) and element.get_self_href() is None else asset.get_absolute_href()
        )
        if resolved is None:
            msg = (
                f"STAC item {element.id!r}, asset {key!r}: the href {href!r} is relative and the item has no "
                "self link to resolve it against; read the item from its file or URL (read_stac_item, "
                "pystac.Item.from_file), add a 'self' link, or make the href absolute"
            )
            raise STACSearchError(msg)
        if resolved != href:
            changes[key] = resolved
    if not changes:
        return element
    copied = element.clone()
    for key, href in changes.items():
        copied.assets[key].href = href
    return copied


#: The STAC version pystac writes (``pystac.get_stac_version()``): an item dict at this version with only
#: :data:`CURRENT_EXTENSIONS` is one pystac would not migrate (checked against pystac in
#: ``tests/stac/test_items_plain_record.py``).
CURRENT_STAC_VERSION = "1.1.0"

#: Extension schemas pystac neither migrates nor warns about (its hooks' current versions, none deprecated):
#: an item listing another one is built by pystac (:func:`absolute_item`), which knows what to migrate.
CURRENT_EXTENSIONS = frozenset(
    f"https://stac-extensions.github.io/{name}/schema.json"
    for name in (
        "projection/v2.0.0",
        "eo/v1.1.0",
        "raster/v1.1.0",
        "file/v2.1.0",
        "view/v1.0.0",
        "sat/v1.0.0",
        "sar/v1.0.0",
        "timestamps/v1.1.0",
        "grid/v1.1.0",
        "mgrs/v1.0.0",
        "scientific/v1.0.0",
        "storage/v2.0.0",
        "classification/v2.0.0",
    )
)


def plain_record(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return a STAC item dict as :func:`absolute_item` makes it, without pystac, or ``None`` where pystac must.

    What ``stack_stac`` reads of an item (id, datetimes, assets and their
    hrefs, projection and band fields) needs no ``pystac.Item``; building
    one costs a fresh process ~65 ms (importing pystac, and its discovery of
    extension hooks on the first ``Item.from_dict``). This takes the plain
    case only: an item pystac would take as it is (the current STAC version,
    only :data:`CURRENT_EXTENSIONS`, datetimes pystac parses, links and
    assets it reads) whose asset hrefs pystac would leave as they are once
    resolved against the item's self link (absolute URLs; absolute paths in
    an item read from a path). Anything else (``None``) goes through
    :func:`absolute_item`, which migrates, resolves or refuses it as before.

    Parameters
    ----------
    record
        The item as decoded JSON (it is not modified).

    Returns
    -------
    dict or None
        The item with absolute asset hrefs (relative ones joined to the
        self link, which is left out), or ``None``.

    Examples
    --------
    >>> record = {"type": "Feature", "stac_version": "1.1.0", "id": "a", "geometry": None,
    ...           "properties": {"datetime": "2024-06-19T10:30:00Z"}, "assets": {"red": {"href": "./B04.tif"}},
    ...           "links": [{"rel": "self", "href": "https://h/items/a.json"}]}
    >>> plain_record(record)["assets"]["red"]["href"]
    'https://h/items/B04.tif'
    >>> plain_record({**record, "stac_version": "1.0.0"}) is None  # pystac migrates it
    True
    """
    if _problem(record) or record.get("stac_version") != CURRENT_STAC_VERSION:
        return None
    extensions = record.get("stac_extensions")
    if extensions is not None and (
        not isinstance(extensions, list) or not all(uri in CURRENT_EXTENSIONS for uri in extensions)
    ):
        return None
    if not isinstance(record.get("id"), str) or not _datetimes_parse(record["properties"]):
        return None
    raw_links = record.get("links")
    if raw_links is None:
        raw_links = []
    if not isinstance(raw_links, list) or not all(
        isinstance(link, Mapping) and "rel" in link and "href" in link for link in raw_links
    ):
        return None
    href = _self_href(record)
    if href is not None and _unusual(href):
        return None
    assets: dict[str, Any] = {}
    for key, asset in record["assets"].items():
        if not isinstance(asset, Mapping):
            return None
        asset_href = asset.get("href")
        if not isinstance(asset_href, str) or not asset_href or _unusual(asset_href):
            return None
        if href is None:
            if not is_absolute(asset_href):
                return None  # absolute_item says why
        else:
            if not is_absolute(asset_href):
                asset_href = join_href(href, asset_href)
            if not _kept_by_pystac(asset_href, href):
                return None
        asset = dict(asset)
        asset["href"] = asset_href
        assets[key] = asset
    out = dict(record)
    out["properties"] = dict(record["properties"])
    out["assets"] = assets
    links = [dict(link) for link in raw_links]
    out["links"] = [link for link in links if link.get("rel") != "self"] if href is not None else links
    return out


def _datetimes_parse(properties: Mapping[str, Any]) -> bool:
    """Whether pystac takes the item's datetimes: ``datetime``, else both ``start_datetime`` and ``end_datetime``."""
    keys = ("datetime",) if properties.get("datetime") is not None else ("start_datetime", "end_datetime")
    return all(parse_datetime(properties.get(key)) is not None for key in keys)


def parse_datetime(value: Any) -> Any:
    """Return a STAC datetime string as pystac parses it (``dateutil``'s ISO 8601 parser), or ``None``.

    Examples
    --------
    >>> parse_datetime("2024-06-19T10:30:00Z").isoformat(), parse_datetime("June"), parse_datetime(None)
    ('2024-06-19T10:30:00+00:00', None, None)
    """
    if not isinstance(value, str):
        return None
    parser = require(
        "dateutil.parser", feature="STAC items"
    )  # pystac's parser (python-dateutil: pandas has it)
    try:
        return parser.isoparse(value)
    except (ValueError, OverflowError):
        return None


def _unusual(href: str) -> bool:
    """Whether pystac reads ``href`` in a way of its own (Windows drives, backslashes, ``scheme:/`` forms)."""
    if "\\" in href:
        return True
    scheme = urllib.parse.urlparse(href).scheme
    return (
        bool(scheme)
        and href.lower().startswith(f"{scheme}:/")
        and not href.lower().startswith(f"{scheme}://")
    )


def _kept_by_pystac(href: str, self_href: str) -> bool:
    """Whether pystac's ``Asset.get_absolute_href`` returns ``href`` unchanged for an item at ``self_href``."""
    parsed = urllib.parse.urlparse(href)
    if parsed.scheme not in ("", "file") or parsed.path.startswith("/vsi"):
        return True
    return urllib.parse.urlparse(self_href).scheme in ("", "file") and os.path.isabs(parsed.path)
