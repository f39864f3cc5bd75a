"""An ``open_raster`` array never reads another file than the one it was opened on.

The array records its local file's identity (mtime_ns, size, inode, device) when it is opened;
every later open of the path for that array (another thread's first read, the direct-block
reads of ``chip``, a reopen after the thread's handles were closed or after a failure, a copy in
a worker) checks it: a file replaced (``os.replace``, as a COG is published; ``cp -p`` keeping
size and mtime), rewritten in place or removed since is a ``ReadError`` naming the file, never the
other file's pixels under the array's geometry. A thread's open handle keeps reading what it
opened, and an unchanged file opens on every thread as before.
"""

from __future__ import annotations

import os
import pickle
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import terrapipe as tp
from terrapipe.core.errors import ReadError
from terrapipe.io import open_raster
from terrapipe.io.raster_array import close_thread_handles, direct_blocks, file_stamp

OLD = np.arange(2 * 64 * 48, dtype="uint16").reshape(2, 64, 48)


def _write(path: Path, data: np.ndarray, **extra: Any) -> None:
    profile = {"driver": "GTiff", "count": data.shape[0], "dtype": "uint16", "crs": "EPSG:32631"}
    profile.update(tiled=True, blockxsize=16, blockysize=16, **extra)
    with rasterio.open(
        path,
        "w",
        width=data.shape[2],
        height=data.shape[1],
        transform=from_origin(5e5, 5e6, 10, 10),
        **profile,
    ) as dst:
        dst.write(data)


