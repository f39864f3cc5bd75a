"""Zarr and netCDF georeferencing as other tools write it, through ``open_zarr``, ``read_zarr`` and xarray.

Each store here is written by the tool whose convention it follows (rioxarray, odc-geo, GDAL's Zarr and
netCDF drivers through rasterio) or, where the tool is not installed, by hand as its documentation says:

* rioxarray: a ``spatial_ref`` coordinate with ``crs_wkt``/``spatial_ref``/``GeoTransform`` and a
  ``grid_mapping`` attribute on each variable;
* CF: a ``grid_mapping`` variable with parameters only, no WKT (NOAA's HRRR/NAM ``lambert_conformal_conic``,
  NSIDC's ``polar_stereographic``, ``transverse_mercator``); the reference is ``pyproj.CRS.from_cf``;
* odc-geo: ``xr_zeros(GeoBox)`` written with ``to_zarr``;
* GDAL's Zarr driver (``rasterio.shutil.copy(..., driver="Zarr")``): the CRS in a ``_CRS`` attribute
  (``wkt``, ``projjson``, ``url``), dimensions ``Y``/``X``; the reference is rasterio reading the store;
* GDAL's netCDF driver (``FORMAT=NC``): a ``crs`` variable, ``lat``/``lon``, rows written bottom-up;
* GeoZarr's ``proj`` convention (zarr-conventions/geo-proj v1): ``proj:code``, ``proj:wkt2``,
  ``proj:projjson`` attributes on the group or array;
* an ERA5-like ``time, latitude, longitude`` cube (latitude 90 -> -90, longitude 0..360), no CRS recorded.

For each: the CRS and transform terrapipe finds (``grid_of``, a numpy chip's GeoMeta) against the reference
reader, the pixel a chip holds at a known place, and ``align_to``/``rasterize`` on the chip against rasterio.
Where the store records no CRS a stage that needs one must raise a named error, never assume one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.shutil
import rasterio.windows
import xarray as xr
from affine import Affine
from pyproj import CRS
from rasterio.features import rasterize as rio_rasterize
from shapely.affinity import translate
from shapely.geometry import box

import terrapipe as tp
from terrapipe.core.errors import TerrapipeError
from terrapipe.fuse.grid import grid_bounds, grid_of

pytestmark = pytest.mark.filterwarnings("ignore::zarr.errors.ZarrUserWarning")

UTM = Affine(10, 0, 500000, 0, -10, 4000000)
LONLAT = Affine(0.5, 0, 10, 0, -0.5, 50)
VALUES = np.arange(48, dtype="uint8").reshape(6, 8)


def _geotiff(folder: Path, name: str, crs: str, transform: Affine, dtype: str = "uint8") -> Path:
    path = folder / name
    profile = {"driver": "GTiff", "width": 8, "height": 6, "count": 1, "dtype": dtype}
    with rasterio.open(path, "w", crs=crs, transform=transform, **profile) as dst:
        dst.write(VALUES.astype(dtype)[None])
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zarr_georef")


@pytest.fixture(scope="module")
def utm_tif(folder: Path) -> Path:
    return _geotiff(folder, "utm.tif", "EPSG:32631", UTM)


@pytest.fixture(scope="module")
def lonlat_tif(folder: Path) -> Path:
    return _geotiff(folder, "lonlat.tif", "EPSG:4326", LONLAT, dtype="int16")


def _numpy_meta(obj: Any) -> Any:
    return next(iter(tp.from_items([obj]).chip({"y": 4, "x": 4}, output="numpy")))[1]


def _same_crs(found: Any, expected: Any) -> bool:
    return bool(CRS.from_user_input(found) == CRS.from_user_input(expected))


# --- rioxarray and odc-geo: a spatial_ref coordinate ------------------------------------------------------


def _rioxarray_store(folder: Path) -> Path:
    import rioxarray  # noqa: F401

    path = folder / "rioxarray.zarr"
    if not path.exists():
        da = xr.DataArray(
            VALUES.astype("float32"),
            dims=("y", "x"),
            coords={"y": 3999995.0 - 10 * np.arange(6), "x": 500005.0 + 10 * np.arange(8)},
            name="v",
        )
        da.rio.write_crs("EPSG:32631").rio.write_transform(UTM).to_dataset().to_zarr(path)
    return path


def _odc_store(folder: Path) -> Path:
    from odc.geo.geobox import GeoBox
    from odc.geo.xr import xr_zeros

    path = folder / "odc.zarr"
    if not path.exists():
        da = xr_zeros(GeoBox((6, 8), UTM, "EPSG:32631"), dtype="float32")
        da[:] = VALUES
        da.rename("v").to_dataset().to_zarr(path)
    return path


OPENERS = {
    "open_zarr": lambda p: tp.open_zarr(p),
    "open_zarr_variable": lambda p: tp.open_zarr(p, variables="v"),
    "read_zarr": lambda p: next(iter(tp.from_items([str(p)]).read_zarr())),
    "xr_open_zarr_all": lambda p: xr.open_zarr(p, decode_coords="all"),
    "xr_open_zarr_all_variable": lambda p: xr.open_zarr(p, decode_coords="all")["v"],
}


@pytest.mark.parametrize("writer", [_rioxarray_store, _odc_store], ids=["rioxarray", "odc_geo"])
@pytest.mark.parametrize("opener", list(OPENERS), ids=list(OPENERS))
def test_a_spatial_ref_store_has_its_writer_s_grid(folder: Path, writer: Any, opener: str) -> None:
    obj = OPENERS[opener](writer(folder))
    grid = grid_of(obj)
    assert _same_crs(grid.crs, "EPSG:32631")
    assert tuple(grid.affine)[:6] == tuple(UTM)[:6]
    meta = _numpy_meta(obj)
    assert meta["crs"] == "EPSG:32631"
    assert meta["transform"] == tuple(UTM)[:6]


@pytest.mark.parametrize("writer", [_rioxarray_store, _odc_store], ids=["rioxarray", "odc_geo"])
def test_a_chip_of_a_spatial_ref_store_holds_the_pixel_rasterio_reads_there(
    folder: Path, utm_tif: Path, writer: Any
) -> None:
    chips = list(tp.from_items([str(writer(folder))]).read_zarr(variables="v").chip({"y": 2, "x": 4}))
    assert len(chips) == 6
    with rasterio.open(utm_tif) as src:
        for chip in chips:
            x, y = float(chip.x[1]), float(chip.y[1])
            assert float(chip.sel(x=x, y=y)) == next(src.sample([(x, y)]))[0]
    aligned = list(tp.from_items(chips).align_to(str(utm_tif), resampling="nearest", name="ref"))
    for chip, out in zip(chips, aligned, strict=True):
        np.testing.assert_array_equal(out["ref"].values, chip.values)


@pytest.mark.parametrize(
    "attrs",
    [
        {"crs_wkt": CRS.from_epsg(32631).to_wkt()},  # CF 1.7's own attribute
        {"spatial_ref": CRS.from_epsg(32631).to_wkt("WKT1_GDAL")},  # GDAL < 3 / old rioxarray
        {"spatial_ref": CRS.from_epsg(32631).to_wkt(), "GeoTransform": "500000 10 0 4000000 0 -10"},
    ],
    ids=["crs_wkt", "spatial_ref_wkt1", "spatial_ref_and_geotransform"],
)
def test_a_grid_mapping_coordinate_with_one_crs_attribute_is_read(
    folder: Path, attrs: dict[str, str]
) -> None:
    """Writers put the CRS under one of the attributes rioxarray reads; each gives the same grid."""
    path = folder / f"one_attribute_{'_'.join(attrs)}.zarr"
    if not path.exists():
        xr.Dataset(
            {
                "v": (("y", "x"), VALUES, {"grid_mapping": "spatial_ref"}),
                "spatial_ref": ((), np.int32(0), attrs),
            },
            coords={"y": 3999995.0 - 10 * np.arange(6), "x": 500005.0 + 10 * np.arange(8)},
        ).to_zarr(path)
    for obj in (tp.open_zarr(path, variables="v"), xr.open_zarr(path, decode_coords="all")["v"]):
        grid = grid_of(obj)
        assert grid.crs.epsg == 32631
        assert tuple(grid.affine)[:6] == tuple(UTM)[:6]


@pytest.mark.parametrize(
    "attrs",
    [
        # xarray's removed open_rasterio (xarray < 0.20) wrote these, and users saved its arrays to Zarr.
        {
            "crs": "+init=epsg:32631",
            "transform": [10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0],
            "res": [10, 10],
        },
        {"crs": "EPSG:32631", "grid_mapping": "spatial_ref"},  # datacube-core's attrs, spatial_ref not saved
        {"crs": "EPSG:32631"},
    ],
    ids=["legacy_open_rasterio", "datacube", "crs_attribute"],
)
@pytest.mark.filterwarnings("ignore:Variable\\(s\\) referenced in grid_mapping not in variables")  # xarray's
def test_a_crs_attribute_is_read_as_rioxarray_reads_it(folder: Path, attrs: dict[str, Any]) -> None:
    path = folder / f"crs_attribute_{len(attrs)}_{'init' if 'init' in attrs['crs'] else 'code'}.zarr"
    if not path.exists():
        xr.Dataset(
            {"v": (("y", "x"), VALUES, attrs)},
            coords={"y": 3999995.0 - 10 * np.arange(6), "x": 500005.0 + 10 * np.arange(8)},
        ).to_zarr(path)
    obj = tp.open_zarr(path, variables="v")
    assert _same_crs(grid_of(obj).crs, xr.open_zarr(path)["v"].rio.crs)
    assert tuple(grid_of(obj).affine)[:6] == tuple(UTM)[:6]
    assert _numpy_meta(obj)["crs"] == "EPSG:32631"


# --- CF grid mappings given by their parameters only ----------------------------------------------------

CF_MAPPINGS = {
    # NOAA HRRR / NAM as their GRIB -> netCDF converters write them.
    "lambert_conformal_conic": {
        "grid_mapping_name": "lambert_conformal_conic",
        "standard_parallel": [38.5, 38.5],
        "longitude_of_central_meridian": 262.5,
        "latitude_of_projection_origin": 38.5,
        "earth_radius": 6371229.0,
        "false_easting": 0.0,
        "false_northing": 0.0,
    },
    # NSIDC sea ice (EPSG:3413's parameters).
    "polar_stereographic": {
        "grid_mapping_name": "polar_stereographic",
        "straight_vertical_longitude_from_pole": -45.0,
        "latitude_of_projection_origin": 90.0,
        "standard_parallel": 70.0,
        "false_easting": 0.0,
        "false_northing": 0.0,
        "semi_major_axis": 6378137.0,
        "inverse_flattening": 298.257223563,
    },
    "transverse_mercator": {
        "grid_mapping_name": "transverse_mercator",
        "scale_factor_at_central_meridian": 0.9996,
        "longitude_of_central_meridian": 3.0,
        "latitude_of_projection_origin": 0.0,
        "false_easting": 500000.0,
        "false_northing": 0.0,
        "semi_major_axis": 6378137.0,
        "inverse_flattening": 298.257223563,
    },
}


def _cf_store(folder: Path, mapping: str) -> Path:
    path = folder / f"cf_{mapping}.zarr"
    if not path.exists():
        ds = xr.Dataset(
            {
                "t": (("y", "x"), VALUES.astype("float32"), {"grid_mapping": mapping}),
                mapping: ((), np.int32(0), CF_MAPPINGS[mapping]),
            },
            coords={"y": 1500.0 + 3000 * np.arange(6), "x": -1500.0 + 3000 * np.arange(8)},
        )
        ds.to_zarr(path)
    return path


@pytest.mark.parametrize("mapping", list(CF_MAPPINGS))
@pytest.mark.parametrize("variable", [None, "t"], ids=["dataset", "variable"])
def test_a_cf_grid_mapping_of_parameters_gives_pyproj_s_crs(
    folder: Path, mapping: str, variable: str | None
) -> None:
    obj = tp.open_zarr(_cf_store(folder, mapping), variables=variable)
    grid = grid_of(obj)
    assert _same_crs(grid.crs, CRS.from_cf(CF_MAPPINGS[mapping]))
    assert tuple(grid.affine)[:6] == (3000.0, 0.0, -3000.0, 0.0, 3000.0, 0.0)  # y ascending: rows go north
    meta = _numpy_meta(obj)
    assert _same_crs(meta["crs"], CRS.from_cf(CF_MAPPINGS[mapping]))


# --- GDAL's Zarr driver: _CRS and Y/X -------------------------------------------------------------------


def _gdal_zarr(folder: Path, source: Path) -> Path:
    path = folder / f"gdal_{source.stem}.zarr"
    if not path.exists():
        rasterio.shutil.copy(source, path, driver="Zarr", FORMAT="ZARR_V2")
    return path


def test_gdal_s_zarr_store_is_what_rasterio_says(folder: Path, utm_tif: Path) -> None:
    """The reference: GDAL reads its own store back with the CRS and transform of the GeoTIFF."""
    path = _gdal_zarr(folder, utm_tif)
    with rasterio.open(path) as src:
        assert src.crs == "EPSG:32631"
        assert src.transform == UTM
    attrs = json.loads((path / path.stem / ".zattrs").read_text())
    assert set(attrs["_CRS"]) == {"wkt", "projjson", "url"}
    assert attrs["_ARRAY_DIMENSIONS"] == ["Y", "X"]


def test_gdal_s_zarr_store_opens_with_its_grid(folder: Path, utm_tif: Path) -> None:
    obj = tp.open_zarr(_gdal_zarr(folder, utm_tif), variables=f"gdal_{utm_tif.stem}")
    grid = grid_of(obj)
    assert _same_crs(grid.crs, "EPSG:32631")
    assert tuple(grid.affine)[:6] == tuple(UTM)[:6]


@pytest.mark.parametrize("form", ["wkt", "projjson", "url"])
def test_each_form_of_gdal_s_crs_attribute_is_read(folder: Path, form: str) -> None:
    path = folder / f"gdal_crs_{form}.zarr"
    if not path.exists():
        full = CRS.from_epsg(32631)
        value = {
            "wkt": full.to_wkt(),
            "projjson": full.to_json_dict(),
            "url": "http://www.opengis.net/def/crs/EPSG/0/32631",
        }
        xr.Dataset(
            {"v": (("y", "x"), VALUES, {"_CRS": {form: value[form]}})},
            coords={"y": 3999995.0 - 10 * np.arange(6), "x": 500005.0 + 10 * np.arange(8)},
        ).to_zarr(path, zarr_format=2)
    assert _same_crs(grid_of(tp.open_zarr(path, variables="v")).crs, "EPSG:32631")


def test_rasterize_and_align_to_on_a_gdal_zarr_store_are_rasterio_s_or_refused(
    folder: Path, utm_tif: Path
) -> None:
    """With or without a grid found for GDAL's store: rasterio's pixels, or a named error, never a default."""
    obj = tp.open_zarr(_gdal_zarr(folder, utm_tif), variables=f"gdal_{utm_tif.stem}")
    gdf = gpd.GeoDataFrame({"c": [1]}, geometry=[box(500000, 3999950, 500040, 4000000)], crs=32631)
    burned = rio_rasterize([(gdf.geometry[0], 1)], out_shape=(6, 8), transform=UTM, dtype="uint8")
    for stage, name, expected in (
        (lambda p: p.rasterize(gdf, column="c"), "mask", burned),
        (lambda p: p.align_to(str(utm_tif), resampling="nearest", name="ref"), "ref", VALUES),
    ):
        try:
            out = next(iter(stage(tp.from_items([obj]))))
        except TerrapipeError:
            continue
        np.testing.assert_array_equal(np.asarray(out[name].values).reshape(6, 8), expected)


def test_gdal_s_zarr_v3_store_is_read_or_a_named_error(folder: Path, utm_tif: Path) -> None:
    """GDAL 3.10 writes Zarr v3 coordinate arrays that zarr-python 3.1 refuses ('codecs' missing)."""
    path = folder / "gdal_v3.zarr"
    rasterio.shutil.copy(utm_tif, path, driver="Zarr", FORMAT="ZARR_V3")
    try:
        obj = tp.open_zarr(path)
    except TerrapipeError as err:
        message = str(err)
    else:  # pragma: no cover  (a zarr-python that reads it)
        assert obj["gdal_v3"].shape == (6, 8)
        return
    assert str(path) in message


# --- GeoZarr's proj convention ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["proj:code", "proj:wkt2", "proj:projjson"])
@pytest.mark.parametrize("where", ["group", "array"])
def test_a_geozarr_proj_attribute_gives_the_crs(folder: Path, key: str, where: str) -> None:
    path = folder / f"geozarr_{key[5:]}_{where}.zarr"
    if not path.exists():
        crs = CRS.from_epsg(32631)
        value = {"proj:code": "EPSG:32631", "proj:wkt2": crs.to_wkt(), "proj:projjson": crs.to_json_dict()}[
            key
        ]
        attrs = {key: value}
        xr.Dataset(
            {"v": (("y", "x"), VALUES, attrs if where == "array" else {})},
            coords={"y": 3999995.0 - 10 * np.arange(6), "x": 500005.0 + 10 * np.arange(8)},
            attrs=attrs if where == "group" else {},
        ).to_zarr(path)
    assert _same_crs(grid_of(tp.open_zarr(path, variables="v")).crs, "EPSG:32631")


def _utm(zone: int) -> dict[str, str]:
    return {"url": f"http://www.opengis.net/def/crs/EPSG/0/326{zone}"}


@pytest.mark.parametrize(
    ("arrays", "group"),
    [
        ({"a": {"_CRS": _utm(31)}, "b": {"_CRS": _utm(32)}}, {}),
        ({"a": {"proj:code": "EPSG:32631"}, "b": {"proj:code": "EPSG:32632"}}, {}),
        ({"a": {}, "b": {"proj:code": "EPSG:32632"}}, {"proj:code": "EPSG:32631"}),  # the array's own wins
    ],
    ids=["gdal_crs_per_array", "proj_code_per_array", "array_over_group"],
)
def test_each_array_keeps_the_crs_it_declares(
    folder: Path, arrays: dict[str, dict[str, Any]], group: dict[str, str]
) -> None:
    path = folder / f"per_array_{'_'.join(k for attrs in arrays.values() for k in attrs)}_{len(group)}.zarr"
    if not path.exists():
        xr.Dataset(
            {name: (("y", "x"), VALUES, attrs) for name, attrs in arrays.items()},
            coords={"y": 3999995.0 - 10 * np.arange(6), "x": 500005.0 + 10 * np.arange(8)},
            attrs=group,
        ).to_zarr(path, zarr_format=2)
    assert grid_of(tp.open_zarr(path, variables="b")).crs.epsg == 32632
    assert grid_of(tp.open_zarr(path, variables=["b"])).crs.epsg == 32632
    assert tp.open_zarr(path)["b"].rio.crs.to_epsg() == 32632


def test_a_geozarr_store_is_placed_right_or_refused_by_rasterize(folder: Path) -> None:
    """Whether or not ``proj:code`` is read, rasterize never assumes a CRS: right pixels or a named error."""
    path = folder / "geozarr_refused.zarr"
    xr.Dataset(
        {"v": (("y", "x"), VALUES)},
        coords={"y": 3999995.0 - 10 * np.arange(6), "x": 500005.0 + 10 * np.arange(8)},
        attrs={"proj:code": "EPSG:32631"},
    ).to_zarr(path, mode="w")
    gdf = gpd.GeoDataFrame({"c": [1]}, geometry=[box(500000, 3999950, 500040, 4000000)], crs=32631)
    pipe = tp.from_items([tp.open_zarr(path, variables="v")]).rasterize(gdf, column="c")
    try:
        mask = next(iter(pipe))["mask"]
    except TerrapipeError as err:
        message = str(err)
    else:
        expected = rio_rasterize([(gdf.geometry[0], 1)], out_shape=(6, 8), transform=UTM, dtype="uint8")
        np.testing.assert_array_equal(mask.values, expected)
        return
    assert "no CRS" in message


# --- GDAL's netCDF driver: crs variable, lat/lon written bottom-up ----------------------------------------


def _gdal_netcdf(folder: Path, source: Path) -> Path:
    path = folder / f"{source.stem}.nc"
    if not path.exists():
        rasterio.shutil.copy(source, path, driver="netCDF", FORMAT="NC")
    return path


def test_gdal_s_netcdf_is_bottom_up_with_a_crs_variable(folder: Path, lonlat_tif: Path) -> None:
    ds = xr.open_dataset(_gdal_netcdf(folder, lonlat_tif), engine="scipy", decode_coords="all")
    assert ds.lat.values[0] < ds.lat.values[-1]  # GDAL's WRITE_BOTTOMUP=YES
    assert "crs" in ds.coords
    assert ds.Band1.encoding.get("grid_mapping", ds.Band1.attrs.get("grid_mapping")) == "crs"


def test_a_chip_of_gdal_s_netcdf_holds_the_pixel_rasterio_reads_there(folder: Path, lonlat_tif: Path) -> None:
    band = xr.open_dataset(_gdal_netcdf(folder, lonlat_tif), engine="scipy", decode_coords="all").Band1
    grid = grid_of(band)
    assert _same_crs(grid.crs, "EPSG:4326")
    assert tuple(grid.affine)[:6] == (0.5, 0.0, 10.0, 0.0, 0.5, 47.0)  # rows go north, as the file holds them
    chips = list(tp.from_items([band]).chip({"lat": 2, "lon": 4}))
    with rasterio.open(lonlat_tif) as src:
        for chip in chips:
            lon, lat = float(chip.lon[2]), float(chip.lat[1])
            assert float(chip.sel(lon=lon, lat=lat)) == next(src.sample([(lon, lat)]))[0]
    for chip, out in zip(
        chips, tp.from_items(chips).align_to(str(lonlat_tif), resampling="nearest", name="ref"), strict=True
    ):
        np.testing.assert_array_equal(out["ref"].values, chip.values)
    meta = _numpy_meta_lonlat(band)
    assert meta["crs"] == "EPSG:4326"
    assert meta["transform"] == (0.5, 0.0, 10.0, 0.0, 0.5, 47.0)


def _numpy_meta_lonlat(obj: Any) -> Any:
    return next(iter(tp.from_items([obj]).chip({"lat": 4, "lon": 4}, output="numpy")))[1]


@pytest.mark.parametrize("bottom_up", [True, False], ids=["bottom_up", "top_down"])
@pytest.mark.parametrize("which", ["lonlat", "utm"])
def test_every_chip_of_gdal_s_netcdf_is_rasterio_s_window(
    folder: Path, lonlat_tif: Path, utm_tif: Path, which: str, bottom_up: bool
) -> None:
    """Each chip's grid (from the netCDF's coordinates and crs variable) reads the GeoTIFF's same pixels."""
    source = lonlat_tif if which == "lonlat" else utm_tif
    path = folder / f"{which}_{'up' if bottom_up else 'down'}.nc"
    if not path.exists():
        rasterio.shutil.copy(
            source, path, driver="netCDF", FORMAT="NC", WRITE_BOTTOMUP="YES" if bottom_up else "NO"
        )
    band = xr.open_dataset(path, engine="scipy", decode_coords="all").Band1
    y_dim, x_dim = ("lat", "lon") if which == "lonlat" else ("y", "x")
    assert (band[y_dim].values[0] < band[y_dim].values[-1]) == bottom_up
    with rasterio.open(source) as src:
        assert _same_crs(grid_of(band).crs, src.crs)
        for chip in tp.from_items([band]).chip({y_dim: 3, x_dim: 4}):
            grid = grid_of(chip)
            window = rasterio.windows.from_bounds(*grid_bounds(grid.affine, (3, 4)), src.transform)
            expected = src.read(1, window=window.round_offsets().round_lengths())
            values = chip.values[::-1] if bottom_up else chip.values
            np.testing.assert_array_equal(values, expected)


