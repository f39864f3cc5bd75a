"""The Lightning adapter finds a recipe's split on stages whose split= takes split.select(name) (#21 item 5).

``recipe_subsets`` needs no Lightning: these tests run without the extra.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import terrapipe as tp
import terrapipe.chip
from terrapipe.adapters.lightning import recipe_subsets, takes_split_subset
from terrapipe.cache.canonical import digest_json
from terrapipe.cache.segment import describe_stage
from terrapipe.core.errors import RecipeError, TerrapipeDeprecationWarning
from terrapipe.recipes import load_recipe

SPLIT = "split: {fractions: {train: 0.6, val: 0.2, test: 0.2}, cell_size: 2560, seed: 3}"
MADE = tp.chip.SpatialSplit({"train": 0.6, "val": 0.2, "test": 0.2}, cell_size=2560, seed=3)


def recipe(folder: Path, step: str) -> Path:
    body = f"version: 1\nname: x\nseed: 4\ninputs:\n  main:\n    source: {{items: []}}\n    steps:\n      - {step}\n"
    path = folder / "split.yaml"
    path.write_text(body)
    return path


def test_the_chipping_stages_take_a_split_subset() -> None:
    assert takes_split_subset("chip")
    assert takes_split_subset("sample_windows")
    assert not takes_split_subset("map")
    assert not takes_split_subset("no_such_stage")


@pytest.mark.parametrize(
    "step", [f"chip: {{size: 4, {SPLIT}}}", f"sample_windows: {{size: 4, n: 3, {SPLIT}}}"]
)
def test_each_subset_is_given_as_split_select(tmp_path: Path, step: str) -> None:
    made, restricted = recipe_subsets(load_recipe(recipe(tmp_path, step)), None)
    assert made == MADE
    for name in made.names:
        sub = restricted(name)
        ((_, steps),) = sub.inputs.values()
        assert steps[0].kwargs["split"] == MADE.select(name)
        assert "subset" not in steps[0].kwargs
        stage = sub.build()
        assert (stage.split, stage.subset) == (MADE, name)


def test_a_subset_stage_has_the_cache_key_it_had_with_split_and_subset(tmp_path: Path) -> None:
    _, restricted = recipe_subsets(load_recipe(recipe(tmp_path, f"chip: {{size: 4, {SPLIT}}}")), None)
    built = restricted("val").build()
    with pytest.warns(TerrapipeDeprecationWarning):
        before = tp.from_items([]).chip(4, split=MADE, subset="val", seed=4)  # what the adapter built before
    assert digest_json(describe_stage(built)) == digest_json(describe_stage(before))


def test_an_old_subset_key_in_the_recipe_warns_and_is_replaced(tmp_path: Path) -> None:
    path = recipe(tmp_path, f"chip: {{size: 4, {SPLIT}, subset: train}}")
    with pytest.warns(TerrapipeDeprecationWarning, match="subset: deprecated"):
        loaded = load_recipe(path)
    _, restricted = recipe_subsets(loaded, None)
    stage = restricted("test").build()
    assert stage.subset == "test"


def test_a_split_given_to_a_recipe_without_one(tmp_path: Path) -> None:
    plain = load_recipe(recipe(tmp_path, "chip: {size: 4}"))
    with pytest.raises(RecipeError, match="has no split"):
        recipe_subsets(plain, None)
    made, restricted = recipe_subsets(plain, {"fractions": {"a": 0.5, "b": 0.5}, "cell_size": 10})
    assert restricted("b").build().split == made


def test_a_recipe_without_a_chipping_step_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="no step takes split="):
        recipe_subsets(load_recipe(recipe(tmp_path, "header: {limit: 1}")), None)
