"""A small threaded HTTP server for tests: serves a directory with byte ranges.

It answers ``GET`` and ``HEAD`` for the files under ``--root`` with the parts of
HTTP that cloud readers (GDAL's ``/vsicurl/``, zarr stores, fsspec) rely on:

- ``Accept-Ranges: bytes``, ``Content-Length``, ``Last-Modified`` and ``ETag``;
- a single ``Range: bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` answered with
  ``206 Partial Content`` and ``Content-Range``; an unsatisfiable range with
  ``416`` and ``Content-Range: bytes */SIZE``; a header it cannot parse, or
  several ranges at once, is ignored (``200`` with the whole file, as RFC 9110
  allows);
- keep-alive connections (HTTP/1.1);
- a plain HTML listing for directories.

Tests talk to it through control endpoints (names starting with ``__`` are
never files):

- ``GET /__stats__``: JSON ``{"total_bytes", "total_requests",
  "faults_served", "paths": {path: {"requests", "bytes", "statuses"}},
  "log": [...]}`` with the body bytes served per path (the last 2000
  requests are in ``log``);
- ``POST /__reset__``: zero the counters;
- ``POST /__settle__`` with JSON ``{"timeout": 5}``: wait until no file
  request is being answered (at most ``timeout`` s), answer
  ``{"inflight": n}`` (what is still being answered);
- ``POST /__faults__`` with JSON ``{"prefix": "/a.tif", "status": 503,
  "count": 2, "delay": 0.0, "retry_after": null, "kind": "status",
  "rate": 1.0, "seed": 0}``: the next ``count`` requests (``null``: all)
  whose path starts with ``prefix`` wait ``delay`` seconds and then, by
  ``kind``:

  - ``"status"`` (default): get ``status`` (``0`` or ``null``: answer
    normally after the delay);
  - ``"drop"``: the connection is closed without an answer;
  - ``"truncate"``: the answer's headers promise the whole body, half of it
    is sent, then the connection is closed.

  With ``rate`` below 1 each matching request is hit with that probability
  only (from a generator seeded with ``seed``, so a run is repeatable);
  ``count`` then counts the requests hit. ``"cycle": [{"kind", "status",
  "delay"}, ...]`` makes successive hits take those faults in turn (a mix of
  faults at one overall rate). ``DELETE /__faults__`` removes
  every fault. Every request hit is logged with ``"fault": kind``
  (``"delay"`` for a delayed normal answer) and counted by kind in the
  stats' ``"faults_served"``.

Run it as ``python tests/servers/http_range.py --root DIR --port 0``: it prints
``serving http://127.0.0.1:PORT`` on its first line of output once it listens.
:func:`start_range_server` does that in a subprocess and returns a handle.
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import html
import json
import mimetypes
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``tests`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.servers.faults import Fault, take_fault
from tests.servers.handler import JsonHandler
from tests.servers.process import Stoppable, serve, start_serving, stop_process

__all__ = [
    "RangeServer",
    "make_server",
    "parse_range",
    "range_server",
    "start_range_script",
    "start_range_server",
]

_REPO = Path(__file__).resolve().parents[2]

_CHUNK = 256 * 1024
_LOG_SIZE = 2000


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """Parse one ``Range`` header against a file of ``size`` bytes.

    Returns ``(start, end_inclusive)`` for a satisfiable single range,
    ``None`` when the header is absent, malformed or asks for several ranges
    (serve the whole file), and ``"unsatisfiable"`` for a 416.

    >>> parse_range("bytes=0-9", 100), parse_range("bytes=90-", 100), parse_range("bytes=-5", 100)
    ((0, 9), (90, 99), (95, 99))
    >>> parse_range("bytes=100-", 100), parse_range("bytes=0-1,5-6", 100), parse_range("items=1-2", 100)
    ('unsatisfiable', None, None)
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            suffix = int(last)
            if suffix < 0:
                return None
            if suffix == 0 or size == 0:
                return "unsatisfiable"
            return max(0, size - suffix), size - 1
        start = int(first)
        end = int(last) if last else None
    except ValueError:
        return None
    if start < 0 or (end is not None and end < start):
        return None
    if start >= size:
        return "unsatisfiable"
    return start, size - 1 if end is None else min(end, size - 1)


