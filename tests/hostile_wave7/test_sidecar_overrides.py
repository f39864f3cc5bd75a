"""Side-cars next to remote rasters against GDAL's local reading (io/sidecars.py, R's file).

GDAL reads a GeoTIFF's ``.aux.xml`` (PAM) over the file's own values: its nodata, scale/offset and
geotransform win over the TIFF tags (GDAL 3.10, ``GDAL_GEOREF_SOURCES`` default ``PAM,INTERNAL,...``).
A remote read must give what the same folder gives locally, or say it cannot.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

import terrapipe as tp
from tests.servers.process import start_serving, stop_process

SCRIPT = Path(__file__).with_name("_files_server.py")
VALUES = np.arange(100, 164, dtype="uint16").reshape(1, 8, 8)
AUX = (
    "<PAMDataset><GeoTransform>0, 1, 0, 100, 0, -1</GeoTransform>"
    "<PAMRasterBand band='1'><NoDataValue>100</NoDataValue><Offset>5</Offset><Scale>3</Scale>"
    "</PAMRasterBand></PAMDataset>"
)


@dataclass
class _Server:
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop_process(self.process, timeout=2)

    def log(self) -> list[dict[str, str]]:
        with urllib.request.urlopen(self.url + "/_log", timeout=5) as answer:
            found: list[dict[str, str]] = json.loads(answer.read())
            return found


def _start(root: Path, mode: str) -> _Server:
    cmd = [sys.executable, str(SCRIPT), "--root", str(root), "--mode", mode]
    return start_serving(cmd, lambda url, process: _Server(url, process), _Server.log, "files server", 20)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sidecar_overrides")
    profile = {"driver": "GTiff", "width": 8, "height": 8, "count": 1, "dtype": "uint16", "crs": "EPSG:32631"}
    transform = Affine(10, 0, 5e5, 0, -10, 4e6)
    with rasterio.open(folder / "full.tif", "w", transform=transform, nodata=0, **profile) as dst:
        dst.write(VALUES)  # nodata, scale/offset and overviews in the file: 'no room' for an .aux.xml
        dst.scales, dst.offsets = (2.0,), (1.0,)
        dst.build_overviews([2])
    (folder / "full.tif.aux.xml").write_text(AUX)
    with rasterio.open(folder / "plain.tif", "w", transform=transform, **profile) as dst:
        dst.write(VALUES)  # nothing but pixels: every side-car asked for
    (folder / "plain.tif.aux.xml").write_text(AUX)
    return folder


@pytest.fixture
def server(request: pytest.FixtureRequest, root: Path) -> Iterator[_Server]:
    main = _start(root, request.param)
    try:
        yield main
    finally:
        main.stop()


def _local(path: Path) -> dict[str, Any]:
    with rasterio.open(path) as src:
        return {"nodata": src.nodata, "transform": tuple(src.transform)[:6], "scale": src.scales[0]}


def _remote(da: Any) -> dict[str, Any]:
    nodata = da.attrs.get("nodata", da.attrs.get("_FillValue", da.rio.nodata))
    scale = da.attrs.get("scale_factor", da.attrs.get("scales", [1.0]))
    scale = scale[0] if isinstance(scale, (list, tuple)) else scale
    return {"nodata": nodata, "transform": tuple(da.rio.transform())[:6], "scale": scale}


@pytest.mark.parametrize("server", ["plain"], indirect=True)
def test_an_aux_xml_over_a_file_with_its_own_nodata_wins_as_locally(server: _Server, root: Path) -> None:
    local = _local(root / "full.tif")
    assert local["nodata"] == 100  # GDAL's local reading: PAM wins
    assert local["transform"][2] == 0
    remote = _remote(tp.open_raster(server.url + "/full.tif", storage=tp.Storage(timeout=5, retries=0)))
    assert remote == local


@pytest.mark.parametrize("server", ["plain"], indirect=True)
def test_an_aux_xml_next_to_a_plain_file_gives_its_values_as_locally(server: _Server, root: Path) -> None:
    """A file with nothing but pixels: its .aux.xml is asked for and read (holds)."""
    local = _local(root / "plain.tif")
    remote = _remote(tp.open_raster(server.url + "/plain.tif", storage=tp.Storage(timeout=5, retries=0)))
    assert remote == local


@pytest.mark.parametrize("server", ["get403", "gzip"], indirect=True)
def test_an_aux_xml_found_but_not_read_is_never_dropped_silently(server: _Server, root: Path) -> None:
    """HEAD says the .aux.xml is there, GET refuses it (403) or sends it gzip-encoded: its values or an error."""
    local = _local(root / "plain.tif")
    try:
        da = tp.open_raster(server.url + "/plain.tif", storage=tp.Storage(timeout=5, retries=0))
        remote = _remote(da)
        np.asarray(da.values)
    except tp.TerrapipeError:
        return  # refused, naming the file: fine
    assert remote == local
