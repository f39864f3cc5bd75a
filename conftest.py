"""Doctest set-up: every doctest runs in its own tmp folder with a seeded RNG."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _doctest_env(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if request.node.__class__.__name__ != "DoctestItem":
        return
    np.random.seed(0)
    import torch

    torch.manual_seed(0)
    old = os.getcwd()
    os.chdir(tmp_path)
    request.addfinalizer(lambda: os.chdir(old))
