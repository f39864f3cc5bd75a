"""A Redis cache store facing a server that misbehaves never leaks its secret and never hangs (cache/redis_*.py).

Promised (DESIGN's trust rules): a ``RedisStore``'s password (with ``@ : / %`` in it, URL-encoded as a
URL must carry it, in the query, in a ``unix://`` URL, in ``rediss://`` with TLS parameters) shows in no
repr, error message, chained cause or traceback, even when the server echoes the command it refuses
(as Redis does: ``ERR unknown command 'AUTH', with args beginning with: ...``); a server that answers
garbage gives a :class:`~terrapipe.core.errors.CacheError`; one that never answers, or trickles a reply
a byte at a time, gives one within a bounded time (a deadline, not a per-read timeout only).
Each test runs a scripted RESP server on 127.0.0.1 (or a unix socket) in a thread of its own.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import terrapipe as tp
from terrapipe.cache.redis_store import RedisStore

PASSWORD = "h8:p@ss/w%rd-Secret"
ENCODED = urllib.parse.quote(PASSWORD, safe="")
SECRETS = (PASSWORD, ENCODED, "h8:p@ss", "Secret")


def read_command(conn: socket.socket, pending: bytearray) -> list[bytes] | None:
    """One RESP array of bulk strings off ``conn`` (``None``: the client went away)."""

    def line() -> bytes | None:
        while b"\r\n" not in pending:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            pending.extend(chunk)
        end = pending.index(b"\r\n")
        out = bytes(pending[:end])
        del pending[: end + 2]
        return out

    head = line()
    if head is None or not head.startswith(b"*"):
        return None
    args = []
    for _ in range(int(head[1:])):
        size = line()
        if size is None:
            return None
        n = int(size[1:])
        while len(pending) < n + 2:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            pending.extend(chunk)
        args.append(bytes(pending[:n]))
        del pending[: n + 2]
    return args


def echo_refusal(args: list[bytes]) -> bytes:
    """Redis's own answer to a command it does not know: the arguments, quoted."""
    quoted = " ".join(f"'{a.decode(errors='replace')}'" for a in args[1:])
    return f"-ERR unknown command '{args[0].decode()}', with args beginning with: {quoted} \r\n".encode()


def wrong_password(args: list[bytes]) -> bytes:
    if args[0].upper() == b"AUTH":
        return (
            b"-WRONGPASS invalid username-password pair or user is disabled. ("
            + b" ".join(args[1:])
            + b")\r\n"
        )
    return b"+OK\r\n"


Script = Callable[[socket.socket, list[bytes]], bool]


def answering(reply: Callable[[list[bytes]], bytes]) -> Script:
    def script(conn: socket.socket, args: list[bytes]) -> bool:
        conn.sendall(reply(args))
        return True

    return script


