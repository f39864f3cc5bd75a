"""The sample world's Zarr v3 climate datacube."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from terrapipe.datasets import SampleWorld

pytest.importorskip("zarr")


@pytest.fixture(scope="module")
def cube(sample_world: SampleWorld) -> xr.Dataset:
    return xr.open_zarr(sample_world.climate_zarr)


def test_it_is_a_zarr_v3_store_with_consolidated_metadata(sample_world: SampleWorld) -> None:
    meta = json.loads((sample_world.climate_zarr / "zarr.json").read_text())
    assert meta["zarr_format"] == 3
    assert meta["node_type"] == "group"
    assert "consolidated_metadata" in meta


def test_variables_dims_and_cf_attributes(cube: xr.Dataset) -> None:
    assert sorted(cube.data_vars) == sorted(SampleWorld.CLIMATE_VARIABLES)
    assert cube.sizes["time"] >= 24
    for name, units, standard_name in (
        ("t2m", "K", "air_temperature"),
        ("u10", "m s-1", "eastward_wind"),
        ("v10", "m s-1", "northward_wind"),
    ):
        var = cube[name]
        assert var.dims == ("time", "lat", "lon")
        assert var.dtype == np.float32
        assert var.attrs["units"] == units
        assert var.attrs["standard_name"] == standard_name
        assert var.attrs["long_name"]
        assert var.attrs["grid_mapping"] == "spatial_ref"
        assert var.encoding["chunks"] == (12, 16, 16)
    assert cube.lat.attrs["units"] == "degrees_north"
    assert cube.lon.attrs["units"] == "degrees_east"


def test_grid_mapping_and_grid(cube: xr.Dataset, sample_world: SampleWorld) -> None:
    pytest.importorskip("rioxarray")
    assert "crs_wkt" in cube.spatial_ref.attrs
    assert cube.rio.crs.to_epsg() == 4326
    assert np.allclose(np.diff(cube.lon), 0.25)
    assert np.allclose(np.diff(cube.lat), -0.25)
    west, south, east, north = sample_world.bbox
    assert cube.lon.min() < west
    assert east < cube.lon.max()
    assert cube.lat.min() < south
    assert north < cube.lat.max()
    assert (cube.time.diff("time").dt.days >= 28).all()
    assert (cube.time.diff("time").dt.days <= 31).all()
    assert str(cube.time.values[0])[:10] == "2021-01-01"


def test_content_is_plausible(cube: xr.Dataset) -> None:
    t2m = cube.t2m.load()
    assert float(t2m.min()) > 240
    assert float(t2m.max()) < 320
    monthly = t2m.groupby("time.month").mean()
    assert float(monthly.sel(month=7).mean() - monthly.sel(month=1).mean()) > 10
    # Colder to the north.
    zonal = t2m.mean(["time", "lon"])
    assert float(zonal.isel(lat=0)) < float(zonal.isel(lat=-1))
    wind = np.hypot(cube.u10, cube.v10)
    assert 0 < float(wind.mean()) < 15
    assert not t2m.isnull().any()
