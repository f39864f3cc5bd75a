"""Chip shows its shuffle= parameter where torch names the stage, and still chains torch's shuffle stage."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp


def raster() -> xr.DataArray:
    return xr.DataArray(
        np.arange(8 * 8, dtype="uint16").reshape(8, 8),
        dims=("y", "x"),
        coords={"y": np.arange(8.0)[::-1], "x": np.arange(8.0)},
    ).rio.write_crs("EPSG:32631")


@pytest.mark.parametrize("shuffle", [True, False])
def test_torchs_error_text_names_the_shuffle_parameter_given(shuffle):
    pipe = tp.from_items([1]).chip({"y": 4, "x": 4}, shuffle=shuffle)
    with pytest.raises(tp.InvalidArgumentError) as info:
        list(pipe)
    text = str(info.value)
    assert f"shuffle={shuffle}," in text
    assert "functools.partial" not in text
    assert bool(pipe.shuffle) is shuffle
    assert repr(pipe.shuffle) == repr(shuffle)


def test_the_shuffle_stage_still_chains_after_a_chip():
    pipe = tp.from_items([raster()]).chip(
        {"y": 4, "x": 4}, output="numpy", shuffle=tp.chip.WindowShuffle(seed=3)
    )
    shuffled = pipe.shuffle(buffer_size=8)
    assert type(shuffled).__name__ == "ShufflerIterDataPipe"
    assert shuffled.datapipe is pipe
    chips = sorted(int(array[0, 0]) for array, _ in shuffled)
    assert chips == sorted(int(array[0, 0]) for array, _ in pipe) == [0, 4, 32, 36]


def test_a_chip_still_copies_and_pickles_with_its_shuffle_setting():
    pipe = tp.from_items([raster()]).chip({"y": 4, "x": 4}, output="numpy", shuffle=True)
    for other in (copy.deepcopy(pipe), pickle.loads(pickle.dumps(pipe))):
        assert other.shuffled is True
        assert repr(other.shuffle) == "True"
        assert len(list(other)) == 4
