"""GeoParquet reading with bbox pushdown through the bbox covering column.

GeoParquet 1.1 files may carry, per geometry column, a ``covering``: a struct
column (``bbox`` with ``xmin``, ``ymin``, ``xmax``, ``ymax``) holding each
row's bounding box. Parquet keeps min/max statistics of those fields per row
group, so a bbox query can skip every row group whose boxes all lie outside it
without reading its data. :func:`read_geoparquet`:

1. reads the footer and the ``geo`` metadata (primary column, encoding, CRS,
   covering);
2. keeps the row groups whose covering statistics intersect the bbox (all of
   them when there is no covering or no statistics);
3. reads only those row groups (and only the asked columns), then keeps the
   rows whose covering box intersects the bbox and whose geometry intersects
   the bbox (or ``mask``).

Works on local paths, ``http(s)://`` URLs (footer and row groups by range
requests, see :mod:`terrapipe.io.object_file`) and, through the byte layer
(:mod:`terrapipe.io.object_file`), on ``s3://``, ``gs://``, ``az://``/``abfs://``
and presigned or SAS URLs (``storage=``). The pyogrio wheel has no
Parquet driver, hence this module.

Examples
--------
>>> import geopandas as gpd
>>> from shapely.geometry import Point
>>> gdf = gpd.GeoDataFrame({"id": range(100)}, geometry=[Point(i, i) for i in range(100)], crs="EPSG:32631")
>>> gdf.to_parquet("pts.parquet", write_covering_bbox=True, row_group_size=10)
>>> out = read_geoparquet("pts.parquet", bbox=(5, 5, 24.5, 24.5))
>>> out["id"].tolist() == list(range(5, 25)), out.crs.to_epsg()
(True, 32631)
>>> out.attrs["row_groups_read"], out.attrs["row_groups_total"]
(3, 10)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from terrapipe.core.errors import InvalidArgumentError, TerrapipeError
from terrapipe.core.optional import require
from terrapipe.io.http_client import HTTPOptions
from terrapipe.io.object_file import HTTPFile, ObjectFile
from terrapipe.io.object_store import is_object_url
from terrapipe.io.paths import is_http
from terrapipe.io.read_errors import read_error
from terrapipe.io.storage import Storage

__all__ = ["GeoParquetInfo", "geoarrow_info", "geoparquet_info", "read_geoparquet", "row_groups_for_bbox"]

Bounds = tuple[float, float, float, float]


class GeoParquetInfo:
    """What the ``geo`` metadata says about a file's primary geometry column.

    Attributes
    ----------
    column
        The primary geometry column.
    encoding
        ``"WKB"`` or a GeoArrow encoding (``"point"``, ``"polygon"``, ...).
    crs
        The CRS (PROJJSON dict or string); ``"OGC:CRS84"`` when the key is
        absent (the spec's default); ``None`` when the file says it has none.
    covering
        ``{"xmin": ("bbox", "xmin"), ...}``: the covering fields, or ``None``.
    others
        The other geometry columns the metadata lists: ``{name: (encoding, crs)}``.
    edges
        ``"planar"`` (the default) or ``"spherical"`` (edges are great-circle arcs).
    """

    def __init__(
        self,
        column: str,
        encoding: str,
        crs: Any,
        covering: dict[str, tuple[str, ...]] | None,
        others: dict[str, tuple[str, Any]] | None = None,
        edges: str = "planar",
    ) -> None:
        self.column = column
        self.encoding = encoding
        self.crs = crs
        self.covering = covering
        self.others = others or {}
        self.edges = edges

    def __repr__(self) -> str:
        return (
            f"GeoParquetInfo(column={self.column!r}, encoding={self.encoding!r}, covering={self.covering!r})"
        )


def geoparquet_info(schema_metadata: dict[bytes, bytes] | None, name: str) -> GeoParquetInfo:
    """Parse the ``geo`` key of a Parquet schema's metadata.

    Raises
    ------
    ReadError
        When the file has no ``geo`` metadata (plain Parquet) or it is malformed.
    """
    raw = (schema_metadata or {}).get(b"geo")
    if raw is None:
        raise read_error(
            name,
            "cannot read GeoParquet",
            cause="it has no 'geo' metadata (a plain Parquet file, not GeoParquet)",
            hint="write it with geopandas' to_parquet, or read it with pyarrow",
        )
    try:
        geo = json.loads(raw)
        column = geo["primary_column"]
        meta = geo["columns"][column]
        if not isinstance(column, str) or not isinstance(meta, dict):
            raise TypeError(f"primary_column {column!r} does not name an object of 'columns'")
    except (ValueError, KeyError, TypeError, IndexError) as err:
        cause = f"its 'geo' metadata is malformed ({type(err).__name__}: {err})"
        raise read_error(name, "cannot read GeoParquet", err, cause=cause) from err
    covering = None
    bbox = (meta.get("covering") or {}).get("bbox") if isinstance(meta.get("covering"), dict) else None
    if isinstance(bbox, dict) and all(_is_field_path(bbox.get(k)) for k in ("xmin", "ymin", "xmax", "ymax")):
        covering = {k: tuple(bbox[k]) for k in ("xmin", "ymin", "xmax", "ymax")}
    crs = meta.get("crs", "OGC:CRS84")  # absent: the default; null: no CRS
    others = {
        str(name): (str(other.get("encoding", "WKB")), other.get("crs", "OGC:CRS84"))
        for name, other in geo["columns"].items()
        if name != column and isinstance(other, dict)
    }
    return GeoParquetInfo(
        column=column,
        encoding=str(meta.get("encoding", "WKB")),
        crs=crs,
        covering=covering,
        others=others,
        edges=str(meta.get("edges", "planar")),
    )


def geoarrow_info(schema: Any) -> GeoParquetInfo | None:
    """Describe a file without ``geo`` metadata whose geometry column says it is one, GeoArrow's way.

    Parquet's own ``GEOMETRY`` logical type (and files written by GeoArrow
    tools) reach Arrow as a field whose metadata names a ``geoarrow.*``
    extension, with the CRS in the extension metadata. The first such field
    is the geometry; a CRS it does not record is none (``crs=`` then says
    what to assume). Files with ``geo`` metadata are described by it.

    Examples
    --------
    >>> import pyarrow as pa
    >>> field = pa.field("geom", pa.binary(), metadata={b"ARROW:extension:name": b"geoarrow.wkb",
    ...                                                  b"ARROW:extension:metadata": b'{"crs": "EPSG:32631"}'})
    >>> info = geoarrow_info(pa.schema([pa.field("id", pa.int64()), field]))
    >>> info.column, info.encoding, info.crs
    ('geom', 'WKB', 'EPSG:32631')
    """
    if b"geo" in (schema.metadata or {}):
        return None
    for field in schema:
        metadata = field.metadata or {}
        extension = metadata.get(b"ARROW:extension:name", b"").decode("utf-8", "replace")
        if not extension.startswith("geoarrow."):
            continue
        kind = extension[len("geoarrow.") :]
        try:
            details = json.loads(metadata.get(b"ARROW:extension:metadata") or b"{}")
        except ValueError:
            details = {}
        crs = details.get("crs") if isinstance(details, dict) else None
        encoding = "WKB" if kind == "wkb" else kind
        return GeoParquetInfo(column=str(field.name), encoding=encoding, crs=crs, covering=None)
    return None


def _is_field_path(value: Any) -> bool:
    """Whether ``value`` is a covering field path (``["bbox", "xmin"]``)."""
    return isinstance(value, list) and bool(value) and all(isinstance(part, str) for part in value)


def _path_index(schema: Any) -> dict[tuple[str, ...], int]:
    """Map each leaf column's path (``("bbox", "xmin")``) to its Parquet column index."""
    return {tuple(schema.column(i).path.split(".")): i for i in range(len(schema))}


