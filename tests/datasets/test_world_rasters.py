"""The sample world's rasters: COG layout, grids, nodata, and content that follows the labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.features
import rasterio.warp
import shapely
from rasterio.windows import from_bounds

from terrapipe.datasets import CLASS_NAMES, SampleWorld
from terrapipe.datasets.landcover import BARE, CROPLAND, FOREST, GRASSLAND, URBAN, WATER, geometries_in_crs

CLEAR_SCL = (4, 5, 6)  # vegetation, not vegetated, water


def read(path: Path, **kwargs: Any) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1, **kwargs)


def landcover_on(world: SampleWorld, cog: Path, column: str = "class") -> np.ndarray:
    """Burn the land-cover polygons from the FlatGeobuf onto a COG's grid."""
    gpd = pytest.importorskip("geopandas")
    cells = gpd.read_file(world.landcover_fgb)
    with rasterio.open(cog) as src:
        geoms = geometries_in_crs(np.asarray(cells.geometry.values, dtype=object), src.crs.to_string())
        return rasterio.features.rasterize(
            zip(geoms, cells[column], strict=True),
            out_shape=src.shape,
            transform=src.transform,
            dtype="int32",
        )


@pytest.fixture(scope="module")
def world(sample_world: SampleWorld) -> SampleWorld:
    return sample_world


def test_every_scene_cog_exists_and_is_a_valid_cog(world: SampleWorld) -> None:
    assert len(world.s2_cogs) == 30
    for path in world.s2_cogs:
        with rasterio.open(path) as src:
            assert src.driver == "GTiff"
            assert src.count == 1
            assert src.block_shapes == [(256, 256)]
            assert src.overviews(1), f"{path} has no overviews"
            structure = src.tags(ns="IMAGE_STRUCTURE")
            assert structure["LAYOUT"] == "COG"
            assert structure["COMPRESSION"] == "DEFLATE"
            assert structure["PREDICTOR"] == "2"
            assert src.nodata == 0
            assert src.profile["tiled"]


def test_bands_are_uint16_at_10m_on_the_tile_grid(world: SampleWorld) -> None:
    for date in range(3):
        for tile in (0, 1):
            for band in world.BANDS:
                with rasterio.open(world.cog(band, date=date, tile=tile)) as src:
                    assert src.dtypes == ("uint16",)
                    assert src.crs.to_string() == world.TILE_CRS[tile]
                    assert src.res == (10.0, 10.0)
                    assert src.shape == (1024, 1024)
                    assert src.transform.c % 10 == 0
                    assert src.transform.f % 10 == 0
                    assert src.overviews(1) == [2, 4]
            with rasterio.open(world.cog("scl", date=date, tile=tile)) as scl:
                assert scl.dtypes == ("uint8",)
                assert scl.res == (20.0, 20.0)
                assert scl.shape == (512, 512)
                assert scl.crs.to_string() == world.TILE_CRS[tile]
                assert set(np.unique(scl.read(1))) <= set(world.SCL_CLASSES)


def test_the_two_tiles_have_different_crs_and_overlap(world: SampleWorld) -> None:
    footprints = []
    for tile in (0, 1):
        with rasterio.open(world.cog("red", tile=tile)) as src:
            footprints.append(shapely.box(*rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)))
    with rasterio.open(world.cog("red", tile=0)) as a, rasterio.open(world.cog("red", tile=1)) as b:
        assert a.crs != b.crs
    assert footprints[0].intersects(footprints[1])
    assert 0 < footprints[0].intersection(footprints[1]).area < 0.2 * footprints[0].area


def test_nodata_beyond_a_slanted_swath_edge_that_moves_with_the_date(world: SampleWorld) -> None:
    masks = {}
    for date in range(3):
        per_date = []
        for tile in (0, 1):
            bands = [read(world.cog(b, date=date, tile=tile)) for b in world.BANDS]
            nodata = bands[0] == 0
            for other in bands[1:]:
                np.testing.assert_array_equal(other == 0, nodata)  # one swath edge for all bands
            scl = read(world.cog("scl", date=date, tile=tile))
            assert np.mean((scl == 0) == nodata[::2, ::2]) > 0.99
            masks[date, tile] = nodata
            per_date.append(nodata.mean())
        assert max(per_date) > 0.05, f"date {date} has no swath edge in either tile"
        assert min(per_date) < 0.5
    # The edge is slanted: the first no-data column changes from top to bottom.
    cut = masks[0, 0]
    edge = cut.argmin(axis=1)
    assert edge[0] != edge[-1]
    # It moves with the date.
    assert not np.array_equal(masks[0, 0], masks[1, 0])
    assert not np.array_equal(masks[0, 0], masks[2, 0])


def test_clouds_are_bright_and_flagged_in_scl(world: SampleWorld) -> None:
    cloudy = 0
    for date in range(3):
        for tile in (0, 1):
            scl = read(world.cog("scl", date=date, tile=tile))
            blue = read(world.cog("blue", date=date, tile=tile))[::2, ::2]
            thick = scl == 9
            if thick.sum() > 100:
                cloudy += 1
                assert np.median(blue[thick]) > 4000
                assert np.median(blue[np.isin(scl, CLEAR_SCL)]) < 1500
    assert cloudy >= 2