def test_rasterize_on_a_bottom_up_netcdf_chip_is_rasterio_s(folder: Path, lonlat_tif: Path) -> None:
    band = xr.open_dataset(_gdal_netcdf(folder, lonlat_tif), engine="scipy", decode_coords="all").Band1
    chip = band.isel(lat=slice(1, 5), lon=slice(1, 7))
    gdf = gpd.GeoDataFrame({"c": [1]}, geometry=[box(11, 48, 12.6, 49)], crs=4326)
    mask = next(iter(tp.from_items([chip]).rasterize(gdf, column="c")))["mask"]
    grid = grid_of(chip)
    expected = rio_rasterize(
        [(gdf.geometry[0], 1)], out_shape=grid.shape.yx, transform=grid.affine, dtype="uint8"
    )
    assert expected.sum() > 0
    np.testing.assert_array_equal(mask.values, expected)


def test_gdal_s_netcdf_opened_without_decode_coords_is_refused_where_a_crs_is_needed(
    folder: Path, lonlat_tif: Path
) -> None:
    """xarray's default keeps the ``crs`` variable a data variable: no CRS (rioxarray finds none either)."""
    ds = xr.open_dataset(_gdal_netcdf(folder, lonlat_tif), engine="scipy")
    gdf = gpd.GeoDataFrame({"c": [1]}, geometry=[box(11, 48, 12, 49)], crs=4326)
    for obj in (ds, ds.Band1):
        with pytest.raises(TerrapipeError, match="no CRS"):
            next(iter(tp.from_items([obj]).rasterize(gdf, column="c")))


