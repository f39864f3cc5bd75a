"""A GeoPackage whose spatial index misses features is a ``ReadError`` for bbox and mask reads, not fewer rows.

GDAL answers a bbox or mask read of a GeoPackage from its R*Tree alone
(pyogrio and geopandas, the reference, alike): a feature the index lacks
(rows written with the index triggers off, a hand edit) is never returned,
silently. Promised: when the index does not hold one entry per feature with
a non-empty geometry, a filtered read is refused, locally and for a
GeoPackage fetched through the byte layer (a URL with a query string); a
read without a filter, and honest files with null and empty geometries,
read as before. (An entry whose box is stale is not seen: not promised.)
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import Polygon, box

from terrapipe.core.errors import ReadError
from terrapipe.io.vector import open_vector
from tests.servers.http_range import RangeServer

QUERY = (2.0, 2.0, 6.0, 6.0)


def _gpkg(path: Path, *, drop: int | None = None) -> Path:
    geoms = [box(i, i, i + 1, i + 1) for i in range(8)] + [None, Polygon()]
    gpd.GeoDataFrame({"id": range(10)}, geometry=geoms, crs="EPSG:32631").to_file(path, layer="fields")
    if drop is not None:
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM rtree_fields_geom WHERE id = ?", (drop,))
    return path


def test_honest_geopackage_with_null_and_empty_geometries_reads(tmp_path: Path) -> None:
    path = _gpkg(tmp_path / "honest.gpkg")
    assert sorted(open_vector(str(path), bbox=QUERY)["id"]) == [1, 2, 3, 4, 5, 6]
    assert sorted(open_vector(str(path), mask=box(*QUERY))["id"]) == [1, 2, 3, 4, 5, 6]


def test_a_feature_missing_from_the_index_is_refused(tmp_path: Path) -> None:
    path = _gpkg(tmp_path / "stale.gpkg", drop=6)  # fid 6: id 5, box (5, 5, 6, 6)
    assert 5 not in set(gpd.read_file(path, bbox=QUERY)["id"])  # the reference misses it
    for options in ({"bbox": QUERY}, {"mask": box(*QUERY)}):
        with pytest.raises(ReadError, match=r"stale\.gpkg.*index of table 'fields' lists 7 features.*8"):
            open_vector(str(path), **options)
    assert len(open_vector(str(path))) == 10  # unfiltered: every row, as GDAL reads the table


def test_a_stale_index_fetched_through_the_byte_layer(
    range_server_session: RangeServer, http_root: Path
) -> None:
    path = _gpkg(http_root / "wave9-v-stale-index.gpkg", drop=3)
    url = range_server_session.url_for(path) + "?sig=abc"  # a query string: fetched, then read locally
    with pytest.raises(ReadError, match=r"wave9-v-stale-index\.gpkg.*spatial index"):
        open_vector(url, bbox=QUERY)
