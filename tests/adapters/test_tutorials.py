"""The TensorFlow and JAX tutorials are not executed by the docs build (no TF/JAX there): their code runs here."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.adapters.common import need

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

TUTORIALS = Path(__file__).resolve().parents[2] / "docs" / "tutorials"


def python_blocks(name: str) -> list[str]:
    text = (TUTORIALS / f"{name}.md").read_text(encoding="utf-8")
    assert "file_format: mystnb" not in text, f"{name}.md is executed by the docs build; test it there"
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize(("name", "framework"), [("tensorflow", "tensorflow"), ("jax", "jax")])
def test_the_tutorial_runs(
    name: str, framework: str, sample_world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need(framework)
    blocks = python_blocks(name)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": f"tutorial_{name}"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/tutorials/{name}.md[block {i}]", "exec"), namespace)


def test_the_adapter_tutorials_are_listed() -> None:
    index = (TUTORIALS / "index.md").read_text(encoding="utf-8")
    for name in ("keras", "tensorflow", "jax", "lightning"):
        assert f"\n{name}\n" in index