# --- an ERA5-like climate cube: time, latitude 90 -> -90, longitude 0..360 --------------------------------


@pytest.fixture(scope="module")
def era5() -> xr.DataArray:
    lat = 90.0 - 0.25 * np.arange(40)
    lon = 0.25 * np.arange(1440)
    data = np.random.default_rng(5).random((2, lat.size, lon.size)).astype("float32")
    times = np.array(["2024-01-01T00", "2024-01-01T01"], dtype="datetime64[ns]")
    return xr.DataArray(
        data, dims=("time", "latitude", "longitude"), coords={"time": times, "latitude": lat, "longitude": lon},
        name="t2m",
    )  # fmt: skip


def test_an_era5_cube_without_a_crs_is_refused_where_one_is_needed(
    era5: xr.DataArray, lonlat_tif: Path
) -> None:
    gdf = gpd.GeoDataFrame({"c": [1]}, geometry=[box(-10, 85, -9, 86)], crs=4326)
    chips = tp.from_items([era5]).chip({"latitude": 8, "longitude": 8})
    for stage in (lambda p: p.rasterize(gdf, column="c"), lambda p: p.align_to(str(lonlat_tif), name="ref")):
        with pytest.raises(TerrapipeError, match="no CRS"):
            next(iter(stage(chips)))
    meta = next(iter(tp.from_items([era5]).chip({"latitude": 8, "longitude": 8}, output="numpy")))[1]
    assert meta["crs"] == ""  # unknown, not a guessed EPSG:4326
    assert meta["transform"] == (0.25, 0.0, -0.125, 0.0, -0.25, 90.125)


