"""A cache keyed by a name the readers resolve (``~``, a GDAL dataset name) sees its file change (cache/canonical.py).

Promised (DESIGN: caches are never stale by default): ``read_raster("~/scene.tif")``, a subdataset or
directory name (``NETCDF:"/d/a.nc":temp``, ``GTIFF_DIR:1:/d/a.tif``, ``HDF5:/d/a.h5://g/v``) and a file in
an archive (``/vsizip//d/a.zip/b.tif``, ``/vsizip/{/d/a.zip}/b.tif``, ``/vsigzip//d/a.gz``) read a local
file, so their key carries that file's identity: rewritten in place (mtime put back or not), the
next pass recomputes. Before, such names were keyed by their text alone and served stale hits. Also:
read_raster itself, given a GDAL name, reads the rewritten file on the next pass (G's: strict xfail).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.cache import MemoryLRU
from terrapipe.cache.keys import element_identity

rasterio = pytest.importorskip("rasterio")

OLD, NEW = b"old bytes, sixteen", b"new bytes, sixteen"


def rewrite_keeping_mtime(path: Path, data: bytes) -> None:
    before = path.stat()
    with open(path, "r+b") as file:
        file.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def names(folder: Path) -> dict[str, tuple[str, Path]]:
    """GDAL-style names of files in ``folder``: name -> (text given to the reader, the file it reads)."""
    f = folder / "a.bin"
    return {
        "tilde": ("~/a.bin", f),
        "netcdf quoted": (f'NETCDF:"{f}":temp', f),
        "netcdf plain": (f"NETCDF:{f}:temp", f),
        "hdf5 path": (f"HDF5:{f}://group/var", f),
        "gtiff dir": (f"GTIFF_DIR:1:{f}", f),
        "gpkg layer": (f"GPKG:{f}:roads", f),
        "vsizip": (f"/vsizip/{f}/inner/b.tif", f),
        "vsizip braces": (f"/vsizip/{{{f}}}/b.tif", f),
        "vsigzip": (f"/vsigzip/{f}", f),
        "vsisubfile": (f"/vsisubfile/0_8,{f}", f),
    }


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "a.bin").write_bytes(OLD)
    return tmp_path


@pytest.mark.parametrize("kind", list(names(Path("/d"))))
def test_a_file_inside_a_name_rewritten_is_not_served_stale(home: Path, kind: str) -> None:
    text, file = names(home)[kind]
    resolve: Callable[[str], bytes] = lambda _: file.read_bytes()  # noqa: E731 - what the reader reads
    pipe = tp.from_items([text]).cache_point().map(resolve).cache(MemoryLRU(max_bytes=2**20))
    assert list(pipe) == [OLD]
    rewrite_keeping_mtime(file, NEW)
    assert list(pipe) == [NEW]


def test_a_word_before_a_colon_never_has_a_folder_walked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'TAG:/' or 'EPSG:<folder>' name no dataset: the root folder must not be walked for a key."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "4326").mkdir()
    for text in ("TAG:/", "EPSG:4326", f"NOTE:{tmp_path}", f'NETCDF:"{tmp_path}":v'):
        assert element_identity(text) == text
    zarr = tmp_path / "a.zarr"
    zarr.mkdir()
    (zarr / "zarr.json").write_text("{}")
    assert element_identity(f'ZARR:"{zarr}"/v') != f'ZARR:"{zarr}"/v'  # GDAL's Zarr driver names a folder


def test_names_that_name_no_file_stay_plain_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for text in (
        "EPSG:4326",
        "NETCDF:",
        'NETCDF:"',
        "/vsizip/",
        "/vsizip/{",
        "~nobody-h8/x",
        "B04",
        "time:mean",
    ):
        assert element_identity(text) == text


def _write_tif(path: Path, value: int) -> None:
    profile = {
        "driver": "GTiff", "width": 8, "height": 8, "count": 1, "dtype": "uint8", "crs": "EPSG:32633",
        "transform": rasterio.transform.from_origin(0, 80, 10, 10),
    }  # fmt: skip
    mode = "r+" if path.exists() else "w"
    with rasterio.open(path, mode, **({} if mode == "r+" else profile)) as dst:
        dst.write(np.full((1, 8, 8), value, "uint8"))


def test_read_raster_of_a_gdal_name_reads_a_rewritten_file(tmp_path: Path) -> None:
    path = tmp_path / "scene.tif"
    _write_tif(path, 1)
    pipe = tp.from_items([f"GTIFF_DIR:1:{path}"]).read_raster().map(lambda da: int(da.values.max()))
    assert list(pipe) == [1]
    _write_tif(path, 2)
    assert list(pipe) == [2]


def test_read_raster_of_a_path_reads_a_rewritten_file(tmp_path: Path) -> None:
    """The plain path (holds)."""
    path = tmp_path / "scene.tif"
    _write_tif(path, 1)
    pipe = tp.from_items([str(path)]).read_raster().map(lambda da: int(da.values.max()))
    assert list(pipe) == [1]
    _write_tif(path, 2)
    assert list(pipe) == [2]
