"""read_raster's x/y index (core/axis_index.AxisIndex) under what users do with rasters: as pandas indexes do.

Each operation runs on a raster opened by ``open_raster`` (AxisIndex) and on the same array with
pandas indexes (``with_pandas_indexes``); the results must be equal, coordinates bit for bit. The
documented difference (combining with a pandas-indexed array on *another* grid raises xarray's
``AlignmentError``) must not reach calls that involve no other array: ``reindex(x=labels)``,
``reindex(..., method="nearest")`` and ``broadcast_like`` of a window did (a bare xarray error where
the pandas-indexed array reindexed); read_raster has pandas indexes again (D), so they must reindex.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from xarray.indexes import PandasIndex

import terrapipe as tp


def with_pandas_indexes(array: xr.DataArray) -> xr.DataArray:
    """``array`` built again from its values: an ordinary DataArray (core/axis_index is gone, D: pandas again)."""
    coords = {name: (c.dims, np.array(c.values), c.attrs) for name, c in array.coords.items()}
    return xr.DataArray(
        np.array(array.values), dims=array.dims, coords=coords, attrs=array.attrs, name=array.name
    )


@pytest.fixture(scope="module")
def raster(tmp_path_factory: pytest.TempPathFactory) -> xr.DataArray:
    path = tmp_path_factory.mktemp("axis") / "r.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=9, height=7, count=1, dtype="float32", crs="EPSG:32631",
        transform=Affine(10.0, 0, 500_000.0, 0, -10.0, 5_000_000.0),
    ) as dst:  # fmt: skip
        dst.write(np.arange(63, dtype="float32").reshape(1, 7, 9))
    array = tp.open_raster(Path(path)).isel(band=0).load()
    assert isinstance(array.xindexes["x"], PandasIndex)
    return array


X, Y = 500_000.0, 5_000_000.0
SAME: dict[str, Callable[[xr.DataArray, xr.DataArray], Any]] = {
    "nearest on the descending y, with tolerance": lambda a, p: a.sel(
        y=Y - 24.0, method="nearest", tolerance=5
    ),
    "a descending slice of y": lambda a, p: a.sel(y=slice(Y - 10, Y - 40)),
    "labels with pad": lambda a, p: a.sel(x=[X + 13.0, X + 41.0], method="pad"),
    "a reversed window of a reversed window": lambda a, p: a.isel(x=slice(8, 0, -2)).isel(
        x=slice(None, None, -1)
    ),
    "a window of a negative-step window": lambda a, p: a.isel(x=slice(7, 1, -1)).isel(x=slice(1, None, 2)),
    "a label slice of a reversed window": lambda a, p: a.isel(x=slice(None, None, -1)).sel(
        x=slice(X + 45, X + 15)
    ),
    "plus a pandas array on the same grid": lambda a, p: a + p,
    "merge with a pandas array on the same grid": lambda a, p: xr.merge(
        [a.rename("a"), p.rename("b")], compat="no_conflicts"
    ),
    "concat with a pandas array on the same grid": lambda a, p: xr.concat([a, p], "time"),
    "concat of a window and a pandas window along x": lambda a, p: xr.concat(
        [a.isel(x=slice(0, 3)), p.isel(x=slice(3, None))], "x"
    ),
    "where a pandas array": lambda a, p: a.where(p > 20),
    "combine_first on the same grid": lambda a, p: a.combine_first(p),
    "one pixel, selected": lambda a, p: a.isel(x=slice(2, 3), y=slice(4, 5)).sel(x=X + 25.0),
    "pickled (dask workers)": lambda a, p: pickle.loads(pickle.dumps(a.isel(x=slice(None, None, -1)))),
    "stack and unstack": lambda a, p: a.stack(z=("y", "x")).unstack("z"),
    "sortby y": lambda a, p: a.sortby("y"),
    "roll with coordinates": lambda a, p: a.roll(x=2, roll_coords=True),
    "coarsen": lambda a, p: a.coarsen(x=3, boundary="trim").mean(),
    "rename, then sel": lambda a, p: a.rename(x="lon").sel(lon=X + 15.0),
    "to and from a DataFrame": lambda a, p: a.rename("v").to_dataframe().to_xarray().v,
}


def _check_same(got: Any, want: Any) -> None:
    if isinstance(got, xr.Dataset | xr.DataArray):
        xr.testing.assert_equal(got, want)
        for name in ("x", "y"):
            if name in got.coords:
                np.testing.assert_array_equal(got[name].values, want[name].values)
    else:
        assert got == want


@pytest.mark.parametrize("case", sorted(SAME))
def test_as_with_pandas_indexes(raster: xr.DataArray, case: str) -> None:
    pandas = with_pandas_indexes(raster)
    _check_same(SAME[case](raster, pandas), SAME[case](pandas, pandas))


@pytest.mark.parametrize("fmt", ["netcdf", "zarr"])
def test_a_written_window_reads_back_with_its_coordinates_exactly(
    raster: xr.DataArray, tmp_path: Path, fmt: str
) -> None:
    window = raster.isel(x=slice(8, 0, -3), y=slice(1, 6)).rename("v")
    if fmt == "netcdf":
        window.to_netcdf(tmp_path / "w.nc")
        back = xr.open_dataset(tmp_path / "w.nc")["v"].load()
    else:
        window.to_dataset().to_zarr(tmp_path / "w.zarr", consolidated=False)
        back = xr.open_zarr(tmp_path / "w.zarr", consolidated=False)["v"].load()
    for name in ("x", "y"):
        np.testing.assert_array_equal(back[name].values, window[name].values)
        assert back[name].dtype == np.float64


ALONE: dict[str, Callable[[xr.DataArray], Any]] = {
    "reindex to reversed labels": lambda a: a.reindex(x=a.x.values[::-1]),
    "reindex with method='nearest'": lambda a: a.reindex(x=a.x.values + 3.0, method="nearest"),
    "a one-pixel window reindexed": lambda a: a.isel(x=slice(2, 3)).reindex(x=[X + 25.0, X + 35.0]),
}


@pytest.mark.parametrize("case", sorted(ALONE))
def test_reindex_by_labels_works_as_with_pandas_indexes(raster: xr.DataArray, case: str) -> None:
    pandas = with_pandas_indexes(raster)
    _check_same(ALONE[case](raster), ALONE[case](pandas))
