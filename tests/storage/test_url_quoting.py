"""URLs written as a person writes them: a space, a non-ASCII letter, ``%`` and ``|`` in a file's name (#19).

requests, a browser and ``curl`` send ``https://h/my file.tif`` as ``my%20file.tif``;
GDAL's libcurl refused it ("URL rejected: Malformed input to a URL function"), so a
COG, a GeoPackage or a FlatGeobuf named with a space could not be read over HTTP
while the same URL in a browser worked. Every reader now sends such a URL quoted
as requests does (``terrapipe.io.paths.quote_url``): what a URL cannot hold is
percent-encoded, an escape already there is never encoded again (``%20`` stays a
space; ``%2520`` stays a file whose name holds ``%20``), a ``%`` that starts no
escape is a percent sign. Each reader kind, on the range server (which decodes
the path as any web server does), reads the file's own bytes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import terrapipe as tp
from terrapipe.io.paths import gdal_path, quote_url

gpd = pytest.importorskip("geopandas")
shapely_geometry = pytest.importorskip("shapely.geometry")

#: (name on disk, how the URL names it): written as a person types it, or already quoted.
NAMES = {
    "space": ("my file", "my file"),
    "quoted space": ("my file", "my%20file"),
    "non-ascii": ("café €", "café €"),
    "percent sign": ("100% done", "100% done"),
    "a name holding %20": ("a%20b", "a%2520b"),
    "bar and braces": ("a|b{c}^", "a|b{c}^"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One file per reader kind, named ``data.<ext>`` (copied under each name of :data:`NAMES`)."""
    folder = tmp_path_factory.mktemp("quoting-source")
    cog = folder / "data.tif"
    profile = {"driver": "COG", "width": 64, "height": 48, "count": 1, "dtype": "uint16", "crs": "EPSG:32631",
               "transform": from_origin(600000, 5000000, 10, 10), "blocksize": 32}  # fmt: skip
    with rasterio.open(cog, "w", **profile) as dst:
        dst.write((np.arange(64 * 48, dtype="uint16") * 3).reshape(1, 48, 64))
    gpkg = folder / "data.gpkg"
    with rasterio.open(gpkg, "w", **{**profile, "driver": "GPKG", "dtype": "uint8"}) as dst:
        dst.write((np.arange(64 * 48) % 251).astype("uint8").reshape(1, 48, 64))
    frame = gpd.GeoDataFrame(
        {"id": list(range(5))}, geometry=[shapely_geometry.Point(i, 2 * i) for i in range(5)], crs="EPSG:4326"
    )
    frame.to_file(folder / "data.fgb", driver="FlatGeobuf")
    frame.to_parquet(folder / "data.parquet")
    frame.to_file(folder / "data-vector.gpkg", driver="GPKG")
    xr = pytest.importorskip("xarray")
    cube = xr.Dataset(
        {"t": (("y", "x"), np.arange(12.0).reshape(3, 4))}, coords={"y": [3.0, 2.0, 1.0], "x": [0.0, 1, 2, 3]}
    )
    cube.to_zarr(folder / "data.zarr", zarr_format=2, consolidated=True)  # HTTP cannot list: consolidated
    return {p.name: p for p in folder.iterdir()}


@pytest.fixture(scope="module")
def served(files: dict[str, Path], range_server_session: Any) -> dict[str, str]:
    """Each name of :data:`NAMES` as a folder on the range server holding every file; its URL as written."""
    root = range_server_session.root / "quoting"
    root.mkdir(exist_ok=True)
    urls = {}
    for case, (disk, written) in NAMES.items():
        folder = root / disk
        folder.mkdir(exist_ok=True)
        for name, path in files.items():
            target = folder / name
            if path.is_dir():
                shutil.copytree(path, target, dirs_exist_ok=True)
            else:
                shutil.copy(path, target)
        urls[case] = f"{range_server_session.url}/quoting/{written}"
    return urls


