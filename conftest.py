"""Test-session set-up shared by tests/ and the doctests in src/.

- The sample world is built once per session into a tmp data folder
  (``TERRAPIPE_DATA_DIR``), never into the user's cache.
- Every doctest runs in its own tmp folder with seeded RNGs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def _data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    old = os.environ.get("TERRAPIPE_DATA_DIR")
    path = tmp_path_factory.mktemp("terrapipe-data")
    os.environ["TERRAPIPE_DATA_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("TERRAPIPE_DATA_DIR", None)
    else:
        os.environ["TERRAPIPE_DATA_DIR"] = old


@pytest.fixture(autouse=True)
def _doctest_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    if request.node.__class__.__name__ != "DoctestItem":
        yield
        return
    np.random.seed(0)
    import torch

    torch.manual_seed(0)
    old = os.getcwd()
    os.chdir(tmp_path)
    yield
    os.chdir(old)
