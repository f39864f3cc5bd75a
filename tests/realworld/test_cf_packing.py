"""Packed CF variables (ERA5's int16 ``scale_factor``/``add_offset``) through every entry point, against xarray.

ECMWF's ERA5 netCDF files (and many CMIP/CORDEX and satellite L3 products) store a variable as ``int16``
with ``scale_factor`` and ``add_offset``, a ``_FillValue`` and often a ``missing_value`` that differs from it;
flags are stored as signed bytes with ``_Unsigned = "true"``. The file here is written with netCDF4 the way
those producers write it, and read:

* through xarray (``tp.open_xarray``, and ``tp.open_zarr`` of the same variables written to Zarr with their
  encoding): CF decoding as xarray's (physical floats, both fill values NaN, ``_Unsigned`` bytes as
  ``uint8``); every chip holds xarray's decoded values;
* through GDAL (``tp.open_raster('netcdf:<file>:<var>')``, ``read_raster``): the stored integers, as rasterio
  reads them, with ``scale_factor``/``add_offset`` and the nodata (``_FillValue``) in the attributes; a
  chip's values times the scale plus the offset are xarray's. That the two paths differ is documented
  (docs/conformance.md, "CF conventions"), and the attributes travel with every xarray chip, so a packed
  chip is never unmarked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr

import terrapipe as tp
import terrapipe.chip

netcdf4 = pytest.importorskip("netCDF4")

SCALE, OFFSET = 0.01, 273.15
FILL, MISSING = -32767, -32768
RAW = (np.arange(6 * 8, dtype="int16").reshape(6, 8) * 97 - 2000).astype("int16")
RAW[0, 0], RAW[0, 1], RAW[5, 7] = FILL, MISSING, 30000  # 30000: outside valid_max, kept (xarray does)
FLAGS = np.arange(-24, 24, dtype="int8").reshape(6, 8)
FLAGS[2, 3] = -1  # the byte's _FillValue


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A netCDF-4 file as ERA5's: int16 packed t2m with _FillValue and a different missing_value."""
    path = tmp_path_factory.mktemp("packed") / "era5_packed.nc"
    with netcdf4.Dataset(path, "w") as nc:
        nc.Conventions = "CF-1.6"
        nc.createDimension("latitude", 6)
        nc.createDimension("longitude", 8)
        lat = nc.createVariable("latitude", "f4", ("latitude",))
        lat[:] = 50.0 - 0.25 * np.arange(6)
        lat.units, lat.standard_name = "degrees_north", "latitude"
        lon = nc.createVariable("longitude", "f4", ("longitude",))
        lon[:] = 10.0 + 0.25 * np.arange(8)
        lon.units, lon.standard_name = "degrees_east", "longitude"
        crs = nc.createVariable("crs", "i4")  # CDO and GDAL write one; GDAL needs it for a CRS
        crs.grid_mapping_name = "latitude_longitude"
        crs.semi_major_axis, crs.inverse_flattening = 6378137.0, 298.257223563
        t2m = nc.createVariable("t2m", "i2", ("latitude", "longitude"), fill_value=np.int16(FILL))
        t2m.grid_mapping = "crs"
        t2m.set_auto_maskandscale(False)
        t2m.scale_factor, t2m.add_offset = SCALE, OFFSET
        t2m.missing_value = np.int16(MISSING)
        t2m.valid_min, t2m.valid_max = np.int16(-20000), np.int16(20000)
        t2m.units, t2m.long_name = "K", "2 metre temperature"
        t2m[:] = RAW
        flag = nc.createVariable("flag", "i1", ("latitude", "longitude"), fill_value=np.int8(-1))
        flag.set_auto_maskandscale(False)
        flag._Unsigned = "true"
        flag.grid_mapping = "crs"
        flag[:] = FLAGS
    return path


@pytest.fixture(scope="module")
def packed_zarr(packed: Path) -> Path:
    """The same variables written to Zarr by xarray, encoding (int16, scale, offset, fills) kept."""
    path = packed.with_suffix(".zarr")
    with xr.open_dataset(packed, mask_and_scale=False) as ds:  # stored values and attributes as in the file
        ds.load().to_zarr(path, mode="w")
    return path


def _xarray(packed: Path, name: str) -> np.ndarray:
    with xr.open_dataset(packed) as ds:
        return np.asarray(ds[name].values)