def test_land_cover_classes_are_separable_in_the_imagery(world: SampleWorld) -> None:
    date, tile = 1, 0
    classes = landcover_on(world, world.cog("red", date=date, tile=tile))
    scl = np.repeat(np.repeat(read(world.cog("scl", date=date, tile=tile)), 2, axis=0), 2, axis=1)
    clear = np.isin(scl, CLEAR_SCL)
    bands = np.stack([read(world.cog(b, date=date, tile=tile)) for b in world.BANDS]).astype(float)
    means = {}
    for code in CLASS_NAMES:
        pixels = clear & (classes == code)
        if pixels.sum() > 500:
            means[code] = bands[:, pixels].mean(axis=1)
    assert {WATER, FOREST, CROPLAND, GRASSLAND, URBAN} <= set(means)
    red, nir = 2, 3
    assert means[WATER][nir] < 600 < means[FOREST][nir]
    assert means[URBAN][red] > means[FOREST][red] + 400
    for a in means:
        for b in means:
            if a < b:
                assert np.abs(means[a] - means[b]).max() > 250, (CLASS_NAMES[a], CLASS_NAMES[b])
    # Vegetation has a high NDVI, water a negative one.
    ndvi = {c: (m[nir] - m[red]) / (m[nir] + m[red]) for c, m in means.items()}
    assert ndvi[FOREST] > 0.7
    assert ndvi[GRASSLAND] > 0.5
    assert ndvi[WATER] < 0
    if BARE in ndvi:
        assert ndvi[BARE] < 0.2


def test_a_nearest_mean_classifier_learns_the_land_cover(world: SampleWorld) -> None:
    """A model can learn the labels from the pixels: a trivial one already mostly does."""
    date, tile = 2, 1
    classes = landcover_on(world, world.cog("red", date=date, tile=tile))
    scl = np.repeat(np.repeat(read(world.cog("scl", date=date, tile=tile)), 2, axis=0), 2, axis=1)
    bands = np.stack([read(world.cog(b, date=date, tile=tile)) for b in world.BANDS]).astype(float)
    keep = np.isin(scl, CLEAR_SCL) & (classes > 0)
    x, y = bands[:, keep].T, classes[keep]
    codes = np.unique(y)
    centroids = np.stack([x[y == c].mean(axis=0) for c in codes])
    predicted = codes[np.argmin(((x[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)]
    assert (predicted == y).mean() > 0.6


def test_buildings_show_up_as_roofs(world: SampleWorld) -> None:
    gpd = pytest.importorskip("geopandas")
    buildings = gpd.read_file(world.buildings_gpkg, layer=world.BUILDINGS_LAYER)
    found = 0
    for tile in (0, 1):
        cog = world.cog("red", date=1, tile=tile)
        with rasterio.open(cog) as src:
            geoms = geometries_in_crs(
                np.asarray(buildings.geometry.values, dtype=object), src.crs.to_string()
            )
            roofs = rasterio.features.rasterize(
                ((g, 1) for g in geoms), out_shape=src.shape, transform=src.transform, dtype="uint8"
            ).astype(bool)
            red = src.read(1).astype(float)
        urban = (landcover_on(world, cog) == URBAN) & ~roofs & (red > 0) & (red < 3000)
        if roofs.sum() > 50 and urban.sum() > 50:
            found += 1
            tile_roofs = roofs & (red > 0) & (red < 3000)
            assert np.median(red[tile_roofs]) > np.median(red[urban]) + 300
    assert found >= 1


def test_both_tiles_see_the_same_ground_where_they_overlap(world: SampleWorld) -> None:
    date = 1
    with (
        rasterio.open(world.cog("nir", date=date, tile=0)) as west,
        rasterio.open(world.cog("nir", date=date, tile=1)) as east,
    ):
        warped = np.zeros(west.shape, dtype=np.float32)
        rasterio.warp.reproject(
            rasterio.band(east, 1),
            warped,
            dst_transform=west.transform,
            dst_crs=west.crs,
            src_nodata=0,
            dst_nodata=0,
            resampling=rasterio.warp.Resampling.nearest,
        )
        ours = west.read(1).astype(np.float32)
    scl0 = np.repeat(np.repeat(read(world.cog("scl", date=date, tile=0)), 2, 0), 2, 1)
    both = (warped > 0) & (ours > 0) & np.isin(scl0, CLEAR_SCL)
    assert both.sum() > 10_000
    relative = np.abs(warped[both] - ours[both]) / ours[both]
    assert np.median(relative) < 0.1


def test_dem_is_a_float32_cog_in_geographic_coordinates(world: SampleWorld) -> None:
    with rasterio.open(world.dem) as src:
        assert src.dtypes == ("float32",)
        assert src.crs.to_string() == "EPSG:4326"
        assert src.res == pytest.approx((1 / 3600, 1 / 3600))
        assert src.nodata == -9999
        assert src.block_shapes == [(256, 256)]
        assert src.overviews(1)
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "3"
        dem = src.read(1, masked=True)
        west, south, east, north = src.bounds
        for tile in (0, 1):
            with rasterio.open(world.cog("red", tile=tile)) as tile_src:
                tb = rasterio.warp.transform_bounds(tile_src.crs, src.crs, *tile_src.bounds)
            assert west < tb[0]
            assert tb[2] < east
            assert south < tb[1]
            assert tb[3] < north
        window = from_bounds(*world.bbox, transform=src.transform)
        assert window.width == pytest.approx(src.width)
    assert dem.min() >= 200
    assert dem.max() < 4000
    assert dem.max() - dem.min() > 500
    # Smooth terrain: neighbouring pixels (~30 m apart) differ by metres, not hundreds of metres.
    assert np.abs(np.diff(dem, axis=1)).mean() < 15


def test_lakes_are_flat_in_the_dem(world: SampleWorld) -> None:
    water = landcover_on(world, world.dem) == WATER
    if water.sum() < 100:
        pytest.skip("no lake in this world")
    dem = read(world.dem)
    assert np.ptp(dem[water]) == 0
    assert dem[water][0] <= np.median(dem[~water])
