"""A hostile HTTP server for tests: serves a directory, but breaks the rules on purpose.

The first segment of a request's path picks how it misbehaves; the rest is a
file under ``--root`` (``GET /shift/cube.zarr/t2m/c/0/0/0``). Behaviours
(``MODES``):

- ``plain``: a correct server (``Range`` honoured with ``206`` and
  ``Content-Range``, ``HEAD`` with ``Content-Length``);
- ``shift``: ``206`` for a *different* range than the one asked for (the next
  range of the same length, or the previous one at the end of the file), with
  a ``Content-Range`` that truthfully names it; a range that starts at byte 0
  (a file's header) is answered correctly, so that a reader gets as far as
  its data;
- ``short``: ``206`` whose ``Content-Range`` names the range asked for, but
  whose body (and ``Content-Length``) is half of it;
- ``long``: ``206`` whose ``Content-Range`` names the range asked for, but
  whose body (and ``Content-Length``) carries 16 bytes more;
- ``nolength``: a body with neither ``Content-Length`` nor chunked encoding
  (it ends when the connection closes, so a cut cannot be told from the end);
- ``badlength``: like ``nolength``, but with ``Content-Length: -1``;
- ``forge``: a correct ``206``, followed on the same connection, unasked, by
  a second, forged ``206`` for the next range of the same length (bytes
  ``0xEE``), as if it answered the client's next request;
- ``full``: ignores ``Range`` and answers ``200`` with the whole file (legal);
- ``chunked``: like ``full``, sent chunked (no ``Content-Length``, pieces of
  10,000 bytes), as dynamic servers answer (legal);
- ``drift``: correct ranges, but the total size in ``Content-Range`` (and a
  ``200``'s length) changes at every request, as if the file were replaced
  while being read (``HEAD`` gives the real size);
- ``trickle``: correct headers, then the body one byte every
  ``--trickle-interval`` seconds (default 1);
- ``trickle-headers``: the status line and headers themselves one byte at a
  time;
- ``chunked-short``: ``206`` whose ``Content-Range`` names the range asked
  for, sent chunked (no ``Content-Length``) and properly ended, but holding
  half of it;
- ``gzip-range``: ``206`` with the right ``Content-Range``, the range's
  bytes gzip-encoded (``Content-Encoding: gzip``, chunked) although the client
  asked for ``identity``;
- ``gzip``: the whole file, honestly gzip-encoded (``Content-Encoding: gzip``)
  although the client asked for ``identity``; ``Range`` ignored;
- ``bomb``: for any path, ``200`` with ``Content-Encoding: gzip`` and a small
  body (about 250 KB) that inflates to ``--bomb-mib`` MiB of zeros (default 256);
- ``huge``: for any path, ``200`` with ``Content-Length`` of 4 GiB and zeros
  until the client goes away;
- ``endless``: for any path, ``200`` with chunked encoding and zeros until the
  client goes away;
- ``redirect-file``: ``302`` to ``file:///etc/passwd``; ``redirect-nohost``:
  ``302`` to ``http://:8080/x``;
- ``redirect-HOST-PORT``: ``302`` to ``http://HOST:PORT/`` + the rest of the
  path (``redirect-localhost-8080/plain/a.tif`` → ``http://localhost:8080/plain/a.tif``),
  no query string.

With ``--tls-trickle``, a second port (printed after the URL, as
``tls-trickle=PORT``) takes TCP connections and answers a TLS client with a
record header that announces 16 kB, then sends that record one byte every
``--trickle-interval`` seconds: a TLS handshake that never ends by itself.

Every request is recorded (method, path with its query, headers) and served
at ``GET /__log__`` as JSON; ``POST /__reset__`` empties the record. A slow or
endless answer stops after ``--max-seconds`` (default 30) or as soon as the
client stops reading; the whole server exits by itself after ``--lifetime``
seconds (default 600).

Run as ``python -m tests.servers.hostile_http --root DIR`` from the
repository root: it prints ``serving http://127.0.0.1:PORT`` once it listens.
:func:`start_hostile_server` does that in a subprocess and returns a handle
(:meth:`HostileServer.stop` ends it by pid).
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import gzip
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.servers.http_range import parse_range
from tests.servers.process import Stoppable, serve, start_serving, stop_process

__all__ = ["MODES", "HostileServer", "start_hostile_server"]

MODES = (
    "plain",
    "shift",
    "short",
    "long",
    "nolength",
    "badlength",
    "forge",
    "full",
    "chunked",
    "drift",
    "trickle",
    "trickle-headers",
    "gzip",
    "chunked-short",
    "gzip-range",
    "bomb",
    "huge",
    "endless",
    "redirect-file",
    "redirect-nohost",
    "redirect-HOST-PORT",
)
_ZEROS = bytes(64 * 1024)
_REPO = Path(__file__).resolve().parents[2]


@dataclass
class _Settings:
    root: Path
    trickle_interval: float = 1.0
    max_seconds: float = 30.0
    bomb_mib: int = 256


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "terrapipe-hostile/1"
    timeout = 10  # a client that stops reading cannot hold a thread for ever
    settings: _Settings
    log: list[dict[str, Any]]
    lock: threading.Lock
    counter: list[int]
    bomb: list[bytes]

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    # -- helpers --------------------------------------------------------------
    def _headers_out(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _json(self, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self._headers_out(200, {"Content-Type": "application/json", "Content-Length": str(len(body))})
        self.wfile.write(body)

    def _text(self, status: int, text: str) -> None:
        body = b"" if self.command == "HEAD" else text.encode()
        self._headers_out(status, {"Content-Type": "text/plain", "Content-Length": str(len(body))})
        self.wfile.write(body)

    def _write(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            return True
        except OSError:  # the client went away: stop
            self.close_connection = True
            return False

    def _stream_zeros(self, *, chunked: bool) -> None:
        end = time.monotonic() + self.settings.max_seconds
        while time.monotonic() < end:
            block = b"%x\r\n%s\r\n" % (len(_ZEROS), _ZEROS) if chunked else _ZEROS
            if not self._write(block):
                return
        self.close_connection = True

    def _bomb(self) -> bytes:
        return self.bomb[0]  # made at start (see main)

    # -- requests ---------------------------------------------------------------
    def do_POST(self) -> None:
        """``/__reset__``: empty the request record."""
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with self.lock:
            self.log.clear()
        self._json({"ok": True})

    def do_HEAD(self) -> None:
        """Like GET, without a body."""
        self._serve()

    def do_GET(self) -> None:
        """Serve ``/__log__`` or a file through a misbehaviour."""
        if urllib.parse.urlsplit(self.path).path == "/__log__":
            with self.lock:
                self._json(list(self.log))
            return
        self._serve()

    def _serve(self) -> None:
        with self.lock:
            self.log.append({"method": self.command, "path": self.path, "headers": dict(self.headers)})
            self.counter[0] += 1
            count = self.counter[0]
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        mode, _, rest = path.lstrip("/").partition("/")
        if mode in ("redirect-file", "redirect-nohost"):
            where = "file:///etc/passwd" if mode == "redirect-file" else "http://:8080/x"
            self._headers_out(302, {"Location": where, "Content-Length": "0"})
            return
        if mode.startswith("redirect-"):
            _, host, port = mode.rsplit("-", 2) if mode.count("-") >= 2 else ("", "", "")
            self._headers_out(302, {"Location": f"http://{host}:{port}/{rest}", "Content-Length": "0"})
            return
        if mode == "bomb":
            body = self._bomb()
            self._headers_out(
                200,
                {
                    "Content-Encoding": "gzip",
                    "Content-Type": "application/json",
                    "Content-Length": str(len(body)),
                },
            )
            if self.command == "GET":
                self._write(body)
            return
        if mode in ("huge", "endless"):
            chunked = mode == "endless"
            headers = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(4 * 1024**3)}
            self._headers_out(200, {"Content-Type": "application/octet-stream", **headers})
            if self.command == "GET":
                self._stream_zeros(chunked=chunked)
            return
        target = (self.settings.root / rest).resolve()
        if self.settings.root.resolve() not in target.parents or not target.is_file():
            self._text(404, f"404 not found: {rest}\n")
            return
        if mode not in MODES:
            self._text(400, f"unknown mode {mode!r}\n")
            return
        data = target.read_bytes()
        self._answer(mode, data, count, email.utils.formatdate(target.stat().st_mtime, usegmt=True))

    def _answer(self, mode: str, data: bytes, count: int, modified: str) -> None:
        size = len(data)
        head = self.command == "HEAD"
        common = {
            "Accept-Ranges": "bytes",
            "Last-Modified": modified,
            "Content-Type": "application/octet-stream",
        }
        if mode == "gzip":
            packed = gzip.compress(data)
            self._headers_out(200, {**common, "Content-Encoding": "gzip", "Content-Length": str(len(packed))})
            if not head:
                self._write(packed)
            return
        wanted = None if mode in ("full", "chunked") or head else parse_range(self.headers.get("Range"), size)
        if wanted == "unsatisfiable":
            self._headers_out(416, {"Content-Range": f"bytes */{size}", "Content-Length": "0"})
            return
        total = size + count if mode == "drift" and not head else size
        if wanted is None:
            status, first, last, body = 200, 0, size - 1, data
            if mode == "drift" and not head:
                body = data + bytes(count)
        else:
            assert not isinstance(wanted, str)
            status, (first, last) = 206, wanted
            if mode == "shift" and first > 0:
                length = last - first + 1
                first = first + length if last + length < size else max(0, first - length)
                last = first + length - 1
            body = data[first : last + 1]
            if mode in ("short", "chunked-short"):
                body = body[: max(0, len(body) // 2)]
            elif mode == "gzip-range":
                body = gzip.compress(body)
            elif mode == "long":
                body = body + data[last + 1 : last + 17].ljust(16, b"\xff")
        headers = dict(common)
        if status == 206:
            headers["Content-Range"] = f"bytes {first}-{last}/{total}"
        if (mode == "chunked" or (mode in ("chunked-short", "gzip-range") and status == 206)) and not head:
            headers["Transfer-Encoding"] = "chunked"
            if mode == "gzip-range":
                headers["Content-Encoding"] = "gzip"
            self._headers_out(status, headers)
            pieces = (body[i : i + 10_000] for i in range(0, len(body), 10_000))
            self._write(b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n")
            return
        if mode in ("nolength", "badlength") and not head:
            headers["Connection"] = "close"
            self.close_connection = True
            if mode == "badlength":
                headers["Content-Length"] = "-1"
        else:
            headers["Content-Length"] = str(len(body))
        if mode == "trickle-headers":
            self._trickle_headers(status, headers)
        else:
            self._headers_out(status, headers)
        if head:
            return
        if mode == "trickle":
            self._trickle(body)
        else:
            self._write(body)
        if mode == "forge" and status == 206:
            self._forge(last + 1, last - first + 1, total)

    def _forge(self, first: int, length: int, total: int) -> None:
        with contextlib.suppress(OSError):
            self.wfile.flush()
        time.sleep(0.05)  # after the real answer has gone, as a separate segment
        last = min(first + length, total) - 1
        fake = (
            f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {first}-{last}/{total}\r\n"
            f"Content-Length: {last - first + 1}\r\n\r\n"
        ).encode() + b"\xee" * (last - first + 1)
        self._write(fake)

    def _trickle(self, body: bytes) -> None:
        end = time.monotonic() + self.settings.max_seconds
        for i in range(len(body)):
            if time.monotonic() > end or not self._write(body[i : i + 1]):
                self.close_connection = True
                return
            with contextlib.suppress(OSError):
                self.wfile.flush()
            time.sleep(self.settings.trickle_interval)

    def _trickle_headers(self, status: int, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status} Whatever"] + [f"{k}: {v}" for k, v in headers.items()]
        self._trickle(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.close_connection = True


def _make_bomb(mib: int) -> bytes:
    """Gzip data that inflates to ``mib`` MiB of zeros (about 1/1000 of that on the wire)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    block = bytes(1024 * 1024)
    return b"".join(packer.compress(block) for _ in range(mib)) + packer.flush()


