"""Files at a URL with a query string (presigned S3, SAS, token URLs) read by GDAL, for every format.

Found on 2026-12-06 (#20, secondary check of the size probe): a GeoPackage raster
opened at its plain URL and through GDAL's ``/vsicurl/http://...?sig=...``, but
not through the ``/vsicurl?empty_dir=yes&...&url=<quoted URL>`` form that
``io.paths.gdal_path`` built for a URL with a query string ("attempt to write a
readonly database"). The class: GDAL's SQLite layer (GeoPackage, MBTiles,
SQLite) probes ``<name>-journal`` and ``<name>-wal`` for a hot journal, and
skips that only for names starting with ``/vsicurl/``; in the options form the
suffix lands in the URL's query (``...&sig=abc-journal``), a server that does
not check it answers with the file, and SQLite refuses the "hot journal". The
vector reader's way round it (``IMMUTABLE=YES``) lost the signature: SQLite
decodes the quoted URL's ``%26`` and GDAL read the URL up to its first ``&``.

Servers: the range server (which ignores query strings: the journal probe
"exists") and the signed range server (``tests/servers/signed_range.py``: one
exact query accepted, ``HEAD`` refused, as a URL signed for ``GET`` only).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.shutil import copy
from rasterio.transform import from_origin

from terrapipe.core.errors import ReadError
from terrapipe.io import open_raster
from terrapipe.io.vector import open_vector
from tests.servers.http_range import RangeServer
from tests.servers.signed_range import SIGNATURE, SIGNED_QUERY, start_signed_server

gpd = pytest.importorskip("geopandas")
shapely_geometry = pytest.importorskip("shapely.geometry")
assert_geodataframe_equal = pytest.importorskip("geopandas.testing").assert_geodataframe_equal

#: A presigned-style query the range server ignores (its last value is what GDAL's probes append to).
IGNORED_QUERY = "sv=2024-01-01&sig=abc"


def write_gpkg(path, size: int = 64) -> np.ndarray:
    data = (np.arange(size * size, dtype="uint32") % 251).astype("uint8").reshape(1, size, size)
    profile = {"driver": "GPKG", "width": size, "height": size, "count": 1, "dtype": "uint8"}
    with rasterio.open(
        path, "w", crs="EPSG:32631", transform=from_origin(500000, 5000000, 10, 10), **profile
    ) as dst:
        dst.write(data)
    with rasterio.open(path) as src:
        return src.read()


def write_raster(path: Path, driver: str) -> np.ndarray:
    """A small raster in ``driver``'s format; return the pixels GDAL reads back locally."""
    if driver == "GPKG":
        return write_gpkg(path)
    if driver in ("MBTiles", "netCDF", "netCDF4"):  # CreateCopy drivers: from a GeoTIFF
        crs = "EPSG:3857" if driver == "MBTiles" else "EPSG:32631"
        bands = 3 if driver == "MBTiles" else 1  # (netCDF: one variable, not one subdataset per band)
        data = ((np.arange(bands * 64 * 64, dtype="uint32") * 7) % 251).astype("uint8").reshape(bands, 64, 64)
        source = path.with_name(path.name + ".source.tif")
        with rasterio.open(source, "w", driver="GTiff", width=64, height=64, count=bands, dtype="uint8", crs=crs,
                           transform=from_origin(0, 640_000, 10_000, 10_000)) as dst:  # fmt: skip
            dst.write(data)
        options = {"FORMAT": "NC4"} if driver == "netCDF4" else {}
        with rasterio.open(source) as src:
            copy(src, path, driver="netCDF" if driver == "netCDF4" else driver, **options)
        source.unlink()
        with rasterio.open(path) as src:
            return src.read()
    data = ((np.arange(3 * 96 * 80, dtype="uint32") * 7) % 65521).astype("uint16").reshape(3, 96, 80)
    extra = {"blocksize": 32} if driver == "COG" else {"tiled": False}
    with rasterio.open(path, "w", driver=driver, width=80, height=96, count=3, dtype="uint16",
                       crs="EPSG:32631", transform=from_origin(500000, 5000000, 10, 10), **extra) as dst:  # fmt: skip
        dst.write(data)
    with rasterio.open(path) as src:
        return src.read()


def write_points(path: Path, driver: str) -> gpd.GeoDataFrame:
    gdf = gpd.GeoDataFrame(
        {"id": range(40), "name": [f"p{i}" for i in range(40)]},
        geometry=[shapely_geometry.Point(i, i) for i in range(40)],
        crs="EPSG:32631",
    )
    gdf.to_file(path, driver=driver, **({"GEOMETRY": "AS_WKT"} if driver == "CSV" else {}))
    return gpd.read_file(path)


