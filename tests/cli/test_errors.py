"""Every error path of ``terrapipe`` through typer's runner: one line, a hint, a non-zero exit code.

Terrapipe errors (and errors a recipe function raises) exit with 1 and show
their traceback with ``--verbose``; usage errors (bad option values,
unknown commands or options, a missing argument) exit with 2 and name the
``--help`` to read.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from terrapipe.cli import build_app, main

HEAD = "version: 1\nname: x\ninputs:\n  main:\n    source: {items: [1]}\n"


@pytest.fixture(scope="module")
def app() -> Any:
    return build_app()


def invoke(app: Any, *args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def recipe(tmp_path: Path, body: str, name: str = "recipe") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(body, encoding="utf-8")
    return str(path)


def assert_one_line(result: Any, expected: str, hint: str) -> list[str]:
    lines = result.output.strip().splitlines()
    assert len(lines) == 2, result.output
    assert lines[0].startswith("error: "), result.output
    assert expected in lines[0], result.output
    assert lines[1].startswith("hint: "), result.output
    assert hint in lines[1], result.output
    assert "Traceback" not in result.output
    return lines


# name -> (arguments given a tmp folder, expected text of the error line, expected text of the hint)
Case = tuple[Callable[[Path], list[str]], str, str]

ERRORS: dict[str, Case] = {
    "missing file": (
        lambda t: ["run", str(t / "nope.yaml")],
        "cannot read recipe",
        "bundled recipe's name",
    ),
    "unknown bundled name": (
        lambda t: ["run", "no-such-recipe"],
        "no bundled recipe has that name (bundled: building-detection",
        "`terrapipe recipes` lists them",
    ),
    "folder as recipe": (lambda t: ["graph", str(t)], "cannot read recipe", "recipe file"),
    "bad yaml": (lambda t: ["run", recipe(t, "version: 1\nname: [x\n")], "not valid YAML", "fix the recipe"),
    "schema": (
        lambda t: ["run", recipe(t, HEAD.replace("version: 1", "version: 2"))],
        "version: this recipe is written for recipe format 2",
        "fix the recipe",
    ),
    "unknown stage": (
        lambda t: ["graph", recipe(t, HEAD + "    steps: [{nosuch: {}}]\n")],
        "unknown stage 'nosuch'",
        "`terrapipe recipes --stages`",
    ),
    "wrong arg": (
        lambda t: ["run", recipe(t, HEAD + "    steps: [{header: {lim: 1}}]\n")],
        "unknown key 'lim'",
        "fix the recipe",
    ),
    "wrong type": (
        lambda t: ["bench", recipe(t, HEAD + "    steps: [{header: {limit: x}}]\n")],
        "'limit' must be int",
        "fix the recipe",
    ),
    "bad stage value": (
        lambda t: ["run", recipe(t, HEAD + "    steps: [{header: {limit: -1}}]\n")],
        "step 0 (header)",
        "fix the recipe",
    ),
    "env missing": (
        lambda t: [
            "preview",
            recipe(t, HEAD.replace("[1]", "['${TP_CLI_UNSET}']")),
            "--out",
            str(t / "p.png"),
        ],
        "TP_CLI_UNSET is not set",
        "fix the recipe",
    ),
    "not a png": (
        lambda t: ["preview", recipe(t, HEAD), "--out", str(t / "p.jpg")],
        "--out must end in .png",
        "--verbose",
    ),
    "nothing to show": (
        lambda t: ["preview", recipe(t, HEAD), "--out", str(t / "p.png")],
        "preview needs samples",
        "--verbose",
    ),
    "read error while running": (
        lambda t: [
            "run",
            recipe(t, HEAD.replace("[1]", f"['{t / 'missing.tif'}']") + "    steps: [{read_raster: {}}]\n"),
            "--no-progress",
        ],
        "cannot open raster",
        "check the file or URL",
    ),
    "function raises": (
        lambda t: [
            "run",
            recipe(t, HEAD + "    steps: [{map: {fn: {name_pair: {names: [a, b]}}}}]\n"),
            "--no-progress",
        ],
        "TypeError: object of type 'int' has no len()",
        "not from terrapipe's checks",
    ),
    "not a sample world": (
        lambda t: ["run", "landcover-segmentation", "--world", str(t), "--limit", "1", "--no-progress"],
        "holds no sample world",
        "--verbose",
    ),
}

USAGE_ERRORS: dict[str, Case] = {
    "limit zero": (
        lambda t: ["run", recipe(t, HEAD), "--limit", "0"],
        "Invalid value for '--limit'",
        "`terrapipe run --help`",
    ),
    "limit not a number": (
        lambda t: ["run", recipe(t, HEAD), "--limit", "many"],
        "Invalid value for '--limit'",
        "`terrapipe run --help`",
    ),
    "negative workers": (
        lambda t: ["run", recipe(t, HEAD), "--workers", "-1"],
        "Invalid value for '--workers'",
        "`terrapipe run --help`",
    ),
    "preview n zero": (
        lambda t: ["preview", recipe(t, HEAD), "--n", "0"],
        "Invalid value for '--n'",
        "`terrapipe preview --help`",
    ),
    "unknown option": (
        lambda t: ["bench", recipe(t, HEAD), "--bogus"],
        "No such option: --bogus",
        "`terrapipe bench --help`",
    ),
    "missing recipe": (lambda t: ["graph"], "Missing argument 'recipe'", "`terrapipe graph --help`"),
    "unknown command": (lambda t: ["frobnicate"], "No such command 'frobnicate'", "`terrapipe --help`"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors_are_one_line_and_a_hint(
    app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    monkeypatch.delenv("TP_CLI_UNSET", raising=False)
    (tmp_path / "not-a-world.txt").write_text("x", encoding="utf-8")
    make_args, expected, hint = ERRORS[case]
    args = make_args(tmp_path)
    result = invoke(app, *args)
    assert result.exit_code == 1, result.output
    assert_one_line(result, expected, hint)
    assert "--verbose" in result.output
    verbose = invoke(app, "--verbose", *args)
    assert verbose.exit_code == 1
    assert "Traceback (most recent call last)" in verbose.output
    assert expected.split(": ", 1)[-1] in verbose.output


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_usage_errors_are_one_line_and_a_hint(app: Any, tmp_path: Path, case: str) -> None:
    make_args, expected, hint = USAGE_ERRORS[case]
    result = invoke(app, *make_args(tmp_path))
    assert result.exit_code == 2, result.output
    assert_one_line(result, expected, hint)
    assert "Usage:" not in result.output


def test_missing_extra_names_the_extra(app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = "version: 1\nname: x\ninputs:\n  main:\n    source: {items: [1]}\n"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    args = ["preview", recipe(tmp_path, body), "--out", str(tmp_path / "p.png")]
    result = invoke(app, *args)
    assert result.exit_code == 1, result.output
    assert_one_line(result, "needs the Python package 'matplotlib'", "install the extra")
    assert "pip install 'terrapipe[cli]'" in result.output
    verbose = invoke(app, "--verbose", *args)
    assert "Traceback (most recent call last)" in verbose.output


def test_command_without_typer(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "typer", None)
    with pytest.raises(SystemExit) as exit_info:
        main(["recipes"])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("error: the terrapipe command needs the Python package 'typer'")
    assert "pip install 'terrapipe[cli]'" in lines[0]
    assert lines[1].startswith("hint: install the extra")


def test_no_arguments_shows_the_help(app: Any) -> None:
    result = invoke(app)
    assert result.exit_code == 2
    assert "Usage" in result.output
    for command in ("run", "preview", "bench", "graph", "recipes"):
        assert command in result.output


def test_help_and_success_exit_zero(app: Any, tmp_path: Path) -> None:
    assert invoke(app, "run", "--help").exit_code == 0
    ok = invoke(app, "run", recipe(tmp_path, HEAD), "--no-progress")
    assert ok.exit_code == 0, ok.output
    assert "error:" not in ok.output


def test_main_exits_with_the_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(tmp_path / "nope.yaml")])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.startswith("error: cannot read recipe")
    with pytest.raises(SystemExit) as usage:
        main(["run", "x.yaml", "--limit", "0"])
    assert usage.value.code == 2
    main(["graph", "change-detection"])  # success returns normally
    assert capsys.readouterr().out.startswith("flowchart LR")
