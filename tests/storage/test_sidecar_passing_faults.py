"""A side-car probe that meets a passing fault is asked again, as a read is (io/sidecars.found_sidecars).

With 5% of the requests under a folder failing (tests/reliability/test_faults.py), a side-car probe
hit by one 503 made a healthy scene a ReadError, skipped under ``on_error="skip"``: a lost sample. A
fault that passes is now retried within the probes' time: the side-car's nodata is read, an absent
side-car is absent, and only a fault that lasts stays an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import terrapipe as tp
from tests.servers.http_range import RangeServer, start_range_server

VALUES = np.arange(100, 148, dtype="uint16").reshape(1, 6, 8)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[RangeServer, Path]]:
    profile = {"driver": "GTiff", "width": 8, "height": 6, "count": 1, "dtype": "uint16", "crs": "EPSG:32631"}
    for name in ("with.tif", "without.tif"):
        with rasterio.open(tmp_path / name, "w", transform=Affine(10, 0, 5e5, 0, -10, 4e6), **profile) as dst:
            dst.write(VALUES)
    (tmp_path / "with.tif.aux.xml").write_text(
        "<PAMDataset><PAMRasterBand band='1'><NoDataValue>100</NoDataValue></PAMRasterBand></PAMDataset>"
    )
    server = start_range_server(tmp_path)
    try:
        yield server, tmp_path
    finally:
        server.stop()


@pytest.mark.parametrize("status", [503, 500, 429])
def test_a_side_car_behind_one_passing_fault_is_read(served: tuple[RangeServer, Path], status: int) -> None:
    server, folder = served
    server.fault("/with.tif.aux.xml", status=status, count=1)
    da = tp.open_raster(server.url_for(folder / "with.tif"), storage=tp.Storage(retries=2, backoff=0.05))
    assert da.rio.nodata == 100
    np.testing.assert_array_equal(np.asarray(da.values), VALUES)


def test_an_absent_side_car_behind_one_passing_fault_is_absent(served: tuple[RangeServer, Path]) -> None:
    server, folder = served
    server.fault("/without.tif.aux.xml", status=503, count=1)
    da = tp.open_raster(server.url_for(folder / "without.tif"), storage=tp.Storage(retries=2, backoff=0.05))
    assert da.rio.nodata is None
    np.testing.assert_array_equal(np.asarray(da.values), VALUES)


def test_a_lasting_fault_is_still_an_error_naming_the_tries(served: tuple[RangeServer, Path]) -> None:
    server, folder = served
    server.fault("/with.tif.aux.xml", status=503)
    with pytest.raises(tp.ReadError, match=r"'\.aux\.xml'.*HTTP 503, 3 tries"):
        tp.open_raster(server.url_for(folder / "with.tif"), storage=tp.Storage(retries=2, backoff=0.05))
