"""Shared fixtures: the sample world, built once per test session.

It is built into the session's ``TERRAPIPE_DATA_DIR`` (set by the root
conftest), the same place the doctests' ``sample_world()`` calls look, so one
build serves both.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sample_world(_data_dir):  # type: ignore[no-untyped-def]
    """The built-in sample world, generated offline into the session's data folder."""
    from terrapipe.datasets import sample_world as build

    return build()
