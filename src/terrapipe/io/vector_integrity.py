"""Structural checks of vector files GDAL would read short without an error.

GDAL stops reading some formats at the first byte it cannot parse and
returns what it has read so far, with no error: a FlatGeobuf cut in its
index or features section reads as an empty or shorter layer, a Shapefile
whose ``.dbf`` is cut reads fewer records, a ``.shp`` cut reads with missing
geometries, a GeoJSON sequence cut inside its last record drops that record.
A short read must never pass for a smaller layer, so before GDAL reads such
a file, :func:`check_vector_file` compares what the file declares with what
it holds and raises :class:`~terrapipe.core.errors.ReadError` on a mismatch:

- **FlatGeobuf** (`spec <https://flatgeobuf.org>`_): the magic bytes, the
  header's length and its FlatBuffer table (``features_count``,
  ``index_node_size``), the packed R-tree's size (computed as the spec's
  ``calcTreeSize``) against the file size, and the features: with an index,
  the last leaf's offset points at the last feature, whose length prefix
  must fit in the file; without one, every length prefix is walked and the
  walk must end exactly at the end of the file after ``features_count``
  features (``0`` means unknown: any whole number of features; a cut exactly
  between two features of such a file cannot be told from a shorter file). :func:`flatgeobuf_layout` returns
  the numbers, so that a reader can also compare its feature count.
- **Shapefile** (ESRI white paper, 1998): the file length recorded in the
  ``.shp`` and ``.shx`` headers against their sizes, every ``.shx`` record
  against the ``.shp``, and the ``.dbf`` record count times record length
  against the ``.dbf`` size and the ``.shx`` record count.
- **GeoPackage** (SQLite file format): the page count the database header
  records times the page size, against the file size (a cut that removes
  only free pages at the end would otherwise read as a whole file).
- **GeoJSON sequences** (RFC 8142 and newline-delimited): the last record
  must be complete JSON. A sequence cut exactly between two records cannot
  be told from a shorter file (the format records no count).

The same checks apply to the Shapefiles and FlatGeobufs inside a local zip
file (``a.zip``, ``/vsizip/a.zip/a.shp``). Remote FlatGeobuf files are checked through HTTP range reads (the header,
one index node and one length prefix); a remote file without index is
walked only when the read is filtered or its count is unknown (otherwise the
count read is compared with the header's); other remote formats are left to
GDAL.

Examples
--------
>>> import geopandas as gpd
>>> from shapely.geometry import Point
>>> gdf = gpd.GeoDataFrame({"v": [1, 2, 3]}, geometry=[Point(i, i) for i in range(3)], crs="EPSG:4326")
>>> gdf.to_file("three.fgb")
>>> layout = check_vector_file("three.fgb")
>>> layout.features_count, layout.index_node_size
(3, 16)
>>> data = open("three.fgb", "rb").read()
>>> _ = open("cut.fgb", "wb").write(data[: len(data) - 10])
>>> check_vector_file("cut.fgb")
Traceback (most recent call last):
...
terrapipe.core.errors.ReadError: cannot read vector file 'cut.fgb': truncated or damaged FlatGeobuf: ...
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import zipfile
from dataclasses import dataclass
from typing import IO, Any

from terrapipe.core.errors import ReadError
from terrapipe.io.read_errors import read_error

__all__ = [
    "FlatGeobufLayout",
    "check_sequence",
    "check_vector_file",
    "flatgeobuf_layout",
    "is_geojson_sequence",
]

_FGB_MAGIC = b"fgb"
_NODE_ITEM_BYTES = 40  # minX, minY, maxX, maxY (f64) + offset (u64)
_HINT = "re-create or re-download the file"

#: Extensions GDAL's GeoJSONSeq driver stands for.
SEQUENCE_EXTENSIONS = (".geojsonl", ".geojsons", ".geojsonseq", ".ndjson", ".jsonl", ".jsons")
#: How much of a local text file's start is read to tell a sequence from a GeoJSON document.
_SNIFF_BYTES = 1 << 20
#: The read size when a remote FlatGeobuf's features are walked.
_REMOTE_WALK_BUFFER = 4 << 20
#: How much of a remote file's start is read to tell a sequence from a GeoJSON document.
_REMOTE_SNIFF_BYTES = 1 << 16
#: Remote names that may hide a GeoJSON sequence.
_MAYBE_JSON = (".json", ".geojson", ".txt", ".seq", ".jsonseq")
#: Extensions of formats that are not JSON text (not sniffed).
_NOT_JSON = (".fgb", ".gpkg", ".shp", ".shx", ".dbf", ".zip", ".gdb", ".sqlite", ".parquet", ".pbf", ".tif")
#: How much of a sequence's end is read to find its last record.
_TAIL_BYTES = 4 << 20


@dataclass(frozen=True)
class FlatGeobufLayout:
    """Where a FlatGeobuf's sections lie (bytes from the start of the file).

    Attributes
    ----------
    features_count
        What the header declares (``0``: unknown, written as a stream).
    index_node_size
        The packed R-tree's node size (``0``: no index).
    index_start, features_start
        Where the index and the features begin.
    size
        The file's size.
    geometry_type
        The header's geometry type (``0``: unknown, each feature states its own).
    """

    features_count: int
    index_node_size: int
    index_start: int
    features_start: int
    size: int
    geometry_type: int = 0


def _damaged(path: str, what: str, cause: str) -> ReadError:
    return read_error(
        path, "cannot read vector file", cause=f"truncated or damaged {what}: {cause}", hint=_HINT
    )


def tree_size(count: int, node_size: int) -> int:
    """Bytes of a packed Hilbert R-tree of ``count`` items (the spec's ``calcTreeSize``).

    Examples
    --------
    >>> tree_size(1, 16), tree_size(16, 16), tree_size(17, 16)
    (80, 680, 800)
    """
    node_size = min(max(node_size, 2), 65535)
    n = count
    nodes = n
    while True:
        n = -(-n // node_size)
        nodes += n
        if n == 1:
            break
    return nodes * _NODE_ITEM_BYTES


def _table_field(buf: bytes, table: int, field: int, fmt: str, default: int) -> int:
    """Read scalar field ``field`` of the FlatBuffer table at ``table`` (bounds-checked)."""
    at = _field_at(buf, table, field, "header")
    if at is None:
        return default
    if at + struct.calcsize(fmt) > len(buf):
        raise ValueError("field outside the header")
    (value,) = struct.unpack_from("<" + fmt, buf, at)
    return int(value)


def _read_at(handle: IO[bytes], offset: int, length: int) -> bytes:
    handle.seek(offset)
    return handle.read(length)


def flatgeobuf_layout(handle: IO[bytes], size: int, path: str) -> FlatGeobufLayout:
    """Parse a FlatGeobuf's magic bytes and header, check the index fits in the file.

    Parameters
    ----------
    handle
        The file, opened for binary reading and seekable.
    size
        The file's size in bytes.
    path
        For messages.

    Raises
    ------
    ReadError
        When the header is cut, damaged or inconsistent with the file size.
    """
    what = "FlatGeobuf"
    start = _read_at(handle, 0, 12)
    if len(start) < 12 or size < 12:
        raise _damaged(path, what, f"the file has {size} bytes, shorter than its 12-byte preamble")
    if start[:3] != _FGB_MAGIC or start[4:7] != _FGB_MAGIC:
        raise _damaged(path, what, "its first bytes are not FlatGeobuf's magic bytes")
    (header_size,) = struct.unpack_from("<I", start, 8)
    header_end = 12 + header_size
    if header_size < 4 or header_end > size:
        raise _damaged(
            path, what, f"its header declares {header_size} bytes but the file ends after {size - 12}"
        )
    header = _read_at(handle, 12, header_size)
    if len(header) != header_size:
        raise _damaged(path, what, "its header could not be read in full")
    try:
        (root,) = struct.unpack_from("<I", header, 0)
        if not 4 <= root <= header_size - 4:
            raise ValueError("root table outside the header")
        count = _table_field(header, root, 8, "Q", 0)
        node_size = _table_field(header, root, 9, "H", 16)
        geometry_type = _table_field(header, root, 2, "B", 0)
    except (ValueError, struct.error) as err:
        raise _damaged(path, what, f"its header is not a valid FlatBuffer ({err})") from err
    if node_size == 1:
        raise _damaged(path, what, "its header declares an index node size of 1 (at least 2 is valid)")
    index_bytes = tree_size(count, node_size) if count > 0 and node_size > 0 else 0
    features_start = header_end + index_bytes
    if features_start > size:
        raise _damaged(
            path,
            what,
            f"its spatial index of {count} features needs {index_bytes} bytes after the header, "
            f"the file has {size - header_end}",
        )
    return FlatGeobufLayout(count, node_size, header_end, features_start, size, geometry_type)


#: FlatGeobuf's geometry types (the spec's GeometryType enum) named in messages.
_FGB_TYPES = {
    1: "Point",
    2: "LineString",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
}
#: The largest first feature whose geometry is compared with the header's type.
_FIRST_FEATURE_BYTES = 1 << 20


def _reference(buf: bytes, at: int) -> int:
    """Follow the FlatBuffer offset stored at ``at`` (a table or vector), bounds-checked."""
    (offset,) = struct.unpack_from("<I", buf, at)
    target = at + int(offset)
    if not 0 <= target <= len(buf) - 4:
        raise ValueError("an offset points outside the feature")
    return target


def _field_at(buf: bytes, table: int, field: int, what: str = "feature") -> int | None:
    """Where field ``field`` of the FlatBuffer table at ``table`` lies, or ``None`` when it is absent (``what``: for errors)."""
    (soffset,) = struct.unpack_from("<i", buf, table)
    vtable = table - soffset
    if not 0 <= vtable <= len(buf) - 4:
        raise ValueError(f"vtable outside the {what}")
    vtable_size, _ = struct.unpack_from("<HH", buf, vtable)
    slot = 4 + 2 * field
    if slot + 2 > vtable_size:
        return None
    if vtable + slot + 2 > len(buf):
        raise ValueError(f"vtable outside the {what}")
    (offset,) = struct.unpack_from("<H", buf, vtable + slot)
    return table + offset if offset else None


def _vector_length(buf: bytes, table: int, field: int) -> int:
    at = _field_at(buf, table, field)
    return 0 if at is None else int(struct.unpack_from("<I", buf, _reference(buf, at))[0])


def geometry_mismatch(feature: bytes, header_type: int) -> str | None:
    """Say how a FlatGeobuf feature's geometry disagrees with the header's geometry type (``None``: it agrees).

    A header with a geometry type (1-6) means the features do not state
    theirs: GDAL decodes each feature's coordinates by the header's type. A
    header that lies (Point over polygons, Polygon over multipolygons) read
    as other geometries, silently: a polygon's first coordinates as a point,
    a multipolygon's first part only. The feature (its bytes after the size
    prefix) must hold the header's shape: parts for a MultiPolygon only, one
    coordinate pair for a Point, and no other type of its own.
    """
    if header_type not in _FGB_TYPES:
        return None
    (root,) = struct.unpack_from("<I", feature, 0)
    at = _field_at(feature, root, 0)  # Feature.geometry
    if at is None:
        return None  # a null geometry
    geometry = _reference(feature, at)
    own = _field_at(feature, geometry, 6)  # Geometry.type
    own_type = feature[own] if own is not None else 0
    parts = _vector_length(feature, geometry, 7)  # Geometry.parts
    coordinates = _vector_length(feature, geometry, 1) // 2  # Geometry.xy
    named = _FGB_TYPES[header_type]
    if own_type not in (0, header_type):
        return f"a feature states geometry type {own_type}, the header {header_type} ({named})"
    if parts and header_type != 6:
        return f"a feature's geometry has {parts} parts, which a {named} (the header's type) cannot have"
    if header_type == 6 and not parts and coordinates:
        return "a feature's geometry has no parts, which a MultiPolygon (the header's type) has"
    if header_type == 1 and coordinates > 1:
        return f"a feature's geometry has {coordinates} coordinates, a Point (the header's type) one"
    ends = _vector_length(feature, geometry, 0)  # Geometry.ends: rings or lines
    if header_type in (1, 2, 4) and ends > 1:
        return (
            f"a feature's geometry has {ends} rings or lines, which a {named} (the header's type) cannot have"
        )
    return None


def _check_first_feature(handle: IO[bytes], layout: FlatGeobufLayout, path: str) -> None:
    """Compare the first feature's geometry with the header's geometry type (:func:`geometry_mismatch`)."""
    if layout.geometry_type not in _FGB_TYPES or layout.features_start + 4 > layout.size:
        return
    prefix = _read_at(handle, layout.features_start, 4)
    if len(prefix) < 4:
        return
    (length,) = struct.unpack("<I", prefix)
    if length < 4 or length > _FIRST_FEATURE_BYTES or layout.features_start + 4 + length > layout.size:
        return  # cut features are reported by the walk; a huge first feature is left to GDAL
    feature = _read_at(handle, layout.features_start + 4, length)
    try:
        mismatch = geometry_mismatch(feature, layout.geometry_type)
    except (ValueError, struct.error, IndexError) as err:
        raise _damaged(path, "FlatGeobuf", f"its first feature is not a valid FlatBuffer ({err})") from err
    if mismatch is not None:
        raise _damaged(
            path, "FlatGeobuf", f"{mismatch}; GDAL would read other geometries than the file holds"
        )


def _check_flatgeobuf_features(handle: IO[bytes], layout: FlatGeobufLayout, path: str, walk: bool) -> None:
    what = "FlatGeobuf"
    _check_first_feature(handle, layout, path)
    count, start, size = layout.features_count, layout.features_start, layout.size
    if count > 0 and layout.index_node_size > 0:
        # Features are stored in the index's leaf order: the last leaf points at the last one.
        node = _read_at(handle, start - _NODE_ITEM_BYTES, _NODE_ITEM_BYTES)
        (offset,) = struct.unpack_from("<Q", node, 32)
        prefix = _read_at(handle, start + offset, 4) if start + offset + 4 <= size else b""
        if len(prefix) < 4:
            raise _damaged(
                path, what, f"the index points at a feature at byte {start + offset}, past the end ({size})"
            )
        (length,) = struct.unpack("<I", prefix)
        end = start + offset + 4 + length
        if end > size:
            raise _damaged(path, what, f"its last feature ends at byte {end}, the file at {size}")
        return
    if not walk:
        return
    if count == 0 and start == size:
        return  # nothing declared, nothing there (an empty or unknown-count file with no features)
    reader = handle  # a local file opened buffered: the walk reads it in large blocks
    reader.seek(start)
    position, seen = start, 0
    while position < size and (count == 0 or seen < count):
        prefix = reader.read(4)
        if len(prefix) < 4:
            raise _damaged(path, what, f"feature {seen} is cut in its length prefix at byte {position}")
        (length,) = struct.unpack("<I", prefix)
        position += 4 + length
        if position > size:
            raise _damaged(path, what, f"feature {seen} ends at byte {position}, the file at {size}")
        reader.seek(position)
        seen += 1
    if count > 0 and seen < count:
        raise _damaged(path, what, f"its header declares {count} features, the file holds {seen}")
    if position != size:
        raise _damaged(
            path, what, f"its header declares {count} features, which end at byte {position} of {size}"
        )


class _LocalFiles:
    """The local file system, as :func:`_check_shapefile` and the FlatGeobuf checks see it."""

    def exists(self, name: str) -> bool:
        return os.path.isfile(name)

    def size(self, name: str) -> int:
        return os.path.getsize(name)

    def open(self, name: str) -> IO[bytes]:
        return open(name, "rb")


class _ZipFiles:
    """The members of a local zip file (GDAL's ``/vsizip/``), with the same three methods."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.infos = {info.filename: info for info in archive.infolist()}

    def exists(self, name: str) -> bool:
        return name in self.infos

    def size(self, name: str) -> int:
        return int(self.infos[name].file_size)

    def open(self, name: str) -> IO[bytes]:
        return self.archive.open(name)


_Files = _LocalFiles | _ZipFiles


def _check_shapefile(files: _Files, name: str, shown: str) -> None:
    stem, _ = os.path.splitext(name)
    shp_size = files.size(name)
    with files.open(name) as shp:
        head = shp.read(100)
    if len(head) < 100:
        raise _damaged(shown, "Shapefile", f"the .shp has {shp_size} bytes, shorter than its 100-byte header")
    (declared,) = struct.unpack_from(">i", head, 24)
    if declared * 2 > shp_size:
        raise _damaged(
            shown, "Shapefile", f"the .shp header declares {declared * 2} bytes, it has {shp_size}"
        )
    shx_name = _sidecar(files, stem, ".shx")
    records = None
    if shx_name is not None:
        records = _check_shx(files, shx_name, shown, shp_size)
    dbf_name = _sidecar(files, stem, ".dbf")
    if dbf_name is not None:
        _check_dbf(files, dbf_name, shown, records)


def _sidecar(files: _Files, stem: str, ext: str) -> str | None:
    for candidate in (stem + ext, stem + ext.upper()):
        if files.exists(candidate):
            return candidate
    return None


def _check_shx(files: _Files, shx_name: str, shown: str, shp_size: int) -> int:
    with files.open(shx_name) as shx:
        data = shx.read()
    if len(data) < 100:
        raise _damaged(
            shown, "Shapefile", f"the .shx has {len(data)} bytes, shorter than its 100-byte header"
        )
    (declared,) = struct.unpack_from(">i", data, 24)
    if declared * 2 != len(data) or (len(data) - 100) % 8:
        raise _damaged(
            shown, "Shapefile", f"the .shx header declares {declared * 2} bytes, it has {len(data)}"
        )
    records = (len(data) - 100) // 8
    for i in range(records):
        offset, length = struct.unpack_from(">ii", data, 100 + 8 * i)
        end = (offset + 4 + length) * 2
        if offset < 50 or end > shp_size:
            raise _damaged(
                shown,
                "Shapefile",
                f"record {i} of the .shx ends at byte {end} of the .shp, which has {shp_size}",
            )
    return records


def _check_dbf(files: _Files, dbf_name: str, shown: str, records: int | None) -> None:
    size = files.size(dbf_name)
    with files.open(dbf_name) as dbf:
        head = dbf.read(12)
    if len(head) < 12:
        raise _damaged(shown, "Shapefile", f"the .dbf has {size} bytes, shorter than its header")
    count, header_len, record_len = struct.unpack_from("<IHH", head, 4)
    needed = header_len + count * record_len
    if needed > size:
        raise _damaged(
            shown,
            "Shapefile",
            f"the .dbf declares {count} records of {record_len} bytes after a {header_len}-byte header "
            f"({needed} bytes), it has {size}",
        )
    if records is not None and count != records:
        raise _damaged(shown, "Shapefile", f"the .dbf holds {count} records, the .shx {records} shapes")


def _check_flatgeobuf(files: _Files, name: str, shown: str) -> FlatGeobufLayout:
    with files.open(name) as handle:
        layout = flatgeobuf_layout(handle, files.size(name), shown)
        _check_flatgeobuf_features(handle, layout, shown, walk=True)
    return layout


def _zip_target(path: str) -> tuple[str, str | None] | None:
    """``(local zip file, member or None)`` for ``a.zip`` and ``/vsizip/a.zip/member`` paths."""
    if path.startswith("/vsizip/"):
        rest = path[len("/vsizip/") :]
        at = rest.lower().find(".zip/")
        archive, member = (rest[: at + 4], rest[at + 5 :] or None) if at >= 0 else (rest, None)
    elif path.lower().endswith(".zip"):
        archive, member = path, None
    else:
        return None
    if archive.startswith("/vsi") or "://" in archive or not os.path.isfile(archive):
        return None
    return archive, member


def _check_zip(archive: str, member: str | None, shown: str) -> FlatGeobufLayout | None:
    """Check the Shapefiles and FlatGeobufs in a local zip file (or the one member named)."""
    try:
        with zipfile.ZipFile(archive) as opened:
            files = _ZipFiles(opened)
            names = [member] if member is not None else list(files.infos)
            layout = None
            for name in names:
                if not files.exists(name):
                    continue  # GDAL says the member is missing
                low = name.lower()
                if low.endswith(".shp"):
                    _check_shapefile(files, name, shown)
                elif low.endswith(".fgb"):
                    found = _check_flatgeobuf(files, name, shown)
                    layout = found if member is not None else None  # a count to compare: one layer only
            return layout
    except zipfile.BadZipFile as err:
        if "CRC" in str(err) or "Bad magic" in str(err):
            raise _damaged(shown, "zip file", f"a member is damaged ({err})") from err
        return None  # not a zip GDAL can read either: its own error names it


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _check_sqlite(path: str) -> None:
    """Compare a GeoPackage's (SQLite's) recorded page count with its size.

    The database header records the page size (offset 16) and, valid when
    its "version-valid-for" number equals the change counter, the number of
    pages (offset 28). A file shorter than that is cut. With a ``-wal``
    file beside it the main file may lag behind; it is then left to SQLite.
    """
    if os.path.exists(path + "-wal"):
        return
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(100)
    if len(head) < 100 or not head.startswith(_SQLITE_MAGIC):
        return  # not SQLite or cut inside its header: GDAL fails to open it
    (page_size,) = struct.unpack_from(">H", head, 16)
    page_size = 65536 if page_size == 1 else page_size
    (change_counter,) = struct.unpack_from(">I", head, 24)
    (pages,) = struct.unpack_from(">I", head, 28)
    (valid_for,) = struct.unpack_from(">I", head, 92)
    if pages and valid_for == change_counter and pages * page_size > size:
        raise _damaged(
            path,
            "GeoPackage",
            f"its SQLite header records {pages} pages of {page_size} bytes ({pages * page_size}), "
            f"the file has {size}",
        )


def _check_rtree(path: str) -> None:
    """Compare each GeoPackage spatial index (R*Tree) with its table: a bbox read finds features by the index.

    GDAL answers a bbox (or mask) read of a GeoPackage from its R*Tree alone:
    a feature missing from the index (a stale index: rows written with its
    triggers off, a hand edit) is never returned, silently. The index must
    hold one entry per feature with a non-empty geometry (what the
    GeoPackage's triggers keep). Counts only: an entry whose box is stale
    cannot be seen here. A file SQLite cannot read is left to GDAL.
    """
    import sqlite3
    import urllib.parse

    stat = os.stat(path)
    version = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if version in _RTREES_CHECKED:
        return  # checked already, unchanged since (per-chip bbox reads of one file pay once)
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro&immutable=1"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            indexed = db.execute(
                "SELECT table_name, column_name FROM gpkg_extensions WHERE extension_name = 'gpkg_rtree_index'"
            ).fetchall()
            for table, column in indexed:
                if isinstance(table, str) and isinstance(column, str):
                    _compare_rtree(db, path, table, column)
    except sqlite3.Error:
        return  # no gpkg_extensions, no R*Tree module, not a GeoPackage: GDAL reads it or says why
    if len(_RTREES_CHECKED) >= _RTREES_KEPT:
        _RTREES_CHECKED.clear()
    _RTREES_CHECKED.add(version)


