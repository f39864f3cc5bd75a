"""Which pixel grid a datacube of STAC items gets: pure decisions on item metadata, no I/O.

Each asset's native grid comes from the projection extension, v2
(``proj:code``) or v1 (``proj:epsg``, ``proj:wkt2``, ``proj:projjson``),
with ``proj:transform`` and ``proj:shape`` (or ``proj:bbox``); asset-level
fields override item-level ones. :func:`choose_grid` then applies these
rules:

1. ``geobox=`` is used as given.
2. Without ``crs=`` the items must share one CRS, else
   :class:`~terrapipe.core.errors.GridMismatchError` lists the CRSs and
   suggests ``crs=``; items without projection info raise
   :class:`~terrapipe.core.errors.STACSearchError` naming them.
3. With no ``resolution=`` (or the native one) and no CRS change, the cube
   is on the items' own pixel grid: the finest requested band's grid,
   extended to the union of the items' footprints *in pixels*
   (``proj:transform``/``proj:shape``, never lat/lon bounds), or to ``bbox``
   snapped outwards to whole native pixels. That band is then read without
   resampling. Items whose grids are offset by a fraction of a pixel (the
   Planetary Computer's io-lulc tiles) go on the pixel phase most of them
   share, as odc-stac does; the others are resampled onto it.
4. Otherwise (another CRS or resolution) odc-stac computes the grid from
   ``crs``, ``resolution`` and ``bbox`` (or the items' footprints); a
   missing ``resolution`` is the native one when the units agree.

Examples
--------
>>> item = {"id": "a", "properties": {"proj:code": "EPSG:32631", "proj:shape": [2, 3],
...         "proj:transform": [10, 0, 600000, 0, -10, 5000020]}, "assets": {"red": {"href": "a.tif"}}}
>>> asset_geobox(item, "red")
GeoBox((2, 3), Affine(10.0, 0.0, 600000.0,
       0.0, -10.0, 5000020.0), CRS('EPSG:32631'))
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from affine import Affine
from odc.geo import geom
from odc.geo.crs import CRS
from odc.geo.geobox import GeoBox

from terrapipe.core.crs import same_crs
from terrapipe.core.errors import GridMismatchError, InvalidArgumentError, STACSearchError

__all__ = ["GridChoice", "asset_crs", "asset_geobox", "choose_grid", "item_dict", "lonlat_box"]

_SHOWN = 3
_PHASE_TOLERANCE = 1e-6


def item_dict(item: Any) -> Mapping[str, Any]:
    """Return the item as a dict (``pystac.Item`` or already a dict), without copying a dict."""
    if isinstance(item, Mapping):
        return item
    return item.to_dict(include_self_link=False, transform_hrefs=False)  # type: ignore[no-any-return]


def _field(item: Mapping[str, Any], band: str, key: str) -> Any:
    asset = (item.get("assets") or {}).get(band) or {}
    if asset.get(key) is not None:  # null is no value: stac-geoparquet writes it for fields other items have
        return asset[key]
    return (item.get("properties") or {}).get(key)


def asset_crs(item: Mapping[str, Any], band: str) -> CRS | None:
    """CRS of one asset from ``proj:code`` / ``proj:epsg`` / ``proj:wkt2`` / ``proj:projjson``, or ``None``.

    Raises
    ------
    STACSearchError
        For a field that does not describe a CRS, naming the item and asset.

    Examples
    --------
    >>> asset_crs({"properties": {"proj:epsg": 4326}, "assets": {"dem": {}}}, "dem")
    CRS('EPSG:4326')
    >>> asset_crs({"id": "a", "properties": {"proj:epsg": "x"}, "assets": {"dem": {}}}, "dem")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.STACSearchError: STAC item 'a', asset 'dem': proj:epsg 'x' is not valid (ValueError: ...
    >>> wkt2 = CRS("EPSG:4326").to_wkt()
    >>> asset_crs({"id": "b", "properties": {"proj:code": "EPSG:32631"}, "assets": {"dem": {"proj:wkt2": wkt2}}}, "dem").epsg
    4326
    """
    asset = (item.get("assets") or {}).get(band) or {}
    for scope in (asset, item.get("properties") or {}):  # the asset's own fields win over the item's
        if not isinstance(scope, Mapping):
            continue
        for key, make in _CRS_FIELDS:
            value = scope.get(key)
            if value:
                try:
                    return _parsed_crs(key, value, make)
                except (
                    Exception
                ) as err:  # pyproj raises CRSError (a RuntimeError), ValueError, TypeError, ...
                    raise _bad_field(item, band, key, value, err) from err
    return None


#: CRSs parsed from projection fields, by (field, value): thousands of items share a few CRSs, and
#: parsing and checking one costs ~0.1 ms (a bounded map: cleared when it grows past this many).
_PARSED_MAX = 512
_PARSED: dict[tuple[str, str], CRS] = {}


def _parsed_crs(key: str, value: Any, make: Callable[[Any], CRS]) -> CRS:
    """Return ``make(value)`` checked by :func:`_on_earth`, parsed once per distinct field value."""
    text = json.dumps(value, sort_keys=True) if isinstance(value, Mapping | list) else repr(value)
    found = _PARSED.get((key, text))
    if found is None:
        found = _on_earth(make(value))
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[(key, text)] = found
    return found


_EARTH_CHECKED: dict[str, bool] = {}


def _on_earth(crs: CRS) -> CRS:
    """Return ``crs`` if it converts to longitude/latitude (what footprints and ``bbox=`` need), else raise.

    A CRS of another celestial body, or an engineering CRS, parses but cannot be placed on the Earth.
    """
    text = crs.to_wkt()
    if text not in _EARTH_CHECKED:
        crs.transformer_to_crs(CRS("EPSG:4326"))  # raises pyproj's ProjError
        _EARTH_CHECKED[text] = True
    return crs


_CRS_FIELDS: tuple[tuple[str, Callable[[Any], CRS]], ...] = (
    ("proj:code", lambda v: CRS(str(v))),
    ("proj:epsg", lambda v: CRS(f"EPSG:{int(v)}")),
    ("proj:wkt2", lambda v: CRS(str(v))),
    ("proj:projjson", lambda v: CRS(json.dumps(v))),
)


def _bad_field(
    item: Mapping[str, Any], band: str, key: str, value: Any, err: BaseException
) -> STACSearchError:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return STACSearchError(
        f"STAC item {_label(item)}, asset {band!r}: {key} {shown} is not valid ({type(err).__name__}: {_brief(err)}); "
        "fix the item's projection fields (or remove them and pass crs= and resolution=)"
    )


def _brief(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 120 else text[:117] + "..."


def asset_geobox(item: Mapping[str, Any], band: str) -> GeoBox | None:
    """Native grid of one asset from the projection extension, or ``None`` when it is not described.

    Raises
    ------
    STACSearchError
        For projection fields that are present but invalid (non-numbers, a
        shape that is not two positive ints), naming the item and asset.
    """
    crs = asset_crs(item, band)
    shape = _field(item, band, "proj:shape")
    if crs is None or not shape or len(shape) != 2:
        return None
    try:
        if not all(
            isinstance(n, int | float) and not isinstance(n, bool) and float(n).is_integer() for n in shape
        ):
            raise ValueError("the sizes must be whole numbers")  # int(16.7) would cut a row silently
        height, width = int(shape[0]), int(shape[1])
        if height < 1 or width < 1:
            raise ValueError("the sizes must be >= 1")
    except (ValueError, TypeError) as err:
        raise _bad_field(item, band, "proj:shape", shape, err) from err
    transform = _field(item, band, "proj:transform")
    if transform and len(transform) in (6, 9):
        try:
            affine = Affine(*[float(v) for v in transform[:6]])
        except (ValueError, TypeError) as err:
            raise _bad_field(item, band, "proj:transform", transform, err) from err
    else:
        bbox = _field(item, band, "proj:bbox")
        if not bbox or len(bbox) not in (4, 6):
            return None
        try:
            values = [float(v) for v in bbox]
        except (ValueError, TypeError) as err:
            raise _bad_field(item, band, "proj:bbox", bbox, err) from err
        west, south, east, north = (
            (values[0], values[1], values[2], values[3])
            if len(values) == 4
            else (values[0], values[1], values[3], values[4])
        )
        affine = Affine((east - west) / width, 0.0, west, 0.0, -(north - south) / height, north)
    if not all(math.isfinite(v) for v in tuple(affine)[:6]):  # NaN/Infinity: JSON readers take them
        field = "proj:transform" if transform and len(transform) in (6, 9) else "proj:bbox"
        raise _bad_field(item, band, field, list(affine)[:6], ValueError("a value is not finite"))
    if affine.a == 0 or affine.e == 0:
        raise _bad_field(item, band, "proj:transform", list(affine)[:6], ValueError("a pixel size is 0"))
    return GeoBox((height, width), affine, crs)


@dataclass(frozen=True)
class GridChoice:
    """The output grid of a cube.

    Attributes
    ----------
    geobox
        The grid to load on (native or given); ``None`` leaves it to odc-stac
        with :attr:`crs`, :attr:`resolution` and :attr:`bbox`.
    crs, resolution, bbox
        odc-stac's parameters when :attr:`geobox` is ``None``.
    native
        Whether :attr:`geobox` is on the items' own pixel grid.
    reference
        The native grid of the first item's finest band (where COG tiles
        start), when :attr:`native`.
    """

    geobox: GeoBox | None
    crs: CRS | None = None
    resolution: float | None = None
    bbox: tuple[float, float, float, float] | None = None
    native: bool = False
    reference: GeoBox | None = None


def _label(item: Mapping[str, Any]) -> str:
    return repr(str(item.get("id")))


def _few(labels: Sequence[str]) -> str:
    shown = ", ".join(labels[:_SHOWN])
    return shown + (f" and {len(labels) - _SHOWN} more" if len(labels) > _SHOWN else "")


def _pixel_size(box: GeoBox) -> float:
    return float(max(abs(box.transform.a), abs(box.transform.e)))


def choose_grid(
    items: Sequence[Mapping[str, Any]],
    bands: Sequence[str],
    *,
    crs: Any = None,
    resolution: float | None = None,
    bbox: Sequence[float] | None = None,
    geobox: GeoBox | None = None,
) -> GridChoice:
    """Decide the output grid of a cube of ``items`` (see the module doc for the rules).

    Parameters
    ----------
    items
        Item dicts.
    bands
        Asset keys that will be loaded.
    crs
        Output CRS (anything odc-geo's ``CRS`` takes), or ``None``.
    resolution
        Output pixel size in CRS units, or ``None``.
    bbox
        ``(west, south, east, north)`` in degrees, or ``None``.
    geobox
        An explicit output grid.

    Returns
    -------
    GridChoice
        The grid.

    Raises
    ------
    GridMismatchError
        Items in several CRSs without ``crs=``; native grids that disagree
        (resolutions, rotation) without ``resolution=``.
    STACSearchError
        Items without projection info when the grid must come from them.
    InvalidArgumentError
        For a bad ``resolution``/``bbox``, ``bbox`` with ``geobox``, or a CRS
        change whose resolution cannot be inferred.

    Examples
    --------
    >>> a = {"id": "a", "properties": {"proj:code": "EPSG:32631", "proj:shape": [4, 4],
    ...      "proj:transform": [10, 0, 600000, 0, -10, 5000040]}, "assets": {"red": {}}}
    >>> b = {"id": "b", "properties": {"proj:code": "EPSG:32631", "proj:shape": [4, 4],
    ...      "proj:transform": [10, 0, 600020, 0, -10, 5000040]}, "assets": {"red": {}}}
    >>> choice = choose_grid([a, b], ["red"])
    >>> choice.native, choice.geobox.shape, choice.geobox.transform.c
    (True, Shape2d(x=6, y=4), 600000.0)
    """
    if resolution is not None and (
        isinstance(resolution, bool) or not isinstance(resolution, int | float) or not resolution > 0
    ):
        raise InvalidArgumentError(
            f"resolution must be a positive number (pixel size in CRS units), got {resolution!r}"
        )
    box: tuple[float, float, float, float] | None = None
    if bbox is not None:
        box = _check_bbox(bbox)
    if geobox is not None:
        if box is not None or crs is not None or resolution is not None:
            raise InvalidArgumentError(
                "geobox= fixes the grid; do not pass bbox=, crs= or resolution= with it"
            )
        if not isinstance(geobox, GeoBox):
            raise InvalidArgumentError(
                f"geobox must be an odc.geo.geobox.GeoBox, got {type(geobox).__name__}"
            )
        return GridChoice(geobox=geobox)
    target = _target_crs(crs)

    grids: dict[str, list[GeoBox]] = {}
    missing: list[str] = []
    for item in items:
        for band in bands:
            found = asset_geobox(item, band)
            if found is None:
                missing.append(f"{_label(item)} (asset {band!r})")
            else:
                grids.setdefault(band, []).append(found)
    crss: dict[str, list[str]] = {}  # one key per CRS, spellings of one CRS (4326, OGC:CRS84) under one key
    seen: dict[str, CRS] = {}
    for item in items:
        for band in bands:
            found_crs = asset_crs(item, band)
            if found_crs is not None:
                name = next((k for k, c in seen.items() if same_crs(c, found_crs)), str(found_crs))
                seen.setdefault(name, found_crs)
                crss.setdefault(name, [])
                if _label(item) not in crss[name]:
                    crss[name].append(_label(item))

    if target is None:
        if missing:
            msg = (
                f"STAC items without projection info: {_few(missing)}; add proj:code (or proj:epsg), "
                "proj:transform and proj:shape to them (e.g. with rio-stac), or pass crs= and resolution="
            )
            raise STACSearchError(msg)
        if len(crss) > 1:
            listing = "; ".join(f"{name} ({len(ids)} items: {_few(ids)})" for name, ids in crss.items())
            first = next(iter(crss))
            msg = (
                f"the items are in {len(crss)} CRSs: {listing}; a cube needs one grid: pass crs= "
                f"(e.g. crs={first!r}) to reproject them, or stack the items of each CRS separately"
            )
            raise GridMismatchError(msg)
    native_crs = seen[next(iter(crss))] if len(crss) == 1 else None
    on_native = target is None or (native_crs is not None and same_crs(target, native_crs))

    if on_native and not missing and grids:
        reference_band = min(bands, key=lambda b: _pixel_size(grids[b][0]))
        reference = grids[reference_band][0]
        if resolution is None:
            return _native_choice(grids[reference_band], items, reference_band, box)
        if math.isclose(resolution, _pixel_size(reference)):
            try:
                return _native_choice(grids[reference_band], items, reference_band, box)
            except GridMismatchError:  # grids the native path cannot join: resample at the resolution asked
                pass

    if target is None:
        target = native_crs
    if resolution is None:
        resolution = _infer_resolution(grids, target)
    return GridChoice(geobox=None, crs=target, resolution=float(resolution), bbox=box)


def _target_crs(crs: Any) -> CRS | None:
    if crs is None:
        return None
    try:
        return CRS(crs)
    except Exception as err:  # pyproj's CRSError, odc-geo's ValueError, ...
        shown = repr(crs) if len(repr(crs)) <= 80 else repr(crs)[:77] + "..."
        raise InvalidArgumentError(
            f"crs= {shown} is not a CRS ({type(err).__name__}: {_brief(err)}); pass e.g. 'EPSG:32631'"
        ) from err


#: A pixel phase shared by more than this share of the items anchors a grid of items offset by fractions of a pixel.
_ANCHOR_SHARE = 0.1
_PHASE_DIGITS = 6


def _phase(box: GeoBox) -> tuple[float, float]:
    """Return where a grid's pixel edges fall, as fractions of a pixel: ``(x0 / xres) % 1, (y0 / yres) % 1``."""
    t = box.transform
    return (round((t.c / t.a) % 1.0, _PHASE_DIGITS) % 1.0, round((t.f / t.e) % 1.0, _PHASE_DIGITS) % 1.0)


def _lattice_anchor(box: GeoBox) -> Any:
    """Return the anchor that makes odc-geo's ``GeoBox.from_bbox``/``from_geopolygon`` snap onto ``box``'s pixel lattice.

    Not ``box.anchor``: odc-geo 0.5.3 reports the x anchor as ``(-x0 / xres) % 1``
    but snaps x edges to ``anchor * xres`` (its y axis agrees), so a grid made
    with ``anchor=box.anchor`` is on another lattice unless the phase is 0 or
    half a pixel: a lattice at 186554.85 m comes back at ...5.15 m, and every
    pixel of the cube is resampled. That is what odc-stac does (a documented
    deviation); this anchor keeps the lattice.
    """
    from odc.geo import xy_

    t = box.transform
    return xy_((t.c / abs(t.a)) % 1.0, (t.f / abs(t.e)) % 1.0)


def _snapped_box(area: Any, like: GeoBox) -> GeoBox:
    """Return the grid on ``like``'s pixel lattice (CRS, pixel size, edges) covering ``area``, snapped outwards.

    ``area`` is a bounding box in ``like``'s CRS, or a geometry (e.g. a
    lon/lat box, projected as odc-stac projects it).
    """
    anchor = _lattice_anchor(like)
    if isinstance(area, geom.Geometry):
        return GeoBox.from_geopolygon(area, resolution=like.resolution, crs=like.crs, anchor=anchor)
    return GeoBox.from_bbox(area, like.crs, resolution=like.resolution, anchor=anchor)


def _snapped_choice(boxes: Sequence[GeoBox], bbox: tuple[float, float, float, float] | None) -> GridChoice:
    """Return the grid of items whose native grids are offset by fractions of a pixel (as odc-stac decides it).

    The pixel phase most of the items share (more than :data:`_ANCHOR_SHARE`
    of them, the first item's on a tie; else pixel edges on multiples of the
    resolution) at the native resolution, over the union of the items'
    extents (or ``bbox``). Items on another phase are resampled onto it.
    """
    from collections import Counter

    (best, count), *_ = Counter(_phase(box) for box in boxes).most_common(1)
    on_phase = (
        next((box for box in boxes if _phase(box) == best), None)
        if count / len(boxes) > _ANCHOR_SHARE
        else None
    )
    t = boxes[0].transform
    lattice = on_phase or GeoBox((1, 1), Affine(t.a, 0.0, 0.0, 0.0, t.e, 0.0), boxes[0].crs)
    area = geom.bbox_union(box.extent.boundingbox for box in boxes) if bbox is None else lonlat_box(bbox)
    return GridChoice(geobox=_snapped_box(area, lattice), native=on_phase is not None, reference=on_phase)


#: Points per edge of a ``bbox=`` outline before it is projected.
_BOX_POINTS = 256


def lonlat_box(bbox: Sequence[float]) -> geom.Geometry:
    """Return ``bbox`` (degrees) as a lon/lat polygon with :data:`_BOX_POINTS` points per edge.

    Projecting only the four corners (what odc-geo does with a box, and
    odc-stac with ``bbox=``) draws straight lines between them on the
    output grid: around a pole the box collapses (``[-180, -90, 180, -60]``
    in EPSG:3031 became a strip one pixel wide, not Antarctica), and at high
    latitudes a parallel's bulge is cut off (rows of the box missing). The
    densified outline projects to the area the box covers.

    Examples
    --------
    >>> from odc.geo.geobox import GeoBox
    >>> GeoBox.from_geopolygon(lonlat_box([-180, -90, 180, -60]), resolution=10000, crs="EPSG:3031").shape
    Shape2d(x=668, y=668)
    """
    west, south, east, north = (float(v) for v in bbox)
    step = max(east - west, north - south) / _BOX_POINTS
    return geom.box(west, south, east, north, "EPSG:4326").segmented(step)


def _check_bbox(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in bbox)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"bbox must be 4 numbers (west, south, east, north) in degrees, got {bbox!r}"
        ) from None
    if len(values) != 4 or not (values[0] < values[2] and values[1] < values[3]):
        raise InvalidArgumentError(
            f"bbox must be (west, south, east, north) in degrees with west < east and south < north, got {bbox!r}"
        )
    return values  # type: ignore[return-value]


