"""Fixtures of the reliability tests: the range server (COG, Zarr) and a STAC API behind the fault proxy.

Both are real servers on 127.0.0.1 in subprocesses (``tests/servers/http_range.py``
and ``tests/stac/fault_proxy.py`` in front of ``rustac serve``), started once
per session, waited for, and stopped by pid. Function-scoped fixtures hand
them out with no faults and zeroed counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from terrapipe.datasets import SampleWorld
from tests.servers.http_range import RangeServer, start_range_server
from tests.stac.fault_proxy import FaultProxy, start_fault_proxy


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the range server serves; tests write uniquely named files in it."""
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="session")
def range_session(served: Path) -> Iterator[RangeServer]:
    server = start_range_server(served)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(range_session: RangeServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[RangeServer]:
    """The range server with no faults and zeroed counters; GDAL retries quickly (10 ms back-off)."""
    monkeypatch.setenv("GDAL_HTTP_RETRY_DELAY", "0.01")
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "3")
    range_session.clear_faults()
    range_session.reset()
    yield range_session
    range_session.clear_faults()


@pytest.fixture(scope="session")
def stac_proxy_session(sample_world: SampleWorld) -> Iterator[FaultProxy]:
    pytest.importorskip("pystac_client")
    import terrapipe
    from terrapipe.stac.server import start_stac_server

    try:
        api = start_stac_server(sample_world, timeout=30)
    except terrapipe.MissingDependencyError as err:
        pytest.skip(str(err))
    try:
        proxy = start_fault_proxy(api.url)
        try:
            yield proxy
        finally:
            proxy.stop()
    finally:
        api.stop()


@pytest.fixture
def stac_proxy(stac_proxy_session: FaultProxy) -> Iterator[FaultProxy]:
    """The fault proxy in front of the sample world's STAC API, with no faults and an empty log."""
    stac_proxy_session.clear()
    yield stac_proxy_session
    stac_proxy_session.clear()
