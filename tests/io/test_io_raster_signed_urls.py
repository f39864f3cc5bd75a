"""read_raster of a URL with a query string (presigned S3, SAS, token URLs) over HTTP.

Found on 2026-12-06 (#20, secondary check of the size probe): a GeoPackage raster
opens at its plain URL and through GDAL's ``/vsicurl/http://...?sig=...``, but
not through the ``/vsicurl?empty_dir=yes&...&url=<quoted URL>`` form that
``io.paths.gdal_path`` builds for a URL with a query string: GDAL's GPKG driver
fails with SQLite's "attempt to write a readonly database" (a ReadError naming
the file, but one that says nothing true). A COG at such a URL reads.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from terrapipe.io import open_raster


def write_gpkg(path, size: int = 64) -> np.ndarray:
    data = (np.arange(size * size, dtype="uint32") % 251).astype("uint8").reshape(1, size, size)
    profile = {"driver": "GPKG", "width": size, "height": size, "count": 1, "dtype": "uint8"}
    with rasterio.open(
        path, "w", crs="EPSG:32631", transform=from_origin(500000, 5000000, 10, 10), **profile
    ) as dst:
        dst.write(data)
    with rasterio.open(path) as src:
        return src.read()


def test_a_cog_at_a_url_with_a_query_string_reads(server, cog_factory):
    path, data = cog_factory(count=1)
    da = open_raster(server.url_for(path) + "?X-Amz-Signature=abc&X-Amz-Expires=60")
    np.testing.assert_array_equal(da.isel(y=slice(10, 70), x=slice(5, 90)).values, data[:, 10:70, 5:90])


def test_a_gpkg_raster_at_its_plain_url_reads(server, http_root, unique_name):
    path = http_root / unique_name("tiles.gpkg")
    expected = write_gpkg(path)
    np.testing.assert_array_equal(open_raster(server.url_for(path)).values, expected)


@pytest.mark.xfail(
    strict=True,
    reason="GDAL's GPKG driver fails on the /vsicurl?...&url=<quoted URL with a query> form that "
    "io.paths.gdal_path builds ('attempt to write a readonly database'); /vsicurl/<URL> opens it",
)
def test_a_gpkg_raster_at_a_url_with_a_query_string_reads(server, http_root, unique_name):
    path = http_root / unique_name("tiles.gpkg")
    expected = write_gpkg(path)
    da = open_raster(server.url_for(path) + "?sv=2024-01-01&sig=abc")
    np.testing.assert_array_equal(da.values, expected)
