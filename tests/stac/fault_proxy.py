"""A fault-injecting HTTP proxy for tests: real STAC API answers, plus the failures we ask for.

It forwards every request to ``--upstream`` (e.g. ``rustac serve``) and
rewrites the upstream's address in the answers to its own, so ``next`` links
come back through it. Tests steer it with control endpoints:

- ``POST /__faults__`` with JSON ``{"prefix": "/search", "status": 500,
  "count": 2, "delay": 0.0, "retry_after": null, "body": null, "kind":
  "status", "rate": 1.0, "seed": 0}``: the next ``count`` requests
  (``null``: all) whose path starts with ``prefix`` wait ``delay`` seconds,
  then get ``status`` with ``body`` (and ``Retry-After``); ``status``
  ``null`` forwards after the delay. ``kind`` ``"drop"`` closes the
  connection without an answer; ``"truncate"`` forwards, but sends only half
  of the upstream's body (its ``Content-Length`` promises all of it) and
  closes. With ``rate`` below 1 a matching request is hit with that
  probability (seeded by ``seed``). ``DELETE /__faults__`` clears.
- ``GET /__log__``: every request so far: method, path, query, headers, body.
- ``POST /__reset__``: clear the log.

Run it as ``python tests/stac/fault_proxy.py --upstream URL --port 0``; it
prints ``serving http://127.0.0.1:PORT`` once it listens.
:func:`start_fault_proxy` does that in a subprocess.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``tests`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.servers.faults import Fault, take_fault
from tests.servers.handler import JsonHandler
from tests.servers.process import Stoppable, serve, start_serving, stop_process


@dataclass
class _State:
    upstream: str
    own: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: list[Fault] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)

    def take(self, path: str) -> Fault | None:
        return take_fault(self.faults, self.lock, path)


class _Handler(JsonHandler):
    protocol_version = "HTTP/1.1"
    state: _State

    def _reply(
        self, status: int, body: bytes, headers: dict[str, str] | None = None, *, truncate: bool = False
    ) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if truncate:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True  # the client sees a body shorter than Content-Length
            return
        self.wfile.write(body)

    def do_DELETE(self) -> None:
        """Clear the faults."""
        self._read_body()
        with self.state.lock:
            self.state.faults.clear()
        self._send_json(200, {"ok": True})

    def do_GET(self) -> None:
        """Log, or forward."""
        if self.path == "/__log__":
            with self.state.lock:
                self._send_json(200, list(self.state.log))
            return
        self._forward(b"")

    def do_POST(self) -> None:
        """Control endpoints, or forward."""
        body = self._read_body()
        if self.path == "/__faults__":
            try:
                fault = Fault.from_spec(json.loads(body))
            except (KeyError, TypeError, ValueError) as err:
                self._send_json(400, {"error": f"bad fault spec: {err}"})
                return
            with self.state.lock:
                self.state.faults.append(fault)
            self._send_json(200, {"ok": True})
            return
        if self.path == "/__reset__":
            with self.state.lock:
                self.state.log.clear()
            self._send_json(200, {"ok": True})
            return
        self._forward(body)

    def _forward(self, body: bytes) -> None:
        parts = urllib.parse.urlsplit(self.path)
        with self.state.lock:
            self.state.log.append(
                {
                    "method": self.command,
                    "path": parts.path,
                    "query": parts.query,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": json.loads(body) if body else None,
                }
            )
        fault = self.state.take(parts.path)
        truncate = False
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.kind == "drop":
                self.close_connection = True
                return
            truncate = fault.kind == "truncate"
            if fault.status and not truncate:
                extra = {"Content-Type": "text/plain"}
                if fault.retry_after is not None:
                    extra["Retry-After"] = f"{fault.retry_after:g}"
                text = fault.body if fault.body is not None else f"injected {fault.status}"
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._reply(int(fault.status), text.encode(), extra)
                return
        upstream = urllib.parse.urlsplit(self.state.upstream)
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")
        }
        conn.request(self.command, self.path, body=body or None, headers=headers)
        response = conn.getresponse()
        content = response.read()
        conn.close()
        content = content.replace(self.state.upstream.encode(), self.state.own.encode())
        kept = {k: v for k, v in response.getheaders() if k.lower() in ("content-type",)}
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._reply(response.status, content, kept, truncate=truncate)


@dataclass
class FaultProxy(Stoppable):
    """A running proxy (see :func:`start_fault_proxy`)."""

    url: str
    process: subprocess.Popen[bytes]

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def fault(
        self,
        prefix: str,
        *,
        status: int | None = 500,
        count: int | None = None,
        delay: float = 0.0,
        retry_after: float | None = None,
        body: str | None = None,
        kind: str = "status",
        rate: float = 1.0,
        seed: int = 0,
    ) -> None:
        """Make the next ``count`` requests under ``prefix`` fail (see the module doc)."""
        spec = {
            "prefix": prefix,
            "status": status,
            "count": count,
            "delay": delay,
            "retry_after": retry_after,
            "body": body,
            "kind": kind,
            "rate": rate,
            "seed": seed,
        }
        self._call("POST", "/__faults__", spec)

    def clear(self) -> None:
        """Remove the faults and the log."""
        self._call("DELETE", "/__faults__")
        self._call("POST", "/__reset__", {})

    def log(self) -> list[dict[str, Any]]:
        """Requests forwarded or failed so far."""
        result: list[dict[str, Any]] = self._call("GET", "/__log__")
        return result

    def stop(self) -> None:
        """Stop the subprocess by pid."""
        stop_process(self.process)


def start_fault_proxy(upstream: str, *, timeout: float = 20.0) -> FaultProxy:
    """Start the proxy for ``upstream`` on a free port; return once it answers."""
    command = [sys.executable, str(Path(__file__).resolve()), "--upstream", upstream, "--port", "0"]
    return start_serving(command, FaultProxy, FaultProxy.log, "STAC fault proxy", timeout)


def main() -> None:
    """Command line: ``--upstream URL --port PORT``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    state = _State(upstream=args.upstream.rstrip("/"))
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    state.own = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"serving {state.own}", flush=True)
    serve(server)


if __name__ == "__main__":
    main()
