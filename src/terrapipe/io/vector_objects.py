"""GDAL vector files (FlatGeobuf, GeoPackage, GeoJSON, zipped Shapefiles...) from buckets, per call.

pyogrio and rasterio bundle two separate GDALs: a ``rasterio.Env`` (what
:meth:`Storage.rasterio_env <terrapipe.io.storage.Storage.rasterio_env>`
sets up for rasters) does not configure pyogrio's, and pyogrio's only way to
give GDAL credentials and endpoints is ``pyogrio.set_gdal_config_options``,
which is process-wide (every thread, every later read: a second storage's
credentials would replace the first's mid-read). Nor do GDAL's open options
carry ``/vsis3/``, ``/vsiaz/`` or ``/vsigs/`` settings. So GDAL never sees a
bucket here: :func:`fetch_vector` brings the bytes through the byte layer
(:mod:`terrapipe.io.object_store`: obstore, configured by one
:class:`~terrapipe.io.storage.Storage`, per call) into a private temporary
folder, and GDAL reads that local copy:

* a FlatGeobuf read with a ``bbox`` (or a ``mask``, by its bounds) is fetched
  by ranged reads: its size (learnt without a HEAD, which a presigned URL
  refuses: the byte layer's first GET of the last 64 KiB; on Azure a HEAD),
  the first 8 KiB (the header), the nodes of its packed Hilbert R-tree that
  the box reaches (level by level, one concurrent batch of ranges per level)
  and the features those nodes point at. They are written as a smaller
  FlatGeobuf with the same header (its feature count changed) and a new
  index over the chosen features, which GDAL then filters exactly as it
  would the whole file. A small query on a large remote file reads a
  fraction of it, as GDAL's ``/vsicurl/`` would;
* everything else (GeoPackage, GeoJSON, a FlatGeobuf without index or read
  whole, a zipped Shapefile, a Shapefile with its ``.shx``/``.dbf``/``.prj``/
  ``.cpg`` side files) is fetched whole, capped by ``Storage(max_bytes=...)``.

Every failure is a :class:`~terrapipe.core.errors.ReadError` naming
``scheme://host/path`` (never a query string or credential), from the byte
layer's one rule; errors of the local read name the URL, not the
temporary copy. Works on ``s3://``, ``gs://``, ``az://``/``abfs://`` and
presigned or SAS ``https://`` URLs.

Examples
--------
>>> import geopandas as gpd, pathlib, tempfile
>>> from shapely.geometry import Point
>>> gdf = gpd.GeoDataFrame({"v": range(40)}, geometry=[Point(i, i) for i in range(40)], crs="EPSG:4326")
>>> gdf.to_file("forty.fgb")
>>> with tempfile.TemporaryDirectory() as folder:
...     local = fetch_vector(str(pathlib.Path("forty.fgb").resolve()), folder=folder, bbox=(3, 3, 5.5, 5.5))
...     sorted(gpd.read_file(local, bbox=(3, 3, 5.5, 5.5))["v"])
[3, 4, 5]
"""

from __future__ import annotations

import bisect
import io
import math
import os
import posixpath
import struct
import urllib.parse
from collections.abc import Sequence
from typing import Any

from terrapipe.core.errors import ReadError
from terrapipe.core.redact import public_url
from terrapipe.io import http_reads, object_store
from terrapipe.io.object_file import ObjectFile
from terrapipe.io.storage import Storage, cloud_of
from terrapipe.io.vector_integrity import flatgeobuf_layout

__all__ = ["fetch_vector", "flatgeobuf_subset", "level_bounds", "merged_spans"]

_NODE = 40  # minX, minY, maxX, maxY (f64) + offset (u64)
_MAGIC_AND_SIZE = 12
#: Bytes read first: the preamble and, mostly, the whole header.
_FIRST_BYTES = 8192
#: Side files of a Shapefile: the first two are required by GDAL, the others optional.
_SHAPEFILE_SIDES = (".shx", ".dbf", ".prj", ".cpg", ".qix")
#: Ranges closer than this are read as one (a request costs more than a few KiB more on any link).
_MERGE_GAP = 16 * 1024


