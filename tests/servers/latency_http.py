"""A range server with a cloud-like link: a fixed latency per request and a rate cap per stream.

It is the server of :mod:`tests.servers.http_range` (byte ranges, keep-alive,
``/__stats__``, ``/__reset__``, faults) with two things added to every answer
for a file or directory (never to the control endpoints):

- ``latency`` seconds of waiting before the answer starts (default 0.030: a
  request to an object store in the same region);
- bodies sent at most ``rate`` bytes per second per connection (default
  50 MB/s: one stream of a cloud object store), so a client gets more
  throughput only by opening more connections, as in the cloud.

Its connections send without Nagle's delay (``TCP_NODELAY``), as an object
store's do. It also counts the requests being answered at once: ``GET /__link__`` returns
``{"latency", "rate", "in_flight", "peak_in_flight", "requests", "nodelay"}`` (``nodelay``:
whether that very connection has ``TCP_NODELAY`` set), and
``POST /__link__`` with JSON ``{"latency": s, "rate": bytes_per_s,
"reset_peak": true}`` (any subset) changes the link while it runs.

Run it as ``python tests/servers/latency_http.py --root DIR [--latency 0.03]
[--rate 50e6]``: it prints ``serving http://127.0.0.1:PORT`` on its first
line of output once it listens. :func:`start_latency_server` does that in a
subprocess and returns a handle (stopped by pid).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

if __package__ in (None, ""):  # run as a script: make ``tests.servers`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.servers.http_range import RangeServer, _Handler, _State, start_range_script
from tests.servers.process import serve

__all__ = ["LatencyServer", "latency_server", "make_latency_server", "start_latency_server"]

DEFAULT_LATENCY = 0.030
DEFAULT_RATE = 50e6
_SLICE = 64 * 1024  # bytes written between two rate checks


@dataclass
class _Link:
    latency: float
    rate: float
    lock: threading.Lock
    in_flight: int = 0
    peak_in_flight: int = 0
    requests: int = 0

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "latency": self.latency,
                "rate": self.rate,
                "in_flight": self.in_flight,
                "peak_in_flight": self.peak_in_flight,
                "requests": self.requests,
            }


class _Paced:
    """A write-only file that sends at most ``rate`` bytes per second since :meth:`restart`."""

    def __init__(self, raw: BinaryIO, link: _Link) -> None:
        self._raw = raw
        self._link = link
        self._start = time.monotonic()
        self._sent = 0

    def restart(self) -> None:
        self._start = time.monotonic()
        self._sent = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        for lo in range(0, len(view), _SLICE):
            part = view[lo : lo + _SLICE]
            self._raw.write(part)
            self._sent += len(part)
            rate = self._link.rate
            if rate > 0:
                wait = self._start + self._sent / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _LatencyHandler(_Handler):
    link: _Link  # set on the subclass made by make_latency_server
    # TCP_NODELAY on every connection: the headers and the body of an answer go out in two writes, and
    # with Nagle's algorithm the second small write waits for the client's delayed ACK of the first
    # (~40 ms on Linux), a stall real object stores do not have (measured: 60-76 ms per 30 ms request).
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.wfile = _Paced(self.wfile, self.link)  # type: ignore[assignment]

    def do_GET(self) -> None:
        if urllib.parse.urlsplit(self.path).path == "/__link__":
            nodelay = self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            self._send_json(200, {**self.link.snapshot(), "nodelay": bool(nodelay)})
            return
        super().do_GET()

    def do_POST(self) -> None:
        if urllib.parse.urlsplit(self.path).path != "/__link__":
            super().do_POST()
            return
        try:
            spec = json.loads(self._read_body() or b"{}")
            with self.link.lock:
                if spec.get("latency") is not None:
                    self.link.latency = max(0.0, float(spec["latency"]))
                if spec.get("rate") is not None:
                    self.link.rate = max(0.0, float(spec["rate"]))
                if spec.get("reset_peak"):
                    self.link.peak_in_flight = self.link.in_flight
                    self.link.requests = 0
        except (TypeError, ValueError) as err:
            self._send_json(400, {"error": f"bad link spec: {err}"})
            return
        self._send_json(200, self.link.snapshot())

    def _serve(self, *, head: bool) -> None:
        link = self.link
        with link.lock:
            link.in_flight += 1
            link.requests += 1
            link.peak_in_flight = max(link.peak_in_flight, link.in_flight)
            latency = link.latency
        try:
            if latency > 0:
                time.sleep(latency)
            self.wfile.restart()  # type: ignore[attr-defined]
            super()._serve(head=head)
        finally:
            with link.lock:
                link.in_flight -= 1


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many clients connect at once
    daemon_threads = True


def make_latency_server(
    root: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    latency: float = DEFAULT_LATENCY,
    rate: float = DEFAULT_RATE,
) -> ThreadingHTTPServer:
    """Build (not start) a latency server for ``root``; ``port=0`` picks a free port."""
    attrs = {"state": _State(root=Path(root)), "link": _Link(latency, rate, threading.Lock())}
    handler = type("LatencyHandler", (_LatencyHandler,), attrs)
    return _Server((host, port), handler)


@dataclass
class LatencyServer(RangeServer):
    """A latency server running in a subprocess (see :func:`start_latency_server`)."""

    def link(self) -> dict[str, Any]:
        """Return the link's settings and request counters (``peak_in_flight``, ...)."""
        result: dict[str, Any] = self._call("GET", "/__link__")
        return result

    def set_link(
        self, *, latency: float | None = None, rate: float | None = None, reset_peak: bool = False
    ) -> dict[str, Any]:
        """Change the latency (s) or the rate per stream (bytes/s; 0: no cap); zero the peak counter."""
        payload = {"latency": latency, "rate": rate, "reset_peak": reset_peak}
        result: dict[str, Any] = self._call("POST", "/__link__", payload)
        return result


def start_latency_server(
    root: str | os.PathLike[str],
    *,
    latency: float = DEFAULT_LATENCY,
    rate: float = DEFAULT_RATE,
    timeout: float = 20.0,
) -> LatencyServer:
    """Start the server on a free port in a subprocess; wait until it answers.

    Raises
    ------
    RuntimeError
        If it does not answer within ``timeout`` seconds (it is then stopped).
    """
    args = [__file__, "--port", "0", "--latency", repr(float(latency)), "--rate", repr(float(rate))]
    return start_range_script(
        args, root, "latency server", timeout=timeout, kind=LatencyServer, ping=LatencyServer.link
    )


def latency_server(
    root: str | os.PathLike[str], *, latency: float = DEFAULT_LATENCY, rate: float = DEFAULT_RATE
) -> LatencyServer:
    """:func:`start_latency_server`, for ``with latency_server(root) as server:`` (stopped on exit)."""
    return start_latency_server(root, latency=latency, rate=rate)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--root DIR [--port 0] [--latency 0.03] [--rate 50e6] [--host 127.0.0.1]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", required=True, help="directory to serve")
    parser.add_argument("--port", type=int, default=0, help="port (0: a free one, printed at start)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency", type=float, default=DEFAULT_LATENCY, help="seconds added per request")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="bytes/s per stream (0: no cap)")
    args = parser.parse_args(argv)
    server = make_latency_server(args.root, args.host, args.port, latency=args.latency, rate=args.rate)
    port = server.server_address[1]
    print(f"serving http://{args.host}:{port}", flush=True)
    serve(server)


if __name__ == "__main__":
    main()
