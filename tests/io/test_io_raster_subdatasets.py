"""A file with no raster bands of its own (GDAL subdatasets) through ``open_raster``.

A netCDF file of several variables, or a Zarr store of several arrays, opens in GDAL with ``count == 0``
and one subdataset per variable (rasterio's ``subdatasets``). ``open_raster`` asked it for band 1 and
rasterio's bare ``IndexError: No such band index: 1`` reached the user. It is a ``ReadError`` that lists
the subdatasets and names one to open; the name it gives opens that variable, as in rasterio.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401
import xarray as xr

from terrapipe.core.errors import ReadError
from terrapipe.io.raster import open_raster

pytestmark = [
    pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning"),
    pytest.mark.filterwarnings("ignore::zarr.errors.ZarrUserWarning"),
]

COORDS = {"y": 50.25 - 0.5 * np.arange(6), "x": 10.25 + 0.5 * np.arange(8)}


def _dataset(count: int) -> xr.Dataset:
    variables = {f"v{i}": (("y", "x"), np.full((6, 8), i, "float32")) for i in range(count)}
    return xr.Dataset(variables, coords=COORDS).rio.write_crs("EPSG:4326").rio.write_coordinate_system()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("subdatasets")
    out = {"nc": folder / "two.nc", "many": folder / "many.nc", "zarr": folder / "two.zarr"}
    _dataset(2).to_netcdf(out["nc"], engine="scipy")
    _dataset(15).to_netcdf(out["many"], engine="scipy")
    _dataset(2).to_zarr(out["zarr"], zarr_format=2)
    return out


def _suggested(message: str) -> str:
    found = re.search(r"open_raster\('(.+?)'\)", message)
    assert found is not None, message
    return found.group(1)


@pytest.mark.parametrize("kind", ["nc", "zarr"])
@pytest.mark.parametrize("options", [{}, {"bands": [1]}, {"overview_level": 0}, {"chunks": {"x": 4}}])
def test_a_file_of_subdatasets_is_a_read_error_naming_them(
    files: dict[str, Path], kind: str, options: dict[str, object]
) -> None:
    with rasterio.open(files[kind]) as src:
        assert src.count == 0
        listed = [v for k, v in src.tags(ns="SUBDATASETS").items() if k.endswith("_NAME")]  # GDAL's names
    assert listed
    with pytest.raises(ReadError) as info:
        open_raster(files[kind], **options)  # type: ignore[arg-type]
    message = str(info.value)
    assert str(files[kind]) in message
    assert all(name in message for name in listed)
    assert "v0" in _suggested(message)  # a variable, never a coordinate (GDAL's Zarr driver lists x and y)


@pytest.mark.parametrize("kind", ["nc", "zarr"])
def test_the_suggested_name_opens_that_variable_as_rasterio_does(files: dict[str, Path], kind: str) -> None:
    with pytest.raises(ReadError) as info:
        open_raster(files[kind])
    name = _suggested(str(info.value))
    with rasterio.open(name) as src:
        expected, transform, crs = src.read(), src.transform, src.crs
    da = open_raster(name)
    np.testing.assert_array_equal(da.values, expected)
    assert da.rio.transform() == transform
    assert da.rio.crs == crs == "EPSG:4326"


def test_many_subdatasets_are_listed_in_part(files: dict[str, Path]) -> None:
    with pytest.raises(ReadError) as info:
        open_raster(files["many"])
    message = str(info.value)
    assert "15 subdatasets" in message
    assert "and 3 more" in message


@pytest.mark.parametrize("kind", ["nc", "zarr"])
def test_each_name_rasterio_lists_opens_as_in_rasterio(files: dict[str, Path], kind: str) -> None:
    """rasterio's ``subdatasets`` writes netCDF names in lower case (``netcdf:<file>:<var>``): they open too."""
    with rasterio.open(files[kind]) as src:
        names = [name for name in src.subdatasets if name.rsplit(":", 1)[-1].strip("/") in ("v0", "v1")]
    assert len(names) == 2
    for name in names:
        with rasterio.open(name) as src:
            expected, transform, crs = src.read(), src.transform, src.crs
        da = open_raster(name)
        np.testing.assert_array_equal(da.values, expected)
        assert da.rio.transform() == transform
        assert da.rio.crs == crs