@dataclass
class _State:
    root: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    paths: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=_LOG_SIZE))
    faults: list[Fault] = field(default_factory=list)
    faults_served: dict[str, int] = field(default_factory=dict)
    inflight: int = 0
    idle: threading.Condition = field(default_factory=threading.Condition)

    def settle(self, timeout: float) -> int:
        """Wait until no file request is being answered (at most ``timeout`` s); return how many still are."""
        with self.idle:
            self.idle.wait_for(lambda: self.inflight == 0, timeout)
            return self.inflight

    def record(
        self,
        method: str,
        path: str,
        status: int,
        sent: int,
        range_header: str | None,
        fault: str | None = None,
    ) -> None:
        with self.lock:
            entry = self.paths.setdefault(path, {"requests": 0, "bytes": 0, "statuses": {}})
            entry["requests"] += 1
            entry["bytes"] += sent
            entry["statuses"][str(status)] = entry["statuses"].get(str(status), 0) + 1
            if fault is not None:
                self.faults_served[fault] = self.faults_served.get(fault, 0) + 1
            self.log.append(
                {
                    "method": method,
                    "path": path,
                    "status": status,
                    "bytes": sent,
                    "range": range_header,
                    "fault": fault,
                }
            )

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            paths = json.loads(json.dumps(self.paths))
            return {
                "total_bytes": sum(p["bytes"] for p in paths.values()),
                "total_requests": sum(p["requests"] for p in paths.values()),
                "faults_served": dict(self.faults_served),
                "paths": paths,
                "log": list(self.log),
            }

    def reset(self) -> None:
        with self.lock:
            self.paths.clear()
            self.log.clear()
            self.faults_served.clear()

    def take_fault(self, path: str) -> Fault | None:
        return take_fault(self.faults, self.lock, path)


