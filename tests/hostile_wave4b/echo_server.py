"""An HTTP server that answers every request with an error status whose JSON body echoes the credentials.

Many APIs say which key they refused (``"invalid token <token>"``). ``/<status>/...`` answers that
status (default 400) with ``{"code": "InvalidToken", "message": "token <Authorization> ...; query
<path and query>; key <X-Api-Key>; session <first cookie>; user <user:password of Basic>"}``. Run as ``python echo_server.py``: prints ``serving URL``.
"""

from __future__ import annotations

import base64
import http.server
import subprocess
import sys
import urllib.request
from dataclasses import dataclass

from tests.servers.handler import JsonHandler
from tests.servers.process import Stoppable, serve, start_serving, stop_process


class _Echo(JsonHandler):
    def do_GET(self) -> None:
        head = self.path.split("/")[1] if self.path.count("/") > 1 else ""
        status = int(head) if head.isdigit() else 400
        message = (
            f"token {self.headers.get('Authorization')} rejected; query {self.path}; "
            f"key {self.headers.get('X-Api-Key')}; session {_first_cookie(self.headers.get('Cookie'))}; "
            f"user {_basic_user(self.headers.get('Authorization'))}"
        )
        self._send_json(status, {"code": "InvalidToken", "message": message})

    def do_POST(self) -> None:
        self._read_body()
        self.do_GET()


def _first_cookie(header: str | None) -> str | None:
    return None if header is None else header.split(";")[0].strip()


def _basic_user(header: str | None) -> str | None:
    if not header or not header.startswith("Basic "):
        return None
    return base64.b64decode(header[6:]).decode("utf-8", "replace")  # 'user:password', as servers log it


@dataclass
class EchoServer(Stoppable):
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop_process(self.process)


def _ping(server: EchoServer) -> None:
    urllib.request.urlopen(f"{server.url}/200/ping", timeout=2).read()


def start_echo_server() -> EchoServer:
    return start_serving(
        [sys.executable, "-m", "tests.hostile_wave4b.echo_server"],
        lambda url, process: EchoServer(url, process),
        _ping,
        "echo server",
        30.0,
    )


if __name__ == "__main__":
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    print(f"serving http://127.0.0.1:{server.server_address[1]}", flush=True)
    serve(server)
