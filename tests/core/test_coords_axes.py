"""core/coords.py: x/y found as CF says (axis, standard_name, units) and by name; float32 grids stay regular.

Before, ``xy_dims`` knew x/lon/longitude and y/lat/latitude by name only (GDAL's Zarr ``Y``/``X`` and CF
rotated-pole ``rlat``/``rlon`` grids were refused, dims named otherwise with CF axes too), and picked ``x``
over ``lon`` where both were dims. ``transform_from_coords`` took the first two coordinates' step: uneven
axes got a regular transform (see test_coords_spacing.py), and float32 coordinates a step off by their
rounding (10 m UTM: up to 6 cm a pixel, 70 m across a 10980-pixel tile).
"""

from __future__ import annotations

import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine

import terrapipe as tp
from terrapipe.core.coords import transform_from_coords, xy_dims
from terrapipe.core.errors import InvalidArgumentError, TerrapipeError
from terrapipe.fuse.grid import grid_of, spatial_dims


def _named(dims: tuple[str, str], attrs: tuple[dict[str, str], dict[str, str]]) -> xr.DataArray:
    coords = {
        dims[0]: (dims[0], 45.0 - np.arange(3.0), attrs[0]),
        dims[1]: (dims[1], 5.0 + np.arange(4.0), attrs[1]),
    }
    return xr.DataArray(np.zeros((3, 4)), dims=dims, coords=coords)


@pytest.mark.parametrize(
    "attrs",
    [
        ({"axis": "Y"}, {"axis": "X"}),
        ({"axis": "y"}, {"axis": "x"}),
        ({"standard_name": "projection_y_coordinate"}, {"standard_name": "projection_x_coordinate"}),
        ({"standard_name": "grid_latitude"}, {"standard_name": "grid_longitude"}),
        ({"standard_name": "latitude"}, {"standard_name": "longitude"}),
        ({"units": "degrees_north"}, {"units": "degrees_east"}),
        ({"units": "degree_N"}, {"units": "degreeE"}),
    ],
    ids=["axis", "axis_lower", "projection", "rotated", "lonlat", "units", "units_other_spelling"],
)
def test_cf_attributes_name_the_axes_whatever_the_dims_are_called(attrs):
    da = _named(("row", "col"), attrs)
    assert xy_dims(da) == ("col", "row")
    assert xy_dims(da.to_dataset(name="v")) == ("col", "row")
    assert spatial_dims(da) == ("row", "col")
    assert tuple(grid_of(da.rio.write_crs("EPSG:4326")).affine)[:6] == (1.0, 0.0, 4.5, 0.0, -1.0, 45.5)
    assert xy_dims(da.dims) == (None, None)  # names alone do not say


def test_attributes_win_over_names_and_other_axes_are_not_spatial():
    # "x" is a time-like index here; the CF axes are on "row"/"col".
    da = xr.DataArray(
        np.zeros((2, 3, 4)),
        dims=("x", "row", "col"),
        coords={
            "x": ("x", [0.0, 1.0], {"axis": "T"}),
            "row": ("row", [2.0, 1.0, 0.0], {"axis": "Y"}),
            "col": ("col", [0.0, 1, 2, 3], {"axis": "X"}),
        },
    )
    assert xy_dims(da) == ("col", "row")


@pytest.mark.parametrize(
    ("dims", "coords"),
    [
        (("y", "x", "lon"), {}),
        (("lat", "Y", "X"), {}),
        (("y", "i", "j"), {"i": ("i", [0.0, 1.0], {"axis": "X"}), "j": ("j", [0.0, 1.0], {"axis": "X"})}),
        (("y", "i", "x"), {"i": ("i", [0.0, 1.0], {"axis": "X"}), "x": ("x", [0.0, 1.0], {"axis": "X"})}),
    ],
    ids=["x_and_lon", "lat_and_Y", "two_x_axes", "x_axis_twice"],
)
def test_two_candidate_axes_are_a_named_error_never_a_guess(dims, coords):
    da = xr.DataArray(np.zeros((2, 2, 2)), dims=dims, coords=coords)
    with pytest.raises(InvalidArgumentError, match=r"could each be the [xy] axis") as info:
        xy_dims(da)
    assert sum(repr(d) in str(info.value) for d in dims) == 2
    with pytest.raises(TerrapipeError):
        next(
            iter(tp.from_items([da.rio.write_crs("EPSG:4326")]).chip(dict.fromkeys(dims, 2), output="numpy"))
        )


