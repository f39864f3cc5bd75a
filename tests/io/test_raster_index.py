"""read_raster's x/y index (io/raster_index.AxisIndex): windows cost no pandas index, everything else as before.

The values every user sees are those of the formula read_raster always used
(``origin + (i + 0.5) * pixel size``), bit for bit, for every window; label
selection, alignment, serialisation, pickling, dask and rioxarray answer what
an ordinary pandas-indexed array of the same values answers.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xarray.indexes import PandasIndex

from terrapipe.core.axis_index import AxisIndex, with_pandas_indexes
from terrapipe.core.errors import ReadError
from terrapipe.io import open_raster


def formula(origin: float, pixel: float, size: int) -> np.ndarray:
    """The coordinates as read_raster computed them before AxisIndex (raster.py, to 2026-12-06)."""
    return origin + (np.arange(size) + 0.5) * pixel


def write(path: Path, transform: Affine, height: int, width: int, crs: str = "EPSG:32631") -> np.ndarray:
    data = np.arange(height * width, dtype="uint16").reshape(1, height, width)
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "uint16"}
    with rasterio.open(path, "w", crs=crs, transform=transform, **profile) as dst:
        dst.write(data)
    return data


#: Grids: north-up, south-up (positive y pixel size), fractional degrees, UTM and big offsets, odd sizes.
GRIDS = [
    (Affine(10.0, 0, 500000.0, 0, -10.0, 5000000.0), 7, 9),
    (Affine(0.000269494585236, 0, -180.0, 0, -0.000269494585236, 90.0), 33, 17),
    (Affine(0.000269494585236, 0, 12.345678901, 0, 0.000269494585236, -45.6789), 5, 31),  # south-up
    (Affine(30.0, 0, 1e7, 0, -30.0, 1e7), 1, 13),
    (Affine(0.1, 0, -1e7 + 0.05, 0, 0.3, 1e7 - 0.7), 19, 1),
    (Affine(-2.5, 0, 300.0, 0, -2.5, 10.0), 4, 6),  # east-to-west
]


@pytest.mark.parametrize(("transform", "height", "width"), GRIDS)
def test_read_raster_coordinates_are_the_formulas_bit_for_bit_in_every_window(
    tmp_path, transform, height, width
):
    path = tmp_path / "grid.tif"
    data = write(path, transform, height, width)
    da = open_raster(path)
    ys, xs = formula(transform.f, transform.e, height), formula(transform.c, transform.a, width)
    assert da.y.values.tobytes() == ys.tobytes()
    assert da.x.values.tobytes() == xs.tobytes()
    rng = np.random.default_rng(0)
    for _ in range(40):
        y0, y1 = sorted(rng.integers(0, height + 1, size=2))
        x0, x1 = sorted(rng.integers(0, width + 1, size=2))
        step = int(rng.choice([1, 1, 2, 3, -1, -2]))
        sy = slice(y0, y1, step) if step > 0 else slice(y1, y0 or None, step)
        sx = slice(x0, x1, step) if step > 0 else slice(x1, x0 or None, step)
        window = da.isel(y=sy, x=sx)
        assert window.y.values.tobytes() == ys[sy].tobytes()
        assert window.x.values.tobytes() == xs[sx].tobytes()
        np.testing.assert_array_equal(window.values, data[:, sy, sx])
        inner = window.isel(y=slice(1, None), x=slice(None, -1))  # a window of a window
        assert inner.x.values.tobytes() == xs[sx][:-1].tobytes()
        assert inner.y.values.tobytes() == ys[sy][1:].tobytes()
    assert da.rio.transform() == transform


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    origin=st.one_of(
        st.sampled_from([0.0, 500000.0, 1e7, -1e7, -180.0, 90.0, 4999995.123456789]),
        st.floats(-2e7, 2e7, allow_nan=False, allow_infinity=False),
    ),
    pixel=st.one_of(
        st.sampled_from([10.0, -10.0, 0.000269494585236, -0.000269494585236, 1 / 3, 30.000000001]),
        st.floats(1e-9, 1e4).flatmap(lambda v: st.sampled_from([v, -v])),
    ),
    size=st.integers(1, 5000),
    start=st.integers(-6000, 6000),
    stop=st.one_of(st.none(), st.integers(-6000, 6000)),
    step=st.sampled_from([None, 1, 2, 7, -1, -3]),
)
def test_any_window_of_any_axis_is_the_formula_bit_for_bit(origin, pixel, size, start, stop, step):
    index = AxisIndex.from_grid(origin, pixel, size, "x")
    da = xr.DataArray(np.zeros(size), dims="x", coords=xr.Coordinates.from_xindex(index))
    key = slice(start, stop, step)
    expected = formula(origin, pixel, size)[key]
    got = da.isel(x=key)
    assert got.x.values.dtype == np.float64
    assert got.x.values.tobytes() == expected.tobytes()
    assert got.indexes["x"].equals(pd.Index(expected))


def same(got: xr.DataArray, want: xr.DataArray) -> None:
    """``got`` is ``want`` but for AxisIndex in place of pandas indexes (``identical`` compares index types)."""
    xr.testing.assert_identical(with_pandas_indexes(got), want)
    for name in got.coords:
        assert np.asarray(got[name].values).tobytes() == np.asarray(want[name].values).tobytes()


@pytest.fixture
def raster(tmp_path) -> xr.DataArray:
    path = tmp_path / "r.tif"
    write(path, Affine(10.0, 0, 500000.0, 0, -10.0, 5000000.0), 40, 50)
    return open_raster(path)


def test_a_window_builds_no_pandas_index(raster, monkeypatch):
    assert type(raster.xindexes["x"]) is AxisIndex
    assert type(raster.xindexes["y"]) is AxisIndex
    built = []
    original = PandasIndex.__init__

    def counting(self, *args, **kwargs):
        built.append(args)
        original(self, *args, **kwargs)

    monkeypatch.setattr(PandasIndex, "__init__", counting)
    window = raster.isel(y=slice(3, 20), x=slice(10, 30))
    assert built == []  # pandas built two (x and y) for every window before
    assert type(window.xindexes["x"]) is AxisIndex
    assert type(window.xindexes["y"]) is AxisIndex


def test_values_are_read_only_as_before(raster):
    for values in (raster.x.values, raster.isel(x=slice(2, 9)).x.values, raster.y.values):
        assert not values.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            values[0] = 0.0


def test_sel_answers_what_a_pandas_index_answers(raster):
    plain = with_pandas_indexes(raster)
    assert type(plain.xindexes["x"]) is PandasIndex
    window, plain_window = (
        raster.isel(x=slice(5, 30), y=slice(2, 33)),
        plain.isel(x=slice(5, 30), y=slice(2, 33)),
    )
    for obj, ref in ((raster, plain), (window, plain_window)):
        for kwargs in (
            {"x": 500155.0, "y": 4999835.0},
            {"x": 500151.0, "y": 4999841.0, "method": "nearest"},
            {"x": [500200.0, 500101.0], "method": "nearest"},
            {"x": 500153.0, "method": "pad"},
            {"x": 500153.0, "method": "nearest", "tolerance": 5},
            {"x": slice(500100.0, 500230.0), "y": slice(4999900.0, 4999700.0)},
            {"x": slice(500232.0, 500100.0)},  # reversed: empty, as pandas says
        ):
            same(obj.sel(**kwargs), ref.sel(**kwargs))
        for kwargs in ({"x": 500151.0}, {"x": 500151.0, "method": "nearest", "tolerance": 1}):
            with pytest.raises(KeyError):
                obj.sel(**kwargs)
            with pytest.raises(KeyError):
                ref.sel(**kwargs)
    assert raster.indexes["x"].equals(plain.indexes["x"])
    assert raster.get_index("y").equals(plain.get_index("y"))


def test_arithmetic_and_align_as_with_pandas_indexes(raster):
    plain = with_pandas_indexes(raster)
    a, b = raster.isel(x=slice(0, 30), y=slice(5, 25)), raster.isel(x=slice(10, 45), y=slice(0, 20))
    pa, pb = plain.isel(x=slice(0, 30), y=slice(5, 25)), plain.isel(x=slice(10, 45), y=slice(0, 20))
    same(a + b, pa + pb)  # inner join of two windows
    for join in ("inner", "outer", "left", "right"):
        got, want = xr.align(a, b, join=join), xr.align(pa, pb, join=join)
        for g, w in zip(got, want, strict=True):
            same(g, w)
    with pytest.raises(ValueError, match="exact"):
        xr.align(a, b, join="exact")
    # the same grid, the other side pandas-indexed: no reindexing, as before
    same(a + pa, pa + pa)
    same(pa - a, pa - pa)
    aligned = xr.align(a, pa, join="inner")
    same(aligned[0], pa)
    same(aligned[1], pa)


def test_mixed_index_types_over_different_coordinates_raise_and_with_pandas_indexes_joins(raster):
    # xarray aligns indexes of different types only where their coordinates are equal (the module doc)
    plain = with_pandas_indexes(raster)
    a, pb = raster.isel(x=slice(0, 30)), plain.isel(x=slice(10, 45))
    for mixed in (
        lambda: a + pb,
        lambda: xr.align(a, pb, join="outer"),
        lambda: a.reindex_like(pb),
        lambda: a.reindex(x=pb.x.values),  # labels become a pandas index
        lambda: a.where(pb > 0),
        lambda: a.combine_first(pb),
    ):
        with pytest.raises(ValueError, match="conflicting indexes"):
            mixed()
    pa = plain.isel(x=slice(0, 30))
    same(with_pandas_indexes(a) + pb, pa + pb)
    same(with_pandas_indexes(a).reindex(x=pb.x.values), pa.reindex(x=pb.x.values))


def test_concat_of_windows_as_with_pandas_indexes(raster):
    plain = with_pandas_indexes(raster)
    parts = [raster.isel(x=slice(0, 20)), raster.isel(x=slice(20, 50))]
    joined = xr.concat(parts, dim="x")
    same(joined, xr.concat([with_pandas_indexes(p) for p in parts], dim="x"))
    assert joined.x.values.tobytes() == plain.x.values.tobytes()
    stacked = xr.concat([raster.isel(x=slice(0, 5)), raster.isel(x=slice(0, 5))], dim="time")
    assert stacked.sizes["time"] == 2
    assert stacked.x.values.tobytes() == plain.x.values[:5].tobytes()


def test_round_trips_netcdf_zarr_pickle(raster, tmp_path):
    window = raster.isel(x=slice(3, 41), y=slice(7, 40))
    expected = with_pandas_indexes(window).load()
    window.load().to_dataset(name="v").to_netcdf(tmp_path / "w.nc", engine="scipy")
    with xr.open_dataset(tmp_path / "w.nc", engine="scipy") as back:
        assert back.x.values.tobytes() == expected.x.values.tobytes()
        assert back.y.values.tobytes() == expected.y.values.tobytes()
        np.testing.assert_array_equal(back.v.values, expected.values)
    window.load().to_dataset(name="v").to_zarr(tmp_path / "w.zarr", consolidated=False)
    with xr.open_zarr(tmp_path / "w.zarr", consolidated=False) as back:
        assert back.x.values.tobytes() == expected.x.values.tobytes()
        np.testing.assert_array_equal(back.v.values, expected.values)
    for obj in (raster, window):
        again = pickle.loads(pickle.dumps(obj))
        assert type(again.xindexes["x"]) is AxisIndex
        assert again.x.values.tobytes() == obj.x.values.tobytes()
        assert not again.x.values.flags.writeable
        xr.testing.assert_identical(again.isel(x=slice(1, 4)), obj.isel(x=slice(1, 4)))  # both AxisIndex


def test_dask_rio_and_other_operations_as_before(raster):
    plain = with_pandas_indexes(raster)
    chunked = raster.chunk({"x": 16, "y": 16})
    same(chunked.isel(x=slice(5, 40)).compute(), plain.isel(x=slice(5, 40)).compute())
    assert raster.rio.crs == plain.rio.crs
    window = raster.isel(x=slice(7, 30), y=slice(4, 12))
    assert window.rio.transform() == plain.isel(x=slice(7, 30), y=slice(4, 12)).rio.transform()
    assert window.rio.bounds() == plain.isel(x=slice(7, 30), y=slice(4, 12)).rio.bounds()
    for op in (
        lambda d: d.isel(x=[3, 1, 8]),
        lambda d: d.isel(x=4),
        lambda d: d.roll(x=3),
        lambda d: d.sortby("y"),
        lambda d: d.coarsen(x=5, y=4).mean(),
        lambda d: d.rename(x="lon"),
        lambda d: d.transpose("x", "y", "band"),
        lambda d: d.interp(x=[500101.0, 500207.5]),
        lambda d: d.to_series().index.to_frame().iloc[[0, -1]].to_xarray(),
        lambda d: d.copy(deep=True),
    ):
        same(op(raster).load(), op(plain).load())


def test_a_rotated_grid_is_still_refused(tmp_path):
    path = tmp_path / "rotated.tif"
    write(path, Affine(10.0, 2.0, 500000.0, 1.0, -10.0, 5000000.0), 4, 4)
    with pytest.raises(ReadError, match="rotated or sheared"):
        open_raster(path)


@pytest.mark.parametrize("boundary", ["drop", "pad", "shift"])
def test_chips_of_a_read_raster_array_are_as_before(raster, boundary):
    # chip turns the AxisIndex into the pandas index of the same values: chips as with pandas indexes
    import terrapipe as tp

    size = {"y": 16, "x": 24}
    chips = list(tp.from_items([raster]).chip(size, boundary=boundary))
    before = list(tp.from_items([with_pandas_indexes(raster)]).chip(size, boundary=boundary))
    assert len(chips) == len(before) > 0
    for chip, want in zip(chips, before, strict=True):
        assert type(chip.xindexes["x"]) is PandasIndex
        xr.testing.assert_identical(chip, want)
        assert chip.x.values.tobytes() == want.x.values.tobytes()