RASTERS = {
    "cog": ("cog.tif", "COG"),
    "gtiff-stripped": ("strips.tif", "GTiff"),
    "gpkg-raster": ("tiles.gpkg", "GPKG"),
    "mbtiles": ("tiles.mbtiles", "MBTiles"),
    "netcdf3": ("grid.nc", "netCDF"),
    "netcdf4": ("grid4.nc", "netCDF4"),
}


VECTORS = {"gpkg": ("points.gpkg", "GPKG"), "flatgeobuf": ("points.fgb", "FlatGeobuf"),
           "geojson": ("points.geojson", "GeoJSON")}  # fmt: skip


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RangeServer]:
    root = tmp_path_factory.mktemp("signed-root")
    server = start_signed_server(root)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("fmt", list(RASTERS))
def test_a_raster_at_a_url_the_server_signs_reads(signed: RangeServer, fmt: str, unique_name) -> None:
    name, driver = RASTERS[fmt]
    path = signed.root / unique_name(name)
    expected = write_raster(path, driver)
    da = open_raster(f"{signed.url_for(path)}?{SIGNED_QUERY}")
    np.testing.assert_array_equal(da.values, expected)
    assert_same_georeferencing(da, path)


def assert_same_georeferencing(da, path: Path) -> None:
    """CRS, transform and coordinates as read from the local copy (a netCDF-4 file lost them once)."""
    local = open_raster(path)
    assert da.rio.crs is not None
    assert da.rio.crs == local.rio.crs
    assert da.rio.transform() == local.rio.transform()
    for name in ("x", "y"):
        np.testing.assert_array_equal(da[name].values, local[name].values)


@pytest.mark.parametrize("fmt", list(RASTERS))
def test_a_raster_at_a_url_with_a_query_the_server_ignores_reads(server, http_root, fmt, unique_name) -> None:
    name, driver = RASTERS[fmt]
    path = http_root / unique_name(name)
    expected = write_raster(path, driver)
    da = open_raster(f"{server.url_for(path)}?{IGNORED_QUERY}")
    np.testing.assert_array_equal(da.values, expected)
    assert_same_georeferencing(da, path)
    assert server.bytes_served() <= 2 * path.stat().st_size  # no side-car probe downloads the file again


@pytest.mark.parametrize("fmt", list(VECTORS))
@pytest.mark.parametrize("bbox", [None, (9.5, 9.5, 20.5, 20.5)], ids=["whole", "bbox"])
def test_a_vector_at_a_url_the_server_signs_reads(signed: RangeServer, fmt: str, bbox, unique_name) -> None:
    name, driver = VECTORS[fmt]
    path = signed.root / unique_name(name)
    expected = write_points(path, driver)
    if bbox is not None:
        expected = expected.cx[bbox[0] : bbox[2], bbox[1] : bbox[3]]
    got = open_vector(f"{signed.url_for(path)}?{SIGNED_QUERY}", bbox=bbox)
    assert_geodataframe_equal(got.reset_index(drop=True), expected.reset_index(drop=True), check_like=True)


@pytest.mark.parametrize("fmt", list(VECTORS))
def test_a_vector_at_a_url_with_a_query_the_server_ignores_reads(server, http_root, fmt, unique_name) -> None:
    name, driver = VECTORS[fmt]
    path = http_root / unique_name(name)
    expected = write_points(path, driver)
    got = open_vector(f"{server.url_for(path)}?{IGNORED_QUERY}")
    assert_geodataframe_equal(got.reset_index(drop=True), expected.reset_index(drop=True), check_like=True)


@pytest.mark.parametrize("fmt", [*RASTERS, *VECTORS])
def test_a_bad_signature_is_a_read_error_without_the_query(
    signed: RangeServer, fmt: str, unique_name
) -> None:
    name, driver = RASTERS[fmt] if fmt in RASTERS else VECTORS[fmt]
    path = signed.root / unique_name(name)
    write_raster(path, driver) if fmt in RASTERS else write_points(path, driver)
    url = f"{signed.url_for(path)}?{SIGNED_QUERY.replace('sig=', 'sig=00')}"
    with pytest.raises(ReadError) as info:
        open_raster(url).values if fmt in RASTERS else open_vector(url)
    message = str(info.value)
    assert signed.url_for(path) in message, message
    for secret in (SIGNATURE, "sv=2024", "sig="):
        assert secret not in message, message


