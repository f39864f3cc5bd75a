"""Pure grid, scene and noise math of the sample world: numbers only, no files."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import shapely

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.datasets import grid, scenes
from terrapipe.datasets.layout import SampleWorld
from terrapipe.datasets.noise import fractal_noise, rng_for, smooth_field


@pytest.mark.parametrize("scale", [1, 2])
def test_tiles_are_s2_like_grids(scale: int) -> None:
    for tile, crs in enumerate(("EPSG:32631", "EPSG:32632")):
        gbox = grid.tile_geobox(tile, scale)
        assert str(gbox.crs) == crs
        assert gbox.shape.yx == (1024 * scale, 1024 * scale)
        assert gbox.resolution.xy == (10.0, -10.0)
        assert gbox.affine.b == gbox.affine.d == 0
        # Origins on 60 m multiples (so 10 m and 20 m grids nest, like real S2 tiles).
        assert gbox.affine.c % 60 == 0
        assert gbox.affine.f % 60 == 0


def test_scale_two_doubles_the_tile_side() -> None:
    small, large = grid.tile_geobox(0, 1), grid.tile_geobox(0, 2)
    assert large.extent.boundingbox.span_x == pytest.approx(2 * small.extent.boundingbox.span_x)


def test_scl_grid_nests_in_the_band_grid() -> None:
    bands, scl = grid.tile_geobox(1), grid.scl_geobox(1)
    assert scl.shape.yx == (512, 512)
    assert scl.resolution.xy == (20.0, -20.0)
    assert scl.extent.boundingbox == bands.extent.boundingbox


def test_tiles_straddle_the_zone_boundary_and_overlap_a_little() -> None:
    west, east = (grid.footprint_lonlat(grid.tile_geobox(t)) for t in (0, 1))
    assert west.bounds[0] < 6.0 < west.bounds[2]
    assert east.bounds[0] < 6.0 < east.bounds[2]
    overlap = west.intersection(east).area / west.area
    assert 0.03 < overlap < 0.2


def test_footprint_is_densified_and_valid() -> None:
    poly = grid.footprint_lonlat(grid.tile_geobox(0), points_per_side=16)
    assert poly.is_valid
    assert len(poly.exterior.coords) == 4 * 16 + 1


def test_region_holds_both_tiles_and_dem_grid_covers_it() -> None:
    west, south, east, north = grid.region_bbox()
    region = shapely.box(west, south, east, north)
    for tile in (0, 1):
        assert region.contains(grid.footprint_lonlat(grid.tile_geobox(tile)))
    dem = grid.dem_geobox()
    assert str(dem.crs) == "EPSG:4326"
    assert dem.resolution.x == pytest.approx(1 / 3600)
    assert dem.boundingbox[:4] == pytest.approx((west, south, east, north))
    # Arc-second origin.
    assert round(dem.affine.c * 3600, 6) % 1 == 0
    assert round(dem.affine.f * 3600, 6) % 1 == 0


def test_climate_grid_covers_the_region() -> None:
    cgrid = grid.climate_geobox()
    left, bottom, right, top = cgrid.boundingbox[:4]
    west, south, east, north = grid.region_bbox()
    assert left < west
    assert east < right
    assert bottom < south
    assert north < top
    assert cgrid.resolution.xy == (0.25, -0.25)
    assert grid.climate_geobox(2).shape.yx == (64, 64)


@pytest.mark.parametrize("bad", [0, 9, -1, 1.5, True, "1", None])
def test_bad_scale_is_rejected(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid scale"):
        grid.check_scale(bad)  # type: ignore[arg-type]


def test_bad_tile_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="invalid tile"):
        grid.tile_geobox(2)


def test_local_metres_round_trip() -> None:
    lon, lat = np.array([5.9, 6.0, 6.1]), np.array([45.7, 45.75, 45.8])
    back = grid.from_local_metres(*grid.to_local_metres(lon, lat))
    np.testing.assert_allclose(back, (lon, lat), atol=1e-12)


def test_mgrs_names_are_real_sentinel2_tiles() -> None:
    assert scenes.S2_TILES == ("31TGL", "32TKR")
    assert grid.mgrs_square(31, 2.35, 48.86) == "31UDQ"  # Paris


def test_acquisitions_look_like_sentinel2_datatakes() -> None:
    acqs = scenes.acquisitions()
    assert [a.item_id for a in acqs] == list(SampleWorld.at("w").s2_item_ids)
    assert len(acqs) == 6
    assert [a.date_index for a in acqs] == [0, 0, 1, 1, 2, 2]
    for first, second in zip(acqs[::2], acqs[1::2], strict=True):
        assert first.crs != second.crs
        assert first.datetime.tzinfo == dt.UTC
        assert dt.time(10, 0) < first.datetime.time() < dt.time(11, 0)
        assert 0 < (second.datetime - first.datetime).total_seconds() < 10
        assert first.swath_edge == second.swath_edge
    assert len({a.swath_edge for a in acqs}) == 3


def test_swath_edges_cut_different_tiles_on_different_dates() -> None:
    cut = []
    for acq in scenes.acquisitions():
        footprint = grid.footprint_lonlat(grid.tile_geobox(acq.tile))
        imaged = footprint.intersection(scenes.swath_polygon(acq)).area / footprint.area
        cut.append(round(imaged, 3))
    assert all(0.2 < c <= 1.0 for c in cut)
    assert any(c < 0.95 for c in cut)
    assert len(set(cut)) >= 3


def test_random_streams_are_reproducible_and_independent() -> None:
    a = fractal_noise((32, 48), rng_for(1, "x"), beta=3)
    b = fractal_noise((32, 48), rng_for(1, "x"), beta=3)
    c = fractal_noise((32, 48), rng_for(1, "y"), beta=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.mean() == pytest.approx(0, abs=1e-6)
    assert a.std() == pytest.approx(1, abs=1e-5)
    x = np.linspace(0, 5000, 7)
    np.testing.assert_array_equal(smooth_field(x, x, rng_for(2, "s")), smooth_field(x, x, rng_for(2, "s")))


def test_sample_world_paths_need_no_files() -> None:
    world = SampleWorld.at("/nowhere/world", scale=2)
    assert world.scale == 2
    assert world.cog("nir", date=dt.date(2024, 6, 19), tile=1).parts[-2:] == (
        "S2A_32TKR_20240619_0_L2A",
        "B08.tif",
    )
    assert len(world.s2_cogs) == 6 * 5
    assert world.serve_hrefs[0] == world.s2_api_collection
    with pytest.raises(InvalidArgumentError, match="invalid band"):
        world.cog("swir")
    with pytest.raises(InvalidArgumentError, match="invalid date"):
        world.cog("red", date=3)
    with pytest.raises(InvalidArgumentError, match="invalid tile"):
        world.cog("red", tile=2)


def test_public_names_are_unique_and_exist() -> None:
    # Their order is ruff's RUF022 (constants, classes, functions), checked by the lint.
    import terrapipe.datasets as datasets

    assert len(set(datasets.__all__)) == len(datasets.__all__)
    assert all(hasattr(datasets, name) for name in datasets.__all__)