def test_gdal_s_and_rotated_pole_names_are_known_without_attributes():
    assert xy_dims(xr.DataArray(np.zeros((1, 2, 2)), dims=("band", "Y", "X"))) == ("X", "Y")
    assert xy_dims(xr.DataArray(np.zeros((2, 2)), dims=("rlat", "rlon"))) == ("rlon", "rlat")


# --- float32 coordinates of regular grids ---------------------------------------------------------------


def _float32_grid(x0: float, a: float, nx: int, y0: float, e: float, ny: int) -> xr.DataArray:
    xs = (x0 + a * (np.arange(nx) + 0.5)).astype("float32")
    ys = (y0 + e * (np.arange(ny) + 0.5)).astype("float32")
    return xr.DataArray(np.zeros((ny, nx), "u1"), dims=("y", "x"), coords={"y": ys, "x": xs})


GRIDS = {
    # A Sentinel-2 MGRS tile (10980 pixels of 10 m), north and south of the equator.
    "utm_10980": (600000.0, 10.0, 10980, 5000040.0, -10.0, 10980),
    "utm_south_10980": (600000.0, 10.0, 10980, 10000000.0, -10.0, 10980),
    # ERA5's 0.25 degree global grid, longitudes 0..360 and -180..180.
    "global_quarter_degree": (-0.125, 0.25, 1440, 90.125, -0.25, 721),
    "global_quarter_degree_west": (-180.125, 0.25, 1440, 90.125, -0.25, 721),
}


@pytest.mark.parametrize("name", list(GRIDS))
@pytest.mark.parametrize("held_as", ["float32", "float64"])
def test_float32_coordinates_of_a_regular_grid_are_regular(name, held_as):
    x0, a, nx, y0, e, ny = GRIDS[name]
    da = _float32_grid(*GRIDS[name])
    da = da.assign_coords(x=da.x.astype(held_as), y=da.y.astype(held_as))
    exact = Affine(a, 0, x0, 0, e, y0)
    for strict in (False, True):
        got = transform_from_coords(da, "x", "y", strict=strict)
        assert got is not None
        # The step is the whole axis's: the far corner lands within float32's rounding of the true one.
        far = np.array(got * (nx, ny)) - np.array(exact * (nx, ny))
        tolerance = 4 * np.finfo(np.float32).eps * max(abs(x0) + abs(a) * nx, abs(y0) + abs(e) * ny)
        assert np.abs(far).max() <= tolerance
        assert np.isclose(got.a, a, rtol=1e-6)
        assert np.isclose(got.e, e, rtol=1e-6)


def test_an_uneven_axis_is_named_in_grid_of_and_numpy_chips():
    sines, _ = np.polynomial.legendre.leggauss(16)
    da = xr.DataArray(
        np.zeros((16, 8), "f4"),
        dims=("lat", "lon"),
        coords={"lat": np.degrees(np.arcsin(sines))[::-1], "lon": 45.0 * np.arange(8)},
    ).rio.write_crs("EPSG:4326")
    with pytest.raises(InvalidArgumentError, match="'lat' coordinates are not evenly spaced"):
        grid_of(da)
    with pytest.raises(InvalidArgumentError, match="'lat' coordinates are not evenly spaced"):
        next(iter(tp.from_items([da]).chip({"lat": 4, "lon": 4}, output="numpy")))
    assert transform_from_coords(da, "lon", "lat") is None
    # A float32 Gaussian grid is still uneven: its spacing differs by far more than float32's rounding.
    as32 = da.assign_coords(lat=da.lat.astype("float32"))
    assert transform_from_coords(as32, "lon", "lat") is None


def test_decimal_rounded_coordinates_of_a_regular_grid_are_regular():
    """A 1/12 degree grid written with 4 decimals: each centre up to 5e-5 off; the step is the whole axis's."""
    xs = np.round(-180 + (np.arange(4320) + 0.5) / 12, 4)
    ys = np.round(90 - (np.arange(100) + 0.5) / 12, 4)
    da = xr.DataArray(np.zeros((100, 4320), "u1"), dims=("y", "x"), coords={"y": ys, "x": xs})
    got = transform_from_coords(da, "x", "y", strict=True)
    assert abs((got * (4320, 0))[0] - 180.0) < 1e-4  # the first two's step would be off by 0.2 degree here


