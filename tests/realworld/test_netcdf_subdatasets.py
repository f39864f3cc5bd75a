"""netCDF and Zarr files with several variables through ``open_raster`` (GDAL's path), as rasterio reads them.

A CF netCDF file with more than one data variable (ERA5's ``t2m`` and ``u10``, a GDAL ``-separate`` export)
has no raster bands of its own: GDAL lists one subdataset per variable, named ``NETCDF:"<file>":<variable>``
(``ZARR:"<store>":/<array>`` for a Zarr store). rasterio opens those names; the file itself has ``count == 0``.
terrapipe must read the variable asked for, or say what to ask for, with a named error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
import xarray as xr
from affine import Affine

import terrapipe as tp
from terrapipe.core.errors import TerrapipeError

VALUES = np.arange(48, dtype="float32").reshape(6, 8)
LONLAT = Affine(0.5, 0, 10, 0, -0.5, 50)


@pytest.fixture(scope="module")
def two_variables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A netCDF-3 file with two variables on one lon/lat grid, as GDAL and xarray write it."""
    folder = tmp_path_factory.mktemp("subdatasets")
    tif = folder / "one.tif"
    profile = {"driver": "GTiff", "width": 8, "height": 6, "count": 1, "dtype": "float32"}
    with rasterio.open(tif, "w", crs="EPSG:4326", transform=LONLAT, **profile) as dst:
        dst.write(VALUES[None])
    one = folder / "one.nc"
    rasterio.shutil.copy(tif, one, driver="netCDF", FORMAT="NC")
    ds = xr.open_dataset(one, engine="scipy", decode_coords="all")
    path = folder / "two.nc"
    u10 = ds.Band1.copy(data=ds.Band1.values * 2)  # keeps its grid mapping (arithmetic drops the encoding)
    ds.assign(t2m=ds.Band1, u10=u10).drop_vars("Band1").to_netcdf(path, engine="scipy")
    ds.close()
    return path


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_rasterio_sees_two_subdatasets_and_no_band(two_variables: Path) -> None:
    with rasterio.open(two_variables) as src:
        assert src.count == 0
        assert len(src.subdatasets) == 2


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_a_file_of_subdatasets_is_a_named_error_naming_them(two_variables: Path) -> None:
    with pytest.raises(TerrapipeError) as info:
        tp.open_raster(two_variables)
    assert "u10" in str(info.value)


@pytest.mark.parametrize("variable", ["t2m", "u10"])
def test_a_subdataset_name_reads_that_variable(two_variables: Path, variable: str) -> None:
    name = f'NETCDF:"{two_variables}":{variable}'
    with rasterio.open(name) as src:
        expected, transform, crs = src.read(), src.transform, src.crs
    da = tp.open_raster(name)
    np.testing.assert_array_equal(da.values, expected)
    assert da.rio.transform() == transform
    assert da.rio.crs == crs
    assert crs == "EPSG:4326"
