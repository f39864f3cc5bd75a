"""A file server for side-car tests: ranged GETs of a folder, and side-car names answered as ``--mode`` says.

``--mode hang``: a request for a side-car name (``.aux.xml``/``.msk``/``.ovr``) is never answered;
``garbage``: answered ``200`` with the raster's own bytes (a server that ignores the path's tail);
``slowN``: answered N seconds late;
``redirect``: answered ``302`` to the same path at ``--other`` (another origin). Every request's path
and its ``Authorization``/``X-Api-Key`` headers go to ``GET /_log`` (JSON lines).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIDECARS = (".aux.xml", ".msk", ".ovr", ".AUX", ".aux", ".MSK", ".OVR")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--mode", default="plain")
    parser.add_argument("--other", default="")
    args = parser.parse_args()
    log: list[dict[str, str]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: object) -> None:
            pass

        def _answer(self, body: bool) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/_log":
                with lock:
                    data = json.dumps(log).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            with lock:
                log.append({
                    "method": self.command, "path": path, "host": self.headers.get("Host", ""),
                    "auth": self.headers.get("Authorization", ""), "key": self.headers.get("X-Api-Key", ""),
                })  # fmt: skip
            sidecar = path.endswith(SIDECARS)
            if sidecar and args.mode == "hang":
                time.sleep(3600)
                return
            if sidecar and args.mode.startswith("slow"):  # slow4: every side-car answer 4 s late
                time.sleep(float(args.mode[4:]))
            if sidecar and args.mode == "redirect":
                self.send_response(302)
                self.send_header("Location", args.other + path)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if sidecar and args.mode == "html":
                page = b"<html><body>Not here</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                if body:
                    self.wfile.write(page)
                return
            if sidecar and args.mode == "garbage":
                path = path[: -len(next(s for s in SIDECARS if path.endswith(s)))]
            file = os.path.join(args.root, path.lstrip("/"))
            if not os.path.isfile(file):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            with open(file, "rb") as f:
                data = f.read()
            start, end, status = 0, len(data) - 1, 200
            ranged = self.headers.get("Range", "")
            if ranged.startswith("bytes="):
                first, _, last = ranged[6:].partition("-")
                start, end, status = int(first), min(int(last or len(data) - 1), len(data) - 1), 206
            part = data[start : end + 1]
            self.send_response(status)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            if body:
                self.wfile.write(part)

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
