"""Each spelling of this machine's address: one definition of loopback, and the socket reader gets there.

``core.loopback.is_loopback_host`` is what ``RedisStore`` asks to store entries plain on this machine;
``redis_wire.RedisReader`` must reach the server at every URL redis-py reaches (before: a URL with no
port, ``redis://localhost/0``, was a bare ``KeyError: 'port'``; ``localhost`` was tried over IPv4 only).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from terrapipe.cache import redis_wire
from terrapipe.cache.codec import encode_value
from terrapipe.cache.entry import pack_entry
from terrapipe.cache.redis_store import RedisStore
from terrapipe.cache.redis_wire import RedisReader
from terrapipe.core.errors import CacheError
from terrapipe.core.loopback import is_loopback_host
from tests.servers.redis_server import (
    RedisServer,
    find_redis_server,
    redis_server_or_skip,
    start_redis_server,
)

LOOPBACK = [
    "localhost", "LocalHost", "localhost.", "LOCALHOST.", "db.localhost", "a.b.localhost.",
    "127.0.0.1", "127.3.2.1", "127.255.255.254", "127.1", "127.0.1", "127.000.000.001", "0x7f.1", "2130706433",
    "::1", "[::1]", "0:0:0:0:0:0:0:1", "0000::0001", "::ffff:127.0.0.1", "[::ffff:127.1.2.3]",
]  # fmt: skip
NOT_LOOPBACK = [
    "", None, "example.org", "localhost.example.org", "mylocalhost", "localhostx", "local", "localhost..",
    "10.0.0.5", "128.0.0.1", "126.255.255.255", "0.0.0.0", "::", "[::]", "::2", "2001:db8::1",
    "::ffff:10.0.0.5", "[::1", "::1]", "127.0.0.1:6379", "127.0.0.256", " 127.0.0.1", "127.0.0.1 ",
    "127.0.0.1\x00", "fe80::1", "ünïcode", "a" * 300,
]  # fmt: skip


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_spellings_are_loopback(host: str) -> None:
    assert is_loopback_host(host)
    assert RedisStore(f"redis://{_in_url(host)}:6379/0").codec is None  # no network between: plain


@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_other_hosts_are_not(host: str | None) -> None:
    assert not is_loopback_host(host)


def _in_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@pytest.fixture(scope="module")
def both_families() -> Iterator[RedisServer]:
    """A redis-server on 127.0.0.1 and, where this machine has it, ::1 (``-``: optional)."""
    if find_redis_server() is None:
        redis_server_or_skip()  # fails with the install command (or skips where allowed)
    server = start_redis_server(extra_args=("--bind", "127.0.0.1", "-::1"))
    try:
        yield server
    finally:
        server.stop()


def _has_ipv6_loopback(port: int) -> bool:
    try:
        with socket.create_connection(("::1", port), timeout=2):
            return True
    except OSError:
        return False


URLS = [
    "redis://127.0.0.1:{port}/0",
    "redis://127.1:{port}/0",
    "redis://localhost:{port}/0",
    "REDIS://LocalHost:{port}",
    "redis://[::1]:{port}/0",
    "redis://[::ffff:127.0.0.1]:{port}/0",
]


@pytest.mark.parametrize("url", URLS)
def test_the_socket_reader_reaches_the_server_at_each_loopback_spelling(url: str, both_families: Any) -> None:
    url = url.format(port=both_families.port)
    if "[" in url and not _has_ipv6_loopback(both_families.port):
        pytest.skip("this machine has no IPv6 loopback (::1)")
    store = RedisStore(url, prefix=f"spell-{uuid.uuid4().hex[:8]}:")
    assert store.codec is None  # plain: the server is on this machine
    entry = pack_entry("k", [encode_value(np.arange(1000, dtype="uint16"))])
    assert store.put("k", entry)
    assert bytes(store.get_buffer("k") or b"") == entry
    assert isinstance(store._reader, RedisReader)  # the socket reader served it


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("redis://localhost/0", ("localhost", 6379)),
        ("redis://user:pw@localhost/2", ("localhost", 6379)),
        ("redis:///0", ("localhost", 6379)),
        ("redis://:pw@127.0.0.1:7000", ("127.0.0.1", 7000)),
        ("redis://[::1]/0", ("::1", 6379)),
    ],
)
def test_the_socket_reader_takes_redis_py_s_default_host_and_port(
    url: str, address: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[Any] = []

    def refuse(where: Any, timeout: Any = None, *args: Any, **kwargs: Any) -> Any:
        asked.append(where)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(redis_wire.socket, "create_connection", refuse)
    with pytest.raises(CacheError, match="check that the Redis server runs") as caught:
        RedisReader(url, timeout=1.0).get(b"k", "k")  # before: KeyError 'port' for a URL with none
    assert asked == [address]
    assert "pw" not in str(caught.value)