def test_quote_url_is_requests_rule() -> None:
    requests = pytest.importorskip("requests")
    for written in ("https://h/my file.tif", "https://h/my%20file.tif?sig=a%2Fb+c", "https://h/café/x y.tif#p q",
                    "https://h/a|b{c}^.tif", "https://h/a%2520b.tif"):  # fmt: skip
        assert quote_url(written) == requests.utils.requote_uri(written), written
    assert quote_url("https://h/100%.tif") == "https://h/100%25.tif"
    assert quote_url(quote_url("https://h/my file.tif")) == quote_url("https://h/my file.tif")  # never twice
    assert gdal_path("/data/my file.tif").endswith("/data/my file.tif")  # a local path is a path


@pytest.mark.parametrize("case", list(NAMES))
def test_rasters_read_at_a_url_as_written(case: str, served: dict[str, str], files: dict[str, Path]) -> None:
    for name in ("data.tif", "data.gpkg"):
        with rasterio.open(files[name]) as src:
            expected = src.read()
        np.testing.assert_array_equal(tp.open_raster(f"{served[case]}/{name}").values, expected)


@pytest.mark.parametrize("case", list(NAMES))
def test_vectors_read_at_a_url_as_written(case: str, served: dict[str, str]) -> None:
    for name in ("data.fgb", "data.parquet", "data-vector.gpkg"):
        got = tp.open_vector(f"{served[case]}/{name}")
        assert sorted(got["id"].tolist()) == list(range(5)), name  # (FlatGeobuf: in its index order)
    box = tp.open_vector(f"{served[case]}/data.fgb", bbox=(1.5, 0, 10, 10))  # by ranges
    assert sorted(box["id"].tolist()) == [2, 3, 4]


@pytest.mark.parametrize("case", list(NAMES))
def test_zarr_reads_at_a_url_as_written(case: str, served: dict[str, str]) -> None:
    cube = tp.open_zarr(f"{served[case]}/data.zarr")
    np.testing.assert_array_equal(np.asarray(cube["t"].values), np.arange(12.0).reshape(3, 4))


@pytest.mark.parametrize("case", ["space", "quoted space", "non-ascii"])
def test_a_stac_catalog_and_its_assets_at_a_url_as_written(
    case: str, served: dict[str, str], range_server_session: Any, tmp_path: Path
) -> None:
    disk, _ = NAMES[case]
    folder = range_server_session.root / "quoting" / disk
    from odc.geo import geom

    footprint = geom.box(600000, 5000000 - 480, 600640, 5000000, "EPSG:32631").to_crs("EPSG:4326")
    item = {
        "type": "Feature", "stac_version": "1.1.0", "id": "one", "links": [], "collection": "c",
        "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"],
        "geometry": footprint.json, "bbox": list(footprint.boundingbox),
        "properties": {"datetime": "2024-06-01T10:30:00Z", "proj:code": "EPSG:32631", "proj:shape": [48, 64],
                       "proj:transform": [10.0, 0.0, 600000.0, 0.0, -10.0, 5000000.0]},
        "assets": {"red": {"href": f"{served[case]}/data.tif", "type": "image/tiff; application=geotiff",
                           "raster:bands": [{"data_type": "uint16"}]}},
    }  # fmt: skip
    catalog = {"type": "Catalog", "stac_version": "1.1.0", "id": "c", "description": "d",
               "links": [{"rel": "item", "href": "./one.json", "type": "application/json"}]}  # fmt: skip
    (folder / "one.json").write_text(json.dumps(item))
    (folder / "catalog.json").write_text(json.dumps(catalog))
    found = list(tp.search_stac(f"{served[case]}/catalog.json"))
    assert [getattr(i, "id", None) or i["id"] for i in found] == ["one"]
    [cube] = list(tp.from_items([[item]]).stack_stac(bands=["red"]))
    with rasterio.open(folder / "data.tif") as src:
        np.testing.assert_array_equal(np.asarray(cube.values)[0, 0], src.read(1))