def test_a_gpkg_raster_at_its_plain_url_reads(server, http_root, unique_name):
    path = http_root / unique_name("tiles.gpkg")
    expected = write_gpkg(path)
    np.testing.assert_array_equal(open_raster(server.url_for(path)).values, expected)


@pytest.mark.parametrize("where", ["signed", "ignored"])
def test_a_csv_at_a_url_with_a_query_string_reads(signed: RangeServer, server, http_root, where, unique_name):
    """GDAL's CSV driver knows a file by its extension; at a URL with a query GDAL read it off the query."""
    host, root, query = (
        (signed, signed.root, SIGNED_QUERY) if where == "signed" else (server, http_root, "a=1&b=2")
    )
    path = root / unique_name("points.csv")
    write_points(path, "CSV")
    expected = gpd.read_file(path).set_crs("EPSG:32631")
    got = open_vector(f"{host.url_for(path)}?{query}", crs="EPSG:32631")
    assert_geodataframe_equal(got.reset_index(drop=True), expected.reset_index(drop=True), check_like=True)


@pytest.mark.parametrize("query", ["", "?a=1&sig=abc"])
def test_a_vector_error_over_http_is_not_called_a_time_out(server, http_root, query, unique_name):
    """The time-outs pyogrio's GDAL gets in its ``/vsicurl?timeout=30&...`` name are no time-out."""
    path = http_root / unique_name("notes.geojson")
    path.write_text("this is not a vector file\n" * 20)
    with pytest.raises(ReadError) as info:
        open_vector(server.url_for(path) + query)
    assert "in time" not in str(info.value), str(info.value)
    assert server.url_for(path) in str(info.value)


def _item(href: str, path: Path) -> dict:
    """A STAC item with one asset ``b`` at ``href``, its grid read from the local copy ``path``."""
    geom = pytest.importorskip("odc.geo.geom")
    with rasterio.open(path) as src:
        shape, t, crs = src.shape, src.transform, src.crs.to_string()
    south, east = t.f + t.e * shape[0], t.c + t.a * shape[1]
    footprint = geom.box(t.c, south, east, t.f, crs).to_crs("EPSG:4326")
    return {
        "type": "Feature", "stac_version": "1.1.0", "id": f"item-{path.stem}", "collection": "c", "links": [],
        "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"],
        "geometry": footprint.json, "bbox": list(footprint.boundingbox),
        "properties": {"datetime": "2024-06-01T00:00:00Z", "proj:code": crs, "proj:shape": list(shape),
                       "proj:transform": list(t)[:6]},
        "assets": {"b": {"href": href, "type": "application/octet-stream"}},
    }  # fmt: skip


@pytest.mark.parametrize("grid", ["native", "resampled"])
@pytest.mark.parametrize("fmt", list(RASTERS))
def test_stack_stac_of_assets_at_signed_urls_equals_the_local_cube(
    signed: RangeServer, fmt, grid, unique_name
):
    """Without ``storage=``: the native reads and odc-stac's reader (another grid) open presigned/SAS hrefs.

    odc-stac's reader opened the href as it was (``/vsicurl/<URL>``): a netCDF-4 file went to GDAL's
    HDF5Image driver (no georeferencing: refused as HTTP 403 on the signed server).
    """
    pytest.importorskip("odc.stac")
    from terrapipe.stac.stack import stack_items

    name, driver = RASTERS[fmt]
    path = signed.root / unique_name(name)
    write_raster(path, driver)
    with rasterio.open(path) as src:
        options = {} if grid == "native" else {"resolution": abs(src.transform.a) * 2}
    want = stack_items([_item(str(path), path)], bands=["b"], **options)
    got = stack_items([_item(f"{signed.url_for(path)}?{SIGNED_QUERY}", path)], bands=["b"], **options)
    np.testing.assert_array_equal(got.values, want.values)
    assert got.odc.geobox == want.odc.geobox


@pytest.mark.parametrize("name", ["grid.nc", "grid4.nc"])
def test_no_signature_on_stderr_when_a_netcdf_file_is_opened_in_a_thread(signed: RangeServer, name, capfd):
    """libnetcdf asked HDF5 about a local file named after the URL's last part; HDF5 printed it, signature and all."""
    import threading

    path = signed.root / name
    expected = write_raster(path, "netCDF4" if "4" in name else "netCDF")
    got: list[np.ndarray] = []
    reader = threading.Thread(
        target=lambda: got.append(open_raster(f"{signed.url_for(path)}?{SIGNED_QUERY}").values)
    )
    reader.start()
    reader.join()
    np.testing.assert_array_equal(got[0], expected)
    assert SIGNATURE not in capfd.readouterr().err
