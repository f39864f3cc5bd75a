"""A GDAL-written Zarr store keeps its CRS whatever pyproj did before in the process.

GDAL's Zarr driver writes an array's CRS three ways in ``_CRS`` (``wkt``,
``projjson``, ``url``): one CRS. read_zarr took the forms for two CRSs that
disagree (and gave the array none) when their WKT texts differed, and
pyproj's WKT of one CRS depends on process state: after
rioxarray read a CF grid mapping (``CRS.from_cf``) the ``url`` form reads with a datum ensemble and
the others with a datum (found by the lead: every GDAL Zarr store lost its
CRS in a process that had used pyproj's CF export). Promise: the forms are
compared by what they mean (``terrapipe.core.crs.same_crs``); the array has
the CRS rasterio reads from the store (the reference); forms that do name
two CRSs still give none.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp

rasterio = pytest.importorskip("rasterio")
rasterio_shutil = pytest.importorskip("rasterio.shutil")
rasterio_transform = pytest.importorskip("rasterio.transform")
pyproj = pytest.importorskip("pyproj")

UTM = rasterio_transform.from_origin(500000.0, 4000000.0, 10.0, 10.0)


def _gdal_store(tmp_path: Path) -> Path:
    tif, store = tmp_path / "utm.tif", tmp_path / "utm.zarr"
    profile = {"driver": "GTiff", "width": 8, "height": 6, "count": 1, "dtype": "uint8", "crs": "EPSG:32631"}
    with rasterio.open(tif, "w", transform=UTM, **profile) as dst:
        dst.write(np.arange(48, dtype="uint8").reshape(1, 6, 8))
    rasterio_shutil.copy(tif, store, driver="Zarr", FORMAT="ZARR_V2")
    return store


_CHILD = """
import sys
from pathlib import Path
import numpy as np, rasterio, rasterio.shutil
from rasterio.transform import from_origin
import xarray as xr, rioxarray
from pyproj import CRS
attrs = {k: v for k, v in CRS.from_epsg(32631).to_cf().items() if k not in ("crs_wkt", "spatial_ref")}
cf = xr.Dataset({"a": (("y", "x"), np.zeros((2, 2)))}, coords={"y": [1.0, 0.0], "x": [0.0, 1.0], "gm": ((), np.int32(0), attrs)})
cf["a"].encoding["grid_mapping"] = "gm"
assert cf["a"].rio.crs is not None  # rioxarray read a CF grid mapping: PROJ's state changed
folder = Path(sys.argv[1])
profile = dict(driver="GTiff", width=8, height=6, count=1, dtype="float32", crs="EPSG:32631")
with rasterio.open(folder / "utm.tif", "w", transform=from_origin(500000, 4000000, 10, 10), **profile) as dst:
    dst.write(np.zeros((1, 6, 8), "float32"))
rasterio.shutil.copy(folder / "utm.tif", folder / "utm.zarr", driver="Zarr", FORMAT="ZARR_V2")
import terrapipe as tp
crs = tp.open_zarr(folder / "utm.zarr", variables="utm").rio.crs
print(None if crs is None else crs.to_epsg())
"""


def test_a_gdal_store_has_the_crs_rasterio_reads(tmp_path: Path) -> None:
    store = _gdal_store(tmp_path)
    with rasterio.open(store) as src:
        reference = src.crs.to_epsg()
    assert reference == 32631
    assert tp.open_zarr(store, variables="utm").rio.crs.to_epsg() == reference
    # in a fresh process whose first CRS work is rioxarray reading a CF grid mapping (the state that broke it)
    child = tmp_path / "child"
    child.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(child)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(reference)


def test_forms_naming_two_crs_still_give_none(tmp_path: Path) -> None:
    forms = {
        "wkt": pyproj.CRS.from_epsg(32631).to_wkt(),
        "url": "http://www.opengis.net/def/crs/EPSG/0/32632",
    }
    xr.Dataset(
        {"v": (("y", "x"), np.zeros((2, 2)), {"_CRS": forms})},
        coords={"y": [1.0, 0.0], "x": [0.0, 1.0]},
    ).to_zarr(tmp_path / "two.zarr", zarr_format=2)
    assert tp.open_zarr(tmp_path / "two.zarr", variables="v").rio.crs is None