def row_groups_for_bbox(
    metadata: Any, covering: dict[str, tuple[str, ...]] | None, bbox: Bounds
) -> list[int]:
    """Return the row groups whose covering statistics may intersect ``bbox``.

    A row group without usable statistics is kept (it cannot be ruled out).
    """
    total = metadata.num_row_groups
    if covering is None:
        return list(range(total))
    index = _path_index(metadata.schema)
    cols = {key: index.get(path) for key, path in covering.items()}
    if any(c is None for c in cols.values()):
        return list(range(total))
    minx, miny, maxx, maxy = bbox
    keep = []
    for rg in range(total):
        group = metadata.row_group(rg)
        stats = {key: group.column(c).statistics for key, c in cols.items()}
        if any(s is None or not s.has_min_max for s in stats.values()):
            keep.append(rg)
            continue
        outside = (
            stats["xmin"].min > maxx
            or stats["xmax"].max < minx
            or stats["ymin"].min > maxy
            or stats["ymax"].max < miny
        )
        if not outside:
            keep.append(rg)
    return keep


def read_geoparquet(
    path: str,
    *,
    bbox: Sequence[float] | None = None,
    mask: Any = None,
    columns: Sequence[str] | None = None,
    crs: Any = None,
    http_options: HTTPOptions | None = None,
    storage: Storage | None = None,
) -> Any:
    """Read a GeoParquet file (local, HTTP or object storage) into a GeoDataFrame, pruned by ``bbox``/``mask``.

    Parameters
    ----------
    path
        Local path, ``http(s)://`` URL (presigned and SAS included) or object
        URL (``s3://``, ``gs://``, ``az://``, ``abfs://``).
    bbox
        ``(xmin, ymin, xmax, ymax)`` in the file's CRS: only rows whose
        geometry intersects it are returned, and row groups that cannot hold
        such rows are not read.
    mask
        A shapely geometry (file's CRS) used like ``bbox`` (its bounds prune
        row groups; rows must intersect it). Not with ``bbox``.
    columns
        Attribute columns to read (the geometry column is always read).
    crs
        The CRS to assume when the file records none (otherwise an error).
    http_options
        Time-out and retries for plain HTTP URLs read without ``storage``.
    storage
        Object-storage configuration (:class:`terrapipe.Storage`): with it, or
        for an object URL (then ``Storage.from_env()``), the file is read
        through the byte layer (:class:`~terrapipe.io.object_file.ObjectFile`):
        ranged GETs only, no HEAD for an HTTP(S) URL, so a GET-presigned URL works.

    Returns
    -------
    geopandas.GeoDataFrame
        With its CRS; ``attrs["row_groups_read"]``, ``attrs["row_groups_total"]``
        and ``attrs["bytes_read"]`` (compressed bytes of the row groups read).

    Raises
    ------
    ReadError
        Missing or unreadable file, not GeoParquet, no CRS recorded, HTTP errors.
    """
    gpd = require("geopandas", feature="read_vector (GeoParquet)")
    pq = require("pyarrow.parquet", feature="read_vector (GeoParquet)")
    shapely = require("shapely", feature="read_vector (GeoParquet)")
    if bbox is not None and mask is not None:
        raise InvalidArgumentError("pass bbox or mask, not both")
    if mask is not None and not isinstance(mask, shapely.Geometry):
        raise InvalidArgumentError(f"mask must be a shapely geometry, got {type(mask).__name__}")
    handle: Any = None
    try:
        # Unbuffered: pyarrow asks for exact ranges (footer, column chunks) and coalesces them.
        if storage is not None or is_object_url(path):
            handle = ObjectFile(path, storage)
        elif is_http(path):
            handle = HTTPFile(path, http_options)
        else:
            handle = path
        parquet = pq.ParquetFile(handle)
        info = geoarrow_info(parquet.schema_arrow) or geoparquet_info(parquet.schema_arrow.metadata, path)
        names = [str(name) for name in parquet.schema_arrow.names]
        if info.column not in names:
            raise read_error(
                path,
                "cannot read GeoParquet",
                cause=(
                    f"its 'geo' metadata names the geometry column {info.column!r}, "
                    f"which the file does not have (columns: {names})"
                ),
                hint="re-write it with geopandas' to_parquet, or read it with pyarrow",
            )
        if info.covering is not None and info.covering["xmin"][0] not in names:
            info.covering = None  # a covering column the file lacks cannot prune anything
        if info.crs is None and crs is not None:
            info.crs = crs
        if info.crs is None:
            raise read_error(
                path,
                "cannot use vector file",
                cause="it records no CRS (GeoParquet 'crs': null)",
                hint="write it with a CRS (gdf.set_crs(...).to_parquet(...)) or pass crs=",
            )
        region = None
        if bbox is not None:
            region = shapely.box(*[float(v) for v in bbox])
        elif mask is not None:
            region = mask
        if region is not None and info.edges != "planar":
            # shapely intersects planar edges: a band across the antimeridian whose edges are great-circle arcs
            # matched a box at 0 degrees and missed one at 177
            raise read_error(
                path,
                "cannot filter GeoParquet by bbox or mask",
                cause=f"its geometry column's edges are {info.edges!r}, and terrapipe intersects planar edges only",
                hint="read it without bbox/mask and filter with a spherical library (e.g. spherely, s2geometry)",
            )
        total = parquet.metadata.num_row_groups
        groups = (
            list(range(total))
            if region is None
            else row_groups_for_bbox(parquet.metadata, info.covering, region.bounds)
        )
        wanted = None
        if columns is not None:
            known = [str(name) for name in parquet.schema_arrow.names if name != info.column]
            missing = [c for c in columns if c not in known and c != info.column]
            if missing:
                raise read_error(
                    path,
                    "cannot read vector file",
                    cause=f"no column named {missing} (columns: {known})",
                    hint="pick names listed",
                )
            top_level = [*[c for c in columns if c != info.column], info.column]
            if info.covering is not None and region is not None:
                top_level.append(info.covering["xmin"][0])
            wanted = list(dict.fromkeys(top_level))
        table = (
            parquet.read_row_groups(groups, columns=wanted) if groups else parquet.schema_arrow.empty_table()
        )
        bytes_read = sum(parquet.metadata.row_group(g).total_byte_size for g in groups)
    except TerrapipeError:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError, NotImplementedError) as err:
        raise read_error(path, "cannot read GeoParquet", err) from err
    finally:
        if handle is not None and not isinstance(handle, str):
            handle.close()
    try:
        gdf = _to_geodataframe(gpd, table, info, path)
    except TerrapipeError:
        raise
    except Exception as err:  # pyproj's CRSError, shapely's GEOSException, Arrow's errors: the file's data
        cause = f"its geometry column {info.column!r} or CRS cannot be decoded ({type(err).__name__}: {err})"
        raise read_error(path, "cannot read GeoParquet", err, cause=cause, hint="check the file") from err
    if region is not None and info.covering is not None and info.covering["xmin"][0] in table.column_names:
        _check_covering(table, gdf.geometry.bounds.to_numpy(), info.covering, path)
    if region is not None:
        gdf = gdf[gdf.geometry.intersects(region)]
    if info.covering is not None and info.covering["xmin"][0] not in (columns or ()):
        # the covering column is the file's index, not an attribute (geopandas and GDAL hide it too)
        gdf = gdf.drop(columns=[info.covering["xmin"][0]], errors="ignore")
    gdf = gdf.reset_index(drop=True) if region is not None else gdf
    gdf.attrs.update(
        {
            "source": path,
            "row_groups_read": len(groups),
            "row_groups_total": total,
            "bytes_read": int(bytes_read),
        }
    )
    return gdf


