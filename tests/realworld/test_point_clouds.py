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


#: (file, a second CRS to put the chip in): US-feet and Oregon-LCC clouds onto metre UTM chips.
RASTERIZED = [
    (DATA / "test1_4.las", "EPSG:32613"),
    (DATA / "autzen_geo_proj.las", "EPSG:32610"),
    (Path(__file__).parents[1] / "conformance/files/data/laspy/simple.copc.laz", "EPSG:32610"),
]


@pytest.mark.parametrize(("path", "other"), RASTERIZED, ids=[p.name for p, _ in RASTERIZED])
@pytest.mark.parametrize("in_other_crs", [False, True])
def test_rasterize_points_counts_and_heights_equal_a_numpy_reference(
    path: Path, other: str, in_other_crs: bool
) -> None:
    """Each point in the pixel whose half-open cell holds it, after pyproj moves it into the chip's CRS."""
    import xarray as xr
    from pyproj import Transformer

    import terrapipe.fuse  # noqa: F401  (registers rasterize_points)

    las = laspy.read(path)
    declared = las.header.parse_crs()
    horizontal = declared.sub_crs_list[0] if declared.is_compound else declared
    target = CRS.from_user_input(other) if in_other_crs else horizontal
    x, y = Transformer.from_crs(horizontal, target, always_xy=True).transform(
        np.asarray(las.x), np.asarray(las.y)
    )
    z = np.asarray(las.z)
    n = 12
    left, top = float(x.min()) - 1e-3, float(y.max()) + 1e-3
    pixel = max(float(x.max() - x.min()), float(y.max() - y.min())) / (n - 1)
    image = xr.DataArray(
        np.zeros((1, n, n), "uint8"),
        dims=("band", "y", "x"),
        coords={"y": top - pixel * (np.arange(n) + 0.5), "x": left + pixel * (np.arange(n) + 0.5)},
    ).rio.write_crs(target)
    out = next(iter(tp.from_items([image]).rasterize_points(str(path))))
    cols = np.floor((x - left) / pixel).astype(int)
    rows = np.floor((top - y) / pixel).astype(int)
    inside = (cols >= 0) & (cols < n) & (rows >= 0) & (rows < n)
    count = np.zeros((n, n), int)
    np.add.at(count, (rows[inside], cols[inside]), 1)
    highest = np.full((n, n), -np.inf)
    np.maximum.at(highest, (rows[inside], cols[inside]), z[inside])
    highest[count == 0] = np.nan
    assert count.sum() == len(z)  # the chip holds every point
    np.testing.assert_array_equal(out["lidar_count"].values, count)
    np.testing.assert_allclose(out["lidar_max_z"].values, highest.astype("float32"), rtol=0, atol=0)
