"""A file server for hostile side-car tests: ranged GETs of a folder; side-car names answered as ``--mode`` says.

``plain``: every file as it is; ``get403``: a side-car name (``.aux.xml``/``.msk``/``.ovr``) answers
``HEAD`` with ``200`` and its length, ``GET`` with ``403`` (a bucket policy allowing HEAD only);
``gzip``: a side-car is sent ``Content-Encoding: gzip``; ``bigaux<N>``: every ``.aux.xml`` is a PAM
document (nodata 100) padded with spaces to N bytes, made as it is read; ``chunkedaux<N>``: the same sent
whole and chunked (no length, Range ignored). ``GET /_log`` gives every
request's method, path, headers and the body bytes sent (JSON).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIDECARS = (".aux.xml", ".msk", ".ovr")


class _Padded:
    """A PAM document of ``size`` bytes (nodata 100, then spaces), sliced without being held whole."""

    HEAD = b"<PAMDataset><PAMRasterBand band='1'><NoDataValue>100</NoDataValue></PAMRasterBand>"
    TAIL = b"</PAMDataset>"

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, part: slice) -> bytes:
        start, stop, _ = part.indices(self.size)
        body = bytearray(b" " * max(stop - start, 0))
        for offset, text in ((0, self.HEAD), (self.size - len(self.TAIL), self.TAIL)):
            for k, byte in enumerate(text):
                if start <= offset + k < stop:
                    body[offset + k - start] = byte
        return bytes(body)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--mode", default="plain")
    args = parser.parse_args()
    log: list[dict[str, str]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: object) -> None:
            pass

        def _send(self, status: int, data: bytes, body: bool, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _chunked(self, data: _Padded, body: bool) -> None:
            """The whole document, Range ignored, chunked: no length in a HEAD's or a GET's answer."""
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Content-Type", "text/xml")
            self.end_headers()
            if not body:
                return
            sent = 0
            for start in range(0, len(data), 1 << 20):
                part = data[start : start + (1 << 20)]
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                sent += len(part)
                with lock:
                    log[-1]["sent"] = sent
            self.wfile.write(b"0\r\n\r\n")

        def _answer(self, body: bool) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/_log":
                with lock:
                    self._send(200, json.dumps(log).encode(), True, {})
                return
            with lock:
                log.append({"method": self.command, "path": path, "headers": dict(self.headers.items())})
            file = os.path.join(args.root, urllib.parse.unquote(path).lstrip("/"))
            if args.mode.startswith("chunkedaux") and path.endswith(".aux.xml"):
                self._chunked(_Padded(int(args.mode[10:])), body)
                return
            if args.mode.startswith("bigaux") and path.endswith(".aux.xml"):
                data: bytes | _Padded = _Padded(int(args.mode[6:]))
            elif not os.path.isfile(file):
                self._send(404, b"", body, {})
                return
            else:
                with open(file, "rb") as f:
                    data = f.read()
            sidecar = path.endswith(SIDECARS)
            if sidecar and args.mode == "get403" and body:
                self._send(403, b"<Error>AccessDenied</Error>", body, {})
                return
            if sidecar and args.mode == "gzip":
                packed = gzip.compress(data)
                self._send(200, packed, body, {"Content-Encoding": "gzip", "Content-Type": "text/xml"})
                return
            start, end, status = 0, len(data) - 1, 200
            ranged = self.headers.get("Range", "")
            if ranged.startswith("bytes="):
                first, _, last = ranged[6:].partition("-")
                start, end, status = int(first), min(int(last or len(data) - 1), len(data) - 1), 206
            headers = {"Accept-Ranges": "bytes"}
            if status == 206:
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            part = data[start : end + 1]
            if body:
                with lock:
                    log[-1]["sent"] = len(part)
            self._send(status, part, body, headers)

        def do_GET(self) -> None:
            self._answer(True)

        def do_HEAD(self) -> None:
            self._answer(False)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"serving http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
