"""Write points as a COPC file (a small writer for the sample world and the benchmarks).

laspy reads COPC but does not write it; this writer makes a valid COPC 1.0
file from a ``laspy.LasData`` of point format 6, 7 or 8:

- the octree cube is centred on the points' extent, with a half size of half
  its largest side; the deepest level is the smallest where a leaf holds
  about ``points_per_node`` points on average;
- each level above the deepest keeps up to ``points_per_node`` points per
  node, drawn at random (seeded), and passes the rest down; the deepest
  level keeps all that reach it (a coarse-to-fine level of detail, as COPC
  readers expect);
- every node is one LAZ chunk (``lazrs``, variable-size chunks), in key
  order; the hierarchy is one page, in an EVLR after the chunk table.

laspy's own ``CopcReader`` reads what this writes (tested), as does
:class:`terrapipe.io.copc.CopcFile`.

Examples
--------
>>> write_copc(las, "points.copc.laz")  # doctest: +SKIP
"""

from __future__ import annotations

import io
import itertools
import os
import struct
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.optional import require

__all__ = ["write_copc"]


def _info_bytes(
    center: np.ndarray, halfsize: float, root: int, size: int, gps_min: float, gps_max: float
) -> bytes:
    """Return the 160 bytes of the COPC info VLR."""
    spacing = 2 * halfsize / 128
    head = struct.pack("<5d2Q2d", *center.tolist(), halfsize, spacing, root, size, gps_min, gps_max)
    return head + bytes(160 - len(head))


def write_copc(las: Any, path: str | os.PathLike[str], *, points_per_node: int = 4096, seed: int = 0) -> Path:
    """Write ``las`` (point format 6-8, with a CRS VLR) as a COPC file at ``path``; return the path.

    Raises
    ------
    InvalidArgumentError
        A point format other than 6, 7 or 8, or no points.
    """
    laspy = require("laspy", extra="pointcloud", feature="write_copc")
    lazrs = require("lazrs", extra="pointcloud", feature="write_copc")
    fmt = las.header.point_format
    if fmt.id not in (6, 7, 8) or fmt.num_extra_bytes:
        raise InvalidArgumentError(
            f"write_copc needs point format 6, 7 or 8 without extra bytes, got {fmt.id}"
        )
    n = len(las.points)
    if n == 0:
        raise InvalidArgumentError("write_copc: no points")
    xyz = np.column_stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)])
    mins, maxs = xyz.min(axis=0), xyz.max(axis=0)
    center = (mins + maxs) / 2
    halfsize = float(max(maxs - mins)) / 2 * 1.000001 + 1e-9
    deepest = 0
    while n / (4 ** (deepest + 1)) > points_per_node and deepest < 20:
        deepest += 1
    cells = 1 << deepest
    ijk = np.floor((xyz - (center - halfsize)) / (2 * halfsize) * cells).astype(np.int64)
    ijk = np.clip(ijk, 0, cells - 1)
    rng = np.random.default_rng(seed)
    priority = rng.random(n)
    level_of = np.full(n, deepest, dtype=np.int64)
    free = np.ones(n, dtype=bool)
    for level in range(deepest):
        idx = np.flatnonzero(free)
        node = ijk[idx] >> (deepest - level)
        flat = (node[:, 0] * (1 << level) + node[:, 1]) * (1 << level) + node[:, 2]
        order = np.lexsort((priority[idx], flat))
        sorted_flat = flat[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_flat)) + 1]
        rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        chosen = idx[order[rank < points_per_node]]
        level_of[chosen] = level
        free[chosen] = False
    keys = ijk >> (deepest - level_of)[:, None]
    order = np.lexsort((keys[:, 2], keys[:, 1], keys[:, 0], level_of))
    packed = las.points.array[order]
    node_keys = np.column_stack([level_of[order], keys[order]])
    boundaries = np.r_[0, np.flatnonzero(np.any(np.diff(node_keys, axis=0) != 0, axis=1)) + 1, n]

    header = laspy.LasHeader(point_format=fmt.id, version="1.4")
    header.scales = las.header.scales
    header.offsets = las.header.offsets
    crs = las.header.parse_crs()
    if crs is not None:
        header.add_crs(crs)
    vlr = lazrs.LazVlr.new_for_compression(fmt.id, 0, True)
    info = laspy.VLR("copc", 1, "copc info", _info_bytes(center, halfsize, 0, 0, 0.0, 0.0))
    extra = list(header.vlrs)
    laszip = laspy.VLR("laszip encoded", 22204, "lazrs", vlr.record_data())
    header.vlrs = laspy.vlrs.vlrlist.VLRList([info, laszip, *extra])
    header.are_points_compressed = True
    header.point_count = n
    header.mins, header.maxs = mins, maxs
    returns = np.asarray(las.return_number)
    header.number_of_points_by_return = np.bincount(np.clip(returns, 0, 15), minlength=16)[1:16]

    target = Path(path)
    partial = target.with_name(f".{uuid.uuid4().hex}.partial")
    try:
        with open(partial, "w+b") as out:
            header.write_to(out)
            data_start = out.tell()
            compressor = lazrs.LasZipCompressor(out, vlr)
            for a, b in itertools.pairwise(boundaries):
                compressor.compress_many(np.ascontiguousarray(packed[a:b]).view(np.uint8))
                compressor.finish_current_chunk()
            compressor.done()
            out.seek(data_start)
            table = lazrs.read_chunk_table(out, vlr)
            out.seek(0, io.SEEK_END)
            offset = data_start + 8
            entries = []
            table = table[: len(boundaries) - 1]  # done() closes one more, empty, chunk after the last node
            for (count, size), a in zip(table, boundaries[:-1], strict=True):
                level, x, y, z = (int(v) for v in node_keys[a])
                entries.append(struct.pack("<iiiiQii", level, x, y, z, offset, size, count))
                offset += size
            # nodes without points on the way to every node with points (readers walk down from the root)
            present = {tuple(int(v) for v in node_keys[a]) for a in boundaries[:-1]}
            missing = set()
            for level, x, y, z in present:
                while level > 0:
                    level, x, y, z = level - 1, x >> 1, y >> 1, z >> 1
                    if (level, x, y, z) not in present:
                        missing.add((level, x, y, z))
            for key in sorted(missing):
                entries.append(struct.pack("<iiiiQii", *key, 0, 0, 0))
            page = b"".join(entries)
            evlr_start = out.tell()
            out.write(struct.pack("<H16sHQ32s", 0, b"copc", 1000, len(page), b"EPT hierarchy"))
            root = out.tell()
            out.write(page)
            gps = np.asarray(las.gps_time)
            info.record_data = _info_bytes(
                center, halfsize, root, len(page), float(gps.min()), float(gps.max())
            )
            header.start_of_first_evlr = evlr_start
            header.number_of_evlrs = 1
            out.seek(0)
            header.write_to(out, ensure_same_size=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target
