"""A chip's metadata converts its CRS once, and says the same as before (crs_text of the grid's CRS)."""

from __future__ import annotations

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

import terrapipe.fuse.grid as grid_module
from terrapipe.fuse.grid import crs_text, grid_and_crs_text, grid_of
from terrapipe.tensor.convert import to_sample
from terrapipe.tensor.meta import meta_of

# an authority code, a projection string pyproj maps to one, and a CRS with none (written as WKT)
CRSS = [
    "EPSG:32631",
    "+proj=utm +zone=33 +datum=WGS84 +units=m +no_defs",
    "+proj=tmerc +lat_0=0 +lon_0=13.37 +k=0.9996 +x_0=500000 +y_0=0 +datum=WGS84 +units=m +no_defs",
]


def chip(crs: str, *, dataset: bool = False) -> xr.DataArray | xr.Dataset:
    da = xr.DataArray(
        np.arange(2 * 3 * 4, dtype="uint16").reshape(2, 3, 4),
        dims=("band", "y", "x"),
        coords={"y": [25.0, 15.0, 5.0], "x": [5.0, 15.0, 25.0, 35.0]},
    ).rio.write_crs(crs)
    return da.to_dataset(name="image") if dataset else da


@pytest.mark.parametrize("dataset", [False, True])
@pytest.mark.parametrize("crs", CRSS)
def test_meta_says_what_crs_text_of_the_grid_says(crs, dataset):
    obj = chip(crs, dataset=dataset)
    grid, text = grid_and_crs_text(obj)
    assert text == crs_text(grid_of(obj).crs) == crs_text(grid.crs)
    assert meta_of(obj)["crs"] == text
    assert to_sample(obj)["meta"]["crs"] == text
    assert grid == grid_of(obj)
    if crs.startswith("EPSG") or "zone=33" in crs:
        assert text.startswith("EPSG:")
    else:
        assert text.startswith("PROJCRS[")


@pytest.mark.parametrize("crs", CRSS)
def test_a_chips_metadata_converts_its_crs_once(crs, monkeypatch):
    obj = chip(crs)
    looked_up = []
    original = grid_module._crs_text_of

    def counting(text: str) -> str:
        looked_up.append(text)
        return original(text)

    monkeypatch.setattr(grid_module, "_crs_text_of", counting)
    meta_of(obj)
    assert len(looked_up) == 1
    looked_up.clear()
    to_sample(obj)
    assert len(looked_up) == 1