def _replace(path: Path, data: np.ndarray, *, keep_mtime: bool = False) -> None:
    tmp = path.with_name(path.name + ".new")
    _write(tmp, data)
    if keep_mtime:  # cp -p / rsync -a: the same size and mtime, another inode
        old = os.stat(path)
        os.utime(tmp, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(tmp, path)


def _in_thread(work: Callable[[], Any]) -> Any:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = work()
        except BaseException as err:  # handed back to the test
            out["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    if "error" in out:
        raise out["error"]
    return out["value"]


def _changed(path: Path) -> Any:  # a window's ReadError naming the file, with the change as its cause
    return pytest.raises(
        ReadError, match=rf"^cannot read rows .* of '{path}': the file changed since it was opened"
    )


@pytest.fixture
def opened(tmp_path: Path) -> tuple[Path, Any]:
    path = tmp_path / "scene.tif"
    _write(path, OLD)
    array = open_raster(path)
    np.testing.assert_array_equal(array.values, OLD)  # this thread's handle: the old file
    return path, array


CHANGES = {
    "replaced, same size": lambda p: _replace(p, OLD + 1),
    "replaced, same size and mtime": lambda p: _replace(p, OLD + 1, keep_mtime=True),
    "replaced, smaller": lambda p: _replace(p, OLD[:1, :32, :32]),
    "rewritten in place": lambda p: _write(p, OLD + 1),
    "removed": lambda p: os.remove(p),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_a_new_thread_refuses_a_changed_file(
    opened: tuple[Path, Any], change: Callable[[Path], None]
) -> None:
    path, array = opened
    change(path)
    with _changed(path) as caught:
        _in_thread(lambda: array.isel(y=slice(0, 16)).values)
    assert str(caught.value).endswith(
        "; open it again (open_raster/read_raster) to read the file now at that path"
    )
    assert str(caught.value).count(str(path)) == 1


def test_the_opening_thread_keeps_reading_the_file_it_opened(opened: tuple[Path, Any]) -> None:
    path, array = opened
    _replace(path, OLD + 1)
    np.testing.assert_array_equal(array.values, OLD)  # its handle reads the old file, whole
    close_thread_handles()  # a reopen (eviction, a closed handle) checks like any other open
    with _changed(path):
        array.values  # noqa: B018


def test_a_copy_in_a_worker_refuses_a_changed_file(opened: tuple[Path, Any]) -> None:
    path, array = opened
    copy = pickle.loads(pickle.dumps(array))
    np.testing.assert_array_equal(_in_thread(lambda: copy.values), OLD)
    _replace(path, OLD + 1)
    with _changed(path):
        _in_thread(lambda: pickle.loads(pickle.dumps(array)).values)


@pytest.mark.parametrize("workers", [0, 3])
def test_chips_through_direct_blocks_refuse_a_changed_file(opened: tuple[Path, Any], workers: int) -> None:
    path, array = opened
    window = array.isel(y=slice(8, 56), x=slice(0, 40))
    assert direct_blocks(window.variable) is not None
    _replace(path, OLD[:1, :32, :32])

    def chips() -> list[Any]:
        return list(tp.from_items([window]).chip({"y": 16, "x": 16}, workers=workers))

    with pytest.raises(ReadError, match="the file changed since it was opened"):
        _in_thread(chips)


@pytest.mark.parametrize("how", ["masked", "lock", "overview"])
def test_arrays_read_through_the_general_path_refuse_a_changed_file(tmp_path: Path, how: str) -> None:
    path = tmp_path / "scene.tif"
    _write(path, OLD)
    if how == "overview":
        with rasterio.open(path, "r+") as dst:
            dst.build_overviews([2])
        array = open_raster(path, overview_level=0)
    else:
        array = open_raster(path, masked=how == "masked", lock=threading.Lock() if how == "lock" else None)
    before = np.asarray(array.values)
    np.testing.assert_array_equal(_in_thread(lambda: array.values), before)  # unchanged: opens anywhere
    _replace(path, OLD + 1)
    with _changed(path):
        _in_thread(lambda: array.values)


def test_an_unchanged_file_opens_on_every_thread_and_a_fresh_open_reads_the_new_one(
    opened: tuple[Path, Any],
) -> None:
    path, array = opened
    path.read_bytes()  # another reader (the access time may move; the status-change time does not)
    for _ in range(3):
        np.testing.assert_array_equal(_in_thread(lambda: array.values), OLD)
    _replace(path, OLD + 1)
    fresh = open_raster(path)
    np.testing.assert_array_equal(_in_thread(lambda: fresh.values), OLD + 1)


def test_file_stamp_names_the_file_by_its_identity(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"abc")
    info = os.stat(path)
    assert file_stamp(str(path)) == (info.st_mtime_ns, 3, info.st_ino, info.st_dev, info.st_ctime_ns)


def _rewrite_in_place(path: Path, data: np.ndarray, *, overviews: bool = False) -> None:
    """Write ``data``'s file over ``path`` as ``cp`` does: the same inode, truncated and written again."""
    tmp = path.with_name(path.name + ".new")
    _write(tmp, data)
    if overviews:
        with rasterio.open(tmp, "r+") as dst:
            dst.build_overviews([2])
    shutil.copyfile(tmp, path)


@pytest.mark.parametrize("how", ["plain", "masked", "lock", "overview"])
def test_an_open_handle_refuses_a_file_rewritten_in_place(tmp_path: Path, how: str) -> None:
    # the thread that read before keeps its handle: it must not read the new bytes under the old array
    path = tmp_path / "scene.tif"
    _write(path, OLD)
    extra: dict[str, Any] = {"overview_level": 0} if how == "overview" else {}
    if how == "overview":
        with rasterio.open(path, "r+") as dst:
            dst.build_overviews([2])
    array = open_raster(
        path, masked=how == "masked", lock=threading.Lock() if how == "lock" else None, **extra
    )
    np.asarray(array.isel(y=slice(0, 16)).values)  # this thread's handle is open
    _rewrite_in_place(path, OLD + 1, overviews=how == "overview")
    after = np.asarray(open_raster(path, **extra).values)  # a fresh open reads the new file
    assert os.stat(path).st_ino == file_stamp(str(path))[2]
    with pytest.raises(ReadError, match="rewritten in place since it was opened") as caught:
        array.values  # noqa: B018
    assert str(path) in str(caught.value)
    np.testing.assert_array_equal(np.asarray(open_raster(path, **extra).values), after)


@pytest.mark.parametrize("workers", [0, 3])
def test_chips_refuse_a_file_rewritten_in_place_under_their_handles(
    opened: tuple[Path, Any], workers: int
) -> None:
    path, array = opened
    window = array.isel(y=slice(8, 56), x=slice(0, 40))
    assert len(list(tp.from_items([window]).chip({"y": 16, "x": 16}, workers=workers))) == 6  # handles open
    _rewrite_in_place(path, OLD + 1)
    with pytest.raises(ReadError, match="rewritten in place"):
        list(tp.from_items([window]).chip({"y": 16, "x": 16}, workers=workers))


@pytest.mark.parametrize("where", ["open handle", "new thread"])
def test_a_file_rewritten_with_its_mtime_put_back_is_refused(opened: tuple[Path, Any], where: str) -> None:
    # cp -p / rsync --inplace -t: same size, inode, device and mtime; only the status-change time moves
    path, array = opened
    before = os.stat(path)
    _rewrite_in_place(path, OLD + 1)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert file_stamp(str(path))[:4] == (before.st_mtime_ns, before.st_size, before.st_ino, before.st_dev)
    read = (lambda: array.values) if where == "open handle" else (lambda: _in_thread(lambda: array.values))
    with pytest.raises(ReadError, match=r"rewritten in place|changed since it was opened"):
        read()
