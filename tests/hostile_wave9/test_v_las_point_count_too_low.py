"""A LAS/LAZ header stating fewer points than the file holds is a ``ReadError``, never points dropped.

laspy (the reference) reads as many points as the header states and drops
the rest, silently; so did ``read_point_cloud``. Promised:

- uncompressed LAS (1.2 and 1.4, both count fields lowered): more than one
  point's bytes after the stated points (before the EVLRs or the file's end)
  are refused;
- LAZ of point formats 6-10 (layered chunks, each stating its count): chunks
  holding more points than stated are refused, a count lowered inside the
  last chunk included;
- LAZ of point formats 0-5: a chunk table with more chunks than the stated
  count needs is refused (a count lowered inside the last chunk cannot be
  seen: not promised);
- honest files read every point: with EVLRs after the points, LAS 1.3 with
  waveform records, a LAZ of several chunks.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

laspy = pytest.importorskip("laspy")
pytest.importorskip("lazrs")

from laspy.vlrs.known import WktCoordinateSystemVlr  # noqa: E402
from laspy.vlrs.vlrlist import VLRList  # noqa: E402
from pyproj import CRS  # noqa: E402

from terrapipe.core.errors import ReadError  # noqa: E402
from terrapipe.io.point_cloud import open_point_cloud  # noqa: E402

REAL = Path(__file__).parents[1] / "data" / "laspy"


def _las(version: str, point_format: int, n: int) -> object:
    header = laspy.LasHeader(point_format=point_format, version=version)
    header.scales = np.array([0.01, 0.01, 0.01])
    header.offsets = np.zeros(3)
    header.add_crs(CRS.from_epsg(32631))
    las = laspy.LasData(header)
    las.x = np.arange(n) * 0.01
    las.y = np.zeros(n)
    las.z = np.zeros(n)
    return las


def _lowered(path: Path, to: int) -> Path:
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 107, to)  # the legacy count
    if data[24:26] == b"\x01\x04":  # LAS 1.4: the 64-bit count too
        struct.pack_into("<Q", data, 247, to)
    out = path.with_name("lowered-" + path.name)
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(("version", "point_format"), [("1.2", 3), ("1.4", 6)])
def test_an_las_with_points_past_its_count_is_refused(
    tmp_path: Path, version: str, point_format: int
) -> None:
    path = tmp_path / f"fifty-{version}.las"
    _las(version, point_format, 50).write(path)
    lowered = _lowered(path, 40)
    assert len(laspy.read(lowered).points) == 40  # the reference drops ten, silently
    with pytest.raises(ReadError, match=r"lowered-fifty.*10 more points.*40 it states"):
        open_point_cloud(str(lowered))


def test_a_laz_with_chunks_past_its_count_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "three-chunks.laz"
    _las("1.2", 3, 120_000).write(path)  # chunks of 50000 points
    lowered = _lowered(path, 60_000)
    assert len(laspy.read(lowered).points) == 60_000
    with pytest.raises(ReadError, match=r"lowered-three-chunks\.laz.*3 chunks.*2 would hold 60000"):
        open_point_cloud(str(lowered))
    assert len(open_point_cloud(str(path))) == 120_000


@pytest.mark.parametrize("n", [50, 120_000])
def test_a_layered_laz_with_points_past_its_count_is_refused(tmp_path: Path, n: int) -> None:
    path = tmp_path / f"layered-{n}.laz"
    _las("1.4", 6, n).write(path)
    assert len(open_point_cloud(str(path))) == n  # every chunk's count summed: the header's
    lowered = _lowered(path, n - 10)  # inside the last chunk
    assert len(laspy.read(lowered).points) == n - 10
    with pytest.raises(ReadError, match=rf"lowered-layered-{n}\.laz.*its chunks hold {n}"):
        open_point_cloud(str(lowered))


def test_honest_files_read_every_point(tmp_path: Path) -> None:
    las = _las("1.4", 6, 30)
    las.evlrs = VLRList([WktCoordinateSystemVlr(CRS.from_epsg(32631).to_wkt())])
    path = tmp_path / "evlr.las"
    las.write(path)
    assert len(open_point_cloud(str(path))) == 30
    waveform = REAL / "simple1_3.las"  # LAS 1.3, waveform records after the points
    assert len(open_point_cloud(str(waveform), crs="EPSG:32632")) == len(laspy.read(waveform).points)


@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_a_count_far_past_the_file_is_refused_before_reading(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"twenty{suffix}"
    _las("1.4", 6, 20).write(path)
    data = bytearray(path.read_bytes())
    struct.pack_into("<Q", data, 247, 2**40)  # the 64-bit count
    path.write_bytes(bytes(data))
    # was a MemoryError with no text (laspy allocating 2**40 points)
    with pytest.raises(
        ReadError, match=rf"twenty\{suffix}.*1099511627776 points.*(the file has|chunks hold 20)"
    ):
        open_point_cloud(str(path))