def level_bounds(count: int, node_size: int) -> list[tuple[int, int]]:
    """Node ranges ``[start, end)`` of each level of a packed R-tree, leaves first (the spec's layout).

    Examples
    --------
    >>> level_bounds(20, 16)
    [(3, 23), (1, 3), (0, 1)]
    >>> level_bounds(1, 16)
    [(1, 2), (0, 1)]
    """
    sizes = [count]
    n = count
    while True:  # the spec's do-while: a single item still gets a root
        n = -(-n // node_size)
        sizes.append(n)
        if n == 1:
            break
    total = sum(sizes)
    out = []
    for size in sizes:
        total -= size
        out.append((total, total + size))
    return out


def _intersects(node: tuple[float, float, float, float, int], box: Sequence[float]) -> bool:
    return not (node[2] < box[0] or node[0] > box[2] or node[3] < box[1] or node[1] > box[3])


def _count_position(header: bytes) -> int | None:
    """Byte position (within the header) of the ``features_count`` field (8), or ``None`` if absent."""
    (root,) = struct.unpack_from("<I", header, 0)
    (soffset,) = struct.unpack_from("<i", header, root)
    vtable = root - soffset
    (vtable_size,) = struct.unpack_from("<H", header, vtable)
    slot = 4 + 2 * 8
    if slot + 2 > vtable_size:
        return None
    (offset,) = struct.unpack_from("<H", header, vtable + slot)
    return root + offset if offset else None


def _http_start(url: str, storage: Storage | None, shown: str, stop: int = _FIRST_BYTES) -> tuple[bytes, int]:
    """Return the first ``stop`` bytes of an HTTP(S) file and its size, from one ranged ``GET`` (no ``HEAD``).

    A server that ignores ``Range`` (a ``200`` with the whole file, which
    HTTP allows) is refused: every ranged read of a bbox query would then
    bring the whole file (GDAL refuses it too). Only the range asked for is
    read of such an answer.
    """
    reply = http_reads.read(url, storage, byte_range=http_reads.ByteRange(0, stop))
    reply.found(url, what="read vector file", sized=True)
    assert reply.total is not None  # (found(sized=True) refuses an answer of no size)
    if reply.status != 206 and reply.total > len(reply.body):
        raise ReadError(
            f"cannot read vector file {shown!r}: the server ignores range requests (it answered 200 with "
            f"all {reply.total} bytes), so a bbox or mask read would download the whole file each time; "
            "read it without bbox=/mask= (one whole download) or from a server that answers ranges"
        )
    return reply.body, reply.total


def merged_spans(spans: Sequence[tuple[int, int]], gap: int = _MERGE_GAP) -> list[tuple[int, int]]:
    """Return byte ranges ``[start, end)`` covering ``spans``, neighbours under ``gap`` bytes apart joined.

    Examples
    --------
    >>> merged_spans([(100, 200), (0, 10), (200, 300), (10_000, 10_010)], gap=50)
    [(0, 10), (100, 300), (10000, 10010)]
    """
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start - out[-1][1] < gap:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _get_spans(url: str, spans: Sequence[tuple[int, int]], storage: Storage | None) -> list[bytes]:
    """Return the bytes of each span, in order, fetched as :func:`merged_spans` (one concurrent batch)."""
    merged = merged_spans(spans)
    blocks = object_store.get_ranges(url, merged, storage)
    starts = [start for start, _ in merged]
    out = []
    for start, end in spans:
        k = bisect.bisect_right(starts, start) - 1
        base = merged[k][0]
        out.append(bytes(blocks[k][start - base : end - base]))
    return out


def flatgeobuf_subset(url: str, box: Sequence[float], storage: Storage | None = None) -> bytes | None:
    """Return a FlatGeobuf holding the features of ``url`` whose index boxes meet ``box``, by ranged reads.

    The header is the file's own (with the number of features chosen), the
    index is built anew over the chosen features (same node size), and the
    features are the file's bytes. ``None`` when the file has no index (or
    declares no feature count): it is then read whole.

    Raises
    ------
    ReadError
        No such object, access denied, a damaged header or index.
    """
    shown = public_url(url)
    if cloud_of(url) == "http":
        first, size = _http_start(url, storage, shown)
        (header_size,) = struct.unpack_from("<I", first, 8) if len(first) >= _MAGIC_AND_SIZE else (0,)
        if len(first) < min(size, _MAGIC_AND_SIZE + header_size):  # a long header: read it whole
            first = _http_start(url, storage, shown, stop=min(size, _MAGIC_AND_SIZE + header_size))[0]
        layout = flatgeobuf_layout(io.BytesIO(first), size, shown)
        if layout.index_node_size == 0 or layout.features_count == 0:
            return None
        head = first[: layout.index_start]
    else:
        handle = ObjectFile(url, storage)  # its size without a HEAD (a GET of the last bytes; Azure: a HEAD)
        try:
            first = handle.read_at(min(handle.size, _FIRST_BYTES), 0)  # the header, in one request mostly
            (header_size,) = struct.unpack_from("<I", first, 8) if len(first) >= _MAGIC_AND_SIZE else (0,)
            source: Any = io.BytesIO(first) if _MAGIC_AND_SIZE + header_size <= len(first) else handle
            layout = flatgeobuf_layout(source, handle.size, shown)
            if layout.index_node_size == 0 or layout.features_count == 0:
                return None
            head = (
                first[: layout.index_start] if source is not handle else handle.read_at(layout.index_start, 0)
            )
        finally:
            handle.close()
    count, node_size = layout.features_count, layout.index_node_size
    levels = level_bounds(count, node_size)
    num_nodes = levels[0][1]

    def read_nodes(spans: list[tuple[int, int]]) -> dict[int, tuple[float, float, float, float, int]]:
        ranges = [(layout.index_start + a * _NODE, layout.index_start + b * _NODE) for a, b in spans]
        found: dict[int, tuple[float, float, float, float, int]] = {}
        for (a, _), data in zip(spans, _get_spans(url, ranges, storage), strict=True):
            for i in range(len(data) // _NODE):
                found[a + i] = struct.unpack_from("<ddddQ", data, i * _NODE)
        return found

    # Search level by level from the root, one batch of ranged reads per level.
    frontier = [0]
    known: dict[int, tuple[float, float, float, float, int]] = {}
    picked: list[int] = []
    for level in range(len(levels) - 1, -1, -1):
        start_of_level, end_of_level = levels[level]
        spans = sorted({(n, min(n + node_size, end_of_level)) for n in frontier})
        if any(not start_of_level <= a < end_of_level for a, _ in spans):
            raise ReadError(
                f"cannot read vector file {shown!r}: truncated or damaged FlatGeobuf: its index points "
                "outside its level; re-create or re-download the file"
            )
        nodes = read_nodes(spans)
        chosen = sorted(i for i, node in nodes.items() if _intersects(node, box))
        if level == 0:
            known, picked = nodes, chosen
            break
        frontier = [int(nodes[i][4]) for i in chosen]
        if not frontier:
            break
    if not picked:
        # GDAL opens no FlatGeobuf with an index and no features: keep one feature whose index box
        # misses the query box (every one does here), which GDAL's own index search then leaves out.
        if not known:
            known = read_nodes([(levels[0][0], levels[0][0] + 1)])
        picked = [min(known)]
    # Each feature ends where the next leaf's feature starts (features are stored in leaf order).
    last = num_nodes - 1  # its feature ends the file: its size prefix tells a file cut short
    missing = sorted(
        {i + 1 for i in picked if i + 1 < num_nodes and i + 1 not in known} | {last} - set(known)
    )
    if missing:
        known.update(read_nodes([(i, i + 1) for i in missing]))
    features_end = layout.size - layout.features_start
    spans_bytes = []
    for i in picked:
        start = int(known[i][4])
        stop = int(known[i + 1][4]) if i + 1 < num_nodes else features_end
        if not 0 <= start < stop <= features_end:
            raise ReadError(
                f"cannot read vector file {shown!r}: truncated or damaged FlatGeobuf: its index points at "
                f"bytes {start}-{stop} of a features section of {features_end}; re-create or re-download the file"
            )
        spans_bytes.append((layout.features_start + start, layout.features_start + stop))
    tail = int(known[last][4])
    if last not in picked:
        if not 0 <= tail <= features_end - 4:
            raise ReadError(
                f"cannot read vector file {shown!r}: truncated or damaged FlatGeobuf: its last feature starts "
                f"at byte {tail} of a features section of {features_end}; re-create or re-download the file"
            )
        spans_bytes.append((layout.features_start + tail, layout.features_start + tail + 4))
    features = _get_spans(url, spans_bytes, storage) if spans_bytes else []
    if last not in picked:
        spans_bytes.pop()
        (size,) = struct.unpack_from("<I", features.pop())
        if tail + 4 + size != features_end:
            raise ReadError(
                f"cannot read vector file {shown!r}: truncated or damaged FlatGeobuf: its last feature ends at "
                f"byte {tail + 4 + size} of a features section of {features_end}; re-create or re-download the file"
            )
    for (start, stop), data in zip(spans_bytes, features, strict=True):
        # Each feature is a size-prefixed flatbuffer filling its span: a cut one (the file's last) is shorter.
        if len(data) < 4 or struct.unpack_from("<I", data)[0] + 4 != len(data):
            raise ReadError(
                f"cannot read vector file {shown!r}: truncated or damaged FlatGeobuf: the feature at bytes "
                f"{start}-{stop} does not fill its span; re-create or re-download the file"
            )
    return _assemble(head, layout.index_start, [known[i] for i in picked], features, node_size, shown)


def _assemble(
    head: bytes,
    header_end: int,
    items: list[tuple[float, float, float, float, int]],
    features: list[bytes],
    node_size: int,
    shown: str,
) -> bytes:
    """Write magic + header (count patched) + a packed R-tree over ``items`` + ``features``."""
    header = bytearray(head[_MAGIC_AND_SIZE:header_end])
    position = _count_position(bytes(header))
    if position is None or position + 8 > len(header):
        raise ReadError(f"cannot read vector file {shown!r}: its FlatGeobuf header has no feature count")
    struct.pack_into("<Q", header, position, len(items))
    out = io.BytesIO()
    out.write(head[:_MAGIC_AND_SIZE])
    out.write(bytes(header))
    if items:
        levels = level_bounds(len(items), node_size)
        nodes: list[tuple[float, float, float, float, int]] = [(0.0, 0.0, 0.0, 0.0, 0)] * levels[0][1]
        offset = 0
        for k, (item, data) in enumerate(zip(items, features, strict=True)):
            nodes[levels[0][0] + k] = (item[0], item[1], item[2], item[3], offset)
            offset += len(data)
        for level in range(len(levels) - 1):
            start, end = levels[level]
            pos = levels[level + 1][0]
            for first in range(start, end, node_size):
                group = nodes[first : min(first + node_size, end)]
                nodes[pos] = (
                    min(n[0] for n in group),
                    min(n[1] for n in group),
                    max(n[2] for n in group),
                    max(n[3] for n in group),
                    first,
                )
                pos += 1
        for node in nodes:
            out.write(struct.pack("<ddddQ", *node))
        for data in features:
            out.write(data)
    return out.getvalue()


def _local_name(url: str) -> str:
    name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path.rstrip("/")))
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).lstrip(".")
    return name or "vector"


