"""An input a recipe reads twice is refused when the recipe is loaded, never halfway through a run.

Each input is built once, and a pipe is read by one consumer at a time:
``zip: {args: [{$input: a}, {$input: a}]}`` (or two steps each zipping in
``a``) loaded fine, then the run stopped with a ``ConcurrentIterationError``
whose hint (``.fork()``) a recipe cannot follow. It is a ``RecipeError``
naming the input and the lines now. An input read once, or only by inputs
the output does not reach, still loads and runs.
"""

from __future__ import annotations

import pytest

from terrapipe.core.errors import RecipeError
from terrapipe.recipes import load_recipe

HEAD = "version: 1\nname: z\ninputs:\n  a:\n    source: {items: [1, 2, 3]}\n"


def test_the_same_input_twice_in_one_step_is_refused() -> None:
    text = (
        HEAD
        + "  main:\n    source: {items: [10, 20, 30]}\n    steps: [{zip: {args: [{$input: a}, {$input: a}]}}]\n"
    )
    with pytest.raises(RecipeError, match=r"r.yaml, line 8: input 'a' is read 2 times \(line 8, line 8\)"):
        load_recipe(text=text, path="r.yaml")


def test_the_same_input_in_two_inputs_is_refused() -> None:
    text = (
        HEAD
        + "  b:\n    source: {items: [5, 6, 7]}\n    steps: [{zip: {args: [{$input: a}]}}]\n"
        + "  main:\n    source: {items: [10, 20, 30]}\n    steps: [{zip: {args: [{$input: a}, {$input: b}]}}]\n"
    )
    with pytest.raises(RecipeError, match=r"input 'a' is read 2 times"):
        load_recipe(text=text, path="r.yaml")


def test_inputs_read_once_load_and_run() -> None:
    text = (
        HEAD
        + "  b:\n    source: {items: [5, 6, 7]}\n    steps: [{zip: {args: [{$input: a}]}}]\n"
        + "  main:\n    source: {items: [10, 20, 30]}\n    steps: [{zip: {args: [{$input: b}]}}]\n"
        + "  unused:\n    source: {items: [0]}\n    steps: [{zip: {args: [{$input: a}]}}]\n"
    )
    assert list(load_recipe(text=text).build()) == [(10, (5, 1)), (20, (6, 2)), (30, (7, 3))]
