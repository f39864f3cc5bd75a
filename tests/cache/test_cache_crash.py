"""A writer killed mid-write (SIGKILL) leaves no entry that reads as valid."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.cache import CacheStore, RedisStore, ZarrStore, encode_value, pack_entry, unpack_entry
from tests.cache.conftest import read_window, samples_equal, slow_read, windows_of
from tests.servers.redis_server import RedisServer

ENTRY_BYTES = 16 * 2**20
ENTRIES = 5
FORK = multiprocessing.get_context("fork")  # a forked child starts at once: no imports to redo


def writer(store: CacheStore, blobs: list[bytes], messages: Connection) -> None:
    """Write the entries, announcing each one; nearly all the time is spent inside put()."""
    for i, blob in enumerate(blobs):
        messages.send(f"writing {i}")
        store.put(f"k{i}", blob)
    messages.send("done")


def run_until(target: Callable[..., None], args: tuple[Any, ...], marker: str, delay: float) -> list[str]:
    """Run ``target(*args, messages)`` in a forked child; SIGKILL it ``delay`` s after it sends ``marker``.

    Returns every message the child sent.
    """
    receiver, sender = FORK.Pipe(duplex=False)
    child = FORK.Process(target=target, args=(*args, sender), daemon=True)
    child.start()
    sender.close()
    messages: list[str] = []
    try:
        while not messages or messages[-1] != marker:
            if not receiver.poll(60):
                pytest.fail(f"the child did not send {marker!r} (exit code {child.exitcode})")
            messages.append(receiver.recv())
        time.sleep(delay)
    finally:
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join(timeout=60)
    while receiver.poll():
        try:
            messages.append(receiver.recv())
        except EOFError:
            break
    receiver.close()
    return messages


def check_entries(store: CacheStore, printed: list[str]) -> bool:
    """Entries finished before the kill are valid, the one being written is valid or missing, later
    ones are missing; nothing reads as a damaged entry. Return whether a write was interrupted."""
    started = [int(line.split()[1]) for line in printed if line.startswith("writing")]
    last = started[-1] if "done" not in printed else ENTRIES
    interrupted = False
    for i in range(ENTRIES):
        blob = store.get(f"k{i}")
        if blob is None:
            assert i >= last, f"k{i} was written completely but is missing"
            interrupted = interrupted or i == last
            continue
        assert i <= last, f"k{i} exists but was never written"
        (value,) = unpack_entry(blob, f"k{i}")  # raises if damaged
        np.testing.assert_array_equal(value, np.full(ENTRY_BYTES, i % 251, dtype=np.uint8))
    return interrupted


@pytest.mark.parametrize("kind", ["zarr", "zarr-url", "redis"])
def test_a_writer_killed_mid_write_leaves_no_half_entry(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        location = server.url
        store: CacheStore = RedisStore(location, prefix="crash:")
    else:
        root = tmp_path / "cache.zarr"
        location = str(root) if kind == "zarr" else f"file://{root}"
        store = ZarrStore(location)
    blobs = [
        pack_entry(f"k{i}", [encode_value(np.full(ENTRY_BYTES, i % 251, dtype=np.uint8))])
        for i in range(ENTRIES)
    ]
    interrupted = False
    for delay in (0.01, 0.001):
        if isinstance(store, RedisStore):
            store.clear()
        child_store = (
            RedisStore(location, prefix="crash:")
            if kind == "redis"
            else ZarrStore(location, chunk_bytes=2**20)
        )
        printed = run_until(writer, (child_store, blobs), "writing 2", delay)
        interrupted = check_entries(store, printed)
        if kind == "zarr":  # the killed write's leftovers are only under .tmp/, never an entry
            assert {p.name for p in root.iterdir()} <= {"zarr.json", ".tmp"} | {
                f"k{i}" for i in range(ENTRIES)
            }
        if interrupted:
            break
    assert interrupted, "no attempt interrupted a write; the test proves nothing"
    if isinstance(store, RedisStore):
        store.clear()


def run_pipe(pipe: Any, messages: Connection) -> None:
    for i, _ in enumerate(pipe):
        messages.send(f"yielded {i}")


def test_a_pipeline_killed_mid_pass_resumes_from_valid_entries(tmp_path: Path, rasters: list[Path]) -> None:
    store_path = tmp_path / "cache.zarr"
    windows = windows_of(rasters)

    def make() -> Any:
        return tp.from_items(windows).cache_point().map(slow_read).cache(str(store_path))

    printed = run_until(run_pipe, (make(),), "yielded 5", 0.01)
    written = len(list(ZarrStore(store_path).keys()))
    assert 5 <= written < len(windows)
    assert len(printed) < len(windows)
    pipe = make()
    assert samples_equal(list(pipe), [read_window(w) for w in windows])
    assert pipe.stats.corrupt == 0
    assert pipe.stats.hits == written
