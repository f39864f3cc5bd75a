"""Shared fixtures: the sample world, built once per test session in a tmp folder."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sample_world(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The built-in sample world, generated offline into a session tmp folder."""
    from terrapipe.datasets import sample_world as build

    root: Path = tmp_path_factory.mktemp("sample-world")
    return build(root / "world")