@pytest.mark.parametrize("where", [350.0, 0.0, 180.0])
def test_rasterize_on_an_era5_chip_finds_features_written_minus_180_to_180(
    era5: xr.DataArray, where: float
) -> None:
    import rioxarray  # noqa: F401

    cube = era5.rio.write_crs("EPSG:4326")
    chip = cube.sel(longitude=slice(where, where + 2.9), latitude=slice(89, 86.1))
    west = where - 360 if where >= 180 else where
    gdf = gpd.GeoDataFrame({"c": [1]}, geometry=[box(west + 0.6, 87.1, west + 1.9, 88.4)], crs=4326)
    mask = next(iter(tp.from_items([chip]).rasterize(gdf, column="c")))["mask"]
    grid = grid_of(chip)
    shifted = translate(gdf.geometry[0], where - west)
    expected = rio_rasterize([(shifted, 1)], out_shape=grid.shape.yx, transform=grid.affine, dtype="uint8")
    assert expected.sum() > 0
    np.testing.assert_array_equal(mask.values, expected)


def test_align_to_onto_an_era5_chip_east_of_180_reads_the_reference_west_of_0(
    folder: Path, era5: xr.DataArray
) -> None:
    import rioxarray  # noqa: F401

    west = folder / "west.tif"
    with rasterio.open(
        west, "w", driver="GTiff", width=8, height=6, count=1, dtype="uint8", crs="EPSG:4326",
        transform=Affine(0.25, 0, -10.125, 0, -0.25, 89.125),  # centres on ERA5's 0.25 grid
    ) as dst:  # fmt: skip
        dst.write(VALUES[None])
    chip = era5.rio.write_crs("EPSG:4326").sel(longitude=slice(350, 351.9), latitude=slice(89, 87.6))
    out = next(iter(tp.from_items([chip]).align_to(str(west), resampling="nearest", name="ref")))["ref"]
    assert out.shape[-2:] == (6, 8)
    np.testing.assert_array_equal(np.asarray(out.values).reshape(6, 8), VALUES)


