from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import terrapipe as tp
from terrapipe.chip.plan import block_edges, plan_windows
from terrapipe.core.errors import InvalidArgumentError, PipelineStateError, ReadError
from terrapipe.core.shard import ShardInfo
from tests.chip.chip_helpers import Keys, counting_dataarray, geo_cube


def window_of(chip: Any, obj: Any, dims=("y", "x")) -> dict[str, slice]:
    """The isel window a chip came from (by coordinate position)."""
    out = {}
    for d in dims:
        first = chip[d].values[0]
        start = int(np.flatnonzero(obj[d].values == first)[0])
        out[d] = slice(start, start + chip.sizes[d])
    return out


# -- identity with isel ----------------------------------------------------------------------------


def test_chips_are_identical_to_isel_for_a_dataarray_with_crs(cube):
    chips = list(tp.from_items([cube]).chip({"y": 16, "x": 16}, overlap={"y": 4, "x": 2}))
    starts_y, starts_x = range(0, 40 - 16 + 1, 12), range(0, 50 - 16 + 1, 14)
    assert len(chips) == len(starts_y) * len(starts_x)
    expected = {(y, x) for y in starts_y for x in starts_x}
    got = set()
    for chip in chips:
        window = window_of(chip, cube)
        got.add((window["y"].start, window["x"].start))
        xr.testing.assert_identical(chip, cube.isel(window))
        assert chip.rio.crs == cube.rio.crs
        assert chip.rio.transform() == cube.isel(window).rio.transform()
        assert chip.rio.transform().c == pytest.approx(cube.x.values[window["x"].start] - 5.0)
    assert got == expected


def test_chips_own_their_attributes_and_encoding(cube):
    cube.encoding["dtype"] = "uint16"
    first, second = list(tp.from_items([cube]).chip({"y": 16, "x": 16}))[:2]
    first.attrs["note"] = "changed"
    first.encoding["dtype"] = "float32"
    assert "note" not in second.attrs
    assert "note" not in cube.attrs
    assert second.encoding["dtype"] == cube.encoding["dtype"] == "uint16"


@pytest.mark.parametrize("kind", ["DataArray", "Dataset"])
def test_public_constructors_build_the_same_chips(monkeypatch, kind):
    import terrapipe.chip.build as build_module
    from terrapipe._compat import direct_construction_ok

    assert direct_construction_ok()  # the installed xarray takes the direct path
    base = geo_cube(bands=2, height=24, width=30)
    obj = base if kind == "DataArray" else base.to_dataset().assign(q=(("y", "x"), np.ones((24, 30))))
    direct = list(tp.from_items([obj]).chip({"y": 8, "x": 10}, overlap={"x": 2}, boundary="pad", pad_value=0))
    monkeypatch.setattr(build_module, "direct_construction_ok", lambda: False)
    public = list(tp.from_items([obj]).chip({"y": 8, "x": 10}, overlap={"x": 2}, boundary="pad", pad_value=0))
    assert len(direct) == len(public) == 3 * 4
    for a, b in zip(direct, public, strict=True):
        xr.testing.assert_identical(a, b)
        assert a.rio.transform() == b.rio.transform()
        assert a.rio.crs == b.rio.crs


def test_chips_of_a_dataset_keep_every_variable_and_coordinate():
    base = geo_cube(bands=3, height=24, width=30, dtype="float32")
    ds = base.to_dataset()
    ds["quality"] = (("y", "x"), np.arange(24 * 30, dtype="int16").reshape(24, 30))
    ds["scale"] = ("band", np.array([1.0, 2.0, 3.0]))
    ds["row_mean"] = ("y", np.arange(24.0))
    ds = ds.assign_coords(lat=(("y", "x"), np.random.default_rng(0).random((24, 30))), mission="S2")
    ds.attrs["title"] = "t"
    chips = list(tp.from_items([ds]).chip({"y": 8, "x": 10}))
    assert len(chips) == 3 * 3
    for chip in chips:
        assert isinstance(chip, xr.Dataset)
        xr.testing.assert_identical(chip, ds.isel(window_of(chip, ds)))


