"""The range server of :mod:`tests.servers.http_range`, answering only URLs signed like a presigned/SAS URL.

A file is served only to a ``GET`` whose query string is exactly
:data:`SIGNED_QUERY` (several parameters, the signature last, as in S3
presigned and Azure SAS URLs). Any other query, an extra suffix on the
signature included (``...&sig=...-journal``), or none, gets ``403``, and so
does every ``HEAD`` (a URL signed for ``GET`` only, as GCS V4 and SAS URLs
may be). The control endpoints (``/__stats__``, ``/__reset__``, ...) are
the range server's.

Run it as ``python tests/servers/signed_range.py --root DIR --port 0``;
:func:`start_signed_server` does that in a subprocess.
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from http.server import ThreadingHTTPServer
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``tests`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.servers.http_range import RangeServer, _Handler, _State, start_range_script
from tests.servers.process import serve

#: The one query string the server accepts (``sig`` stands for a signature: a secret in messages).
SIGNATURE = "c2lnbmF0dXJlLW9mLXRoZS10ZXN0LXNlcnZlcg"
SIGNED_QUERY = f"sv=2024-01-01&se=2030-01-01T00%3A00%3A00Z&sp=r&sig={SIGNATURE}"


class _SignedHandler(_Handler):
    def _serve(self, *, head: bool) -> None:
        parts = urllib.parse.urlsplit(self.path)
        if head or parts.query != SIGNED_QUERY:
            self._status_only(403, parts.path, head)
            return
        super()._serve(head=head)


def make_signed_server(root: str, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Build (not start) a signed server for ``root``."""
    handler = type("SignedHandler", (_SignedHandler,), {"state": _State(root=Path(root))})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def start_signed_server(root: str | Path, *, timeout: float = 20.0) -> RangeServer:
    """Start the server on a free port in a subprocess (stopped by pid with ``RangeServer.stop``)."""
    return start_range_script([__file__, "--port", "0"], root, "signed range server", timeout=timeout)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--root DIR --port PORT``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    server = make_signed_server(args.root, args.host, args.port)
    print(f"serving http://{args.host}:{server.server_address[1]}", flush=True)
    serve(server)


if __name__ == "__main__":
    main()
