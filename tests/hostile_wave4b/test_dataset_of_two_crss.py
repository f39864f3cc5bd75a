"""A Dataset whose arrays are on different CRSs: its grid is no one CRS.

a77eaa1 gives each Zarr array the CRS it declares, each with its own grid-mapping variable
(``spatial_ref_<name>``), so ``open_zarr`` can now return a Dataset whose arrays disagree. The stages
that place a Dataset by one grid (``fuse.grid.grid_of``: rasterize, align_to, clip of a Dataset chip)
take the first array's CRS (``_crs_of``), silently: array ``b`` (EPSG:32632) is placed as if 32631.
Each array alone keeps its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.core.errors import TerrapipeError
from terrapipe.fuse.grid import grid_of

pytestmark = pytest.mark.filterwarnings("ignore::zarr.errors.ZarrUserWarning")

VALUES = np.arange(48, dtype="uint8").reshape(6, 8)
COORDS = {"y": 3999995.0 - 10 * np.arange(6), "x": 500005.0 + 10 * np.arange(8)}


def _two_crs_dataset(tmp_path: Path) -> xr.Dataset:
    path = tmp_path / "two.zarr"
    xr.Dataset(
        {
            "a": (("y", "x"), VALUES, {"proj:code": "EPSG:32631"}),
            "b": (("y", "x"), VALUES, {"proj:code": "EPSG:32632"}),
        },
        coords=COORDS,
    ).to_zarr(path, zarr_format=2)
    return tp.open_zarr(path)


def test_each_array_alone_has_its_own_grid(tmp_path: Path) -> None:
    ds = _two_crs_dataset(tmp_path)
    assert grid_of(ds["a"]).crs.epsg == 32631
    assert grid_of(ds["b"]).crs.epsg == 32632


def test_a_dataset_whose_arrays_disagree_has_no_one_grid(tmp_path: Path) -> None:
    ds = _two_crs_dataset(tmp_path)
    with pytest.raises(TerrapipeError):
        grid_of(ds)
    chip = next(iter(tp.from_items([ds]).chip({"y": 4, "x": 4})))
    with pytest.raises(TerrapipeError):
        grid_of(chip)
