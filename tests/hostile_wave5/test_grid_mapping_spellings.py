"""A Dataset's grid mappings compared by what they mean, not by how they are written.

1d53d24 refuses numpy chips of a Dataset whose variables' grid mappings differ in CRS or
``GeoTransform`` (``chip.build._refuse_grid_mappings_that_differ``), and f9816d5 does so in
``grid_of``. The chip check reads a grid mapping's CRS from its ``crs_wkt``/``spatial_ref``
attributes only. A CF grid mapping written as parameters (``grid_mapping_name`` and its projection
parameters: what CDO, NCO, netCDF-Java and many model writers leave; rioxarray and pyproj read it)
has neither, so two such mappings of different UTM zones count as the same CRS (``None == None``)
and the numpy chips of both variables are handed out (with ``crs ''``), silently; ``grid_of`` (which
asks rioxarray) refuses the same Dataset. And where two grid mappings do agree, the numpy chips'
GeoMeta has ``crs ''``: ``crs_and_transform`` asks ``ds.rio.crs``, which raises rioxarray's
"Multiple grid mappings exist" for any Dataset of two, so every later CRS check is skipped. The other direction: one grid written twice, once by GDAL
(``%.16g``) and once by rioxarray (Python's shortest ``repr``) or as WKT and as an EPSG code, is one
grid, not a mismatch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from pyproj import CRS

import terrapipe as tp
from terrapipe.core.errors import GridMismatchError
from terrapipe.fuse.grid import grid_of

VALUES = np.arange(48, dtype="float32").reshape(6, 8)
Y = 3999995.0 - 10 * np.arange(6)
X = 500005.0 + 10 * np.arange(8)


def _mapping(attrs: dict[str, Any]) -> xr.DataArray:
    return xr.DataArray(np.int32(0), attrs=attrs)


def _cf_parameters(epsg: int) -> dict[str, Any]:
    """The CF grid-mapping parameters of a CRS, without ``crs_wkt``/``spatial_ref`` (as a model writes it)."""
    attrs = CRS.from_epsg(epsg).to_cf()
    return {k: v for k, v in attrs.items() if k not in ("crs_wkt", "spatial_ref")}


def _dataset(mappings: dict[str, dict[str, Any]], *, coords: bool = True) -> xr.Dataset:
    data = {name: (("y", "x"), VALUES + k) for k, name in enumerate(mappings)}
    coordinates: dict[str, Any] = {f"gm_{name}": _mapping(attrs) for name, attrs in mappings.items()}
    if coords:
        coordinates.update(y=Y, x=X)
    ds = xr.Dataset(data, coords=coordinates)
    for name in mappings:
        ds[name].encoding["grid_mapping"] = f"gm_{name}"
    return ds


def _numpy_meta(ds: xr.Dataset) -> Any:
    """The GeoMeta of a Dataset's first numpy chip (``chip(output="numpy")`` yields ``(array, meta)``)."""
    return next(iter(tp.from_items([ds]).chip({"y": 3, "x": 4}, output="numpy")))[1]


def test_rioxarray_reads_each_variable_s_own_zone() -> None:
    """The premise: each variable's CRS is its own parameters' (rioxarray, pyproj)."""
    ds = _dataset({"a": _cf_parameters(32631), "b": _cf_parameters(32632)})
    assert ds["a"].rio.crs.to_epsg() == 32631
    assert ds["b"].rio.crs.to_epsg() == 32632


def test_grid_of_refuses_two_zones_written_as_parameters() -> None:
    ds = _dataset({"a": _cf_parameters(32631), "b": _cf_parameters(32632)})
    with pytest.raises(GridMismatchError):
        grid_of(ds)


def test_numpy_chips_refuse_two_zones_written_as_parameters() -> None:
    ds = _dataset({"a": _cf_parameters(32631), "b": _cf_parameters(32632)})
    try:
        meta = _numpy_meta(ds)
    except GridMismatchError:
        return
    pytest.fail(f"one GeoMeta ({meta['crs']!r}) for variables in EPSG:32631 and EPSG:32632")


def test_numpy_chips_refuse_parameters_against_wkt_of_another_zone() -> None:
    ds = _dataset({"a": _cf_parameters(32631), "b": {"crs_wkt": CRS.from_epsg(32632).to_wkt()}})
    with pytest.raises(GridMismatchError):
        _numpy_meta(ds)


SAME_CRS = {
    "identical": ({"crs_wkt": CRS.from_epsg(32631).to_wkt()}, {"crs_wkt": CRS.from_epsg(32631).to_wkt()}),
    "wkt2_and_wkt1": (
        {"crs_wkt": CRS.from_epsg(32631).to_wkt()},
        {"spatial_ref": CRS.from_epsg(32631).to_wkt("WKT1_GDAL")},
    ),
    "wkt_and_projjson_free_wkt": (
        {"crs_wkt": CRS.from_epsg(32631).to_wkt()},
        {"crs_wkt": CRS.from_epsg(32631).to_wkt("WKT2_2019")},
    ),
    "parameters_twice": (_cf_parameters(32631), _cf_parameters(32631)),
}


