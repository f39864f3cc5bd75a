"""A recipe's ``version:`` is the integer 1 (a newer format says to upgrade); its ``seed`` fits the generators.

``version: true`` and ``version: 1.0`` were read as format 1 (the schema's
``Literal[1]`` compares by equality, and ``True == 1.0 == 1``), so a recipe
of another type passed unchecked; ``version: 2`` said only "Input should be
1". A recipe from a newer terrapipe must say so, and what to do.
"""

from __future__ import annotations

import pytest

from terrapipe.core.errors import RecipeError
from terrapipe.recipes import load_recipe

BODY = "name: x\ninputs:\n  main:\n    source: {items: [1]}\n"


@pytest.mark.parametrize(
    "value", ["true", "false", "1.0", "'1'", "[1]", "null", "0x1"], ids=lambda v: f"version={v}"
)
def test_a_version_that_is_not_the_integer_1_is_refused(value: str) -> None:
    text = f"version: {value}\n{BODY}"
    if value == "0x1":  # YAML 1.1's hexadecimal integer: the integer 1, as PyYAML reads it
        assert load_recipe(text=text).inputs
        return
    with pytest.raises(RecipeError, match=r"line 1: version: "):
        load_recipe(text=text, path="r.yaml")


@pytest.mark.parametrize("value", ["2", "99", str(10**30)])
def test_a_newer_format_says_to_upgrade(value: str) -> None:
    with pytest.raises(RecipeError) as caught:
        load_recipe(text=f"version: {value}\n{BODY}", path="r.yaml")
    text = str(caught.value)
    assert text.startswith(f"r.yaml, line 1: version: this recipe is written for recipe format {value}")
    assert "upgrade terrapipe" in text
    assert "Value error" not in text


@pytest.mark.parametrize("value", ["0", "-1"])
def test_an_older_or_negative_format_is_named(value: str) -> None:
    with pytest.raises(
        RecipeError, match=rf"line 1: version: {value} is not a recipe format; write version: 1"
    ):
        load_recipe(text=f"version: {value}\n{BODY}", path="r.yaml")


@pytest.mark.parametrize("seed", ["-1", str(2**64), str(10**30)])
def test_a_seed_the_generators_would_wrap_is_refused(seed: str) -> None:
    """A seed outside 0 .. 2**64 - 1 was taken modulo 2**64: -1 shuffled as 2**64 - 1, 2**64 + 1 as 1."""
    with pytest.raises(RecipeError, match=r"line 2: seed: Input should be (greater|less) than"):
        load_recipe(text=f"version: 1\nseed: {seed}\n{BODY}", path="r.yaml")


def test_seeds_in_range_load() -> None:
    assert load_recipe(text=f"version: 1\nseed: {2**64 - 1}\n{BODY}").seed == 2**64 - 1
