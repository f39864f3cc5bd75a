"""A COPC hierarchy that lies is a ``ReadError``, never points given twice, lost, or given for another place.

The files are laspy 2.7.0's ``simple_with_page.copc.laz`` (tests/conformance
data) with their root hierarchy page edited. Promised:

- two nodes pointing at one chunk, or at overlapping bytes (in one page or
  across pages), are refused (the chunk decompressed for both: its points
  twice, the other node's never; the total kept the header's count, so no
  count check saw it; laspy's reader returns the same 1065 points with 19
  duplicates);
- a chunk named for the wrong node (two entries' keys swapped: points outside
  their node's cube) is refused: a query by bounds missed their true place;
- a node key outside the octree (x, y or z past ``2**level``) is refused;
- a node listed twice with different chunks is refused;
- a node whose entry states more or fewer points than its chunk holds (a
  layered LAZ chunk states its count) is refused: fewer read its first points
  only, silently, in a query by bounds;
- the untouched file still reads every point, equal to laspy.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest

laspy = pytest.importorskip("laspy")
pytest.importorskip("lazrs")

from terrapipe.core.errors import ReadError  # noqa: E402
from terrapipe.io.copc import _ENTRY, CopcFile  # noqa: E402
from terrapipe.io.point_cloud import open_point_cloud  # noqa: E402

SOURCE = Path(__file__).parents[1] / "conformance" / "files" / "data" / "laspy" / "simple_with_page.copc.laz"
CRS = "EPSG:2994"  # unused: the file declares its own


def _root() -> tuple[bytearray, int, np.ndarray]:
    data = bytearray(SOURCE.read_bytes())
    info = next(iter(CopcFile(str(SOURCE)).header.vlrs))
    start, size = int(info.hierarchy_root_offset), int(info.hierarchy_root_size)
    return data, start, np.frombuffer(bytes(data[start : start + size]), dtype=_ENTRY).copy()


def _write(tmp_path: Path, name: str, data: bytearray, start: int, page: np.ndarray) -> str:
    data[start : start + page.nbytes] = page.tobytes()
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return str(path)


def _extent() -> tuple[float, float, float, float]:
    header = CopcFile(str(SOURCE)).header
    return (float(header.mins[0]), float(header.mins[1]), float(header.maxs[0]), float(header.maxs[1]))


def _quarter() -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = _extent()
    return (x0, y0, (x0 + x1) / 2, (y0 + y1) / 2)


def test_the_untouched_file_reads_every_point_as_laspy(tmp_path: Path) -> None:
    cloud = open_point_cloud(str(SOURCE), crs=CRS)
    las = laspy.read(SOURCE)
    ours = np.sort(cloud.xyz.view("f8,f8,f8").ravel())
    theirs = np.sort(np.column_stack([las.x, las.y, las.z]).astype(np.float64).view("f8,f8,f8").ravel())
    assert np.array_equal(ours, theirs)
    assert len(open_point_cloud(str(SOURCE), crs=CRS, bounds=_quarter())) > 0


def test_two_nodes_on_one_chunk_are_refused(tmp_path: Path) -> None:
    data, start, page = _root()
    counts = collections.Counter(int(c) for c in page["point_count"] if c > 0)
    same = next(c for c, n in counts.items() if n >= 2)  # same count: the totals still add up
    first, second = np.flatnonzero(page["point_count"] == same)[:2]
    page[second]["offset"] = page[first]["offset"]
    page[second]["byte_size"] = page[first]["byte_size"]
    path = _write(tmp_path, "one-chunk-twice.copc.laz", data, start, page)
    with laspy.CopcReader.open(path) as reader:  # the reference takes it, duplicates and all
        points = reader.query()
        assert len(points) == 1065
        assert len(np.unique(np.column_stack([points.x, points.y, points.z]), axis=0)) < 1065
    for bounds in (None, _extent(), _quarter()):
        with pytest.raises(ReadError, match=r"one-chunk-twice\.copc\.laz.*overlapping bytes"):
            open_point_cloud(path, crs=CRS, bounds=bounds)


def test_overlapping_chunks_are_refused(tmp_path: Path) -> None:
    data, start, page = _root()
    with_points = np.flatnonzero(page["point_count"] > 0)
    chunk = page[with_points[1]]
    chunk["offset"] = chunk["offset"] - 8  # reaches into the bytes of the chunk before it
    path = _write(tmp_path, "overlap.copc.laz", data, start, page)
    with pytest.raises(ReadError, match=r"overlapping bytes"):
        open_point_cloud(path, crs=CRS, bounds=_quarter())


def test_a_chunk_named_for_another_node_is_refused(tmp_path: Path) -> None:
    data, start, page = _root()
    with_points = np.flatnonzero(page["point_count"] > 0)
    a, b = with_points[1], with_points[-1]
    for field in ("offset", "byte_size", "point_count"):
        page[a][field], page[b][field] = page[b][field].copy(), page[a][field].copy()
    path = _write(tmp_path, "swapped.copc.laz", data, start, page)
    for bounds in (None, _quarter()):
        with pytest.raises(ReadError, match=r"swapped\.copc\.laz.*outside its cube"):
            open_point_cloud(path, crs=CRS, bounds=bounds)


def test_a_node_outside_the_octree_is_refused(tmp_path: Path) -> None:
    data, start, page = _root()
    at = np.flatnonzero((page["level"] == 1) & (page["point_count"] > 0))[0]
    page[at]["x"] = 2  # level 1 has x in 0..1
    path = _write(tmp_path, "outside.copc.laz", data, start, page)
    with pytest.raises(ReadError, match=r"outside the octree"):
        open_point_cloud(path, crs=CRS, bounds=_quarter())


def test_a_node_listed_twice_with_other_chunks_is_refused(tmp_path: Path) -> None:
    data, start, page = _root()
    with_points = np.flatnonzero(page["point_count"] > 0)
    a, b = with_points[1], with_points[2]
    for field in ("level", "x", "y", "z"):
        page[b][field] = page[a][field]
    path = _write(tmp_path, "twice.copc.laz", data, start, page)
    with pytest.raises(ReadError, match=r"twice with different chunks"):
        open_point_cloud(path, crs=CRS)


@pytest.mark.parametrize("delta", [-5, 5], ids=["fewer", "more"])
def test_a_node_stating_another_count_than_its_chunk_is_refused(tmp_path: Path, delta: int) -> None:
    data, start, page = _root()
    reached = {
        (n.level, n.x, n.y, n.z) for n in CopcFile(str(SOURCE)).nodes(_quarter()) if n.point_count > 10
    }
    at = next(i for i, row in enumerate(page) if (row["level"], row["x"], row["y"], row["z"]) in reached)
    page[at]["point_count"] += delta
    name = "fewer" if delta < 0 else "more"
    path = _write(tmp_path, f"count-{name}.copc.laz", data, start, page)
    # fewer: its first points only, silently, where no total is compared (a query by bounds)
    with pytest.raises(ReadError, match=rf"count-{name}\.copc\.laz.*states \d+ points, its chunk holds \d+"):
        open_point_cloud(path, crs=CRS, bounds=_quarter())


def test_a_chunk_of_a_second_page_overlapping_one_of_the_root_page_is_refused(tmp_path: Path) -> None:
    data, _, page = _root()
    pointer = page[np.flatnonzero(page["point_count"] == -1)[0]]
    child_start, child_size = int(pointer["offset"]), int(pointer["byte_size"])
    child = np.frombuffer(bytes(data[child_start : child_start + child_size]), dtype=_ENTRY).copy()
    taken = page[np.flatnonzero(page["point_count"] > 0)[0]]
    at = np.flatnonzero(child["point_count"] > 0)[0]
    child[at]["offset"] = taken["offset"]  # a node of the second page on a root page node's chunk
    data[child_start : child_start + child_size] = child.tobytes()
    path = tmp_path / "across-pages.copc.laz"
    path.write_bytes(bytes(data))
    with pytest.raises(ReadError, match=r"across-pages\.copc\.laz.*overlapping bytes"):
        open_point_cloud(str(path), crs=CRS)