class _Handler(JsonHandler):
    protocol_version = "HTTP/1.1"
    server_version = "terrapipe-range/1"
    state: _State  # set on the subclass made by make_server

    # -- control endpoints ------------------------------------------------
    def do_POST(self) -> None:
        """Handle the control endpoints ``/__reset__`` and ``/__faults__``."""
        path = urllib.parse.urlsplit(self.path).path
        body = self._read_body()
        if path == "/__reset__":
            self.state.reset()
            self._send_json(200, {"ok": True})
        elif path == "/__settle__":
            try:
                timeout = float(json.loads(body or b"{}").get("timeout", 5.0))
            except (TypeError, ValueError, AttributeError) as err:
                self._send_json(400, {"error": f"bad settle spec: {err}"})
                return
            self._send_json(200, {"inflight": self.state.settle(timeout)})
        elif path == "/__faults__":
            try:
                fault = Fault.from_spec(json.loads(body or b"{}"))
            except (KeyError, TypeError, ValueError) as err:
                self._send_json(400, {"error": f"bad fault spec: {err}"})
                return
            with self.state.lock:
                self.state.faults.append(fault)
            self._send_json(200, {"ok": True})
        else:
            self._send_json(404, {"error": f"no control endpoint {path}"})

    def do_DELETE(self) -> None:
        """Handle ``DELETE /__faults__`` (remove every fault)."""
        path = urllib.parse.urlsplit(self.path).path
        self._read_body()
        if path == "/__faults__":
            with self.state.lock:
                self.state.faults.clear()
            self._send_json(200, {"ok": True})
        else:
            self._send_json(405, {"error": "DELETE is only for /__faults__"})

    # -- files ------------------------------------------------------------
    def do_HEAD(self) -> None:
        """Answer like GET, without a body."""
        self._serve(head=True)

    def do_GET(self) -> None:
        """Serve a file (or a range of it), a directory listing, or the stats."""
        if urllib.parse.urlsplit(self.path).path == "/__stats__":
            self._send_json(200, self.state.snapshot())
            return
        self._serve(head=False)

    def _status_only(
        self,
        status: int,
        path: str,
        head: bool,
        extra: dict[str, str] | None = None,
        fault: str | None = None,
    ) -> None:
        body = b"" if head else f"{status} {HTTPStatus(status).phrase}: {path}\n".encode()
        self.send_response(status)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.state.record(self.command, path, status, len(body), self.headers.get("Range"), fault)

    def _resolve(self, path: str) -> Path | None:
        relative = urllib.parse.unquote(path).lstrip("/")
        target = (self.state.root / relative).resolve()
        root = self.state.root.resolve()
        if target != root and root not in target.parents:
            return None
        return target

    def _serve(self, *, head: bool) -> None:
        with self.state.idle:
            self.state.inflight += 1
        try:
            self._serve_counted(head=head)
        finally:
            with self.state.idle:
                self.state.inflight -= 1
                self.state.idle.notify_all()

    def _serve_counted(self, *, head: bool) -> None:
        path = urllib.parse.urlsplit(self.path).path
        fault = self.state.take_fault(path)
        truncate = False
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.kind == "drop":
                self.close_connection = True
                self.state.record(self.command, path, 0, 0, self.headers.get("Range"), "drop")
                return
            truncate = fault.kind == "truncate"
            if fault.status and not truncate:
                extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                self._status_only(fault.status, path, head, extra, fault="status")
                return
        target = self._resolve(path)
        if target is None or not target.exists():
            self._status_only(404, path, head)
            return
        if target.is_dir():
            self._listing(target, path, head)
            return
        self._send_file(target, path, head, truncate=truncate, delayed=fault is not None)

    def _listing(self, target: Path, path: str, head: bool) -> None:
        base = path if path.endswith("/") else path + "/"
        rows = []
        for child in sorted(target.iterdir()):
            name = child.name + ("/" if child.is_dir() else "")
            rows.append(
                f'<a href="{html.escape(base + urllib.parse.quote(name))}">{html.escape(name)}</a><br>'
            )
        body = ("<html><body>\n" + "\n".join(rows) + "\n</body></html>\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        sent = 0
        if not head:
            self.wfile.write(body)
            sent = len(body)
        self.state.record(self.command, path, 200, sent, self.headers.get("Range"))

    def _send_file(
        self, target: Path, path: str, head: bool, *, truncate: bool = False, delayed: bool = False
    ) -> None:
        stat = target.stat()
        size = stat.st_size
        range_header = self.headers.get("Range")
        wanted = parse_range(range_header, size)
        common = {
            "Accept-Ranges": "bytes",
            "Last-Modified": email.utils.formatdate(stat.st_mtime, usegmt=True),
            "ETag": f'"{stat.st_mtime_ns:x}-{size:x}"',
            "Content-Type": mimetypes.guess_type(target.name)[0] or "application/octet-stream",
        }
        if wanted == "unsatisfiable":
            self._status_only(416, path, head, {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})
            return
        if wanted is None:
            status, start, end = 200, 0, size - 1
        else:
            assert not isinstance(wanted, str)
            status, (start, end) = 206, wanted
        length = max(0, end - start + 1)
        self.send_response(status)
        for key, value in common.items():
            self.send_header(key, value)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        sent = 0
        if not head and length:
            with target.open("rb") as handle:
                handle.seek(start)
                remaining = length // 2 if truncate else length
                while remaining:
                    chunk = handle.read(min(_CHUNK, remaining))
                    if not chunk:
                        break
                    try:
                        self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        break
                    sent += len(chunk)
                    remaining -= len(chunk)
        if truncate:
            self.close_connection = True  # the client sees a body shorter than Content-Length
            self.wfile.flush()
        fault = "truncate" if truncate else ("delay" if delayed else None)
        self.state.record(self.command, path, status, sent, range_header, fault)


def make_server(root: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Build (not start) a server for ``root``; ``port=0`` picks a free port."""
    state = _State(root=Path(root))
    handler = type("RangeHandler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


# -- the handle tests use -------------------------------------------------
@dataclass
class RangeServer(Stoppable):
    """A range server running in a subprocess (see :func:`start_range_server`).

    Attributes
    ----------
    url
        ``http://127.0.0.1:PORT`` (no trailing slash).
    root
        The directory it serves.
    process
        The subprocess; :meth:`stop` ends it by pid.
    """

    url: str
    root: Path
    process: subprocess.Popen[bytes]

    def url_for(self, path: str | os.PathLike[str]) -> str:
        """Return the URL of a file under ``root`` (absolute or relative path)."""
        p = Path(path)
        relative = p.resolve().relative_to(self.root.resolve()) if p.is_absolute() else p
        return f"{self.url}/{urllib.parse.quote(relative.as_posix())}"

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stats(self, *, settle: bool = True) -> dict[str, Any]:
        """Return the counters (see the module doc), after the answers still being sent have ended.

        A request is counted when its answer ends, which can be after the client has all its bytes:
        counts read right after a read lagged by one under load (test_netcdf_classic's coalescing test
        in CI). ``settle=False`` reads them at once (a test holding a request open on purpose).
        """
        if settle:
            self.settle(5.0)
        result: dict[str, Any] = self._call("GET", "/__stats__")
        return result

    def bytes_served(self, path: str | None = None) -> int:
        """Body bytes served for one URL path (``/a.tif``), or in total.

        A request is counted when its answer ends, which can be after the
        client has all its bytes: the answers still being sent are waited for
        first (at most 5 s), else a read that just finished could count 0.
        """
        stats = self.stats()  # settles first
        if path is None:
            return int(stats["total_bytes"])
        return int(stats["paths"].get(path, {}).get("bytes", 0))

    def reset(self) -> None:
        """Zero the counters, after the answers still being sent have ended (else one counts after the reset)."""
        self.settle(5.0)
        self._call("POST", "/__reset__", {})

    def fault(
        self,
        prefix: str,
        *,
        status: int | None = 500,
        count: int | None = None,
        delay: float = 0.0,
        retry_after: float | None = None,
        kind: str = "status",
        rate: float = 1.0,
        seed: int = 0,
        cycle: list[dict[str, Any]] | None = None,
    ) -> None:
        """Make requests under ``prefix`` fail with ``status`` (after ``delay`` s).

        ``kind="drop"`` closes the connection unanswered, ``kind="truncate"``
        sends half the body; ``rate`` < 1 hits that share of the matching
        requests (seeded by ``seed``); ``cycle`` takes the faults of a list in
        turn. See the module doc.
        """
        spec = {
            "prefix": prefix,
            "status": status,
            "count": count,
            "delay": delay,
            "retry_after": retry_after,
            "kind": kind,
            "rate": rate,
            "seed": seed,
            "cycle": cycle or [],
        }
        self._call("POST", "/__faults__", spec)

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._call("DELETE", "/__faults__")

    def settle(self, timeout: float = 5.0) -> int:
        """Wait until the server answers no file request (at most ``timeout`` s); return how many it still does.

        A request is logged and counted when its answer ends; the answer to a
        request whose client went away (GDAL drops the body of its size
        ``GET``) ends when the server notices, which can be after the client
        has moved on to the next test.
        """
        result: dict[str, int] = self._call("POST", "/__settle__", {"timeout": timeout})
        return int(result["inflight"])

    @contextlib.contextmanager
    def cleared(self) -> Iterator[RangeServer]:
        """Hand the server out with no faults and zeroed counters, and remove its faults after.

        The counters are zeroed once no answer of an earlier test is still
        being written (waiting at most 5 s), so none is counted in this one.
        """
        self.clear_faults()
        self.settle()
        self.reset()
        try:
            yield self
        finally:
            self.clear_faults()

    def stop(self) -> None:
        """Stop the subprocess by pid and wait for it."""
        stop_process(self.process)


def start_range_server(root: str | os.PathLike[str], *, timeout: float = 20.0) -> RangeServer:
    """Start the server on a free port in a subprocess; wait until it answers.

    Raises
    ------
    RuntimeError
        If it does not answer within ``timeout`` seconds (it is then stopped).
    """
    return start_range_script([__file__, "--port", "0"], root, "range server", timeout=timeout)


def start_range_script(
    args: list[str],
    root: str | os.PathLike[str],
    what: str,
    *,
    timeout: float = 20.0,
    kind: type[RangeServer] = RangeServer,
    ping: Callable[[Any], Any] = RangeServer.stats,
) -> RangeServer:
    """Run a server script built on this one (``[file or "-m", module, options...]``, from the repository
    root) serving ``root`` (``--root`` is added); wait until ``ping`` answers, as :func:`start_range_server`.
    Its handle is a ``kind`` (a :class:`RangeServer` subclass for a script that adds to it).
    """
    cmd = [sys.executable, *args, "--root", os.path.abspath(root)]
    return start_serving(
        cmd,
        lambda url, process: kind(url=url, root=Path(root), process=process),
        ping,
        what,
        timeout,
        cwd=_REPO,
    )


def range_server(root: str | os.PathLike[str]) -> RangeServer:
    """:func:`start_range_server`, for ``with range_server(root) as server:`` (stopped on exit)."""
    return start_range_server(root)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--root DIR --port PORT [--host 127.0.0.1]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", required=True, help="directory to serve")
    parser.add_argument("--port", type=int, default=0, help="port (0: a free one, printed at start)")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    server = make_server(args.root, args.host, args.port)
    port = server.server_address[1]
    print(f"serving http://{args.host}:{port}", flush=True)
    serve(server)


if __name__ == "__main__":
    main()
