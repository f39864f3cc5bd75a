"""Every bundled recipe loads, builds and yields samples on the sample world."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch

from terrapipe.recipes import bundled_recipes, load_recipe, mermaid

EXPECTED: dict[str, dict[str, tuple[int, ...]]] = {
    "landcover-segmentation": {"image": (5, 128, 128), "mask": (128, 128)},
    "building-detection": {"image": (3, 128, 128)},
    "change-detection": {"image": (8, 128, 128)},
    "multi-resolution": {},
    "climate-forecasting": {},
}


def test_the_five_recipes_are_bundled() -> None:
    assert sorted(bundled_recipes()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundled_recipe_yields_samples(name: str, sample_world: Any) -> None:
    recipe = load_recipe(name)
    samples = list(itertools.islice(recipe.build(sample_world), 2))
    assert len(samples) == 2
    first = samples[0]
    for key, shape in EXPECTED[name].items():
        assert tuple(first[key].shape) == shape, key
    if name == "building-detection":
        assert all(len(s["boxes"]) > 0 and s["boxes"].shape[1] == 4 for s in samples)
        assert first["labels"].shape == (len(first["boxes"]),)
    if name == "change-detection":
        assert all((s["image"] != 0).all(dim=0).float().mean() >= 0.9 for s in samples)
    if name == "multi-resolution":
        fine, coarse = first["fine"], first["coarse"]
        assert tuple(fine["image"].shape) == (4, 128, 128)
        assert tuple(coarse["image"].shape) == (4, 32, 32)
        assert fine["meta"]["bounds"] == pytest.approx(coarse["meta"]["bounds"])
    if name == "climate-forecasting":
        assert {k: tuple(v.shape) for k, v in first["variables"].items()} == {
            "t2m": (12, 16, 16),
            "u10": (12, 16, 16),
            "v10": (12, 16, 16),
        }
        assert first["meta"]["coords"] != samples[1]["meta"]["coords"]
    if "image" in first:
        assert first["image"].dtype == torch.float32
        assert first["meta"]["crs"] == "EPSG:32631"
    assert "flowchart LR" in mermaid(recipe)


def test_bundled_loader_batches(sample_world: Any) -> None:
    recipe = load_recipe("landcover-segmentation")
    batch = next(iter(recipe.loader(sample_world, workers=0)))
    assert tuple(batch["image"].shape) == (4, 5, 128, 128)
    assert tuple(batch["mask"].shape) == (4, 128, 128)
