"""Rasters at a URL are read by GDAL through the byte layer: every range checked, whatever GDAL reads.

A server (or CDN) that answers a range with other bytes (``206``, its ``Content-Range`` naming what
it sent) gave GDAL's ``/vsicurl/`` another tile's pixels, silently (B1). Through
``io/gdal_opener.py`` every read is a checked ranged GET: a tile's (GDAL's multi-range read),
an overview's, a mask's, the tile index's (a plain read past the first block), each a
``ReadError`` naming the URL (never its query), through ``open_raster``, ``read_raster``,
``chip`` and ``sample_windows``. A file whose size or ``ETag`` changes between requests is refused.
Uncompressed tiles are used where it matters: zeros (what a failed multi-range read hands GDAL)
decode there without an error, so only the kept failure can refuse them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.core.errors import ReadError
from tests.hostile_wave4.lying_ranges import start_lying_server
from tests.servers.http_range import start_range_server

rasterio = pytest.importorskip("rasterio")

SIDE = 512


def _pixels(side: int, dtype: str = "uint16", seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 200, (side, side)).astype(dtype)


def _write(
    path: Path, data: np.ndarray, *, block: int, mask: bool = False, overviews: bool = False, **extra: Any
) -> None:
    profile = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": "EPSG:32631",
        "transform": rasterio.Affine(10, 0, 500000, 0, -10, 5e6),
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        **extra,
    }
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        if mask:
            valid = np.full(data.shape, 255, "uint8")
            valid[: data.shape[0] // 2] = 0
            dst.write_mask(valid)
        if overviews:
            dst.build_overviews([2, 4])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    root = tmp_path_factory.mktemp("checked")
    made = {
        "tile.tif": (_pixels(SIDE), {"block": 64}),
        "index.tif": (_pixels(2048, "uint8", 1), {"block": 16}),  # 16384 tiles: an index of 128 kB
        "ovr.tif": (_pixels(SIDE, seed=2), {"block": 64, "overviews": True}),
        "mask.tif": (_pixels(SIDE, seed=3), {"block": 64, "mask": True}),
    }
    for name, (data, options) in made.items():
        _write(root / name, data, **options)
    files_root[0] = root
    return {name: data for name, (data, _) in made.items()}


files_root: list[Path] = [Path(".")]


@pytest.fixture(scope="module")
def lying(files: dict[str, np.ndarray]) -> Iterator[Any]:
    server = start_lying_server(files_root[0])
    try:
        yield server
    finally:
        server.stop()


def _shifted(lying: Any, name: str, query: str = "?sig=s3cret") -> str:
    return f"{lying.url}/shifted/{name}{query}"


def _refused(call: Any, name: str) -> str:
    with pytest.raises(ReadError) as caught:
        call()
    text = str(caught.value)
    assert name in text, text
    assert "s3cret" not in text
    assert "sig=" not in text
    return text


@pytest.mark.parametrize("query", ["", "?sig=s3cret"])
def test_a_tile_answered_with_other_bytes_is_refused(lying, files, query) -> None:
    url = _shifted(lying, "tile.tif", query)
    _refused(lambda: tp.open_raster(url, verify=False)[:, 256:320, 256:320].values, "tile.tif")


def test_a_tile_index_answered_with_other_bytes_is_refused(lying, files) -> None:
    url = _shifted(lying, "index.tif")
    _refused(lambda: tp.open_raster(url, verify=False)[:, 2000:2016, 2000:2016].values, "index.tif")


def test_an_overview_answered_with_other_bytes_is_refused(lying, files) -> None:
    url = _shifted(lying, "ovr.tif")
    _refused(lambda: tp.open_raster(url, overview_level=0, verify=False).values, "ovr.tif")


def test_a_mask_answered_with_other_bytes_is_refused(lying, files) -> None:
    url = _shifted(lying, "mask.tif")
    _refused(lambda: tp.open_raster(url, masked=True, verify=False).values, "mask.tif")


def test_read_raster_chip_and_sample_windows_refuse_it(lying, files) -> None:
    url = _shifted(lying, "tile.tif")
    _refused(lambda: list(tp.from_items([url]).read_raster().chip({"x": 64, "y": 64}, workers=2)), "tile.tif")
    _refused(
        lambda: list(tp.from_items([url]).read_raster().sample_windows(64, n=8, seed=1, workers=0)),
        "tile.tif",
    )


@pytest.mark.parametrize("name", ["tile.tif", "index.tif", "ovr.tif", "mask.tif"])
def test_a_truthful_server_gives_the_local_pixels(lying, files, name) -> None:
    url = f"{lying.url}/signed/{name}?sig=x"
    (files_root[0] / f"{name}.query").write_text("sig=x", encoding="utf-8")
    kwargs: dict[str, Any] = {"overview_level": 0} if name == "ovr.tif" else {}
    if name == "mask.tif":
        kwargs["masked"] = True
    got = tp.open_raster(url, **kwargs).values
    with rasterio.open(files_root[0] / name, **({"overview_level": 0} if name == "ovr.tif" else {})) as src:
        want = src.read(1, masked=name == "mask.tif")
    if name == "mask.tif":
        want = np.ma.filled(want.astype("float32"), np.nan)
        np.testing.assert_array_equal(got[0], want)
    else:
        np.testing.assert_array_equal(got[0], want)


def test_a_file_replaced_between_requests_is_refused(tmp_path: Path) -> None:
    data = _pixels(SIDE)
    _write(tmp_path / "a.tif", data, block=64)
    _write(tmp_path / "same.tif", data[::-1].copy(), block=64)  # the same size, other pixels
    _write(tmp_path / "smaller.tif", data[:256, :256].copy(), block=64)
    server = start_range_server(tmp_path)
    try:
        for other in ("same.tif", "smaller.tif"):
            shutil.copy(tmp_path / "a.tif", tmp_path / "b.tif")
            da = tp.open_raster(f"{server.url}/b.tif", verify=False)
            np.testing.assert_array_equal(da[:, :64, :64].values[0], data[:64, :64])
            shutil.copy(tmp_path / other, tmp_path / "b.tif")  # new mtime: a new ETag (and maybe size)
            with pytest.raises(ReadError, match=r"b\.tif.*(changed|size|past the end)"):
                da[:, 448:, 448:].values  # noqa: B018
    finally:
        server.stop()
