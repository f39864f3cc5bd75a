"""The chip stages read on the process's long-lived reader threads (terrapipe.io.read_pool).

A thread's first GDAL open costs ~7.5 ms of CPU (PROJ's per-thread context)
and its open datasets live as long as it does: a pass, or another stage,
reads on the threads (and their open files) of the passes before it. The
pool keeps each lease's concurrency (at most its threads at once, leases side
by side each get theirs), its threads are daemon threads named
``terrapipe-read_N`` that start at first use (never at import), threads the
leases no longer need leave after a while, and a forked child reads on
threads of its own.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.io import raster_array, read_pool
from terrapipe.io.read_pool import Lease, in_reader_thread, lease, pool_threads
from tests.forking import in_forked_child
from tests.reliability.data import write_cog, write_scene_item

rasterio = pytest.importorskip("rasterio")
pystac = pytest.importorskip("pystac")


@pytest.fixture
def cog(tmp_path: Path) -> tuple[Path, np.ndarray]:
    path = tmp_path / "a.tif"
    return path, write_cog(path, size=256, block=128, count=2)


class _Opens:
    """Counts the files opened (``RasterSource.open``) and the threads that read, per pass."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lock = threading.Lock()
        self.opened: list[str] = []
        self.pairs: list[tuple[str, str]] = []  # (thread, file) of every open, never taken
        self.readers: set[threading.Thread] = (
            set()
        )  # the thread objects, not names: a new thread is a new object
        real = raster_array.RasterSource.open

        def counting(source: Any) -> Any:
            with self.lock:
                self.opened.append(threading.current_thread().name)
                self.pairs.append((threading.current_thread().name, source.path))
            return real(source)

        real_acquire = raster_array.acquire

        def acquire(source: Any) -> Any:
            with self.lock:
                self.readers.add(threading.current_thread())
            return real_acquire(source)

        monkeypatch.setattr(raster_array.RasterSource, "open", counting)
        monkeypatch.setattr(raster_array, "acquire", acquire)
        from terrapipe.stac import native_read

        monkeypatch.setattr(native_read, "acquire", acquire)

    def take(self) -> tuple[list[str], set[threading.Thread]]:
        with self.lock:
            out = (self.opened, self.readers)
            self.opened, self.readers = [], set()
        return out


def test_a_second_pass_reads_on_the_same_threads_with_the_files_they_opened(
    cog: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, data = cog
    opens = _Opens(monkeypatch)
    pipe = tp.from_items([str(path)]).read_raster().chip({"y": 64, "x": 64}, workers=3)
    first = [c.values for c in pipe]
    opened_1, readers_1 = opens.take()
    second = [c.values for c in pipe]
    opened_2, readers_2 = opens.take()
    assert len(first) == len(second) == 16
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first[0], data[:, :64, :64])
    assert [name for name in opened_1 if name.startswith("terrapipe-read")]  # (the header: the main thread)
    # the pool's threads, which read the second pass too (a thread idle in the first may take a read
    # of the second: then it opens the file once); a thread that read in the first opens nothing again
    assert readers_2 <= {t for t in threading.enumerate() if t.name.startswith("terrapipe-read")}
    assert not [name for name in opened_2 if name in {t.name for t in readers_1}]
    assert len(opens.pairs) == len(set(opens.pairs)), opens.pairs


