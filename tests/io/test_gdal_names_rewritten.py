"""A raster opened by a GDAL name (a driver's or an archive's) follows its file as a plain path does.

``GTIFF_DIR:1:/d/a.tif``, ``/vsizip//d/a.zip/a.tif`` and ``NETCDF:"/d/a.nc":v`` read a local file
that may be rewritten between two passes: the next ``read_raster``/``open_raster`` reads the new
values (a thread's cached handle of the old file, with its block cache, served the old ones: no
file stamp was taken for such names); an array opened before reads the file it opened whole, or,
rewritten in place, is refused: never one array of old and new blocks.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.core.errors import ReadError
from terrapipe.io.paths import local_file_of

rasterio = pytest.importorskip("rasterio")


def _tif(path: Path, value: int) -> None:
    profile = {
        "driver": "GTiff", "width": 8, "height": 8, "count": 1, "dtype": "uint8", "crs": "EPSG:32633",
        "transform": rasterio.transform.from_origin(0, 80, 10, 10),
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, 8, 8), value, "uint8"))


def _gtiff_dir(folder: Path, value: int) -> str:
    _tif(folder / "a.tif", value)
    return f"GTIFF_DIR:1:{folder / 'a.tif'}"


def _zip(folder: Path, value: int) -> str:
    _tif(folder / "inner.tif", value)
    with zipfile.ZipFile(folder / "a.zip", "w") as archive:
        archive.write(folder / "inner.tif", "inner.tif")
    return f"/vsizip/{folder / 'a.zip'}/inner.tif"


def _netcdf(folder: Path, value: int) -> str:
    xr = pytest.importorskip("xarray")
    pytest.importorskip("netCDF4")
    wkt = rasterio.crs.CRS.from_epsg(32633).to_wkt()
    ds = xr.Dataset(
        {
            "v": (("y", "x"), np.full((8, 8), value, "uint8"), {"grid_mapping": "crs"}),
            "crs": ((), np.int32(0), {"spatial_ref": wkt, "crs_wkt": wkt}),
        },
        coords={"y": np.arange(75.0, 0, -10), "x": np.arange(5.0, 80, 10)},
    )
    for axis in ("x", "y"):
        ds[axis].attrs = {
            "standard_name": f"projection_{axis}_coordinate",
            "units": "m",
            "axis": axis.upper(),
        }
    ds.to_netcdf(folder / "new.nc", engine="netcdf4")
    os.replace(folder / "new.nc", folder / "a.nc")  # published as a new file (HDF5 locks the open one)
    return f'NETCDF:"{folder / "a.nc"}":v'


WRITERS: dict[str, Callable[[Path, int], str]] = {"GTIFF_DIR": _gtiff_dir, "vsizip": _zip, "NETCDF": _netcdf}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_the_next_pass_reads_the_rewritten_file(tmp_path: Path, kind: str) -> None:
    name = WRITERS[kind](tmp_path, 1)
    assert local_file_of(name) is not None
    pipe = tp.from_items([name]).read_raster().map(lambda da: int(da.values.max()))
    assert list(pipe) == [1]
    WRITERS[kind](tmp_path, 2)
    assert list(pipe) == [2]
    assert int(tp.open_raster(name).values.max()) == 2


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_an_array_opened_before_the_file_was_replaced_is_never_a_mix(tmp_path: Path, kind: str) -> None:
    name = WRITERS[kind](tmp_path, 1)
    da = tp.open_raster(name)
    WRITERS[kind](tmp_path, 2)  # a new file at the path: the handle reads the one it opened, whole
    try:
        values = da.values
    except ReadError:
        return
    assert set(np.unique(values).tolist()) == {1}


def test_an_array_of_a_gdal_name_rewritten_in_place_is_refused(tmp_path: Path) -> None:
    name = _gtiff_dir(tmp_path, 1)
    da = tp.open_raster(name)
    with rasterio.open(tmp_path / "a.tif", "r+") as dst:  # the same inode, new bytes
        dst.write(np.full((1, 8, 8), 2, "uint8"))
    with pytest.raises(ReadError, match=r"changed since it was opened|rewritten"):
        da.values  # noqa: B018