def after_auth(then: Callable[[socket.socket, list[bytes]], None]) -> Script:
    """Accept AUTH/SELECT/HELLO/CLIENT with +OK, then run ``then`` for the first other command."""

    def script(conn: socket.socket, args: list[bytes]) -> bool:
        if args[0].upper() == b"HELLO":  # redis-py's handshake (RESP3): a map, as Redis 7 sends
            conn.sendall(b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n")
            return True
        if args[0].upper() in (b"AUTH", b"SELECT", b"CLIENT", b"PING"):
            conn.sendall(b"+OK\r\n")
            return True
        then(conn, args)
        return False

    return script


@contextlib.contextmanager
def scripted_server(
    script: Script, unix: Path | None = None, tls: ssl.SSLContext | None = None
) -> Iterator[str]:
    """Serve ``script`` on a loopback port (or a unix socket; over TLS); yield ``host:port`` (or the socket path)."""
    family = socket.AF_UNIX if unix is not None else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind(str(unix) if unix is not None else ("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def serve(conn: socket.socket) -> None:
        pending = bytearray()
        with contextlib.suppress(OSError, ValueError):
            if tls is not None:
                conn.settimeout(5)
                conn = tls.wrap_socket(conn, server_side=True)
                conn.settimeout(None)
            while not stop.is_set():
                args = read_command(conn, pending)
                if args is None or not script(conn, args):
                    break
        stop.wait()  # hold the connection open until the test ends (a silent server)
        conn.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            conns.append(conn)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        if unix is not None:
            yield str(unix)
        else:
            host, port = listener.getsockname()
            yield f"{host}:{port}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()


def assert_no_secret(err: BaseException) -> None:
    text = "".join(traceback.format_exception(err))  # the chained causes too: what a log shows
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} in:\n{text}"


def bounded(call: Callable[[], object], seconds: float) -> BaseException:
    """Run ``call`` in a thread; return what it raised, failing if it runs past ``seconds``."""
    caught: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as err:
            caught.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s: a hang, not a deadline"
    assert caught, "the call returned"
    return caught[0]


def urls(address: str) -> dict[str, str]:
    return {
        "user": f"redis://h8user:{ENCODED}@{address}/0",
        "password only": f"redis://:{ENCODED}@{address}/1",
        "query": f"redis://{address}/0?password={ENCODED}",
    }


OPERATIONS: dict[str, Callable[[RedisStore], object]] = {
    "get": lambda store: store.get("k"),
    "put": lambda store: store.put("k", b"entry"),
    "contains": lambda store: "k" in store,
    "keys": lambda store: list(store.keys()),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("form", ["user", "password only", "query"])
@pytest.mark.parametrize("server", ["echo", "wrongpass"])
def test_a_server_that_echoes_the_password_never_shows_it(operation: str, form: str, server: str) -> None:
    """Redis echoes an unknown command's arguments (AUTH renamed away, a proxy): the password with them."""
    reply = echo_refusal if server == "echo" else wrong_password
    with scripted_server(answering(reply)) as address:
        store = RedisStore(urls(address)[form], timeout=2)
        assert_no_secret(Exception(repr(store)))
        err = bounded(lambda: OPERATIONS[operation](store), 10)
    assert isinstance(err, tp.TerrapipeError), repr(err)
    assert_no_secret(err)


def test_a_unix_socket_url_s_password_never_shows(tmp_path: Path) -> None:
    with scripted_server(answering(echo_refusal), unix=tmp_path / "r.sock") as path:
        for url in (f"unix://h8user:{ENCODED}@{path}?db=0", f"unix://{path}?db=0&password={ENCODED}"):
            store = RedisStore(url, timeout=2)
            assert_no_secret(Exception(repr(store)))
            for operation in OPERATIONS.values():
                err = bounded(lambda op=operation, s=store: op(s), 10)
                assert isinstance(err, tp.TerrapipeError), repr(err)
                assert_no_secret(err)


def test_a_tls_url_with_ssl_parameters_never_shows_its_password() -> None:
    """rediss:// to a server that does not speak TLS: the handshake fails; nothing secret in what is said."""
    with scripted_server(answering(echo_refusal)) as address:
        url = f"rediss://h8user:{ENCODED}@{address}/0?ssl_cert_reqs=none&ssl_check_hostname=false"
        store = RedisStore(url, timeout=2)
        assert_no_secret(Exception(repr(store)))
        for operation in OPERATIONS.values():
            err = bounded(lambda op=operation, s=store: op(s), 10)
            assert isinstance(err, tp.TerrapipeError), repr(err)
            assert_no_secret(err)


GARBAGE = {
    "not a reply": b"hello\r\n",
    "integer": b":1\r\n",
    "bad length": b"$abc\r\n",
    "negative length": b"$-5\r\n",
    "huge length": b"$999999999999\r\n",
    "array": b"*1\r\n$1\r\nx\r\n",
    "short then closed": b"$100\r\nabc",
    "longer than said": b"$3\r\nabcdef\r\n",
    "binary": bytes(range(256)) + b"\r\n",
}


@pytest.mark.parametrize("reply", list(GARBAGE.values()), ids=list(GARBAGE))
def test_a_server_that_answers_garbage_gives_a_cache_error(reply: bytes) -> None:
    def send(conn: socket.socket, args: list[bytes]) -> None:
        conn.sendall(reply)
        if reply.endswith(b"abc"):
            conn.shutdown(socket.SHUT_WR)

    with scripted_server(after_auth(send)) as address:
        store = RedisStore(urls(address)["user"], timeout=2, max_entry_bytes=2**20)
        err = bounded(lambda: store.get("k"), 10)
    assert isinstance(err, tp.CacheError | tp.TerrapipeError), repr(err)
    assert_no_secret(err)


def test_a_server_that_never_answers_gives_a_cache_error_in_time() -> None:
    with scripted_server(after_auth(lambda conn, args: None)) as address:
        store = RedisStore(urls(address)["user"], timeout=1)
        for operation in OPERATIONS.values():
            start = time.monotonic()
            err = bounded(lambda op=operation, s=store: op(s), 10)
            assert isinstance(err, tp.TerrapipeError), repr(err)
            assert time.monotonic() - start < 5


def test_a_server_that_trickles_a_reply_is_given_up_on_by_a_deadline() -> None:
    """A byte every 0.3 s keeps every read under a 1 s timeout; 200 bytes would take a minute."""

    def trickle(conn: socket.socket, args: list[bytes]) -> None:
        conn.sendall(b"$200\r\n")
        with contextlib.suppress(OSError):
            for _ in range(200):
                conn.sendall(b"x")
                time.sleep(0.3)

    with scripted_server(after_auth(trickle)) as address:
        store = RedisStore(urls(address)["user"], timeout=1)
        err = bounded(lambda: store.get("k"), 15)
    assert isinstance(err, tp.CacheError), repr(err)
    assert "deadline" in str(err) or "time" in str(err).lower()


def test_a_store_s_text_in_a_pipe_and_its_stats_hides_the_password() -> None:
    store = RedisStore(f"redis://h8user:{ENCODED}@127.0.0.1:1/0?ssl_password={ENCODED}")
    pipe = tp.from_items([1, 2]).cache_point().map(abs).cache(store)
    for text in (repr(store), str(store), repr(pipe), str(pipe), repr(pipe.stats), store.shown):
        for secret in SECRETS:
            assert secret not in text
    assert os.environ.get("REDIS_URL", "") == os.environ.get("REDIS_URL", "")


@pytest.mark.parametrize("operation", ["keys", "clear"])
def test_a_listing_that_never_ends_is_refused_not_followed_for_ever(operation: str) -> None:
    """A server answering every SCAN with cursor 1 and no names: keys() and clear() looped for ever."""

    def scan_forever(conn: socket.socket, args: list[bytes]) -> bool:
        if args[0].upper() == b"HELLO":
            conn.sendall(b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n")
        elif args[0].upper() == b"SCAN":
            conn.sendall(b"*2\r\n$1\r\n1\r\n*0\r\n")
        else:
            conn.sendall(b"+OK\r\n")
        return True

    with scripted_server(scan_forever) as address:
        store = RedisStore(urls(address)["user"], timeout=1)
        run = (lambda: list(store.keys())) if operation == "keys" else store.clear
        err = bounded(run, 10)
    assert isinstance(err, tp.CacheError), repr(err)
    assert "SCAN" in str(err)
    assert_no_secret(err)


@pytest.mark.parametrize("operation", ["put", "contains", "keys"])
def test_a_server_that_trickles_a_command_s_reply_is_given_up_on(operation: str) -> None:
    """redis-py's own commands (writes, EXISTS, SCAN; every command over rediss://) wait per read only."""

    def trickle(conn: socket.socket, args: list[bytes]) -> None:
        conn.sendall(b":")
        with contextlib.suppress(OSError):
            for _ in range(200):  # a number line a digit every 0.3 s: a minute in all
                conn.sendall(b"1")
                time.sleep(0.3)

    with scripted_server(after_auth(trickle)) as address:
        store = RedisStore(urls(address)["user"], timeout=1)
        err = bounded(lambda: OPERATIONS[operation](store), 15)
    assert isinstance(err, tp.CacheError), repr(err)
    assert_no_secret(err)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate for 127.0.0.1 (made by the openssl command)."""
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1"],
        capture_output=True, check=False, timeout=60,
    )  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"openssl cannot make a test certificate: {made.stderr.decode()[-200:]}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_over_tls_a_trickled_reply_meets_a_deadline_and_an_echo_shows_no_password(
    tls: ssl.SSLContext,
) -> None:
    """rediss:// runs every command through redis-py: its replies have a deadline too, its errors no secret."""

    def trickle(conn: socket.socket, args: list[bytes]) -> None:
        conn.sendall(b"$200\r\n")
        with contextlib.suppress(OSError):
            for _ in range(200):
                conn.sendall(b"x")
                time.sleep(0.3)

    query = "?ssl_cert_reqs=none&ssl_check_hostname=false"
    with scripted_server(after_auth(trickle), tls=tls) as address:
        store = RedisStore(f"rediss://h8user:{ENCODED}@{address}/0{query}", timeout=1)
        for operation in OPERATIONS.values():
            err = bounded(lambda op=operation, s=store: op(s), 15)
            assert isinstance(err, tp.CacheError), repr(err)
            assert_no_secret(err)
    with scripted_server(answering(echo_refusal), tls=tls) as address:
        store = RedisStore(f"rediss://h8user:{ENCODED}@{address}/0{query}", timeout=2)
        for operation in OPERATIONS.values():
            err = bounded(lambda op=operation, s=store: op(s), 15)
            assert isinstance(err, tp.CacheError), repr(err)
            assert_no_secret(err)
