"""The recipe commands of ``terrapipe`` through typer's runner (error paths: ``test_errors.py``)."""

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
