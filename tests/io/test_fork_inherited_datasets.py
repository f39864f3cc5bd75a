"""A process forked after netCDF-4 reads (local and at a signed URL) reads on threads of its own.

The child dropped the GDAL datasets it inherited (``raster_array``'s per-thread handles), which
closed them there: GDAL's netCDF driver serves a netCDF-4 file at ``/vsicurl/`` through
``userfaultfd`` and a handler thread the child does not have, and the child died of a
segmentation fault (a DataLoader worker started with ``fork`` would too). See io/gdal_fork.py.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.io import open_raster
from tests.forking import in_forked_child
from tests.io.test_io_raster_signed_urls import write_raster
from tests.servers.http_range import RangeServer
from tests.servers.signed_range import SIGNED_QUERY, start_signed_server

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork")


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RangeServer]:
    server = start_signed_server(tmp_path_factory.mktemp("signed-root"))
    try:
        yield server
    finally:
        server.stop()


def _child(paths: list[str]) -> tuple[int, float, list[float]]:
    chips = [c.values for c in tp.from_items(paths).read_raster().chip({"y": 32, "x": 32}, workers=2)]
    again = [float(open_raster(p).values.sum()) for p in paths]
    return len(chips), sum(float(c.sum()) for c in chips), again


@pytest.mark.parametrize("where", ["local", "signed"])
def test_a_forked_child_reads_after_netcdf4_reads_on_reader_threads(
    signed: RangeServer, where: str, unique_name: Any
) -> None:
    path = signed.root / unique_name("grid4.nc")
    expected = write_raster(path, "netCDF4")
    href = str(path) if where == "local" else f"{signed.url_for(path)}?{SIGNED_QUERY}"
    cog = signed.root / unique_name("c.tif")
    write_raster(cog, "COG")
    # the parent: the main thread and the reader threads hold the file open
    np.testing.assert_array_equal(open_raster(href).values, expected)
    parent = [
        c.values for c in tp.from_items([href, str(cog)]).read_raster().chip({"y": 32, "x": 32}, workers=2)
    ]
    assert sum(float(c.sum()) for c in parent[:4]) == float(expected.sum())
    count, total, again = in_forked_child(_child, [href, str(cog)])
    assert count == len(parent) == 4 + 6  # 64 x 64 and 80 x 96 pixels: whole 32-pixel chips
    assert total == sum(float(c.sum()) for c in parent)
    assert again[0] == float(expected.sum())
    # the parent still reads the file it held across the fork
    np.testing.assert_array_equal(open_raster(href).values, expected)
