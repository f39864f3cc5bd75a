"""Which band of which asset a requested band name is, and what the STAC metadata says about it. No I/O.

An asset may hold several bands (Planet NICFI's ``data``: blue, green, red,
nir; PSScene's ``ortho_analytic_4b``). A requested name is looked up, in
this order:

1. an asset key: the asset's only band (an asset that declares several
   bands is refused: ask for its bands by name or as ``asset.N``);
2. ``asset.N`` (odc-stac's notation): band ``N`` (1-based, as GDAL counts)
   of ``asset``;
3. a band's ``name`` or common name in an asset's band list: ``eo:bands``
   (``name``, ``common_name``) or STAC 1.1 ``bands`` (``name``,
   ``eo:common_name``). A name found in several assets is taken from the
   asset with the fewest bands (a one-band data asset before a three-band
   ``visual`` preview, as odc-stac does); a tie is an error.

The name must give the same (asset, band) in every item, else the cube
would mix bands: :class:`~terrapipe.core.errors.STACSearchError`.

Each band's ``data_type``, ``nodata``, scale and offset are read from, most
specific first: its entry in STAC 1.1 ``bands`` (``data_type``, ``nodata``,
``raster:scale``, ``raster:offset``), its entry in 1.0 ``raster:bands``
(``data_type``, ``nodata``, ``scale``, ``offset``), the asset itself (STAC
1.1 common metadata, ``raster:scale``/``raster:offset``), then the item's
properties. A field that is ``null`` counts as not given (stac-geoparquet
writes ``null`` for every field some other item of the file has).

Examples
--------
>>> item = {"id": "nicfi", "properties": {}, "assets": {"data": {"href": "q.tif", "eo:bands": [
...     {"name": "blue"}, {"name": "green"}, {"name": "red"}, {"name": "nir"}]}}}
>>> resolve_band(item, "red")
('data', 3)
>>> resolve_band(item, "data.4")
('data', 4)
>>> resolve_band(item, "swir")
Traceback (most recent call last):
...
terrapipe.core.errors.InvalidArgumentError: unknown band 'swir' in STAC item 'nicfi': it has the assets ['data'] and the bands ['blue' (data.1), 'green' (data.2), 'red' (data.3), 'nir' (data.4)]; pass some of those
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from terrapipe.core.errors import InvalidArgumentError, STACSearchError

__all__ = ["BandInfo", "BandRef", "band_count", "band_info", "band_refs", "default_refs", "resolve_band"]

_SHOWN = 3
_NAME_FIELDS = ("name", "common_name", "eo:common_name")
#: STAC ``data_type`` values numpy does not spell the same way; ``None``: no numpy type (read the file).
_DATA_TYPES: dict[str, str | None] = {
    "cfloat32": "complex64",
    "cfloat64": "complex128",
    "cint16": None,
    "cint32": None,
    "other": None,
}


@dataclass(frozen=True)
class BandRef:
    """One band of the cube: its name and where it is read from.

    Attributes
    ----------
    name
        The name on the cube's ``band`` coordinate.
    asset
        The asset key.
    index
        The band's index in the asset's file, from 1 (as GDAL counts).
    count
        How many bands the asset declares (1 when it declares none).
    """

    name: str
    asset: str
    index: int
    count: int

    @property
    def key(self) -> str:
        """odc-stac's name of the band: ``asset.N``."""
        return f"{self.asset}.{self.index}"


@dataclass(frozen=True)
class BandInfo:
    """What the items' metadata says about one band (``None``: not said).

    Attributes
    ----------
    dtype
        numpy data type name, or ``None``.
    nodata
        The nodata value (``None`` with :attr:`dtype` known: the band has none).
    scale, offset
        ``raster`` scale and offset (physical value = pixel * scale + offset).
    """

    dtype: str | None
    nodata: float | int | None
    scale: float | None = None
    offset: float | None = None


def _label(item: Mapping[str, Any]) -> str:
    return repr(str(item.get("id")))


