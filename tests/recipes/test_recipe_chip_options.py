"""A recipe's seed reaches chip's shuffle=; old chip keys still load (warned) with the cache keys of before (#21)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

from terrapipe.cache.canonical import digest_json
from terrapipe.cache.segment import describe_stage
from terrapipe.chip import Reads, WindowShuffle
from terrapipe.core.errors import RecipeError, TerrapipeDeprecationWarning
from terrapipe.recipes import load_recipe

#: Digests of ``chip(4, ...)``'s description before the change (tests/chip/test_chipper_options.py).
BEFORE = {
    "seed=7": "0cc6c8ed849b10fae8939848a73c944d40634fbd2d69799cf7df41dee4c812ad",
    "shuffle=True, seed=7": "6664fd6c12615d54b2c28892a6bdd79e65ece3fed8f291ae55cd523c465537b9",
    "shuffle=True, shuffle_buffer=8, seed=3": "51bd60b8b16118964f060c57bf8ba4cbdb1b3aded709472e5c761807e8ba5ebb",
    "seed=5": "b33535c4f4147d346776cf753b05e3df3e4f5d3248a2d2f6b85afdc5facc794e",
}


def recipe(folder: Path, chip: str, *, seed: int = 7, tif: bool = False) -> Path:
    items = "[]"
    steps = f"      - chip: {chip}\n"
    if tif:
        path = folder / "scene.tif"
        profile = {"driver": "GTiff", "width": 32, "height": 32, "count": 1, "dtype": "float32"}
        profile |= {"crs": "EPSG:32631", "transform": Affine(10, 0, 500_000, 0, -10, 5_000_000)}
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(np.arange(32 * 32, dtype="float32").reshape(1, 32, 32))
        items = "[./scene.tif]"
        steps = "      - read_raster: {}\n" + steps
    body = f"version: 1\nname: x\nseed: {seed}\ninputs:\n  main:\n    source: {{items: {items}}}\n    steps:\n{steps}"
    file = folder / "recipe.yaml"
    file.write_text(body)
    return file


def chip_of(path: Path) -> Any:
    return load_recipe(path).build()


def key(stage: Any) -> str:
    return digest_json(describe_stage(stage))


@pytest.mark.parametrize(
    ("chip", "shuffled", "buffer", "seed", "before"),
    [
        ("{size: 4}", False, 1024, 7, "seed=7"),  # the recipe's seed is kept (it was in the key)
        ("{size: 4, shuffle: false}", False, 1024, 7, "seed=7"),
        ("{size: 4, shuffle: true}", True, 1024, 7, "shuffle=True, seed=7"),
        ("{size: 4, shuffle: {seed: 7}}", True, 1024, 7, "shuffle=True, seed=7"),
        ("{size: 4, shuffle: {buffer: 8}}", True, 8, 7, None),
        ("{size: 4, shuffle: {buffer: 8, seed: 3}}", True, 8, 3, "shuffle=True, shuffle_buffer=8, seed=3"),
    ],
)
def test_the_recipes_seed_goes_into_the_shuffle(
    tmp_path: Path, chip: str, shuffled: bool, buffer: int, seed: int, before: str | None
) -> None:
    stage = chip_of(recipe(tmp_path, chip))
    assert (stage.shuffled, stage.shuffle_buffer, stage.seed) == (shuffled, buffer, seed)
    if before is not None:
        assert key(stage) == BEFORE[before]


@pytest.mark.parametrize(
    ("chip", "new", "before"),
    [
        ("{size: 4, shuffle: true, seed: 3, shuffle_buffer: 8}", "shuffle: {buffer: 8, seed: 3}", None),
        ("{size: 4, shuffle: true, shuffle_buffer: 8, seed: 3}", "shuffle: {buffer: 8, seed: 3}", None),
        ("{size: 4, seed: 5}", "without a shuffle they do nothing", "seed=5"),
        ("{size: 4, shuffle: true}", None, "shuffle=True, seed=7"),
        (
            "{size: 4, block_cache_bytes: 1024, read_ahead: 0}",
            "reads: {block_cache_bytes: 1024, read_ahead: 0}",
            None,
        ),
    ],
)
def test_old_chip_keys_load_with_a_warning_naming_the_line_and_keep_their_key(
    tmp_path: Path, chip: str, new: str | None, before: str | None
) -> None:
    path = recipe(tmp_path, chip)
    if new is None:
        stage = chip_of(path)  # no old key: no warning (the filter makes one an error)
    else:
        with pytest.warns(TerrapipeDeprecationWarning, match=r"recipe\.yaml, line 8") as seen:
            loaded = load_recipe(path)
        assert new in str(seen[0].message)
        assert "deprecated" in str(seen[0].message)
        stage = loaded.build()  # built without a second warning
    if before is not None:
        assert key(stage) == BEFORE[before]
    if "seed: 3" in chip:
        assert key(stage) == BEFORE["shuffle=True, shuffle_buffer=8, seed=3"]
    if "read_ahead" in chip:
        assert stage.reads == Reads(block_cache_bytes=1024, read_ahead=0)


def test_old_and_new_keys_give_the_same_chips(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.warns(TerrapipeDeprecationWarning):
        old = load_recipe(recipe(tmp_path / "a", "{size: 4, shuffle: true, shuffle_buffer: 8}", tif=True))
    new = load_recipe(recipe(tmp_path / "b", "{size: 4, shuffle: {buffer: 8}}", tif=True))
    first = [float(c.values[0, 0, 0]) for c in old.build()]
    assert first == [float(c.values[0, 0, 0]) for c in new.build()]
    assert sorted(first) != first  # shuffled, with the recipe's seed
    plain = load_recipe(recipe(tmp_path / "b", "{size: 4, shuffle: {buffer: 8, seed: 8}}", seed=8, tif=True))
    other = load_recipe(recipe(tmp_path / "a", "{size: 4, shuffle: {buffer: 8}}", seed=8, tif=True))
    assert [float(c.values[0, 0, 0]) for c in plain.build()] == [
        float(c.values[0, 0, 0]) for c in other.build()
    ]


@pytest.mark.parametrize(
    ("chip", "match"),
    [
        ("{size: 4, shuffle: {seed: 3}, seed: 3}", "not also seed= or shuffle_buffer="),
        ("{size: 4, shuffle: true, shuffle_buffer: 0}", "shuffle_buffer must be an int >= 1"),
        ("{size: 4, shuffle: {sead: 3}}", "unknown field"),
        ("{size: 4, reads: {workers: 3}}", "workers="),
        ("{size: 4, shufle: true}", "did you mean 'shuffle'"),
    ],
)
def test_bad_chip_keys_name_the_recipe_line(tmp_path: Path, chip: str, match: str) -> None:
    path = recipe(tmp_path, chip)
    with pytest.raises(RecipeError, match=match) as info:  # before any warning
        load_recipe(path).build()
    assert "recipe.yaml, line 8" in str(info.value)


def test_a_window_shuffle_value_is_what_the_chip_gets(tmp_path: Path) -> None:
    stage = chip_of(recipe(tmp_path, "{size: 4, shuffle: {buffer: 16, seed: 2}}"))
    assert stage.shuffle_given == WindowShuffle(buffer=16, seed=2)
