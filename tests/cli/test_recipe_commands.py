"""The recipe commands of ``terrapipe`` through typer's runner, error paths included."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from terrapipe.cli import build_app

TINY = """
version: 1
name: tiny
inputs:
  main:
    source: {items: [1, 2, 3, 4, 5]}
loader: {batch_size: 2}
"""


@pytest.fixture(scope="module")
def app() -> Any:
    return build_app()


def invoke(app: Any, *args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def test_existing_commands_are_kept(app: Any) -> None:
    result = invoke(app, "--help")
    assert result.exit_code == 0
    for command in ("demo", "sample-world", "serve-stac", "run", "preview", "bench", "graph", "recipes"):
        assert command in result.output


def test_recipes_lists_the_bundled_ones(app: Any) -> None:
    result = invoke(app, "recipes")
    assert result.exit_code == 0, result.output
    for name in (
        "landcover-segmentation",
        "building-detection",
        "change-detection",
        "climate-forecasting",
        "multi-resolution",
    ):
        assert name in result.output
    stages = invoke(app, "recipes", "--stages")
    assert stages.exit_code == 0
    assert "rasterize" in stages.output
    assert "normalize" in stages.output


def test_run_prints_a_summary(app: Any, tmp_path: Path) -> None:
    result = invoke(app, "run", str(write(tmp_path, TINY)), "--limit", "2", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "tiny: 2 batches, 4 samples" in result.output
    assert "first batch" in result.output
    full = invoke(app, "run", str(write(tmp_path, TINY)))
    assert full.exit_code == 0
    assert "3 batches, 5 samples" in full.output


def test_run_bundled_recipe(app: Any, sample_world: Any) -> None:
    result = invoke(app, "run", "climate-forecasting", "--limit", "1", "--world", str(sample_world.root))
    assert result.exit_code == 0, result.output
    assert "1 batches, 8 samples" in result.output
    assert "variables.t2m [8, 12, 16, 16] float32" in result.output


def test_graph_prints_mermaid(app: Any) -> None:
    result = invoke(app, "graph", "change-detection")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("flowchart LR")
    assert "after_2 --> main_3" in result.output


def test_bench_prints_a_table(app: Any, tmp_path: Path) -> None:
    body = TINY.replace(
        "source: {items: [1, 2, 3, 4, 5]}",
        "source: {items: [1, 2, 3, 4, 5]}\n    steps: [{header: {limit: 4}}]",
    )
    result = invoke(app, "bench", str(write(tmp_path, body)), "--n", "3")
    assert result.exit_code == 0, result.output
    assert "FromItems" in result.output
    assert "Header" in result.output
    assert "elem/s" in result.output


def test_preview_writes_a_png(app: Any, tmp_path: Path, sample_world: Any) -> None:
    out = tmp_path / "chips.png"
    result = invoke(
        app, "preview", "building-detection", "--out", str(out), "--n", "4", "--world", str(sample_world.root)
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(out) as image:
        assert image.size[0] > 400
        pixels = image.convert("RGB").getcolors(1 << 20)
    assert pixels is not None
    assert len(pixels) > 1000


def error_cases(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    def recipe(body: str, name: str) -> str:
        path = tmp_path / f"{name}.yaml"
        path.write_text(body, encoding="utf-8")
        return str(path)

    head = "version: 1\nname: x\ninputs:\n  main:\n    source: {items: [1]}\n"
    return {
        "missing file": (["run", str(tmp_path / "nope.yaml")], "cannot read recipe"),
        "bad yaml": (["run", recipe("version: 1\nname: [x\n", "yaml")], "not valid YAML"),
        "unknown stage": (
            ["graph", recipe(head + "    steps: [{nosuch: {}}]\n", "stage")],
            "unknown stage 'nosuch'",
        ),
        "wrong arg": (
            ["run", recipe(head + "    steps: [{header: {lim: 1}}]\n", "arg")],
            "unknown key 'lim'",
        ),
        "wrong type": (
            ["bench", recipe(head + "    steps: [{header: {limit: x}}]\n", "type")],
            "'limit' must be int",
        ),
        "env missing": (
            [
                "preview",
                recipe(head.replace("[1]", "['${TP_CLI_UNSET}']"), "env"),
                "--out",
                str(tmp_path / "p.png"),
            ],
            "TP_CLI_UNSET is not set",
        ),
        "not a png": (
            ["preview", recipe(head, "png"), "--out", str(tmp_path / "p.jpg")],
            "--out must end in .png",
        ),
        "nothing to show": (
            ["preview", recipe(head, "show"), "--out", str(tmp_path / "p.png")],
            "preview needs samples",
        ),
        "bad stage value": (
            ["run", recipe(head + "    steps: [{header: {limit: -1}}]\n", "value")],
            "step 0 (header)",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "bad yaml",
        "unknown stage",
        "wrong arg",
        "wrong type",
        "env missing",
        "not a png",
        "nothing to show",
        "bad stage value",
    ],
)
def test_errors_are_one_line_and_a_hint(
    app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    monkeypatch.delenv("TP_CLI_UNSET", raising=False)
    args, expected = error_cases(tmp_path)[case]
    result = invoke(app, *args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2, result.output
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert lines[1].startswith("hint: ")
    assert "--verbose" in lines[1]
    assert "Traceback" not in result.output
    verbose = invoke(app, "--verbose", *args)
    assert verbose.exit_code == 1
    assert "Traceback (most recent call last)" in verbose.output
    assert expected in verbose.output
