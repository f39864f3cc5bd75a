"""A LAS/LAZ file's CRS is the one its records declare, by the LAS 1.4 rules, or a clear error.

Promised (checked against laspy reading the whole file, and the LAS 1.4 R15
spec where laspy's ``parse_crs`` departs from it):

- a CRS stored as an EVLR (after the points, as LAS 1.4 allows) is the file's
  CRS: it was not read, the file passed for one without CRS, and ``crs=`` (a
  fallback for such files) was put on its points, silently wrong;
- the global encoding's WKT bit says which record governs in point formats
  0-5: the GeoTIFF keys when it is clear, even with a (stale) WKT record
  beside them; the other record when the governing one is absent;
- GeoTIFF keys naming a CRS that cannot be built (user-defined, 32767) are a
  ``ReadError``, with or without ``crs=``: laspy reads them as no CRS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

laspy = pytest.importorskip("laspy")

from laspy.vlrs.known import WktCoordinateSystemVlr  # noqa: E402
from laspy.vlrs.vlrlist import VLRList  # noqa: E402
from pyproj import CRS  # noqa: E402

from terrapipe.core.errors import ReadError  # noqa: E402
from terrapipe.io.point_cloud import open_point_cloud  # noqa: E402
from tests.servers.http_range import RangeServer  # noqa: E402


def _las(point_format: int, version: str) -> object:
    header = laspy.LasHeader(point_format=point_format, version=version)
    header.scales = np.array([0.01, 0.01, 0.01])
    header.offsets = np.array([500000.0, 4000000.0, 0.0])
    las = laspy.LasData(header)
    n = 20
    las.x = 500000 + np.arange(n, dtype=np.float64)
    las.y = 4000000 + np.arange(n, dtype=np.float64)
    las.z = np.arange(n, dtype=np.float64)
    return las


def _with_evlr_crs(path: Path, *, compress: bool = False) -> Path:
    las = _las(6, "1.4")
    las.evlrs = VLRList([WktCoordinateSystemVlr(CRS.from_epsg(32632).to_wkt())])
    las.header.global_encoding.wkt = True
    las.write(path, do_compress=compress)
    assert laspy.read(path).header.parse_crs().to_epsg() == 32632  # the reference
    return path


@pytest.mark.parametrize("compress", [False, True], ids=["las", "laz"])
def test_a_crs_in_an_evlr_is_the_file_s_crs_not_the_fallback(tmp_path: Path, compress: bool) -> None:
    path = _with_evlr_crs(tmp_path / f"evlr.la{'z' if compress else 's'}", compress=compress)
    assert open_point_cloud(str(path)).crs.to_epsg() == 32632
    # crs= is for files that declare none: this one does (was 32631, silently)
    assert open_point_cloud(str(path), crs="EPSG:32631").crs.to_epsg() == 32632


def test_a_crs_in_an_evlr_over_http(range_server_session: RangeServer, http_root: Path) -> None:
    path = _with_evlr_crs(http_root / "wave9-v-evlr-crs.las")
    cloud = open_point_cloud(range_server_session.url_for(path), crs="EPSG:32631")
    assert cloud.crs.to_epsg() == 32632
    assert len(cloud) == 20


def _both_records(path: Path, *, wkt_bit: bool, point_format: int = 3) -> Path:
    las = _las(point_format, "1.2" if point_format < 6 else "1.4")
    las.header.add_crs(CRS.from_epsg(32631), keep_compatibility=True)  # GeoTIFF keys
    las.header.vlrs.append(WktCoordinateSystemVlr(CRS.from_epsg(32632).to_wkt()))
    las.header.global_encoding.wkt = wkt_bit
    las.write(path)
    return path


def test_the_geotiff_keys_govern_when_the_wkt_bit_is_clear(tmp_path: Path) -> None:
    path = _both_records(tmp_path / "both.las", wkt_bit=False)
    header = laspy.read(path).header
    assert not header.global_encoding.wkt
    assert header.parse_crs(prefer_wkt=False).to_epsg() == 32631  # the governing record
    assert open_point_cloud(str(path)).crs.to_epsg() == 32631  # was 32632 (laspy's preference)


def test_the_wkt_governs_when_its_bit_is_set(tmp_path: Path) -> None:
    path = _both_records(tmp_path / "both-wkt.las", wkt_bit=True)
    assert open_point_cloud(str(path)).crs.to_epsg() == 32632


def test_the_other_record_serves_when_the_governing_one_is_absent(tmp_path: Path) -> None:
    las = _las(3, "1.2")
    las.header.vlrs.append(WktCoordinateSystemVlr(CRS.from_epsg(32633).to_wkt()))
    path = tmp_path / "wkt-only.las"
    las.write(path)
    assert not laspy.read(path).header.global_encoding.wkt
    assert open_point_cloud(str(path)).crs.to_epsg() == 32633


def test_user_defined_geotiff_keys_are_an_error_not_the_fallback(tmp_path: Path) -> None:
    las = _las(3, "1.2")
    las.header.add_crs(CRS.from_epsg(32631), keep_compatibility=True)
    keys = las.header.vlrs.get("GeoKeyDirectoryVlr")[0]
    for key in keys.geo_keys:
        if key.id == 3072:  # ProjectedCSTypeGeoKey
            key.value_offset = 32767  # user-defined
    path = tmp_path / "user-defined.las"
    las.write(path)
    assert laspy.read(path).header.parse_crs() is None  # laspy: as if there were none
    for crs in (None, "EPSG:32633"):
        with pytest.raises(ReadError, match=r"user-defined\.las.*32767.*WKT"):
            open_point_cloud(str(path), crs=crs)