#: GeoPackages whose spatial indexes were found whole: (path, size, mtime), at most :data:`_RTREES_KEPT`.
_RTREES_CHECKED: set[tuple[str, int, int]] = set()
_RTREES_KEPT = 256


def _compare_rtree(db: Any, path: str, table: str, column: str) -> None:
    entries = int(db.execute(f"SELECT COUNT(*) FROM {_quoted(f'rtree_{table}_{column}')}").fetchone()[0])
    rows = f"FROM {_quoted(table)} WHERE {_quoted(column)} IS NOT NULL"
    features = int(db.execute(f"SELECT COUNT(*) {rows}").fetchone()[0])
    if entries != features:  # empty geometries are never indexed: count them (reads each geometry's header)
        flags = db.execute(
            f"SELECT hex(substr({_quoted(column)}, 4, 1)), COUNT(*) {rows} GROUP BY 1"
        ).fetchall()
        # GeoPackage geometry header: flags byte 3, bit 4 = an empty geometry
        features = sum(int(n) for flag, n in flags if not (flag and int(flag, 16) & 0x10))
    if entries != features:
        raise _damaged(
            path,
            "GeoPackage",
            f"the spatial index of table {table!r} lists {entries} features, the table has {features} "
            "with a geometry, so a bbox or mask read would miss some; rebuild the index (ogrinfo FILE "
            "-sql \"SELECT RecreateSpatialIndex('TABLE', 'GEOM')\") or read without bbox",
        )


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def is_geojson_sequence(path: str, opener: Any = None) -> bool:
    r"""Whether ``path`` holds a GeoJSON text sequence (RFC 8142 or one feature per line).

    By extension (``.geojsonl``, ``.geojsons``, ``.ndjson``, ...) or by
    content: a record separator first, or a first line that is a complete
    GeoJSON object followed by more records. A local file's first MiB is
    read; a remote one named like JSON or text (``.json``, ``.geojson``,
    ``.txt``, ``.seq``) is sniffed with one 64 KiB range request through
    ``opener`` (see :func:`check_vector_file`). GDAL's GeoJSON driver opens a
    sequence too, and reads only its first record; terrapipe opens it with the
    GeoJSONSeq driver.

    Examples
    --------
    >>> _ = open("two.txt", "w").write('{"type": "Feature", "geometry": null, "properties": {}}\n' * 2)
    >>> is_geojson_sequence("two.txt"), is_geojson_sequence("https://h/a.geojsonl?sig=1")
    (True, True)
    """
    plain = path.split("?", 1)[0].lower()
    if plain.endswith(SEQUENCE_EXTENSIONS):
        return True
    if plain.endswith(_NOT_JSON):
        return False
    if "://" not in path and not path.startswith("/vsi"):
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as handle:
            return _looks_like_sequence(handle.read(_SNIFF_BYTES))
    if opener is None or not plain.endswith(_MAYBE_JSON):
        return False
    handle = opener()
    try:
        return _looks_like_sequence(handle.read(min(_REMOTE_SNIFF_BYTES, int(handle.size))))
    finally:
        handle.close()