@pytest.mark.parametrize("backing", ["numpy", "dask", "zarr", "zarr-dask", "cog"])
def test_every_backing_gives_the_same_chips(tmp_path, backing):
    da = geo_cube(bands=2, height=64, width=48)
    if backing == "numpy":
        src = da
    elif backing == "dask":
        src = da.chunk({"y": 16, "x": 24})
    elif backing in ("zarr", "zarr-dask"):
        da.to_dataset().chunk({"band": 1, "y": 16, "x": 16}).to_zarr(tmp_path / "c.zarr", consolidated=False)
        opened = xr.open_zarr(
            tmp_path / "c.zarr",
            chunks=None if backing == "zarr" else {},
            consolidated=False,
            decode_coords="all",
        )
        src = opened.image
    else:
        import rioxarray

        da.rio.to_raster(tmp_path / "c.tif", driver="COG", blocksize=16)
        src = rioxarray.open_rasterio(tmp_path / "c.tif").rename("image")
    chips = list(tp.from_items([src]).chip({"y": 20, "x": 20}, overlap=4, workers=2))
    assert len(chips) == len(range(0, 64 - 20 + 1, 16)) * len(range(0, 48 - 20 + 1, 16))
    for chip in chips:
        window = window_of(chip, da)
        np.testing.assert_array_equal(chip.values, da.isel(window).values)
        np.testing.assert_array_equal(chip.x.values, da.isel(window).x.values)
        assert chip.rio.crs.to_epsg() == 32631
        assert chip.rio.transform() == da.isel(window).rio.transform()


@pytest.mark.parametrize("kind", ["DataArray", "Dataset"])
def test_inputs_with_other_indexes_take_the_generic_path(kind):
    from xarray.indexes import RangeIndex

    coords = xr.Coordinates.from_xindex(RangeIndex.arange(0.0, 12.0, 1.0, dim="x"))
    da = xr.DataArray(np.arange(6 * 12.0).reshape(6, 12), dims=("y", "x"), coords=coords, name="v")
    da = da.assign_coords(lat=(("y", "x"), np.arange(72.0).reshape(6, 12)))
    obj = da if kind == "DataArray" else da.to_dataset()
    chips = list(tp.from_items([obj]).chip({"y": 3, "x": 4}, overlap={"x": 1}))
    assert len(chips) == 2 * 3
    for chip in chips:
        start = int(chip.x.values[0])
        y0 = int(chip.lat.values[0, 0]) // 12
        xr.testing.assert_identical(chip, obj.isel(y=slice(y0, y0 + 3), x=slice(start, start + 4)))
    with pytest.raises(InvalidArgumentError, match="pandas indexes"):
        list(tp.from_items([obj]).chip({"y": 4, "x": 5}, boundary="pad"))


def test_dataset_variables_with_their_own_chunks_are_each_read_once():
    a, backend_a = counting_dataarray(np.arange(32 * 32.0).reshape(32, 32), ("y", "x"), (16, 16), name="a")
    b, backend_b = counting_dataarray(np.arange(32 * 32.0).reshape(32, 32) * 2, ("y", "x"), (8, 32), name="b")
    ds = xr.Dataset({"a": a, "b": b})
    chips = list(tp.from_items([ds]).chip({"y": 4, "x": 4}, overlap=1))
    assert len(chips) == 10 * 10
    assert set(backend_a.reads.values()) == {1}
    assert len(backend_a.reads) == 4
    assert set(backend_b.reads.values()) == {1}
    assert len(backend_b.reads) == 4
    for chip in chips[:5]:
        np.testing.assert_array_equal(chip.b.values, 2 * chip.a.values)


def test_stage_attributes_do_not_hide_torch_functional_names():
    from torch.utils.data import IterDataPipe

    da = xr.DataArray(np.arange(64.0).reshape(8, 8), dims=("y", "x"))
    stages = [
        tp.from_items([da]).chip(4, shuffle=True),
        tp.from_items([da]).slice_with_xbatcher({"x": 4}),
        tp.from_items([da]).sample_windows(4, n=2, shuffle=True),
    ]
    for stage in stages:
        assert not set(vars(stage)) & set(IterDataPipe.functions), type(stage).__name__
    shuffled = tp.from_items([da]).chip(4).shuffle().batch(2)
    assert sum(len(batch) for batch in shuffled) == 4