def make_server(settings: _Settings, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Build (not start) a hostile server; ``port=0`` picks a free port."""
    attrs = {"settings": settings, "log": [], "lock": threading.Lock(), "counter": [0], "bomb": []}
    server = ThreadingHTTPServer((host, port), type("HostileHandler", (_Handler,), attrs))
    server.daemon_threads = True
    return server


def _serve_tls_trickle(listener: socket.socket, settings: _Settings) -> None:
    """Accept connections; on each, send a TLS record header, then its body a byte at a time."""

    def trickle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            end = time.monotonic() + settings.max_seconds
            try:
                conn.recv(4096)  # the ClientHello
                conn.sendall(b"\x16\x03\x03\x40\x00")  # handshake record of 16384 bytes...
                while time.monotonic() < end:
                    conn.sendall(b"\x02")  # ...that comes a byte at a time
                    time.sleep(settings.trickle_interval)
            except OSError:
                return

    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=trickle, args=(conn,), daemon=True).start()


@dataclass
class HostileServer(Stoppable):
    """A hostile server running in a subprocess (see :func:`start_hostile_server`); ``with`` stops it.

    Attributes
    ----------
    url
        ``http://127.0.0.1:PORT`` (no trailing slash).
    root
        The directory it serves.
    process
        The subprocess.
    """

    url: str
    root: Path
    process: subprocess.Popen[bytes]
    tls_trickle_port: int | None = None

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.url.rsplit(":", 1)[1])

    def url_for(self, mode: str, relative: str) -> str:
        """Return the URL of file ``relative`` (under ``root``) served through ``mode``."""
        return f"{self.url}/{mode}/{urllib.parse.quote(relative)}"

    def requests(self) -> list[dict[str, Any]]:
        """Every request received since the last :meth:`reset` (method, path, headers)."""
        with urllib.request.urlopen(f"{self.url}/__log__", timeout=10) as response:
            log: list[dict[str, Any]] = json.loads(response.read())
        return [entry for entry in log if entry["path"] != "/__log__"]

    def reset(self) -> None:
        """Empty the request record."""
        request = urllib.request.Request(f"{self.url}/__reset__", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        """Stop the subprocess by pid and wait for it."""
        stop_process(self.process)


def start_hostile_server(
    root: str | os.PathLike[str],
    *,
    trickle_interval: float = 1.0,
    max_seconds: float = 30.0,
    bomb_mib: int = 256,
    lifetime: float = 600.0,
    tls_trickle: bool = False,
) -> HostileServer:
    """Start the server on a free port in a subprocess; return once it listens.

    Raises
    ------
    RuntimeError
        If it does not start (it is then stopped).
    """
    cmd = [
        sys.executable,
        "-m",
        "tests.servers.hostile_http",
        "--root",
        str(root),
        "--trickle-interval",
        str(trickle_interval),
        "--max-seconds",
        str(max_seconds),
        "--bomb-mib",
        str(bomb_mib),
        "--lifetime",
        str(lifetime),
        *(["--tls-trickle"] if tls_trickle else []),
    ]

    def make(url: str, process: subprocess.Popen[bytes], **extra: str) -> HostileServer:
        port = int(extra["tls-trickle"]) if "tls-trickle" in extra else None
        return HostileServer(url=url, root=Path(root), process=process, tls_trickle_port=port)

    return start_serving(cmd, make, HostileServer.requests, "hostile HTTP server", 20.0, cwd=_REPO)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--root DIR [--port 0] [--trickle-interval S] [--max-seconds S] [--lifetime S]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--trickle-interval", type=float, default=1.0)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--bomb-mib", type=int, default=256)
    parser.add_argument("--lifetime", type=float, default=600.0)
    parser.add_argument(
        "--tls-trickle", action="store_true", help="also listen for TLS clients to trickle to"
    )
    args = parser.parse_args(argv)
    settings = _Settings(Path(args.root), args.trickle_interval, args.max_seconds, args.bomb_mib)
    server = make_server(settings, args.host, args.port)
    server.RequestHandlerClass.bomb.append(_make_bomb(settings.bomb_mib))  # type: ignore[attr-defined]
    extra = ""
    if args.tls_trickle:
        listener = socket.create_server((args.host, 0))
        threading.Thread(target=_serve_tls_trickle, args=(listener, settings), daemon=True).start()
        extra = f" tls-trickle={listener.getsockname()[1]}"
    print(f"serving http://{args.host}:{server.server_address[1]}{extra}", flush=True)
    timer = threading.Timer(args.lifetime, server.shutdown)
    timer.daemon = True
    timer.start()  # never outlives a forgotten test run
    serve(server)


if __name__ == "__main__":
    main()