def _to_geodataframe(gpd: Any, table: Any, info: GeoParquetInfo, path: str) -> Any:
    from pyproj import CRS

    crs = CRS.from_json_dict(info.crs) if isinstance(info.crs, dict) else CRS.from_user_input(info.crs)
    if info.encoding.upper() == "WKB":
        frame = table.drop_columns([info.column]).to_pandas()
        geometry = gpd.GeoSeries.from_wkb(table.column(info.column).to_numpy(zero_copy_only=False), crs=crs)
        geometry.index = frame.index
        frame.insert(table.schema.get_field_index(info.column), info.column, geometry)  # the file's order
        _decode_other_geometries(gpd, table, frame, info)
        return gpd.GeoDataFrame(frame, geometry=info.column, crs=crs)
    try:  # GeoArrow encodings: the field says which, as Arrow's extension name, for from_arrow
        gdf = gpd.GeoDataFrame.from_arrow(_with_geoarrow_name(table, info), geometry=info.column)
    except (ValueError, TypeError) as err:
        cause = f"geometry encoding {info.encoding!r} could not be decoded ({err})"
        raise read_error(path, "cannot read GeoParquet", err, cause=cause) from err
    return gdf.set_crs(crs, allow_override=True)


def _covering_values(table: Any, path: tuple[str, ...]) -> Any:
    import numpy as np

    column = table.column(path[0])
    array = column.combine_chunks() if column.num_chunks else None
    if array is None:
        return np.empty(0)
    for part in path[1:]:
        array = array.field(part)
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)


