"""The conforming proxy of the object-store test servers, as a process of its own.

It forwards every request to a server on ``127.0.0.1:UPSTREAM_PORT``
unchanged (the ``Host`` header included, so signatures still verify at the
server) and corrects only the answer (see :mod:`tests.servers.object_stores`):

- a ranged GET answered ``200`` with a ``Content-Range`` becomes ``206``
  (rclone's S3 server, gofakes3 before johannesboyne/gofakes3 PR #121);
- with ``--add-stamps`` (the GCS emulator): a missing ``ETag`` (from the
  object's MD5 that the emulator does send) and ``Last-Modified`` (the
  proxy's start) are added, and a percent-encoded XML-API path
  (``/gcs%2Dbucket/a%2Fb``) is decoded, as Google does.

Run ``python -m tests.servers.conforming_proxy --upstream-port PORT
[--add-stamps]`` from the repository's root: it prints ``serving
http://127.0.0.1:PORT`` once it listens. :class:`tests.servers.object_stores.ConformingProxy`
starts it (:func:`tests.servers.process.start_serving`) and stops it by pid.
It runs in a process of its own because, in a thread of the test process, a
GDAL read holding the GIL while it waited for the proxy stalled the proxy
(which needs the GIL to answer) until GDAL's time-out.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import sys
import time
import urllib.parse
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``tests`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.servers.process import serve

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=60)
        try:
            path = self.path
            if self.server.add_stamps and not path.startswith(("/storage/", "/download/", "/upload/")):
                # an XML-API object path: obstore percent-encodes every byte that is not alphanumeric
                # ("gcs%2Dbucket/a%2Fb"), which Google decodes and the emulator does not
                raw, _, query = path.partition("?")
                path = urllib.parse.quote(urllib.parse.unquote(raw), safe="/") + (
                    "?" + query if query else ""
                )
            conn.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP:
                    conn.putheader(name, value)
            conn.endheaders(body)
            response = conn.getresponse()
            data = response.read()
            headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP]
        finally:
            conn.close()
        status, reason = response.status, response.reason
        names = {k.lower() for k, _ in headers}
        if status == 200 and "content-range" in names and "range" in {k.lower() for k in self.headers}:
            status, reason = 206, "Partial Content"  # gofakes3 before PR #121
        if self.server.add_stamps and status < 300:
            if "etag" not in names:
                md5 = next((v for k, v in headers if k.lower() == "x-goog-hash"), "") or self.path
                headers.append(("ETag", '"' + hashlib.md5(md5.encode()).hexdigest() + '"'))
            if "last-modified" not in names:
                headers.append(("Last-Modified", formatdate(self.server.started, usegmt=True)))
        self.send_response(status, reason)
        for name, value in headers:
            if name.lower() != "content-length" or self.command == "HEAD":  # HEAD: the upstream's size
                self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = _forward  # noqa: N815 - http.server's names


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    upstream_port: int
    add_stamps: bool
    started: float


def main(argv: list[str] | None = None) -> None:
    """Serve until terminated (SIGTERM, by pid)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--add-stamps", action="store_true")
    args = parser.parse_args(argv)
    server = _ProxyServer(("127.0.0.1", 0), _Handler)
    server.upstream_port = args.upstream_port
    server.add_stamps = args.add_stamps
    server.started = time.time()
    print(f"serving http://127.0.0.1:{server.server_address[1]}", flush=True)
    # nothing reads the pipe after the first line: a handler's traceback must not fill it and block us
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, sys.stdout.fileno())
    os.dup2(quiet, sys.stderr.fileno())
    serve(server)


if __name__ == "__main__":
    main()
