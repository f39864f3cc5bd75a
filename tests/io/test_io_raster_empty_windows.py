"""An empty window of a read_raster array, reversed or not, is an empty array of the right shape (no read).

xarray's slice decomposition raised a bare IndexError ('range object index out of
range') for an empty slice with a negative step (``da[:, 2:5:-1]``).
"""

from __future__ import annotations

import pytest
import xarray as xr

from terrapipe.io import open_raster


@pytest.mark.parametrize(
    "key",
    [
        (slice(None), slice(2, 5, -1), slice(0, 3)),
        (slice(None), slice(2, 5, -2), 0),
        (0, slice(3, 3, -1), [1, 2]),
        (slice(None), slice(5, 2), slice(None, None, -1)),
        ([1, 0], slice(None), slice(0, 10, -3)),
        (slice(None), slice(None, None, -1), slice(7, 7, -1)),
    ],
)
def test_empty_windows_are_empty_arrays(cog_factory, key):
    path, data = cog_factory(count=2, height=64, width=48)
    got = open_raster(path)[key].values
    expected = xr.DataArray(data, dims=("band", "y", "x"))[key].values  # the same outer indexing in memory
    assert got.dtype == data.dtype
    assert got.shape == expected.shape
    assert got.size == 0
