"""Serve STAC items over a real STAC API on 127.0.0.1: ``rustac serve`` in a subprocess.

:func:`serve_stac` starts ``rustac serve`` (the ``rustac`` package's
command, in-memory backend, no network) on a free loopback port with a
sample world's collections and items, waits until its landing page
answers, and stops it by pid on exit. The demo, the tutorials and the tests
search it like any STAC API; ``terrapipe serve-stac DIR`` uses it too.

The in-memory backend ignores ``sortby`` and does not declare ``query`` or
``filter`` (``search_stac`` refuses them against it); use pgstac for those.

Examples
--------
>>> import terrapipe as tp, terrapipe.stac
>>> world = tp.datasets.sample_world()
>>> with terrapipe.stac.serve_stac(world) as server:
...     ids = [i.id for i in terrapipe.stac.search_stac(server.url, collections=["demo-dem"])]
>>> ids
['demo-dem-30m']
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terrapipe.core.errors import InvalidArgumentError, MissingDependencyError, STACSearchError

__all__ = [
    "STACServer",
    "free_port",
    "rustac_executable",
    "serve_hrefs_of",
    "serve_stac",
    "start_stac_server",
]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` now.

    Examples
    --------
    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def rustac_executable() -> str:
    """Path of the ``rustac`` command (next to this Python, or on ``PATH``).

    Raises
    ------
    MissingDependencyError
        If the ``rustac`` package is not installed.
    """
    beside = Path(sys.executable).with_name("rustac")
    if beside.exists():
        return str(beside)
    found = shutil.which("rustac")
    if found:
        return found
    raise MissingDependencyError("serve_stac needs the 'rustac' command; install it with: pip install rustac")


def serve_hrefs_of(source: Any) -> list[str]:
    """Files to load into ``rustac serve`` for ``source``.

    Parameters
    ----------
    source
        A :class:`~terrapipe.datasets.SampleWorld` (its ``serve_hrefs``), a
        list of collection/item files, or a folder: a sample world's root, or
        any folder holding ``collection.json`` files each with an
        ``items.ndjson`` beside it.

    Returns
    -------
    list of str
        Collections, each followed by its items.

    Raises
    ------
    InvalidArgumentError
        If nothing to serve is found.
    """
    hrefs = getattr(source, "serve_hrefs", None)
    if hrefs is not None:
        return [str(h) for h in hrefs]
    if isinstance(source, str | os.PathLike) and Path(source).is_dir():
        root = Path(source)
        api = root / "stac" / "api" if (root / "stac" / "api").is_dir() else root
        found: list[str] = []
        for collection in sorted(api.rglob("collection.json")):
            items = collection.with_name("items.ndjson")
            if items.is_file():
                found += [str(collection), str(items)]
        if not found:
            msg = f"{str(root)!r} holds no collection.json with an items.ndjson beside it; nothing to serve"
            raise InvalidArgumentError(msg)
        return found
    if isinstance(source, Sequence) and not isinstance(source, str | bytes) and source:
        return [str(h) for h in source]
    raise InvalidArgumentError(
        f"serve_stac takes a SampleWorld, a folder or a list of collection/item files, got {source!r}"
    )


@dataclass
class STACServer:
    """A running ``rustac serve``.

    Attributes
    ----------
    url
        ``http://127.0.0.1:PORT`` (the landing page).
    process
        The subprocess; :meth:`stop` ends it by pid.
    log
        File with the server's output.
    """

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    _owned_log_dir: str | None = field(default=None, repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` seconds) and wait for it."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        if self._owned_log_dir is not None:
            shutil.rmtree(self._owned_log_dir, ignore_errors=True)
            self._owned_log_dir = None

    def __enter__(self) -> STACServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_stac_server(
    source: Any,
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
    log: str | os.PathLike[str] | None = None,
) -> STACServer:
    """Start ``rustac serve`` with ``source``'s collections and items; return once it answers.

    Parameters
    ----------
    source
        What to serve (see :func:`serve_hrefs_of`).
    port
        Port to listen on; ``None``: a free one.
    host
        Address to bind (loopback by default).
    timeout
        Seconds to wait for the landing page to answer.
    log
        File for the server's output; ``None``: a temporary file removed on stop.

    Returns
    -------
    STACServer
        The running server (call :meth:`STACServer.stop`, or use it as a context manager).

    Raises
    ------
    MissingDependencyError
        Without the ``rustac`` command.
    STACSearchError
        If the server exits or does not answer within ``timeout`` (the
        message holds the end of its log).
    """
    hrefs = serve_hrefs_of(source)
    executable = rustac_executable()
    port = port or free_port(host)
    url = f"http://{host}:{port}"
    owned = None
    if log is None:
        owned = tempfile.mkdtemp(prefix="terrapipe-rustac-")
        log_path = Path(owned) / "serve.log"
    else:
        log_path = Path(log)
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [executable, "serve", "--addr", f"{host}:{port}", *hrefs],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = STACServer(url=url, process=process, log=log_path, _owned_log_dir=owned)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process.poll() is not None:
                raise STACSearchError(
                    f"rustac serve exited with code {process.returncode}: {_tail(log_path)}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return server
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise STACSearchError(
                    f"rustac serve did not answer at {url} within {timeout:g} s: {_tail(log_path)}"
                )
            time.sleep(0.05)
    except BaseException:
        server.stop()
        raise


@contextlib.contextmanager
def serve_stac(
    source: Any, *, port: int | None = None, host: str = "127.0.0.1", timeout: float = 30.0
) -> Iterator[STACServer]:
    """Serve ``source`` over a STAC API while the ``with`` block runs (see :func:`start_stac_server`).

    Parameters
    ----------
    source
        A :class:`~terrapipe.datasets.SampleWorld`, a folder, or collection/item files.
    port, host, timeout
        See :func:`start_stac_server`.

    Yields
    ------
    STACServer
        The server; ``server.url`` is the API's landing page.
    """
    server = start_stac_server(source, port=port, host=host, timeout=timeout)
    try:
        yield server
    finally:
        server.stop()


def _tail(path: Path, size: int = 2000) -> str:
    try:
        text = path.read_bytes()[-size:].decode("utf-8", "replace").strip()
    except OSError:
        return "(no log)"
    return text or "(empty log)"
