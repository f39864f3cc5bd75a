"""redis-py connections whose replies have a deadline, not only a timeout per read.

redis-py waits ``socket_timeout`` for each read from the socket, so a server
that sends a reply a byte at a time (each under the timeout) holds a command
for as long as it likes. These connections give each reply
``socket_timeout`` plus a second for each MiB received so far (the floor
rate :data:`terrapipe.cache.redis_wire._SLOWEST` of the store's own reader),
checked before every read: past it the read fails as a timeout, which
:class:`~terrapipe.cache.redis_store.RedisStore` reports as a
:class:`~terrapipe.core.errors.CacheError`.

The socket redis-py reads (TLS or not) is wrapped in a :class:`_TimedSocket`
that counts bytes and checks the deadline, through
:func:`terrapipe._compat.redis_connection_wrapping_socket` (redis-py's
private ``_connect``); everything else is passed through.

Examples
--------
>>> connection_class("rediss://h:6380/0").__name__, connection_class("unix:///r.sock").__name__
('DeadlineSSLConnection', 'DeadlineUnixDomainSocketConnection')
"""

from __future__ import annotations

import time
from typing import Any

from redis.connection import AbstractConnection, Connection, SSLConnection, UnixDomainSocketConnection

from terrapipe._compat import redis_connection_wrapping_socket

__all__ = ["connection_class"]

#: Bytes a second a reply may be as slow as, past the timeout (as redis_wire's reader).
_SLOWEST = 1 << 20


class _TimedSocket:
    """A socket whose reads fail once the reply being read is past its deadline (see the module doc)."""

    def __init__(self, sock: Any, owner: Any) -> None:
        self._sock = sock
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def _check(self) -> None:
        started = self._owner.reply_started
        if started is None:
            return
        allowed = float(self._owner.socket_timeout or 0) + self._owner.reply_bytes / _SLOWEST
        if self._owner.socket_timeout and time.monotonic() - started > allowed:
            raise TimeoutError(
                "the reply did not come whole within its deadline (the timeout, and 1 s a MiB)"
            )

    def recv(self, *args: Any, **kwargs: Any) -> bytes:
        self._check()
        data: bytes = self._sock.recv(*args, **kwargs)
        if self._owner.reply_started is not None:
            self._owner.reply_bytes += len(data)
        return data

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        self._check()
        got: int = self._sock.recv_into(*args, **kwargs)
        if self._owner.reply_started is not None:
            self._owner.reply_bytes += got
        return got


class _Deadlines:
    """A mixin for a redis-py connection class: each ``read_response`` has a deadline."""

    reply_started: float | None = None
    reply_bytes = 0

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        self.reply_started, self.reply_bytes = time.monotonic(), 0
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        finally:
            self.reply_started = None


def _with_deadlines(base: type, name: str, doc: str) -> type[AbstractConnection]:
    mixed = type(name, (_Deadlines, base), {"__doc__": doc, "__module__": __name__})
    return redis_connection_wrapping_socket(mixed, _TimedSocket)  # type: ignore[return-value]


DeadlineConnection = _with_deadlines(
    Connection, "DeadlineConnection", "``redis://``: a TCP connection whose replies have a deadline."
)
DeadlineSSLConnection = _with_deadlines(
    SSLConnection, "DeadlineSSLConnection", "``rediss://``: a TLS connection whose replies have a deadline."
)
DeadlineUnixDomainSocketConnection = _with_deadlines(
    UnixDomainSocketConnection,
    "DeadlineUnixDomainSocketConnection",
    "``unix://``: a unix-socket connection whose replies have a deadline.",
)


def connection_class(url: str) -> type[AbstractConnection]:
    """Return the connection class with deadlines for ``url``'s scheme (the one redis-py would pick)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme == "rediss":
        return DeadlineSSLConnection
    if scheme == "unix":
        return DeadlineUnixDomainSocketConnection
    return DeadlineConnection
