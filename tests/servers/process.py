"""Start a test server's subprocess and wait until it answers; stop it by pid (SIGTERM, then SIGKILL).

A server script's main loop is :func:`serve`; such a script puts the repository root on ``sys.path``
before it imports this module (``if __package__ in (None, "")``), since it runs as a file. A server's
handle is a :class:`Stoppable`: ``with start_x(...) as server:`` stops it on the way out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socketserver
import subprocess
import threading
import time
import urllib.error
from collections.abc import Callable
from typing import Any, Self, TypeVar

S = TypeVar("S")


class Stoppable:
    """A started server's handle as a context manager: leaving the ``with`` block calls its ``stop()``."""

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_serving(
    cmd: list[str],
    make: Callable[..., S],
    ping: Callable[[S], Any],
    what: str,
    timeout: float,
    *,
    cwd: str | os.PathLike[str] | None = None,
) -> S:
    """Run ``cmd`` (a server that prints ``serving URL [KEY=VALUE ...]`` first, in ``cwd``), build it
    with ``make(url, process, KEY=VALUE, ...)`` and wait until ``ping(server)`` answers; stop it (by pid)
    if it does not start, or does not answer within ``timeout`` s.
    """
    process = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    server: S | None = None
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()
        if not line.startswith("serving "):
            raise RuntimeError(f"{what} did not start: {line!r}")
        url, *words = line.split()[1:]
        server = make(url, process, **dict(word.split("=", 1) for word in words))
        while True:
            try:
                ping(server)
                return server
            except (urllib.error.URLError, ConnectionError, OSError) as err:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{what} at {url} does not answer: {err}") from err
                time.sleep(0.05)
    except BaseException:
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
        elif process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        raise


def stop_process(process: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 10.0) -> None:
    """Stop ``process`` (SIGTERM, then SIGKILL after ``timeout`` s), wait for it and close its pipes."""
    try:
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)
    finally:
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def serve(server: socketserver.BaseServer, poll_interval: float = 0.2) -> None:
    """Serve until SIGTERM (what :func:`stop_process` sends) or Ctrl-C, then close the server's socket.

    The handler asks ``server.shutdown()`` from another thread (called from the serving thread it would
    wait for itself).
    """
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    try:
        server.serve_forever(poll_interval=poll_interval)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
