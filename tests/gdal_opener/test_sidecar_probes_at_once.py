"""A remote raster's side-cars are looked up at once, while the file itself opens: no round trip of their own.

Each side-car look-up is a request: asked one after another after the open (as
up to stop 31), a COG over a 30 ms link waited four round trips before its
first chip. They are now asked together with the file's first block, so the
server sees them in flight at the same time. The answers are the same: a side-car
found is read, one not there is none (tests/realworld/test_sidecars.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

import terrapipe as tp
from terrapipe.io import gdal_opener
from tests.servers.latency_http import latency_server

PROFILE = {
    "driver": "GTiff",
    "count": 1,
    "crs": "EPSG:32631",
    "transform": from_origin(500000, 4000000, 10, 10),
}


def _write(path: Path, *, nodata: float | None = None) -> np.ndarray:
    values = np.arange(64 * 64, dtype="uint16").reshape(1, 64, 64)
    with rasterio.open(path, "w", width=64, height=64, dtype="uint16", nodata=nodata, **PROFILE) as dst:
        dst.write(values)
    return values


def test_the_file_and_its_sidecars_are_asked_for_at_the_same_time(tmp_path: Path) -> None:
    values = _write(tmp_path / "bare.tif")
    with latency_server(tmp_path, latency=0.25) as server:
        server.reset()
        got = tp.open_raster(f"{server.url}/bare.tif").values
        link = server.link()
        paths = {entry["path"] for entry in server.stats()["log"]}
    np.testing.assert_array_equal(got, values)
    assert {"/bare.tif.aux.xml", "/bare.tif.msk", "/bare.tif.ovr"} <= paths
    # the first block and three side-cars, 0.25 s each: asked one after another, never 4 in flight
    assert link["peak_in_flight"] >= 4, link


def test_a_sidecar_found_while_the_file_opens_is_applied(tmp_path: Path) -> None:
    """An .aux.xml's nodata wins over none in the file, as a local read gives (the look-up raced the open)."""
    values = _write(tmp_path / "a.tif")
    (tmp_path / "a.tif.aux.xml").write_text(
        '<PAMDataset><PAMRasterBand band="1"><NoDataValue>5</NoDataValue></PAMRasterBand></PAMDataset>'
    )
    local = tp.open_raster(tmp_path / "a.tif", masked=True).values
    with latency_server(tmp_path, latency=0.05) as server:
        remote = tp.open_raster(f"{server.url}/a.tif", masked=True).values
    np.testing.assert_array_equal(remote, local)
    assert np.isnan(remote[0, 0, 5])
    assert remote[0, 0, 6] == values[0, 0, 6]


def test_a_lookup_that_failed_is_asked_again_and_one_forgotten_is_not_kept(tmp_path: Path) -> None:
    """A speculative look-up that failed leaves nothing behind; forget() drops one under way."""
    _write(tmp_path / "b.tif")
    with latency_server(tmp_path, latency=0.2) as server:
        url = f"{server.url}/b.tif.aux.xml"
        gdal_opener.probe_soon(url, None, deadline=5)
        gdal_opener.forget(f"{server.url}/b.tif")  # while it is under way: its answer must not be kept
        kept = gdal_opener._KEPT.get()
        with kept.lock:
            assert not any(key[0] == url for key in kept.pending)
        assert gdal_opener.probe(url, None, deadline=5) is None  # asked again: not there
        (tmp_path / "b.tif.aux.xml").write_text("<PAMDataset/>")
        gdal_opener.forget(f"{server.url}/b.tif")
        found = gdal_opener.probe(url, None, deadline=5)
        assert found is not None
        assert found[0].startswith(b"<PAMDataset")