def _numpy_chips(obj: xr.DataArray, size: dict[str, int]) -> list[tuple[np.ndarray, dict]]:
    return list(tp.from_items([obj]).chip(size, output="numpy"))


def test_xarray_decodes_both_fill_values_and_the_scale(packed: Path) -> None:
    """The reference, as the file says: both fills NaN, physical floats, _Unsigned bytes as uint8."""
    t2m = _xarray(packed, "t2m")
    assert np.isnan(t2m[0, 0])
    assert np.isnan(t2m[0, 1])
    assert t2m[0, 2] == pytest.approx(RAW[0, 2] * SCALE + OFFSET)
    assert t2m[5, 7] == pytest.approx(30000 * SCALE + OFFSET)  # valid_max is not applied by xarray
    flag = _xarray(packed, "flag")
    assert flag[0, 0] == 232
    assert np.isnan(flag[2, 3])


@pytest.mark.parametrize("name", ["t2m", "flag"])
@pytest.mark.parametrize("opener", ["open_xarray", "open_zarr"])
def test_every_chip_through_xarray_is_xarray_s_decoded_values(
    packed: Path, packed_zarr: Path, opener: str, name: str
) -> None:
    reference = _xarray(packed, name)
    opened = tp.open_xarray(packed)[name] if opener == "open_xarray" else tp.open_zarr(packed_zarr)[name]
    assert opened.dtype == reference.dtype
    chips = _numpy_chips(opened, {"latitude": 3, "longitude": 4})
    assert len(chips) == 4
    for values, meta in chips:  # the window from the chip's own transform: edges 50.125 / 9.875
        row = round((50.125 - meta["transform"][5]) / 0.25)
        col = round((meta["transform"][2] - 9.875) / 0.25)
        np.testing.assert_array_equal(values, reference[row : row + 3, col : col + 4])


def test_gdal_s_path_gives_the_stored_integers_as_rasterio_with_the_scale_in_the_attributes(
    packed: Path,
) -> None:
    href = f"netcdf:{packed}:t2m"
    with rasterio.open(href) as src:
        stored = src.read(1)
        scales, offsets, nodata = src.scales, src.offsets, src.nodata
    assert (scales, offsets) == ((SCALE,), (OFFSET,))
    assert nodata == FILL
    opened = tp.open_raster(href)
    assert opened.dtype == np.int16
    assert opened.attrs["scale_factor"] == SCALE
    assert opened.attrs["add_offset"] == OFFSET
    for values, _ in _numpy_chips(opened, {"y": 3, "x": 4}):
        assert values.dtype == np.int16
    chips = list(tp.from_items([opened]).chip({"y": 3, "x": 4}))
    for chip in chips:  # every xarray chip says it is packed
        assert chip.attrs["scale_factor"] == SCALE
        assert chip.attrs["add_offset"] == OFFSET
        np.testing.assert_array_equal(chip.values[0], stored[_window(chip, opened)])


def _window(chip: xr.DataArray, whole: xr.DataArray) -> tuple[slice, slice]:
    row = int(np.flatnonzero(whole.y.values == chip.y.values[0])[0])
    col = int(np.flatnonzero(whole.x.values == chip.x.values[0])[0])
    return slice(row, row + chip.sizes["y"]), slice(col, col + chip.sizes["x"])


def test_gdal_s_stored_integers_scaled_are_xarray_s_values_where_valid(packed: Path) -> None:
    """The two paths hold the same physical values: stored * scale + offset, where GDAL's nodata is not.

    They differ in what is missing, as documented: GDAL also gives its nodata for the ``missing_value``
    and for values outside ``valid_min``/``valid_max`` (CF's rule); xarray masks ``_FillValue`` and
    ``missing_value`` only, and keeps 30000 (573.15 K) past ``valid_max``.
    """
    opened = tp.open_raster(f"netcdf:{packed}:t2m")
    physical = opened.values[0] * opened.attrs["scale_factor"] + opened.attrs["add_offset"]
    reference = _xarray(packed, "t2m")
    valid = opened.values[0] != opened.attrs["_FillValue"]
    assert not valid[0, 1]  # missing_value: GDAL's nodata (xarray: NaN)
    assert not valid[5, 7]  # past valid_max: GDAL's nodata
    assert reference[5, 7] == pytest.approx(573.15)  # xarray: a value
    np.testing.assert_allclose(
        physical[valid & ~np.isnan(reference)], reference[valid & ~np.isnan(reference)]
    )
