"""Chip and SampleWindows take one value per job (#21 item 5): shuffle=, split=, reads=.

The old keywords (``shuffle_buffer=``, ``seed=``, ``subset=``,
``block_cache_bytes=``, ``read_ahead=``) warn once and build the same stage:
same windows in the same order, same split membership, same state, same
cache key (the digests below were computed before the change, so a cache
written then is still found).
"""

from __future__ import annotations

import copy
import inspect
import pickle
import warnings
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
import terrapipe.chip
from terrapipe.cache.canonical import digest_json
from terrapipe.cache.segment import describe_stage
from terrapipe.chip import Reads, SplitSubset, WindowShuffle
from terrapipe.core.errors import InvalidArgumentError, TerrapipeDeprecationWarning


def cube() -> xr.DataArray:
    return xr.DataArray(
        np.arange(32 * 32, dtype="float32").reshape(32, 32),
        dims=("y", "x"),
        coords={"y": 1000.0 - 10 * np.arange(32), "x": 10.0 * np.arange(32)},
    ).chunk({"y": 8, "x": 8})


SPLIT = tp.chip.SpatialSplit({"train": 0.5, "val": 0.5}, cell_size=80.0, seed=1)

#: (stage, old keywords, new keywords, digest of the stage's description before the change).
CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any], str]] = {
    "shuffle-8-3": (
        "chip",
        {"shuffle": True, "shuffle_buffer": 8, "seed": 3},
        {"shuffle": WindowShuffle(buffer=8, seed=3)},
        "51bd60b8b16118964f060c57bf8ba4cbdb1b3aded709472e5c761807e8ba5ebb",
    ),
    "shuffle-seed-7": (
        "chip",
        {"shuffle": True, "seed": 7},
        {"shuffle": {"seed": 7}},
        "6664fd6c12615d54b2c28892a6bdd79e65ece3fed8f291ae55cd523c465537b9",
    ),
    "split-train": (
        "chip",
        {"split": SPLIT, "subset": "train"},
        {"split": SPLIT.select("train")},
        # since 185b939 a SpatialSplit describes itself with revision 2 (its wrap fix): new digest
        "0834d25407e3fb606191a3b111c67c6d03b2e7c109e2cecffe7ea2c63908f9a8",
    ),
    "reads": (
        "chip",
        {"block_cache_bytes": 2**20, "read_ahead": 1, "workers": 0},
        {"reads": Reads(block_cache_bytes=2**20, read_ahead=1), "workers": 0},
        "2a4406f2f4c9299862875573153041bb0335a0b32a64ed39f441292d2cd42891",  # = plain: reads are not keyed
    ),
    "sample-split": (
        "sample_windows",
        {"n": 7, "seed": 2, "split": SPLIT, "subset": "val", "block_cache_bytes": 2**20},
        {"n": 7, "seed": 2, "split": SPLIT.select("val"), "reads": {"block_cache_bytes": 2**20}},
        "7c9c3911c29867c6ed14685ec6f85672ae4ed56040d75e0141e750d344807404",  # revision 2, as above
    ),
}

#: Digests of stages built the new way whose old form had no old keyword.
PLAIN = {
    "chip": "2a4406f2f4c9299862875573153041bb0335a0b32a64ed39f441292d2cd42891",
    "chip-shuffled": "685227cba6bc6d24bf816f57f48c03bfee174c61377bfbd1017e8b069dba5796",
    "sample_windows": "0e771a1e8a7f39de9dcda27ce51a38745aabc7bb7c704fdbe8d694ee7357d864",
}


def build(stage: str, kwargs: dict[str, Any]) -> Any:
    return getattr(tp.from_items([cube()]), stage)(4, **kwargs)


def old_form(stage: str, kwargs: dict[str, Any]) -> tuple[Any, str]:
    with pytest.warns(TerrapipeDeprecationWarning) as seen:
        pipe = build(stage, kwargs)
    messages = [str(w.message) for w in seen if issubclass(w.category, TerrapipeDeprecationWarning)]
    assert len(messages) == 1, messages  # one warning per call
    return pipe, messages[0]


def chips(pipe: Any) -> list[tuple[float, ...]]:
    """Each chip's first value and its corner: which windows came, in which order."""
    return [(float(c.values[0, 0]), float(c.y[0]), float(c.x[0])) for c in pipe]


