"""A remote raster's .aux.xml of any size is read whole (io/sidecars.py, R's): no cap on a response body.

DESIGN: everything remote is bounded, with a size cap on every response body. A side-car found next to a
remote raster is read by GDAL's PAM whole (``CPLParseXMLFile``) whatever its length: a server that says
its ``.aux.xml`` is 96 MB long sends all of it and the process parses it (measured: a 150 MB one, 3.2 s
and +260 MB of memory; a few GB would end the process). A real PAM document is a few kB.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import terrapipe as tp
from tests.hostile_wave7.serving import files_server

CLAIMED = 96 * 2**20


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    profile = {"driver": "GTiff", "width": 8, "height": 8, "count": 1, "dtype": "uint16", "crs": "EPSG:32631"}
    with rasterio.open(tmp_path / "a.tif", "w", transform=Affine(10, 0, 5e5, 0, -10, 4e6), **profile) as dst:
        dst.write(np.arange(100, 164, dtype="uint16").reshape(1, 8, 8))
    mode = request.param if isinstance(request.param, str) else f"bigaux{request.param}"
    with files_server(tmp_path, mode) as url:
        yield url


def _aux_bytes_sent(url: str) -> int:
    with urllib.request.urlopen(url + "/_log", timeout=5) as answer:
        log = json.loads(answer.read())
    return sum(int(entry.get("sent", 0)) for entry in log if str(entry["path"]).endswith(".aux.xml"))


@pytest.mark.parametrize("served", [CLAIMED], indirect=True)
def test_a_huge_aux_xml_is_never_read_whole(served: str) -> None:
    with contextlib.suppress(tp.ReadError):  # refused, naming the file: fine
        tp.open_raster(served + "/a.tif", storage=tp.Storage(timeout=10, retries=0))
    assert _aux_bytes_sent(served) < CLAIMED // 4


@pytest.mark.parametrize("served", [4096], indirect=True)
def test_a_small_aux_xml_is_read(served: str) -> None:
    """The same document padded to 4 kB: its nodata (holds)."""
    da = tp.open_raster(served + "/a.tif", storage=tp.Storage(timeout=10, retries=0))
    assert da.attrs.get("nodata", da.rio.nodata) == 100


@pytest.mark.parametrize("served", [f"chunkedaux{CLAIMED}"], indirect=True)
def test_a_huge_aux_xml_without_a_length_is_never_read_whole(served: str) -> None:
    """No Content-Length in the HEAD's or the GET's answer (chunked, Range ignored): the cap still holds."""
    with contextlib.suppress(tp.ReadError):  # refused, naming the file: fine
        tp.open_raster(served + "/a.tif", storage=tp.Storage(timeout=10, retries=0))
    assert _aux_bytes_sent(served) < CLAIMED // 4


@pytest.mark.parametrize("served", ["chunkedaux4096"], indirect=True)
def test_a_small_aux_xml_without_a_length_is_read_or_refused(served: str) -> None:
    try:
        da = tp.open_raster(served + "/a.tif", storage=tp.Storage(timeout=10, retries=0))
    except tp.ReadError:
        return  # refused, naming the file: fine
    assert da.attrs.get("nodata", da.rio.nodata) == 100
