"""Chips of a coordinate-less array share no mutable grid mapping: one chip's edit stays in that chip.

76aa62d gives each xarray chip of an array placed by its grid-mapping ``GeoTransform`` (no x/y
coordinates: rioxarray writing a bare numpy array) its window's transform, through a grid-mapping
variable made once per window start and cached (``ItemCutter._placed``). Every chip at that window
start (each time step, each band window) then holds the same ``xr.Variable``, attributes dict
included? A consumer that writes one chip's ``GeoTransform`` or ``crs_wkt`` in place (``attrs[...] =``,
``rio.write_transform(..., inplace=True)``, ``rio.write_crs(..., inplace=True)``) would move the
other chips of that window, silently. It holds (``assign_coords`` copies the attributes per chip),
as for chips cut with ``isel`` (arrays with coordinates): both kept as a regression net.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine

import terrapipe as tp
from terrapipe.fuse.grid import grid_of

TRANSFORM = Affine(10, 0, 500_000, 0, -10, 4_000_000)


def _bare(times: int = 3) -> xr.DataArray:
    values = np.arange(times * 8 * 8, dtype="float32").reshape(times, 8, 8)
    da = xr.DataArray(values, dims=("time", "y", "x"))
    return da.rio.write_transform(TRANSFORM).rio.write_crs("EPSG:32631")


def _with_coords(times: int = 3) -> xr.DataArray:
    da = _bare(times)
    return da.assign_coords(y=4_000_000 - 5 - 10 * np.arange(8.0), x=500_005 + 10 * np.arange(8.0))


def _chips(da: xr.DataArray) -> list[Any]:
    return list(tp.from_items([da]).chip({"time": 1, "y": 4, "x": 4}))


EDITS = {
    "attrs item": lambda chip: chip.spatial_ref.attrs.__setitem__("GeoTransform", "0.0 1.0 0.0 0.0 0.0 -1.0"),
    "rio.write_transform inplace": lambda chip: chip.rio.write_transform(
        Affine(1, 0, 0, 0, -1, 0), inplace=True
    ),
    "rio.write_crs inplace": lambda chip: chip.rio.write_crs("EPSG:4326", inplace=True),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_an_edit_of_one_chip_leaves_the_other_chips_of_its_window(edit: str) -> None:
    chips = _chips(_bare())
    first = chips[0]
    same_window = [c for c in chips[1:] if grid_of(c) == grid_of(first)]
    assert same_window  # the other time steps of the first window
    before = [(grid_of(c).affine, grid_of(c).crs) for c in same_window]
    EDITS[edit](first)
    assert [(grid_of(c).affine, grid_of(c).crs) for c in same_window] == before


@pytest.mark.parametrize("edit", list(EDITS))
def test_chips_with_coordinates_never_shared_them(edit: str) -> None:
    """The control: chips cut with isel copy their attributes."""
    chips = _chips(_with_coords())
    first = chips[0]
    same_window = [c for c in chips[1:] if grid_of(c) == grid_of(first)]
    assert same_window
    before = [(grid_of(c).affine, grid_of(c).crs) for c in same_window]
    EDITS[edit](first)
    assert [(grid_of(c).affine, grid_of(c).crs) for c in same_window] == before


def test_chips_of_a_bare_array_sit_at_their_windows() -> None:
    chips = _chips(_bare(times=1))
    got = sorted((grid_of(c).affine.c, grid_of(c).affine.f) for c in chips)
    assert got == [
        (500_000.0, 3_999_960.0),
        (500_000.0, 4_000_000.0),
        (500_040.0, 3_999_960.0),
        (500_040.0, 4_000_000.0),
    ]
