"""A local GeoTIFF rewritten in place (same inode) while a thread's handle is open (io/raster_array, L's file).

f01ec5c checks the file's stamp (mtime, size, inode, device) at every open of the path for an array, none
per read: "a thread's open handle keeps reading the file it opened". A file rewritten in place (``cp
new.tif old.tif`` truncates and writes the same inode; ``rsync --inplace``; a writer's ``r+``) is not
the file it opened any more: the handle reads the new bytes for the blocks GDAL has not cached and the
old for those it has, so one array comes back as a mix of two files, silently.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import terrapipe as tp

PROFILE = {
    "driver": "GTiff", "width": 64, "height": 64, "count": 1, "dtype": "uint16", "crs": "EPSG:32631",
    "tiled": True, "blockxsize": 32, "blockysize": 32, "transform": Affine(10, 0, 5e5, 0, -10, 4e6),
}  # fmt: skip


def _write(path: Path, value: int) -> None:
    with rasterio.open(path, "w", **PROFILE) as dst:
        dst.write(np.full((1, 64, 64), value, "uint16"))


def _copy_over(new: Path, old: Path) -> None:
    shutil.copyfile(new, old)  # open(O_TRUNC) and write: the same inode, as cp does


def _write_over(new: Path, old: Path) -> None:
    with open(new, "rb") as source, open(old, "r+b") as target:  # rsync --inplace: no truncation
        target.write(source.read())


@pytest.mark.parametrize("rewrite", [_copy_over, _write_over], ids=["cp", "inplace"])
def test_a_file_rewritten_under_an_open_handle_is_never_read_as_a_mix(
    tmp_path: Path, rewrite: object
) -> None:
    path, new = tmp_path / "a.tif", tmp_path / "new.tif"
    _write(path, 1)
    _write(new, 3)
    da = tp.open_raster(str(path))
    assert np.asarray(da[:, :32, :32].values).tolist() == np.full((1, 32, 32), 1).tolist()
    rewrite(new, path)  # type: ignore[operator]
    try:
        values = np.asarray(da.values)
    except tp.ReadError as err:
        said = str(err)
        values = None
    if values is None:
        assert "a.tif" in said
    else:
        assert np.unique(values).tolist() == [1], f"one array, values {np.unique(values).tolist()}"


def test_a_fresh_open_after_the_rewrite_reads_the_new_file(tmp_path: Path) -> None:
    """A new open_raster of the rewritten path: the new file's values on this thread (holds)."""
    path, new = tmp_path / "a.tif", tmp_path / "new.tif"
    _write(path, 1)
    _write(new, 3)
    np.asarray(tp.open_raster(str(path))[:, :32, :32].values)
    _copy_over(new, path)
    assert np.unique(np.asarray(tp.open_raster(str(path)).values)).tolist() == [3]


def _write_over_keeping_mtime(new: Path, old: Path) -> None:
    """rsync --inplace -t, cp -p over the file: rewritten in place, its modification time put back."""
    before = old.stat()
    _write_over(new, old)
    os.utime(old, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_file_rewritten_in_place_with_its_mtime_kept_is_never_read_as_a_mix(tmp_path: Path) -> None:
    path, new = tmp_path / "a.tif", tmp_path / "new.tif"
    _write(path, 1)
    _write(new, 3)
    da = tp.open_raster(str(path))
    assert np.unique(np.asarray(da[:, :32, :32].values)).tolist() == [1]
    _write_over_keeping_mtime(new, path)
    try:
        values = np.asarray(da.values)
    except tp.ReadError as err:
        said = str(err)
        values = None
    if values is None:
        assert "a.tif" in said
    else:
        assert np.unique(values).tolist() == [1], f"one array, values {np.unique(values).tolist()}"
