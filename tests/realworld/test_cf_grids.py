"""CF grids as climate models and reanalyses write them, through open_xarray, open_zarr and open_raster (GDAL).

* grid mappings of parameters only, as CORDEX (``rotated_latitude_longitude``), WRF
  (``lambert_conformal_conic`` on a 6370 km sphere), NSIDC (``polar_stereographic``) and models on a
  spherical Earth (``latitude_longitude`` with ``earth_radius``) write them: the CRS terrapipe places chips
  in is ``pyproj.CRS.from_cf`` of the attributes, never plain EPSG:4326 (a sphere is not WGS 84);
* latitude north-to-south and south-to-north with ``lat_bnds``/``lon_bnds``, longitude 0..360: the transform's
  origin is the EDGE of the first cell, half a cell out from the first centre, as GDAL (rasterio) reads the
  same file; every chip holds the pixels of rasterio's window at its place;
* dimension orders ``(time, lat, lon)``, ``(lat, lon, time)``, ``(time, level, lat, lon)``, ``member``
  dimensions and singleton dimensions: each chip is the ``isel`` of its window, and its transform is the
  one of its lat/lon window;
* curvilinear grids (2-D ``lat``/``lon``: WRF's ``XLAT``/``XLONG``, ROMS's ``lat_rho``/``lon_rho``) have no
  regular transform: a stage that needs one says so by name, and none gets a transform made up from the
  array indexes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from pyproj import CRS
from shapely.geometry import box

import terrapipe as tp
import terrapipe.chip
import terrapipe.fuse
from terrapipe.core.errors import TerrapipeError
from terrapipe.fuse.grid import grid_of

pytest.importorskip("netCDF4")

LONLAT = (
    {"units": "degrees_east", "standard_name": "longitude"},
    {"units": "degrees_north", "standard_name": "latitude"},
)
MAPPINGS: dict[
    str, tuple[dict[str, Any], tuple[str, str], tuple[dict[str, str], dict[str, str]], Any, Any]
] = {
    "latitude_longitude_sphere": (
        {"grid_mapping_name": "latitude_longitude", "earth_radius": 6371229.0},
        ("lon", "lat"),
        LONLAT,
        10.25 + 0.5 * np.arange(8),
        49.75 - 0.5 * np.arange(6),
    ),
    "rotated_latitude_longitude": (  # CORDEX EUR-11
        {
            "grid_mapping_name": "rotated_latitude_longitude",
            "grid_north_pole_latitude": 39.25,
            "grid_north_pole_longitude": -162.0,
        },
        ("rlon", "rlat"),
        (
            {"standard_name": "grid_longitude", "units": "degrees"},
            {"standard_name": "grid_latitude", "units": "degrees"},
        ),
        -28.375 + 0.11 * np.arange(8),
        -23.375 + 0.11 * np.arange(6),
    ),
    "lambert_conformal_conic_wrf": (
        {
            "grid_mapping_name": "lambert_conformal_conic",
            "standard_parallel": [30.0, 60.0],
            "longitude_of_central_meridian": -98.0,
            "latitude_of_projection_origin": 38.0,
            "earth_radius": 6370000.0,
            "false_easting": 0.0,
            "false_northing": 0.0,
        },
        ("x", "y"),
        (
            {"standard_name": "projection_x_coordinate", "units": "m"},
            {"standard_name": "projection_y_coordinate", "units": "m"},
        ),
        -100000.0 + 3000.0 * np.arange(8),
        200000.0 - 3000.0 * np.arange(6),
    ),
    "polar_stereographic_nsidc": (
        {
            "grid_mapping_name": "polar_stereographic",
            "straight_vertical_longitude_from_pole": -45.0,
            "standard_parallel": 70.0,
            "latitude_of_projection_origin": 90.0,
            "false_easting": 0.0,
            "false_northing": 0.0,
            "semi_major_axis": 6378273.0,
            "semi_minor_axis": 6356889.449,
        },
        ("x", "y"),
        (
            {"standard_name": "projection_x_coordinate", "units": "m"},
            {"standard_name": "projection_y_coordinate", "units": "m"},
        ),
        -3850000.0 + 25000.0 * np.arange(8),
        5850000.0 - 25000.0 * np.arange(6),
    ),
}
VALUES = np.arange(48, dtype="float32").reshape(6, 8)


def _mapped(name: str) -> xr.Dataset:
    attrs, (x, y), (x_attrs, y_attrs), xs, ys = MAPPINGS[name]
    ds = xr.Dataset(
        {"tas": ((y, x), VALUES, {"grid_mapping": "crs", "units": "K"})},
        coords={x: (x, xs, x_attrs), y: (y, ys, y_attrs)},
    )
    ds["crs"] = xr.DataArray(np.int32(0), attrs=attrs)
    return ds


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cf_grids")


@pytest.mark.parametrize("name", list(MAPPINGS))
@pytest.mark.parametrize("opener", ["open_xarray", "open_zarr"])
def test_a_cf_grid_mapping_places_chips_in_pyproj_s_crs(folder: Path, name: str, opener: str) -> None:
    ds = _mapped(name)
    reference = CRS.from_cf(MAPPINGS[name][0])
    if opener == "open_xarray":
        path = folder / f"{name}.nc"
        ds.to_netcdf(path, engine="netcdf4")
        opened = tp.open_xarray(path, decode_coords="all").tas
    else:
        path = folder / f"{name}.zarr"
        ds.to_zarr(path, mode="w")
        opened = tp.open_zarr(path, variables="tas")
    grid = grid_of(opened)
    assert CRS(grid.crs).equals(reference, ignore_axis_order=True), (str(grid.crs), reference.to_wkt())
    x, y = MAPPINGS[name][1]
    for values, meta in tp.from_items([opened]).chip({y: 3, x: 4}, output="numpy"):
        assert CRS(meta["crs"]).equals(reference, ignore_axis_order=True)
        a, _, c, _, e, f = meta["transform"][:6]
        col = round((c - (ds[x].values[0] - a / 2)) / a)
        row = round((f - (ds[y].values[0] - e / 2)) / e)
        np.testing.assert_array_equal(values, VALUES[row : row + 3, col : col + 4])


def _bounded(order: str, lon0: float) -> xr.Dataset:
    """A 2.5-degree global-ish grid with lat_bnds/lon_bnds, as CMIP writes it."""
    step = 2.5
    lat = 88.75 - step * np.arange(12) if order == "north_to_south" else -88.75 + step * np.arange(12)
    lon = lon0 + step / 2 + step * np.arange(16)
    ds = xr.Dataset(
        {
            "pr": (
                ("lat", "lon"),
                np.arange(12 * 16, dtype="float32").reshape(12, 16),
                {"units": "kg m-2 s-1"},
            )
        },
        coords={
            "lat": (
                "lat",
                lat,
                {"units": "degrees_north", "standard_name": "latitude", "axis": "Y", "bounds": "lat_bnds"},
            ),
            "lon": (
                "lon",
                lon,
                {"units": "degrees_east", "standard_name": "longitude", "axis": "X", "bounds": "lon_bnds"},
            ),
        },
    )
    ds["lat_bnds"] = (("lat", "bnds"), np.stack([lat - step / 2, lat + step / 2], axis=1))
    ds["lon_bnds"] = (("lon", "bnds"), np.stack([lon - step / 2, lon + step / 2], axis=1))
    return ds


@pytest.mark.parametrize("order", ["north_to_south", "south_to_north"])
@pytest.mark.parametrize("lon0", [0.0, -180.0, 340.0], ids=["0_360", "m180_180", "past_360"])
def test_cell_edges_and_every_chip_are_rasterio_s_on_the_same_file(
    folder: Path, order: str, lon0: float
) -> None:
    path = folder / f"bounded_{order}_{int(lon0)}.nc"
    _bounded(order, lon0).to_netcdf(path, engine="netcdf4")
    with rasterio.open(f"netcdf:{path}:pr") as src:
        gdal_transform, stored = src.transform, src.read(1)
    cube = tp.open_xarray(path).pr.rio.write_crs("EPSG:4326")
    chips = list(tp.from_items([cube]).chip({"lat": 4, "lon": 8}, output="numpy"))
    assert len(chips) == 6
    ours = Affine(*chips[0][1]["transform"][:6])  # the first chip starts at the grid's first cell
    first_edge = cube.lat.values[0] - np.sign(cube.lat.values[1] - cube.lat.values[0]) * 1.25
    assert (ours.c, ours.f) == pytest.approx((lon0, first_edge))  # edges, half a cell out from the centres
    assert (ours.c - gdal_transform.c) % 360.0 == pytest.approx(0.0)  # GDAL shows 340..380 as -20..20
    gdal = (gdal_transform.a, gdal_transform.b, gdal_transform.d, gdal_transform.e, gdal_transform.f)
    if np.sign(ours.e) == np.sign(gdal_transform.e):
        assert (ours.a, ours.b, ours.d, ours.e, ours.f) == pytest.approx(gdal)
        np.testing.assert_array_equal(cube.values, stored)
    else:  # GDAL shows a south-to-north file north up: the same cells, rows reversed
        assert (ours.a, ours.b, ours.d, -ours.e, ours.f + ours.e * 12) == pytest.approx(gdal)
        np.testing.assert_array_equal(cube.values, stored[::-1])
    for values, meta in chips:
        col, row = ~ours * tuple(meta["transform"][2:6:3])
        window = cube.values[round(row) : round(row) + 4, round(col) : round(col) + 8]
        np.testing.assert_array_equal(values, window)


ORDERS = [
    ("time", "lat", "lon"),
    ("lat", "lon", "time"),
    ("time", "level", "lat", "lon"),
    ("member", "time", "lat", "lon"),
    ("lat", "member", "lon", "time"),
    ("time", "single", "lat", "lon"),
]


def _cube(order: tuple[str, ...]) -> xr.DataArray:
    sizes = {"time": 3, "level": 2, "member": 2, "single": 1, "lat": 6, "lon": 8}
    shape = tuple(sizes[d] for d in order)
    coords: dict[str, Any] = {"lat": 49.75 - 0.5 * np.arange(6), "lon": 10.25 + 0.5 * np.arange(8)}
    return xr.DataArray(
        np.arange(np.prod(shape), dtype="float32").reshape(shape), dims=order, coords=coords
    ).rio.write_crs("EPSG:4326")


@pytest.mark.parametrize("order", ORDERS, ids=["_".join(o) for o in ORDERS])
@pytest.mark.parametrize("output", ["xarray", "numpy"])
def test_every_dimension_order_chips_to_its_isel(order: tuple[str, ...], output: str) -> None:
    cube = _cube(order)
    chips = list(tp.from_items([cube]).chip({"lat": 3, "lon": 4}, output=output))
    assert len(chips) == 4
    rest = [d for d in order if d not in ("lat", "lon")]
    for chip in chips:
        if output == "xarray":
            window = cube.sel(lat=chip.lat, lon=chip.lon)
            xr.testing.assert_identical(chip.drop_vars("spatial_ref"), window.drop_vars("spatial_ref"))
            continue
        values, meta = chip
        a, _, c, _, e, f = meta["transform"][:6]
        col, row = round((c - 10.0) / 0.5), round((50.0 - f) / 0.5)
        expected = cube.isel(lat=slice(row, row + 3), lon=slice(col, col + 4)).transpose(*rest, "lat", "lon")
        np.testing.assert_array_equal(values, expected.values)
        assert (a, e) == (0.5, -0.5)


def _curvilinear(kind: str) -> xr.DataArray:
    j, i = np.meshgrid(np.arange(6), np.arange(8), indexing="ij")
    lat, lon = 40.0 + 0.1 * j + 0.02 * i, -100.0 + 0.1 * i + 0.03 * j
    if kind == "wrf":
        dims, names = ("south_north", "west_east"), ("XLAT", "XLONG")
    elif kind == "roms":
        dims, names = ("eta_rho", "xi_rho"), ("lat_rho", "lon_rho")
    else:  # index dimensions named y/x without coordinates, 2-D lat/lon beside them
        dims, names = ("y", "x"), ("lat", "lon")
    coords = {
        names[0]: (dims, lat, {"units": "degrees_north", "standard_name": "latitude"}),
        names[1]: (dims, lon, {"units": "degrees_east", "standard_name": "longitude"}),
    }
    return xr.DataArray(VALUES, dims=dims, coords=coords, name="t2").rio.write_crs("EPSG:4326")


@pytest.mark.parametrize("kind", ["wrf", "roms", "yx"])
def test_a_curvilinear_grid_is_refused_by_name_where_a_grid_is_needed(kind: str) -> None:
    cube = _curvilinear(kind)
    dims = cube.dims
    layer = gpd.GeoDataFrame({"v": [1]}, geometry=[box(-100.0, 40.0, -99.5, 40.5)], crs="EPSG:4326")
    chips = tp.from_items([cube]).chip({dims[0]: 3, dims[1]: 4})
    with pytest.raises(TerrapipeError, match=r"transform|y and x dimensions"):
        list(chips.rasterize(layer, column="v", name="mask"))


@pytest.mark.parametrize("kind", ["wrf", "roms", "yx"])
def test_a_curvilinear_grid_s_numpy_chips_are_not_placed_by_array_index(kind: str) -> None:
    """A GeoMeta either places the chip where it is or says it has no place (no CRS); never at its indexes."""
    cube = _curvilinear(kind)
    dims = cube.dims
    try:
        chips = list(tp.from_items([cube]).chip({dims[0]: 3, dims[1]: 4}, output="numpy"))
    except TerrapipeError:
        return
    for _, meta in chips:
        assert not meta["crs"], f"placed in {meta['crs']} by its array indexes: {meta['transform']}"
