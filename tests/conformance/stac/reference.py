"""Build both cubes of a corpus group, lazily and offline: terrapipe's and odc-stac's.

Nothing here reads a pixel or touches the network: :func:`no_network` makes
any attempt to open a remote href (or to connect a socket off this machine)
fail the test at once, with :class:`NetworkTouchedError`.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tests.conformance.stac import corpus
from tests.conformance.stac.corpus import Group


class NetworkTouchedError(AssertionError):
    """A lazy load tried to open a remote file or connect off this machine."""


def _is_remote(path: Any) -> bool:
    text = str(path)
    return "://" in text or text.startswith("/vsi")


def no_network(monkeypatch: Any) -> None:
    """Make opening a remote raster or connecting a non-loopback socket raise :class:`NetworkTouchedError`."""
    import rasterio

    real_open = rasterio.open

    def guarded_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if _is_remote(path):
            raise NetworkTouchedError(
                f"a lazy load opened {path!r}: it must build the cube from the STAC metadata"
            )
        return real_open(path, *args, **kwargs)

    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else str(address)
        if host not in ("127.0.0.1", "::1", "localhost") and self.family != socket.AF_UNIX:
            raise NetworkTouchedError(f"a lazy load connected to {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(rasterio, "open", guarded_open)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@dataclass
class Built:
    """Both cubes of one group (or the errors raised instead)."""

    tp: Any
    ref: Any
    tp_error: BaseException | None
    ref_error: BaseException | None
    bbox: tuple[float, float, float, float]


def default_bbox(group: Group) -> tuple[float, float, float, float]:
    """A small lon/lat box at the centre of the first item (or the group's own box).

    The centre comes from the native grid where there is one: the lon/lat
    ``bbox`` of a tile across the antimeridian spans -180 to 180, whose middle
    is on the other side of the Earth.
    """
    if group.bbox is not None:
        return group.bbox
    record = group.records()[0]
    if group.native():
        centre = spec_geobox_of(group, [record]).extent.centroid.to_crs("EPSG:4326")
        lon, lat = centre.coords[0]
        return (lon - 0.02, lat - 0.02, lon + 0.02, lat + 0.02)
    box = record["bbox"]
    half = len(box) // 2
    west, south, east, north = box[0], box[1], box[half], box[half + 1]
    lon, lat = (west + east) / 2, (south + north) / 2
    dx, dy = min(0.02, (east - west) / 4), min(0.02, (north - south) / 4)
    return (lon - dx, lat - dy, lon + dx, lat + dy)


def terrapipe_cube(group: Group, **extra: Any) -> Any:
    """terrapipe's lazy cube of the group."""
    from terrapipe.stac.stack import stack_items

    return stack_items(group.items(), bands=list(group.bands), chunks={}, **dict(group.options), **extra)


def odc_cube(group: Group, **extra: Any) -> Any:
    """odc-stac's lazy dataset of the group (same bands and options).

    Without ``crs``/``resolution`` odc-stac picks the items' own CRS, finest
    resolution and pixel phase, and the extent of their footprints.
    """
    import odc.stac

    options = dict(group.options)
    return odc.stac.load(
        group.items(), bands=list(group.bands), chunks={}, groupby="time", **options, **extra
    )


def spec_crs(group: Group) -> Any:
    """The CRS of the group's first band, from the projection fields (v2 first, then v1)."""
    import json

    from odc.geo.crs import CRS

    record = group.records()[0]
    key = corpus.resolve_band(record, group.bands[0])[0]
    for name in ("proj:code", "proj:epsg", "proj:wkt2", "proj:projjson"):
        value = corpus.proj_field(record, key, name)
        if value:
            if name == "proj:epsg":
                return CRS(f"EPSG:{int(value)}")
            return CRS(json.dumps(value) if name == "proj:projjson" else str(value))
    return CRS(group.options["crs"])


def finest_band(group: Group) -> str:
    """The requested band with the smallest native pixels (the native grid's reference)."""
    record = group.records()[0]

    def size(band: str) -> float:
        grid = corpus.proj_grid(record, corpus.resolve_band(record, band)[0])
        assert grid is not None, f"item {record['id']!r} has no native grid for {band!r}"
        return abs(grid[0][0])

    return min(group.bands, key=size)


def spec_geobox(group: Group) -> Any:
    """The native grid of the group by the projection extension (union of ``proj:transform``/``proj:shape``)."""
    return spec_geobox_of(group, group.records())


def spec_geobox_of(group: Group, records: list[dict[str, Any]]) -> Any:
    """The union of the native grids of ``records`` for the group's finest band."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    transform, shape = corpus.native_union(records, corpus.resolve_band(records[0], finest_band(group))[0])
    return GeoBox(shape, Affine(*transform), spec_crs(group))


def spec_bbox_geobox(group: Group, bbox: tuple[float, float, float, float]) -> Any:
    """The grid of ``bbox`` on the native pixels: the box in the native CRS, snapped outwards to whole pixels.

    Written out here rather than taken from odc-geo, whose ``GeoBox.anchor``
    mirrors the x phase (see ``ODC_X_ANCHOR_OFF`` in ``test_differential.py``):
    with it the grid lands off the native lattice wherever the x phase is
    neither 0 nor half a pixel.
    """
    import math

    from affine import Affine
    from odc.geo import geom
    from odc.geo.geobox import GeoBox

    native = spec_geobox(group)
    t = native.transform
    box = geom.box(*bbox, "EPSG:4326").to_crs(native.crs).boundingbox
    eps = 1e-6
    col0 = math.floor((box.left - t.c) / t.a + eps)
    col1 = math.ceil((box.right - t.c) / t.a - eps)
    row0 = math.floor((box.top - t.f) / t.e + eps)
    row1 = math.ceil((box.bottom - t.f) / t.e - eps)
    return GeoBox((row1 - row0, col1 - col0), t * Affine.translation(col0, row0), native.crs)


def spec_sources(group: Group, band: str) -> set[tuple[str, int]]:
    """``(absolute href, 1-based band index)`` a band must be read from, by the item metadata."""
    out = set()
    for item, record in zip(group.items(), group.records(), strict=True):
        key, index = corpus.resolve_band(record, band)
        out.add((str(item.assets[key].get_absolute_href()), index + 1))
    return out


def build(group: Group, cache: dict[tuple[str, str], Built], kind: str = "full") -> Built:
    """Return (and cache) both cubes of ``group``: ``kind`` "full" (all the items cover) or "bbox"."""
    key = (group.id, kind)
    if key not in cache:
        extra: dict[str, Any] = {}
        bbox = default_bbox(group)
        if kind == "bbox":
            extra["bbox"] = bbox
        ref, ref_error = None, None
        if not group.odc.startswith("broken"):
            ref = odc_cube(group, **extra)
        try:
            tp, error = terrapipe_cube(group, **extra), None
        except Exception as err:  # kept, so each check reports it
            tp, error = None, err
        cache[key] = Built(tp=tp, ref=ref, tp_error=error, ref_error=ref_error, bbox=bbox)
    built = cache[key]
    if built.tp_error is not None:
        raise AssertionError(
            f"terrapipe refused group {group.id!r}: {type(built.tp_error).__name__}: {built.tp_error}"
        ) from built.tp_error
    return built


def raster_sources(array: Any) -> set[tuple[str, int]]:
    """``(uri, band index)`` of every raster a lazy (dask) array will read, from its task graph."""
    from odc.loader.types import RasterSource

    data = array.data
    graph = dict(data.__dask_graph__())
    needed: set[Any] = set()
    todo = list(_flatten(data.__dask_keys__()))
    while todo:  # only the tasks the array depends on (dask's own cull keeps unrelated layers here)
        key = todo.pop()
        if key in needed or key not in graph:
            continue
        needed.add(key)
        todo.extend(_dependencies(graph[key], graph))
    native = _native_sources(array)
    if native is not None:
        return native
    found: set[tuple[str, int]] = set()

    def walk(value: Any, depth: int = 0) -> None:
        if depth > 8:
            return
        if isinstance(value, RasterSource):
            found.add((str(value.uri), int(value.band)))
        elif isinstance(value, list | tuple | set):
            for v in value:
                walk(v, depth + 1)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v, depth + 1)
        elif not isinstance(value, str | bytes | np.ndarray):
            for attr in ("args", "kwargs", "value"):
                inner = getattr(value, attr, None)
                if inner is not None and not callable(inner):
                    walk(inner, depth + 1)

    for key in needed:
        walk(graph[key])
    return found


def _native_sources(array: Any) -> set[tuple[str, int]] | None:
    """``(href, band)`` terrapipe's native reader reads for ``array`` (a band selection of a native cube).

    The cube's dask graph holds one :class:`~terrapipe.stac.native_read.NativeArray`; every time slot
    of the selected bands is read, each file where its footprint meets the cube.
    """
    from terrapipe.stac.native_read import NativeArray, chunk_sources

    found = [
        getattr(value, "value", value)
        for value in dict(array.data.__dask_graph__()).values()
        if isinstance(getattr(value, "value", value), NativeArray)
    ]
    if not found:
        return None
    plan = found[0].plan
    height, width = plan.geobox.shape
    wanted = [plan.bands.index(str(name)) for name in np.atleast_1d(array["band"].values)]
    return {
        (asset.source.path, asset.band)
        for slot in plan.slots
        for b in wanted
        for asset in chunk_sources(slot[b], (0, height), (0, width))
    }


def _dependencies(value: Any, graph: dict[Any, Any], depth: int = 0) -> list[Any]:
    """Keys a graph value refers to: a task's own list, else keys found inside (old-style tuple tasks)."""
    found = getattr(value, "dependencies", None)
    if found is not None:
        return list(found)
    out: list[Any] = []
    try:
        if value in graph:
            return [value]
    except TypeError:  # unhashable
        pass
    if isinstance(value, list | tuple) and depth < 4:
        for v in value:
            out += _dependencies(v, graph, depth + 1)
    return out


def _flatten(keys: Any) -> Any:
    if isinstance(keys, list):
        for k in keys:
            yield from _flatten(k)
    else:
        yield keys


def same_nodata(a: Any, b: Any) -> bool:
    """Nodata equality where NaN equals NaN."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and np.isnan(a):
        return isinstance(b, float) and bool(np.isnan(b))
    return bool(float(a) == float(b))


Check = Callable[[Built, Group], None]
