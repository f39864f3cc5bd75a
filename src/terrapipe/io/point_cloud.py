"""``read_point_cloud``: LAS, LAZ and COPC point clouds, local or remote, as :class:`PointCloud`.

:func:`open_point_cloud` reads one file; the stage :class:`ReadPointCloud`
(functional name ``read_point_cloud``) reads one per element of its source.
Every byte goes through the byte layer (:mod:`terrapipe.io.object_store`), so
paths, ``https://`` URLs and buckets work with one
:class:`~terrapipe.io.storage.Storage`:

- **COPC** (a LAZ 1.4 file whose first VLR is the COPC info VLR): with
  ``bounds=``, only the header, the hierarchy pages the bounds reach and the
  octree nodes whose cube intersects the bounds are fetched
  (:class:`~terrapipe.io.copc.CopcFile`), then points outside the bounds are
  dropped. Without ``bounds`` every node is read.
- **LAS / LAZ**: the whole file is read (up to ``max_bytes``) and decoded by
  laspy (LAZ with ``lazrs``); ``bounds`` then filters the points.

Checks: the number of points decoded must equal the header's point count (a
header lying about it, or a cut file, is a :class:`~terrapipe.core.errors.ReadError`),
and the file must declare a CRS (WKT or GeoTIFF keys VLR) unless ``crs=`` is
given: points without a CRS cannot be put on a chip's grid.

Examples
--------
>>> import terrapipe as tp
>>> path = tp.datasets.sample_point_cloud(tp.datasets.sample_world(), copc=True)
>>> cloud = tp.open_point_cloud(str(path), bounds=(726800, 5073520, 727120, 5073840))
>>> cloud.copc, cloud.crs.to_epsg(), cloud.xyz.shape[1], sorted(cloud.fields)[:2]
(True, 32631, 3, ['classification', 'intensity'])
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyproj import CRS

from terrapipe.core.checks import check_int, check_names
from terrapipe.core.errors import InvalidArgumentError, ReadError
from terrapipe.core.on_error import OnError
from terrapipe.core.optional import require
from terrapipe.core.pipe import IterDataPipe, register
from terrapipe.core.redact import public_url
from terrapipe.io import object_store
from terrapipe.io.copc import CopcFile, _check_bounds, read_las_header
from terrapipe.io.reader_stage import ReaderStage
from terrapipe.io.storage import Storage

__all__ = ["DEFAULT_FIELDS", "PointCloud", "ReadPointCloud", "is_copc", "open_point_cloud", "point_cloud_of"]

#: The point attributes kept by default next to x, y, z.
DEFAULT_FIELDS = ("intensity", "classification", "return_number", "number_of_returns")
#: Largest LAS/LAZ file read whole by default (COPC reads only what the bounds need).
DEFAULT_MAX_BYTES = 2 * 1024**3


@dataclass(frozen=True, eq=False)
class PointCloud:
    """Points read from one LAS/LAZ/COPC file (or the part of it inside ``bounds``).

    Attributes
    ----------
    xyz
        ``(n, 3)`` float64 coordinates (scaled: the file's integers times its
        scales plus its offsets), in ``crs``.
    fields
        One ``(n,)`` array per attribute (``intensity``, ``classification``, ...).
    crs
        The horizontal CRS of x and y (the first part of a compound CRS).
    crs_wkt
        The file's full CRS as WKT (with its vertical part, if any).
    scales, offsets
        The file's scales and offsets (x, y, z): coordinates are exact
        multiples of ``scales`` from ``offsets``.
    bounds
        ``(minx, miny, maxx, maxy)`` asked for, or the header's extent.
    source
        ``scheme://host/path`` of the file (no query string).
    copc
        Whether the file is COPC (read by node).
    bytes_fetched
        Bytes read from storage for this cloud.
    """

    xyz: np.ndarray
    fields: Mapping[str, np.ndarray]
    crs: CRS
    crs_wkt: str
    scales: tuple[float, float, float]
    offsets: tuple[float, float, float]
    bounds: tuple[float, float, float, float]
    source: str
    copc: bool = False
    bytes_fetched: int = 0
    point_format: int = field(default=0)

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    def __repr__(self) -> str:
        return f"PointCloud({len(self)} points, crs={self.crs.to_string()!r}, source={self.source!r})"

    def select(self, keep: np.ndarray) -> PointCloud:
        """Return the points where ``keep`` (a boolean mask or indices) selects them."""
        return PointCloud(
            xyz=self.xyz[keep],
            fields={k: v[keep] for k, v in self.fields.items()},
            crs=self.crs,
            crs_wkt=self.crs_wkt,
            scales=self.scales,
            offsets=self.offsets,
            bounds=self.bounds,
            source=self.source,
            copc=self.copc,
            bytes_fetched=self.bytes_fetched,
            point_format=self.point_format,
        )

    def within(self, bounds: Sequence[float]) -> PointCloud:
        """Return the points inside ``(minx, miny, maxx, maxy)``, edges included."""
        box = _check_bounds(bounds)
        x, y = self.xyz[:, 0], self.xyz[:, 1]
        keep = (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])
        return self.select(keep)


def is_copc(header: Any) -> bool:
    """Whether a ``laspy.LasHeader`` is a COPC file's (its first VLR is the COPC info VLR)."""
    vlrs = list(header.vlrs)
    return bool(vlrs) and type(vlrs[0]).__name__ == "CopcInfoVlr"


