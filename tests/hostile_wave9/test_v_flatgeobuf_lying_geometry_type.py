"""A FlatGeobuf whose header states another geometry type than its features hold is a ``ReadError``.

When the header states a geometry type (1-6), features do not state theirs
and GDAL (pyogrio, geopandas: the reference) decodes every feature by the
header's type. A header that lies read as other geometries, silently:
polygons as points, multipolygons as their first part, multi-ring polygons as
lines. The first feature is compared with the header (a writer or an edit
that lies does so for every feature). Promised for local files and at a URL,
with and without the spatial index and a bbox; every geometry type GDAL
writes (single-part multis, holes, Z, mixed layers) still reads.
"""

from __future__ import annotations

import struct
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import (
    GeometryCollection,
    LineString,
    MultiLineString,
    MultiPoint,
    MultiPolygon,
    Point,
    Polygon,
    box,
)

from terrapipe.core.errors import ReadError
from terrapipe.io.vector import open_vector
from tests.servers.http_range import RangeServer

HOLED = Polygon(box(0, 0, 10, 10).exterior, [box(2, 2, 3, 3).exterior])


def _with_header_type(path: Path, geometry_type: int) -> Path:
    """Rewrite the header's geometry_type (Header field 2, a ubyte) in place."""
    data = bytearray(path.read_bytes())
    (size,) = struct.unpack_from("<I", data, 8)
    header = bytes(data[12 : 12 + size])
    (root,) = struct.unpack_from("<I", header, 0)
    (soffset,) = struct.unpack_from("<i", header, root)
    (offset,) = struct.unpack_from("<H", header, root - soffset + 4 + 2 * 2)
    assert offset, "the writer left the geometry type out"
    data[12 + root + offset] = geometry_type
    out = path.with_name("lying-" + path.name)
    out.write_bytes(bytes(data))
    return out


CASES = {
    "point-over-polygons": ([box(i, i, i + 1, i + 1) for i in range(20)], 1),
    "polygon-over-multipolygons": (
        [MultiPolygon([box(i, i, i + 1, i + 1), box(i + 5, i, i + 6, i + 1)]) for i in range(20)],
        3,
    ),
    "multipolygon-over-polygons": ([box(i, i, i + 1, i + 1) for i in range(20)], 6),
    "linestring-over-holed-polygons": ([HOLED] * 20, 2),
}


@pytest.mark.parametrize("index", ["YES", "NO"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_header_type_the_features_do_not_have_is_refused(tmp_path: Path, case: str, index: str) -> None:
    geoms, lie = CASES[case]
    path = tmp_path / f"{case}.fgb"
    gpd.GeoDataFrame({"id": range(len(geoms))}, geometry=geoms, crs="EPSG:32631").to_file(
        path, SPATIAL_INDEX=index
    )
    lying = _with_header_type(path, lie)
    for bbox in (None, (0.0, 0.0, 10.0, 10.0)):
        with pytest.raises(ReadError, match=rf"lying-{case}\.fgb.*GDAL would read other geometries"):
            open_vector(str(lying), bbox=bbox)


def test_a_lying_header_at_a_url_is_refused(range_server_session: RangeServer, http_root: Path) -> None:
    path = http_root / "wave9-v-fgb-type.fgb"
    gpd.GeoDataFrame(
        {"id": range(20)}, geometry=[box(i, i, i + 1, i + 1) for i in range(20)], crs="EPSG:32631"
    ).to_file(path)
    lying = _with_header_type(path, 1)
    url = range_server_session.url_for(lying)
    for bbox in (None, (0.0, 0.0, 5.0, 5.0)):
        with pytest.raises(ReadError, match=r"lying-wave9-v-fgb-type\.fgb.*a Point \(the header's type\)"):
            open_vector(url, bbox=bbox)


HONEST = {
    "point": [Point(1, 2), Point(3, 4)],
    "point-z": [Point(1, 2, 3)],
    "line": [LineString([(0, 0), (1, 1), (2, 0)])],
    "polygon-holes": [box(0, 0, 1, 1), HOLED],
    "multipoint": [MultiPoint([(0, 0), (1, 1)]), MultiPoint([(5, 5)])],
    "multiline": [MultiLineString([[(0, 0), (1, 1)], [(2, 2), (3, 3)]]), MultiLineString([[(0, 0), (1, 1)]])],
    "multipolygon-one-part": [MultiPolygon([box(0, 0, 1, 1)])],
    "multipolygon-holes": [MultiPolygon([HOLED, box(20, 20, 21, 21)])],
    "mixed": [Point(0, 0), box(0, 0, 1, 1), MultiPolygon([box(0, 0, 1, 1), box(2, 2, 3, 3)])],
    "collection": [GeometryCollection([Point(0, 0), box(0, 0, 1, 1)])],
}


@pytest.mark.parametrize("case", sorted(HONEST))
def test_every_geometry_type_gdal_writes_reads(tmp_path: Path, case: str) -> None:
    geoms = HONEST[case]
    path = tmp_path / f"{case}.fgb"
    frame = gpd.GeoDataFrame({"id": range(len(geoms))}, geometry=geoms, crs="EPSG:32631")
    frame.to_file(path)
    got = open_vector(str(path))
    assert got.geometry.geom_equals(gpd.read_file(path).geometry).all()
