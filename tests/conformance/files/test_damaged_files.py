"""Real files with random bytes changed: read, or a named error, never a bare library exception (#18).

Before, a GeoTIFF whose CRS or GCP text was damaged raised a bare
``UnicodeDecodeError`` from rasterio's open.
"""

from __future__ import annotations

import numpy as np
import pytest

import terrapipe as tp
from tests.conformance.files.corpus import DATA

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

TARGETS = [
    "flatgeobuf/poly00.fgb",
    "flatgeobuf/heterogeneous.fgb",
    "pyogrio/test_gpkg_nulls.gpkg",
    "geoparquet/example-1.1.0-release.parquet",
    "geoparquet/data-polygon-encoding_native.parquet",
    "rasterio/issue1446.geojson",
    "fiona/trio.seq",
    "gdal/byte.tif",
    "rasterio/float_raster_with_nodata.tif",
    "rasterio/red.tif",
]


def _read(path, raster):
    if raster:
        return tp.open_raster(path).values
    return tp.open_vector(path, crs="EPSG:4326")


@pytest.mark.parametrize("name", TARGETS)
def test_damaged_bytes_read_or_raise_a_named_error(tmp_path, name):
    data = (DATA / name).read_bytes()
    raster = name.endswith(".tif")
    rng = np.random.default_rng(sum(data[:64]))
    outcomes = {"read": 0, "error": 0}
    for i in range(40):
        damaged = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            # damage the first KiB (headers, tags, metadata) more often than the rest
            end = len(damaged) if i % 2 else min(len(damaged), 1024)
            damaged[int(rng.integers(0, end))] = int(rng.integers(0, 256))
        path = tmp_path / f"d{i}{(DATA / name).suffix}"
        path.write_bytes(bytes(damaged))
        try:
            _read(path, raster)
        except tp.TerrapipeError:
            outcomes["error"] += 1
        else:
            outcomes["read"] += 1
    assert sum(outcomes.values()) == 40


def test_a_geotiff_whose_crs_text_is_not_utf8_is_a_read_error(tmp_path):
    data = bytearray((DATA / "rasterio/float_raster_with_nodata.tif").read_bytes())
    at = data.find(b"unknown|GCS Name")  # inside the GeoTIFF citation, the CRS text GDAL hands rasterio
    assert at > 0
    data[at + 5] = 0xF6
    path = tmp_path / "latin.tif"
    path.write_bytes(bytes(data))
    with pytest.raises(tp.ReadError, match=r"latin\.tif'.*(not valid text|could not be read or decoded)"):
        tp.open_raster(path)