@pytest.mark.parametrize("name", list(CASES))
def test_old_keywords_warn_and_build_the_same_stage(name: str) -> None:
    stage, old, new, digest = CASES[name]
    before, message = old_form(stage, old)
    after = build(stage, new)
    assert "deprecated" in message
    assert "pass " in message
    if "shuffle_buffer" in old:
        assert "shuffle=tp.chip.WindowShuffle(buffer=8, seed=3)" in message
    if "subset" in old:
        assert f"split=split.select({old['subset']!r})" in message
    if "block_cache_bytes" in old:
        assert "reads=tp.chip.Reads(block_cache_bytes=1048576" in message
    assert digest_json(describe_stage(before)) == digest_json(describe_stage(after)) == digest
    assert before.state_dict() == after.state_dict()
    assert repr(before) == repr(after)
    assert chips(before) == chips(after)  # same windows, same order (same seed), same split membership
    assert before.state_dict() == after.state_dict()


def test_stages_built_the_new_way_keep_the_cache_keys_of_before() -> None:
    assert digest_json(describe_stage(build("chip", {}))) == PLAIN["chip"]
    assert digest_json(describe_stage(build("chip", {"shuffle": True}))) == PLAIN["chip-shuffled"]
    assert digest_json(describe_stage(build("chip", {"shuffle": WindowShuffle()}))) == PLAIN["chip-shuffled"]
    sampled = build("sample_windows", {"n": 7, "seed": 2})
    assert digest_json(describe_stage(sampled)) == PLAIN["sample_windows"]


def test_an_unshuffled_chip_keeps_an_old_seed_in_its_key() -> None:
    """``chip(seed=5)`` without a shuffle did nothing with the seed, but its cache key held it."""
    pipe, message = old_form("chip", {"seed": 5})
    assert (
        digest_json(describe_stage(pipe))
        == "b33535c4f4147d346776cf753b05e3df3e4f5d3248a2d2f6b85afdc5facc794e"
    )
    assert "without a shuffle they do nothing" in message
    assert chips(pipe) == chips(build("chip", {}))


def test_a_cache_written_with_the_old_keywords_is_hit_with_the_new_ones(tmp_path: Any) -> None:
    store = str(tmp_path / "cache.zarr")

    def cached(**kwargs: Any) -> Any:
        return tp.from_items([cube()]).cache_point().chip(4, output="numpy", **kwargs).cache(store)

    with pytest.warns(TerrapipeDeprecationWarning):
        first = cached(shuffle=True, shuffle_buffer=8, seed=3, split=SPLIT, subset="train", read_ahead=0)
    written = [a.tolist() for a, _ in first]
    again = cached(
        shuffle=WindowShuffle(buffer=8, seed=3), split=SPLIT.select("train"), reads={"read_ahead": 0}
    )
    hit = [a.tolist() for a, _ in again]
    assert (first.stats.misses, again.stats.hits, again.stats.misses) == (1, 1, 0)
    assert written
    assert hit == written


def test_sample_windows_old_keywords_give_the_same_draws() -> None:
    old = {"n": 40, "seed": 4, "split": SPLIT, "subset": "val", "block_cache_bytes": 2**16}
    before, _ = old_form("sample_windows", old)
    after = build("sample_windows", {"n": 40, "seed": 4, "split": SPLIT.select("val"), "reads": Reads(2**16)})
    assert chips(before) == chips(after)
    assert before.outside_split == after.outside_split > 0


def test_every_chip_of_a_subset_lies_in_it_and_the_subsets_part_the_rest() -> None:
    everything = set(chips(build("chip", {})))
    seen: set[tuple[float, ...]] = set()
    for name in SPLIT.names:
        pipe = build("chip", {"split": SPLIT.select(name)})
        mine = chips(pipe)
        assert not seen & set(mine)
        seen |= set(mine)
        for c in build("chip", {"split": SPLIT.select(name)}):
            assert SPLIT.labels([c.rio.bounds()]) == [name]
    assert seen <= everything


def test_the_widest_stages_are_narrower() -> None:
    def named(cls: type) -> list[str]:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        return [p.name for p in params if p.kind is not p.VAR_KEYWORD]

    assert len(named(tp.chip.Chip)) == 15  # was 19
    assert len(named(tp.chip.SampleWindows)) == 17  # was 18
    for gone in ("shuffle_buffer", "seed", "subset", "block_cache_bytes", "read_ahead"):
        assert gone not in named(tp.chip.Chip)


def test_the_values_are_frozen_hashable_and_picklable() -> None:
    for value in (WindowShuffle(buffer=8, seed=3), Reads(block_cache_bytes=10, read_ahead=2)):
        assert pickle.loads(pickle.dumps(value)) == value == copy.deepcopy(value)
        assert len({value, copy.copy(value)}) == 1
        with pytest.raises(AttributeError):
            value.seed = 1  # type: ignore[union-attr,misc]
    subset = SPLIT.select("val")
    assert pickle.loads(pickle.dumps(subset)) == subset
    assert WindowShuffle(buffer=np.int64(8)) == WindowShuffle(buffer=8)
    assert type(WindowShuffle(buffer=np.int64(8)).buffer) is int
    pipe = build("chip", {"shuffle": WindowShuffle(buffer=8, seed=3), "reads": {"read_ahead": 2}})
    assert pipe.reads == Reads(read_ahead=2)
    assert repr(pipe.shuffle) == "WindowShuffle(buffer=8, seed=3)"
    assert pickle.loads(pickle.dumps(pipe)).shuffle_given == WindowShuffle(buffer=8, seed=3)