def _looks_like_sequence(head: bytes) -> bool:
    text = head.lstrip()
    if text.startswith(b"\x1e"):
        return True
    if not text.startswith(b"{"):
        return False
    line, newline, rest = text.partition(b"\n")
    if not newline or not rest.strip():
        return False
    try:
        first = json.loads(line)
    except ValueError:
        return False
    return isinstance(first, dict) and first.get("type") not in ("FeatureCollection", None)


def check_sequence(path: str, opener: Any = None) -> None:
    """Check that a GeoJSON sequence's last record is whole JSON (local, or remote through ``opener``).

    Raises
    ------
    ReadError
        When the last record is cut.
    """
    if "://" not in path and not path.startswith("/vsi"):
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            handle.seek(max(0, size - _TAIL_BYTES))
            tail = handle.read()
    elif opener is not None:
        handle = opener()
        try:
            size = int(handle.size)
            handle.seek(max(0, size - _TAIL_BYTES))
            tail = handle.read(min(size, _TAIL_BYTES))
        finally:
            handle.close()
    else:
        return
    _check_sequence_tail(tail, size, path)


def _check_sequence_tail(tail: bytes, size: int, path: str) -> None:
    separator = b"\x1e" if b"\x1e" in tail else b"\n"  # RFC 8142 records may span lines
    records = [r for r in tail.split(separator) if r.strip()]
    if not records:
        return
    last = records[-1]
    if len(records) == 1 and size > len(tail):
        return  # one record longer than the tail read: cannot tell here, GDAL parses it
    try:
        json.loads(last)
    except json.JSONDecodeError as err:
        raise _damaged(path, "GeoJSON sequence", f"its last record is not complete JSON ({err.msg})") from err
    except ValueError as err:  # not UTF-8
        raise _damaged(path, "GeoJSON sequence", f"its last record is not valid text ({err})") from err


