"""Every test server script stops on SIGTERM (what ``stop_process`` sends) with exit status 0.

A script killed by the signal instead (status -15) skips its ``server_close``, and one that runs
another server (``redis_server.py``) would leave that one running. Each script is started as its
fixture starts it (as a file or with ``-m``, from the repository root) and must print ``serving URL``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from tests.servers import redis_server

REPO = Path(__file__).resolve().parents[2]
ROOT = "{root}"  # replaced by a fresh folder

SCRIPTS = {
    "http_range": ["tests/servers/http_range.py", "--root", ROOT, "--port", "0"],
    "signed_range": ["tests/servers/signed_range.py", "--root", ROOT, "--port", "0"],
    "latency_http": ["tests/servers/latency_http.py", "--root", ROOT, "--port", "0"],
    "lying_ranges": ["tests/hostile_wave4/lying_ranges.py", "--root", ROOT, "--port", "0"],
    "hostile_stac": ["tests/servers/hostile_stac.py", "--port", "0"],
    "fault_proxy": ["tests/stac/fault_proxy.py", "--upstream", "http://127.0.0.1:9", "--port", "0"],
    "hostile_http": ["-m", "tests.servers.hostile_http", "--root", ROOT],
    "header_server": ["-m", "tests.servers.header_server", "--root", ROOT, "--require", "X-Key=k"],
    "conforming_proxy": ["-m", "tests.servers.conforming_proxy", "--upstream-port", "9"],
    "get_only_server": ["-m", "tests.stac.get_only_server", "--root", ROOT],
    "echo_server": ["-m", "tests.hostile_wave4b.echo_server"],
    "redis_server": ["tests/servers/redis_server.py"],
}


def _start(args: list[str], root: Path) -> tuple[subprocess.Popen[bytes], str]:
    command = [sys.executable, *(str(root) if arg == ROOT else arg for arg in args)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    return process, process.stdout.readline().decode().strip()  # the pipe stays open, as in a fixture


def _answers(url: str) -> None:
    """Wait until the server at ``url`` answers a request (any answer, or a closed connection)."""
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        sock.sendall(b"GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        sock.recv(1)


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_a_server_script_stops_with_status_0_on_sigterm(name: str, tmp_path: Path) -> None:
    if name == "redis_server" and redis_server.find_redis_server() is None:
        redis_server.redis_server_or_skip()  # fails with the install command (or skips where allowed)
    process, line = _start(SCRIPTS[name], tmp_path)
    try:
        assert line.startswith("serving "), f"{name} printed {line!r}"
        if name != "redis_server":
            _answers(line.split()[1])  # serving (its SIGTERM handler is set), as a fixture's ping waits for
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()
    if name == "redis_server":  # the redis-server it ran is stopped too
        port = urllib.parse.urlsplit(line.split()[1]).port
        assert port is not None
        assert not redis_server.ping(port)
