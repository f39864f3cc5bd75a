"""Recipe functions refuse the values that gave silently wrong tensors, when the recipe is loaded and when run.

``normalize: {mean: [0], std: [0]}`` divided by zero (every pixel ``inf``
or NaN); a ``mean``/``std`` of 3 values on a 1-channel image broadcast it
to 3 channels; ``scale: {factor: .nan}`` or ``.inf`` made every pixel NaN
or infinite; ``select_channels: {channels: [-1]}`` took the last channel
by negative indexing, and a channel past the last raised a bare
``IndexError``. Each is a ``RecipeError`` at the line when the recipe is
loaded (values alone), or an ``InvalidArgumentError`` when a sample does
not fit (channel counts), for recipes and Python callers alike.
"""

from __future__ import annotations

import pytest
import torch

from terrapipe.core.errors import InvalidArgumentError, RecipeError
from terrapipe.recipes import load_recipe
from terrapipe.recipes.functions import normalize, scale, select_channels

HEAD = "version: 1\nname: f\ninputs:\n  main:\n    source: {items: [1]}\n"


@pytest.mark.parametrize(
    ("function", "problem"),
    [
        ("{normalize: {mean: [0, 0], std: [1, 0]}}", "std must be finite numbers other than 0"),
        ("{normalize: {mean: [.nan], std: [1]}}", "mean must be finite numbers"),
        ("{normalize: {mean: [0, 0, 0], std: [1]}}", "mean and std must have one value per channel each"),
        ("{scale: {factor: .nan}}", "factor must be a finite number"),
        ("{scale: {factor: .inf}}", "factor must be a finite number"),
        ("{select_channels: {channels: [0, -1]}}", "channels are counted from 0"),
        ("{coarsen: {factor: 0}}", "factor must be a whole number >= 1"),
        ("{coarsen: {factor: 2, method: sum}}", "method must be one of mean, min, max, median"),
    ],
)
def test_values_that_make_wrong_tensors_are_refused_when_loaded(function: str, problem: str) -> None:
    text = f"{HEAD}    steps: [{{map: {{fn: {function}}}}}]\n"
    with pytest.raises(
        RecipeError, match=rf"r.yaml, line 6: input 'main', step 0 \(map\): function '\w+': {problem}"
    ):
        load_recipe(text=text, path="r.yaml")


def test_good_values_load() -> None:
    text = f"{HEAD}    steps: [{{map: {{fn: {{normalize: {{mean: [0, 1], std: [1, 2]}}}}}}}}]\n"
    assert load_recipe(text=text).inputs["main"][1][0].stage == "map"


def test_a_channel_count_the_values_do_not_fit_is_refused_when_run() -> None:
    one_channel = {"image": torch.ones(1, 2, 2)}
    with pytest.raises(InvalidArgumentError, match="3 values per channel for an image of 1 channel"):
        normalize(one_channel, mean=[0, 0, 0], std=[1, 1, 1])
    assert normalize(one_channel, mean=[1], std=[2])["image"].shape == (1, 2, 2)  # one for all: as before
    with pytest.raises(InvalidArgumentError, match="asks for channel 3 of an image of 2"):
        select_channels({"image": torch.ones(2, 2, 2)}, channels=[0, 3])
    with pytest.raises(InvalidArgumentError, match="counted from 0"):
        select_channels({"image": torch.ones(2, 2, 2)}, channels=[-1])
    with pytest.raises(InvalidArgumentError, match="std must be finite numbers other than 0"):
        normalize({"image": torch.ones(2, 2, 2)}, mean=[0, 0], std=[1, 0])
    with pytest.raises(InvalidArgumentError, match="finite"):
        scale({"image": torch.ones(1)}, factor=float("inf"))
