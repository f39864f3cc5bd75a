"""A cache holding windows chosen by a spatial split is keyed by the split's revision and subset order.

Last session's wrap fix changed which subset a window of a lon/lat raster past +-180 belongs to, but
a split was described to caches by its dataclass fields alone: a Zarr-folder or Redis cache written
before kept serving the old subsets (windows of one place in train and val). The description now
carries ``revision`` (as rasterize and clip_vector do), and keeps the order of the subsets, which
decides what a cell gets: ``{"train": .5, "val": .5}`` and ``{"val": .5, "train": .5}`` label every
cell the other way round, so they must never share a key.
"""

from __future__ import annotations

import numpy as np

import terrapipe as tp
import terrapipe.chip  # registers chip and sample_windows
from terrapipe.cache.canonical import canonical
from terrapipe.cache.segment import describe_stage
from terrapipe.chip.split import REVISION, SpatialSplit


def _config(stage: object) -> dict[str, object]:
    described = describe_stage(stage)  # type: ignore[arg-type]
    assert isinstance(described, dict)
    return dict(described["config"]["dict"])  # type: ignore[index]


def test_chip_and_sample_windows_with_a_split_carry_its_revision() -> None:
    split = SpatialSplit({"train": 0.8, "val": 0.2}, cell_size=5.0, seed=4)
    for stage in (
        tp.from_items([]).chip({"x": 2, "y": 2}, split=split.select("val")),
        tp.from_items([]).sample_windows({"x": 2, "y": 2}, n=3, split=split.select("val")),
    ):
        described = _config(stage)["split"]
        assert described["object"][0] == "terrapipe.chip.split.SpatialSplit"  # type: ignore[index]
        assert ["revision", REVISION] in described["object"][1]["dict"]  # type: ignore[index]
    assert REVISION >= 2


def test_the_order_of_the_subsets_is_part_of_the_key() -> None:
    one = SpatialSplit({"train": 0.5, "val": 0.5}, cell_size=1.0)
    other = SpatialSplit({"val": 0.5, "train": 0.5}, cell_size=1.0)
    bounds = np.array([[x + 0.1, 0.1, x + 0.9, 0.9] for x in range(40)])
    assert one.labels(bounds) != other.labels(bounds)  # the same names, other cells
    assert canonical(one) != canonical(other)
    assert canonical(one) == canonical(SpatialSplit({"train": 0.5, "val": 0.5}, cell_size=(1.0, 1.0)))


def test_every_option_of_the_split_changes_the_key() -> None:
    base = {
        "fractions": {"a": 0.5, "b": 0.5},
        "cell_size": 2.0,
        "buffer": 0.0,
        "seed": 0,
        "origin": (0.0, 0.0),
    }
    changes = {
        "fractions": {"a": 0.6, "b": 0.4},
        "cell_size": 3.0,
        "buffer": 0.5,
        "seed": 1,
        "origin": (1.0, 0.0),
    }
    first = canonical(SpatialSplit(**base))  # type: ignore[arg-type]
    for name, value in changes.items():
        assert canonical(SpatialSplit(**{**base, name: value})) != first, name  # type: ignore[arg-type]


def test_sample_windows_on_points_carries_a_revision_and_random_windows_keep_their_key() -> None:
    on_points = _config(tp.from_items([]).sample_windows({"x": 2, "y": 2}, points=[(1.0, 2.0)]))
    assert on_points["points_revision"] == 2  # points wrap on lon/lat rasters since last session
    drawn = _config(tp.from_items([]).sample_windows({"x": 2, "y": 2}, n=3))
    assert "points_revision" not in drawn  # random windows did not change: their caches stay
