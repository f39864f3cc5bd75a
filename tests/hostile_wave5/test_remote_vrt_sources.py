"""A remote raster that names other files: a GDAL VRT served over HTTP.

A VRT at a URL names its sources, which GDAL opens as files of their own: on another host, beside
it at the origin, or on this machine's disk. Found:

- a source that cannot be read (beside the VRT at an origin that wants ``Storage(headers=...)``'s
  ``Authorization``: GDAL opens sources without it and gets 401) reads as zeros, with only GDAL's
  ``ERROR 11: HTTP response code: 401`` on stderr: no error, the pixels silently 0;
- a source that is a local path is read: this machine's pixels come back as the remote raster's
  (a hostile catalog item could point at such a VRT).

Held: the origin's ``Authorization`` never reaches a source on another host (GDAL opens sources
without the thread's ``GDAL_HTTP_HEADERS``), and a VRT beside a public source reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.core.errors import TerrapipeError
from terrapipe.io import open_raster
from tests.io.conftest import write_cog
from tests.servers.header_server import HeaderServer, start_header_server

TOKEN = "Bearer s3cret-vrt-token"


def _vrt(source: str, *, relative: bool = False) -> str:
    return f"""<VRTDataset rasterXSize="64" rasterYSize="64">
  <SRS>EPSG:32631</SRS>
  <GeoTransform>500000, 10, 0, 4000000, 0, -10</GeoTransform>
  <VRTRasterBand dataType="UInt16" band="1">
    <SimpleSource>
      <SourceFilename relativeToVRT="{int(relative)}">{source}</SourceFilename>
      <SourceBand>1</SourceBand>
    </SimpleSource>
  </VRTRasterBand>
</VRTDataset>
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("vrt")
    remote = write_cog(root / "b.tif", count=1, height=64, width=64, block=64, seed=1)
    local_dir = tmp_path_factory.mktemp("local")
    local = write_cog(local_dir / "private.tif", count=1, height=64, width=64, block=64, seed=2)
    server = start_header_server(root, f"Authorization={TOKEN}")
    try:
        (root / "elsewhere.vrt").write_text(_vrt(f"/vsicurl/http://localhost:{server.port}/b.tif"))
        (root / "same_host.vrt").write_text(_vrt("b.tif", relative=True))
        (root / "local.vrt").write_text(_vrt(str(local_dir / "private.tif")))
        (root / "public.vrt").write_text(_vrt("b.tif", relative=True))
        # a remote VRT whose source is another remote VRT, which names the local file
        (root / "outer.vrt").write_text(_vrt(f"/vsicurl/http://127.0.0.1:{server.port}/local.vrt"))
        # a local file in a folder whose name is a GDAL remote prefix (paths.is_remote finds it anywhere)
        (local_dir / "vsis3").mkdir()
        write_cog(local_dir / "vsis3" / "private.tif", count=1, height=64, width=64, block=64, seed=2)
        (root / "prefix_folder.vrt").write_text(_vrt(str(local_dir / "vsis3" / "private.tif")))
        # a local file through curl's file:// scheme, behind a /vsicurl/ prefix
        (root / "file_url.vrt").write_text(_vrt(f"/vsicurl/file://{local_dir}/private.tif"))
        yield server, remote, local, local_dir / "private.tif"
    finally:
        server.stop()


def _carrying(server: HeaderServer, host: str) -> list[dict[str, Any]]:
    return [
        r
        for r in server.requests()
        if r["headers"].get("Host", "").split(":")[0] == host
        and any("s3cret" in v for k, v in r["headers"].items() if k != "Host")
    ]


def _read(url: str) -> np.ndarray | None:
    message = ""
    try:
        return np.asarray(open_raster(url, storage=tp.Storage(headers={"Authorization": TOKEN})).values)
    except TerrapipeError as err:
        message = str(err)
    assert "s3cret" not in message
    return None


def test_a_vrt_source_on_another_host_never_gets_the_credential(served: Any) -> None:
    server = served[0]
    server.reset()
    _read(f"{server.url}/auth/elsewhere.vrt")
    assert _carrying(server, "127.0.0.1")  # the origin had it
    assert _carrying(server, "localhost") == []


def test_a_remote_vrt_never_reads_a_local_file(served: Any) -> None:
    server, _, local, _ = served
    got = _read(f"{server.url}/auth/local.vrt")
    assert got is None or not np.array_equal(got[0], local[0])


def test_a_remote_vrt_naming_a_remote_vrt_never_reads_a_local_file(served: Any) -> None:
    server, _, local, _ = served
    got = _read(f"{server.url}/outer.vrt")
    assert got is None or not np.array_equal(got[0], local[0])


def test_a_local_file_in_a_folder_named_like_a_vsi_prefix_is_not_read(served: Any) -> None:
    server, _, local, _ = served
    got = _read(f"{server.url}/prefix_folder.vrt")
    assert got is None or not np.array_equal(got[0], local[0])


def test_a_local_file_behind_a_vsicurl_file_url_is_not_read(served: Any) -> None:
    """Held: GDAL's curl refuses file:// (the read fails by name)."""
    server, _, local, _ = served
    got = _read(f"{server.url}/file_url.vrt")
    assert got is None or not np.array_equal(got[0], local[0])


def test_a_vrt_whose_source_cannot_be_read_is_an_error_not_zeros(served: Any) -> None:
    server, remote, _, _ = served
    got = _read(f"{server.url}/auth/same_host.vrt")
    if got is not None:  # read: then its pixels, not zeros
        np.testing.assert_array_equal(got[0], remote[0])


def test_a_public_vrt_beside_its_source_reads_it(served: Any) -> None:
    """A control: a VRT whose source sits beside it at a public path reads its pixels."""
    server, remote, _, _ = served
    got = _read(f"{server.url}/public.vrt")
    assert got is not None
    np.testing.assert_array_equal(got[0], remote[0])


def _vrt_item(url: str) -> dict[str, Any]:
    from odc.geo import geom

    box = geom.box(500000, 3999360, 500640, 4000000, "EPSG:32631").to_crs("EPSG:4326")
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"],
        "id": "vrt",
        "geometry": box.json,
        "bbox": list(box.boundingbox),
        "properties": {
            "datetime": "2024-06-01T00:00:00Z",
            "proj:code": "EPSG:32631",
            "proj:shape": [64, 64],
            "proj:transform": [10, 0, 500000, 0, -10, 4000000],
        },
        "links": [],
        "assets": {"data": {"href": url, "type": "image/tiff; application=geotiff", "roles": ["data"]}},
    }


@pytest.mark.parametrize(
    "grid",
    [
        "native",
        "resampled",
    ],
)
def test_stack_stac_never_reads_a_local_file_a_remote_vrt_names(served: Any, grid: str) -> None:
    server = served[0]
    options: dict[str, Any] = {"resolution": 20} if grid == "resampled" else {}
    # what the same item gives when its asset is the same VRT read from disk (where a local source is fine)
    local_vrt = Path(served[3]).parent / "local_copy.vrt"
    local_vrt.write_text(_vrt(str(served[3])))
    local = tp.stac.stack_items(
        [_vrt_item(str(local_vrt))], bands=["data"], dtype="uint16", nodata=0, **options
    )
    assert int((local.values > 0).sum()) > 100  # the VRT's grid covers the file's pixels
    try:
        cube = tp.stac.stack_items(
            [_vrt_item(f"{server.url}/local.vrt")], bands=["data"], dtype="uint16", nodata=0, **options
        )
        values = np.asarray(cube.values)
    except TerrapipeError:
        return
    assert not np.array_equal(values, local.values)
