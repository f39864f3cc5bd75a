"""A Redis ``GET`` of a cache entry, read off the socket into the hit's buffer as it arrives.

redis-py (with hiredis) reads a large value into a buffer it grows, then
copies it into a ``bytes`` object, and only then can the hit decode it. This
reader, on a connection of its own (one per process and thread, ``redis://``
and ``unix://`` URLs; TLS stays with redis-py), speaks the two RESP replies a
``GET`` can give. A value is read as what its first bytes say it is, whatever
the store writes: a compressed value (:mod:`terrapipe.cache.frames`) by its
frame table, then each Blosc frame with ``recv_into`` into one scratch buffer
(one per call, shared by the values it reads), decoded straight into the
entry's buffer while the server is still sending the next one; any other
value (an entry or a manifest stored as it is) straight into the hit's
buffer. The frame table is checked as
:func:`~terrapipe.cache.frames.decompress_entry` checks it, the entry's own
checksum afterwards; on anything wrong, the connection is closed (never left
mid-reply) and the entry is corrupt. Each read waits ``timeout`` at most, and
a whole reply must have come within ``timeout`` and a second a MiB (a server
trickling a byte at a time is given up on); what the server says is
repeated in errors with the URL's secrets masked (a refused ``AUTH`` may be
echoed: :mod:`terrapipe.cache.redis_secrets`).

Examples
--------
>>> reader = RedisReader("redis://127.0.0.1:6379/0", timeout=5.0)
>>> reader
RedisReader('redis://127.0.0.1:6379/0')
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Generator, Sequence
from typing import Any

import numpy as np

from terrapipe.cache.entry import CorruptEntryError
from terrapipe.cache.frames import FRAME_MAGIC, decode_frame_into
from terrapipe.cache.redis_secrets import leaks, masked, url_secrets
from terrapipe.core.errors import CacheError
from terrapipe.core.redact import public_url

__all__ = ["RedisReader", "supported"]

_BLOSC_OVERHEAD = 16
_LINE_MAX = 1 << 16
#: Bytes a second a reply may be as slow as, past the timeout: a reply of n bytes must have come
#: whole within ``timeout + n / _SLOWEST`` seconds (each read waits ``timeout`` at most), so a
#: server that trickles a byte at a time is given up on, not waited for a read at a time.
_SLOWEST = 1 << 20
#: Where redis-py connects when a ``redis://`` URL names no host or no port.
_DEFAULT_HOST, _DEFAULT_PORT = "localhost", 6379


def supported(url: str) -> bool:
    """Whether :class:`RedisReader` serves ``url`` (``redis://`` and ``unix://``; not TLS)."""
    return url.split("://", 1)[0].lower() in ("redis", "unix")


class _Wire:
    """A socket with the bytes read ahead of a reply line."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = bytearray()
        self.deadline = float("inf")  # the reply being read must have come whole by then (monotonic)

    def _check(self) -> None:
        if time.monotonic() > self.deadline:
            raise TimeoutError(
                "the reply did not come whole within its deadline (the store's timeout, and 1 s a MiB)"
            )

    def line(self) -> bytes:
        while (end := self.pending.find(b"\r\n")) < 0:
            if len(self.pending) > _LINE_MAX:
                raise ConnectionError("a reply line is too long")
            self._check()
            chunk = self.sock.recv(_LINE_MAX)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.pending += chunk
        out = bytes(self.pending[:end])
        del self.pending[: end + 2]
        return out

    def read_into(self, view: memoryview) -> None:
        n = min(len(view), len(self.pending))
        view[:n] = self.pending[:n]
        del self.pending[:n]
        while n < len(view):
            self._check()
            got = self.sock.recv_into(view[n:])
            if not got:
                raise ConnectionError("the server closed the connection")
            n += got

    def send(self, *args: bytes) -> None:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            parts += [b"$%d\r\n" % len(arg), arg, b"\r\n"]
        self.sock.sendall(b"".join(parts))


class RedisReader:
    """Reads compressed entries with ``GET`` (see the module doc).

    Parameters
    ----------
    url
        ``redis://[[user]:password@]host:port/db`` or ``unix:///path.sock[?db=N]``.
    timeout
        Seconds to connect and to wait for each read.
    """

    def __init__(self, url: str, *, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"RedisReader({public_url(self.url)!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "timeout": self.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], timeout=state["timeout"])  # type: ignore[misc]

    def _wire(self) -> _Wire:
        wire: _Wire | None = getattr(self._local, "wire", None)
        if wire is not None and getattr(self._local, "pid", -1) == os.getpid():
            return wire
        from redis.connection import parse_url

        options = parse_url(self.url)  # type: ignore[no-untyped-call]
        sock = self._connect(options)
        try:
            wire = _Wire(sock)
            wire.deadline = time.monotonic() + self.timeout
            if options.get("password"):
                user = [options["username"].encode()] if options.get("username") else []
                wire.send(b"AUTH", *user, options["password"].encode())
                self._ok(wire, "AUTH")
            if options.get("db"):
                wire.send(b"SELECT", str(options["db"]).encode())
                self._ok(wire, "SELECT")
        except BaseException:
            sock.close()
            raise
        self._local.wire, self._local.pid = wire, os.getpid()
        return wire

    def _connect(self, options: dict[str, Any]) -> socket.socket:
        """Connect where redis-py connects for these options (``redis.connection.parse_url``'s).

        Its defaults where the URL leaves them out (``localhost``, 6379), and each address the host
        resolves to in turn (``localhost`` may be ``::1`` only), as redis-py does.
        """
        if "path" not in options:
            address = (options.get("host", _DEFAULT_HOST), options.get("port", _DEFAULT_PORT))
            sock = socket.create_connection(address, timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(options["path"])
        except BaseException:
            sock.close()
            raise
        return sock

    def _ok(self, wire: _Wire, what: str) -> None:
        reply = wire.line()
        if not reply.startswith(b"+"):  # a refusal may echo the password: masked
            said = masked(reply[:200].decode(errors="replace"), url_secrets(self.url))
            raise ConnectionError(f"{what} refused: {said}")

    def close(self) -> None:
        """Close this thread's connection (the next read opens another)."""
        wire: _Wire | None = getattr(self._local, "wire", None)
        self._local.wire = None
        if wire is not None and getattr(self._local, "pid", -1) == os.getpid():
            wire.sock.close()

    def _drop(self, wire: _Wire | None) -> None:
        """Close ``wire`` (a reply may be left on it), and forget it if it is this thread's."""
        if wire is None:  # it never connected
            return
        sock = wire.sock
        if getattr(self._local, "wire", None) is wire:
            self._local.wire = None
        sock.close()

    def get(self, name: bytes, key: str, *, max_bytes: int | None = None) -> memoryview | None:
        """``GET name`` into a new buffer the caller owns (``None``: no entry).

        A compressed value is decoded into the buffer, any other read straight
        into it (see the module doc). ``max_bytes``: a value announcing a
        larger entry is corrupt.

        Raises
        ------
        CorruptEntryError
            For a compressed value that does not decode.
        CacheError
            When the server cannot be reached or answers with an error.
        """
        values = self.get_many([name], [key], max_bytes=max_bytes)
        try:
            return next(values)
        finally:
            values.close()

    def get_many(
        self,
        names: Sequence[bytes],
        keys: Sequence[str],
        *,
        max_bytes: int | None = None,
        depth: int = 2,
    ) -> Generator[memoryview | None]:
        """Yield what :meth:`get` returns for each name, with up to ``depth`` ``GET`` commands in flight.

        The server sends the next value while this one is decoded
        (pipelining). Stopping early closes the connection (replies are
        still on their way: never left mid-reply). The iterator may be
        advanced from another thread than the one that started it, one
        thread at a time (it keeps the connection it started with).

        Raises
        ------
        CorruptEntryError, CacheError
            As :meth:`get` (the connection is closed).
        """
        sent = done = 0
        wire: _Wire | None = None
        scratch = _Scratch()
        try:
            wire = self._wire()
            while done < len(names):
                while sent < len(names) and sent - done < depth:
                    wire.send(b"GET", names[sent])
                    sent += 1
                value = self._reply(wire, keys[done], max_bytes, scratch)
                done += 1
                yield value
        except CorruptEntryError:
            self._drop(wire)  # never left mid-reply
            raise
        except (OSError, ConnectionError, ValueError) as err:
            self._drop(wire)
            key = keys[done] if done < len(keys) else keys[-1]
            secrets = url_secrets(self.url)
            msg = (
                f"cannot read cache entry {key} at {public_url(self.url)}: {masked(str(err), secrets)}; check "
                "that the Redis server runs and the URL is right"
            )
            raise CacheError(msg) from (None if leaks(err, secrets) else err)
        finally:
            if done < sent:  # stopped with replies on their way
                self._drop(wire)

    def _reply(self, wire: _Wire, key: str, max_bytes: int | None, scratch: _Scratch) -> memoryview | None:
        start = time.monotonic()
        wire.deadline = start + self.timeout
        head = wire.line()
        if head.startswith(b"-"):
            raise ConnectionError(masked(head[1:200].decode(errors="replace"), url_secrets(self.url)))
        if not head.startswith(b"$"):
            raise ConnectionError("not a reply to GET")
        size = int(head[1:])
        if size == -1:  # no such key
            return None
        if size < 0:
            raise ConnectionError(f"not a reply to GET (length {size})")
        wire.deadline = start + self.timeout + size / _SLOWEST
        magic = memoryview(bytearray(min(size, len(FRAME_MAGIC))))
        wire.read_into(magic)
        if magic == FRAME_MAGIC:
            out = self._frames(wire, size, key, max_bytes, scratch)
        else:
            out = self._plain(wire, size, key, max_bytes, magic)
        if wire.line() != b"":
            raise ConnectionError("the reply does not end where it says")
        return out

    @staticmethod
    def _plain(wire: _Wire, size: int, key: str, max_bytes: int | None, start: memoryview) -> memoryview:
        """Read a value stored as it is straight into a new buffer (one copy: the socket's)."""
        from terrapipe.cache import frames

        frames.check_announced(size, max_bytes, key)
        out = np.empty(size, dtype=np.uint8).data.cast("B")  # not zeroed: the value fills it
        out[: len(start)] = start
        wire.read_into(out[len(start) :])
        return out

    @staticmethod
    def _frames(wire: _Wire, size: int, key: str, max_bytes: int | None, scratch: _Scratch) -> memoryview:
        """Decode a compressed value (its magic already read) into a new buffer, frame by frame."""
        from terrapipe.cache import frames

        prefix = len(FRAME_MAGIC) + 12
        if size < prefix:
            raise CorruptEntryError(f"cache entry {key} is corrupt: not a compressed terrapipe cache entry")
        head = memoryview(bytearray(prefix - len(FRAME_MAGIC)))
        wire.read_into(head)
        nbytes, count = struct.unpack_from("<QI", head)
        frames.check_announced(nbytes, max_bytes, key)
        step = frames.FRAME_BYTES
        if count != -(-nbytes // step) or size < prefix + 8 * count:
            raise CorruptEntryError(f"cache entry {key} is corrupt: its frame table does not match its size")
        table = memoryview(bytearray(8 * count))
        wire.read_into(table)
        sizes = struct.unpack(f"<{count}Q", table)
        if prefix + 8 * count + sum(sizes) != size or any(s > step + _BLOSC_OVERHEAD for s in sizes):
            raise CorruptEntryError(f"cache entry {key} is corrupt: frame sizes do not match the value")
        out = np.empty(nbytes, dtype=np.uint8).data.cast("B")  # not zeroed: every frame fills its part
        for i, frame_size in enumerate(sizes):
            frame = scratch.take(frame_size)
            wire.read_into(frame)
            decode_frame_into(frame, out[i * step : min(nbytes, (i + 1) * step)], key)
        return out


class _Scratch:
    """One buffer a call's compressed frames are received into, grown as needed (never shrunk)."""

    def __init__(self) -> None:
        self.buffer = memoryview(b"")

    def take(self, size: int) -> memoryview:
        if len(self.buffer) < size:
            self.buffer = np.empty(size, dtype=np.uint8).data.cast("B")  # not zeroed: each frame fills it
        return self.buffer[:size]
