"""Measure the byte layer: 200 ranged reads of 64 KiB from a local S3 server, obstore vs s3fs.

Not a test (pytest does not collect it). Run it by hand::

    python tests/storage/bench_byte_layer.py            # obstore only
    PYTHONPATH=/tmp/s3fs-pkgs python tests/storage/bench_byte_layer.py   # with s3fs, if installed there

Both clients go through the fixture's conforming proxy (rclone's S3 server
answers ranges with status 200, which obstore refuses); s3fs is also timed
against rclone directly to show what the proxy costs.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import obstore as obs

from terrapipe.io import object_store
from terrapipe.io.storage import Storage
from tests.servers.object_stores import S3_KEY_ID, S3_SECRET, start_s3_server

N, SIZE, OBJECT = 200, 64 * 1024, 32 * 1024 * 1024


def main() -> None:
    server = start_s3_server(("bench",))
    try:
        storage = Storage(s3_endpoint=server.endpoint, key_id=S3_KEY_ID, secret=S3_SECRET, region="us-east-1")
        store = storage.store_for("s3://bench/")
        obs.put(store, "blob.bin", os.urandom(OBJECT))
        rng = random.Random(0)
        starts = [rng.randrange(0, OBJECT - SIZE) for _ in range(N)]
        rows = []

        t = time.perf_counter()
        for s in starts:
            object_store.get("s3://bench/blob.bin", storage, range=(s, s + SIZE))
        rows.append(("terrapipe.io.object_store.get (obstore), one at a time", time.perf_counter() - t))

        t = time.perf_counter()
        for s in starts:
            obs.get_range(store, "blob.bin", start=s, end=s + SIZE)
        rows.append(("obstore.get_range, one at a time", time.perf_counter() - t))

        t = time.perf_counter()
        obs.get_ranges(store, "blob.bin", starts=starts, ends=[s + SIZE for s in starts])
        rows.append(("obstore.get_ranges, all at once", time.perf_counter() - t))

        async def gathered() -> None:
            await asyncio.gather(
                *(obs.get_range_async(store, "blob.bin", start=s, end=s + SIZE) for s in starts)
            )

        t = time.perf_counter()
        asyncio.run(gathered())
        rows.append(("obstore.get_range_async x200, gathered", time.perf_counter() - t))

        try:
            import s3fs
        except ImportError:
            rows.append(("s3fs: not installed", float("nan")))
        else:
            direct = server.endpoint.replace(str(server.proxy.port), str(_upstream(server)))
            for label, endpoint in (("via proxy", server.endpoint), ("direct", direct)):
                fs = s3fs.S3FileSystem(key=S3_KEY_ID, secret=S3_SECRET, client_kwargs={"endpoint_url": endpoint,
                                       "region_name": "us-east-1"}, skip_instance_cache=True)  # fmt: skip
                t = time.perf_counter()
                for s in starts:
                    fs.cat_file("bench/blob.bin", start=s, end=s + SIZE)
                rows.append((f"s3fs.cat_file, one at a time ({label})", time.perf_counter() - t))
                t = time.perf_counter()
                fs.cat_ranges(["bench/blob.bin"] * N, starts, [s + SIZE for s in starts])
                rows.append((f"s3fs.cat_ranges, all at once ({label})", time.perf_counter() - t))
        for label, seconds in rows:
            print(f"{label:60s} {seconds:7.3f} s")
    finally:
        server.stop()


def _upstream(server) -> int:  # type: ignore[no-untyped-def]
    return int(server.proxy.upstream_port)


if __name__ == "__main__":
    main()