# --- layouts other tools write: (lon, lat) order (MATLAB's column-major netCDF), CF rotated pole (CORDEX) ----


def _lonlat_array() -> xr.DataArray:
    import rioxarray  # noqa: F401

    lat = 49.75 - 0.5 * np.arange(6)
    lon = 10.25 + 0.5 * np.arange(8)
    da = xr.DataArray(VALUES.astype("float32"), dims=("lat", "lon"), coords={"lat": lat, "lon": lon})
    return da.rio.write_crs("EPSG:4326")


def test_an_xarray_chip_of_a_lon_lat_ordered_array_is_placed_by_name() -> None:
    """xarray chips keep their dims: ``to_tensor`` and ``rasterize`` go by name, so (lon, lat) is right."""
    cube = _lonlat_array().transpose("lon", "lat")
    chip = next(iter(tp.from_items([cube]).chip({"lat": 4, "lon": 4})))
    sample = next(iter(tp.from_items([chip]).to_tensor()))
    np.testing.assert_array_equal(sample["image"][0].numpy(), VALUES[:4, :4])
    assert sample["meta"]["transform"] == (0.5, 0.0, 10.0, 0.0, -0.5, 50.0)


@pytest.mark.parametrize("order", [("lon", "lat"), ("lon", "band", "lat")])
def test_a_numpy_chip_of_a_lon_lat_ordered_array_is_placed_by_its_geometa(order: tuple[str, ...]) -> None:
    cube = _lonlat_array()
    cube = (cube.expand_dims(band=[1]) if "band" in order else cube).transpose(*order)
    try:
        array, meta = next(iter(tp.from_items([cube]).chip({"lat": 4, "lon": 6}, output="numpy")))
    except TerrapipeError:
        return  # refusing the layout by name is right too
    rows, cols = meta["shape"]
    plane = np.asarray(array).reshape(-1, *np.asarray(array).shape[-2:])[0]
    assert plane.shape == (rows, cols)
    transform = Affine(*meta["transform"])
    for row in range(rows):
        for col in range(cols):
            lon, lat = transform * (col + 0.5, row + 0.5)
            assert plane[row, col] == float(cube.sel(lon=lon, lat=lat).squeeze())


