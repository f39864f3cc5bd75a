"""COPC: read only the octree nodes of a Cloud-Optimized Point Cloud that intersect given bounds.

A COPC file is a LAZ 1.4 file whose points are grouped into the nodes of an
octree; each node is one independently compressed LAZ chunk. The hierarchy
(which node lies where, at which byte offset, with how many points) is kept
in pages of 32-byte entries, a root page and further pages it points to.
:class:`CopcFile` reads, through the byte layer
(:func:`terrapipe.io.object_store.get_ranges`, so local paths, ``https://``
and buckets with one :class:`~terrapipe.io.storage.Storage`):

1. the header and VLRs (two ranged reads: the fixed header, then up to the
   point data offset);
2. the root hierarchy page, and further pages only where the query's bounds
   reach a node that points to one (each page is read once per
   :class:`CopcFile`, then kept);
3. the compressed chunks of the nodes whose cube intersects the bounds, in
   one concurrent ``get_ranges`` call, decompressed with ``lazrs``; decompressed
   nodes are kept (bounded in bytes) for the next query, so the coarse levels
   every chip reaches are fetched once.

laspy's own ``CopcReader`` does the same over a file object with one
``seek`` + ``read`` per range and its own HTTP client (``requests``); we
keep laspy for the header and its point record types, and do the node
selection ourselves so that every byte goes through the one byte layer, with
its deadline, retries and checked ranges, and so that the bytes fetched can
be counted (:attr:`CopcFile.bytes_fetched`).

Everything read is checked: the ``LASF`` signature, the COPC info VLR being
the first VLR, hierarchy pages whose size is a multiple of 32 bytes, node
point counts within the header's point count, a page reached twice (a cycle),
and each chunk decompressing to the number of points its entry states.
Failures are :class:`~terrapipe.core.errors.ReadError` naming the file.

Examples
--------
>>> import terrapipe as tp
>>> copc = CopcFile(str(tp.datasets.sample_point_cloud(tp.datasets.sample_world(), copc=True)))
>>> nodes = copc.nodes((726800, 5073520, 727120, 5073840))
>>> len(nodes) < len(copc.nodes()), len(copc.query((726800, 5073520, 727120, 5073840))) > 0
(True, True)
"""

from __future__ import annotations

import collections
import io
import itertools
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from terrapipe.core.errors import InvalidArgumentError, ReadError
from terrapipe.core.optional import require
from terrapipe.core.redact import public_url
from terrapipe.io import object_store
from terrapipe.io.storage import Storage

__all__ = ["LAS_HEADER_SIZE", "CopcFile", "CopcNode", "read_las_header"]

#: Bytes of the fixed part of a LAS 1.4 header (1.0-1.3 headers are shorter; reading 375 is safe
#: for any real file, whose VLRs or points follow).
LAS_HEADER_SIZE = 375
_ENTRY = np.dtype(
    [
        ("level", "<i4"),
        ("x", "<i4"),
        ("y", "<i4"),
        ("z", "<i4"),
        ("offset", "<u8"),
        ("byte_size", "<i4"),
        ("point_count", "<i4"),
    ]
)
_MAX_LEVEL = 30
_MAX_VLR_BYTES = 64 * 1024 * 1024
_MAX_PAGE_BYTES = 64 * 1024 * 1024
#: Bytes of an EVLR's header, and how many EVLR headers are walked at most to find the CRS.
_EVLR_HEADER = 60
#: LASzip's compressor code of layered chunks (point formats 6-10), whose chunks state their point count.
_LAYERED_CHUNKED = 3
_MAX_EVLRS = 1024
#: Default bound of a :class:`CopcFile`'s cache of decompressed nodes.
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class CopcNode:
    """One octree node with points: its key, where its chunk lies, how many points it holds."""

    level: int
    x: int
    y: int
    z: int
    offset: int
    byte_size: int
    point_count: int