def _band_lists(item: Mapping[str, Any], asset: Mapping[str, Any]) -> list[list[Mapping[str, Any]]]:
    """Return the asset's band lists (``bands``, ``eo:bands``, ``raster:bands``), entries as dicts."""
    shared = (item.get("properties") or {}).get("eo:bands")
    out: list[list[Mapping[str, Any]]] = []
    for field in ("bands", "eo:bands", "raster:bands"):
        entries = asset.get(field)
        if not isinstance(entries, list):
            continue
        listed: list[Mapping[str, Any]] = []
        for entry in entries:
            if isinstance(entry, Mapping):
                listed.append(entry)
            elif (  # STAC 0.9: an asset lists indices into the item's eo:bands
                isinstance(entry, int) and isinstance(shared, list) and 0 <= entry < len(shared)
            ):
                found = shared[entry]
                listed.append(found if isinstance(found, Mapping) else {})
            else:
                listed.append({})
        out.append(listed)
    return out


def band_count(item: Mapping[str, Any], asset_key: str) -> int:
    """How many bands an asset declares: the longest of its band lists, at least 1.

    Examples
    --------
    >>> band_count({"assets": {"a": {"raster:bands": [{}, {}], "eo:bands": [{"name": "x"}]}}}, "a")
    2
    """
    asset = (item.get("assets") or {}).get(asset_key) or {}
    lists = _band_lists(item, asset) if isinstance(asset, Mapping) else []
    return max([1] + [len(entries) for entries in lists])


def _band_names(item: Mapping[str, Any]) -> list[tuple[str, str, int, bool]]:
    """Every ``(name, asset, index, is_name_field)`` the item's band lists declare."""
    out: list[tuple[str, str, int, bool]] = []
    for key, asset in (item.get("assets") or {}).items():
        if not isinstance(asset, Mapping):
            continue
        for entries in _band_lists(item, asset):
            for position, entry in enumerate(entries):
                for field in _NAME_FIELDS:
                    value = entry.get(field)
                    if isinstance(value, str) and value:
                        out.append((value, str(key), position + 1, field == "name"))
    return out


def _listing(item: Mapping[str, Any]) -> str:
    assets = sorted(str(k) for k in item.get("assets") or {})
    seen: list[str] = []
    for name, key, index, _ in _band_names(item):
        shown = f"{name!r} ({key}.{index})"
        if shown not in seen:
            seen.append(shown)
    text = f"the assets {assets}"
    if seen:
        text += f" and the bands [{', '.join(seen)}]"
    return text


def resolve_band(item: Mapping[str, Any], name: str) -> tuple[str, int]:
    """Return ``(asset key, band index from 1)`` of the band ``name`` in one item (rules: module doc).

    Raises
    ------
    InvalidArgumentError
        For a name the item does not have, one that several assets have
        with as many bands, or the key of an asset with several bands,
        listing what the item has.
    """
    assets = item.get("assets") or {}
    if name in assets:
        count = band_count(item, name)
        if count > 1:
            msg = (
                f"asset {name!r} of STAC item {_label(item)} holds {count} bands; ask for them by name or as "
                f"'{name}.1' ... '{name}.{count}' ({_listing(item)})"
            )
            raise InvalidArgumentError(msg)
        return name, 1
    head, dot, tail = name.rpartition(".")
    if dot and head in assets and tail.isdigit():
        index = int(tail)
        count = band_count(item, head)
        if not 1 <= index <= count and not (index >= 1 and count == 1 and not _declares_bands(item, head)):
            msg = f"band {name!r}: asset {head!r} of STAC item {_label(item)} declares {count} band(s); pass '{head}.1' ... '{head}.{count}'"
            raise InvalidArgumentError(msg)
        return head, index
    matches = {(key, index, is_name) for found, key, index, is_name in _band_names(item) if found == name}
    if not matches:
        raise InvalidArgumentError(
            f"unknown band {name!r} in STAC item {_label(item)}: it has {_listing(item)}; pass some of those"
        )
    places = sorted({(key, index) for key, index, _ in matches})
    if len(places) > 1:
        # The same asset twice (a name in one band, a common name in another): the band's own name wins.
        by_name = sorted({(key, index) for key, index, is_name in matches if is_name})
        if len({key for key, _ in places}) == 1 and len(by_name) == 1:
            return by_name[0]
        fewest = min(band_count(item, key) for key, _ in places)
        smallest = [(key, index) for key, index in places if band_count(item, key) == fewest]
        if len(smallest) == 1:
            return smallest[0]
        shown = ", ".join(f"{key}.{index}" for key, index in places)
        msg = (
            f"band {name!r} is ambiguous in STAC item {_label(item)}: it names {shown}; "
            f"pass one of those ('asset.N') or an asset key instead"
        )
        raise InvalidArgumentError(msg)
    return places[0]