def test_dims_not_named_are_kept_whole_and_any_dims_can_be_windowed():
    da = xr.DataArray(
        np.arange(6 * 4 * 5).reshape(6, 4, 5), dims=("time", "y", "x"), coords={"time": np.arange(6)}
    )
    chips = list(tp.from_items([da]).chip({"time": 4}, stride={"time": 1}))
    assert [c.time.values.tolist() for c in chips] == [[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5]]
    assert chips[0].shape == (4, 4, 5)


def test_chips_are_read_only_views():
    da = xr.DataArray(np.arange(64.0).reshape(8, 8), dims=("y", "x"))
    chip = next(iter(tp.from_items([da]).chip({"y": 4, "x": 4})))
    with pytest.raises(ValueError, match="read-only"):
        chip.values[0, 0] = 1
    assert da.values.flags.writeable  # the source is untouched


# -- boundary modes -------------------------------------------------------------------------------


def test_boundary_modes():
    da = geo_cube(bands=1, height=10, width=10, dtype="float32", crs=None)
    drop = list(tp.from_items([da]).chip({"y": 4, "x": 4}))
    shift = list(tp.from_items([da]).chip({"y": 4, "x": 4}, boundary="shift"))
    pad = list(tp.from_items([da]).chip({"y": 4, "x": 4}, boundary="pad", pad_value=-1))
    assert len(drop) == 4
    assert len(shift) == 9
    assert len(pad) == 9
    assert {window_of(c, da)["x"].start for c in shift} == {0, 4, 6}
    last = pad[-1]
    assert last.shape == (1, 4, 4)
    np.testing.assert_array_equal(last.values[0, :2, :2], da.values[0, 8:, 8:])
    assert (last.values[0, 2:, :] == -1).all()
    assert (last.values[0, :, 2:] == -1).all()
    # coordinates continue past the end with the grid's step
    np.testing.assert_allclose(last.x.values, da.x.values[8] + 10.0 * np.arange(4))
    np.testing.assert_allclose(last.y.values, da.y.values[8] - 10.0 * np.arange(4))


def test_pad_defaults_to_nodata_and_refuses_nan_for_integers():
    da = geo_cube(bands=1, height=6, width=6, crs=None)
    da.attrs["_FillValue"] = 7
    chips = list(tp.from_items([da]).chip({"y": 4, "x": 4}, boundary="pad"))
    assert (chips[-1].values[0, 2:, :] == 7).all()
    del da.attrs["_FillValue"]
    zero = list(tp.from_items([da]).chip({"y": 4, "x": 4}, boundary="pad"))
    assert (zero[-1].values[0, 2:, :] == 0).all()
    with pytest.raises(InvalidArgumentError, match="cannot pad"):
        list(tp.from_items([da]).chip({"y": 4, "x": 4}, boundary="pad", pad_value=float("nan")))


def test_max_nodata_fraction_drops_and_counts():
    data = np.ones((8, 8), dtype="float32")
    data[:4, :4] = np.nan  # window (0, 0) is all NaN
    data[4:, 4:6] = np.nan  # window (4, 4) is half NaN
    da = xr.DataArray(data, dims=("y", "x"))
    pipe = tp.from_items([da]).chip({"y": 4, "x": 4}, max_nodata_fraction=0.4)
    chips = list(pipe)
    assert len(chips) == 2
    assert pipe.counters.dropped_nodata == 2
    assert pipe.counters.windows == 2
    padded = tp.from_items([xr.DataArray(np.ones((6, 6)), dims=("y", "x"))]).chip(
        {"y": 4, "x": 4}, boundary="pad", max_nodata_fraction=0.5
    )
    assert len(list(padded)) == 3  # padding counts as nodata: the corner window is 3/4 padding
    assert padded.counters.dropped_nodata == 1


