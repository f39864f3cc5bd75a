"""Property tests (hypothesis) of the promises that must hold for *any* sizes, not just the ones we thought of.

Already proven elsewhere, and not repeated here:

- the window *plan* covers every window exactly once over any workers x ranks
  (``tests/chip/test_plan.py``), and the chipper reads each block once
  (``tests/chip/test_chipper.py``);
- ``stitch(chip(x)) == x`` for one unshuffled pass (``tests/chip/test_stitch.py``);
- pixel <-> world box transforms round trip for any north-up grid
  (``tests/fuse/test_boxes.py``).

Here the same promises are checked end to end, through the stages a user
runs: the chipper itself sharded over workers and ranks (with shuffling, any
boundary); stitching the shuffled chips of every shard; boxes through the
metadata the chipper gives each chip, against the source raster's own pixel
index; and a loader over COG -> chip -> tensor stopped at any batch and
resumed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
import xarray as xr
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.shard import ShardInfo, shard_scope
from tests.chip.chip_helpers import counting_dataarray
from tests.reliability.data import write_cog

pytestmark = pytest.mark.timeout(300)

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _starts(size: int, window: int, stride: int, boundary: str) -> list[int]:
    """Window starts along one axis, written out independently of the chip package."""
    if boundary == "drop":
        return list(range(0, size - window + 1, stride)) if size >= window else []
    starts = [0]
    while starts[-1] + window < size:
        starts.append(starts[-1] + stride)
    if boundary == "shift" and size >= window:
        starts = sorted({min(s, size - window) for s in starts})
    return starts


def _cube(height: int, width: int, transform: Affine, chunks: tuple[int, int] | None = None) -> xr.DataArray:
    """A (band, y, x) cube on ``transform``; lazily read by storage chunks when ``chunks`` is given."""
    data = np.arange(2 * height * width, dtype="float32").reshape(2, height, width)
    coords = {
        "band": [1, 2],
        "y": transform.f + transform.e * (np.arange(height) + 0.5),
        "x": transform.c + transform.a * (np.arange(width) + 0.5),
    }
    if chunks is None:
        da = xr.DataArray(data, dims=("band", "y", "x"), coords=coords, name="image")
    else:
        da, _ = counting_dataarray(data, ("band", "y", "x"), (2, *chunks), coords=coords, name="image")
    return da.rio.write_crs("EPSG:32631").rio.write_transform(transform)


def _all_shards(make: Any, world: int, workers: int) -> Iterator[Any]:
    for rank in range(world):
        for worker in range(workers):
            with shard_scope(ShardInfo(rank=rank, world_size=world, worker_id=worker, num_workers=workers)):
                yield from make()


windows = st.fixed_dictionaries(
    {
        "height": st.integers(1, 24),
        "width": st.integers(1, 24),
        "chunk": st.tuples(st.integers(2, 12), st.integers(2, 12)),
        "window": st.tuples(st.integers(1, 10), st.integers(1, 10)),
        "overlap": st.tuples(st.integers(0, 9), st.integers(0, 9)),
        "boundary": st.sampled_from(["drop", "pad", "shift"]),
        "shuffle": st.booleans(),
        "world": st.integers(1, 3),
        "workers": st.integers(1, 3),
        "threads": st.integers(0, 2),
    }
)


@settings(max_examples=60, deadline=None)
@given(windows)
def test_chips_over_any_ranks_and_workers_cover_each_window_exactly_once(p: dict[str, Any]) -> None:
    (wy, wx), (cy, cx) = p["window"], p["chunk"]
    oy, ox = min(p["overlap"][0], wy - 1), min(p["overlap"][1], wx - 1)
    transform = Affine(10, 0, 500_000, 0, -10, 5_000_000)
    da = _cube(p["height"], p["width"], transform, chunks=(cy, cx))
    values = _cube(p["height"], p["width"], transform).values

    def make() -> Any:
        return tp.from_items([da]).chip(
            {"y": wy, "x": wx},
            overlap={"y": oy, "x": ox},
            boundary=p["boundary"],
            shuffle=tp.chip.WindowShuffle(buffer=5, seed=7) if p["shuffle"] else False,
            workers=p["threads"],
            output="numpy",
        )

    rows = _starts(p["height"], wy, wy - oy, p["boundary"])
    cols = _starts(p["width"], wx, wx - ox, p["boundary"])
    if not rows or not cols:  # a raster smaller than a dropped window is an error, not a silent nothing
        with pytest.raises(InvalidArgumentError, match="smaller than the window"):
            list(make())
        return
    seen = Counter()
    for array, meta in _all_shards(make, p["world"], p["workers"]):
        row, col = (
            round((5_000_000 - meta["transform"][5]) / 10),
            round((meta["transform"][2] - 500_000) / 10),
        )
        seen[(row, col)] += 1
        inside = array[:, : max(0, p["height"] - row), : max(0, p["width"] - col)]
        expected = values[:, row : row + wy, col : col + wx]
        np.testing.assert_array_equal(inside, expected)
    assert seen == Counter(product(rows, cols))


@SETTINGS
@given(
    height=st.integers(4, 30),
    width=st.integers(4, 30),
    window=st.integers(2, 10),
    overlap=st.integers(0, 4),
    boundary=st.sampled_from(["pad", "shift"]),
    world=st.integers(1, 2),
    workers=st.integers(1, 3),
)
def test_stitching_the_shuffled_chips_of_every_shard_gives_back_the_raster(
    height: int, width: int, window: int, overlap: int, boundary: str, world: int, workers: int
) -> None:
    cube = _cube(height, width, Affine(10, 0, 500_000, 0, -10, 5_000_000))
    overlap = min(overlap, window - 1)

    def make() -> Any:
        lazy = _cube(height, width, Affine(10, 0, 500_000, 0, -10, 5_000_000), chunks=(7, 5))
        chips = tp.from_items([lazy]).chip(
            window, overlap=overlap, boundary=boundary, shuffle=tp.chip.WindowShuffle(buffer=3, seed=1)
        )
        return ((chip.values, chip) for chip in chips)

    out = tp.chip.stitch(_all_shards(make, world, workers), template=cube, overlap="mean")
    np.testing.assert_array_equal(out.values, cube.values)


@SETTINGS
@given(
    pixel=st.tuples(st.sampled_from([0.5, 10.0, 30.0, 0.0001]), st.sampled_from([0.5, 10.0, 30.0, 0.0001])),
    origin=st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e7)),
    size=st.integers(8, 20),  # never smaller than the window: that is an error
    window=st.integers(3, 8),
    corners=st.lists(
        st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=5
    ),
)
def test_boxes_round_trip_through_the_metadata_of_each_chip(
    pixel: tuple[float, float], origin: tuple[float, float], size: int, window: int, corners: list[Any]
) -> None:
    transform = Affine(pixel[0], 0, origin[0], 0, -pixel[1], origin[1])
    cube = _cube(size, size, transform)
    for chip in tp.from_items([cube]).chip(window).to_tensor(image="image"):
        meta = chip["meta"]
        px = np.array(
            [
                [min(a, c) * window, min(b, d) * window, max(a, c) * window, max(b, d) * window]
                for a, b, c, d in corners
            ]
        )
        world = tp.fuse.pixels_to_boxes(px, meta)
        np.testing.assert_allclose(
            tp.fuse.boxes_to_pixels(world, meta),
            px,
            rtol=0,
            atol=1e-6 * max(1, abs(origin[0]) / pixel[0], abs(origin[1]) / pixel[1]),
        )
        # the chip's own pixel (r, c) is the source raster's pixel at the same world place
        r, c = window - 1, 0
        centre = tp.fuse.pixels_to_boxes(np.array([[c + 0.25, r + 0.25, c + 0.75, r + 0.75]]), meta)[0]
        row, col = rasterio.transform.rowcol(
            transform, (centre[0] + centre[2]) / 2, (centre[1] + centre[3]) / 2
        )
        assert float(chip["image"][0, r, c]) == float(cube.values[0, row, col])


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("scenes")
    paths = [folder / f"scene-{i}.tif" for i in range(3)]
    for i, path in enumerate(paths):
        write_cog(path, seed=i, size=128, block=128)
    return paths


def _segmentation_pipe(paths: list[Path]) -> Any:
    return (
        tp.from_items([str(p) for p in paths])
        .read_raster()
        .chip(32, overlap=8, shuffle=tp.chip.WindowShuffle(buffer=6, seed=3), workers=0)
        .to_tensor(image="image", dtype=torch.float32)
    )


def _batches(loader: Any) -> list[list[float]]:
    return [batch["image"].flatten(1)[:, :4].sum(1).tolist() for batch in loader]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stop=st.integers(0, 60), workers=st.integers(0, 2))
def test_a_loader_stopped_at_any_batch_resumes_exactly(scenes: list[Path], stop: int, workers: int) -> None:
    epochs = 2
    with tp.loader(_segmentation_pipe(scenes), batch_size=5, workers=workers) as whole:
        expected = [b for _ in range(epochs) for b in _batches(whole)]
    stop = min(stop, len(expected))
    got: list[list[float]] = []
    with tp.loader(_segmentation_pipe(scenes), batch_size=5, workers=workers) as first:
        for _ in range(epochs):
            if len(got) == stop:
                break
            for batch in first:
                got.append(batch["image"].flatten(1)[:, :4].sum(1).tolist())
                if len(got) == stop:
                    break
        state = json.loads(json.dumps(first.state_dict()))
    with tp.loader(_segmentation_pipe(scenes), batch_size=5, workers=workers) as second:
        second.load_state_dict(state)
        for _ in range(epochs - state["epoch"]):
            got.extend(_batches(second))
    assert got == expected
