"""read_point_cloud on real LAS/LAZ/COPC files (laspy 2.7.0's test data), local and over HTTP, against laspy."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

laspy = pytest.importorskip("laspy")
pytest.importorskip("lazrs")

import terrapipe as tp  # noqa: E402
from terrapipe.core.errors import InvalidArgumentError, ReadError  # noqa: E402
from terrapipe.io.copc import CopcFile  # noqa: E402
from terrapipe.io.point_cloud import open_point_cloud  # noqa: E402
from tests.servers.http_range import RangeServer  # noqa: E402

DATA = Path(__file__).parents[1] / "conformance" / "files" / "data" / "laspy"
# file -> CRS to pass when the file declares none
FILES = {
    "simple.las": "EPSG:2992",
    "simple.laz": "EPSG:2992",
    "simple.copc.laz": None,
    "simple_with_page.copc.laz": None,
    "autzen.las": None,
    "1_4_w_evlr.laz": None,
}
# A small box inside simple.*'s extent (x 635619..638982, y 848899..853535).
BOX = (636000.0, 849000.0, 636600.0, 849600.0)


def _laspy_points(path: Path) -> tuple[np.ndarray, object]:
    las = laspy.read(path)
    return np.column_stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)]), las


def _sorted(xyz: np.ndarray, *more: np.ndarray) -> np.ndarray:
    table = np.column_stack([xyz, *more])
    return table[np.lexsort(table.T[::-1])]


@pytest.mark.parametrize("name", sorted(FILES))
def test_whole_file_equals_laspy(name: str) -> None:
    path = DATA / name
    cloud = tp.open_point_cloud(str(path), crs=FILES[name])
    xyz, las = _laspy_points(path)
    assert len(cloud) == len(las.points) == las.header.point_count
    np.testing.assert_array_equal(cloud.xyz, xyz)  # same order: every node of a COPC, in file order
    for field in ("intensity", "classification", "return_number", "number_of_returns"):
        np.testing.assert_array_equal(cloud.fields[field], np.asarray(las[field]))
    assert cloud.scales == tuple(las.header.scales)
    assert cloud.offsets == tuple(las.header.offsets)
    assert cloud.copc == name.endswith(".copc.laz")
    declared = las.header.parse_crs()
    if declared is not None:
        assert cloud.crs_wkt == declared.to_wkt()


@pytest.mark.parametrize("name", ["simple.copc.laz", "simple_with_page.copc.laz", "simple.laz"])
def test_bounds_equal_laspy_filtered(name: str) -> None:
    path = DATA / name
    cloud = open_point_cloud(str(path), bounds=BOX, crs="EPSG:2992", fields=("intensity", "gps_time"))
    xyz, las = _laspy_points(path)
    keep = (xyz[:, 0] >= BOX[0]) & (xyz[:, 0] <= BOX[2]) & (xyz[:, 1] >= BOX[1]) & (xyz[:, 1] <= BOX[3])
    assert 0 < keep.sum() < len(xyz)
    np.testing.assert_array_equal(
        _sorted(cloud.xyz, cloud.fields["intensity"], cloud.fields["gps_time"]),
        _sorted(xyz[keep], np.asarray(las.intensity)[keep], np.asarray(las.gps_time)[keep]),
    )


def test_copc_nodes_equal_laspy_copc_reader() -> None:
    path = DATA / "simple_with_page.copc.laz"
    ours = CopcFile(str(path)).query(BOX)
    with laspy.CopcReader.open(str(path)) as reader:
        theirs = reader.query(laspy.copc.Bounds(mins=np.array(BOX[:2]), maxs=np.array(BOX[2:])))
    assert len(ours) == len(theirs) > 0
    np.testing.assert_array_equal(np.sort(ours.array), np.sort(theirs.array))


def test_copc_reads_only_the_nodes_of_a_small_box_over_http(server: RangeServer, http_root: Path) -> None:
    name = "pc-small-box.copc.laz"
    shutil.copy(DATA / "simple_with_page.copc.laz", http_root / name)
    size = (http_root / name).stat().st_size
    url = server.url_for(http_root / name)
    cloud = open_point_cloud(url, bounds=BOX)
    served = server.bytes_served()
    local = open_point_cloud(str(DATA / "simple_with_page.copc.laz"), bounds=BOX)
    np.testing.assert_array_equal(_sorted(cloud.xyz), _sorted(local.xyz))
    assert len(cloud) > 0
    assert served == cloud.bytes_fetched
    assert served < 0.3 * size, (served, size)  # header + root page + one extra page + a few nodes
    whole = open_point_cloud(url)
    assert len(whole) == 1065
    assert whole.bytes_fetched > 0.9 * size


def test_las_and_laz_over_http_equal_local(server: RangeServer, http_root: Path) -> None:
    for name in ("autzen.las", "1_4_w_evlr.laz"):
        target = http_root / f"pc-{name}"
        shutil.copy(DATA / name, target)
        remote = open_point_cloud(server.url_for(target))
        local = open_point_cloud(str(DATA / name))
        np.testing.assert_array_equal(remote.xyz, local.xyz)
        assert remote.source.startswith("http://127.0.0.1")


def test_stage_reads_each_path_and_skips_bad_ones(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-cloud.las"
    bad.write_bytes(b"PK\x03\x04" + b"\0" * 400)
    pipe = tp.from_items([str(DATA / "autzen.las"), str(bad), DATA / "simple.copc.laz"]).read_point_cloud(
        on_error="skip"
    )
    clouds = list(pipe)
    assert [len(c) for c in clouds] == [106, 1065]
    assert pipe.stats.skipped == 1
    with pytest.raises(ReadError, match="no LASF signature"):
        list(tp.from_items([str(bad)]).read_point_cloud())


# --- hostile input --------------------------------------------------------------------------------


def test_crs_less_file_is_refused_unless_crs_given() -> None:
    with pytest.raises(ReadError, match=r"simple\.las.*declares no CRS.*crs="):
        open_point_cloud(str(DATA / "simple.las"))
    assert open_point_cloud(str(DATA / "simple.las"), crs="EPSG:2992").crs.to_epsg() == 2992


@pytest.mark.parametrize("name", ["simple.laz", "1_4_w_evlr.laz", "simple.las"])
def test_cut_las_laz_is_a_read_error(name: str, tmp_path: Path) -> None:
    data = (DATA / name).read_bytes()
    cut = tmp_path / f"cut-{name}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ReadError, match=f"cut-{name}"):
        open_point_cloud(str(cut), crs="EPSG:2992")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_cut_copc_is_a_read_error(keep: float, tmp_path: Path) -> None:
    data = (DATA / "simple_with_page.copc.laz").read_bytes()
    cut = tmp_path / "cut.copc.laz"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ReadError, match=r"cut\.copc\.laz.*(cut|past the end)"):
        open_point_cloud(str(cut))


def test_copc_node_chunk_overwritten_is_a_read_error(tmp_path: Path) -> None:
    data = bytearray((DATA / "simple.copc.laz").read_bytes())
    node = CopcFile(str(DATA / "simple.copc.laz")).nodes()[0]
    data[node.offset : node.offset + node.byte_size] = b"\xff" * node.byte_size
    bad = tmp_path / "garbled.copc.laz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ReadError, match="garbled"):
        open_point_cloud(str(bad))


def _patch_count(data: bytes, count: int) -> bytes:
    out = bytearray(data)
    major, minor = out[24], out[25]
    struct.pack_into("<I", out, 107, count)
    if (major, minor) >= (1, 4):
        struct.pack_into("<Q", out, 247, count)
    return bytes(out)


@pytest.mark.parametrize("name", ["simple.las", "simple.laz", "1_4_w_evlr.laz"])
def test_header_lying_about_point_count_is_a_read_error(name: str, tmp_path: Path) -> None:
    data = (DATA / name).read_bytes()
    liar = tmp_path / f"liar-{name}"
    liar.write_bytes(_patch_count(data, laspy.read(DATA / name).header.point_count + 500))
    with pytest.raises(ReadError, match=f"liar-{name}"):
        open_point_cloud(str(liar), crs="EPSG:2992")


def test_copc_header_lying_about_point_count_is_a_read_error(tmp_path: Path) -> None:
    data = (DATA / "simple.copc.laz").read_bytes()
    liar = tmp_path / "liar.copc.laz"
    liar.write_bytes(_patch_count(data, 100))  # nodes hold 1065
    with pytest.raises(ReadError, match=r"liar\.copc\.laz.*more than the header"):
        open_point_cloud(str(liar))
    liar.write_bytes(_patch_count(data, 1565))  # more than the nodes hold
    with pytest.raises(ReadError, match=r"liar\.copc\.laz.*states 1565 points but its COPC nodes hold 1065"):
        open_point_cloud(str(liar))


def test_bad_arguments() -> None:
    with pytest.raises(InvalidArgumentError, match="bounds"):
        open_point_cloud(str(DATA / "autzen.las"), bounds=(1, 2, 0, 3))
    with pytest.raises(InvalidArgumentError, match="red"):
        open_point_cloud(str(DATA / "autzen.las"), fields=("red",))  # point format 1 has no colour


def test_copc_nodes_are_fetched_once_then_served_from_the_bounded_cache() -> None:
    path = str(DATA / "simple_with_page.copc.laz")
    copc = CopcFile(path)
    first = copc.query(BOX)
    after_first = copc.bytes_fetched
    again = copc.query(BOX)
    assert copc.bytes_fetched == after_first  # every node of the box came from the cache
    assert copc.cache_hits == len(copc.nodes(BOX)) > 0
    np.testing.assert_array_equal(first.array, again.array)
    uncached = CopcFile(path, cache_bytes=0)
    uncached.query(BOX)
    fetched = uncached.bytes_fetched
    np.testing.assert_array_equal(uncached.query(BOX).array, first.array)
    assert uncached.bytes_fetched > fetched
    assert uncached.cache_hits == 0


@pytest.mark.parametrize("kind", ["truncate", "status"])
def test_copc_nodes_cut_or_refused_by_the_server_are_a_read_error(
    kind: str, server: RangeServer, http_root: Path
) -> None:
    name = f"pc-hostile-{kind}.copc.laz"
    shutil.copy(DATA / "simple_with_page.copc.laz", http_root / name)
    url = server.url_for(http_root / name)
    copc = CopcFile(url, tp.Storage(retries=0))  # header and root page read honestly
    server.fault(f"/{name}", kind=kind, status=503)
    with pytest.raises(ReadError, match=rf"http://127\.0\.0\.1:\d+/{name}"):
        copc.query(BOX)
    server.clear_faults()
    assert len(copc.query(BOX)) > 0  # nothing half-read was kept


def test_copc_page_read_once_across_queries_and_a_page_that_never_resolves_is_refused(tmp_path: Path) -> None:
    path = DATA / "simple_with_page.copc.laz"
    copc = CopcFile(str(path))
    assert len(copc.query(None)) == 1065
    fetched = copc.bytes_fetched
    assert len(copc.query(None)) == 1065  # the second walk reads neither the page nor any node again
    assert copc.bytes_fetched == fetched
    # the page's entry for its own root node renamed: the node pointing at the page never resolves
    data = bytearray(path.read_bytes())
    info = copc.header.vlrs[0]
    assert copc._entries[(2, 0, 0, 0)][2] > 0  # resolved by the page in the honest file
    page_offset = next(o for o in copc._pages_read if o != int(info.hierarchy_root_offset))
    page = np.frombuffer(bytes(data[page_offset : page_offset + 160]), dtype=copc_entry_dtype()).copy()
    own = (page["level"] == 2) & (page["x"] == 0) & (page["y"] == 0) & (page["z"] == 0)
    page["x"][own] = 3
    page["z"][own] = 3
    data[page_offset : page_offset + 160] = page.tobytes()
    bad = tmp_path / "page-cycle.copc.laz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ReadError, match=r"page-cycle\.copc\.laz.*page twice"):
        open_point_cloud(str(bad))


def copc_entry_dtype() -> np.dtype:  # type: ignore[type-arg]
    from terrapipe.io.copc import _ENTRY

    return _ENTRY


def test_copc_node_cache_stays_within_cache_bytes() -> None:
    path = str(DATA / "simple.copc.laz")
    record_size = CopcFile(path).header.point_format.size
    bound = 40 * record_size  # room for about two nodes of ~16 points
    copc = CopcFile(path, cache_bytes=bound)
    assert len(copc.query(None)) == 1065
    assert 0 < copc._cached_bytes <= bound
    assert sum(len(v) for v in copc._nodes_cache.values()) == copc._cached_bytes