@pytest.mark.parametrize("case", list(SAME_CRS))
def test_one_crs_spelt_two_ways_is_one_grid(case: str) -> None:
    first, second = SAME_CRS[case]
    assert grid_of(_dataset({"a": first, "b": second})).crs.epsg == 32631


@pytest.mark.parametrize("case", list(SAME_CRS))
def test_numpy_chips_of_one_crs_spelt_two_ways_carry_it(case: str) -> None:
    first, second = SAME_CRS[case]
    assert "32631" in str(_numpy_meta(_dataset({"a": first, "b": second}))["crs"])


# The same 10 m grid's GeoTransform as GDAL writes it (%.16g), rioxarray (repr), a fixed format and
# exponents: they parse to one set of numbers.
SPELLINGS = [
    "500000.0 10.0 0.0 4000000.0 0.0 -10.0",
    "500000 10 0 4000000 0 -10",
    "5e5 1e1 0 4e6 0 -1e1",
    "500000.000000 10.000000 0.000000 4000000.000000 0.000000 -10.000000",
]


def _placed(transform_text: str, crs_attrs: dict[str, Any]) -> dict[str, Any]:
    return {**crs_attrs, "GeoTransform": transform_text}


@pytest.mark.parametrize("other", SPELLINGS[1:])
def test_one_transform_spelt_two_ways_is_one_grid(other: str) -> None:
    wkt = {"crs_wkt": CRS.from_epsg(32631).to_wkt()}
    ds = _dataset({"a": _placed(SPELLINGS[0], wkt), "b": _placed(other, wkt)}, coords=False)
    assert tuple(_numpy_meta(ds)["transform"])[:6] == (10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)
    assert tuple(grid_of(ds).affine)[:6] == (10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)


@pytest.mark.parametrize(
    "how",
    ["grid_of", "numpy_chip"],
)
def test_a_geographic_transform_rounded_differently_is_one_grid(how: str) -> None:
    """A 10 arc-minute grid: GDAL's %.16g and Python's repr of 1/6 degree differ in the last digit.

    Both stand for one grid (0.1666666666666667 and 0.16666666666666666: 2e-16 relative, far below a
    pixel over any array).
    """
    size = 1 / 6
    assert float(f"{size:.16g}") != size
    gdal = f"{5.0:.16g} {size:.16g} 0 {45.0:.16g} 0 {-size:.16g}"
    python = f"5.0 {size!r} 0.0 45.0 0.0 {-size!r}"
    wkt = {"crs_wkt": CRS.from_epsg(4326).to_wkt()}
    ds = _dataset({"a": _placed(gdal, wkt), "b": _placed(python, wkt)}, coords=False)
    if how == "grid_of":
        assert np.isclose(grid_of(ds).affine.a, size, rtol=1e-12)
    else:
        assert np.isclose(_numpy_meta(ds)["transform"][0], size, rtol=1e-12)


def test_truly_different_transforms_are_still_refused() -> None:
    wkt = {"crs_wkt": CRS.from_epsg(32631).to_wkt()}
    moved = "500010.0 10.0 0.0 4000000.0 0.0 -10.0"  # one pixel east
    ds = _dataset({"a": _placed(SPELLINGS[0], wkt), "b": _placed(moved, wkt)}, coords=False)
    with pytest.raises(GridMismatchError):
        _numpy_meta(ds)


# CRSs PROJ finds "similar" to EPSG:32631 (identify() gives it at confidence 25-50) but that place
# pixels elsewhere: 100 m of false easting, another scale factor, feet, a datum shift.
NEAR_MISSES = {
    "false_easting_100m": "+proj=tmerc +lat_0=0 +lon_0=3 +k=0.9996 +x_0=500100 +y_0=0 +datum=WGS84 +units=m",
    "scale_factor": "+proj=tmerc +lat_0=0 +lon_0=3 +k=0.9999 +x_0=500000 +y_0=0 +datum=WGS84 +units=m",
    "us_feet": "+proj=utm +zone=31 +datum=WGS84 +units=us-ft",
    "datum_shift": "+proj=utm +zone=31 +ellps=WGS84 +towgs84=100,0,0 +units=m",
}


@pytest.mark.parametrize("how", ["grid_of", "numpy_chip"])
@pytest.mark.parametrize("case", list(NEAR_MISSES))
def test_a_near_miss_of_a_crs_is_another_crs(case: str, how: str) -> None:
    near = {"crs_wkt": CRS.from_user_input(NEAR_MISSES[case]).to_wkt()}
    ds = _dataset({"a": {"crs_wkt": CRS.from_epsg(32631).to_wkt()}, "b": near})
    with pytest.raises(GridMismatchError):
        grid_of(ds) if how == "grid_of" else _numpy_meta(ds)