def _rotated_pole() -> xr.DataArray:
    rlat = xr.Variable("rlat", 1.0 + 0.44 * np.arange(6), {"axis": "Y", "standard_name": "grid_latitude"})
    rlon = xr.Variable("rlon", -2.0 + 0.44 * np.arange(8), {"axis": "X", "standard_name": "grid_longitude"})
    pole = {
        "grid_mapping_name": "rotated_latitude_longitude",
        "grid_north_pole_latitude": 39.25,
        "grid_north_pole_longitude": -162.0,
    }  # fmt: skip  (EURO-CORDEX EUR-44)
    da = xr.DataArray(VALUES.astype("float32"), dims=("rlat", "rlon"), coords={"rlat": rlat, "rlon": rlon})
    return da.assign_coords(rotated_pole=xr.Variable((), 0, pole)).assign_attrs(grid_mapping="rotated_pole")


def test_a_rotated_pole_grid_is_found_by_its_cf_axes() -> None:
    import rioxarray  # noqa: F401

    da = _rotated_pole()
    grid = grid_of(da)
    assert _same_crs(grid.crs, da.rio.crs)
    np.testing.assert_allclose(tuple(grid.affine)[:6], tuple(da.rio.transform())[:6])


# --- a store with a GeoTransform and no x/y coordinates (rioxarray written from a bare numpy array) ---------


