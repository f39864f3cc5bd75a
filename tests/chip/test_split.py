from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import terrapipe as tp
from terrapipe.chip.split import SpatialSplit
from terrapipe.core.errors import InvalidArgumentError
from tests.chip.chip_helpers import counting_dataarray


def test_cell_labels_follow_the_fractions_and_are_deterministic():
    split = SpatialSplit({"train": 0.7, "val": 0.2, "test": 0.1}, cell_size=1.0, seed=5)
    ix, iy = np.meshgrid(np.arange(-100, 100), np.arange(-100, 100))
    labels = split.cell_labels(ix.ravel(), iy.ravel())
    shares = np.bincount(labels, minlength=3) / labels.size
    np.testing.assert_allclose(shares, [0.7, 0.2, 0.1], atol=0.02)
    again = SpatialSplit({"train": 0.7, "val": 0.2, "test": 0.1}, cell_size=1.0, seed=5)
    np.testing.assert_array_equal(labels, again.cell_labels(ix.ravel(), iy.ravel()))
    other = SpatialSplit({"train": 0.7, "val": 0.2, "test": 0.1}, cell_size=1.0, seed=6)
    assert (labels != other.cell_labels(ix.ravel(), iy.ravel())).any()


def _gap(a: np.ndarray, b: np.ndarray) -> float:
    dx = max(a[0] - b[2], b[0] - a[2], 0.0)
    dy = max(a[1] - b[3], b[1] - a[3], 0.0)
    return float(np.hypot(dx, dy)) if dx > 0 and dy > 0 else float(max(dx, dy))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 1000),
    cell=st.floats(5.0, 40.0),
    buffer=st.floats(0.0, 15.0),
    size=st.floats(1.0, 20.0),
)
def test_windows_of_different_subsets_never_overlap_and_keep_the_buffer(seed, cell, buffer, size):
    rng = np.random.default_rng(seed)
    split = SpatialSplit({"a": 0.5, "b": 0.3, "c": 0.2}, cell_size=cell, buffer=buffer, seed=seed)
    corners = rng.uniform(-100, 100, size=(150, 2))
    bounds = np.concatenate([corners, corners + size], axis=1)
    labels = split.assign(bounds)
    for i in range(len(bounds)):
        for j in range(i + 1, len(bounds)):
            if labels[i] >= 0 and labels[j] >= 0 and labels[i] != labels[j]:
                assert _gap(bounds[i], bounds[j]) >= buffer - 1e-9


def test_bad_splits():
    with pytest.raises(InvalidArgumentError, match="fractions"):
        SpatialSplit({}, cell_size=1.0)
    with pytest.raises(InvalidArgumentError, match="cell_size"):
        SpatialSplit({"a": 1.0}, cell_size=0.0)
    with pytest.raises(InvalidArgumentError, match="buffer"):
        SpatialSplit({"a": 1.0}, cell_size=1.0, buffer=-1)
    with pytest.raises(InvalidArgumentError, match="subset"):
        SpatialSplit({"a": 1.0}, cell_size=1.0).subset_number("b")


def test_chip_subsets_are_disjoint_and_unread_windows_are_skipped(cube):
    split = SpatialSplit({"train": 0.6, "val": 0.4}, cell_size=120.0, buffer=20.0, seed=3)
    subsets = {}
    for name in ("train", "val"):
        pipe = tp.from_items([cube]).chip({"y": 4, "x": 4}, split=split.select(name))
        subsets[name] = [tuple(np.round(c.rio.bounds(), 6)) for c in pipe]
        assert pipe.counters.windows + pipe.counters.outside_split == 10 * 12
    assert subsets["train"]
    assert subsets["val"]
    for a in subsets["train"]:
        for b in subsets["val"]:
            assert _gap(np.array(a), np.array(b)) >= 20.0 - 1e-6


def test_groups_without_a_window_of_the_subset_are_not_read():
    data = np.arange(64 * 64, dtype="float64").reshape(64, 64)
    coords = {"y": np.arange(64.0) + 0.5, "x": np.arange(64.0) + 0.5}
    da, backend = counting_dataarray(data, ("y", "x"), (16, 16), coords=coords)
    split = SpatialSplit({"train": 0.5, "val": 0.5}, cell_size=32.0, seed=11)
    chips = list(tp.from_items([da]).chip({"y": 8, "x": 8}, split=split.select("val")))
    labels = split.cell_labels([0, 1, 0, 1], [0, 0, 1, 1])
    assert len(chips) == 16 * int((labels == 1).sum())
    assert len(backend.reads) == 4 * int((labels == 1).sum())  # only the blocks of val cells
