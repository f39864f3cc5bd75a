"""The latency test server answers without Nagle's delay, as an object store does."""

from __future__ import annotations

import urllib.request

from tests.servers.latency_http import latency_server


def test_every_connection_has_tcp_nodelay_and_the_link_counts(tmp_path):
    (tmp_path / "small.bin").write_bytes(b"x" * 100)
    with latency_server(tmp_path, latency=0.0) as server:
        link = server.link()
        assert link["nodelay"] is True  # read on the very connection that asked
        assert (link["latency"], link["rate"]) == (0.0, 50e6)
        for _ in range(3):
            with urllib.request.urlopen(f"{server.url}/small.bin", timeout=10) as answer:
                assert answer.read() == b"x" * 100
        assert server.link()["requests"] == 3
        assert server.link()["nodelay"] is True


def test_small_answers_on_one_keep_alive_connection_arrive_whole(tmp_path):
    # headers and body go out in two writes; both must arrive on a reused connection
    import http.client

    (tmp_path / "small.bin").write_bytes(bytes(range(256)) * 4)
    with latency_server(tmp_path, latency=0.0) as server:
        host, port = server.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            for lo in range(0, 1024, 128):
                connection.request("GET", "/small.bin", headers={"Range": f"bytes={lo}-{lo + 99}"})
                answer = connection.getresponse()
                assert answer.status == 206
                assert answer.read() == (bytes(range(256)) * 4)[lo : lo + 100]
        finally:
            connection.close()