def _check_covering(table: Any, bounds: Any, covering: dict[str, tuple[str, ...]], path: str) -> None:
    """Refuse a bbox covering that does not hold its row's geometry: bbox reads would skip rows.

    Row groups are skipped by the covering's statistics alone, so a covering
    smaller than its geometries (a writer's bug, a hand-edited file) lost
    the rows of the groups it hid, silently (geopandas' ``read_parquet(bbox=)``
    loses them too). The rows of a bbox read are checked, with a relative 1e-6
    of slack (float32 coverings rounded to nearest): a file whose covering
    lies in the groups read is refused. A covering that lies only in groups
    the query skips cannot be seen without reading them (nor can one moved
    away from every query; the metadata's ``bbox`` cannot tell: writers leave
    it larger than the data, as GeoParquet's own 1.1.0 example does).
    """
    import numpy as np

    values = {key: _covering_values(table, field) for key, field in covering.items()}
    if any(len(v) != len(bounds) for v in values.values()):
        return
    box = np.column_stack([values["xmin"], values["ymin"], values["xmax"], values["ymax"]])
    slack = 1e-6 * np.maximum(1.0, np.abs(bounds))
    with np.errstate(invalid="ignore"):
        outside = (bounds[:, :2] < box[:, :2] - slack[:, :2]).any(axis=1) | (
            bounds[:, 2:] > box[:, 2:] + slack[:, 2:]
        ).any(axis=1)
    outside &= np.isfinite(bounds).all(axis=1)
    if outside.any():
        at = int(np.flatnonzero(outside)[0])
        raise read_error(
            path,
            "cannot read GeoParquet",
            cause=(
                f"its bbox covering does not hold its geometries ({int(outside.sum())} rows read; one has "
                f"geometry bounds {tuple(round(float(v), 6) for v in bounds[at])} and covering "
                f"{tuple(round(float(v), 6) for v in box[at])}), so a bbox read skips rows"
            ),
            hint="re-write the file (geopandas' to_parquet(write_covering_bbox=True))",
        )


