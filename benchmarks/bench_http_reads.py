"""200 ranged reads of 64 KiB over HTTP: the readers' byte layer against raw obstore and urllib3.

Serves a 32 MiB file with the test range server (``tests/servers/http_range.py``
on 127.0.0.1) and reads the same 200 random 64 KiB ranges with:

- ``http_reads.read``, obstore transport (what ``HTTPFile`` and ``fetch`` use), one at a time;
- ``http_reads.read``, urllib3 transport (a request with headers, or a forked process);
- ``http_reads.read_async``, obstore, 16 in flight (what ``HTTPStore`` does for Zarr);
- raw ``obstore.get_range`` and raw ``urllib3`` (the floors: no checks);
- the hand-written ``http.client`` reader that ``io/http_client.py`` was before #19,
  when ``--old PATH`` names a copy of it (``git show 2b2fae5~1:src/terrapipe/io/http_client.py``).

fsspec's HTTP filesystem needs aiohttp, which no terrapipe extra installs; it is
listed as not run when aiohttp is missing. The readers take turns within each
round (``--rounds``, medians shown), so load elsewhere on the machine hits them alike.

Run: ``python benchmarks/bench_http_reads.py [--reads 200] [--rounds 5] [--old /tmp/old_http_client.py]``
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.servers.http_range import start_range_server  # noqa: E402

SIZE = 64 * 1024


def main() -> None:
    """Run the comparison and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--old", help="a copy of the pre-#19 io/http_client.py to compare with")
    args = parser.parse_args()

    import obstore as obs
    import urllib3
    from obstore.store import HTTPStore

    from terrapipe.io import http_reads
    from terrapipe.io.storage import Storage

    folder = Path(tempfile.mkdtemp())
    (folder / "big.bin").write_bytes(os.urandom(32 * 1024 * 1024))
    server = start_range_server(folder)
    url = f"{server.url}/big.bin"
    rng = random.Random(1)
    starts = [rng.randrange(0, 32 * 1024 * 1024 - SIZE) for _ in range(args.reads)]
    plain, headed = Storage(), Storage(headers={"X-Trace": "bench"})
    raw_store = HTTPStore.from_url(server.url, client_options={"allow_http": True})
    pool = urllib3.PoolManager(maxsize=16)

    def ours(storage: Storage) -> Callable[[], None]:
        def run() -> None:
            for s in starts:
                reply = http_reads.read(url, storage, byte_range=http_reads.ByteRange(s, s + SIZE))
                assert len(reply.body) == SIZE

        return run

    def ours_async() -> None:
        async def go() -> None:
            gate = asyncio.Semaphore(16)

            async def one(s: int) -> None:
                async with gate:
                    reply = await http_reads.read_async(
                        url, plain, byte_range=http_reads.ByteRange(s, s + SIZE)
                    )
                    assert len(reply.body) == SIZE

            await asyncio.gather(*(one(s) for s in starts))

        asyncio.run(go())

    def raw_obstore() -> None:
        for s in starts:
            assert len(obs.get_range(raw_store, "big.bin", start=s, end=s + SIZE)) == SIZE

    def raw_urllib3() -> None:
        for s in starts:
            r = pool.request(
                "GET", url, headers={"Range": f"bytes={s}-{s + SIZE - 1}"}, preload_content=False
            )
            assert len(r.read()) == SIZE
            r.release_conn()

    readers: dict[str, Callable[[], None]] = {
        "http_reads.read, obstore, one at a time": ours(plain),
        "http_reads.read, urllib3 (headers), one at a time": ours(headed),
        "http_reads.read_async, obstore, 16 in flight": ours_async,
        "raw obstore.get_range, one at a time (no checks)": raw_obstore,
        "raw urllib3, one at a time (no checks)": raw_urllib3,
    }
    if args.old:
        spec = importlib.util.spec_from_file_location("old_http_client", args.old)
        assert spec is not None
        assert spec.loader is not None
        old: Any = importlib.util.module_from_spec(spec)
        sys.modules["old_http_client"] = old  # dataclasses look their module up
        spec.loader.exec_module(old)

        def old_client() -> None:
            options = old.HTTPOptions()
            for s in starts:
                assert len(old.fetch(url, options, byte_range=old.ByteRange(s, s + SIZE)).body) == SIZE

        readers["pre-#19 http.client reader, one at a time"] = old_client
    times: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(args.rounds):
        for name, run in readers.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    server.stop()
    floor = statistics.median(times["raw obstore.get_range, one at a time (no checks)"])
    print(
        f"{args.reads} ranged reads of {SIZE // 1024} KiB, median of {args.rounds} rounds; load {os.getloadavg()}"
    )
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:55s} {median:6.3f} s   {median / floor:5.2f} x raw obstore")
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        print("  fsspec HTTP: not run (needs aiohttp, which no terrapipe extra installs)")


if __name__ == "__main__":
    main()
