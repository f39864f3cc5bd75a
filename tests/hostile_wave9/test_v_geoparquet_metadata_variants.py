"""GeoParquet files whose ``geo`` metadata is unusual or lies read as geopandas reads them, or fail loudly.

Promised (checked against ``geopandas.read_parquet`` on the same file):

- every geometry column the metadata lists is a geometry column with its own
  CRS (the second one came back as an object column of WKB bytes);
- a ``primary_column`` naming the second geometry column makes it the
  geometry, and a bbox read filters by it;
- a bbox read of a file whose covering does not hold its geometries (moved,
  too small) in the row groups read is a ``ReadError``, never rows skipped
  silently (geopandas' ``read_parquet(bbox=)`` skips them); a read without
  bbox skips nothing and reads as before. (A covering that lies only where a
  query does not read cannot be seen: not promised.)
- a bbox or mask read of a column whose edges are 'spherical' is refused
  (shapely intersects planar edges: wrong rows both ways);
- an honest covering, written in float32 or float64, reads every row of a
  query, including rows exactly on its edge.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from shapely.geometry import Point, box

from terrapipe.core.errors import ReadError
from terrapipe.io.vector import open_vector

N = 100


def _frame() -> gpd.GeoDataFrame:
    centres = gpd.GeoSeries([Point(i + 0.5, i + 0.5) for i in range(N)], crs="EPSG:4326")
    return gpd.GeoDataFrame(
        {"id": np.arange(N), "centre": centres},
        geometry=[box(i, i, i + 1, i + 1) for i in range(N)],
        crs="EPSG:32631",
    )


def _written(tmp_path: Path, name: str = "two.parquet") -> Path:
    path = tmp_path / name
    _frame().to_parquet(path, write_covering_bbox=True, row_group_size=10)
    return path


def _with_covering(tmp_path: Path, name: str, move: np.ndarray, grow: np.ndarray) -> Path:
    """The file with each row's covering moved in x by ``move`` and grown on every side by ``grow``."""
    table = pq.read_table(_written(tmp_path))
    covering = table.column("bbox").combine_chunks()
    fields = {k: covering.field(k).to_numpy() for k in ("xmin", "ymin", "xmax", "ymax")}
    fields["xmin"] = fields["xmin"] + move - grow
    fields["xmax"] = fields["xmax"] + move + grow
    fields["ymin"] = fields["ymin"] - grow
    fields["ymax"] = fields["ymax"] + grow
    struct = pa.StructArray.from_arrays([pa.array(v) for v in fields.values()], names=list(fields))
    path = tmp_path / name
    pq.write_table(
        table.set_column(table.schema.get_field_index("bbox"), "bbox", struct), path, row_group_size=10
    )
    return path


def test_every_geometry_column_is_decoded_with_its_crs(tmp_path: Path) -> None:
    path = _written(tmp_path)
    reference = gpd.read_parquet(path)
    ours = open_vector(str(path))
    assert list(ours.columns) == list(reference.columns)
    assert isinstance(ours["centre"], gpd.GeoSeries)  # was: an object column of WKB bytes
    assert ours["centre"].crs == reference["centre"].crs == "EPSG:4326"
    assert ours["centre"].geom_equals(reference["centre"]).all()
    with_box = open_vector(str(path), bbox=(20.0, 20.0, 21.0, 21.0))
    assert isinstance(with_box["centre"], gpd.GeoSeries)


def test_primary_column_naming_the_second_geometry(tmp_path: Path) -> None:
    table = pq.read_table(_written(tmp_path))
    geo = json.loads(table.schema.metadata[b"geo"])
    geo["primary_column"] = "centre"
    path = tmp_path / "primary-centre.parquet"
    pq.write_table(
        table.replace_schema_metadata({**table.schema.metadata, b"geo": json.dumps(geo).encode()}), path
    )
    reference = gpd.read_parquet(path)
    ours = open_vector(str(path), bbox=(20.2, 20.2, 20.8, 20.8))
    assert ours.geometry.name == reference.geometry.name == "centre"
    assert ours.crs == "EPSG:4326"
    assert ours["id"].tolist() == [20]  # by the centre points; the boxes 19 and 21 touch the query too
    assert isinstance(ours["geometry"], gpd.GeoSeries)
    assert ours["geometry"].crs == "EPSG:32631"


