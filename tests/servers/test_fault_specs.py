"""Both fault-injecting servers (range server, STAC fault proxy) take one fault spec and refuse a bad one."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.servers.http_range import start_range_server
from tests.stac.fault_proxy import start_fault_proxy

BAD = [
    {"prefix": "/x", "kind": "nope"},
    {"prefix": "/x", "rate": 0},
    {"status": 500},
    [1],
    {"prefix": "/x", "count": "a"},
]


def _post(url: str, spec: Any) -> int:
    request = urllib.request.Request(f"{url}/__faults__", data=json.dumps(spec).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return err.code


@pytest.mark.parametrize("server", ["range", "proxy"])
def test_a_bad_fault_spec_is_answered_400_and_a_good_one_taken(server: str, tmp_path: Path) -> None:
    started = start_range_server(tmp_path) if server == "range" else start_fault_proxy("http://127.0.0.1:9")
    with started:
        assert [_post(started.url, spec) for spec in BAD] == [400] * len(BAD)
        assert _post(started.url, {"prefix": "/x", "status": 503, "count": 1, "retry_after": 2}) == 200
