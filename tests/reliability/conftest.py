"""Fixtures of the reliability tests: the range server (COG, Zarr) and a STAC API behind the fault proxy.

Both are the session's shared servers of ``tests/conftest.py`` (real
processes on 127.0.0.1: ``tests/servers/http_range.py``, and
``tests/stac/fault_proxy.py`` in front of ``rustac serve``), handed out with
no faults and zeroed counters (``stac_proxy`` comes from there as it is).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.http_range import RangeServer


@pytest.fixture
def server(range_server_session: RangeServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[RangeServer]:
    """The range server with no faults and zeroed counters; GDAL retries quickly (10 ms back-off)."""
    monkeypatch.setenv("GDAL_HTTP_RETRY_DELAY", "0.01")
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "3")
    with range_server_session.cleared() as server:
        yield server