def test_a_moved_covering_is_refused_where_a_query_reads_it(tmp_path: Path) -> None:
    path = _with_covering(tmp_path, "moved.parquet", move=np.full(N, -5.0), grow=np.zeros(N))
    query = (20.0, 20.0, 30.0, 30.0)
    reference = gpd.read_parquet(path, bbox=query)
    assert set(range(20, 31)) - set(reference["id"])  # the reference loses rows, silently
    with pytest.raises(ReadError, match=r"moved\.parquet.*covering does not hold its geometries"):
        open_vector(str(path), bbox=query)
    assert len(open_vector(str(path))) == N  # without bbox nothing is skipped: read as it is


def test_a_covering_too_small_in_the_groups_read_is_refused(tmp_path: Path) -> None:
    path = _with_covering(tmp_path, "small.parquet", move=np.zeros(N), grow=np.full(N, -0.25))
    with pytest.raises(ReadError, match=r"small\.parquet.*covering does not hold its geometries"):
        open_vector(str(path), bbox=(20.0, 20.0, 30.0, 30.0))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_honest_covering_keeps_every_row_on_the_edges(tmp_path: Path, dtype: str) -> None:
    frame = _frame().drop(columns=["centre"])
    frame["geometry"] = [box(i * 0.1, i * 0.1, i * 0.1 + 0.1, i * 0.1 + 0.1) for i in range(N)]
    table = pa.Table.from_pandas(frame.to_wkb(), preserve_index=False)
    bounds = frame.geometry.bounds
    # float32 rounded outward, as the spec asks
    low = np.nextafter(bounds[["minx", "miny"]].to_numpy().astype(dtype), -np.inf)
    high = np.nextafter(bounds[["maxx", "maxy"]].to_numpy().astype(dtype), np.inf)
    struct = pa.StructArray.from_arrays(
        [pa.array(low[:, 0]), pa.array(low[:, 1]), pa.array(high[:, 0]), pa.array(high[:, 1])],
        names=["xmin", "ymin", "xmax", "ymax"],
    )
    crs = json.loads(frame.crs.to_json())
    geo = {
        "version": "1.1.0",
        "primary_column": "geometry",
        "columns": {
            "geometry": {
                "encoding": "WKB",
                "geometry_types": ["Polygon"],
                "crs": crs,
                "bbox": list(frame.total_bounds),
                "covering": {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}},
            }
        },
    }
    table = table.append_column("bbox", struct).replace_schema_metadata({b"geo": json.dumps(geo).encode()})
    path = tmp_path / f"honest-{dtype}.parquet"
    pq.write_table(table, path, row_group_size=7)
    query = (2.0, 2.0, 3.0, 3.0)  # boxes 19 and 30 touch it at a corner only
    expected = sorted(frame.loc[frame.geometry.intersects(box(*query)), "id"])
    ours = open_vector(str(path), bbox=query)
    assert sorted(ours["id"]) == expected
    assert ours["id"].is_unique


def test_a_bbox_read_of_spherical_edges_is_refused(tmp_path: Path) -> None:
    """Planar intersects of great-circle edges: a band across the antimeridian matched 0 degrees, missed 177."""
    band = box(-170, 60, 170, 70)  # with spherical edges: the thin band across 180
    path = tmp_path / "spherical.parquet"
    gpd.GeoDataFrame({"id": [1]}, geometry=[band], crs="EPSG:4326").to_parquet(path)
    table = pq.read_table(path)
    geo = json.loads(table.schema.metadata[b"geo"])
    geo["columns"]["geometry"]["edges"] = "spherical"
    pq.write_table(table.replace_schema_metadata({b"geo": json.dumps(geo).encode()}), path)
    for options in ({"bbox": (175.0, 62.0, 179.0, 68.0)}, {"mask": box(0, 62, 10, 68)}):
        with pytest.raises(ReadError, match=r"spherical\.parquet.*edges are 'spherical'.*without bbox"):
            open_vector(str(path), **options)
    assert len(open_vector(str(path))) == 1  # read whole: as the file is
