"""Chips of a stack_stac cube the user edited equal the chips of the computed cube.

``chip`` reads a native cube's chunks from its array (``SourceBlocks``) only when the dask graph is a
pure selection of it; any graph that computes stays dask's. Edits a user makes (arithmetic,
``where``, casts, reversed and stepped windows, band lists, transposes, concatenations, rechunks,
``persist``, ``dask.optimize``, ``map_blocks``, ``roll``, ``pad``...) must give the pixels of
``cube.compute()``, chip for chip (all pass: a guard).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask
import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from tests.reliability.data import write_scene_item

pytest.importorskip("odc.stac")


@pytest.fixture(scope="module")
def cube(tmp_path_factory: pytest.TempPathFactory) -> xr.DataArray:
    item = write_scene_item(tmp_path_factory.mktemp("scene"), size=128, block=32)
    return tp.stac.stack_items([item], chunks={"x": 32, "y": 32})


EDITS: dict[str, Callable[[xr.DataArray], xr.DataArray]] = {
    "where": lambda c: c.where(c > 1000),
    "transpose x/y": lambda c: c.transpose("time", "band", "x", "y"),
    "x reversed": lambda c: c.isel(x=slice(None, None, -1)),
    "reversed, stepped window": lambda c: c.isel(x=slice(100, 10, -3), y=slice(None, None, 2)),
    "concat with itself + 1": lambda c: xr.concat([c, c + 1], "time"),
    "persist": lambda c: c.persist(),
    "dask.optimize": lambda c: dask.optimize(c)[0],
    "merging rechunk": lambda c: c.chunk({"x": 64, "y": 64}),
    "splitting rechunk": lambda c: c.chunk({"x": 16}),
    "time 0 (drops the axis)": lambda c: c.isel(time=0),
    "band list with a repeat": lambda c: c.isel(band=[1, 0, 1]),
    "astype uint8": lambda c: c.astype("uint8"),
    "map_blocks": lambda c: c.copy(data=c.data.map_blocks(lambda b: b * 2, dtype=c.dtype)),
    "roll": lambda c: c.roll(x=5, roll_coords=True),
    "pad": lambda c: c.pad(x=(2, 2)),
    "rows swapped": lambda c: c.isel(y=np.r_[64:128, 0:64]),
}


def _chips(obj: xr.DataArray) -> list[Any]:
    chips = tp.from_items([obj]).chip({"y": 24, "x": 24}, overlap={"x": 4}, workers=2)
    return sorted(chips, key=lambda c: (-float(c.y[0]), float(c.x[0])))


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edited_cube_chips_as_its_computed_values(cube: xr.DataArray, edit: str) -> None:
    obj = EDITS[edit](cube).copy()
    obj.encoding = {}
    got, want = _chips(obj), _chips(obj.copy(data=obj.values))
    assert len(got) == len(want) > 0
    for a, b in zip(got, want, strict=True):
        xr.testing.assert_identical(a, b)