def _declared_crs(header: Any, where: str) -> CRS | None:
    """Return the CRS a LAS header declares, by the record the LAS 1.4 spec says governs; ``None`` if none.

    The global encoding's WKT bit (always set for point formats 6-10) says
    whether the WKT record or the GeoTIFF keys define the CRS; a file with
    only the other one is read by it. laspy's ``parse_crs`` prefers a WKT
    record whatever the bit says (a stale WKT next to the governing GeoTIFF
    keys won), and returns ``None`` for GeoTIFF keys that name a CRS it
    cannot build (user-defined, code 32767), which read as a file without
    CRS, so that ``crs=`` was taken for it: that is an error here. Records
    that name no CRS at all (an empty WKT, keys without a projected or
    geographic CRS key) count as none. Records among the EVLRs count
    (:func:`~terrapipe.io.copc.read_las_header` reads them where the VLRs
    lack them).
    """
    records = [*header.vlrs, *(header.evlrs or ())]
    wkts = [r for r in records if type(r).__name__ == "WktCoordinateSystemVlr"]
    keys = [r for r in records if type(r).__name__ == "GeoKeyDirectoryVlr"]
    wkt_first = bool(header.global_encoding.wkt) or int(header.point_format.id) >= 6
    order = [("WKT", wkts), ("GeoTIFF keys", keys)]
    unreadable = []
    for kind, found in order if wkt_first else order[::-1]:  # the governing record, then the other
        if not found:
            continue
        try:
            parsed: CRS | None = found[0].parse_crs()
        except Exception as err:  # laspy/pyproj on a damaged WKT or GeoTIFF keys record
            raise ReadError(
                f"cannot read the CRS of {where!r}: {err}; its {kind} CRS record is damaged"
            ) from err
        if parsed is not None:
            return parsed
        named = {int(k.id): int(k.value_offset) for k in getattr(found[0], "geo_keys", ())}
        crs_keys = {k: v for k, v in named.items() if k in _CRS_GEO_KEYS}
        if crs_keys:
            unreadable.append(f"GeoTIFF keys {crs_keys}")
    if unreadable:
        raise ReadError(
            f"cannot read the CRS of {where!r}: its {', '.join(unreadable)} name no EPSG CRS (a user-defined "
            "CRS, which is not read); re-write the file with its CRS as WKT (e.g. pdal translate with "
            "a_srs, or laspy's header.add_crs)"
        )
    return None


#: LASzip's compressor code of layered chunks (point formats 6-10), whose chunks state their point count.
_LAYERED_CHUNKED = 3

#: GeoTIFF keys that name the horizontal CRS (ProjectedCSTypeGeoKey, GeographicTypeGeoKey).
_CRS_GEO_KEYS = (3072, 2048)


def _crs_of(header: Any, crs: Any, where: str) -> tuple[CRS, str]:
    declared = _declared_crs(header, where)
    if declared is None:
        if crs is None:
            raise ReadError(
                f"{where!r} declares no CRS (no WKT or GeoTIFF keys VLR); pass crs= to say which CRS its "
                "coordinates are in"
            )
        try:
            declared = CRS.from_user_input(crs)
        except Exception as err:
            raise InvalidArgumentError(f"crs={crs!r} is not a CRS pyproj understands") from err
    full = declared
    horizontal = full.sub_crs_list[0] if full.is_compound and full.sub_crs_list else full
    return horizontal, full.to_wkt()


