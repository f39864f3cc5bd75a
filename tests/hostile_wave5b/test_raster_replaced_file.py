"""A read_raster/open_raster array whose file is replaced (``os.replace``, as a COG writer publishes) afterwards.

Each thread opens its own GDAL handle of the array's file on its first read (io/raster_array's per-thread
handles; 9c68d23 and 368f4f5 read through them). The thread that opened the array keeps reading the
old file; a thread that reads it first after the replacement opens the new file under the old array's
geometry: the same array gives the old pixels on one thread and the new ones on another (chips of one
pass from two files), and a smaller new file comes back as an array of another shape than the
DataArray's, silently. Either every thread reads what the array was opened on, or the read is a
ReadError naming the file; never the new file's pixels under the old array.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from terrapipe.core.errors import TerrapipeError
from terrapipe.io import open_raster


def _publish(path: Path, data: np.ndarray) -> None:
    """Write ``data`` next to ``path`` and move it over ``path`` (one rename)."""
    tmp = path.with_suffix(".tmp.tif")
    profile = {"driver": "GTiff", "count": 1, "dtype": "uint16", "crs": "EPSG:32631"}
    with rasterio.open(
        tmp,
        "w",
        width=data.shape[1],
        height=data.shape[0],
        transform=from_origin(5e5, 5e6, 10, 10),
        **profile,
    ) as dst:
        dst.write(data[None])
    os.replace(tmp, path)


def _on_a_new_thread(array: Any) -> Any:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["values"] = np.asarray(array.values)
        except TerrapipeError as err:
            out["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    return out


@pytest.mark.parametrize("new_side", [64, 32], ids=["same_size", "smaller"])
def test_a_thread_never_reads_the_replaced_file_under_the_old_array(tmp_path: Path, new_side: int) -> None:
    path = tmp_path / "published.tif"
    old = np.arange(64 * 64, dtype="uint16").reshape(64, 64)
    _publish(path, old)
    array = open_raster(path)
    assert np.asarray(array.values)[0].tolist() == old.tolist()  # this thread's handle: the old file
    _publish(path, np.full((new_side, new_side), 7, dtype="uint16"))
    out = _on_a_new_thread(array)
    if "error" in out:
        return  # refused: fine
    got = out["values"]
    assert got.shape == array.shape, f"array of shape {array.shape} read as {got.shape}"
    np.testing.assert_array_equal(got[0], np.asarray(array.values)[0])


def test_an_array_opened_after_the_replacement_reads_the_new_file(tmp_path: Path) -> None:
    """A new open_raster of the path, on any thread, reads the new file (holds)."""
    path = tmp_path / "published.tif"
    _publish(path, np.zeros((64, 64), dtype="uint16"))
    np.asarray(open_raster(path).values)
    _publish(path, np.full((64, 64), 7, dtype="uint16"))
    fresh = open_raster(path)
    assert np.unique(np.asarray(fresh.values)).tolist() == [7]
    assert np.unique(_on_a_new_thread(fresh)["values"]).tolist() == [7]
