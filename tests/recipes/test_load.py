"""Loading and checking recipes: schema, stages, keys, types, references, env variables, paths."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import terrapipe as tp
from terrapipe.core.errors import RecipeError
from terrapipe.recipes import load_recipe, mermaid


def write(tmp_path: Path, body: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


TINY = """
version: 1
name: tiny
seed: 3
inputs:
  main:
    source: {items: [5, 6, 7, 8]}
    steps:
      - header: {limit: 3}
loader: {batch_size: 2}
"""


def test_round_trip_build_and_loader(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, TINY))
    assert (recipe.name, recipe.seed, recipe.output) == ("tiny", 3, "main")
    assert list(recipe.build()) == [5, 6, 7]
    loader = recipe.loader()
    assert [list(map(int, b)) for b in loader] == [[5, 6], [7]]


def test_functions_and_inputs(tmp_path: Path) -> None:
    body = """
    version: 1
    name: pairs
    inputs:
      main:
        source: {items: [1, 2]}
        steps:
          - zip: {args: [{$input: other}]}
          - map: {fn: {name_pair: {names: [a, b]}}}
          - filter: {filter_fn: {nonempty: {key: b}}}
      other:
        source: {items: [[9], []]}
    """
    recipe = load_recipe(write(tmp_path, body))
    assert list(recipe.build()) == [{"a": 1, "b": [9]}]
    text = mermaid(recipe)
    assert "other_source --> main_0" in text
    assert "main_2 --> loader" in text


def test_env_and_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TP_TEST_NAME", "file.tif")
    body = """
    version: 1
    name: paths
    inputs:
      main:
        source: {items: ["./data/${TP_TEST_NAME}", "../up.tif", "s3://b/${TP_TEST_NAME}", "plain.tif"]}
    """
    (tmp_path / "sub").mkdir()
    recipe = load_recipe(write(tmp_path / "sub", body), allow_env={"TP_TEST_NAME"})
    assert list(recipe.build()) == [
        str(tmp_path / "sub" / "data" / "file.tif"),
        str(tmp_path / "up.tif"),
        "s3://b/file.tif",
        "plain.tif",
    ]


def test_seed_goes_to_steps_that_take_one(tmp_path: Path) -> None:
    body = "version: 1\nname: x\nseed: 7\ninputs:\n  main:\n    source: {items: []}\n    steps:\n      - chip: {size: 4}\n      - sample_windows: {size: 4, n: 2, seed: 2}\n"
    pipe = load_recipe(write(tmp_path, body)).build()
    assert (pipe.seed, pipe.source.seed) == (2, 7)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "version: 1\nname: x\ninputs: {main: {source: {items: [1]}, steps: [{headr: {limit: 1}}]}}\n",
            "line 3: input 'main', step 0 (headr): unknown stage 'headr'; did you mean 'header'?",
        ),
        (
            "version: 1\nname: x\ninputs:\n  main:\n    source: {items: [1]}\n    steps:\n      - header: {limt: 1}\n",
            "line 7: input 'main', step 0 (header): unknown key 'limt'",
        ),
        (
            "version: 1\nname: x\ninputs:\n  main:\n    source: {items: [1]}\n    steps:\n      - header:\n          limit: two\n",
            "line 8: input 'main', step 0 (header): 'limit' must be int, got 'two' (str)",
        ),
        (
            "version: 1\nname: x\ninputs:\n  main:\n    source: {items: [1]}\n    steps:\n      - header: {}\n",
            "line 7: input 'main', step 0 (header): missing required key 'limit'",
        ),
        (
            "version: 1\nname: x\ninputs:\n  main:\n    source: {items: [1]}\n    steps:\n      - map: {fn: os.system}\n",
            "'os.system' is not a recipe function",
        ),
        (
            "version: 1\nname: x\ninputs:\n  main:\n    source: {items: [1]}\n    steps:\n      - map: {fn: [1]}\n",
            "fn must name a recipe function",
        ),
        (
            "version: 1\nname: x\ninputs:\n  main:\n    source: {items: [1]}\n    steps:\n      - zip: {args: [{$input: nope}]}\n",
            "line 7: $input 'nope' is not an input",
        ),
        (
            "version: 1\nname: x\ninputs:\n  main:\n    source: {sample_world: nope}\n",
            "line 5: unknown sample-world file 'nope'",
        ),
        (
            "version: 1\nname: x\ninputs:\n  main:\n    source: {items: [1]}\nloader: {collate: foo}\n",
            "line 6: loader: 'collate' takes code",
        ),
        (
            "version: 1\nname: x\ninputs:\n  main:\n    source: {items: [1]}\nloader: {batch_size: big}\n",
            "line 6: loader: 'batch_size' must be int | None, got 'big'",
        ),
        (
            "version: 2\nname: x\ninputs: {main: {source: {items: [1]}}}\n",
            "line 1: version: this recipe is written for recipe format 2, newer than this terrapipe's (1); upgrade terrapipe",
        ),
        (
            "version: 1\nname: x\nextra: 1\ninputs: {main: {source: {items: [1]}}}\n",
            "line 3: extra: unknown key",
        ),
        ("version: 1\nname: x\ninputs: {main: {source: {}}}\n", "a source is exactly one of"),
        (
            "version: 1\nname: x\noutput: y\ninputs: {main: {source: {items: [1]}}}\n",
            "output 'y' is not an input",
        ),
        (
            "version: 1\nname: x\ninputs:\n  main: {source: {items: [1]}, steps: [{zip: {args: [{$input: b}]}}]}\n  b: {source: {items: [1]}, steps: [{zip: {args: [{$input: main}]}}]}\n",
            "cycle: main -> b -> main",
        ),
        (
            "version: 1\nname: x\ninputs:\n  main:\n    source: {items: [1]}\n    steps: [{header: {limit: 1}, map: {fn: scale}}]\n",
            "a step is one stage name",
        ),
        ("version: 1\nname: [unclosed\n", "line 3: not valid YAML"),
        ("- 1\n- 2\n", "a recipe is a mapping"),
        (
            "version: 1\nname: x\ninputs:\n  main:\n    source: {items: [1]}\n    steps:\n      - search_stac: {modifier: x, source: y}\n",
            "'modifier' takes code",
        ),
    ],
)
def test_errors_name_the_line_step_and_key(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value) or "cycle" in expected


def test_missing_file_and_bundled_name(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"cannot read recipe .*nope\.yaml"):
        load_recipe(tmp_path / "nope.yaml")
    assert load_recipe("climate-forecasting").name == "climate-forecasting"


def test_missing_env_names_the_variable_never_a_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TP_TEST_MISSING", raising=False)
    body = 'version: 1\nname: x\ninputs:\n  main:\n    source: {items: ["${TP_TEST_MISSING}"]}\n'
    with pytest.raises(RecipeError, match=r"line 5: environment variable TP_TEST_MISSING is not set"):
        load_recipe(write(tmp_path, body))


def test_secret_from_env_is_not_echoed_in_stage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TP_TEST_SECRET", "hunter2-token")
    body = 'version: 1\nname: x\ninputs:\n  main:\n    source: {items: [1]}\n    steps:\n      - header: {limit: -1}\n      - map: {fn: {drop_keys: {keys: ["${TP_TEST_SECRET}"]}}}\n'
    recipe = load_recipe(write(tmp_path, body), allow_env={"TP_TEST_SECRET"})
    assert "hunter2" not in repr(recipe)
    with pytest.raises(RecipeError) as info:
        recipe.build()
    assert "line 7: input 'main', step 0 (header)" in str(info.value)
    assert recipe.scrub("bad value hunter2-token") == "bad value ${TP_TEST_SECRET}"


def test_torch_dtype_strings_and_bad_dtype(tmp_path: Path) -> None:
    import torch

    body = "version: 1\nname: x\ninputs:\n  main:\n    source: {items: []}\n    steps:\n      - to_tensor: {dtype: float16}\n"
    pipe = load_recipe(write(tmp_path, body)).build()
    assert pipe.converter.dtype is torch.float16
    with pytest.raises(RecipeError, match="line 7: 'nope' is not a torch dtype"):
        load_recipe(write(tmp_path, body.replace("float16", "nope"))).build()


def test_stage_rejecting_its_arguments_names_the_step(tmp_path: Path) -> None:
    body = "version: 1\nname: x\ninputs:\n  main:\n    source: {items: []}\n    steps:\n      - to_tensor: {}\n      - chip: {size: 0}\n"
    with pytest.raises(RecipeError, match=r"line 8: input 'main', step 1 \(chip\): "):
        load_recipe(write(tmp_path, body)).build()


def test_public_name() -> None:
    import terrapipe.recipes

    assert terrapipe.recipes.load_recipe is load_recipe
    assert isinstance(tp.RecipeError("x"), ValueError)
