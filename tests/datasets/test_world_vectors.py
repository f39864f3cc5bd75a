"""The sample world's vector labels: readable, in EPSG:4326, and consistent with each other."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.warp
import shapely

from terrapipe.datasets import CLASS_NAMES, SampleWorld
from terrapipe.datasets.landcover import URBAN

gpd = pytest.importorskip("geopandas")
pyogrio = pytest.importorskip("pyogrio")


@pytest.fixture(scope="module")
def world(sample_world: SampleWorld) -> SampleWorld:
    return sample_world


@pytest.fixture(scope="module")
def landcover(world: SampleWorld) -> Any:
    return gpd.read_file(world.landcover_fgb)


def test_landcover_flatgeobuf_has_the_documented_columns(landcover: Any) -> None:
    assert landcover.crs.to_epsg() == 4326
    assert list(landcover.columns) == ["id", "class", "class_name", "geometry"]
    assert landcover["id"].is_unique
    assert set(landcover["class"]) <= set(CLASS_NAMES)
    assert len(set(landcover["class"])) >= 5
    assert (landcover["class_name"] == landcover["class"].map(CLASS_NAMES)).all()
    assert landcover.geometry.is_valid.all()
    assert set(landcover.geom_type) == {"Polygon"}


def test_landcover_cells_tile_the_world_without_overlap(world: SampleWorld, landcover: Any) -> None:
    region = shapely.box(*world.bbox)
    union = shapely.union_all(landcover.geometry.values)
    assert union.symmetric_difference(region).area < 1e-9 * region.area + 1e-12
    assert shapely.area(landcover.geometry.values).sum() == pytest.approx(region.area, rel=1e-9)


def test_landcover_geoparquet_has_a_bbox_covering(world: SampleWorld, landcover: Any) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    geo = json.loads(pq.read_metadata(world.landcover_parquet).metadata[b"geo"])
    column = geo["columns"][geo["primary_column"]]
    assert column["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    assert pq.read_schema(world.landcover_parquet).field("bbox").type.num_fields == 4
    frame = gpd.read_parquet(world.landcover_parquet)
    assert frame.crs.to_epsg() == 4326
    assert (
        (frame.sort_values("id").reset_index(drop=True))
        .geom_equals(landcover.sort_values("id").reset_index(drop=True))
        .all()
    )


def test_buildings_are_small_disjoint_rectangles_inside_urban_cells(
    world: SampleWorld, landcover: Any
) -> None:
    assert "buildings" in pyogrio.list_layers(world.buildings_gpkg)[:, 0]
    buildings = gpd.read_file(world.buildings_gpkg, layer=world.BUILDINGS_LAYER)
    assert buildings.crs.to_epsg() == 4326
    assert {"id", "landcover_id", "roof", "height"} <= set(buildings.columns)
    assert len(buildings) > 100
    assert set(buildings["roof"]) <= {"tile", "flat"}
    # Rectangles (in metres, to the 0.1 % distortion of the local frame): 5 ring points,
    # area equal to that of the minimum rotated rectangle.
    utm = buildings.to_crs("EPSG:32631").geometry.values
    assert (shapely.get_num_coordinates(utm) == 5).all()
    np.testing.assert_allclose(shapely.area(shapely.oriented_envelope(utm)), shapely.area(utm), rtol=5e-3)
    # Each lies inside the urban cell it names.
    cells = landcover.set_index("id").loc[buildings["landcover_id"]]
    assert (cells["class"].to_numpy() == URBAN).all()
    assert shapely.within(buildings.geometry.values, cells.geometry.values).all()
    # No two overlap.
    assert shapely.union_all(utm).area == pytest.approx(shapely.area(utm).sum(), rel=1e-9)
    assert 150 < np.median(shapely.area(utm)) < 1100  # m², i.e. a few 10 m pixels each


def test_points_carry_the_class_of_the_cell_under_them(world: SampleWorld, landcover: Any) -> None:
    points = gpd.read_file(world.points_geojson)
    assert points.crs.to_epsg() == 4326
    assert {"id", "class", "class_name", "landcover_id"} <= set(points.columns)
    assert len(points) == 400
    joined = gpd.sjoin(points, landcover, predicate="within", lsuffix="pt", rsuffix="lc")
    joined = joined[~joined.index.duplicated()]
    assert len(joined) == len(points)
    assert (joined["class_pt"] == joined["class_lc"]).all()
    assert (joined["landcover_id"] == joined["id_lc"]).all()
    # Points fall where there is imagery.
    footprints = []
    for tile in (0, 1):
        with rasterio.open(world.cog("red", tile=tile)) as src:
            footprints.append(shapely.box(*rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)))
    assert shapely.union_all(footprints).buffer(1e-3).contains(shapely.union_all(points.geometry.values))
