"""Shared fixtures: the sample world and the servers several test folders talk to.

The sample world is built into the session's ``TERRAPIPE_DATA_DIR`` (set by
the root conftest), the same place the doctests' ``sample_world()`` calls
look, so one build serves both. The servers are real processes on 127.0.0.1,
started once per session when a test first asks for them, waited for, and
stopped by pid:

- ``range_server_session``: the Range server of ``tests/servers/http_range.py``
  over ``http_root`` (tests write uniquely named files there: GDAL caches
  remote files by URL);
- ``stac_server``: ``rustac serve`` loaded with the sample world's items;
- ``stac_proxy``: the fault proxy of ``tests/stac/fault_proxy.py`` in front of
  it, with no faults and an empty log for each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from terrapipe.datasets import SampleWorld
    from terrapipe.stac.server import STACServer
    from tests.servers.http_range import RangeServer
    from tests.stac.fault_proxy import FaultProxy


@pytest.fixture(scope="session")
def sample_world(_data_dir):  # type: ignore[no-untyped-def]
    """The built-in sample world, generated offline into the session's data folder."""
    from terrapipe.datasets import sample_world as build

    return build()


@pytest.fixture(scope="session")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the range server serves; tests write uniquely named files in it."""
    return tmp_path_factory.mktemp("http-root")


@pytest.fixture(scope="session")
def range_server_session(http_root: Path) -> Iterator[RangeServer]:
    """The range server over ``http_root``; hand it out through ``RangeServer.cleared()``."""
    from tests.servers.http_range import start_range_server

    with start_range_server(http_root) as server:
        yield server


@pytest.fixture(scope="session")
def stac_server(sample_world: SampleWorld) -> Iterator[STACServer]:
    """``rustac serve`` on a free loopback port, loaded with the world's collections and items."""
    pytest.importorskip("pystac_client")
    import terrapipe
    from terrapipe.stac.server import start_stac_server

    try:
        server = start_stac_server(sample_world, timeout=30)
    except terrapipe.MissingDependencyError as err:
        pytest.skip(str(err))
    try:
        yield server
    finally:
        server.stop()
        assert server.process.poll() is not None


@pytest.fixture(scope="session")
def stac_proxy_session(stac_server: STACServer) -> Iterator[FaultProxy]:
    from tests.stac.fault_proxy import start_fault_proxy

    with start_fault_proxy(stac_server.url) as proxy:
        yield proxy


@pytest.fixture
def stac_proxy(stac_proxy_session: FaultProxy) -> Iterator[FaultProxy]:
    """The fault proxy in front of the sample world's STAC API, with no faults and an empty log."""
    stac_proxy_session.clear()
    yield stac_proxy_session
    stac_proxy_session.clear()
