"""StackSTAC and Mosaic take their upstream pipe as ``source``, like every other stage (#21 item 5).

The old keyword ``source_dp=`` keeps working for one release with a deprecation warning.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError, TerrapipeDeprecationWarning
from terrapipe.stac.mosaic import Mosaic
from terrapipe.stac.stack import StackSTAC


def _cube() -> xr.DataArray:
    return xr.DataArray(np.array([[0, 2], [3, 4]], "uint8"), dims=("time", "x"), attrs={"nodata": 0})


def test_mosaic_takes_source() -> None:
    stage = Mosaic(tp.from_items([_cube()]), method="first")
    assert [m.values.tolist() for m in stage] == [[3, 2]]
    assert stage.source is not None


def test_mosaic_source_dp_warns_and_works() -> None:
    with pytest.warns(TerrapipeDeprecationWarning, match=r"mosaic\(source_dp=\.\.\.\) is deprecated"):
        stage = Mosaic(source_dp=tp.from_items([_cube()]))
    assert [m.values.tolist() for m in stage] == [[3, 2]]


def test_stack_stac_takes_source_and_the_old_name_warns() -> None:
    items = tp.from_items([])
    assert StackSTAC(items, bands=["red"]).source is items
    with pytest.warns(TerrapipeDeprecationWarning, match=r"stack_stac\(source_dp=\.\.\.\)"):
        old = StackSTAC(source_dp=items, bands=["red"])
    assert old.source is items


@pytest.mark.parametrize("stage", [Mosaic, StackSTAC])
def test_no_source_is_a_named_error(stage: type) -> None:
    with pytest.raises(InvalidArgumentError, match="needs its source pipe"):
        stage()
