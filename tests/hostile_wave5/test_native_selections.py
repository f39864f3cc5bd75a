"""Selections of a native stack_stac cube read without dask equal the same selections computed.

``chip`` reads a pure selection of a native cube from its array (``SourceBlocks``, dask's
``getitem``/``take`` tasks followed down the graph). tests/hostile_wave4/test_source_blocks_edits.py
edits one slot with int lists and slices; here: index arrays of other integer dtypes (uint64,
int8, uint8: what ``np.argsort``, a mask's ``nonzero`` or a stored table give), numpy 0-d
integers and 0-d arrays, selections by label on a time axis of several slots, and a band
coordinate the user renamed, reassigned or reversed before selecting by its new labels. Each
must give the pixels of the computed selection, chip for chip.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from tests.reliability.data import write_scene_item

pytest.importorskip("odc.stac")


@pytest.fixture(scope="module")
def cube(tmp_path_factory: pytest.TempPathFactory) -> xr.DataArray:
    item = write_scene_item(tmp_path_factory.mktemp("scene"), bands=3, size=96, block=32)
    items = []
    for day in (1, 2, 3):
        copied = copy.deepcopy(item)
        copied["id"] = f"day{day}"
        copied["properties"]["datetime"] = f"2024-06-0{day}T10:00:00Z"
        items.append(copied)
    return tp.stac.stack_items(items, chunks={"x": 32, "y": 32})


EDITS: dict[str, Callable[[xr.DataArray], xr.DataArray]] = {
    "band uint64 array": lambda c: c.isel(band=np.array([2, 0], dtype=np.uint64)),
    "band int8 array": lambda c: c.isel(band=np.array([1, -1], dtype=np.int8)),
    "time uint8 array": lambda c: c.isel(time=np.array([2, 0], dtype=np.uint8)),
    "x uint64 array": lambda c: c.isel(x=np.r_[70:94, 3:27, 3:4].astype(np.uint64)),
    "band numpy int8 scalar": lambda c: c.isel(band=np.int8(-1)),
    "time 0-d array": lambda c: c.isel(time=np.array(1)),
    "time slice by label": lambda c: c.sel(time=slice("2024-06-02", "2024-06-03")),
    "time list by label": lambda c: c.sel(
        time=[np.datetime64("2024-06-03T10:00"), np.datetime64("2024-06-01T10:00")]
    ),
    "bands renamed then selected": lambda c: c.assign_coords(band=["r", "g", "b"]).sel(band=["b", "r"]),
    "bands reversed by label": lambda c: c.assign_coords(band=c.band.values[::-1]).sel(
        band=c.band.values[:2]
    ),
    "band sorted by label": lambda c: c.assign_coords(band=["z", "a", "m"]).sortby("band"),
    "time sorted descending": lambda c: c.sortby("time", ascending=False),
    "argsort of a band table": lambda c: c.isel(band=np.argsort(np.array([5.0, 1.0, 3.0]))),
    "nonzero of a mask": lambda c: c.isel(x=np.nonzero(np.arange(96) % 3 != 0)[0]),
}


def _chips(obj: xr.DataArray) -> list[Any]:
    chips = tp.from_items([obj]).chip({"y": 24, "x": 24}, overlap={"y": 4}, workers=2)
    return sorted(chips, key=lambda c: (-float(c.y[0]), float(c.x[0])))


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_a_selection_chips_as_its_computed_values(cube: xr.DataArray, edit: str) -> None:
    obj = EDITS[edit](cube).copy()
    obj.encoding = {}
    computed = obj.copy(data=obj.values)
    got, want = _chips(obj), _chips(computed)
    assert len(got) == len(want) > 0
    for a, b in zip(got, want, strict=True):
        xr.testing.assert_identical(a, b)


def test_selections_by_position_match_the_files(cube: xr.DataArray) -> None:
    """A control that the cube itself is right: band 2 of day 3 read by label is that file's pixels."""
    relabelled = cube.assign_coords(band=["r", "g", "b"])
    a = relabelled.sel(band="b", time=np.datetime64("2024-06-03T10:00")).values
    b = cube.isel(band=2, time=2).values
    np.testing.assert_array_equal(a, b)
