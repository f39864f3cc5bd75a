"""Fixtures of the GPU layer's tests: which accelerator pieces this machine has.

CPU tests always run. Tests marked ``gpu`` need a CUDA device (and CuPy where
they say so) and skip cleanly without one.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
HAS_CUPY = importlib.util.find_spec("cupy") is not None


@pytest.fixture
def cuda() -> torch.device:
    """The first CUDA device; skips the test without one."""
    if not HAS_CUDA:
        pytest.skip("no CUDA device")
    return torch.device("cuda:0")


@pytest.fixture
def cupy(cuda):  # type: ignore[no-untyped-def]
    """The CuPy module on a CUDA machine; skips the test otherwise."""
    return pytest.importorskip("cupy")
