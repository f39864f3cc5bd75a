"""Fixtures of hostile wave 4b: the hostile HTTP server (tests/servers/hostile_http.py) serving a module's bytes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.hostile_http import HostileServer, start_hostile_server


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostileServer]:
    """The hostile server, its root holding ``f.bin``: the test module's ``DATA`` (one server a module)."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "f.bin").write_bytes(request.module.DATA)
    with start_hostile_server(root) as served:
        yield served
