"""Fixtures of the chip tests (helpers live in chip_helpers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import xarray as xr

import terrapipe.chip  # noqa: F401  (registers chip, slice_with_xbatcher, sample_windows)
from tests.chip.chip_helpers import geo_cube


@pytest.fixture
def cube() -> xr.DataArray:
    return geo_cube()


@pytest.fixture
def patch_shard(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], None]:
    """Make the chip stages believe they run in a given shard (rank/worker)."""
    import terrapipe.chip.chipper as chipper_module
    import terrapipe.chip.sampler as sampler_module
    import terrapipe.chip.xbatcher as xbatcher_module

    def set_info(info: Any) -> None:
        for module in (chipper_module, sampler_module, xbatcher_module):
            monkeypatch.setattr(module, "shard_info", lambda: info)

    return set_info
