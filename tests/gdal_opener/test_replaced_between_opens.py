"""A raster replaced at its URL between two opens is read anew by the second, never served from what the first kept.

The byte layer keeps a remote file's header blocks per process (every reader thread's open
shares them, as GDAL's ``/vsicurl/`` cache did). A small file lies wholly in those blocks, so
before this a later ``open_raster`` of the same URL was answered from them without a request:
the old pixels, silently, for as long as the process lived. Each ``open_raster`` now asks for
the file's first block again when the process has it (one request): another size, ETag or
first block is another file, read anew; an array opened before the change is refused where
its reads reach the server (the ETag), never mixed with the new file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import terrapipe as tp
from terrapipe.core.errors import ReadError

PROFILE = {
    "driver": "GTiff",
    "width": 64,
    "height": 48,
    "count": 1,
    "dtype": "uint16",
    "crs": "EPSG:32631",
    "transform": from_origin(500000, 4000000, 10, 10),
}


def _write(path: Path, offset: int, **extra: Any) -> np.ndarray:
    profile = {**PROFILE, **extra}
    height, width = profile["height"], profile["width"]
    values = ((np.arange(height * width).reshape(1, height, width) * 7 + offset) % 65521).astype("uint16")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values)
    return values


def _replace(source: Path, target: Path, *, same_times: bool) -> None:
    stat = target.stat()
    tmp = target.with_suffix(".new")
    shutil.copy(source, tmp)
    os.replace(tmp, target)  # as an upload does: another object at the same name
    if (
        same_times
    ):  # the same size and mtime: the ETag of this server changes with the inode only... not at all
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize("same_times", [False, True], ids=["new-etag", "same-size-and-mtime"])
def test_a_second_open_reads_the_file_now_at_the_url(
    range_server_session: Any, tmp_path: Path, same_times: bool
) -> None:
    root = Path(range_server_session.root)
    name = f"replaced-{same_times}.tif"
    old = _write(root / name, 0)
    new = _write(tmp_path / "new.tif", 1000)
    url = f"{range_server_session.url}/{name}"
    np.testing.assert_array_equal(tp.open_raster(url).values, old)
    _replace(tmp_path / "new.tif", root / name, same_times=same_times)
    np.testing.assert_array_equal(tp.open_raster(url).values, new)
    np.testing.assert_array_equal(next(iter(tp.from_items([url]).read_raster())).values, new)


def test_an_array_opened_before_the_change_is_refused_not_mixed(
    range_server_session: Any, tmp_path: Path
) -> None:
    root = Path(range_server_session.root)
    name = "replaced-under-an-array.tif"
    old = _write(root / name, 0, tiled=True, blockxsize=16, blockysize=16)
    url = f"{range_server_session.url}/{name}"
    before = tp.open_raster(url)
    np.testing.assert_array_equal(before.isel(y=slice(0, 16), x=slice(0, 16)).values, old[:, :16, :16])
    new = _write(tmp_path / "new.tif", 1000, tiled=True, blockxsize=16, blockysize=16)
    big = "replaced-under-an-array-big.tif"  # larger than the blocks the byte layer keeps (2 MiB)
    big_old = _write(root / big, 0, width=1024, height=1536, tiled=True, blockxsize=256, blockysize=256)
    _write(tmp_path / "big-new.tif", 7, width=1024, height=1536, tiled=True, blockxsize=256, blockysize=256)
    _replace(tmp_path / "new.tif", root / name, same_times=False)
    after = tp.open_raster(url)
    np.testing.assert_array_equal(after.values, new)
    # what the old open still reads: the old file whole (from what it kept), or refused where its reads reach
    # the server (another ETag); never the new pixels under the old open
    outcome = _values_or_error(before)
    if isinstance(outcome, ReadError):
        assert "changed" in str(outcome)
    else:
        np.testing.assert_array_equal(outcome, old)
    big_before = tp.open_raster(f"{range_server_session.url}/{big}")
    np.testing.assert_array_equal(
        big_before.isel(y=slice(0, 16), x=slice(0, 16)).values, big_old[:, :16, :16]
    )
    _replace(tmp_path / "big-new.tif", root / big, same_times=False)
    with pytest.raises(ReadError, match="changed"):  # its tiles are not all kept: a read reaches the server
        big_before.values  # noqa: B018


def _values_or_error(array: Any) -> Any:
    try:
        return array.values
    except ReadError as err:
        return err


def test_a_reopen_of_an_unchanged_file_asks_for_its_first_block_once(tmp_path: Path) -> None:
    """The check of a held file is one request, run beside the open from the kept bytes and handles."""
    from tests.servers.latency_http import latency_server

    big = {"width": 512, "height": 512, "tiled": True, "blockxsize": 256, "blockysize": 256}
    old = _write(tmp_path / "held.tif", 0, **big)  # its last tile is read by a request of its own
    with latency_server(tmp_path, latency=0.25) as server:
        url = f"{server.url}/held.tif"
        np.testing.assert_array_equal(tp.open_raster(url).values, old)
        server.reset()
        server._call("POST", "/__link__", {"reset_peak": True})
        again = tp.open_raster(url)
        link = server.link()
        ranges = [entry["range"] for entry in server.stats()["log"]]
    np.testing.assert_array_equal(again.values, old)
    assert ranges == ["bytes=0-16383"], (link, ranges)  # the check; the rest from what the first open kept
