"""A side-car probe that gets no answer is an error, never 'no side-car' (io/sidecars.found_sidecars).

The side-car server answers side-car names 3 s late; with ``Storage(timeout=2)`` the ``.aux.xml`` that
holds the file's only nodata cannot be checked. The open is a ReadError naming the file and the side-car
and what to do, again on the next open (GDAL's remembered 'absent' is cleared), and
``Storage(sidecars=False)`` reads the file as it is and ``Storage(sidecars=True)`` with a longer time-out
gives its side-car's nodata, as the message says.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import terrapipe as tp
from tests.hostile_wave5b.test_sidecar_servers import _Server, _start

VALUES = np.arange(100, 148, dtype="uint16").reshape(1, 6, 8)


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    folder: Path = tmp_path_factory.mktemp("sidecar_no_answer")
    profile = {"driver": "GTiff", "width": 8, "height": 6, "count": 1, "dtype": "uint16", "crs": "EPSG:32631"}
    with rasterio.open(folder / "n.tif", "w", transform=Affine(10, 0, 5e5, 0, -10, 4e6), **profile) as dst:
        dst.write(VALUES)
    (folder / "n.tif.aux.xml").write_text(
        "<PAMDataset><PAMRasterBand band='1'><NoDataValue>100</NoDataValue></PAMRasterBand></PAMDataset>"
    )
    server = _start(folder, "slow3")
    try:
        yield server
    finally:
        server.stop()


def test_an_unanswered_side_car_probe_is_a_read_error_each_time(slow_server: _Server) -> None:
    url = slow_server.url + "/n.tif"
    for _ in range(2):  # the second open asks again (GDAL's cached 'absent' is cleared), and fails again
        with pytest.raises(tp.ReadError) as caught:
            tp.open_raster(url, storage=tp.Storage(timeout=2, retries=0))
        text = str(caught.value)
        assert url in text, text
        assert "'.aux.xml'" in text, text
        assert "no answer" in text, text
        assert "Storage(sidecars=False)" in text, text
        assert "Storage(sidecars=True)" in text, text


def test_sidecars_false_reads_the_file_as_it_is(slow_server: _Server) -> None:
    da = tp.open_raster(slow_server.url + "/n.tif", storage=tp.Storage(timeout=2, retries=0, sidecars=False))
    np.testing.assert_array_equal(np.asarray(da.values), VALUES)
    assert da.rio.nodata is None  # not asked for, as chosen


def test_sidecars_true_with_a_longer_timeout_gives_the_side_car_s_nodata(slow_server: _Server) -> None:
    """The message's other way: GDAL asks for each side-car itself, with the storage's time-out."""
    da = tp.open_raster(slow_server.url + "/n.tif", storage=tp.Storage(timeout=5, retries=0, sidecars=True))
    assert da.attrs.get("nodata", da.attrs.get("_FillValue", da.rio.nodata)) == 100
