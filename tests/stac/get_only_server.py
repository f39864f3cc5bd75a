"""A range server whose signed URLs refuse ``HEAD``, as a URL signed for ``GET`` only does.

It is :mod:`tests.servers.http_range` (byte ranges, ``/__stats__``), except
that a request for a file whose query string has a ``sig`` parameter is
answered ``403 Forbidden`` when it is a ``HEAD`` (a GCS V4 signed URL, an
Azure SAS or a CDN token signs the method too). Run it as
``python -m tests.stac.get_only_server --root DIR`` from the repository root;
:func:`start_get_only_server` does that in a subprocess.
"""

from __future__ import annotations

import argparse
import urllib.parse
from pathlib import Path

from tests.servers.http_range import RangeServer, make_server, start_range_script
from tests.servers.process import serve


def _refusing_head(base: type) -> type:
    class Handler(base):  # type: ignore[misc, valid-type]
        def do_HEAD(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            if "sig" in urllib.parse.parse_qs(parts.query):
                self._status_only(403, parts.path, True)
                return
            super().do_HEAD()

    return Handler


def start_get_only_server(root: str | Path, *, timeout: float = 20.0) -> RangeServer:
    """Start the server on a free port in a subprocess; wait until it answers (stop it with ``.stop()``)."""
    return start_range_script(["-m", "tests.stac.get_only_server"], root, "GET-only server", timeout=timeout)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--root DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", required=True)
    args = parser.parse_args(argv)
    server = make_server(args.root)
    server.RequestHandlerClass = _refusing_head(server.RequestHandlerClass)
    print(f"serving http://127.0.0.1:{server.server_address[1]}", flush=True)
    serve(server)


if __name__ == "__main__":
    main()
