"""Fixtures of the STAC tests: real servers on 127.0.0.1 and small catalogs written to tmp folders.

- ``stac_api``: ``rustac serve`` with the sample world's collections and items
  (started once per session by :func:`terrapipe.stac.serve_stac`'s machinery,
  waited for, stopped by pid);
- ``proxy``: a fault-injecting proxy in front of it (``tests/stac/fault_proxy.py``),
  cleared before each test;
- ``mini_catalog`` / ``http_files``: a tiny static catalog (two 64x64 COG
  scenes with relative asset hrefs) and the range server of
  ``tests/servers/http_range.py`` serving it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from terrapipe.datasets import SampleWorld
from terrapipe.stac.server import STACServer
from tests.servers.http_range import RangeServer, start_range_server
from tests.stac.fault_proxy import FaultProxy
from tests.stac.stac_helpers import mini_item, write_mini_catalog

pytest.importorskip("pystac")
pytest.importorskip("pystac_client")
pytest.importorskip("odc.stac")


@pytest.fixture(scope="session")
def world(sample_world: SampleWorld) -> SampleWorld:
    """The sample world (built once per session)."""
    return sample_world


@pytest.fixture(scope="session")
def rustac_server(stac_server: STACServer) -> STACServer:
    """``rustac serve`` with the world's collections and items (shared: ``tests/conftest.py``)."""
    return stac_server


@pytest.fixture(scope="session")
def stac_api(stac_server: STACServer) -> str:
    """URL of the STAC API landing page."""
    return stac_server.url


@pytest.fixture
def proxy(stac_proxy: FaultProxy) -> FaultProxy:
    """The fault-injecting proxy in front of the STAC API, with no faults and an empty log."""
    return stac_proxy


@pytest.fixture(scope="session")
def mini_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """catalog.json of a tiny static catalog: 3 scenes on one 64x64 grid, days 1, 2, 3 of June 2024."""
    root = tmp_path_factory.mktemp("mini-catalog")
    return write_mini_catalog(root, [mini_item(f"mini-{i}", i + 1) for i in range(3)])


@pytest.fixture(scope="session")
def range_session(mini_catalog: Path) -> Iterator[RangeServer]:
    with start_range_server(mini_catalog.parent) as server:
        yield server


@pytest.fixture
def http_files(range_session: RangeServer) -> Iterator[RangeServer]:
    """The range server over the mini catalog's folder, with no faults."""
    with range_session.cleared() as server:
        yield server


@pytest.fixture
def make_catalog(tmp_path: Path) -> Callable[..., Path]:
    """Write a mini catalog of the given item dicts into a fresh tmp folder."""

    def make(items: list[dict[str, Any]], name: str = "cat") -> Path:
        root = tmp_path / name
        shutil.rmtree(root, ignore_errors=True)
        return write_mini_catalog(root, items)

    return make
