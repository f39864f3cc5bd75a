"""Start ``_files_server.py`` on a folder for a test, and stop it by its process id."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.servers.process import start_serving, stop_process

SCRIPT = Path(__file__).with_name("_files_server.py")


def _ping(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    urllib.request.urlopen(server[0] + "/_log", timeout=5).close()


@contextlib.contextmanager
def files_server(root: Path, mode: str | None = None) -> Iterator[str]:
    """Serve ``root`` (in ``mode``, see ``_files_server.py``) on 127.0.0.1 and yield its URL."""
    cmd = [sys.executable, str(SCRIPT), "--root", str(root)]
    if mode is not None:
        cmd += ["--mode", mode]
    url, process = start_serving(cmd, lambda u, p: (u, p), _ping, "files server", 20)
    try:
        yield url
    finally:
        stop_process(process, timeout=2)