@pytest.mark.parametrize("which", ["x", "y"])
def test_stitch_places_chips_of_an_uneven_template_by_their_coordinates(which):
    """stitch took the template's first two coordinates' step: a log-spaced axis put chips at wrong offsets."""
    from terrapipe.chip import stitch

    uneven = 500000.0 + np.array([5.0, 15, 25, 45, 85, 165, 325, 645])
    even = 4000000.0 - 10 * np.arange(8)
    coords = (
        {"x": uneven, "y": even} if which == "x" else {"x": 500000.0 + 10 * np.arange(8), "y": uneven[::-1]}
    )
    template = xr.DataArray(
        np.arange(64, dtype="float32").reshape(8, 8), dims=("y", "x"), coords=coords
    ).rio.write_crs("EPSG:32631")
    chips = [template.isel(y=slice(r, r + 4), x=slice(c, c + 4)) for r in (0, 4) for c in (0, 4)]
    out = stitch([(chip.values, chip) for chip in chips], template=template)
    np.testing.assert_array_equal(np.asarray(out).reshape(8, 8), template.values)
    stray = template.isel(y=slice(0, 4), x=slice(0, 4)).assign_coords(
        {which: template[which].values[:4] + 1.0}
    )
    with pytest.raises(TerrapipeError, match="not one of the template's"):
        stitch([(stray.values, stray)], template=template)


def test_rasterize_onto_a_rotated_pole_grid_found_by_its_cf_axes_is_rasterio_s():
    """CORDEX EUR-44's rotated pole: dims rlat/rlon named by axis attributes, the CRS from the grid mapping."""
    import geopandas as gpd
    from rasterio.features import rasterize as rio_rasterize
    from shapely.geometry import box

    pole = {
        "grid_mapping_name": "rotated_latitude_longitude",
        "grid_north_pole_latitude": 39.25,
        "grid_north_pole_longitude": -162.0,
    }
    da = xr.DataArray(
        np.zeros((12, 16), "float32"),
        dims=("j", "i"),  # named neither rlat/rlon: the attributes say
        coords={
            "j": ("j", -3.0 + 0.44 * np.arange(12), {"axis": "Y", "standard_name": "grid_latitude"}),
            "i": ("i", -4.0 + 0.44 * np.arange(16), {"standard_name": "grid_longitude"}),
            "rotated_pole": ((), 0, pole),
        },
        attrs={"grid_mapping": "rotated_pole"},
    )
    gdf = gpd.GeoDataFrame({"c": [1]}, geometry=[box(12, 45, 16, 48)], crs=4326)
    mask = next(iter(tp.from_items([da]).rasterize(gdf, column="c")))["mask"]
    grid = grid_of(da)
    expected = rio_rasterize(
        [(gdf.to_crs(da.rio.crs).geometry[0], 1)],
        out_shape=grid.shape.yx,
        transform=grid.affine,
        dtype="uint8",
    )
    assert expected.sum() > 0
    np.testing.assert_array_equal(np.asarray(mask.values).reshape(grid.shape.yx), expected)


@pytest.mark.parametrize(
    "xs",
    [
        [0.5, 1.5, 2.5, 3.5, 4.6],
        [0.5, 1.5, 2.4, 3.5, 4.5],
        [0.5, 1.5, 2.5, 2.5, 4.5],
        [0.5, 2.5, 1.5, 3.5, 4.5],
    ],
    ids=["last_step_off", "middle_value_off", "repeated_value", "out_of_order"],
)
def test_one_value_off_its_grid_is_uneven(xs):
    da = xr.DataArray(np.zeros((2, 5)), dims=("y", "x"), coords={"y": [1.5, 0.5], "x": xs})
    assert transform_from_coords(da, "x", "y") is None
    with pytest.raises(InvalidArgumentError, match="'x' coordinates are not evenly spaced"):
        transform_from_coords(da, "x", "y", strict=True)
