"""The request handler the test servers share: quiet, JSON answers, request bodies read by length."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    """A ``BaseHTTPRequestHandler`` that logs nothing and answers control requests with JSON."""

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _send_json(self, status: int, payload: Any) -> None:
        """Answer ``status`` with ``payload`` as JSON (``Content-Type`` and ``Content-Length`` set)."""
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        """The request's body (``Content-Length`` bytes; none without the header)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""