def fetch_vector(
    url: str,
    storage: Storage | None = None,
    *,
    folder: str,
    bbox: Sequence[float] | None = None,
) -> str:
    """Copy the vector file at ``url`` into ``folder`` through the byte layer; return the local path.

    Parameters
    ----------
    url
        ``s3://``, ``gs://``, ``az://``/``abfs://``, ``http(s)://`` (presigned
        and SAS included) or a local path.
    storage
        Configuration (default ``Storage.from_env()``).
    folder
        A private folder for the copy (the caller removes it).
    bbox
        ``(xmin, ymin, xmax, ymax)`` the read will filter by: a FlatGeobuf
        with an index is then fetched by ranged reads (see the module doc).

    Returns
    -------
    str
        The path of the local copy (named like the object).

    Raises
    ------
    ReadError
        No such object, access denied, a time-out, an object over ``Storage(max_bytes=...)``.
    """
    name = _local_name(url)
    target = os.path.join(folder, name)
    lower = name.lower()
    if lower.endswith(".fgb") and bbox is not None and all(math.isfinite(v) for v in bbox):
        subset = flatgeobuf_subset(url, bbox, storage)
        if subset is not None:
            with open(target, "wb") as out:
                out.write(subset)
            return target
    data = object_store.get(url, storage)
    with open(target, "wb") as out:
        out.write(data)
    if lower.endswith(".shp"):
        _fetch_sides(url, target, storage)
    return target


def _fetch_sides(url: str, target: str, storage: Storage | None) -> None:
    """Fetch a Shapefile's side files next to its copy (``.shx`` and ``.dbf`` must exist)."""
    parts = urllib.parse.urlsplit(url)
    stem_url = parts.path[: -len(".shp")]
    stem_local = target[: -len(".shp")]
    for ext in _SHAPEFILE_SIDES:
        side = urllib.parse.urlunsplit((parts.scheme, parts.netloc, stem_url + ext, parts.query, ""))
        try:
            data = object_store.get(side, storage)
        except ReadError:
            if ext in (".shx", ".dbf"):
                raise
            continue  # optional side files
        with open(stem_local + ext, "wb") as out:
            out.write(data)
