"""Chips of a Zarr variable sliced lazily on an axis the chips do not cut hold that slice's values only.

``read_zarr(...).isel(time=slice(1, 3))`` then ``.chip({"y": ..., "x": ...})``:
the chipper reads whole Zarr chunks directly (io/zarr_direct.py) and asks for
``slice(None)`` on the axes it does not cut. The direct reader ended such a
slice at the end of the store's array, not of the variable: every chip held
the store's times from 1 to the end (3 of them, or all 4 after
``isel(time=slice(0, 1))``), silently: extra samples with the values of other
times. Promise: each chip's values are xarray's values of the same sliced
variable at the chip's coordinates, and its sizes are the variable's on the
axes not cut; local and at a URL, for a Dataset and a DataArray alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.io.zarr_direct import direct_zarr
from tests.servers.http_range import RangeServer

DATA = np.arange(4 * 6 * 8, dtype="float32").reshape(4, 6, 8)
SELECTIONS = [
    {"time": slice(1, 3)},
    {"time": slice(0, 1)},
    {"time": slice(2, None)},
    {"time": slice(1, 3), "x": slice(2, 7)},
    {"time": slice(1, 4), "y": slice(0, 5)},
]


@pytest.fixture(scope="module")
def stores(http_root: Path, range_server_session: RangeServer) -> dict[str, str]:
    path = http_root / "z_lazy_slices.zarr"
    if not path.exists():
        xr.Dataset(
            {"v": (("time", "y", "x"), DATA)},
            coords={"time": np.arange(4), "y": np.arange(6.0)[::-1], "x": np.arange(8.0)},
        ).to_zarr(path, encoding={"v": {"chunks": (1, 3, 4)}}, zarr_format=3, consolidated=True)
    return {"local": str(path), "url": range_server_session.url_for(path)}


@pytest.mark.parametrize("where", ["local", "url"])
@pytest.mark.parametrize("selection", SELECTIONS, ids=repr)
def test_each_chip_holds_the_sliced_variable_s_values(
    stores: dict[str, str], where: str, selection: dict[str, slice]
) -> None:
    sub = tp.open_zarr(stores[where], variables="v").isel(selection)
    reference = xr.open_zarr(stores["local"], chunks=None).v.isel(selection)  # xarray's own read
    chips = list(tp.from_items([sub]).chip({"y": 3, "x": 4}))
    assert chips
    for chip in chips:
        assert chip.sizes["time"] == sub.sizes["time"]
        expected = reference.sel(y=chip.y, x=chip.x)
        np.testing.assert_array_equal(chip.values, expected.values)
        np.testing.assert_array_equal(chip.time.values, reference.time.values)


@pytest.mark.parametrize("selection", SELECTIONS, ids=repr)
def test_the_direct_reader_reads_the_variable_not_the_array(
    stores: dict[str, str], selection: dict[str, slice]
) -> None:
    sub = tp.open_zarr(stores["local"], variables="v").isel(selection)
    direct = direct_zarr(sub.variable)
    assert direct is not None
    whole = tuple(slice(None) for _ in range(sub.ndim))
    assert direct.shape_of(whole) == sub.shape
    np.testing.assert_array_equal(
        direct.read(whole), DATA[tuple(selection.get(d, slice(None)) for d in sub.dims)]
    )


def test_a_dataset_sliced_then_chipped_to_numpy(stores: dict[str, str]) -> None:
    ds = tp.open_zarr(stores["local"]).isel(time=slice(1, 3))
    for arrays, _meta in tp.from_items([ds]).chip({"y": 3, "x": 4}, output="numpy"):
        assert arrays["v"].shape[-3] == 2  # one array per variable
