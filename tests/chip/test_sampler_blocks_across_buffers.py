"""``sample_windows`` reads a block once per pass even when windows of several buffers need it.

Each raster's windows are read as one stream over the buffers of a span,
so a block is kept for a later buffer within the block budget instead of
read again (a Zarr chunk or lazy backend decoded again each time). The
windows, their order, the drops and the resume points stay as with one
stream per buffer (``SPAN = buffer``, the reading before).
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
import terrapipe.chip.sampler as sampler
from terrapipe.chip.split import SpatialSplit
from tests.chip.chip_helpers import Keys, counting_dataarray


def lazy(seed: int, height: int = 48, width: int = 40, chunks: tuple[int, int] = (8, 8), **kwargs):
    data = np.random.default_rng(seed).integers(1, 1000, (height, width)).astype("float64")
    coords = {"y": np.arange(height, 0, -1.0) - 0.5, "x": np.arange(width) + 0.5}
    da, backend = counting_dataarray(data, ("y", "x"), chunks, coords=coords, **kwargs)
    return da, backend


def as_list(chips) -> list[tuple[np.ndarray, list[float], list[float]]]:
    out = []
    for chip in chips:
        if isinstance(chip, xr.DataArray):
            out.append((chip.values, chip.y.values.tolist(), chip.x.values.tolist()))
        else:
            out.append((np.asarray(chip[0]), [], []))
    return out


def same(a, b) -> None:
    assert len(a) == len(b)
    for (va, ya, xa), (vb, yb, xb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(va, vb)
        assert (ya, xa) == (yb, xb)


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_a_block_is_read_once_per_pass_across_buffers(workers):
    da, backend = lazy(0)
    pipe = tp.from_items([da]).sample_windows({"y": 6, "x": 6}, n=300, buffer=16, workers=workers, seed=1)
    for epoch in range(2):
        backend.reads.clear()
        chips = list(pipe)
        assert len(chips) == 300
        assert set(backend.reads.values()) == {1}, epoch  # was up to one read per buffer (19 buffers)
        assert len(backend.reads) == backend.n_chunks


def test_several_rasters_each_block_once():
    rasters = [lazy(seed, height=24 + 8 * seed, width=32) for seed in range(4)]
    pipe = tp.from_items([da for da, _ in rasters]).sample_windows(
        {"y": 5, "x": 7}, n=400, buffer=10, workers=0, seed=3
    )
    assert len(list(pipe)) == 400
    for _, backend in rasters:
        assert set(backend.reads.values()) == {1}


def cases():
    split = SpatialSplit({"train": 0.6, "val": 0.4}, cell_size=16.0, seed=0)
    yield "random", {"n": 150, "seed": 4}
    yield "random numpy", {"n": 150, "seed": 4, "output": "numpy"}
    yield "weights", {"n": 150, "seed": 5, "weights": [3.0, 1.0, 2.0]}
    yield (
        "points shuffled",
        {
            "points": [(x + 0.5, y - 0.5) for x in range(0, 40, 3) for y in range(48, 0, -5)],
            "shuffle": True,
            "seed": 2,
        },
    )
    yield "nodata drops", {"n": 150, "seed": 6, "max_nodata_fraction": 0.0, "nodata": 7.0}
    yield "split", {"n": 150, "seed": 7, "split": split.select("val")}


@pytest.mark.parametrize(("name", "kwargs"), list(cases()), ids=[c[0] for c in cases()])
@pytest.mark.parametrize("workers", [0, 2])
def test_the_same_windows_in_the_same_order_as_a_stream_per_buffer(monkeypatch, name, kwargs, workers):
    def run(span: int):
        monkeypatch.setattr(sampler, "SPAN", span)
        das = [lazy(seed)[0] for seed in range(3)]
        das[1] = das[1].where(
            das[1] % 50 != 7, 7.0
        )  # some nodata pixels (in memory: a raster of another kind)
        pipe = tp.from_items(das).sample_windows({"y": 6, "x": 6}, buffer=7, workers=workers, **kwargs)
        return [as_list(pipe) for _ in range(2)], pipe.dropped_nodata, pipe.outside_split

    before, after = run(7), run(sampler.SPAN)
    for a, b in zip(before[0], after[0], strict=True):
        same(a, b)
    assert before[1:] == after[1:]


@pytest.mark.parametrize("span", [12, 16_384])  # spans of two buffers, and one span
@pytest.mark.parametrize("stop_after", [0, 5, 13, 31])
def test_resumes_exactly_mid_span(monkeypatch, span, stop_after):
    from terrapipe.core.state import check_resume

    monkeypatch.setattr(sampler, "SPAN", span)
    das = [lazy(seed)[0] for seed in range(2)]
    check_resume(
        lambda: Keys(tp.from_items(das).sample_windows(8, n=40, seed=2, buffer=6, workers=0)),
        stop_after=stop_after,
        epochs=2,
    )


def test_a_small_budget_reads_again_and_gives_the_same_windows(monkeypatch):
    da, backend = lazy(1)
    small = tp.from_items([da]).sample_windows(
        {"y": 6, "x": 6}, n=200, buffer=16, workers=0, seed=9, reads={"block_cache_bytes": 4 * 8 * 8 * 8}
    )
    got = as_list(small)
    assert max(backend.reads.values()) > 1  # 4 blocks kept at most: some are read again
    monkeypatch.setattr(sampler, "SPAN", 16)
    same(
        got,
        as_list(
            tp.from_items([lazy(1)[0]]).sample_windows({"y": 6, "x": 6}, n=200, buffer=16, workers=0, seed=9)
        ),
    )


def test_a_failed_block_fails_its_windows_only():
    da, _ = lazy(2, fail_chunks=[(2, 3)])
    pipe = tp.from_items([da]).sample_windows(
        {"y": 6, "x": 6}, n=200, buffer=9, workers=0, seed=1, on_error="skip"
    )
    chips = list(pipe)
    rows = [int(48 - c.y.values[0] - 0.5) for c in chips]
    cols = [int(c.x.values[0] - 0.5) for c in chips]
    # the windows touching chunk (2, 3) (rows 16..23, columns 24..31) are the ones skipped
    touching = [r <= 23 and r + 6 > 16 and c <= 31 and c + 6 > 24 for r, c in zip(rows, cols, strict=True)]
    assert not any(touching)
    assert len(chips) + pipe.stats.skipped == 200
    assert pipe.stats.skipped > 0


def test_a_pass_left_early_then_a_full_pass():
    da, backend = lazy(3)
    pipe = tp.from_items([da]).sample_windows({"y": 6, "x": 6}, n=120, buffer=8, workers=2, seed=1)
    it = iter(pipe)
    for _ in range(20):
        next(it)
    del it
    backend.reads.clear()
    assert len(list(pipe)) == 120
    assert set(backend.reads.values()) == {1}
