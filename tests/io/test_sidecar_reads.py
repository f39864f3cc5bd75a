"""Side-cars of a remote raster (io/sidecars.py): asked once per process, and never dropped silently.

- The probes (``HEAD`` of ``.aux.xml``, ``.msk``, ``.ovr``) run at ``open_raster`` on the opening
  thread; reader threads' opens and a later open of the same file ask nothing again (GDAL keeps the
  answers): 3 requests per file and process, measured before and after.
- A side-car found by ``HEAD`` is read (its first bytes, which GDAL keeps for the open: no request
  more). One the server will not send (``GET`` refused where ``HEAD`` said 200) or sends
  ``gzip``-encoded was dropped by GDAL without a word: a mask (``.msk``) or overviews (``.ovr``)
  missing silently, as an ``.aux.xml``'s nodata was (tests/hostile_wave7/test_sidecar_overrides.py).
  It is a ``ReadError`` naming the file and the side-car now.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import terrapipe as tp
from tests.hostile_wave7.test_sidecar_overrides import _Server, _start
from tests.servers.header_server import HeaderServer, start_header_server

VALUES = np.arange(64 * 64, dtype="uint16").reshape(1, 64, 64)
PROFILE = {"driver": "GTiff", "width": 64, "height": 64, "count": 1, "dtype": "uint16", "crs": "EPSG:32631"}
TRANSFORM = Affine(10, 0, 5e5, 0, -10, 4e6)


def _write(path: Path, **extra: object) -> None:
    with rasterio.open(
        path, "w", transform=TRANSFORM, tiled=True, blockxsize=16, blockysize=16, **PROFILE, **extra
    ) as dst:
        dst.write(VALUES)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sidecar_reads")
    _write(folder / "bare.tif")
    _write(folder / "masked.tif")
    with rasterio.open(
        folder / "masked.tif.msk", "w", **{**PROFILE, "dtype": "uint8"}, transform=TRANSFORM
    ) as msk:
        msk.write(np.full((1, 64, 64), 255, dtype="uint8"))
    _write(folder / "overviews.tif")
    with rasterio.open(
        folder / "overviews.tif.ovr",
        "w",
        transform=TRANSFORM * Affine.scale(2),
        **{**PROFILE, "width": 32, "height": 32},
    ) as ovr:
        ovr.write(VALUES[:, ::2, ::2])
    return folder


@pytest.fixture(scope="module")
def counting(root: Path) -> Iterator[HeaderServer]:
    server = start_header_server(root, "Authorization=Bearer unused")
    try:
        yield server
    finally:
        server.stop()


def test_side_cars_are_asked_for_once_per_file_and_process(counting: HeaderServer) -> None:
    counting.reset()
    url = f"{counting.url}/bare.tif"
    da = tp.open_raster(url)
    chips = list(tp.from_items([da]).chip({"y": 16, "x": 16}, workers=4))  # reader threads open it too
    assert len(chips) == 16
    again: list[object] = []
    thread = threading.Thread(target=lambda: again.append(tp.open_raster(url).values))
    thread.start()
    thread.join(60)
    np.testing.assert_array_equal(np.asarray(again[0]), VALUES)
    asked = Counter(
        r["path"].rsplit(".tif", 1)[1] for r in counting.requests() if r["path"].startswith("/bare.tif.")
    )
    assert asked == {".aux.xml": 1, ".msk": 1, ".ovr": 1}


@pytest.fixture
def refusing(request: pytest.FixtureRequest, root: Path) -> Iterator[_Server]:
    server = _start(root, request.param)  # H7's side-car server, on this folder
    yield server  # pytest stops it after the test, passed or failed
    server.stop()


@pytest.mark.parametrize("refusing", ["get403", "gzip"], indirect=True)
@pytest.mark.parametrize("name", ["masked.tif", "overviews.tif"])
def test_a_side_car_found_but_not_sent_is_a_read_error(refusing: _Server, name: str) -> None:
    suffix = ".msk" if name == "masked.tif" else ".ovr"
    with pytest.raises(tp.ReadError, match=f"side-car '{suffix}'") as caught:
        np.asarray(tp.open_raster(f"{refusing.url}/{name}", storage=tp.Storage(timeout=5, retries=0)).values)
    assert "Storage(sidecars=False)" in str(caught.value)


@pytest.mark.parametrize("refusing", ["plain"], indirect=True)
@pytest.mark.parametrize("name", ["masked.tif", "overviews.tif"])
def test_a_side_car_sent_is_read(refusing: _Server, root: Path, name: str) -> None:
    """Control: the same side-cars served plainly are read, as locally."""
    da = tp.open_raster(f"{refusing.url}/{name}", storage=tp.Storage(timeout=5, retries=0))
    np.testing.assert_array_equal(da.values, VALUES)
    with rasterio.open(root / name) as local:
        assert list(da.encoding["overviews"]) == list(local.overviews(1))
        assert (name == "overviews.tif") == bool(local.overviews(1))


def test_an_aux_xml_longer_than_storage_max_bytes_is_a_read_error(root: Path, counting: HeaderServer) -> None:
    """GDAL parses an .aux.xml whole: one longer than the cap (16 MiB, or Storage(max_bytes=)) is refused."""
    _write(root / "padded.tif")
    pad = "<!--" + "x" * 8000 + "-->"
    aux = (
        f"<PAMDataset>{pad}<PAMRasterBand band='1'><NoDataValue>9</NoDataValue></PAMRasterBand></PAMDataset>"
    )
    (root / "padded.tif.aux.xml").write_text(aux)
    url = f"{counting.url}/padded.tif"
    with pytest.raises(tp.ReadError, match=r"side-car '\.aux\.xml'.* bytes long, more than 4096"):
        tp.open_raster(url, storage=tp.Storage(max_bytes=4096, retries=0))
    assert tp.open_raster(url, storage=tp.Storage(max_bytes=65536, retries=0)).rio.nodata == 9
