"""A LAS/LAZ header whose scale is zero (or not finite) is a ``ReadError``, not a collapsed cloud.

Coordinates are the stored integers times the scales plus the offsets;
with a zero x scale laspy (the reference) gives every point x = the offset,
and so did ``read_point_cloud``: 20 points on one line, silently. Promised
for LAS and LAZ, local and at a URL, and for the header ``rasterize_points``
reads.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

laspy = pytest.importorskip("laspy")
pytest.importorskip("lazrs")

from pyproj import CRS  # noqa: E402

from terrapipe.core.errors import ReadError  # noqa: E402
from terrapipe.io.point_cloud import open_point_cloud  # noqa: E402
from tests.servers.http_range import RangeServer  # noqa: E402

SCALE_X = 131  # offset of the x scale factor (f64) in every LAS header


def _file(path: Path, scale: float) -> Path:
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales = np.array([0.01] * 3)
    header.offsets = np.zeros(3)
    header.add_crs(CRS.from_epsg(32631))
    las = laspy.LasData(header)
    las.x, las.y, las.z = np.arange(20) * 1.0, np.arange(20) * 2.0, np.zeros(20)
    las.write(path)
    data = bytearray(path.read_bytes())
    struct.pack_into("<d", data, SCALE_X, scale)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("suffix", [".las", ".laz"])
@pytest.mark.parametrize("scale", [0.0, float("nan"), float("inf")], ids=["zero", "nan", "inf"])
def test_a_zero_or_non_finite_scale_is_refused(tmp_path: Path, suffix: str, scale: float) -> None:
    path = _file(tmp_path / f"scale{suffix}", scale)
    if scale == 0.0:
        assert len(np.unique(laspy.read(path).x)) == 1  # the reference: one x for all
    with pytest.raises(ReadError, match=r"scale.*scales are .*finite and non-zero"):
        open_point_cloud(str(path))


def test_a_zero_scale_at_a_url_is_refused(range_server_session: RangeServer, http_root: Path) -> None:
    path = _file(http_root / "wave9-v-zero-scale.las", 0.0)
    with pytest.raises(ReadError, match=r"wave9-v-zero-scale\.las.*non-zero"):
        open_point_cloud(range_server_session.url_for(path))


def test_the_unedited_file_reads(tmp_path: Path) -> None:
    cloud = open_point_cloud(str(_file(tmp_path / "ok.las", 0.01)))
    np.testing.assert_array_equal(cloud.xyz[:, 0], np.arange(20) * 1.0)
