"""The readers' HTTP on the byte layer: forked workers, Retry-After, one configuration, no HEAD.

- a process forked after its parent read over HTTP (blocking and async: its
  urllib3 pools, deadline watchdog and thread pool exist) reads over HTTP,
  checked, through its own: no hang, no error;
- urllib3 reads honour ``Retry-After`` up to ``Storage.max_backoff``;
- ``HTTPOptions`` is a deprecated alias building the ``tp.Storage`` of the same meaning;
- ``HTTPFile`` sends no HEAD (a URL presigned for GET refuses one);
- an honest chunked answer (no Content-Length) is read, within the cap.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import terrapipe as tp
from terrapipe.core.errors import ReadError
from terrapipe.io import http_reads
from terrapipe.io.http_client import HTTPOptions, fetch
from terrapipe.io.http_reads import ByteRange
from terrapipe.io.object_file import HTTPFile
from terrapipe.io.storage import Storage
from tests.servers.hostile_http import HostileServer, start_hostile_server
from tests.servers.http_range import RangeServer

pytestmark = pytest.mark.timeout(60)

BLOB = bytes(range(256)) * 400  # 102400 bytes


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("byte-layer")
    (root / "blob.bin").write_bytes(BLOB)
    with start_hostile_server(root, lifetime=120) as server:
        yield server


def _child(url: str, shifted: str, queue: Any) -> None:
    """In the forked child: one good read (blocking and async) and one lying server, through the byte layer."""
    try:
        good = fetch(url, Storage(retries=1, backoff=0.01), byte_range=ByteRange(1000, 3000)).body
        later = asyncio.run(http_reads.read_async(url, Storage(retries=1), byte_range=ByteRange(5, 9))).body
        good = good == BLOB[1000:3000] and later == BLOB[5:9]
        try:
            fetch(shifted, Storage(retries=1, backoff=0.01), byte_range=ByteRange(1000, 3000))
            lying = "no error"
        except ReadError as err:
            lying = str(err)
        queue.put((good, lying))
    except BaseException as err:  # report, never hang the parent
        queue.put((False, f"{type(err).__name__}: {err}"))


def test_a_forked_worker_reads_http_after_its_parent_did(hostile: HostileServer) -> None:
    url = hostile.url_for("plain", "blob.bin")
    assert fetch(url, Storage(), byte_range=ByteRange(0, 100)).body == BLOB[:100]  # pools and watchdog made
    reply = asyncio.run(http_reads.read_async(url, Storage(), byte_range=ByteRange(0, 9)))  # its thread pool
    assert reply.body == BLOB[:9]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(url, hostile.url_for("shift", "blob.bin"), queue))
    child.start()
    child.join(30)
    if child.exitcode is None:  # pragma: no cover - the hang this guards against
        child.kill()
        pytest.fail("the forked child hung on its HTTP read")
    good, lying = queue.get(timeout=5)
    assert good is True, lying
    assert "those are other bytes of the file" in lying  # the checks hold in the child too
    assert fetch(url, Storage(), byte_range=ByteRange(5, 10)).body == BLOB[5:10]  # the parent still reads


def _sum_at(da: Any, t: int) -> float:
    return float(da.isel(time=t).values.sum())


def test_a_zarr_store_opened_in_the_parent_reads_in_forked_dataloader_workers(
    server: RangeServer, http_root: Path
) -> None:
    import numpy as np
    from torch.utils.data import DataLoader

    from tests.reliability.data import cube, write_zarr

    path = write_zarr(http_root / "byte-layer-fork.zarr", cube(times=2, size=32), chunks=(1, 16, 16))
    da = tp.open_zarr(server.url_for(path), variables="t2m")
    expected = [float(da.isel(time=t).values.sum()) for t in range(2)]  # read here first
    pipe = tp.from_items([0, 1]).map(functools.partial(_sum_at, da))
    loader = DataLoader(pipe, batch_size=None, num_workers=2, multiprocessing_context="fork", timeout=60)
    assert np.allclose(sorted(loader), sorted(expected))


def test_retry_after_is_honoured_up_to_max_backoff(server: RangeServer, http_root: Path) -> None:
    path = http_root / "retry-after.bin"
    path.write_bytes(BLOB)
    url = server.url_for(path)
    with_headers = Storage(headers={"X-Trace": "t"}, retries=2, backoff=0.01, max_backoff=5)
    server.fault(f"/{path.name}", status=503, count=1, retry_after=1)
    start = time.monotonic()
    assert fetch(url, with_headers, byte_range=ByteRange(0, 10)).body == BLOB[:10]
    assert time.monotonic() - start >= 0.9  # the server's wish, not the 10 ms back-off
    server.clear_faults()
    server.fault(f"/{path.name}", status=429, count=1, retry_after=120)
    start = time.monotonic()
    assert (
        fetch(url, with_headers.with_options(max_backoff=0.2), byte_range=ByteRange(0, 10)).body == BLOB[:10]
    )
    assert time.monotonic() - start < 5  # capped at max_backoff
    server.clear_faults()


def test_http_options_is_a_deprecated_alias_of_storage() -> None:
    with pytest.warns(DeprecationWarning, match=r"tp\.Storage"):
        options = HTTPOptions(
            timeout=5, retries=1, retry_delay=0.1, headers={"A": "b"}, deadline=9, max_body=100
        )
    assert options == Storage(
        timeout=5.0, retries=1, backoff=0.1, headers=(("A", "b"),), deadline=9.0, max_bytes=100
    )
    with pytest.warns(DeprecationWarning, match=r"tp\.Storage"):
        assert HTTPOptions.make(max_body=7).max_bytes == 7
    assert isinstance(Storage(), HTTPOptions)  # the readers' isinstance checks take a Storage
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import terrapipe.io  # importing the name warns about nothing

        assert terrapipe.io.HTTPOptions is HTTPOptions


def test_an_http_file_sends_no_head(hostile: HostileServer) -> None:
    hostile.reset()
    handle = HTTPFile(hostile.url_for("plain", "blob.bin"), Storage())
    handle.seek(50_000)
    assert handle.read(100) == BLOB[50_000:50_100]
    assert handle.size == len(BLOB)
    assert {r["method"] for r in hostile.requests()} == {"GET"}


def test_an_honest_chunked_answer_is_read_within_the_cap(hostile: HostileServer) -> None:
    """A body without Content-Length (chunked, Range ignored: as dynamic servers answer) is read, within the cap."""
    chunked_url = hostile.url_for("chunked", "blob.bin")
    assert fetch(chunked_url, Storage()).body == BLOB
    assert fetch(chunked_url, Storage(), byte_range=ByteRange(500, 1500)).body == BLOB[500:1500]
    with pytest.raises(
        ReadError, match=r"larger than the cap of 1000 bytes \(decompressed\); raise Storage\(max_bytes=...\)"
    ):
        fetch(chunked_url, Storage(max_bytes=1000))