def _coordinate_less_store(folder: Path) -> Path:
    import rioxarray  # noqa: F401

    path = folder / "no_coords.zarr"
    if not path.exists():
        da = xr.DataArray(VALUES.astype("float32"), dims=("y", "x"), name="v")
        da.rio.write_crs("EPSG:32631").rio.write_transform(UTM).to_dataset().to_zarr(path)
    return path


def test_numpy_chips_of_a_coordinate_less_store_are_placed_by_window(folder: Path) -> None:
    obj = tp.open_zarr(_coordinate_less_store(folder), variables="v")
    assert "x" not in obj.coords
    for array, meta in tp.from_items([obj]).chip({"y": 3, "x": 4}, output="numpy"):
        col, row = ~Affine(*meta["transform"]) * (UTM.c, UTM.f)
        assert array[0, 0] == VALUES[-round(row), -round(col)]


def test_xarray_chips_of_a_coordinate_less_store_are_placed_by_window(folder: Path, utm_tif: Path) -> None:
    obj = tp.open_zarr(_coordinate_less_store(folder), variables="v")
    chips = list(tp.from_items([obj]).chip({"y": 3, "x": 4}))
    gdf = gpd.GeoDataFrame({"c": [1]}, geometry=[box(500045, 3999945, 500080, 3999970)], crs=32631)
    for chip in chips:
        grid = grid_of(chip)
        col, row = ~grid.affine * (UTM.c, UTM.f)
        assert chip.values[0, 0] == VALUES[-round(row), -round(col)]
        mask = next(iter(tp.from_items([chip]).rasterize(gdf, column="c")))["mask"]
        expected = rio_rasterize([(gdf.geometry[0], 1)], out_shape=(6, 8), transform=UTM, dtype="uint8")
        np.testing.assert_array_equal(mask.values, expected[-round(row) :][:3, -round(col) :][:, :4])