def read_las_header(url: str, storage: Storage | None, *, counter: list[int] | None = None) -> Any:
    """Read a LAS/LAZ header with its VLRs (not the EVLRs) through the byte layer.

    Parameters
    ----------
    url
        Local path, ``https://`` or bucket URL.
    storage
        Configuration (default ``Storage.from_env()``).
    counter
        A one-element list to which the bytes fetched are added.

    Returns
    -------
    laspy.LasHeader

    Raises
    ------
    ReadError
        Not a LAS/LAZ file (no ``LASF`` signature), a header cut short or unreadable.
    """
    laspy = require("laspy", extra="pointcloud", feature="read_point_cloud")
    where = public_url(url)
    try:
        head = object_store.get(url, storage, range=(0, LAS_HEADER_SIZE))
    except ReadError:  # shorter than 375 bytes (an old header with no points), or really unreadable
        head = object_store.get(url, storage, max_bytes=LAS_HEADER_SIZE)
    if counter is not None:
        counter[0] += len(head)
    if len(head) < 227:  # the LAS 1.0 header size: anything shorter is no LAS file
        raise ReadError(f"cannot read {where!r}: {len(head)} bytes is too short for a LAS/LAZ file")
    if head[:4] != b"LASF":
        raise ReadError(f"cannot read {where!r}: no LASF signature, not a LAS/LAZ file")
    header_size = struct.unpack_from("<H", head, 94)[0]
    point_offset = struct.unpack_from("<I", head, 96)[0]
    if header_size < 227 or point_offset < header_size:
        raise ReadError(
            f"cannot read {where!r}: the header states a header of {header_size} bytes and points at "
            f"byte {point_offset}; the file is damaged"
        )
    if point_offset - header_size > _MAX_VLR_BYTES:
        raise ReadError(f"cannot read {where!r}: {point_offset - header_size} bytes of VLRs, over the cap")
    data = (
        head
        if point_offset <= len(head)
        else head + object_store.get(url, storage, range=(len(head), point_offset))
    )
    if counter is not None and point_offset > len(head):
        counter[0] += point_offset - len(head)
    try:
        header = laspy.LasHeader.read_from(io.BytesIO(data[:point_offset]))
    except Exception as err:  # laspy's errors: damaged header or VLRs
        raise ReadError(f"cannot read the LAS header of {where!r}: {err}; the file is damaged") from err
    scales = np.asarray(header.scales, dtype=np.float64)
    if not np.all(np.isfinite(scales)) or np.any(scales == 0):
        # every point of an axis with a zero scale sits at its offset: a cloud collapsed, silently
        raise ReadError(
            f"cannot read {where!r}: its header's scales are {tuple(float(v) for v in scales)}; a scale must be "
            "finite and non-zero (coordinates are integers times scales plus offsets); the file is damaged"
        )
    header.evlrs = _crs_evlrs(header, url, storage, counter, where)
    return header


def _crs_evlrs(header: Any, url: str, storage: Storage | None, counter: list[int] | None, where: str) -> Any:
    """Return the CRS records among a LAS 1.4 file's EVLRs (a ``VLRList``), or ``None``.

    LAS 1.4 lets the CRS (WKT or GeoTIFF keys) be an EVLR, after the points;
    a reader of the VLRs alone found no CRS and took ``crs=`` for it (silently
    wrong). They are looked for only where the VLRs lack the CRS record the
    header's WKT bit asks for: the EVLR headers are walked (60 bytes each) and
    only the ``LASF_Projection`` records are fetched.
    """
    count, start = (
        int(getattr(header, "number_of_evlrs", 0) or 0),
        int(getattr(header, "start_of_first_evlr", 0) or 0),
    )
    if count <= 0 or start <= 0:
        return None
    kinds = {type(v).__name__ for v in header.vlrs}
    wkt = bool(header.global_encoding.wkt) or header.point_format.id >= 6
    if ("WktCoordinateSystemVlr" if wkt else "GeoKeyDirectoryVlr") in kinds:
        return None
    vlrlist = require("laspy.vlrs.vlrlist", extra="pointcloud", feature="read_point_cloud")
    size = object_store.size(url, storage)
    found = bytearray()
    kept = 0
    offset = start
    for _ in range(min(count, _MAX_EVLRS)):
        if offset + _EVLR_HEADER > size:
            raise ReadError(
                f"cannot read {where!r}: its header declares {count} EVLRs from byte {start}, the file ends at "
                f"{size}; the file is cut or damaged"
            )
        head = object_store.get(url, storage, range=(offset, offset + _EVLR_HEADER))
        user_id = head[2:18].rstrip(b"\0")
        (length,) = struct.unpack_from("<Q", head, 20)
        end = offset + _EVLR_HEADER + length
        if end > size:
            raise ReadError(
                f"cannot read {where!r}: an EVLR at byte {offset} ends at {end}, past the file's end ({size}); "
                "the file is cut or damaged"
            )
        if counter is not None:
            counter[0] += len(head)
        if user_id == b"LASF_Projection" and length <= _MAX_VLR_BYTES:
            body = object_store.get(url, storage, range=(offset + _EVLR_HEADER, end))
            if counter is not None:
                counter[0] += len(body)
            found += head + body
            kept += 1
        offset = end
    if not kept:
        return None
    try:
        return vlrlist.VLRList.read_from(io.BytesIO(bytes(found)), kept, extended=True)
    except Exception as err:  # laspy's errors: damaged records
        raise ReadError(f"cannot read the CRS EVLR of {where!r}: {err}; the file is damaged") from err