def _record_to_cloud(
    record: Any,
    header: Any,
    *,
    crs: CRS,
    crs_wkt: str,
    fields: Sequence[str],
    bounds: tuple[float, float, float, float],
    where: str,
    copc: bool,
    fetched: int,
) -> PointCloud:
    names = set(record.point_format.dimension_names)
    missing = [f for f in fields if f not in names]
    if missing:
        raise InvalidArgumentError(
            f"{where!r} (point format {record.point_format.id}) has no field(s) {missing}; it has "
            f"{sorted(names)}"
        )
    xyz = np.empty((len(record), 3), dtype=np.float64)
    xyz[:, 0] = np.asarray(record.x)
    xyz[:, 1] = np.asarray(record.y)
    xyz[:, 2] = np.asarray(record.z)
    if not np.all(np.isfinite(xyz)):
        raise ReadError(
            f"cannot read {where!r}: non-finite coordinates (scales or offsets); the file is damaged"
        )
    values = {f: np.ascontiguousarray(np.asarray(record[f])) for f in fields}
    scales = tuple(float(v) for v in header.scales)
    offsets = tuple(float(v) for v in header.offsets)
    return PointCloud(
        xyz=xyz,
        fields=values,
        crs=crs,
        crs_wkt=crs_wkt,
        scales=(scales[0], scales[1], scales[2]),
        offsets=(offsets[0], offsets[1], offsets[2]),
        bounds=bounds,
        source=where,
        copc=copc,
        bytes_fetched=fetched,
        point_format=int(record.point_format.id),
    )


def _read_whole(url: str, storage: Storage | None, max_bytes: int, where: str) -> tuple[Any, Any, int]:
    laspy = require("laspy", extra="pointcloud", feature="read_point_cloud")
    data = object_store.get(url, storage, max_bytes=max_bytes)
    stated = ""
    try:
        with laspy.open(io.BytesIO(data)) as reader:
            header = reader.header
            declared = int(header.point_count)
            stated = f" (its header states {declared} points)"
            # laspy drops the LASzip VLR from the header once it reads the points: keep it for the chunk table
            laszip = [bytes(v.record_data) for v in header.vlrs if type(v).__name__ == "LasZipVlr"]
            needed = int(header.offset_to_point_data) + declared * int(header.point_format.size)
            if not header.are_points_compressed and len(data) < needed:
                # before laspy allocates them: a count lying by 2**40 was a MemoryError with no text
                raise ReadError(
                    f"cannot read {where!r}: {declared} points need {needed} bytes, the file has {len(data)} "
                    "(cut, or the header's point count is wrong)"
                )
            held = _layered_chunk_total(header, data, laszip) if header.are_points_compressed else None
            if held is not None and held < declared:  # before lazrs allocates and decodes them
                raise ReadError(
                    f"cannot read {where!r}: its header states {declared} points, its LAZ chunks hold {held} "
                    "(cut, or the header's point count is wrong)"
                )
            record = reader.read_points(declared)
    except ReadError:
        raise
    except Exception as err:  # laspy/lazrs errors: a cut or damaged file
        raise ReadError(
            f"cannot read the points of {where!r}{stated}: {type(err).__name__}: {err}; the file is damaged or cut"
        ) from err
    if len(record) != declared:
        raise ReadError(
            f"cannot read {where!r}: its header states {declared} points but the file holds {len(record)} "
            "(cut, or the header is wrong)"
        )
    expected = int(header.offset_to_point_data) + declared * int(header.point_format.size)
    if not header.are_points_compressed and len(data) < expected:
        raise ReadError(
            f"cannot read {where!r}: {declared} points need {expected} bytes, the file has {len(data)} (cut)"
        )
    _check_no_undeclared_points(header, data, expected, where, laszip)
    return header, record, len(data)


