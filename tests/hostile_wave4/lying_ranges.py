"""A range server for hostile tests: signed-URL checks on odd queries, and ranges answered wrongly.

Built on :mod:`tests.servers.http_range` (same files, listing, stats). What it adds, by path:

- ``/signed/<name>?<query>``: served only when the raw query is exactly the text of the file
  ``<root>/<name>.query`` (so a test can sign a URL with ``&``, ``=``, ``%2F``, ``+``, unicode,
  a long query...); any other query, none, or a ``HEAD`` gets ``403``;
- ``/shifted/<name>``: a range request from ``SHIFT`` on (past a small file's header) is answered
  ``206`` with the bytes ``SHIFT`` before, labelled truthfully in ``Content-Range`` (not the
  range asked for); ranges starting before ``SHIFT`` are answered right;
- ``/lying/<name>``: the same bytes, labelled as the range asked for (a server that lies: nothing
  a client can check, named here so tests can say so);
- ``/whole/<name>``: a range request gets ``200`` and the whole file (RFC 9110 allows it);
- every request's path that carried an ``Authorization`` header is appended to ``<root>/`` :data:`SEEN`.

Run as ``python tests/hostile_wave4/lying_ranges.py --root DIR --port 0``; :func:`start_lying_server`
does that in a subprocess (stopped by pid).
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from http.server import ThreadingHTTPServer
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``tests`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.servers.http_range import RangeServer, _Handler, _State, parse_range, start_range_script
from tests.servers.process import serve

#: The file (under the root) listing the path of every request that carried an ``Authorization`` header.
SEEN = "__authorized__.txt"
#: How far a shifted answer is from the range asked for.
SHIFT = 4096


class _LyingHandler(_Handler):
    def _serve(self, *, head: bool) -> None:
        parts = urllib.parse.urlsplit(self.path)
        if self.headers.get("Authorization") is not None:  # who got a credential (values not kept)
            with self.state.lock, (self.state.root / SEEN).open("a", encoding="utf-8") as seen:
                seen.write(parts.path + "\n")
        mode, _, rest = parts.path.lstrip("/").partition("/")
        if mode == "signed":
            expected = self._resolve("/" + rest + ".query")
            if head or expected is None or not expected.exists():
                self._status_only(403, parts.path, head)
                return
            if parts.query != expected.read_text(encoding="utf-8"):
                self._status_only(403, parts.path, head)
                return
            self.path = "/" + rest
            super()._serve(head=head)
            return
        if mode in ("shifted", "lying", "whole"):
            target = self._resolve("/" + rest)
            if target is None or not target.is_file():
                self._status_only(404, parts.path, head)
                return
            self._answer_wrongly(mode, target, parts.path, head)
            return
        super()._serve(head=head)

    def _answer_wrongly(self, mode: str, target: Path, path: str, head: bool) -> None:
        data = target.read_bytes()
        size = len(data)
        wanted = parse_range(self.headers.get("Range"), size)
        if wanted is None or isinstance(wanted, str) or mode == "whole":
            status, start, end = 200, 0, size - 1
            label = None
        elif wanted[0] < SHIFT:  # the header: as asked
            status, (start, end) = 206, wanted
            label = f"bytes {start}-{end}/{size}"
        else:
            asked_start, asked_end = wanted
            start = asked_start - SHIFT  # never past the end: a reader's check of the last block passes
            end = asked_end - SHIFT
            status = 206
            label = f"bytes {asked_start}-{asked_start + end - start}/{size}" if mode == "lying" else None
            label = label or f"bytes {start}-{end}/{size}"
        body = data[start : end + 1]
        self.send_response(status)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if label:
            self.send_header("Content-Range", label)
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self.state.record(self.command, path, status, 0 if head else len(body), self.headers.get("Range"))


def make_lying_server(root: str, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Build (not start) the server for ``root``."""
    handler = type("LyingHandler", (_LyingHandler,), {"state": _State(root=Path(root))})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def start_lying_server(root: str | Path, *, host: str = "127.0.0.1", timeout: float = 20.0) -> RangeServer:
    """Start the server on a free port of ``host`` in a subprocess (stopped by pid with ``RangeServer.stop``)."""
    args = [__file__, "--port", "0", "--host", host]
    return start_range_script(args, root, "lying range server", timeout=timeout)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--root DIR --port PORT``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    server = make_lying_server(args.root, args.host, args.port)
    print(f"serving http://{args.host}:{server.server_address[1]}", flush=True)
    serve(server)


if __name__ == "__main__":
    main()
