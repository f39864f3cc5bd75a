"""A hostile HTTP server for STAC tests: answers exactly what a test scripts, and records what it receives.

Tests script it through control endpoints (names starting with ``__``):

- ``POST /__routes__`` with JSON ``{"/search?page=2": SPEC, "/search": SPEC, ...}``
  adds routes; a request is matched on its path and query first, then on its
  path alone. A SPEC is an object:

  - ``status`` (200), ``headers`` (extra headers), ``content_type``
    (``application/json``), ``location`` (a ``Location`` header);
  - the body: ``json`` (any JSON value), ``text`` (a string), ``base64`` (raw
    bytes), ``big_mib`` (a JSON-looking body of that many MiB, generated as it
    is sent, never held in memory; ``chunked: true`` sends it without a
    ``Content-Length``) or ``gzip_bomb_mib`` (that many MiB of JSON
    whitespace, gzip-compressed, sent with ``Content-Encoding: gzip``);
  - ``trickle``: seconds between single bytes of the body;
    ``trickle_headers: true`` sends the status line and headers that way too.
    A trickle stops after ``trickle_limit`` seconds (30) so that no thread
    outlives a test by long.

- ``GET /__log__``: every other request so far: ``method``, ``path``,
  ``query``, ``headers`` (names lowercased), ``body`` (decoded JSON or text).
- ``POST /__reset__``: forget routes and log.
- ``GET /files/NAME``: the file ``NAME`` under ``--root`` (single ``Range``
  requests answered with ``206``), logged like any request.

Unscripted paths get ``404``. Run it as ``python tests/servers/hostile_stac.py
--port 0 [--root DIR]``; it prints ``serving http://127.0.0.1:PORT`` once it
listens. :func:`start_hostile_server` does that in a subprocess; the handle's
:meth:`HostileServer.stop` stops it by pid.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``tests`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.servers.handler import JsonHandler
from tests.servers.process import Stoppable, serve, start_serving, stop_process

_MIB = 2**20


@dataclass
class _State:
    root: str | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    routes: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
    bombs: dict[int, bytes] = field(default_factory=dict)

    def bomb(self, mib: int) -> bytes:
        with self.lock:
            if mib not in self.bombs:
                packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
                parts = [packer.compress(b'{"type": "FeatureCollection", "features": [')]
                block = b" " * _MIB
                parts.extend(packer.compress(block) for _ in range(mib))
                parts.append(packer.compress(b"]}"))
                parts.append(packer.flush())
                self.bombs[mib] = b"".join(parts)
            return self.bombs[mib]


class _Handler(JsonHandler):
    protocol_version = "HTTP/1.1"
    state: _State

    def do_GET(self) -> None:
        """Control endpoint, a file, or a scripted answer."""
        if self.path == "/__log__":
            with self.state.lock:
                self._send_json(200, list(self.state.log))
            return
        self._answer(b"")

    def do_POST(self) -> None:
        """Control endpoints, or a scripted answer."""
        body = self._read_body()
        if self.path == "/__routes__":
            with self.state.lock:
                self.state.routes.update(json.loads(body))
            self._send_json(200, {"ok": True})
            return
        if self.path == "/__reset__":
            with self.state.lock:
                self.state.routes.clear()
                self.state.log.clear()
            self._send_json(200, {"ok": True})
            return
        self._answer(body)

    def _record(self, body: bytes) -> None:
        parts = urllib.parse.urlsplit(self.path)
        try:
            shown: Any = json.loads(body) if body else None
        except ValueError:
            shown = body.decode("utf-8", "replace")
        with self.state.lock:
            self.state.log.append(
                {
                    "method": self.command,
                    "path": parts.path,
                    "query": parts.query,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": shown,
                }
            )

    def _answer(self, body: bytes) -> None:
        self._record(body)
        parts = urllib.parse.urlsplit(self.path)
        if parts.path.startswith("/files/") and self.state.root:
            self._file(parts.path[len("/files/") :])
            return
        key = f"{parts.path}?{parts.query}" if parts.query else parts.path
        with self.state.lock:
            spec = self.state.routes.get(key) or self.state.routes.get(parts.path)
        if spec is None:
            self._send_json(404, {"code": "NotFound", "description": f"no route {parts.path}"})
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
            self._scripted(spec)

    def _scripted(self, spec: dict[str, Any]) -> None:
        status = int(spec.get("status", 200))
        headers = {"Content-Type": str(spec.get("content_type", "application/json"))}
        headers.update({str(k): str(v) for k, v in (spec.get("headers") or {}).items()})
        if spec.get("location"):
            headers["Location"] = str(spec["location"])
        chunks: Iterator[bytes]
        length: int | None
        if spec.get("big_mib") is not None:
            size = int(spec["big_mib"]) * _MIB
            length = None if spec.get("chunked") else size
            chunks = _big_body(size)
        elif spec.get("gzip_bomb_mib") is not None:
            blob = self.state.bomb(int(spec["gzip_bomb_mib"]))
            headers["Content-Encoding"] = "gzip"
            length, chunks = len(blob), iter([blob])
        else:
            if "json" in spec:
                blob = json.dumps(spec["json"]).encode()
            elif "base64" in spec:
                blob = base64.b64decode(spec["base64"])
            else:
                blob = str(spec.get("text", "")).encode()
            length, chunks = len(blob), iter([blob])
        head = f"HTTP/1.1 {status} Scripted\r\n".encode()
        for name, value in headers.items():
            head += f"{name}: {value}\r\n".encode()
        head += (
            f"Content-Length: {length}\r\n".encode()
            if length is not None
            else b"Transfer-Encoding: chunked\r\n"
        )
        head += b"\r\n"
        trickle = float(spec.get("trickle") or 0.0)
        stop = time.monotonic() + float(spec.get("trickle_limit", 30.0))
        if trickle and spec.get("trickle_headers"):
            self._trickle(head, trickle, stop)
        else:
            self.wfile.write(head)
        for chunk in chunks:
            data = chunk if length is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk)
            if trickle:
                if not self._trickle(data, trickle, stop):
                    self.close_connection = True
                    return
            else:
                self.wfile.write(data)
        if length is None:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _trickle(self, data: bytes, delay: float, stop: float) -> bool:
        for i in range(len(data)):
            if time.monotonic() > stop:
                return False
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()
            time.sleep(delay)
        return True

    def _file(self, name: str) -> None:
        assert self.state.root is not None
        path = Path(self.state.root, urllib.parse.unquote(name))
        if not path.is_file() or ".." in Path(name).parts:
            self._send_json(404, {"code": "NotFound"})
            return
        data = path.read_bytes()
        status, start, end = 200, 0, len(data) - 1
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range") or "")
        if match and (match.group(1) or match.group(2)):
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), end) if match.group(2) else end
            else:
                start = max(0, len(data) - int(match.group(2)))
            status = 206
        part = data[start : end + 1]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(part)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(part)

    def do_HEAD(self) -> None:
        """Files only (GDAL asks for their size)."""
        self._record(b"")
        parts = urllib.parse.urlsplit(self.path)
        if parts.path.startswith("/files/") and self.state.root:
            self._file(parts.path[len("/files/") :])
            return
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _big_body(size: int) -> Iterator[bytes]:
    """``size`` bytes that start like an ItemCollection and go on as JSON whitespace."""
    start = b'{"type": "FeatureCollection", "features": ['
    yield start
    left = size - len(start) - 2
    block = b" " * _MIB
    while left > 0:
        piece = block[: min(left, _MIB)]
        left -= len(piece)
        yield piece
    yield b"]}"


@dataclass
class HostileServer(Stoppable):
    """A running hostile server (see :func:`start_hostile_server`)."""

    url: str
    process: subprocess.Popen[bytes]

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def route(self, routes: dict[str, dict[str, Any]]) -> None:
        """Add scripted answers (see the module doc)."""
        self._call("POST", "/__routes__", routes)

    def reset(self) -> None:
        """Forget routes and log."""
        self._call("POST", "/__reset__", {})

    def log(self) -> list[dict[str, Any]]:
        """Requests received so far (control endpoints excluded)."""
        result: list[dict[str, Any]] = self._call("GET", "/__log__")
        return result

    def stop(self) -> None:
        """Stop the subprocess by pid."""
        stop_process(self.process)


def start_hostile_server(
    root: str | os.PathLike[str] | None = None, *, timeout: float = 20.0
) -> HostileServer:
    """Start a hostile server on a free port of 127.0.0.1; return once it answers."""
    command = [sys.executable, str(Path(__file__).resolve()), "--port", "0"]
    if root is not None:
        command += ["--root", os.fspath(root)]
    return start_serving(command, HostileServer, HostileServer.log, "hostile STAC server", timeout)


def main() -> None:
    """Command line: ``--port PORT [--root DIR]``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--root", default=None)
    args = parser.parse_args()
    state = _State(root=args.root)
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    print(f"serving http://127.0.0.1:{server.server_address[1]}", flush=True)
    serve(server)


if __name__ == "__main__":
    main()
