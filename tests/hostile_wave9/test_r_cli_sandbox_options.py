"""``--allow-env`` and ``--root`` values that cannot be right are usage errors (exit 2), named as options.

``--allow-env 'BAD NAME'`` (or ``'${TOKEN}'``, the form a user copies from
the recipe) failed with exit 1 and "load_recipe: allow_env= takes variable
names", followed by the hint "fix the recipe at the line shown": the recipe
was not at fault. ``--root`` naming a file was taken until the first write.
Both are ``Invalid value for '--allow-env'`` / ``'--root'`` now, exit 2,
with the command's ``--help`` as the hint, for every command that takes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from terrapipe.cli import build_app

RECIPE = "version: 1\nname: x\ninputs:\n  main:\n    source: {items: [1]}\n"


@pytest.fixture(scope="module")
def app() -> Any:
    return build_app()


@pytest.fixture
def recipe(tmp_path: Path) -> str:
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE, encoding="utf-8")
    return str(path)


COMMANDS = {
    "run": ["run", "--no-progress"],
    "preview": ["preview", "--out", "p.png"],
    "bench": ["bench", "--n", "1"],
    "graph": ["graph"],
}


@pytest.mark.parametrize("name", ["BAD NAME", "${PC_TOKEN}", "1X", "A-B", ""])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_bad_variable_name_is_a_usage_error(app: Any, recipe: str, command: str, name: str) -> None:
    head, *rest = COMMANDS[command]
    result = CliRunner().invoke(app, [head, recipe, *rest, "--allow-env", name])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("error: Invalid value for '--allow-env'"), result.output
    assert lines[1] == f"hint: see `terrapipe {head} --help`"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_root_that_is_a_file_is_a_usage_error(app: Any, recipe: str, command: str) -> None:
    head, *rest = COMMANDS[command]
    result = CliRunner().invoke(app, [head, recipe, *rest, "--root", recipe])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--root'" in result.output
    assert "is a file" in result.output


def test_good_names_and_a_new_root_folder_still_run(app: Any, recipe: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["graph", recipe, "--allow-env", "PC_TOKEN", "--allow-env", "_x1", "--root", str(tmp_path / "new")],
    )
    assert result.exit_code == 0, result.output
    assert "flowchart" in result.output
