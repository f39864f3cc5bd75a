"""Remote COGs behind signed URLs: a URL signed for GET only is read, a missing one is a named ReadError.

GDAL's ``/vsicurl/`` asked a remote file's size with a ``HEAD``, which a URL
signed for ``GET`` only (GCS V4 signatures, Azure SAS, CDN tokens) refuses
with 403. A raster at a URL is now read by GDAL through terrapipe's byte layer
(``io/gdal_opener.py``), which learns the size from its first ranged ``GET``:
no ``HEAD`` at all, signed or not. The server is :mod:`tests.stac.get_only_server`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from terrapipe.core.errors import ReadError
from terrapipe.io.gdal_cache import forget_remote_file
from terrapipe.stac import stack_items
from tests.servers.http_range import RangeServer
from tests.stac.get_only_server import start_get_only_server

rasterio = pytest.importorskip("rasterio")
pystac = pytest.importorskip("pystac")

_PROJ_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
SIGNED = "?sig=c2lnbmVk&se=2030-01-01&sp=r"  # signed for GET: the server refuses HEAD for it


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RangeServer, Path, np.ndarray]]:
    root = tmp_path_factory.mktemp("get-only")
    data = np.arange(100 * 120, dtype="uint16").reshape(100, 120)
    profile = {
        "driver": "GTiff", "width": 120, "height": 100, "count": 1, "dtype": "uint16", "crs": "EPSG:32631",
        "transform": rasterio.transform.from_origin(600000, 5000000, 10, 10), "tiled": True,
        "blockxsize": 64, "blockysize": 64, "compress": "deflate", "nodata": 0,
    }  # fmt: skip
    with rasterio.open(root / "a.tif", "w", **profile) as dst:
        dst.write(data, 1)
    server = start_get_only_server(root)
    try:
        yield server, root, data
    finally:
        server.stop()


def _item(href: str) -> Any:
    return pystac.Item.from_dict(
        {
            "type": "Feature",
            "stac_version": "1.1.0",
            "stac_extensions": [_PROJ_EXT],
            "id": "signed",
            "geometry": {"type": "Point", "coordinates": [4.0, 45.0]},
            "bbox": [4.0, 45.0, 4.0, 45.0],
            "properties": {
                "datetime": "2024-06-01T10:30:00Z",
                "proj:code": "EPSG:32631",
                "proj:shape": [100, 120],
                "proj:transform": [10.0, 0.0, 600000.0, 0.0, -10.0, 5000000.0],
            },
            "links": [],
            "assets": {"data": {"href": href, "type": "image/tiff; application=geotiff"}},
        }
    )


def _methods(server: RangeServer, path: str) -> list[str]:
    return [entry["method"] for entry in server.stats()["log"] if entry["path"] == path]


@pytest.mark.parametrize("run", ["stack_stac", "open_raster"])
def test_a_url_signed_for_get_only_is_read(served: tuple[RangeServer, Path, np.ndarray], run: str) -> None:
    server, _, data = served
    url = server.url_for("a.tif") + SIGNED + f"&run={run}"
    server.reset()
    if run == "stack_stac":
        values = stack_items([_item(url)], bands=["data"]).values[0, 0]
    else:
        from terrapipe.io.raster import open_raster

        values = open_raster(url).values[0]
    np.testing.assert_array_equal(values, data)
    methods = _methods(server, "/a.tif")
    assert methods
    assert "HEAD" not in methods  # not even tried: GDAL learns the size from a GET


def test_a_plain_url_is_read_without_a_head(served: tuple[RangeServer, Path, np.ndarray]) -> None:
    """GDAL reads a raster at a URL through the byte layer, which learns the size from its first ranged GET."""
    server, _, data = served
    url = server.url_for("a.tif")
    forget_remote_file(url)
    server.reset()
    np.testing.assert_array_equal(stack_items([_item(url)], bands=["data"]).values[0, 0], data)
    methods = _methods(server, "/a.tif")
    assert methods
    assert set(methods) == {"GET"}


def test_a_missing_signed_url_is_a_read_error_naming_the_file(
    served: tuple[RangeServer, Path, np.ndarray],
) -> None:
    server, _, _ = served
    url = server.url_for("missing.tif") + SIGNED
    with pytest.raises(ReadError) as info:
        stack_items([_item(url)], bands=["data"]).values  # noqa: B018
    message = str(info.value)
    assert f"{server.url}/missing.tif" in message
    assert "404" in message
    assert "sig=" not in message  # the signature is not shown
    assert "GET" in _methods(server, "/missing.tif")