def _check_no_undeclared_points(
    header: Any, data: bytes, expected: int, where: str, laszip: list[bytes]
) -> None:
    """Refuse a file that holds more points than its header states (laspy reads the count, drops the rest).

    Uncompressed: the bytes between the declared points' end and what
    follows them (the first EVLR, the waveform records, or the file's end)
    must be less than one point. LAZ: the chunk table must have as many
    chunks as the count needs (chunks of a fixed size), or chunks holding
    that many points (variable-size chunks); a lower count inside the last
    chunk cannot be seen there.
    """
    size = int(header.point_format.size)
    declared = int(header.point_count)
    ends = [len(data)]
    for name in ("start_of_first_evlr", "start_of_waveform_data_packet_record"):
        value = int(getattr(header, name, 0) or 0)
        if value >= expected:
            ends.append(value)
    more = None
    if not header.are_points_compressed:
        spare = min(ends) - expected
        if spare >= size:
            more = f"{spare // size} more points' bytes follow the {declared} it states"
    else:
        more = _undeclared_chunks(header, data, declared, laszip)
    if more is not None:
        raise ReadError(
            f"cannot read {where!r}: the file holds more points than its header states ({more}); the header's "
            "point count is wrong: re-write the file (e.g. pdal translate or las2las)"
        )


def _layered_chunk_total(header: Any, data: bytes, laszip: list[bytes], table: Any = None) -> int | None:
    """Return the points a layered LAZ's chunks state they hold (point formats 6-10); ``None``: unknown.

    Each layered chunk states its count after its raw first point; the chunk
    table gives where each chunk starts.
    """
    if not laszip or len(laszip[0]) < 2 or struct.unpack_from("<H", laszip[0], 0)[0] != _LAYERED_CHUNKED:
        return None
    if table is None:
        lazrs = require("lazrs", extra="pointcloud", feature="read_point_cloud")
        try:
            source = io.BytesIO(data)
            source.seek(int(header.offset_to_point_data))
            table = lazrs.read_chunk_table(source, lazrs.LazVlr(laszip[0]))
        except Exception:  # no chunk table: nothing to compare
            return None
    if not table:
        return None
    size = int(header.point_format.size)
    start = int(header.offset_to_point_data) + 8  # after the chunk table's offset
    total = 0
    for _, length in table:
        if start + size + 4 > len(data):
            return None  # cut: the read says so
        total += int(struct.unpack_from("<I", data, start + size)[0])
        start += int(length)
    return total