@pytest.mark.parametrize(
    ("stage", "kwargs", "match"),
    [
        ("chip", {"shuffle": WindowShuffle}, "shuffle must be True, False"),
        ("chip", {"shuffle": "yes"}, "shuffle must be True, False"),
        ("chip", {"shuffle": 1}, "shuffle must be True, False"),
        ("chip", {"shuffle": {"sead": 1}}, r"unknown field\(s\) \['sead'\]"),
        ("chip", {"shuffle": {"buffer": 0}}, "WindowShuffle buffer must be an int >= 1, got 0"),
        ("chip", {"shuffle": {"buffer": "10"}}, "WindowShuffle buffer must be an int >= 1"),
        ("chip", {"shuffle": {"seed": -1}}, "WindowShuffle seed must be an int >= 0, got -1"),
        ("chip", {"shuffle": {"seed": 1.5}}, "WindowShuffle seed must be an int"),
        ("chip", {"reads": {"workers": 2}}, "reader threads are the stage's workers="),
        ("chip", {"reads": {"block_cache_bytes": -1}}, "Reads block_cache_bytes must be an int >= 0"),
        ("chip", {"reads": {"read_ahead": True}}, "Reads read_ahead must be an int >= 0"),
        ("chip", {"reads": 2**20}, "reads must be None, a tp.chip.Reads"),
        ("chip", {"split": SPLIT}, r"split=split.select\(name\)"),
        ("chip", {"split": "train"}, "split must be None or a subset"),
        ("chip", {"split": {"train": 1.0}}, "split must be None or a subset"),
        ("sample_windows", {"n": 2, "split": SPLIT}, r"split.select\('train'\)"),
        ("sample_windows", {"n": 2, "reads": Reads(read_ahead=1)}, "without read_ahead"),
        ("sample_windows", {"n": 2, "reads": {"read_ahead": 1}}, "without read_ahead"),
    ],
)
def test_new_forms_are_checked(stage: str, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        build(stage, kwargs)


def test_a_subset_must_be_one_of_the_split() -> None:
    with pytest.raises(InvalidArgumentError, match="'test' is not one of the split's subsets"):
        SPLIT.select("test")
    with pytest.raises(InvalidArgumentError, match=r"needs a tp\.chip\.SpatialSplit"):
        SplitSubset({"train": 1.0}, "train")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stage", "kwargs", "match"),
    [
        ("chip", {"shuffle": WindowShuffle(), "seed": 3}, "not also seed= or shuffle_buffer="),
        ("chip", {"shuffle": {"buffer": 4}, "shuffle_buffer": 8}, "not also seed= or shuffle_buffer="),
        ("chip", {"reads": Reads(), "read_ahead": 1}, "not also as keywords"),
        (
            "chip",
            {"split": SPLIT.select("val"), "subset": "train"},
            "subset= goes with a tp.chip.SpatialSplit",
        ),
        ("chip", {"subset": "train"}, "subset= goes with a tp.chip.SpatialSplit"),
        ("chip", {"split": SPLIT, "subset": 3}, "subset must be a subset name"),
        ("chip", {"split": SPLIT, "subset": "test"}, "'test' is not one of the split's subsets"),
        ("chip", {"shuffle": True, "shuffle_buffer": 0}, "shuffle_buffer must be an int >= 1"),
        ("chip", {"seed": "1"}, "chip seed must be an int >= 0"),
        ("sample_windows", {"n": 2, "reads": Reads(), "block_cache_bytes": 1}, "not also as keywords"),
    ],
)
def test_old_and_new_forms_together_or_bad_old_values_are_refused(
    stage: str, kwargs: dict[str, Any], match: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TerrapipeDeprecationWarning)
        with pytest.raises(InvalidArgumentError, match=match):
            build(stage, kwargs)


def test_an_old_keyword_given_its_default_still_warns_and_says_what_to_do() -> None:
    pipe, message = old_form("chip", {"subset": None, "split": None})
    assert "nothing for subset=None" in message
    assert pipe.split is None
    assert pipe.subset is None


def test_an_unknown_keyword_is_a_type_error_as_before() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'shufle'"):
        build("chip", {"shufle": True})
    with pytest.raises(TypeError, match="unexpected keyword argument 'read_ahead'"):
        build("sample_windows", {"n": 2, "read_ahead": 1})
