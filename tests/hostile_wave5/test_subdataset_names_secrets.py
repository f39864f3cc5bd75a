"""The subdataset names of a file at a signed URL never show its signature.

6481fd1 refuses a file with no raster bands of its own (a netCDF of several variables) with a
``ReadError`` that lists GDAL's subdataset names and names one to open. GDAL builds those names
from the path it opened: at an ``http(s)://`` URL that is the ``/vsicurl`` name holding the whole
URL, query string included, so a presigned URL's signature (``X-Amz-Signature``, an Azure SAS
``sig``) would be printed in the error (and in every log or traceback that shows it). Errors show
``scheme://host/path`` only: asserted on the message, its ``args`` and the chained causes.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import rasterio
import rasterio.shutil
import xarray as xr
from affine import Affine

import terrapipe as tp
from terrapipe.core.errors import TerrapipeError
from tests.servers.http_range import RangeServer, start_range_server

SECRET = "d3adb33fc0ffee5ecret"
QUERIES = {
    "s3_presigned": (
        f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20300101%2Fus-east-1%2Fs3%2Faws4_request"
        f"&X-Amz-Date=20300101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature={SECRET}"
    ),
    "azure_sas": f"sv=2022-11-02&ss=b&srt=o&sp=r&se=2030-01-01T00%3A00%3A00Z&sig={SECRET}",
    "token_param": f"token={SECRET}",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RangeServer]:
    folder = tmp_path_factory.mktemp("signed_subdatasets")
    tif = folder / "one.tif"
    profile = {"driver": "GTiff", "width": 8, "height": 6, "count": 1, "dtype": "float32"}
    with rasterio.open(
        tif, "w", crs="EPSG:4326", transform=Affine(0.5, 0, 10, 0, -0.5, 50), **profile
    ) as dst:
        dst.write(np.arange(48, dtype="float32").reshape(1, 6, 8))
    one = folder / "one.nc"
    rasterio.shutil.copy(tif, one, driver="netCDF", FORMAT="NC")
    ds = xr.open_dataset(one, engine="scipy", decode_coords="all")
    ds.assign(t2m=ds.Band1, u10=ds.Band1.copy(data=ds.Band1.values * 2)).drop_vars("Band1").to_netcdf(
        folder / "two.nc", engine="scipy"
    )
    ds.close()
    running = start_range_server(folder)
    try:
        yield running
    finally:
        running.stop()


def _texts(err: BaseException) -> list[str]:
    out: list[str] = []
    seen: BaseException | None = err
    while seen is not None:
        out += [str(seen), repr(seen), *(str(a) for a in seen.args)]
        seen = seen.__cause__ or seen.__context__
    return out


@pytest.mark.parametrize("query", list(QUERIES))
def test_the_no_bands_error_at_a_signed_url_shows_no_signature(server: RangeServer, query: str) -> None:
    url = f"{server.url}/two.nc?{QUERIES[query]}"
    with pytest.raises(TerrapipeError) as info:
        tp.open_raster(url).load()
    texts = _texts(info.value)
    leaked = [t for t in texts if SECRET in t]
    assert not leaked, leaked[0][:300]
    assert "two.nc" in str(info.value)


def test_the_same_file_without_a_query_names_its_subdatasets(server: RangeServer) -> None:
    """A control: the error does list the subdatasets (its point) when there is no secret to hide."""
    with pytest.raises(TerrapipeError, match="u10"):
        tp.open_raster(f"{server.url}/two.nc").load()