def _undeclared_chunks(header: Any, data: bytes, declared: int, laszip: list[bytes]) -> str | None:
    lazrs = require("lazrs", extra="pointcloud", feature="read_point_cloud")
    if not laszip:
        return None
    try:
        vlr = lazrs.LazVlr(laszip[0])
        source = io.BytesIO(data)
        source.seek(int(header.offset_to_point_data))
        table = lazrs.read_chunk_table(source, vlr)
        chunk_size = int(vlr.chunk_size())
    except Exception:  # no chunk table (an old LAZ writer): nothing to compare
        return None
    if not table:
        return None
    total = _layered_chunk_total(header, data, laszip, table)
    if total is not None:
        return f"its chunks hold {total}" if total > declared else None
    if chunk_size == 0xFFFFFFFF:  # variable-size chunks: the table states each one's count
        total = sum(int(count) for count, _ in table)
        return f"its chunks hold {total}" if total > declared else None
    needed = -(-declared // chunk_size) if declared else 0
    if len(table) > needed:
        return f"{len(table)} chunks of up to {chunk_size} points, {needed} would hold {declared}"
    return None


def check_fields(fields: Any, what: str = "read_point_cloud") -> tuple[str, ...]:
    """Return point field names as a non-empty tuple of strings; else an :class:`InvalidArgumentError`.

    Examples
    --------
    >>> check_fields("intensity")
    ('intensity',)
    """
    names = check_names(fields, f"{what}: fields")
    if not names or not all(isinstance(name, str) and name for name in names):
        raise InvalidArgumentError(f"{what}: fields must name point attributes (strings), got {fields!r}")
    return tuple(str(name) for name in names)


def open_point_cloud(
    url: str,
    *,
    bounds: Sequence[float] | None = None,
    crs: Any = None,
    fields: Sequence[str] = DEFAULT_FIELDS,
    storage: Storage | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> PointCloud:
    """Read the points of one LAS, LAZ or COPC file (those inside ``bounds``, if given).

    Parameters
    ----------
    url
        Local path, ``https://`` URL or bucket URL (``s3://``, ``gs://``, ``az://``).
    bounds
        ``(minx, miny, maxx, maxy)`` in the file's CRS: keep only the points
        inside (edges included). For COPC, only the octree nodes reaching the
        bounds are fetched.
    crs
        CRS to assume when the file declares none (anything pyproj takes);
        ignored when it declares one.
    fields
        Point attributes to keep next to x, y, z.
    storage
        Configuration of the byte layer (default ``Storage.from_env()``).
    max_bytes
        Refuse a LAS/LAZ file larger than this (it is read whole).

    Returns
    -------
    PointCloud

    Raises
    ------
    ReadError
        Not a LAS/LAZ file, a cut or damaged file, a point count that does not
        match the header, no CRS (and no ``crs=``), or the byte layer's errors.
    InvalidArgumentError
        Bad ``bounds``, or a field the point format lacks.
    MissingDependencyError
        Without laspy/lazrs (``pip install 'terrapipe[pointcloud]'``).

    Examples
    --------
    >>> cloud = open_point_cloud(las_path, bounds=(636000, 849000, 637000, 850000))  # doctest: +SKIP
    """
    if not isinstance(url, str) or not url:
        raise InvalidArgumentError(f"read_point_cloud takes a path or URL, got {url!r}")
    box = None if bounds is None else _check_bounds(bounds)
    fields = check_fields(fields)
    max_bytes = check_int(max_bytes, "read_point_cloud: max_bytes", minimum=1)
    where = public_url(url)
    counter = [0]
    header = read_las_header(url, storage, counter=counter)
    horizontal, wkt = _crs_of(header, crs, where)
    if is_copc(header):
        copc = CopcFile(url, storage, header=header)
        copc.bytes_fetched += counter[0]
        record = copc.query(box)
        if box is None and len(record) != int(header.point_count):
            raise ReadError(
                f"cannot read {where!r}: its header states {int(header.point_count)} points but its COPC "
                f"nodes hold {len(record)} (the header or the hierarchy is wrong)"
            )
        fetched, copc_flag = copc.bytes_fetched, True
    else:
        header, record, size = _read_whole(url, storage, max_bytes, where)
        fetched, copc_flag = counter[0] + size, False
    extent = (float(header.mins[0]), float(header.mins[1]), float(header.maxs[0]), float(header.maxs[1]))
    cloud = _record_to_cloud(
        record,
        header,
        crs=horizontal,
        crs_wkt=wkt,
        fields=fields,
        bounds=box if box is not None else extent,
        where=where,
        copc=copc_flag,
        fetched=fetched,
    )
    return cloud.within(box) if box is not None and not copc_flag else cloud


def point_cloud_of(element: Any, **options: Any) -> PointCloud:
    """Return ``element`` if it is a :class:`PointCloud`, else open it with :func:`open_point_cloud`."""
    if isinstance(element, PointCloud):
        return element
    if hasattr(element, "__fspath__"):
        element = str(element.__fspath__())
    return open_point_cloud(element, **options)


@register("read_point_cloud")
class ReadPointCloud(ReaderStage[PointCloud]):
    """Read each path or URL of ``source`` as a :class:`PointCloud` (see :func:`open_point_cloud`).

    Parameters
    ----------
    source
        A pipe of LAS/LAZ/COPC paths or URLs.
    bounds, crs, fields, storage, max_bytes
        As :func:`open_point_cloud`, for every element.
    on_error
        ``"raise"``, ``"skip"`` or ``"warn"`` (skipped files are counted in ``stats.skipped``).

    Yields
    ------
    PointCloud
    """

    def __init__(
        self,
        source: IterDataPipe[Any],
        *,
        bounds: Sequence[float] | None = None,
        crs: Any = None,
        fields: Sequence[str] = DEFAULT_FIELDS,
        storage: Storage | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_error: OnError = "raise",
    ) -> None:
        super().__init__(source, on_error=on_error)
        self.bounds = None if bounds is None else _check_bounds(bounds)
        self.crs = crs
        self.fields = check_fields(fields)
        self.storage = storage
        self.max_bytes = check_int(max_bytes, "read_point_cloud: max_bytes", minimum=1)

    def open_one(self, element: Any) -> PointCloud:
        """Read one file."""
        return point_cloud_of(
            element,
            bounds=self.bounds,
            crs=self.crs,
            fields=self.fields,
            storage=self.storage,
            max_bytes=self.max_bytes,
        )
