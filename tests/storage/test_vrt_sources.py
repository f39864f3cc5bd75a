"""A VRT whose source GDAL cannot read is a ReadError for every reader, never zeros (io/remote_sources).

GDAL opens a VRT's sources at the read; one it cannot open (missing, refused; or one it found missing
before and remembers) read as zeros, with only GDAL's log saying so: a remote VRT beside a missing
source gave all zeros from open_raster, read_raster and stack_stac. Each reader's open now asks for the
sources first (as GDAL opens them) and refuses the VRT, on every open.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.core.errors import TerrapipeError
from tests.hostile_wave5.test_remote_vrt_sources import _vrt, _vrt_item
from tests.io.conftest import write_cog
from tests.servers.header_server import start_header_server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Any]]:
    root = tmp_path_factory.mktemp("vrt_sources")
    pixels = write_cog(root / "b.tif", count=1, height=64, width=64, block=64, seed=3)
    (root / "gone.vrt").write_text(_vrt("nothere.tif", relative=True))
    (root / "fine.vrt").write_text(_vrt("b.tif", relative=True))
    (root / "local_gone.vrt").write_text(_vrt(str(root / "nothere_local.tif")))
    private = tmp_path_factory.mktemp("vrt_private")
    write_cog(private / "p.tif", count=1, height=64, width=64, block=64, seed=4)
    (root / "inner.tif").write_text(_vrt(str(private / "p.tif")))  # a VRT named like a GeoTIFF
    server = start_header_server(root, "Authorization=Bearer unused")
    try:
        (root / "outer_disguised.vrt").write_text(_vrt(f"/vsicurl/{server.url}/inner.tif"))
        (root / "outer_gone.vrt").write_text(_vrt(f"/vsicurl/{server.url}/gone.vrt"))
        yield server.url, root, pixels
    finally:
        server.stop()


def _refused(err: BaseException) -> None:
    text = str(err)
    assert "VRT source(s) cannot be read" in text, text
    assert "zeros" in text, text


@pytest.mark.parametrize("where", ["remote", "local"])
def test_open_raster_refuses_a_vrt_with_a_missing_source_every_time(
    served: tuple[str, Path, Any], where: str
) -> None:
    url, root, _ = served
    path = f"{url}/gone.vrt" if where == "remote" else str(root / "local_gone.vrt")
    for _ in range(2):  # the second time GDAL remembers the source is missing: still refused
        with pytest.raises(tp.ReadError) as caught:
            np.asarray(tp.open_raster(path, storage=tp.Storage(retries=0)).values)
        _refused(caught.value)
        assert "nothere" not in str(caught.value) or where == "remote"  # a local source is not named


def test_read_raster_refuses_it(served: tuple[str, Path, Any]) -> None:
    url, _, _ = served

    def read() -> None:
        for da in tp.from_items([f"{url}/gone.vrt"]).read_raster(storage=tp.Storage(retries=0)):
            np.asarray(da.values)

    with pytest.raises(tp.ReadError) as caught:
        read()
    _refused(caught.value)


@pytest.mark.parametrize("grid", ["native", "resampled"])
def test_stack_stac_refuses_it(served: tuple[str, Path, Any], grid: str) -> None:
    url, _, _ = served
    options: dict[str, Any] = {"resolution": 20} if grid == "resampled" else {}

    def read() -> None:
        item = _vrt_item(f"{url}/gone.vrt")
        np.asarray(tp.stac.stack_items([item], bands=["data"], dtype="uint16", nodata=0, **options).values)

    with pytest.raises(TerrapipeError) as caught:
        read()
    _refused(caught.value)


def test_a_vrt_beside_its_source_reads_its_pixels(served: tuple[str, Path, Any]) -> None:
    url, _, pixels = served
    got = np.asarray(tp.open_raster(f"{url}/fine.vrt", storage=tp.Storage(retries=0)).values)
    np.testing.assert_array_equal(got[0], pixels[0])


def test_a_remote_vrt_naming_a_vrt_named_like_a_tiff_that_names_a_local_file_is_refused(
    served: tuple[str, Path, Any],
) -> None:
    """GDAL goes by content: a VRT saved as .tif is found by its first bytes."""
    url, _, _ = served
    with pytest.raises(tp.ReadError, match="names a file on this machine"):
        tp.open_raster(f"{url}/outer_disguised.vrt", storage=tp.Storage(retries=0))


def test_a_remote_vrt_naming_a_remote_vrt_with_a_missing_source_is_refused(
    served: tuple[str, Path, Any],
) -> None:
    url, _, _ = served
    with pytest.raises(tp.ReadError) as caught:
        np.asarray(tp.open_raster(f"{url}/outer_gone.vrt", storage=tp.Storage(retries=0)).values)
    _refused(caught.value)
