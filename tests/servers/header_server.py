"""A range server that checks a request header and redirects on demand, for tests of where headers go.

It serves the files under ``--root`` (``GET`` and ``HEAD``, one ``Range``
answered with ``206``) and records, for every request, the method, the path
with its query and every header it carried (``GET /__log__``, JSON;
``POST /__reset__`` empties it). Paths pick the behaviour:

- ``/auth/REST``: the file ``REST``, but only to a request carrying the
  header named by ``--require NAME=VALUE`` with that value; otherwise ``401``;
- ``/redirect/HOST/PORT/REST``: ``302`` to ``http://HOST:PORT/REST`` with the
  request's query string kept (``/redirect/localhost/PORT/auth/a.tif`` sends
  the client to another host name of the same server);
- anything else: the file.

Run as ``python -m tests.servers.header_server --root DIR --require X-Api-Key=s3cret``
from the repository root: it prints ``serving http://127.0.0.1:PORT`` once it
listens. :func:`start_header_server` does that in a subprocess (stopped by pid
with :meth:`HeaderServer.stop`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.servers.http_range import parse_range
from tests.servers.process import Stoppable, serve, start_serving, stop_process

__all__ = ["HeaderServer", "start_header_server"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root: Path
    required: tuple[str, str]
    log: list[dict[str, Any]]
    lock: threading.Lock

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _reply(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_POST(self) -> None:
        """``/__reset__``: forget the requests seen."""
        with self.lock:
            self.log.clear()
        self._reply(200, {"Content-Type": "application/json"}, b"{}")

    def do_HEAD(self) -> None:
        """Answer like GET, without a body."""
        self.do_GET()

    def do_GET(self) -> None:
        """Serve, refuse or redirect (see the module doc)."""
        parts = urllib.parse.urlsplit(self.path)
        if parts.path == "/__log__":
            with self.lock:
                body = json.dumps(self.log).encode()
            self._reply(200, {"Content-Type": "application/json"}, body)
            return
        with self.lock:
            self.log.append({"method": self.command, "path": self.path, "headers": dict(self.headers)})
        segments = parts.path.lstrip("/").split("/")
        if segments[0] == "redirect" and len(segments) > 3:
            target = f"http://{segments[1]}:{segments[2]}/{'/'.join(segments[3:])}"
            if parts.query:
                target += "?" + parts.query
            self._reply(302, {"Location": target})
            return
        if segments[0] == "auth":
            name, value = self.required
            if self.headers.get(name) != value:
                self._reply(401, {"Content-Type": "text/plain"}, b"401 Unauthorized\n")
                return
            segments = segments[1:]
        target = (self.root / urllib.parse.unquote("/".join(segments))).resolve()
        if self.root.resolve() not in target.parents or not target.is_file():
            self._reply(404, {"Content-Type": "text/plain"}, b"404 Not Found\n")
            return
        data = target.read_bytes()
        wanted = parse_range(self.headers.get("Range"), len(data))
        common = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if wanted == "unsatisfiable":
            self._reply(416, {**common, "Content-Range": f"bytes */{len(data)}"})
        elif wanted is None:
            self._reply(200, common, data)
        else:
            assert not isinstance(wanted, str)
            start, end = wanted
            common["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            self._reply(206, common, data[start : end + 1])


@dataclass
class HeaderServer(Stoppable):
    """Handle of a running :mod:`tests.servers.header_server` (``url`` without a trailing slash); ``with`` stops it."""

    url: str
    process: subprocess.Popen[bytes]

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.url.rsplit(":", 1)[1])

    def requests(self) -> list[dict[str, Any]]:
        """Every request seen since the last :meth:`reset`: method, path (with query), headers."""
        with urllib.request.urlopen(f"{self.url}/__log__", timeout=10) as response:
            log: list[dict[str, Any]] = json.loads(response.read())
        return log

    def reset(self) -> None:
        """Forget the requests seen."""
        request = urllib.request.Request(f"{self.url}/__reset__", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        """Stop the subprocess by pid."""
        stop_process(self.process)


def start_header_server(root: str | Path, require: str, *, timeout: float = 20.0) -> HeaderServer:
    """Start the server in a subprocess (``require``: ``"NAME=VALUE"``); wait until it answers."""
    repo = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "tests.servers.header_server", "--root", str(root), "--require", require]
    return start_serving(
        cmd,
        lambda url, process: HeaderServer(url=url, process=process),
        HeaderServer.requests,
        "header server",
        timeout,
        cwd=repo,
    )


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--root DIR --require NAME=VALUE [--port 0]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", required=True)
    parser.add_argument("--require", required=True, help="NAME=VALUE a request to /auth/... must carry")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    name, _, value = args.require.partition("=")
    handler = type(
        "HeaderHandler",
        (_Handler,),
        {"root": Path(args.root), "required": (name, value), "log": [], "lock": threading.Lock()},
    )
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    print(f"serving http://127.0.0.1:{server.server_address[1]}", flush=True)
    serve(server)


if __name__ == "__main__":
    main()
