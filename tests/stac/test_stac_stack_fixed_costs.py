"""What ``stack_items`` pays once per process, and that paying less changes no pixel.

- A local file whose header must be read (the items state no data type) is opened on the native
  reads' long-lived pool (``stac/native_read.on_read_pool``), whose threads keep the handle for the
  cube's reads: opened in the calling thread, the handle served nothing else and that thread's first
  GDAL open cost ~8 ms of PROJ set-up more.
- ``odc.stac`` is imported only for a grid other than the items' own (~8 ms of a fresh process);
  the native cube needs odc-loader only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.core.errors import ReadError
from terrapipe.io import raster_array
from tests.reliability.data import write_scene_item

rasterio = pytest.importorskip("rasterio")
pytest.importorskip("odc.stac")

ROOT = Path(__file__).resolve().parents[2]


def _item(tmp_path: Path, *, bands: int = 2, size: int = 256) -> dict[str, Any]:
    """An item of ``bands`` one-band local COGs on one grid, with projection fields and no data types."""
    return write_scene_item(tmp_path, bands=bands, size=size)


def _rasterio_pixels(item: dict[str, Any]) -> np.ndarray:
    out = []
    for asset in item["assets"].values():
        with rasterio.open(asset["href"]) as src:
            out.append(src.read(1))
    return np.stack(out)


def test_a_local_header_is_read_on_the_read_pool_whose_threads_keep_the_file_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = _item(tmp_path)
    opened: list[str] = []
    lock = threading.Lock()
    real = raster_array.RasterSource.open

    def counting(source: Any) -> Any:
        with lock:
            opened.append(threading.current_thread().name)
        return real(source)

    monkeypatch.setattr(raster_array.RasterSource, "open", counting)
    cube = tp.stac.stack_items([item])
    probed = list(opened)
    assert len(probed) == 2  # one header per asset (their data types are not stated)
    assert all(name.startswith("stack_stac-read") for name in probed), probed
    # pixels and coordinates as before: rasterio's, on the file's grid
    np.testing.assert_array_equal(cube.isel(time=0).values, _rasterio_pixels(item))
    with rasterio.open(item["assets"]["b0"]["href"]) as src:
        x0 = src.transform.c + src.transform.a / 2
    assert float(cube.x[0]) == pytest.approx(x0)
    chips = list(tp.from_items([cube]).chip({"y": 128, "x": 128}, workers=2))
    np.testing.assert_array_equal(chips[0].values, cube.isel(y=slice(0, 128), x=slice(0, 128)).values)
    assert str(cube.dtype) == "uint16"


def test_a_header_that_cannot_be_read_is_the_same_error_from_the_pool(tmp_path: Path) -> None:
    item = _item(tmp_path)
    Path(item["assets"]["b1"]["href"]).write_bytes(b"not a tiff")
    with pytest.raises(ReadError, match=r"cannot read asset 'b1' of STAC item 'scene' at .*b1.tif'"):
        tp.stac.stack_items([item])


_NO_ODC_STAC = """
import json, sys
import numpy as np
import terrapipe as tp, terrapipe.stac
item = json.loads(sys.argv[1])
cube = tp.stac.stack_items([item])
values = cube.isel(time=0).values
print(json.dumps({"native_imports_odc_stac": "odc.stac" in sys.modules, "shape": list(values.shape),
                  "sum": int(values.astype("int64").sum())}))
coarse = tp.stac.stack_items([item], resolution=2 * float(item["properties"]["proj:transform"][0]))
print(json.dumps({"resampled_imports_odc_stac": "odc.stac" in sys.modules, "shape": list(coarse.shape)}))
"""


def test_a_cube_on_the_items_own_grid_does_not_import_odc_stac(tmp_path: Path) -> None:
    item = _item(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", _NO_ODC_STAC, json.dumps(item)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    native, resampled = (json.loads(line) for line in done.stdout.strip().splitlines()[-2:])
    assert native["native_imports_odc_stac"] is False
    assert native["shape"] == [2, 256, 256]
    assert native["sum"] == int(_rasterio_pixels(item).astype("int64").sum())
    assert resampled["resampled_imports_odc_stac"] is True  # odc-stac resamples other grids
    assert resampled["shape"] == [1, 2, 128, 128]


def test_local_files_are_decoded_on_as_many_threads_as_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each decoding thread pays ~8 ms of PROJ set-up on its first open, and more threads than cores only
    # contend: the chip stage's 4 reader threads hand local reads to a pool of LOCAL_READ_THREADS.
    import os

    from terrapipe.stac import native_read

    cores = max(2, min(native_read.READ_THREADS, os.cpu_count() or 2))
    threads = native_read.LOCAL_READ_THREADS
    assert threads == cores
    item = _item(tmp_path, bands=2, size=512)
    cube = tp.stac.stack_items([item], chunks={"x": 128, "y": 128})
    readers: set[str] = set()
    lock = threading.Lock()
    real = native_read._fill_slot

    def recording(*args: Any, **kwargs: Any) -> Any:
        with lock:
            readers.add(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(native_read, "_fill_slot", recording)
    chips = list(tp.from_items([cube]).chip({"y": 64, "x": 64}, workers=4))
    assert len(chips) == 64
    assert readers
    assert all(name.startswith("stack_stac-read-local") for name in readers), readers
    assert len(readers) <= native_read.LOCAL_READ_THREADS
    np.testing.assert_array_equal(cube.isel(time=0).values, _rasterio_pixels(item))
