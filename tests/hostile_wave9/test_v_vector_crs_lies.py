"""A vector file whose stated lon/lat CRS is not the one its coordinates are in is a ``ReadError``.

GDAL (and so pyogrio and geopandas, the reference) reads such files as they
say, and the features land elsewhere on the globe, silently: a chip's
rasterized mask comes out empty or wrong. Promised: a layer in a geographic
CRS whose y coordinates pass +-90 degrees is refused, naming the file and
the range, for

- a GeoJSON of projected coordinates without a ``crs`` member (RFC 7946
  says WGS 84; older writers left the member out),
- a GeoJSON whose ``crs`` member names a CRS GDAL does not know (it falls
  back to WGS 84 without a warning),
- a Shapefile whose ``.prj`` says WGS 84 over UTM coordinates,
- a GeoPackage in EPSG:4326 with latitude and longitude swapped,
- a GeoParquet file with no ``crs`` key (OGC:CRS84 by the spec) over UTM
  coordinates, local and at a URL;

while honest layers read: longitudes written 0..360, latitudes of exactly
+-90, a projected layer, an empty layer.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pyarrow.parquet as pq
import pytest
from shapely.geometry import Point, box

from terrapipe.core.errors import ReadError
from terrapipe.io.vector import open_vector
from tests.servers.http_range import RangeServer

UTM = [Point(500000 + 10 * i, 5000000 + 10 * i) for i in range(5)]


def _geojson(path: Path, crs_member: str | None) -> Path:
    features = [
        {"type": "Feature", "properties": {"id": i}, "geometry": {"type": "Point", "coordinates": [p.x, p.y]}}
        for i, p in enumerate(UTM)
    ]
    document: dict[str, object] = {"type": "FeatureCollection", "features": features}
    if crs_member is not None:
        document["crs"] = {"type": "name", "properties": {"name": crs_member}}
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    "crs_member", [None, "urn:ogc:def:crs:EPSG::999999"], ids=["no-crs-member", "unknown-crs-member"]
)
def test_projected_geojson_taken_for_wgs84_is_refused(tmp_path: Path, crs_member: str | None) -> None:
    path = _geojson(tmp_path / "utm.geojson", crs_member)
    assert gpd.read_file(path).crs == "EPSG:4326"  # the reference: lon/lat, silently
    with pytest.raises(ReadError, match=r"utm\.geojson.*lon/lat.*5e\+06.*90 degrees"):
        open_vector(str(path))
    with pytest.raises(ReadError, match=r"beyond \+-90"):
        open_vector(str(path), bbox=(0, 0, 1e7, 1e7))


def test_a_shapefile_with_a_wrong_prj_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wrong-prj.shp"
    gpd.GeoDataFrame({"id": range(5)}, geometry=UTM, crs="EPSG:4326").to_file(path)
    with pytest.raises(ReadError, match=r"wrong-prj\.shp.*beyond \+-90"):
        open_vector(str(path))


def test_swapped_latitude_and_longitude_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "swapped.gpkg"
    # Tokyo written (lat, lon): y = 139.7 is no latitude
    gpd.GeoDataFrame({"id": [1]}, geometry=[Point(35.68, 139.69)], crs="EPSG:4326").to_file(path)
    with pytest.raises(ReadError, match=r"swapped\.gpkg.*139\.69"):
        open_vector(str(path))


def _parquet_without_crs(path: Path) -> Path:
    gpd.GeoDataFrame({"id": range(5)}, geometry=UTM, crs="EPSG:32631").to_parquet(path)
    table = pq.read_table(path)
    geo = json.loads(table.schema.metadata[b"geo"])
    del geo["columns"]["geometry"]["crs"]  # absent: OGC:CRS84 by the spec
    pq.write_table(table.replace_schema_metadata({b"geo": json.dumps(geo).encode()}), path)
    return path


def test_geoparquet_without_crs_key_over_utm_is_refused(tmp_path: Path) -> None:
    path = _parquet_without_crs(tmp_path / "no-crs-key.parquet")
    assert gpd.read_parquet(path).crs == "OGC:CRS84"  # the reference
    with pytest.raises(ReadError, match=r"no-crs-key\.parquet.*beyond \+-90"):
        open_vector(str(path))


def test_geoparquet_without_crs_key_at_a_url_is_refused(
    range_server_session: RangeServer, http_root: Path
) -> None:
    path = _parquet_without_crs(http_root / "wave9-v-no-crs-key.parquet")
    with pytest.raises(ReadError, match=r"wave9-v-no-crs-key\.parquet.*beyond \+-90"):
        open_vector(range_server_session.url_for(path))


def test_honest_layers_read(tmp_path: Path) -> None:
    geoms = [Point(359.5, 10.0), Point(181.0, -90.0), Point(0.0, 90.0), box(170, -10, 190, 10)]
    path = tmp_path / "honest.gpkg"
    gpd.GeoDataFrame({"id": range(4)}, geometry=geoms, crs="EPSG:4326").to_file(path)
    assert len(open_vector(str(path))) == 4
    projected = tmp_path / "utm.fgb"
    gpd.GeoDataFrame({"id": range(5)}, geometry=UTM, crs="EPSG:32631").to_file(projected)
    assert len(open_vector(str(projected))) == 5
    empty = tmp_path / "empty.gpkg"
    gpd.GeoDataFrame({"id": []}, geometry=[], crs="EPSG:4326").to_file(empty)
    assert len(open_vector(str(empty))) == 0
    nulls = tmp_path / "nulls.geojson"
    gpd.GeoDataFrame({"id": [1, 2]}, geometry=[None, Point(1, 2)], crs="EPSG:4326").to_file(nulls)
    assert len(open_vector(str(nulls))) == 2


def test_gdal_s_own_geojson_of_a_crs_without_code_is_refused(tmp_path: Path) -> None:
    """GDAL writes no ``crs`` member for a CRS without an EPSG code, and reads its own file back as WGS 84."""
    lcc = "+proj=lcc +lat_1=33 +lat_2=45 +lat_0=39 +lon_0=-96 +x_0=0 +y_0=0 +datum=NAD83 +units=m"
    path = tmp_path / "lcc.geojson"
    gpd.GeoDataFrame({"id": [1, 2]}, geometry=[Point(1000, 2000), Point(3000, 4000)], crs=lcc).to_file(path)
    assert gpd.read_file(path).crs == "EPSG:4326"  # the reference
    with pytest.raises(
        ReadError, match=r"lcc\.geojson.*\(EPSG:4326\) but its y coordinates reach 2000\.\.4000"
    ):
        open_vector(str(path))


def test_a_lon_lat_crs_without_code_is_named_shortly(tmp_path: Path) -> None:
    path = tmp_path / "mars.gpkg"
    gpd.GeoDataFrame({"id": [1]}, geometry=[Point(10, 2000)], crs="IAU_2015:49900").to_file(path)
    with pytest.raises(ReadError, match=r"mars\.gpkg.*lon/lat \((IAU_2015:49900|Mars[^)]*)\)") as caught:
        open_vector(str(path))
    assert "GEOGCS" not in str(caught.value)  # a name, not a page of WKT