def check_vector_file(path: str, *, opener: Any = None, filtered: bool = False) -> FlatGeobufLayout | None:
    """Check the structure of a vector file before GDAL reads it (see the module docstring).

    Parameters
    ----------
    path
        The path or URL as the user gave it.
    opener
        For a remote FlatGeobuf: a callable returning a seekable binary file
        object with a ``size`` attribute (e.g. an HTTP range reader); ``None``
        leaves remote files unchecked.
    filtered
        Whether the read will be filtered (bbox, mask, where), so that the
        count of features read cannot be compared with the header's. A remote
        FlatGeobuf without index is then walked (through a buffered reader:
        one large range request per 4 MiB; GDAL reads the whole file anyway),
        as is one whose header leaves the count unknown.

    Returns
    -------
    FlatGeobufLayout or None
        The layout of a FlatGeobuf (to compare the count of features read),
        ``None`` for other formats.

    Raises
    ------
    ReadError
        When the file is cut short or its declared sizes do not match.
    """
    plain = path.split("?", 1)[0].lower()
    local = "://" not in path and not path.startswith("/vsi")
    if local and os.path.isfile(path):
        with open(path, "rb") as handle:
            magic = handle.read(8)
        if plain.endswith(".fgb") or (magic[:3] == _FGB_MAGIC and magic[4:7] == _FGB_MAGIC):
            return _check_flatgeobuf(_LocalFiles(), path, path)
        if magic.startswith(_SQLITE_MAGIC[:8]):
            _check_sqlite(path)
            if filtered:
                _check_rtree(path)
        elif plain.endswith(".zip"):
            return _check_zip(path, None, path)
        elif plain.endswith(".shp"):
            _check_shapefile(_LocalFiles(), path, path)
        elif is_geojson_sequence(path):
            check_sequence(path)
        return None
    zipped = _zip_target(path)
    if zipped is not None:
        return _check_zip(zipped[0], zipped[1], path)
    if opener is not None and plain.endswith(".fgb"):
        handle = opener()
        try:
            layout = flatgeobuf_layout(handle, int(handle.size), path)
            walk = layout.index_node_size == 0 and (filtered or layout.features_count == 0)
            reader = io.BufferedReader(handle, buffer_size=_REMOTE_WALK_BUFFER) if walk else handle
            _check_flatgeobuf_features(reader, layout, path, walk=walk)
        finally:
            handle.close()
        return layout
    return None
