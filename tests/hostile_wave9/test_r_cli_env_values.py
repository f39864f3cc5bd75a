"""What ``terrapipe run``/``preview``/``bench`` print never holds the value of a recipe's ``${NAME}``.

Promised by :mod:`terrapipe.recipes.values`: a value that came from an
environment variable the user allowed is shown as ``${NAME}`` in messages.
The recipe's own checks kept it; the errors and warnings of the stages,
raised while the pipe runs, printed the value (a token in a path or URL
came back whole in a ``ReadError`` or a ``SkippedElementWarning``). Every
command that runs a pipe is tried, raising and warning, with and without
``--verbose`` (tracebacks with their causes).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from terrapipe.cli import build_app
from terrapipe.recipes.scrubbing import scrub_error

SECRET = "tok-R9-5ecr3t-value"
NAME = "TP_R9_TOKEN"


@pytest.fixture(scope="module")
def app() -> Any:
    return build_app()


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, SECRET)


def recipe(tmp_path: Path, on_error: str) -> str:
    """A recipe reading a missing file whose path holds the token (a path segment: no URL redaction hides it)."""
    body = (
        "version: 1\nname: leak\ninputs:\n  main:\n"
        f"    source: {{items: ['./${{{NAME}}}/missing.tif']}}\n"
        f"    steps: [{{read_raster: {{on_error: {on_error}}}}}]\n"
    )
    path = tmp_path / "recipe.yaml"
    path.write_text(body, encoding="utf-8")
    return str(path)


def run(app: Any, *args: str) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(app, list(args))
    return result, [str(w.message) for w in caught]


COMMANDS = {
    "run": lambda t: ["run", "--no-progress"],
    "preview": lambda t: ["preview", "--out", str(t / "p.png")],
    "bench": lambda t: ["bench", "--n", "2"],
}


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_failing_read_names_the_variable_not_its_value(
    app: Any, tmp_path: Path, command: str, verbose: bool
) -> None:
    head, *rest = COMMANDS[command](tmp_path)
    args = ["--verbose"] if verbose else []
    result, shown = run(app, *args, head, recipe(tmp_path, "raise"), *rest, "--allow-env", NAME)
    text = result.output + "".join(shown)
    if verbose and result.exception is not None and not isinstance(result.exception, SystemExit):
        text += str(result.exception)
    assert result.exit_code == 1, result.output
    assert SECRET not in text
    assert f"${{{NAME}}}" in text  # the place is still named
    assert "missing.tif" in text


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_skipped_element_warnings_name_the_variable_not_its_value(
    app: Any, tmp_path: Path, command: str
) -> None:
    head, *rest = COMMANDS[command](tmp_path)
    result, shown = run(app, head, recipe(tmp_path, "warn"), *rest, "--allow-env", NAME)
    assert any("missing.tif" in s for s in shown), (result.output, shown)
    assert not [s for s in shown if SECRET in s]
    assert SECRET not in result.output


def test_causes_and_file_names_are_scrubbed_or_cut() -> None:
    def scrub(text: str) -> str:
        return text.replace(SECRET, f"${{{NAME}}}")

    inner = OSError(2, "No such file", f"/data/{SECRET}/a.tif")
    outer = RuntimeError(f"open failed for /data/{SECRET}/a.tif")
    outer.__cause__ = inner
    assert scrub_error(outer, scrub) is outer
    assert SECRET not in str(outer)
    assert SECRET not in str(inner)

    class FixedTextError(Exception):
        def __str__(self) -> str:
            return f"always /data/{SECRET}"

    wrapper = ValueError("clean")
    wrapper.__cause__ = FixedTextError()
    assert scrub_error(wrapper, scrub) is wrapper
    assert wrapper.__cause__ is None
    replaced = scrub_error(FixedTextError(), scrub)
    assert type(replaced).__name__ == "RecipeError"
    assert SECRET not in str(replaced)
