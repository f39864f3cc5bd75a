"""Every reader on the sample world's files, locally and through the range server."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.io import open_raster, open_vector, open_zarr
from tests.servers.http_range import start_range_server


@pytest.fixture(scope="module")
def world_server(sample_world):
    server = start_range_server(sample_world.root)
    yield server
    server.stop()


def test_scene_cogs_remote_equal_local(sample_world, world_server):
    cogs = list(sample_world.s2_cogs[:5])
    local = list(tp.from_items(cogs).read_raster())
    remote = list(tp.from_items([world_server.url_for(p) for p in cogs]).read_raster())
    for a, b in zip(local, remote, strict=True):
        assert a.encoding["preferred_chunks"] == b.encoding["preferred_chunks"]
        assert a.encoding["preferred_chunks"]["y"] == 256
        assert b.rio.crs == a.rio.crs
        assert b.rio.nodata == a.rio.nodata == 0
        xr.testing.assert_identical(
            b.isel(y=slice(300, 556), x=slice(700, 956)).load().drop_encoding(),
            a.isel(y=slice(300, 556), x=slice(700, 956)).load().drop_encoding(),
        )
    assert {str(a.rio.crs) for a in local} <= {"EPSG:32631", "EPSG:32632"}


def test_remote_window_is_a_fraction_of_a_scene(sample_world, world_server):
    path = sample_world.s2_cogs[-2]
    size = path.stat().st_size
    da = open_raster(world_server.url_for(path))
    world_server.reset()
    _ = da.isel(y=slice(0, 256), x=slice(256, 512)).values
    assert world_server.bytes_served() < 0.25 * size


def test_dem_vectors_and_climate(sample_world, world_server):
    dem_local, dem_remote = open_raster(sample_world.dem), open_raster(world_server.url_for(sample_world.dem))
    assert dem_local.rio.crs.to_epsg() == 4326
    np.testing.assert_array_equal(dem_remote[:, :64, :64].values, dem_local[:, :64, :64].values)
    for path in (sample_world.landcover_fgb, sample_world.landcover_parquet, sample_world.points_geojson):
        local, remote = open_vector(path), open_vector(world_server.url_for(path))
        assert len(local) == len(remote) > 0
        assert local.crs == remote.crs is not None
    buildings = open_vector(sample_world.buildings_gpkg, layer=sample_world.BUILDINGS_LAYER)
    assert buildings.crs is not None
    local_cube = open_zarr(sample_world.climate_zarr)
    remote_cube = open_zarr(world_server.url_for(sample_world.climate_zarr))
    assert {"t2m", "u10", "v10"} <= set(local_cube.data_vars)
    assert local_cube.sizes["time"] >= 24
    xr.testing.assert_identical(
        remote_cube.isel(time=slice(0, 2)).load(), local_cube.isel(time=slice(0, 2)).load()
    )