def _decode_other_geometries(gpd: Any, table: Any, frame: Any, info: GeoParquetInfo) -> None:
    """Decode the other WKB geometry columns the metadata lists, each with its own CRS (as geopandas does).

    They were left as WKB bytes: a GeoDataFrame whose second geometry column
    was an object column of ``bytes``, its CRS lost.
    """
    from pyproj import CRS

    for name, (encoding, crs) in info.others.items():
        if name not in frame.columns or encoding.upper() != "WKB" or table.schema.get_field_index(name) < 0:
            continue
        other = (
            None
            if crs is None
            else CRS.from_json_dict(crs)
            if isinstance(crs, dict)
            else CRS.from_user_input(crs)
        )
        series = gpd.GeoSeries.from_wkb(table.column(name).to_numpy(zero_copy_only=False), crs=other)
        series.index = frame.index
        frame[name] = series


_GEOARROW = frozenset({"point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon"})


def _with_geoarrow_name(table: Any, info: GeoParquetInfo) -> Any:
    """Name the geometry field's GeoArrow type where the file left it to the ``geo`` metadata.

    GeoParquet 1.1's native encodings (``"point"``, ``"polygon"``, ...) are
    plain Arrow structs and lists in the file; the encoding is stated only
    in the ``geo`` metadata. ``GeoDataFrame.from_arrow`` finds geometry by
    the field's ``ARROW:extension:name``, so it is added here.
    """
    encoding = info.encoding.lower()
    index = table.schema.get_field_index(info.column)
    if encoding not in _GEOARROW or index < 0:
        return table
    field = table.schema.field(index)
    metadata = dict(field.metadata or {})
    if b"ARROW:extension:name" in metadata:
        return table
    metadata[b"ARROW:extension:name"] = f"geoarrow.{encoding}".encode()
    schema = table.schema.set(index, field.with_metadata(metadata))
    return table.cast(schema)