def _declares_bands(item: Mapping[str, Any], asset_key: str) -> bool:
    asset = (item.get("assets") or {}).get(asset_key) or {}
    return isinstance(asset, Mapping) and any(entries for entries in _band_lists(item, asset))


def band_refs(items: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[BandRef]:
    """Resolve ``names`` in every item; each must be the same (asset, band) in all of them.

    Raises
    ------
    InvalidArgumentError
        For a name the first item cannot resolve (see :func:`resolve_band`).
    STACSearchError
        If some item lacks the asset, or resolves the name to another band.
    """
    refs: list[BandRef] = []
    for name in names:
        key, index = resolve_band(items[0], name)
        lacking = [_label(d) for d in items if key not in (d.get("assets") or {})]
        if lacking:
            shown = ", ".join(lacking[:_SHOWN]) + (
                f" and {len(lacking) - _SHOWN} more" if len(lacking) > _SHOWN else ""
            )
            raise STACSearchError(
                f"STAC items {shown} have no asset {key!r} (band {name!r}); drop them or the band"
            )
        for other in items[1:]:
            try:
                found = resolve_band(other, name)
            except InvalidArgumentError as err:
                raise STACSearchError(f"{err} (it is {key}.{index} in STAC item {_label(items[0])})") from err
            if found != (key, index):
                msg = (
                    f"band {name!r} is {key}.{index} in STAC item {_label(items[0])} but {found[0]}.{found[1]} in "
                    f"{_label(other)}: a cube needs one layout; stack them separately or fix the items' band lists"
                )
                raise STACSearchError(msg)
        refs.append(BandRef(name, key, index, band_count(items[0], key)))
    return refs


def default_refs(items: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[BandRef]:
    """Every band of the assets ``keys``: one-band assets by key, others' bands by name (else ``asset.N``).

    A band name that is also an asset key, or that two bands share, becomes ``asset.N``.
    """
    first = items[0]
    assets = first.get("assets") or {}
    planned: list[BandRef] = []
    for key in keys:
        count = band_count(first, key)
        if count == 1:
            planned.append(BandRef(key, key, 1, 1))
            continue
        names: dict[int, str] = {}
        for name, asset, index, _ in _band_names(first):
            if asset == key and index not in names:
                names[index] = name
        planned += [BandRef(names.get(i, f"{key}.{i}"), key, i, count) for i in range(1, count + 1)]
    taken = [ref.name for ref in planned]
    refs = [
        ref
        if ref.count == 1 or (taken.count(ref.name) == 1 and ref.name not in assets)
        else BandRef(ref.key, ref.asset, ref.index, ref.count)
        for ref in planned
    ]
    for ref in refs:  # a band named after the first item must be the same band in every item
        if ref.name not in (ref.key, ref.asset):
            for other in items[1:]:
                try:
                    found = resolve_band(other, ref.name)
                except InvalidArgumentError:
                    found = None
                if found != (ref.asset, ref.index):
                    shown = f"{found[0]}.{found[1]}" if found else "no band"
                    msg = (
                        f"band {ref.name!r} is {ref.key} in STAC item {_label(first)} but {shown} in "
                        f"{_label(other)}: a cube needs one layout; stack them separately or pass bands="
                    )
                    raise STACSearchError(msg)
    return refs


def _entry(entries: Any, index: int) -> Mapping[str, Any]:
    if (
        isinstance(entries, list)
        and 0 <= index - 1 < len(entries)
        and isinstance(entries[index - 1], Mapping)
    ):
        return entries[index - 1]  # type: ignore[no-any-return]
    return {}


def band_info(item: Mapping[str, Any], ref: BandRef) -> BandInfo:
    """Read one band's data type, nodata, scale and offset from an item (order: module doc).

    Raises
    ------
    STACSearchError
        For a ``data_type`` that is not a data type, a ``nodata`` that is
        not a number, or a scale/offset that is not a number, naming the
        item and asset.

    Examples
    --------
    >>> item = {"id": "a", "properties": {}, "assets": {"B04": {"data_type": "uint16", "nodata": 0,
    ...         "bands": [{"name": "B04", "raster:scale": 0.0001, "raster:offset": -0.1}]}}}
    >>> band_info(item, BandRef("B04", "B04", 1, 1))
    BandInfo(dtype='uint16', nodata=0, scale=0.0001, offset=-0.1)
    """
    asset = (item.get("assets") or {}).get(ref.asset) or {}
    common = _entry(asset.get("bands"), ref.index)
    raster = _entry(asset.get("raster:bands"), ref.index)
    properties = item.get("properties") or {}
    levels: list[tuple[Mapping[str, Any], str, str]] = [
        (common, "raster:scale", "raster:offset"),
        (raster, "scale", "offset"),
        (asset, "raster:scale", "raster:offset"),
        (properties, "raster:scale", "raster:offset"),
    ]
    dtype: str | None = None
    nodata: Any = None
    nodata_found = False
    scale: Any = None
    offset: Any = None
    for level, scale_key, offset_key in levels:
        if dtype is None and level.get("data_type") is not None:
            dtype = _dtype(item, ref, level["data_type"])
        # null is no value (the schemas allow none): stac-geoparquet and other columnar stores write null
        # for every field another item has, and a band's null hid the asset's nodata (zeros became data)
        if not nodata_found and level.get("nodata") is not None:
            nodata, nodata_found = _nodata(item, ref, level["nodata"]), True
        if scale is None and level.get(scale_key) is not None:
            scale = _number(item, ref, scale_key, level[scale_key])
        if offset is None and level.get(offset_key) is not None:
            offset = _number(item, ref, offset_key, level[offset_key])
    return BandInfo(dtype, nodata, scale, offset)


def _bad(item: Mapping[str, Any], ref: BandRef, what: str, value: Any, hint: str) -> STACSearchError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return STACSearchError(
        f"STAC item {_label(item)}, asset {ref.asset!r} (band {ref.name!r}): {what} {shown} is not valid; {hint}"
    )


def _dtype(item: Mapping[str, Any], ref: BandRef, value: Any) -> str | None:
    text = str(value)
    if text in _DATA_TYPES:
        return _DATA_TYPES[text]
    try:
        return np.dtype(text).name
    except TypeError as err:
        raise _bad(
            item, ref, "data_type", value, "fix the item (e.g. 'uint16', 'float32') or pass dtype="
        ) from err


def _nodata(item: Mapping[str, Any], ref: BandRef, value: Any) -> float | int | None:
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            raise _bad(
                item, ref, "nodata", value, "fix the item (a number, 'nan', 'inf' or '-inf') or pass nodata="
            )
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and value.strip().lower() in ("nan", "inf", "-inf", "+inf"):
        return float(value.strip().lower())
    raise _bad(item, ref, "nodata", value, "fix the item (a number, 'nan', 'inf' or '-inf') or pass nodata=")


def _number(item: Mapping[str, Any], ref: BandRef, what: str, value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise _bad(item, ref, what, value, "fix the item (a finite number)")
