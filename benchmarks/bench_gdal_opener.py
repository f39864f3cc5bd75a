"""GDAL's /vsicurl/ against rasterio's ``opener=`` over terrapipe's checked byte layer: COG window reads.

Is routing GDAL's http(s) reads through the byte layer (every answer checked
to be the range asked for: the trust rule /vsicurl/ breaks, taking a 206 that
holds other bytes) affordable? Three readers of the same windows of a tiled
DEFLATE COG, served on 127.0.0.1 by the plain range server
(``tests/servers/http_range.py``) and by the latency server
(``tests/servers/latency_http.py``: 30 ms per request, 50 MB/s per
connection):

- ``vsicurl``: ``rasterio.open`` of terrapipe's GDAL name
  (``/vsicurl?empty_dir=yes&url=...``, :func:`terrapipe.io.paths.gdal_path`);
  GDAL merges a window's tiles into ranges and fetches them at once
  (``GDAL_HTTP_MULTIRANGE``, curl's multi interface);
- ``opener``: ``rasterio.open(url, opener=...)`` returning an
  :class:`~terrapipe.io.object_file.ObjectFile` per open (rasterio >= 1.4's
  Python VSI plugin): GDAL's reads arrive one by one, each a checked ranged
  ``GET``;
- ``multirange``: the same, the file object also answering GDAL's
  multi-range reads (rasterio's ``MultiByteRangeResource.get_byte_ranges``)
  with :func:`terrapipe.io.object_store.get_ranges` (one checked request per
  range, concurrently);
- ``blocks``: ``multirange`` whose plain reads go by aligned 16 KiB blocks,
  the last 64 kept, as /vsicurl/'s own cache does (GDAL reads a TIFF's
  header and tags in dozens of reads of a few bytes).

Every (round, reader) reads a cold copy (a hard link under another name:
neither GDAL's /vsicurl/ cache nor a dataset's block cache answers), opens
it, reads ``--windows`` windows of 512 x 512 at fixed random places, closes
it. Rounds interleave the readers (rotating the order); the table gives
medians: wall and CPU seconds (this process, all threads) per window, and
the server's count of requests and bytes per window. The pixels of every
reader are checked equal to ``vsicurl``'s.

Run: ``python benchmarks/bench_gdal_opener.py [--size 4096] [--windows 8] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.abc import MultiByteRangeResourceContainer
from rasterio.transform import from_origin
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers.http_range import range_server
from tests.servers.latency_http import latency_server

from terrapipe.io import object_store
from terrapipe.io.gdal_env import gdal_env
from terrapipe.io.object_file import ObjectFile
from terrapipe.io.paths import gdal_path
from terrapipe.io.storage import Storage

READERS = ("vsicurl", "opener", "multirange", "blocks")
BLOCK = 16384  # GDAL's /vsicurl/ chunk (CPL_VSIL_CURL_CHUNK_SIZE)
WINDOW = 512


def write_cog(path: Path, n: int) -> None:
    """An ``n`` x ``n`` uint16 COG in 256-pixel DEFLATE tiles with overviews (pixels that compress ~2x)."""
    rng = np.random.default_rng(0)
    data = (np.add.outer(np.arange(n), np.arange(n)) % 4000 + rng.integers(0, 64, (n, n))).astype(np.uint16)
    profile = {"driver": "COG", "width": n, "height": n, "count": 1, "dtype": "uint16",
               "crs": "EPSG:32631", "transform": from_origin(600000, 5000000, 10, 10), "blocksize": 256,
               "compress": "deflate"}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _CheckedFile(ObjectFile):
    """An ObjectFile that also answers GDAL's multi-range reads (rasterio's MultiByteRangeResource)."""

    def get_byte_ranges(self, offsets: list[int], sizes: list[int]) -> list[bytes]:
        ranges = [(int(o), int(o) + int(s)) for o, s in zip(offsets, sizes, strict=True)]
        parts = object_store.get_ranges(self.url, ranges, self.storage)
        self.bytes_read += sum(len(p) for p in parts)
        return parts


class _BlockFile(_CheckedFile):
    """A _CheckedFile whose plain reads go by aligned 16 KiB blocks, the last 64 kept (as /vsicurl/'s cache).

    GDAL reads a TIFF's header and tags in reads of 2 to 1346 bytes (83 for
    one window): one GET each without this.
    """

    def read_at(self, nbytes: int, offset: int) -> bytes:
        end = min(self.size, offset + max(0, nbytes))
        if offset >= end:
            return b""
        blocks = getattr(self, "_blocks", None)
        if blocks is None:
            blocks = self._blocks = {}
        first, last = offset // BLOCK, (end - 1) // BLOCK
        missing = [i for i in range(first, last + 1) if i not in blocks]
        if missing:  # one request for the run of missing blocks
            lo, hi = missing[0] * BLOCK, min(self.size, (missing[-1] + 1) * BLOCK)
            data = super().read_at(hi - lo, lo)
            for i in range(missing[0], missing[-1] + 1):
                blocks[i] = data[(i - missing[0]) * BLOCK : (i - missing[0] + 1) * BLOCK]
            while len(blocks) > 64:
                del blocks[next(iter(blocks))]
        joined = b"".join(blocks[i] for i in range(first, last + 1))
        return joined[offset - first * BLOCK : end - first * BLOCK]


class _Checked(MultiByteRangeResourceContainer):  # type: ignore[misc]
    """What rasterio's opener= calls: opens a _CheckedFile per open (and answers its stat calls)."""

    def __init__(self, storage: Storage, kind: type[_CheckedFile] = _CheckedFile) -> None:
        self.storage = storage
        self.kind = kind

    def open(self, path: str, mode: str = "rb", **kwds: Any) -> _CheckedFile:
        return self.kind(path, self.storage)

    def isfile(self, path: str) -> bool:
        return True

    def isdir(self, path: str) -> bool:
        return False

    def ls(self, path: str) -> list[str]:
        return []

    def mtime(self, path: str) -> int:
        return 0

    def size(self, path: str) -> int:
        return object_store.size(path, self.storage)

    def rm(self, path: str) -> None:
        raise PermissionError("read-only")