class CopcFile:
    """A COPC file opened for spatial queries through the byte layer.

    Parameters
    ----------
    url
        Local path, ``https://`` URL or bucket URL of a ``.copc.laz`` file.
    storage
        Configuration (default ``Storage.from_env()``).
    header
        Its header, when already read (:func:`read_las_header`).
    cache_bytes
        Decompressed nodes kept for later queries, at most this many bytes
        (least recently used dropped first; ``0``: none). The coarse levels of
        the octree reach every chip, so chips after the first read them from here.

    Attributes
    ----------
    header
        The ``laspy.LasHeader`` (scales, offsets, point format, CRS VLRs).
    bytes_fetched
        Bytes read so far (header, hierarchy pages, point chunks).
    requests
        Ranged reads made so far.
    cache_hits
        Nodes served from the cache of decompressed nodes.

    Raises
    ------
    ReadError
        Not a COPC file, or a damaged header or root hierarchy page.
    """

    def __init__(
        self,
        url: str,
        storage: Storage | None = None,
        *,
        header: Any = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.url = url
        self.where = public_url(url)
        self.storage = storage
        self._lock = threading.Lock()
        counter = [0]
        self.header = header if header is not None else read_las_header(url, storage, counter=counter)
        self.bytes_fetched = counter[0]
        self.requests = 0 if header is not None else 2
        vlrs = list(self.header.vlrs)
        info = vlrs[0] if vlrs else None
        if info is None or type(info).__name__ != "CopcInfoVlr":
            raise ReadError(f"cannot read {self.where!r} as COPC: its first VLR is not the COPC info VLR")
        self.center = np.asarray(info.center, dtype=np.float64)
        self.halfsize = float(info.halfsize)
        if not (np.all(np.isfinite(self.center)) and np.isfinite(self.halfsize) and self.halfsize > 0):
            raise ReadError(f"cannot read {self.where!r}: the COPC octree's cube is not finite")
        laz = [v for v in vlrs if type(v).__name__ == "LasZipVlr"]
        if not laz:
            raise ReadError(f"cannot read {self.where!r}: a COPC file without its LASzip VLR")
        self._laszip = bytes(laz[0].record_data)
        self._entries: dict[tuple[int, int, int, int], tuple[int, int, int]] = {}
        # the point chunks of the pages read, sorted by offset (to refuse overlapping ones)
        self._chunk_starts = np.empty(0, dtype=np.int64)
        self._chunk_ends = np.empty(0, dtype=np.int64)
        self._chunk_key_at: dict[int, tuple[int, int, int, int]] = {}
        self._pages_read: set[int] = set()
        self.cache_bytes = int(cache_bytes)
        self.cache_hits = 0
        self._nodes_cache: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._cached_bytes = 0
        self._read_page(int(info.hierarchy_root_offset), int(info.hierarchy_root_size))

    def __repr__(self) -> str:
        return f"CopcFile({self.where!r})"

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the lock and the cache of decompressed nodes (process workers rebuild it)."""
        state = self.__dict__.copy()
        del state["_lock"]
        state["_nodes_cache"] = collections.OrderedDict()
        state["_cached_bytes"] = 0
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _fetch(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        try:
            parts = object_store.get_ranges(self.url, ranges, self.storage)
        except ReadError as err:  # a range past the end of a cut file reads as a generic failure: say so
            end = max(b for _, b in ranges)
            try:
                total = object_store.size(self.url, self.storage)
            except ReadError:
                raise err from None
            if end > total:
                raise ReadError(
                    f"cannot read {self.where!r}: the COPC hierarchy points at bytes up to {end} of a "
                    f"{total}-byte file; the file is cut or damaged"
                ) from None
            raise
        with self._lock:
            self.bytes_fetched += sum(len(p) for p in parts)
            self.requests += len(parts)
        return parts

    def _read_page(self, offset: int, size: int) -> None:
        if size <= 0 or size % _ENTRY.itemsize or size > _MAX_PAGE_BYTES:
            raise ReadError(
                f"cannot read {self.where!r}: a COPC hierarchy page of {size} bytes (not a positive "
                "multiple of 32); the file is damaged"
            )
        with self._lock:
            if offset in self._pages_read:  # read, and its entries did not resolve the node pointing to it
                raise ReadError(
                    f"cannot read {self.where!r}: the COPC hierarchy reaches a page twice (a cycle)"
                )
        (data,) = self._fetch([(offset, offset + size)])
        page = np.frombuffer(data, dtype=_ENTRY)
        limit = int(self.header.point_count)
        bad = (page["level"] < 0) | (page["level"] > _MAX_LEVEL) | (page["point_count"] < -1)
        bad |= page["point_count"] > limit
        bad |= (page["byte_size"] < 0) | ((page["point_count"] != 0) & (page["byte_size"] == 0))
        if bad.any():
            raise ReadError(
                f"cannot read {self.where!r}: a COPC hierarchy entry is out of range (level, point count "
                f"over the header's {limit}, or size); the file is damaged"
            )
        side = np.left_shift(np.int64(1), page["level"].astype(np.int64))
        outside = np.zeros(len(page), dtype=bool)
        for axis in ("x", "y", "z"):
            outside |= (page[axis] < 0) | (page[axis] >= side)
        if outside.any():
            row = page[np.flatnonzero(outside)[0]]
            raise ReadError(
                f"cannot read {self.where!r}: a COPC hierarchy entry names node {int(row['level'])}-"
                f"{int(row['x'])}-{int(row['y'])}-{int(row['z'])}, outside the octree (its points would be "
                "lost to every query); the file is damaged"
            )
        with self._lock:
            new: dict[tuple[int, int, int, int], tuple[int, int, int]] = {}
            for row in page:
                key = (int(row["level"]), int(row["x"]), int(row["y"]), int(row["z"]))
                entry = (int(row["offset"]), int(row["byte_size"]), int(row["point_count"]))
                before = new.get(key, self._entries.get(key))
                if before is not None and before != entry and before[2] != -1:
                    raise ReadError(
                        f"cannot read {self.where!r}: the COPC hierarchy lists node {'-'.join(map(str, key))} "
                        "twice with different chunks; the file is damaged"
                    )
                new[key] = entry
            self._check_chunks(new)
            self._entries.update(new)
            self._pages_read.add(offset)  # only once read: a failed read may be tried again

    def _check_chunks(self, new: dict[tuple[int, int, int, int], tuple[int, int, int]]) -> None:
        """Refuse point chunks that overlap: two nodes sharing bytes would give the same points twice.

        A hierarchy whose entries point two nodes at one chunk (or at parts of
        one another) decompresses fine, with the same points in both nodes and
        the points of the node overwritten in none: duplicated and lost
        samples, silently (laspy's reader returns them too). The chunks of a
        new page are checked against each other and against the sorted chunks
        of the pages read before (called with the lock held).
        """
        fresh = sorted(
            (o, o + n, k) for k, (o, n, c) in new.items() if c > 0 and self._entries.get(k) != (o, n, c)
        )
        if not fresh:
            return
        for (_, end, first), (start, _, second) in itertools.pairwise(fresh):
            if start < end:
                raise self._overlap(first, second, start)
        starts = np.array([f[0] for f in fresh], dtype=np.int64)
        ends = np.array([f[1] for f in fresh], dtype=np.int64)
        known = len(self._chunk_starts)
        at = np.searchsorted(self._chunk_starts, starts)
        if known:
            before = np.maximum(at - 1, 0)
            after = np.minimum(at, known - 1)
            hits_before = (at > 0) & (self._chunk_ends[before] > starts)
            hits_after = (at < known) & (self._chunk_starts[after] < ends)
            for i in np.flatnonzero(hits_before | hits_after)[:1]:
                other = int(self._chunk_starts[before[i] if hits_before[i] else after[i]])
                raise self._overlap(self._chunk_key_at[other], fresh[i][2], max(other, int(starts[i])))
        self._chunk_starts = np.insert(self._chunk_starts, at, starts)
        self._chunk_ends = np.insert(self._chunk_ends, at, ends)
        for start, _, key in fresh:
            self._chunk_key_at[start] = key

    def _overlap(self, first: tuple[int, ...], second: tuple[int, ...], start: int) -> ReadError:
        return ReadError(
            f"cannot read {self.where!r}: COPC nodes {'-'.join(map(str, first))} and "
            f"{'-'.join(map(str, second))} point at overlapping bytes (from byte {start}); the hierarchy is damaged"
        )

    def _cube(self, level: int, x: int, y: int) -> tuple[float, float, float, float]:
        side = 2.0 * self.halfsize / (1 << level)
        minx = self.center[0] - self.halfsize + x * side
        miny = self.center[1] - self.halfsize + y * side
        return (minx, miny, minx + side, miny + side)

    def nodes(self, bounds: Sequence[float] | None = None) -> list[CopcNode]:
        """Return the nodes with points whose cube intersects ``bounds`` (``(minx, miny, maxx, maxy)``).

        Hierarchy pages are read (once) only where the walk reaches them.
        ``bounds=None`` returns every node.
        """
        box = None if bounds is None else _check_bounds(bounds)
        found: list[CopcNode] = []
        todo = [(0, 0, 0, 0)]
        while todo:
            key = todo.pop()
            if box is not None:
                cube = self._cube(key[0], key[1], key[2])
                if cube[0] > box[2] or cube[2] < box[0] or cube[1] > box[3] or cube[3] < box[1]:
                    continue
            with self._lock:
                entry = self._entries.get(key)
            if entry is None:
                continue
            offset, size, count = entry
            if count == -1:
                self._read_page(offset, size)
                todo.append(key)
                continue
            if count > 0:
                found.append(CopcNode(*key, offset=offset, byte_size=size, point_count=count))
            if key[0] < _MAX_LEVEL:
                level, x, y, z = key
                for dx in (0, 1):
                    for dy in (0, 1):
                        for dz in (0, 1):
                            todo.append((level + 1, 2 * x + dx, 2 * y + dy, 2 * z + dz))
        return found

    def read_nodes(self, nodes: Sequence[CopcNode]) -> Any:
        """Fetch and decompress ``nodes``; return a ``laspy.ScaleAwarePointRecord`` of their points."""
        laspy = require("laspy", extra="pointcloud", feature="read_point_cloud")
        lazrs = require("lazrs", extra="pointcloud", feature="read_point_cloud")
        fmt = self.header.point_format
        if not nodes:
            return laspy.ScaleAwarePointRecord.zeros(0, header=self.header)
        ordered = sorted(nodes, key=lambda n: n.offset)
        total = sum(n.point_count for n in ordered)
        if total > int(self.header.point_count):
            raise ReadError(
                f"cannot read {self.where!r}: its nodes hold {total} points, more than the header's "
                f"{int(self.header.point_count)}; the file is damaged"
            )
        with self._lock:
            cached = {n.offset: self._nodes_cache[n.offset] for n in ordered if n.offset in self._nodes_cache}
            for offset in cached:
                self._nodes_cache.move_to_end(offset)
                self.cache_hits += 1
        missing = [n for n in ordered if n.offset not in cached]
        if missing:
            parts = self._fetch([(n.offset, n.offset + n.byte_size) for n in missing])
            self._check_chunk_counts(missing, parts, int(fmt.size))
            out = np.zeros(sum(n.point_count for n in missing) * fmt.size, dtype=np.uint8)
            table = [(n.point_count, n.byte_size) for n in missing]
            selection = laspy.DecompressionSelection.all().to_lazrs()
            try:
                lazrs.decompress_points_with_chunk_table(b"".join(parts), self._laszip, out, table, selection)
            except Exception as err:  # lazrs raises its own errors on damaged chunks
                raise ReadError(
                    f"cannot decompress COPC nodes of {self.where!r}: {err}; the file is damaged or cut"
                ) from err
            start = 0
            with self._lock:
                for node in missing:
                    end = start + node.point_count * fmt.size
                    cached[node.offset] = out[start:end]
                    start = end
                    if node.point_count * fmt.size <= self.cache_bytes:
                        self._nodes_cache[node.offset] = cached[node.offset]
                        self._cached_bytes += node.point_count * fmt.size
                while self._cached_bytes > self.cache_bytes and self._nodes_cache:
                    _, dropped = self._nodes_cache.popitem(last=False)
                    self._cached_bytes -= len(dropped)
        buffer = np.concatenate([cached[n.offset] for n in ordered])
        packed = laspy.PackedPointRecord.from_buffer(buffer, fmt)
        record = laspy.ScaleAwarePointRecord(packed.array, fmt, self.header.scales, self.header.offsets)
        self._check_in_cubes(record, ordered)
        return record

    def _check_chunk_counts(self, nodes: Sequence[CopcNode], parts: Sequence[bytes], point_size: int) -> None:
        """Refuse a node whose entry states another point count than its chunk holds.

        A layered LAZ chunk (LASzip's compressor 3: point formats 6-10, all of
        COPC) starts with its first point raw, then the number of points it
        holds (u32). An entry stating fewer gave the first ones only (a node
        of 16 points read as 11: points lost, silently, where no total is
        compared, as in every query by bounds); stating more failed deep in
        lazrs. Other compressors record no count here: not checked.
        """
        if len(self._laszip) < 2 or struct.unpack_from("<H", self._laszip, 0)[0] != _LAYERED_CHUNKED:
            return
        for node, chunk in zip(nodes, parts, strict=True):
            if len(chunk) < point_size + 4:
                continue  # too short to hold any point: lazrs says so
            (held,) = struct.unpack_from("<I", chunk, point_size)
            if held != node.point_count:
                raise ReadError(
                    f"cannot read {self.where!r}: COPC node {node.level}-{node.x}-{node.y}-{node.z} states "
                    f"{node.point_count} points, its chunk holds {held}; the hierarchy is damaged"
                )

    def _check_in_cubes(self, record: Any, nodes: Sequence[CopcNode]) -> None:
        """Refuse points outside their node's cube (x, y): a query by bounds would miss them.

        COPC places each point in a node whose cube holds it; the walk of
        :meth:`nodes` trusts that. A hierarchy that names the wrong node for a
        chunk (keys swapped, a chunk moved) gave the points of one place for
        another, and a query of their true place lost them, silently. One
        step of the file's scale (and a relative 1e-9) of slack: coordinates
        are rounded to the scale when written.
        """
        if len(record) == 0:
            return
        nodes = [n for n in nodes if n.point_count > 0]  # the others hold no point (reduceat needs points)
        counts = np.array([n.point_count for n in nodes], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        cubes = np.array([self._cube(n.level, n.x, n.y) for n in nodes], dtype=np.float64)
        scales = np.abs(np.asarray(self.header.scales, dtype=np.float64))
        for axis, (low, high) in enumerate(((0, 2), (1, 3))):
            values = np.asarray(record.x if axis == 0 else record.y, dtype=np.float64)
            lowest, highest = np.minimum.reduceat(values, starts), np.maximum.reduceat(values, starts)
            slack = scales[axis] + 1e-9 * np.maximum(np.abs(cubes[:, low]), np.abs(cubes[:, high]))
            bad = (lowest < cubes[:, low] - slack) | (highest > cubes[:, high] + slack)
            if bad.any():
                node = nodes[int(np.flatnonzero(bad)[0])]
                at = int(np.flatnonzero(bad)[0])
                value = lowest[at] if lowest[at] < cubes[at, low] - slack[at] else highest[at]
                raise ReadError(
                    f"cannot read {self.where!r}: COPC node {node.level}-{node.x}-{node.y}-{node.z} holds a point "
                    f"at {'xy'[axis]}={value:.10g}, outside its cube; the hierarchy is damaged (queries by "
                    "bounds would miss its points)"
                )

    def query(self, bounds: Sequence[float] | None = None) -> Any:
        """Return the points inside ``bounds`` (edges included), reading only the nodes that reach it.

        Returns
        -------
        laspy.ScaleAwarePointRecord
        """
        record = self.read_nodes(self.nodes(bounds))
        if bounds is None or len(record) == 0:
            return record
        box = _check_bounds(bounds)
        x = np.asarray(record.x)
        y = np.asarray(record.y)
        keep = (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])
        record.array = record.array[keep].copy()
        return record


def _check_bounds(bounds: Sequence[float]) -> tuple[float, float, float, float]:
    try:
        box = tuple(float(v) for v in bounds)
    except (TypeError, ValueError) as err:
        raise InvalidArgumentError(f"bounds must be (minx, miny, maxx, maxy), got {bounds!r}") from err
    if len(box) != 4 or not all(np.isfinite(box)) or box[0] > box[2] or box[1] > box[3]:
        raise InvalidArgumentError(f"bounds must be finite (minx, miny, maxx, maxy), got {bounds!r}")
    return (box[0], box[1], box[2], box[3])