# --- coordinates that are not evenly spaced: a Gaussian grid (CMIP atmosphere models), irregular x -----------


def _gaussian_cube() -> xr.DataArray:
    import rioxarray  # noqa: F401

    sines, _ = np.polynomial.legendre.leggauss(48)
    lat = np.degrees(np.arcsin(sines))[
        ::-1
    ]  # T31's 48 Gaussian latitudes, north to south: spacing 3.68..3.71
    lon = 3.75 * np.arange(96)
    data = np.arange(48 * 96, dtype="float32").reshape(48, 96)
    da = xr.DataArray(data, dims=("lat", "lon"), coords={"lat": lat, "lon": lon})
    return da.rio.write_crs("EPSG:4326")


def _irregular_x() -> xr.DataArray:
    import rioxarray  # noqa: F401

    x = 500000.0 + np.array([5, 15, 25, 45, 85, 165, 325, 645])  # a log-spaced transect
    da = xr.DataArray(VALUES, dims=("y", "x"), coords={"y": 3999995.0 - 10 * np.arange(6), "x": x})
    return da.rio.write_crs("EPSG:32631")


def _places_every_centre(affine: Affine, obj: xr.DataArray) -> bool:
    y_dim, x_dim = (
        next(d for d in obj.dims if d in ("y", "lat")),
        next(d for d in obj.dims if d in ("x", "lon")),
    )
    pixel = max(abs(affine.a), abs(affine.e))
    xs = [(affine * (col + 0.5, 0.5))[0] for col in range(obj.sizes[x_dim])]
    ys = [(affine * (0.5, row + 0.5))[1] for row in range(obj.sizes[y_dim])]
    return bool(
        np.allclose(xs, obj[x_dim].values, rtol=0, atol=1e-6 * pixel)
        and np.allclose(ys, obj[y_dim].values, rtol=0, atol=1e-6 * pixel)
    )


@pytest.mark.parametrize("make", [_gaussian_cube, _irregular_x], ids=["gaussian_lat", "irregular_x"])
def test_coordinates_not_evenly_spaced_have_no_regular_grid(make: Any) -> None:
    obj = make()
    try:
        grid = grid_of(obj)
    except TerrapipeError:
        pass
    else:
        assert _places_every_centre(grid.affine, obj)
    window = {d: int(obj.sizes[d]) for d in obj.dims}
    try:
        meta = next(iter(tp.from_items([obj]).chip(window, output="numpy")))[1]
    except TerrapipeError:
        return
    assert _places_every_centre(Affine(*meta["transform"]), obj)
