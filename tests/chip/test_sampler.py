from __future__ import annotations

import itertools

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.chip.split import SpatialSplit
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.shard import ShardInfo
from tests.chip.chip_helpers import Keys, counting_dataarray, geo_cube


def origin(chip: xr.DataArray, obj: xr.DataArray) -> tuple[int, int]:
    y = int(np.flatnonzero(obj.y.values == chip.y.values[0])[0])
    x = int(np.flatnonzero(obj.x.values == chip.x.values[0])[0])
    return y, x


def test_random_windows_are_seeded_epoch_aware_and_valid(cube):
    pipe = tp.from_items([cube]).sample_windows({"y": 8, "x": 8}, n=30, seed=4)
    first = [origin(c, cube) for c in pipe]
    second = [origin(c, cube) for c in pipe]
    again = [origin(c, cube) for c in tp.from_items([cube]).sample_windows({"y": 8, "x": 8}, n=30, seed=4)]
    assert len(first) == 30
    assert first == again
    assert first != second
    for chip in tp.from_items([cube]).sample_windows({"y": 8, "x": 8}, n=10, seed=1):
        y, x = origin(chip, cube)
        xr.testing.assert_identical(chip, cube.isel(y=slice(y, y + 8), x=slice(x, x + 8)))
    assert len(tp.from_items([cube]).sample_windows(8, n=30)) == 30


def test_windows_are_spread_by_valid_area_or_weights():
    big = xr.DataArray(np.zeros((40, 40)), dims=("y", "x"))
    small = xr.DataArray(np.ones((12, 12)), dims=("y", "x"))
    tiny = xr.DataArray(np.full((4, 4), 2.0), dims=("y", "x"))  # no room for a window
    with pytest.raises(InvalidArgumentError, match=r"element 2 .* smaller than the window"):
        list(tp.from_items([big, small, tiny]).sample_windows(8, n=400, seed=0))
    pipe = tp.from_items([big, small, tiny]).sample_windows(8, n=400, seed=0, on_error="skip")
    values = [float(c.values[0, 0]) for c in pipe]
    share_small = values.count(1.0) / len(values)
    assert 2.0 not in values
    assert pipe.stats.skipped == 1  # the tiny raster, counted once per pass
    assert share_small == pytest.approx(25 / (33 * 33 + 25), abs=0.03)
    weighted = [
        float(c.values[0, 0])
        for c in tp.from_items([big, small]).sample_windows(8, n=400, seed=0, weights=[1.0, 3.0])
    ]
    assert weighted.count(1.0) / 400 == pytest.approx(0.75, abs=0.07)
    with pytest.raises(InvalidArgumentError, match="weights"):
        list(tp.from_items([big, small]).sample_windows(8, n=4, weights=[1.0]))


def test_blocks_of_a_buffer_are_read_once():
    data = np.arange(32 * 32, dtype="float64").reshape(32, 32)
    da, backend = counting_dataarray(data, ("y", "x"), (16, 16))
    chips = list(tp.from_items([da]).sample_windows({"y": 4, "x": 4}, n=200, buffer=200, workers=1))
    assert len(chips) == 200
    assert max(backend.reads.values()) == 1


def test_points_windows(cube):
    x0, y0 = float(cube.x.values[10]), float(cube.y.values[20])
    edge_x = float(cube.x.values[0])
    outside = (0.0, 0.0)
    points = [(x0, y0), (edge_x, y0), outside]
    chips = list(tp.from_items([cube]).sample_windows({"y": 6, "x": 6}, points=points))
    assert len(chips) == 2
    assert origin(chips[0], cube) == (17, 7)
    assert origin(chips[1], cube) == (17, 0)  # shifted inside
    dropped = list(tp.from_items([cube]).sample_windows({"y": 6, "x": 6}, points=points, boundary="drop"))
    assert len(dropped) == 1


def test_points_from_a_geodataframe_are_reprojected(cube):
    gpd = pytest.importorskip("geopandas")
    from shapely.geometry import Point

    x0, y0 = float(cube.x.values[10]), float(cube.y.values[20])
    frame = gpd.GeoDataFrame(geometry=[Point(x0, y0)], crs="EPSG:32631").to_crs("EPSG:4326")
    chips = list(tp.from_items([cube]).sample_windows({"y": 6, "x": 6}, points=frame))
    assert origin(chips[0], cube) == (17, 7)


def test_points_need_a_transform():
    da = xr.DataArray(np.zeros((4, 4)), dims=("a", "b"))
    with pytest.raises(InvalidArgumentError, match="x/y"):
        list(tp.from_items([da]).sample_windows({"a": 2, "b": 2}, points=[(0.0, 0.0)]))


@pytest.mark.parametrize(("world", "workers"), [(1, 3), (2, 2)])
def test_shards_split_the_draws(patch_shard, cube, world, workers):
    reference = [origin(c, cube) for c in tp.from_items([cube]).sample_windows(8, n=50, seed=9)]
    seen = []
    for rank, worker in itertools.product(range(world), range(workers)):
        patch_shard(ShardInfo(rank=rank, world_size=world, worker_id=worker, num_workers=workers))
        seen.extend(origin(c, cube) for c in tp.from_items([cube]).sample_windows(8, n=50, seed=9))
    assert sorted(seen) == sorted(reference)


def test_nodata_and_split_filters_are_counted():
    data = np.ones((32, 32))
    data[:, :16] = np.nan
    da = xr.DataArray(data, dims=("y", "x"), coords={"y": np.arange(32.0), "x": np.arange(32.0)})
    pipe = tp.from_items([da]).sample_windows(4, n=100, seed=0, max_nodata_fraction=0.0)
    kept = list(pipe)
    assert len(kept) + pipe.dropped_nodata == 100
    assert pipe.dropped_nodata > 20
    split = SpatialSplit({"train": 0.5, "val": 0.5}, cell_size=8.0, seed=1)
    pipe = tp.from_items([da]).sample_windows(4, n=100, seed=0, split=split.select("train"))
    train = list(pipe)
    assert len(train) + pipe.outside_split == 100
    for chip in train:
        left, right = float(chip.x.values[0]) - 0.5, float(chip.x.values[-1]) + 0.5
        bottom, top = float(chip.y.values[0]) - 0.5, float(chip.y.values[-1]) + 0.5
        assert split.labels([[left, bottom, right, top]]) == ["train"]


@pytest.mark.parametrize("stop_after", [0, 7, 25, 39])
def test_resumes_exactly(stop_after, cube):

    from terrapipe.core.state import check_resume

    check_resume(
        lambda: Keys(tp.from_items([cube]).sample_windows(8, n=20, seed=2, buffer=6)),
        stop_after=stop_after,
        epochs=2,
    )


def test_bad_arguments():
    with pytest.raises(InvalidArgumentError, match="not both"):
        tp.from_items([]).sample_windows(4)
    with pytest.raises(InvalidArgumentError, match="n must"):
        tp.from_items([]).sample_windows(4, n=-1)
    with pytest.raises(InvalidArgumentError, match="boundary"):
        tp.from_items([]).sample_windows(4, points=[], boundary="pad")


def test_numpy_output(cube):
    array, meta = next(iter(tp.from_items([geo_cube()]).sample_windows(8, n=1, seed=0, output="numpy")))
    assert array.shape == (2, 8, 8)
    assert meta["crs"] == "EPSG:32631"
    assert meta["shape"] == (8, 8)
