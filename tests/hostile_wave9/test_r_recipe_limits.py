"""A shared recipe cannot make a run wait without end or start a thread per element.

``timeout: .inf``, ``deadline: .inf``, ``retries: 1000000000`` or
``backoff: 1000000`` (in the ``storage:`` section, a ``search_stac`` source
or a ``read_zarr`` step) were taken as they were, so a recipe against a
host that does not answer ran for ever; ``workers: 100000000`` (loader,
``pmap``) started that many threads. Each is a ``RecipeError`` naming the
key and the limit now (:data:`terrapipe.recipes.values.LIMITS`), NaN too;
values up to the limit are taken. A YAML 1.1 number without a dot
(``1e3``, which PyYAML reads as text) is named as such; ``search_stac``'s
query fields are type-checked when the recipe is loaded, as every step's
keys are (they were only checked when the pipe was built).
"""

from __future__ import annotations

import pytest

from terrapipe.core.errors import RecipeError
from terrapipe.recipes import load_recipe
from terrapipe.recipes.values import LIMITS

HEAD = "version: 1\nname: t\ninputs:\n  main:\n"
ITEMS = "    source: {items: [1]}\n"
OVER = {
    "timeout": ".inf",
    "deadline": "1.0e+9",
    "backoff": "1000000",
    "max_backoff": ".nan",
    "retries": "1000000000",
}


def storage(key: str, value: str) -> str:
    return f"{HEAD}{ITEMS}storage: {{{key}: {value}}}\n"


def search(key: str, value: str) -> str:
    return f"{HEAD}    source: {{search_stac: {{catalog: 'http://127.0.0.1:9/', collections: [c], {key}: {value}}}}}\n"


def zarr(key: str, value: str) -> str:
    return f"{HEAD}{ITEMS}    steps: [{{read_zarr: {{{key}: {value}}}}}]\n"


PLACES = {"storage": storage, "search_stac": search}


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("key", sorted(OVER))
def test_a_wait_without_end_is_refused_by_name(place: str, key: str) -> None:
    with pytest.raises(
        RecipeError, match=rf"{key}'?: (nan is not a number|.* is over the most a recipe may set)"
    ):
        load_recipe(text=PLACES[place](key, OVER[key]), path="r.yaml")


@pytest.mark.parametrize("key", ["timeout", "retries", "deadline"])
def test_read_zarr_steps_are_bounded_too(key: str) -> None:
    with pytest.raises(RecipeError, match=r"step 0 \(read_zarr\): '\w+': 1000000000 is over the most"):
        load_recipe(text=zarr(key, "1000000000"), path="r.yaml")


@pytest.mark.parametrize(
    "text",
    [
        f"{HEAD}{ITEMS}loader: {{workers: 100000000}}\n",
        f"{HEAD}{ITEMS}    steps: [{{pmap: {{fn: nonempty, workers: 100000000}}}}]\n",
        f"{HEAD}{ITEMS}storage: {{concurrency: 100000000}}\n",
    ],
    ids=["loader", "pmap", "storage"],
)
def test_a_thread_per_element_is_refused(text: str) -> None:
    with pytest.raises(RecipeError, match="is over the most a recipe may set"):
        load_recipe(text=text, path="r.yaml")


def test_values_up_to_the_limits_are_taken() -> None:
    fields = ", ".join(f"{k}: {int(v)}" for k, v in LIMITS.items() if k != "workers")
    recipe = load_recipe(text=f"{HEAD}{ITEMS}storage: {{{fields}}}\nloader: {{workers: 4}}\n")
    made = recipe.storage()
    assert made.retries == LIMITS["retries"]
    assert made.timeout == LIMITS["timeout"]
    load_recipe(text=search("timeout", "60"))


def test_a_number_yaml_reads_as_text_is_named() -> None:
    with pytest.raises(RecipeError, match=r"YAML 1.1 reads '1e3' as text"):
        load_recipe(text=storage("timeout", "1e3"), path="r.yaml")


@pytest.mark.parametrize(
    ("key", "value"),
    [("max_items", "abc"), ("limit", "[1]"), ("deadline", "'soon'"), ("filter_lang", "5")],
)
def test_search_fields_of_the_wrong_type_fail_when_loaded(key: str, value: str) -> None:
    with pytest.raises(RecipeError, match=rf"line 5: source search_stac: '{key}' must be"):
        load_recipe(text=search(key, value), path="r.yaml")