def test_another_stage_reads_on_the_threads_and_files_of_the_first(
    cog: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = cog
    opens = _Opens(monkeypatch)
    list(tp.from_items([str(path)]).read_raster().chip({"y": 64, "x": 64}, workers=2))
    _, readers_1 = opens.take()
    overlapping = tp.from_items([str(path)]).read_raster().chip({"y": 96, "x": 96}, overlap=16, workers=2)
    assert len(list(overlapping)) > 0
    opened_2, readers_2 = opens.take()
    assert readers_2
    assert readers_2 <= {t for t in threading.enumerate() if t.name.startswith("terrapipe-read")}
    # a thread that read in the first stage opens nothing in the second
    assert not [name for name in opened_2 if name in {t.name for t in readers_1}]


def _stack_item(tmp_path: Path) -> Any:
    return pystac.Item.from_dict(write_scene_item(tmp_path))


def test_a_stack_stac_cube_is_read_on_long_lived_threads_that_keep_their_files_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = _stack_item(tmp_path)
    cube = tp.stac.stack_items([item], chunks={"x": 128, "y": 128})
    opens = _Opens(monkeypatch)
    chips = [c.values for c in tp.from_items([cube]).chip({"y": 64, "x": 64}, workers=2)]
    _, readers_1 = opens.take()
    again = [c.values for c in tp.from_items([cube]).chip({"y": 64, "x": 64}, workers=2)]
    _, readers_2 = opens.take()
    assert len(chips) == 16
    for a, b in zip(chips, again, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(chips[0], cube.isel(y=slice(0, 64), x=slice(0, 64)).values)
    # read on stack_stac's own long-lived pool (the chip threads hand the read over: see native_read._hop)
    assert readers_1
    assert all(t.name.startswith(("stack_stac-read", "terrapipe-read")) for t in readers_1)
    # the second pass reads on the same long-lived pools, but not always on the threads that read the
    # first (which thread takes a read varies; CI saw it), and each thread keeps what it opened: over
    # both passes no thread opens one file twice
    assert all(t.name.startswith(("stack_stac-read", "terrapipe-read")) for t in readers_2)
    assert len(opens.pairs) == len(set(opens.pairs)), opens.pairs


def test_a_lease_runs_at_most_its_threads_at_once_and_leases_side_by_side_each_get_theirs() -> None:
    running, most, lock = [0], [0], threading.Lock()
    gate = threading.Barrier(4, timeout=20)  # only 4 tasks at once can pass: one lease of 2 could not

    def task(wait: bool) -> str:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            if wait:
                gate.wait()
            time.sleep(0.002)
            return threading.current_thread().name
        finally:
            with lock:
                running[0] -= 1

    one, two = lease(2), lease(2)
    try:
        futures = [
            one.submit(task, True),
            one.submit(task, True),
            two.submit(task, True),
            two.submit(task, True),
        ]
        assert all(f.result(timeout=30).startswith("terrapipe-read") for f in futures)
        most[0] = 0
        names = list(one.map(task, [False] * 40))
        assert most[0] <= 2  # one lease of 2: never more than 2 of its tasks at once
        assert len(names) == 40
        assert len(one._queued) == 0
        assert one._running == set()
    finally:
        one.shutdown()
        two.shutdown()


def test_lease_is_an_executor_errors_cancel_and_shutdown() -> None:
    threads = lease(1)
    gate = threading.Event()
    blocker = threads.submit(gate.wait, 20)
    queued = [threads.submit(abs, -k) for k in range(5)]
    failing = threads.submit(int, "x")
    assert len(threads._queued) == 6  # beyond its one thread: they wait in the lease
    gate.set()
    assert blocker.result(timeout=20) is True
    assert [f.result(timeout=20) for f in queued] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="invalid literal"):
        failing.result(timeout=20)
    gate.clear()
    blocker = threads.submit(gate.wait, 20)
    later = [threads.submit(abs, -k) for k in range(3)]
    threading.Timer(0.05, gate.set).start()
    threads.shutdown(wait=True, cancel_futures=True)
    assert blocker.done()
    assert all(f.cancelled() for f in later)
    with pytest.raises(RuntimeError, match="shut down"):
        threads.submit(abs, 1)
    with pytest.raises(ValueError, match="threads >= 1"):
        Lease(0)


def test_threads_the_leases_no_longer_need_leave(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_pool, "IDLE_SECONDS", 0.05)
    many = lease(
        max(pool_threads(), read_pool.KEEP_THREADS) + 6
    )  # every thread waits anew, on the short wait
    gate = threading.Barrier(many.threads, timeout=20)
    list(many.map(lambda _: gate.wait(), range(many.threads)))  # every thread at once
    assert pool_threads() >= many.threads
    many.shutdown()
    deadline = time.monotonic() + 20
    while pool_threads() > read_pool.KEEP_THREADS and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pool_threads() == read_pool.KEEP_THREADS  # the kept ones stay, warm

    def alive() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("terrapipe-read")]

    # a thread that left the pool may still be finishing: on a loaded machine several are at once
    while len(alive()) > read_pool.KEEP_THREADS and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(alive()) <= read_pool.KEEP_THREADS + 1  # as before: the wait above only gives slow exits time
    assert pool_threads() == read_pool.KEEP_THREADS
    assert all(t.daemon for t in alive())
    assert not in_reader_thread()


def _child_chips(path: str) -> tuple[int, float, int, set[str]]:
    chips = [c.values for c in tp.from_items([path]).read_raster().chip({"y": 64, "x": 64}, workers=2)]
    inherited = lease(2)  # made here: the child's own threads
    names = {inherited.submit(lambda: threading.current_thread().name).result(timeout=20)}
    return len(chips), float(np.stack(chips).sum()), read_pool.pool_threads(), names


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_forked_child_reads_on_threads_of_its_own(cog: tuple[Path, np.ndarray]) -> None:
    path, data = cog
    list(tp.from_items([str(path)]).read_raster().chip({"y": 64, "x": 64}, workers=2))  # the parent's threads
    assert pool_threads() >= 2
    count, total, threads, names = in_forked_child(_child_chips, str(path))
    assert count == 16
    assert total == float(data.sum())
    assert threads >= 2
    assert all(n.startswith("terrapipe-read") for n in names)


def test_importing_terrapipe_starts_no_reader_thread_and_a_pass_starts_daemon_ones(
    cog: tuple[Path, np.ndarray],
) -> None:
    path, _ = cog
    code = (
        "import threading, terrapipe as tp\n"
        "from terrapipe.io.read_pool import pool_threads\n"
        "before = sorted(t.name for t in threading.enumerate())\n"
        "assert pool_threads() == 0, pool_threads()\n"
        f"n = len(list(tp.from_items([{str(path)!r}]).read_raster().chip({{'y': 64, 'x': 64}}, workers=2)))\n"
        "readers = [t for t in threading.enumerate() if t.name.startswith('terrapipe-read')]\n"
        "assert n == 16 and readers and all(t.daemon for t in readers), readers\n"
        "print(before)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "terrapipe-read" not in done.stdout
