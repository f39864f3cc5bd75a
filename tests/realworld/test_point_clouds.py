"""laspy's LAS/LAZ test files (``tests/data/laspy``) through ``open_point_cloud``, against laspy's own read.

They add to the corpus's (``tests/conformance/files/data/laspy``): LAS 1.1 and 1.3 headers, point
formats 1, 3, 4 and 6, extra-bytes dimensions (registered and not), a CRS in US survey feet (WKT) and one
from GeoTIFF keys (``autzen_geo_proj.las``). Each is read whole, by ``bounds``, over the HTTP range server
and through the stage, and compared with ``laspy.read`` of the same file point for point.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import laspy
import numpy as np
import pytest
from pyproj import CRS

import terrapipe as tp

DATA = Path(__file__).parents[1] / "data" / "laspy"

#: file -> (LAS version, point format, whether it declares a CRS)
FILES = {
    "simple1_1.las": ("1.1", 1, False),
    "simple1_3.las": ("1.3", 4, False),
    "extra.laz": ("1.4", 3, False),
    "test1_4.las": ("1.4", 6, True),
    "autzen_geo_proj.las": ("1.2", 1, True),
    "unregistered_extra_bytes.las": ("1.4", 6, False),
}
ASSUMED = "EPSG:32631"  # for the files that declare no CRS


def _open(path: Path | str, **kwargs: Any) -> Any:
    return tp.open_point_cloud(str(path), crs=ASSUMED, **kwargs)


@pytest.mark.parametrize("name", FILES)
def test_header_is_what_the_case_says(name: str) -> None:
    version, point_format, has_crs = FILES[name]
    las = laspy.read(DATA / name)
    assert str(las.header.version) == version
    assert las.point_format.id == point_format
    assert (las.header.parse_crs() is not None) == has_crs


@pytest.mark.parametrize("name", FILES)
def test_points_and_every_dimension_equal_laspy(name: str) -> None:
    las = laspy.read(DATA / name)
    names = list(las.point_format.dimension_names)
    cloud = _open(DATA / name, fields=[n for n in names if n not in ("X", "Y", "Z")])
    assert len(cloud) == len(las.points) > 0
    np.testing.assert_array_equal(cloud.xyz, np.c_[las.x, las.y, las.z])
    for field in cloud.fields:
        want = np.asarray(las[field])
        assert cloud.fields[field].dtype == want.dtype, field
        np.testing.assert_array_equal(cloud.fields[field], want, err_msg=field)
    assert cloud.scales == tuple(las.header.scales)
    assert cloud.offsets == tuple(las.header.offsets)
    assert cloud.point_format == las.point_format.id


@pytest.mark.parametrize("name", FILES)
def test_crs_is_the_file_s_or_refused_without_crs(name: str) -> None:
    declared = laspy.read(DATA / name).header.parse_crs()
    if declared is None:
        with pytest.raises(tp.ReadError, match="declares no CRS"):
            tp.open_point_cloud(str(DATA / name))
        assert _open(DATA / name).crs == CRS.from_user_input(ASSUMED)
    else:
        cloud = tp.open_point_cloud(str(DATA / name), crs="EPSG:4326")  # ignored: the file has one
        horizontal = declared.sub_crs_list[0] if declared.is_compound else declared
        assert cloud.crs == horizontal
        assert cloud.crs.axis_info[0].unit_name == horizontal.axis_info[0].unit_name  # US feet stay feet


@pytest.mark.parametrize("name", FILES)
def test_bounds_keep_the_points_laspy_keeps(name: str) -> None:
    las = laspy.read(DATA / name)
    x, y = np.asarray(las.x), np.asarray(las.y)
    box = (
        float(np.quantile(x, 0.2)),
        float(np.quantile(y, 0.3)),
        float(np.quantile(x, 0.7)),
        float(np.quantile(y, 0.9)),
    )
    keep = (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])
    assert 0 < keep.sum() < len(x)
    cloud = _open(DATA / name, bounds=box)
    np.testing.assert_array_equal(cloud.xyz, np.c_[las.x, las.y, las.z][keep])
    np.testing.assert_array_equal(cloud.fields["intensity"], np.asarray(las.intensity)[keep])


def test_over_http_and_through_the_stage_equal_local(range_server_session: Any) -> None:
    urls = []
    for name in FILES:
        served = range_server_session.root / f"{uuid.uuid4().hex[:8]}-{name}"
        shutil.copy(DATA / name, served)
        urls.append(range_server_session.url_for(served))
    clouds = list(tp.from_items(urls).read_point_cloud(crs=ASSUMED))
    assert len(clouds) == len(FILES)
    for cloud, name in zip(clouds, FILES, strict=True):
        local = _open(DATA / name)
        np.testing.assert_array_equal(cloud.xyz, local.xyz)
        for field in local.fields:
            np.testing.assert_array_equal(cloud.fields[field], local.fields[field])