@contextmanager
def _open(reader: str, url: str, storage: Storage) -> Iterator[Any]:
    if reader == "vsicurl":
        with gdal_env(), rasterio.open(gdal_path(url)) as src:
            yield src
    elif reader == "opener":
        with rasterio.open(url, opener=lambda path, mode="rb", **kw: ObjectFile(path, storage)) as src:
            yield src
    else:
        kind = _CheckedFile if reader == "multirange" else _BlockFile
        with rasterio.open(url, opener=_Checked(storage, kind)) as src:
            yield src


def run(reader: str, url: str, windows: list[Window], storage: Storage) -> tuple[float, float, list[Any]]:
    wall, cpu = time.perf_counter(), _cpu()
    with _open(reader, url, storage) as src:
        out = [src.read(1, window=w) for w in windows]
    return time.perf_counter() - wall, _cpu() - cpu, out


def bench(
    server: Any, folder: Path, name: str, n: int, windows: list[Window], repeat: int
) -> dict[str, dict[str, float]]:
    storage = Storage(retries=0)
    results: dict[str, dict[str, list[float]]] = {
        r: {"wall": [], "cpu": [], "req": [], "bytes": []} for r in READERS
    }
    for round_ in range(repeat):
        order = READERS[round_ % len(READERS) :] + READERS[: round_ % len(READERS)]
        truth = None
        for reader in order:
            copy = folder / f"{name}-{round_}-{reader}.tif"
            if not copy.exists():
                os.link(folder / "cog.tif", copy)
            server.reset()
            wall, cpu, out = run(reader, server.url_for(copy), windows, storage)
            stats = server.stats()
            if reader == "vsicurl":
                truth = out
            elif truth is None:  # vsicurl's turn comes later this round: check against the local file
                with rasterio.open(folder / "cog.tif") as local:
                    truth = [local.read(1, window=w) for w in windows]
            cell = results[reader]
            cell["wall"].append(wall / len(windows))
            cell["cpu"].append(cpu / len(windows))
            cell["req"].append(stats["total_requests"] / len(windows))
            cell["bytes"].append(stats["total_bytes"] / len(windows))
            if truth is not None and reader != "vsicurl":
                for a, b in zip(truth, out, strict=True):
                    np.testing.assert_array_equal(a, b)
    return {r: {k: statistics.median(v) for k, v in cell.items()} for r, cell in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    windows = [
        Window(
            int(rng.integers(0, args.size - WINDOW)), int(rng.integers(0, args.size - WINDOW)), WINDOW, WINDOW
        )
        for _ in range(args.windows)
    ]
    with tempfile.TemporaryDirectory(prefix="bench-opener-") as tmp:
        folder = Path(tmp)
        write_cog(folder / "cog.tif", args.size)
        print(f"COG {args.size}^2 uint16, 256 tiles, deflate: {(folder / 'cog.tif').stat().st_size / 1e6:.1f} MB; "
              f"{args.windows} windows of {WINDOW}^2 per open; {args.repeat} rounds, load {os.getloadavg()}")  # fmt: skip
        servers: list[tuple[str, Callable[[], Any]]] = [
            ("range", lambda: range_server(folder)),
            ("latency 30 ms", lambda: latency_server(folder)),
        ]
        print(
            f"{'server':14} {'reader':11} {'wall ms/win':>11} {'CPU ms/win':>10} {'req/win':>8} {'KB/win':>8}"
        )
        for label, start in servers:
            with start() as server:
                table = bench(server, folder, label.split()[0], args.size, windows, args.repeat)
            for reader, m in table.items():
                print(f"{label:14} {reader:11} {m['wall'] * 1e3:11.1f} {m['cpu'] * 1e3:10.1f} "
                      f"{m['req']:8.1f} {m['bytes'] / 1e3:8.0f}")  # fmt: skip
        print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
