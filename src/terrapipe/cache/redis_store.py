"""``RedisStore``: cache entries in a Redis database (redis-py).

Each entry is one Redis string under ``prefix + key`` (an entry stored as
parts, :mod:`terrapipe.cache.parts`: a manifest and one string per part),
optionally with a time to live. The cache stage writes an entry in one
``MULTI``/``EXEC`` transaction with its key watched
(:meth:`RedisStore.replace_parts`): its value or its parts and manifest, and
the deletion of the parts of a manifest it replaces, are applied together
or not at all (a client killed mid-way leaves nothing); the parts are packed
and sent one at a time, so a write holds one part's bytes, not the entry's
(a 130 MiB entry: about 8 MiB, and as much again compressed). To a server
on another machine (``redis://`` or ``rediss://`` with a host that is not a
loopback address) the value is by default the entry compressed in Blosc LZ4
frames (:func:`~terrapipe.cache.frames.compress_entry`; about 0.6 of the size
of uint16 imagery): a hit moves fewer bytes through the server and the
network, and decodes them straight into a buffer it owns
(:meth:`RedisStore.get_buffer`), which the hit's arrays then share. To a
server on this machine (a unix socket, ``unix://``, or ``redis://`` to
``127.0.0.0/8``, ``::1`` or ``localhost``: no network between) the value is
by default the entry as it is: the socket moves bytes faster than LZ4 decodes
them, so a hit is cheapest read straight into its buffer (measured in
``docs/benchmarks/layers.md``, over TCP on 127.0.0.1 and a unix socket;
``compress="lz4"`` keeps the server's memory smaller). Over ``redis://`` and ``unix://`` a
reader of its own takes the value off the socket
(:mod:`terrapipe.cache.redis_wire`): a plain value straight into the hit's
buffer, a compressed one frame by frame, each decoded while the next arrives.
Every store reads both layouts, whichever it writes (a compressed value
starts with its own magic bytes, which no entry does): entries written
before a default changed, or by a store with another ``compress``, are hits.
The checksum is the entry's own, verified on the decoded bytes; a value that
does not decode, or fails its checksum, is a corrupt entry (recomputed and
overwritten). Entries larger than ``max_entry_bytes``
(before compression; all its parts together for an entry stored as parts,
:mod:`terrapipe.cache.parts`) are refused (counted in ``refused``) rather
than sent: Redis keeps everything in memory, and its own limit for one value
is 512 MiB. The parts of an entry are read with pipelined ``GET`` commands
(:meth:`RedisStore.get_buffers`): the server sends the next while this one
is decoded.

The client is created lazily in each process (after a DataLoader worker
forks, or after unpickling in a ``spawn`` worker), with timeouts, so a dead
server fails fast with a :class:`~terrapipe.core.errors.CacheError` that
names the URL rather than hanging; each reply also has a deadline (the
timeout and a second a MiB: :mod:`terrapipe.cache.redis_deadline`), so a
server trickling a reply a byte at a time is given up on too. Errors never
show the URL's user, password or query, as written or decoded, even where
the server echoes them (:mod:`terrapipe.cache.redis_secrets`).

Examples
--------
>>> store = RedisStore("redis://127.0.0.1:6379/0", ttl=3600, max_entry_bytes=64 * 2**20)
>>> store
RedisStore('redis://127.0.0.1:6379/0', ttl=3600, max_entry_bytes=67108864)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from terrapipe.cache.entry import CorruptEntryError
from terrapipe.cache.frames import FRAME_MAGIC, check_codec, compress_entry, decompress_entry
from terrapipe.cache.redis_secrets import leaks, masked, url_secrets
from terrapipe.cache.redis_wire import RedisReader, supported
from terrapipe.core.checks import check_positive_int
from terrapipe.core.errors import CacheError, InvalidArgumentError, TerrapipeError
from terrapipe.core.loopback import is_loopback_host
from terrapipe.core.optional import require
from terrapipe.core.redact import public_url

if TYPE_CHECKING:
    from terrapipe.cache.parts import EntryParts

__all__ = ["RedisStore"]

#: Most ``SCAN`` pages one listing reads (a thousand names each: a billion keys).
_MAX_SCAN_PAGES = 1_000_000
#: Held while a store makes its client, so threads using a store for the first time at once share one.
_CLIENT_LOCK = threading.Lock()


def _is_local(url: object) -> bool:
    """Whether ``url`` names a server on this machine: a unix socket, or ``redis://`` to a loopback host.

    ``rediss://`` (TLS) is not counted (not measured); a loopback host is
    :func:`~terrapipe.core.loopback.is_loopback_host`'s (no name is resolved).

    >>> [_is_local(u) for u in ("unix:///tmp/r.sock", "redis://127.0.0.1:6379/0", "redis://[::1]:6379")]
    [True, True, True]
    >>> [_is_local(u) for u in ("redis://cache.example.org:6379/0", "rediss://127.0.0.1:6379/0")]
    [False, False]
    """
    if not isinstance(url, str):
        return False
    scheme = url.split("://", 1)[0].lower()
    if scheme == "unix":
        return True
    if scheme != "redis":
        return False
    try:
        return is_loopback_host(urlsplit(url).hostname)
    except ValueError:
        return False


class RedisStore:
    """Cache backend on a Redis server (see the module doc).

    Parameters
    ----------
    url
        ``redis://[:password@]host:port/db``, ``rediss://...`` or ``unix:///path.sock``.
    ttl
        Seconds an entry lives after it is written (``None``: until evicted
        by the server's ``maxmemory-policy`` or deleted).
    max_entry_bytes
        Entries larger than this are not stored.
    prefix
        Prepended to every key, so several caches can share a database.
    timeout
        Seconds to wait to connect and for each reply; over ``redis://`` and
        ``unix://`` a value must also have come whole within ``timeout`` and
        one second a MiB (a server trickling a reply is given up on).
    compress
        ``"lz4"`` or ``"zstd"``: values are compressed entries (see the
        module doc); ``False``: values are the entries as they are (read
        straight into the hit's buffer over ``redis://`` and ``unix://``;
        over ``rediss://`` what a hit reads is copied for writable arrays);
        ``None`` (the default): ``False`` to a server on this machine (a
        unix socket, a loopback host), ``"lz4"`` otherwise. Values of
        either layout are read, whichever this is.

    Attributes
    ----------
    refused
        Entries not stored because they exceed ``max_entry_bytes``.

    Raises
    ------
    InvalidArgumentError
        For a bad ``ttl``, ``max_entry_bytes`` or ``timeout``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        ttl: float | None = None,
        max_entry_bytes: int = 64 * 2**20,
        prefix: str = "terrapipe:cache:",
        timeout: float = 10.0,
        compress: str | bool | None = None,
    ) -> None:
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0):
            raise InvalidArgumentError(f"ttl must be None or a positive number of seconds, got {ttl!r}")
        max_entry_bytes = check_positive_int(max_entry_bytes, "max_entry_bytes")
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidArgumentError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if compress is None:  # measured: with no network between, a plain value is the fastest hit
            compress = not _is_local(url)
        if compress is True:
            compress = "lz4"
        #: Codec of the values (``None``: the entries as they are).
        self.codec: str | None = None if compress is False else check_codec(compress)
        self.url = url
        self.ttl = ttl
        self.max_entry_bytes = max_entry_bytes
        self.prefix = prefix
        self.timeout = float(timeout)
        self.refused = 0
        self._client: Any = None
        self._reader: RedisReader | None = None
        self._pid = -1

    def __repr__(self) -> str:
        default = None if _is_local(self.url) else "lz4"
        codec = "" if self.codec == default else f", compress={self.codec or False!r}"
        return f"RedisStore({public_url(self.url)!r}, ttl={self.ttl}, max_entry_bytes={self.max_entry_bytes}{codec})"

    @property
    def shown(self) -> str:
        """The URL as reprs and errors show it: ``scheme://host:port/db``, no user, password or query."""
        return public_url(self.url)

    def _said(self, err: BaseException) -> str:
        """``str(err)`` with the URL and any secret of it (user, password, query; as written and decoded) masked."""
        return masked(str(err).replace(self.url, self.shown), url_secrets(self.url))

    def _cause(self, err: BaseException) -> BaseException | None:
        """``err`` to chain to the error raised, or ``None`` where its text shows a secret.

        A server that refuses ``AUTH`` may echo its arguments (the password
        decoded), and a chained cause is printed with the traceback.
        """
        return None if leaks(err, url_secrets(self.url)) else err

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_client=None, _pid=-1, _reader=None)
        return state

    @property
    def client(self) -> Any:
        """The ``redis.Redis`` client of this process (created on first use, by one thread).

        Threads that first use a store at once share one client: a second
        client made meanwhile replaced the first, whose collection (redis-py
        closes a client's pool when it is collected) cut the connections
        other threads were using (``Bad file descriptor`` mid-transaction).
        """
        client = self._client
        if client is not None and self._pid == os.getpid():
            return client
        with _CLIENT_LOCK:
            if self._client is None or self._pid != os.getpid():
                self._client = self._new_client()
                self._pid = os.getpid()
            return self._client

    def _new_client(self) -> Any:
        redis = require("redis", feature="RedisStore")
        from terrapipe.cache.redis_deadline import connection_class

        try:
            return redis.Redis.from_url(
                self.url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                connection_class=connection_class(self.url),  # a reply has a deadline
            )
        except ValueError as err:
            msg = f"invalid Redis URL {self.shown!r}: {self._said(err)}"
            raise InvalidArgumentError(msg) from self._cause(err)

    def _wire_reader(self) -> RedisReader:
        """Return the store's GET reader (one per store: its connections are per thread)."""
        reader = self._reader
        if reader is None:
            with _CLIENT_LOCK:
                if self._reader is None:
                    self._reader = RedisReader(self.url, timeout=self.timeout)
                reader = self._reader
        return reader

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except TerrapipeError:
            raise
        except Exception as err:  # redis-py's errors, and its bare ones on a reply it cannot parse
            msg = (
                f"cannot {what} at {self.shown}: {self._said(err)}; check that the Redis server runs and the "
                "URL is right"
            )
            raise CacheError(msg) from self._cause(err)

    def get(self, key: str) -> bytes | None:
        """Return the entry's bytes (decoded), or ``None``.

        Raises
        ------
        CorruptEntryError
            For a compressed value that does not decode (see the module doc).
        """
        blob = self.get_buffer(key)
        return None if blob is None else bytes(blob)

    def get_buffer(self, key: str) -> memoryview | None:
        """Return the entry's bytes, or ``None``: in a new writable buffer the caller owns.

        A compressed value is decoded into it, a plain one read into it
        (over ``rediss://``, a plain value comes back as the read-only bytes
        Redis sent), whichever layout this store writes.

        Raises
        ------
        CorruptEntryError
            For a value that does not decode (see the module doc).
        """
        if supported(self.url):
            name = (self.prefix + key).encode()
            return self._wire_reader().get(name, key, max_bytes=self.max_entry_bytes)
        data = self._call(f"read cache entry {key}", "get", self.prefix + key)
        if data is None:
            return None
        if bytes(data[: len(FRAME_MAGIC)]) == FRAME_MAGIC:
            return decompress_entry(data, key, max_bytes=self.max_entry_bytes)
        return memoryview(data)

    def get_buffers(self, keys: Sequence[str]) -> Iterator[memoryview | None]:
        """Yield :meth:`get_buffer` of each key in turn; over ``redis://`` and ``unix://``, pipelined.

        The next ``GET`` is sent before this value is decoded, so the server
        sends it meanwhile (the parts of a large entry,
        :mod:`terrapipe.cache.parts`). Stop early by closing the iterator.
        """
        if supported(self.url):
            names = [(self.prefix + key).encode() for key in keys]
            yield from self._wire_reader().get_many(names, list(keys), max_bytes=self.max_entry_bytes)
            return
        for key in keys:
            yield self.get_buffer(key)

    def put(self, key: str, data: bytes) -> bool:
        """Store an entry with one ``SET`` (compressed: see the module doc).

        ``False`` (nothing sent) when the entry exceeds ``max_entry_bytes``.
        """
        if len(data) > self.max_entry_bytes:
            self.refused += 1
            return False
        self._call(f"write cache entry {key}", "set", self.prefix + key, self._value(data), px=self._px())
        return True

    def _value(self, data: bytes | bytearray | memoryview) -> bytes:
        return bytes(data) if self.codec is None else compress_entry(data, self.codec)

    def _px(self) -> int | None:
        return None if self.ttl is None else max(1, int(self.ttl * 1000))

    def replace_parts(self, key: str, value: bytes | EntryParts) -> bool:
        """Store an entry, one value or its parts and manifest, in one transaction; drop the parts it replaces.

        ``MULTI``/``EXEC`` with the entry's key watched: the parts, the
        manifest (or the value) and the deletion of the parts named by the
        manifest it replaces are applied together or not at all (a client
        killed mid-way leaves nothing; a writer whose key changed since it
        read it retries, three times at most, then gives up: ``False``, as
        when the entry exceeds ``max_entry_bytes``). The parts of an
        :class:`~terrapipe.cache.parts.EntryParts` are packed, compressed and
        sent one at a time, each queued by the server before the next is
        packed, so the write holds one part's bytes at a time, not the
        entry's. Used by :func:`~terrapipe.cache.parts.write_parts` and
        :func:`~terrapipe.cache.parts.write_value`.

        Raises
        ------
        CacheError
            When the server cannot be reached or refuses a command.
        """
        from terrapipe.cache.parts import EntryParts

        size = value.nbytes if isinstance(value, EntryParts) else len(value)
        if size > self.max_entry_bytes:
            self.refused += 1
            return False
        try:
            for _ in range(3):
                if self._transaction(key, value):
                    return True
        except TerrapipeError:
            raise
        except Exception as err:  # redis-py's errors, and its bare ones on a reply it cannot parse
            msg = f"cannot write cache entry {key} at {self.shown}: {self._said(err)}; check that the Redis server runs"
            raise CacheError(msg) from self._cause(err)
        return False

    def _transaction(self, key: str, value: bytes | EntryParts) -> bool:
        """One try of :meth:`replace_parts` on a connection of its own; ``False``: the key changed meanwhile.

        Each command's reply is read before the next is sent; on anything
        wrong the connection is closed, so the server drops the queued
        commands and the watch (nothing is applied) and no connection goes
        back to the pool inside a transaction.
        """
        from terrapipe.cache.parts import MANIFEST_MAX_BYTES, EntryParts, manifest_parts

        name, px = self.prefix + key, self._px()
        expiry = () if px is None else ("PX", px)
        pool = self.client.connection_pool
        connection = pool.get_connection()

        def command(*args: Any) -> Any:
            connection.send_command(*args)
            return connection.read_response()

        try:
            command("WATCH", name)
            old = command("GET", name) if (command("STRLEN", name) or 0) <= MANIFEST_MAX_BYTES else None
            ours = set(value.names) if isinstance(value, EntryParts) else set()
            replaced = sorted(manifest_parts(self._decoded(old, key), key) - ours)
            command("MULTI")
            if isinstance(value, EntryParts):
                for part, blob in value:
                    command("SET", self.prefix + part, memoryview(self._value(blob)), *expiry)
                    del blob  # one part's bytes at a time (a memoryview is sent as it is, not copied)
                value = value.manifest
            command("SET", name, memoryview(self._value(value)), *expiry)
            if replaced:
                command("DEL", *(self.prefix + part for part in replaced))
            applied = command("EXEC")
            for reply in applied or ():
                if isinstance(reply, Exception):
                    raise reply
            return applied is not None
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)

    def _decoded(self, value: bytes | None, key: str) -> bytes | None:
        """Return a stored value as the entry it holds (``None``: none, or one that does not decode)."""
        if value is None or bytes(value[: len(FRAME_MAGIC)]) != FRAME_MAGIC:
            return value
        try:
            return bytes(decompress_entry(value, key, max_bytes=self.max_entry_bytes))
        except CorruptEntryError:
            return None

    def delete(self, key: str) -> None:
        """Remove an entry if present."""
        self._call(f"delete cache entry {key}", "delete", self.prefix + key)

    def keys(self) -> Iterator[str]:
        """Yield the keys under this store's prefix (``SCAN``, so the server is not blocked)."""
        start = len(self.prefix)
        for name in self._scan():
            yield bytes(name)[start:].decode()

    def _scan(self) -> list[bytes]:
        """Return the names under the prefix (``SCAN``); a cursor the server gave before is refused (no end)."""
        names: list[bytes] = []
        seen: set[int] = set()
        try:
            cursor = 0
            while True:
                cursor, page = self.client.scan(cursor=cursor, match=self._pattern(), count=1000)
                names.extend(page)
                cursor = int(cursor)
                if cursor == 0:
                    return names
                if cursor in seen or len(seen) >= _MAX_SCAN_PAGES:
                    msg = (
                        f"cannot list cache entries at {self.shown}: the server's SCAN cursors do not end "
                        f"(cursor {cursor} after {len(seen)} pages); check that the server is Redis"
                    )
                    raise CacheError(msg)
                seen.add(cursor)
        except TerrapipeError:
            raise
        except Exception as err:  # redis-py's errors, and its bare ones on a reply it cannot parse
            msg = f"cannot list cache entries at {self.shown}: {self._said(err)}; check the server"
            raise CacheError(msg) from self._cause(err)

    def _pattern(self) -> str:
        escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in self.prefix)
        return escaped + "*"

    def ttl_of(self, key: str) -> float | None:
        """Seconds left to live of an entry (``None``: no TTL or no entry)."""
        ms = self._call(f"read the TTL of {key}", "pttl", self.prefix + key)
        return None if ms is None or ms < 0 else ms / 1000

    def clear(self) -> None:
        """Remove every entry under this store's prefix."""
        names = self._scan()
        for i in range(0, len(names), 1000):
            self._call("clear the cache", "delete", *names[i : i + 1000])

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return bool(self._call(f"look up cache entry {key}", "exists", self.prefix + key))