def test_nodata_value_from_attributes_or_argument():
    data = np.full((4, 8), 5, dtype="uint16")
    data[:, :4] = 0
    da = xr.DataArray(data, dims=("y", "x"), attrs={"_FillValue": 0})
    assert len(list(tp.from_items([da]).chip({"y": 4, "x": 4}, max_nodata_fraction=0.0))) == 1
    plain = xr.DataArray(data, dims=("y", "x"))
    assert len(list(tp.from_items([plain]).chip({"y": 4, "x": 4}, max_nodata_fraction=0.0))) == 2
    assert len(list(tp.from_items([plain]).chip({"y": 4, "x": 4}, max_nodata_fraction=0.0, nodata=5))) == 1


# -- reading each block once -----------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    chunk=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    window=st.tuples(st.integers(1, 10), st.integers(1, 10)),
    overlap=st.tuples(st.integers(0, 9), st.integers(0, 9)),
    boundary=st.sampled_from(["drop", "pad", "shift"]),
    workers=st.integers(0, 2),
)
def test_each_block_is_read_once_and_every_window_comes_out(
    height, width, chunk, window, overlap, boundary, workers
):
    overlap = (min(overlap[0], window[0] - 1), min(overlap[1], window[1] - 1))
    data = np.arange(height * width, dtype="float64").reshape(height, width)
    da, backend = counting_dataarray(data, ("y", "x"), chunk)
    pipe = tp.from_items([da]).chip(
        {"y": window[0], "x": window[1]},
        overlap={"y": overlap[0], "x": overlap[1]},
        boundary=boundary,
        workers=workers,
        pad_value=-1.0,
        on_error="skip",
    )
    chips = list(pipe)
    plan = plan_windows(
        {"y": height, "x": width},
        {"y": window[0], "x": window[1]},
        stride={"y": window[0] - overlap[0], "x": window[1] - overlap[1]},
        boundary=boundary,
        edges={"y": block_edges(chunk[0], height), "x": block_edges(chunk[1], width)},
    )
    assert len(chips) == plan.n_windows
    assert pipe.stats.skipped == (plan.n_windows == 0)  # a raster smaller than a dropped window is counted
    # chips come group by group, row-major inside a group
    order = plan.window_starts(plan.windows_of_groups(np.arange(plan.n_groups))).tolist()
    reference = np.pad(data, ((0, window[0]), (0, window[1])), constant_values=-1.0)
    seen = set()
    for chip, (y, x) in zip(chips, order, strict=True):
        np.testing.assert_array_equal(chip.values, reference[y : y + window[0], x : x + window[1]])
        seen.add((y, x))
    assert len(seen) == len(chips)
    if chips:
        needed = set()
        for y, x in seen:
            for cy in range(y // chunk[0], (min(y + window[0], height) - 1) // chunk[0] + 1):
                for cx in range(x // chunk[1], (min(x + window[1], width) - 1) // chunk[1] + 1):
                    needed.add((cy, cx))
        assert set(backend.reads) == needed
        assert max(backend.reads.values()) == 1, backend.reads
        assert pipe.counters.blocks_read == len(needed)
        assert pipe.counters.block_rereads == 0


def test_a_tight_block_budget_rereads_and_counts_it():
    data = np.arange(32 * 32, dtype="float64").reshape(32, 32)
    da, backend = counting_dataarray(data, ("y", "x"), (8, 8))
    pipe = tp.from_items([da]).chip(
        {"y": 8, "x": 8}, overlap=4, reads=tp.chip.Reads(block_cache_bytes=0), workers=0
    )
    chips = list(pipe)
    assert len(chips) == 7 * 7
    assert pipe.counters.block_rereads > 0
    assert sum(backend.reads.values()) == pipe.counters.blocks_read


def test_shuffled_overlapping_windows_reread_few_blocks():
    # 16 x 16 blocks; 10-px windows with stride 6 cross into the next block along both axes
    data = np.arange(128 * 128, dtype="float64").reshape(128, 128)
    da, backend = counting_dataarray(data, ("y", "x"), (8, 8))
    block = 8 * 8 * 8
    pipe = tp.from_items([da]).chip(
        {"y": 10, "x": 10},
        stride=6,
        shuffle=tp.chip.WindowShuffle(seed=4),
        reads=tp.chip.Reads(block_cache_bytes=64 * block),
        workers=0,
    )
    chips = list(pipe)
    assert len(chips) == 20 * 20
    assert len(backend.reads) == 256
    # tiles of 4 x 4 groups and Belady's rule keep nearly every halo block until its last use
    # (a plain shuffle of the groups with LRU eviction re-read about 1.6 blocks per block here)
    assert pipe.counters.block_rereads <= 256 // 10
    assert pipe.counters.blocks_read == sum(backend.reads.values())
    starts = sorted(divmod(int(c.values[0, 0]), 128) for c in chips)  # value = row * 128 + column
    assert starts == sorted((y, x) for y in range(0, 119, 6) for x in range(0, 119, 6))


def test_shuffle_without_halos_keeps_a_plain_group_permutation():
    data = np.arange(32 * 32, dtype="float64").reshape(32, 32)
    da, _ = counting_dataarray(data, ("y", "x"), (4, 4))
    orders = []
    for seed in range(3):
        pipe = tp.from_items([da]).chip(4, shuffle=tp.chip.WindowShuffle(buffer=1, seed=seed), workers=0)
        # the group (block) of each chip, from its first value = row * 32 + column
        orders.append([(int(c.values[0, 0]) // 32 // 4, int(c.values[0, 0]) % 32 // 4) for c in pipe])
    # consecutive groups are not confined to 4 x 4 tiles of groups
    tiles = {(y // 4, x // 4) for y, x in orders[0][:16]}
    assert len(tiles) > 1
    assert orders[0] != orders[1] != orders[2]


def test_xbatcher_reads_chunks_many_times_where_chip_reads_them_once():
    import xbatcher

    data = np.arange(64 * 64, dtype="float32").reshape(64, 64)
    da, backend = counting_dataarray(data, ("y", "x"), (32, 32))
    for batch in xbatcher.BatchGenerator(da, {"y": 8, "x": 8}):
        batch.values  # noqa: B018
    assert set(backend.reads.values()) == {16}
    da2, backend2 = counting_dataarray(data, ("y", "x"), (32, 32))
    assert len(list(tp.from_items([da2]).chip({"y": 8, "x": 8}))) == 64
    assert set(backend2.reads.values()) == {1}


def test_zarr_chunks_are_fetched_once(tmp_path):
    zarr = pytest.importorskip("zarr")
    from zarr.storage import LocalStore, LoggingStore

    data = np.arange(2 * 48 * 48, dtype="uint16").reshape(2, 48, 48)
    xr.Dataset({"v": (("band", "y", "x"), data)}).to_zarr(
        tmp_path / "c.zarr", encoding={"v": {"chunks": (1, 16, 16)}}, consolidated=False
    )
    store = LoggingStore(LocalStore(tmp_path / "c.zarr", read_only=True))
    ds = xr.open_zarr(store, chunks=None, consolidated=False)
    store.counter.clear()
    chips = list(tp.from_items([ds.v]).chip({"y": 8, "x": 8}, overlap=2))
    assert len(chips) == 7 * 7
    assert store.counter["get"] == 2 * 3 * 3  # every chunk of the array, once
    del zarr


# -- sharding ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("world", "workers"), [(1, 2), (2, 1), (2, 3), (3, 2)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_shards_split_windows_and_blocks(patch_shard, world, workers, shuffle):
    items = []
    backends = []
    for k in range(3):
        data = np.arange(k * 1000, k * 1000 + 36 * 30, dtype="float64").reshape(36, 30)
        da, backend = counting_dataarray(data, ("y", "x"), (12, 10))
        items.append(da)
        backends.append(backend)
    all_values = []
    for rank, worker in itertools.product(range(world), range(workers)):
        patch_shard(ShardInfo(rank=rank, world_size=world, worker_id=worker, num_workers=workers))
        pipe = tp.from_items(items).chip(
            {"y": 6, "x": 5}, shuffle=tp.chip.WindowShuffle(seed=3) if shuffle else False, workers=1
        )
        all_values.extend(float(c.values[0, 0]) for c in pipe)
    expected = sorted(float(v) for b in backends for v in b.array[::6, ::5].ravel())
    assert sorted(all_values) == expected  # every window once over all shards
    for backend in backends:
        assert max(backend.reads.values()) == 1  # aligned windows: no block read by two shards
        assert len(backend.reads) == backend.n_chunks


def test_dataloader_workers_split_by_block():
    from torch.utils.data import DataLoader

    data = np.arange(48 * 48, dtype="float64").reshape(48, 48)
    da = xr.DataArray(data, dims=("y", "x")).chunk({"y": 16, "x": 16})
    pipe = tp.from_items([da]).chip({"y": 8, "x": 8}, output="numpy", workers=0)
    loader = DataLoader(pipe, batch_size=None, num_workers=2, collate_fn=lambda x: x)
    firsts = sorted(float(array[0, 0]) for array, _ in loader)
    assert firsts == sorted(data[::8, ::8].ravel().tolist())


# -- shuffle and order -------------------------------------------------------------------------------


def test_shuffle_is_seeded_per_epoch_and_keeps_the_windows():
    da = xr.DataArray(np.arange(32 * 32.0).reshape(32, 32), dims=("y", "x")).chunk({"y": 8, "x": 8})
    pipe = tp.from_items([da]).chip({"y": 4, "x": 4}, shuffle=tp.chip.WindowShuffle(buffer=8, seed=1))
    first = [float(c.values[0, 0]) for c in pipe]
    second = [float(c.values[0, 0]) for c in pipe]
    again = tp.from_items([da]).chip({"y": 4, "x": 4}, shuffle=tp.chip.WindowShuffle(buffer=8, seed=1))
    assert first == [float(c.values[0, 0]) for c in again]
    assert first != second
    assert sorted(first) == sorted(second)
    plain = [float(c.values[0, 0]) for c in tp.from_items([da]).chip({"y": 4, "x": 4})]
    assert sorted(first) == sorted(plain)
    assert first != plain


def test_order_without_shuffle_is_block_by_block():
    da = xr.DataArray(np.arange(8 * 8.0).reshape(8, 8), dims=("y", "x")).chunk({"y": 4, "x": 4})
    firsts = [float(c.values[0, 0]) for c in tp.from_items([da]).chip({"y": 2, "x": 2})]
    assert firsts[:4] == [0.0, 2.0, 16.0, 18.0]  # the four windows of the first block, then the next block


# -- resume -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stop_after", [0, 1, 5, 16, 17, 40, 63])
@pytest.mark.parametrize(
    "options", [{}, {"shuffle": tp.chip.WindowShuffle(buffer=6, seed=2)}, {"overlap": 1}]
)
def test_chip_resumes_exactly(stop_after, options):
    from terrapipe.core.state import check_resume

    items = [
        xr.DataArray(np.arange(k, k + 16 * 12, dtype="float64").reshape(16, 12), dims=("y", "x")).chunk(
            {"y": 8, "x": 6}
        )
        for k in range(2)
    ]

    def make():
        return Keys(tp.from_items(items).chip({"y": 4, "x": 4}, max_nodata_fraction=1.0, **options))

    check_resume(make, stop_after=stop_after, epochs=2)


def test_resume_does_not_reread_finished_groups():
    data = np.arange(32 * 32, dtype="float64").reshape(32, 32)
    da, _backend = counting_dataarray(data, ("y", "x"), (8, 8))
    pipe = tp.from_items([da]).chip({"y": 4, "x": 4})
    it = iter(pipe)
    for _ in range(4 * 5 + 1):  # five groups done, one window into the sixth
        next(it)
    state = pipe.state_dict()
    assert state["group"] == 5
    assert state["window"] == 1
    da2, backend2 = counting_dataarray(data, ("y", "x"), (8, 8))
    resumed = tp.from_items([da2]).chip({"y": 4, "x": 4})
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == 64 - 21
    assert len(backend2.reads) == 16 - 5  # the five finished blocks are not read again


def test_state_is_strict():
    pipe = tp.from_items([]).chip(4)
    with pytest.raises(PipelineStateError):
        pipe.load_state_dict({"epoch": 0})


# -- numpy output ------------------------------------------------------------------------------------


def test_numpy_output_with_geometa(cube):
    xa = list(tp.from_items([cube]).chip({"y": 16, "x": 16}, overlap=4))
    npy = list(tp.from_items([cube]).chip({"y": 16, "x": 16}, overlap=4, output="numpy"))
    assert len(xa) == len(npy)
    for chip, (array, meta) in zip(xa, npy, strict=True):
        np.testing.assert_array_equal(array, chip.values)
        assert meta["crs"] == "EPSG:32631"
        assert meta["transform"] == pytest.approx(tuple(chip.rio.transform())[:6])
        assert meta["shape"] == (16, 16)
        left, bottom, right, top = chip.rio.bounds()
        assert meta["bounds"] == pytest.approx((left, bottom, right, top))
    ds_chips = list(tp.from_items([cube.to_dataset()]).chip(8, output="numpy"))
    assert set(ds_chips[0][0]) == {"image"}


# -- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": {"y": 0}}, "size"),
        ({"size": 4, "overlap": 4}, "overlap"),
        ({"size": 4, "overlap": 1, "stride": 2}, "not both"),
        ({"size": 4, "boundary": "wrap"}, "boundary"),
        ({"size": 4, "workers": -1}, "workers"),
        ({"size": 4, "max_nodata_fraction": 2}, "max_nodata_fraction"),
        ({"size": 4, "output": "torch"}, "output"),
        ({"size": 4, "split": tp.chip.SpatialSplit({"a": 1.0}, cell_size=1.0)}, "select"),
        ({"size": {"y": 4}, "overlap": {"x": 1}}, "not a window dimension"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        tp.from_items([]).chip(**kwargs)


def test_bad_elements():
    with pytest.raises(InvalidArgumentError, match="xarray"):
        list(tp.from_items([np.zeros((4, 4))]).chip(2))
    with pytest.raises(InvalidArgumentError, match="not dimensions"):
        list(tp.from_items([xr.DataArray(np.zeros((4, 4)), dims=("a", "b"))]).chip(2))
    with pytest.raises(TypeError, match="length"):
        len(tp.from_items([]).chip(2))


def test_read_errors_raise_or_skip_the_group():
    data = np.arange(16 * 16, dtype="float64").reshape(16, 16)
    da, _ = counting_dataarray(data, ("y", "x"), (8, 8), fail_chunks=[(0, 1)])
    with pytest.raises(ReadError, match="window group"):
        list(tp.from_items([da]).chip({"y": 4, "x": 4}))
    pipe = tp.from_items([da]).chip({"y": 4, "x": 4}, on_error="skip")
    assert len(list(pipe)) == 12
    assert pipe.stats.skipped == 1
    assert "simulated read failure" in pipe.stats.last_errors[0]


def test_stats_count_elements_and_bytes():
    da, _ = counting_dataarray(np.zeros((16, 16), "float32"), ("y", "x"), (8, 8))
    pipe = tp.from_items([da]).chip(8)
    list(pipe)
    assert pipe.stats.elements == 4
    assert pipe.stats.bytes_read == 16 * 16 * 4
    assert pipe.counters.as_dict()["blocks_read"] == 4


@pytest.mark.parametrize(
    "time", [np.datetime64("2024-06-01", "ns"), np.datetime64("2024-06-19T10:30:05", "ns")]
)
def test_numpy_chips_write_the_same_meta_as_to_tensor(cube, time):
    da = cube.assign_coords(time=time)
    _, meta = next(iter(tp.from_items([da]).chip(8, output="numpy")))
    sample = next(iter(tp.from_items([da]).chip(8).to_tensor()))
    assert meta["time"] == sample["meta"]["time"] == str(np.datetime_as_string(time, unit="s"))
    assert meta["transform"] == sample["meta"]["transform"]
    assert meta["bounds"] == sample["meta"]["bounds"]