def _infer_resolution(grids: Mapping[str, list[GeoBox]], target: CRS | None) -> float:
    sizes = {_pixel_size(g) for boxes in grids.values() for g in boxes}
    units = {tuple(g.crs.units) for boxes in grids.values() for g in boxes if g.crs is not None}
    if target is not None and sizes and units == {tuple(target.units)}:
        return min(sizes)
    shown = target if target is not None else "the items' CRS"
    msg = f"pass resolution= (pixel size in the units of {shown}): it cannot be taken from the items' native grids"
    raise InvalidArgumentError(msg)


def _native_choice(
    boxes: Sequence[GeoBox],
    items: Sequence[Mapping[str, Any]],
    band: str,
    bbox: tuple[float, float, float, float] | None,
) -> GridChoice:
    """Return the union of the items' grids of ``band`` on the first one's pixel grid (or ``bbox`` snapped onto it)."""
    reference = boxes[0]
    ref = reference.transform
    labels = [_label(item) for item in items]
    if ref.b != 0 or ref.d != 0:
        raise GridMismatchError(
            f"item {labels[0]} has a rotated grid for asset {band!r}; pass crs= and resolution= to resample it"
        )
    rows: list[int] = []
    cols: list[int] = []
    offset: str | None = None
    for box, label in zip(boxes, labels, strict=True):
        t = box.transform
        if not (math.isclose(t.a, ref.a) and math.isclose(t.e, ref.e)) or t.b != 0 or t.d != 0:
            msg = (
                f"the items' native grids for asset {band!r} differ: {labels[0]} has pixels "
                f"{ref.a:g} x {ref.e:g}, {label} has {t.a:g} x {t.e:g}; pass resolution= to resample them onto one grid"
            )
            raise GridMismatchError(msg)
        col = (t.c - ref.c) / ref.a
        row = (t.f - ref.f) / ref.e
        if abs(col - round(col)) > _PHASE_TOLERANCE or abs(row - round(row)) > _PHASE_TOLERANCE:
            offset = label
        height, width = box.shape
        rows += [round(row), round(row) + height]
        cols += [round(col), round(col) + width]
    if offset is not None:
        return _snapped_choice(boxes, bbox)
    if bbox is None:
        row0, row1, col0, col1 = min(rows), max(rows), min(cols), max(cols)
        geobox = GeoBox((row1 - row0, col1 - col0), ref @ Affine.translation(col0, row0), reference.crs)
    else:
        # bbox snapped outwards onto the native pixel lattice (the grid odc-stac makes for bbox=, crs= and
        # the native resolution, where odc-geo's anchor round trip is right: see _snapped_box)
        geobox = _snapped_box(lonlat_box(bbox), reference)
    return GridChoice(geobox=geobox, native=True, reference=reference)
