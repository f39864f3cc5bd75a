"""One CRS spelt or axis-ordered differently is one CRS; a different datum, unit or kind is not.

Our grids map pixels to (x, y) with x east whatever axis order a CRS's definition states, so
EPSG:4326 (lat, lon) and OGC:CRS84 (lon, lat; what '+proj=longlat +datum=WGS84' resolves to)
place every pixel at the same spot. Everywhere CRSs are compared (grid checks of zip_grids and
check_same_grid, stitch, the vector index, stack_stac's grid choice) they must agree on that, and
must never merge CRSs that place pixels differently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import odc.geo.crs
import pyproj
import pytest
import rasterio.crs
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from shapely.geometry import box

import terrapipe as tp
from terrapipe.core.crs import same_crs
from terrapipe.core.errors import GridMismatchError
from terrapipe.fuse.grid import grid_mismatch, grid_of
from terrapipe.fuse.vector_index import VectorIndex
from terrapipe.fuse.zip import check_same_grid

LONLAT_SPELLINGS = [
    "EPSG:4326",
    4326,
    "OGC:CRS84",
    "+proj=longlat +datum=WGS84",
    "+proj=longlat +datum=WGS84 +no_defs +type=crs",
    pyproj.CRS("OGC:CRS84").to_wkt(),
    pyproj.CRS("EPSG:4326").to_wkt("WKT1_GDAL"),
    pyproj.CRS("OGC:CRS84").to_json(),
    pyproj.CRS("OGC:CRS84"),
    rasterio.crs.CRS.from_user_input("+proj=longlat +datum=WGS84"),
    odc.geo.crs.CRS("+proj=longlat +datum=WGS84"),
]

SAME = [
    ("EPSG:4269", "OGC:CRS83"),  # NAD83, both axis orders
    ("EPSG:4267", "OGC:CRS27"),  # NAD27
    ("EPSG:32631", "+proj=utm +zone=31 +datum=WGS84 +units=m +no_defs"),
    (
        "EPSG:3857",
        "+proj=merc +a=6378137 +b=6378137 +lat_ts=0 +lon_0=0 +x_0=0 +y_0=0 +k=1 +units=m +nadgrids=@null +no_defs",
    ),
]

DIFFERENT = [
    ("EPSG:4326", "EPSG:4269"),  # another datum (NAD83)
    ("EPSG:4326", "EPSG:4258"),  # ETRS89
    ("EPSG:4326", "EPSG:4979"),  # 3-D
    ("EPSG:4326", "EPSG:4807"),  # grads, Paris meridian
    ("EPSG:4326", "+proj=longlat +datum=WGS84 +pm=paris"),
    ("EPSG:4326", "EPSG:32631"),  # geographic vs projected
    ("OGC:CRS84", "EPSG:3857"),
    ("EPSG:32631", "+proj=utm +zone=31 +datum=WGS84 +units=us-ft"),  # other units
    ("EPSG:32631", "EPSG:32632"),
    ("EPSG:32631", "EPSG:32731"),  # north vs south
    ("EPSG:4326", "not a crs"),
]


@pytest.mark.parametrize(
    "spelling", LONLAT_SPELLINGS, ids=lambda s: type(s).__name__ + str(hash(str(s)) % 1000)
)
def test_every_spelling_of_wgs84_lon_lat_is_one_crs(spelling: object) -> None:
    assert same_crs(spelling, "EPSG:4326")
    assert same_crs("OGC:CRS84", spelling)


@pytest.mark.parametrize(("a", "b"), SAME)
def test_same_crs_in_other_spellings(a: str, b: str) -> None:
    assert same_crs(a, b)
    assert same_crs(b, a)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_crss_stay_different(a: str, b: str) -> None:
    assert not same_crs(a, b)
    assert not same_crs(b, a)


def _chip(crs: object, x0: float = 10.0) -> xr.DataArray:
    coords = {"y": [50.05, 49.95], "x": [x0 + 0.05, x0 + 0.15]}
    return xr.DataArray(np.zeros((2, 2), "float32"), dims=("y", "x"), coords=coords).rio.write_crs(crs)


@pytest.mark.parametrize(
    "spelling", ["+proj=longlat +datum=WGS84", "OGC:CRS84", pyproj.CRS("OGC:CRS84").to_wkt()]
)
def test_grids_in_crs84_and_epsg_4326_are_one_grid(spelling: str) -> None:
    assert grid_mismatch(grid_of(_chip("EPSG:4326")), grid_of(_chip(spelling))) is None
    check_same_grid(_chip("EPSG:4326"), _chip(spelling), names=["s2", "dem"])
    pipe = tp.from_items([_chip("EPSG:4326")]).zip_grids(
        tp.from_items([_chip(spelling)]), names=["s2", "dem"]
    )
    assert len(list(pipe)) == 1


@pytest.mark.parametrize("other", ["EPSG:4269", "EPSG:4979", "EPSG:3857"])
def test_grids_in_genuinely_different_crss_are_refused(other: str) -> None:
    with pytest.raises(GridMismatchError, match="crs differs"):
        check_same_grid(_chip("EPSG:4326"), _chip(other))


def test_stitch_takes_predictions_in_crs84_onto_a_4326_template() -> None:
    template = _chip("EPSG:4326")
    from terrapipe.chip.stitch import stitch
    from terrapipe.core.sample import geo_meta

    prediction = np.ones((2, 2), "float32")
    crs84 = geo_meta("OGC:CRS84", tuple(grid_of(template).affine)[:6], (2, 2))
    out = stitch([(prediction, crs84)], template)
    np.testing.assert_array_equal(out.values, prediction)
    nad83 = geo_meta("EPSG:4269", tuple(grid_of(template).affine)[:6], (2, 2))
    with pytest.raises(GridMismatchError):
        stitch([(prediction, nad83)], template)


def test_a_crs84_layer_on_4326_chips_is_not_reprojected() -> None:
    layer = gpd.GeoDataFrame(
        {"v": [1]}, geometry=[box(10, 49.9, 10.2, 50.1)], crs="+proj=longlat +datum=WGS84"
    )
    stage = tp.from_items([_chip("EPSG:4326")]).rasterize(layer, column="v")
    out = next(iter(stage))
    assert (out["mask"].values == 1).all()
    assert stage.index.reprojections == 0
    index = VectorIndex(layer, what="rasterize")
    index.query((10, 49.9, 10.2, 50.1), "EPSG:4269")
    assert index.reprojections == 1  # NAD83 is another datum: reprojected


def test_stack_stac_grid_choice_takes_items_in_4326_and_crs84_as_one_crs() -> None:
    from terrapipe.stac.grid import choose_grid

    a = {
        "id": "a",
        "properties": {
            "proj:code": "EPSG:4326",
            "proj:shape": [4, 4],
            "proj:transform": [0.1, 0, 10, 0, -0.1, 50],
        },
        "assets": {"red": {}},
    }
    b = {
        "id": "b",
        "properties": {
            "proj:wkt2": pyproj.CRS("OGC:CRS84").to_wkt(),
            "proj:shape": [4, 4],
            "proj:transform": [0.1, 0, 10.4, 0, -0.1, 50],
        },
        "assets": {"red": {}},
    }
    choice = choose_grid([a, b], ["red"])
    assert choice.geobox.shape == (4, 8)


def test_stack_items_places_pixels_of_4326_and_crs84_items_on_one_grid(tmp_path: Path) -> None:
    """End to end: two adjacent files, one labelled EPSG:4326, one OGC:CRS84, on one cube, each pixel in place."""
    from rasterio.transform import from_origin

    def item(name: str, x0: float, crs: str, proj: dict[str, Any], value: int) -> dict[str, Any]:
        data = np.full((1, 16, 16), value, "uint16")
        data[0, 0, 0] = value + 100  # the file's north-west pixel
        path = tmp_path / f"{name}.tif"
        profile = {"driver": "GTiff", "width": 16, "height": 16, "count": 1, "dtype": "uint16", "crs": crs}
        with rasterio.open(path, "w", transform=from_origin(x0, 50, 0.1, 0.1), **profile) as dst:
            dst.write(data)
        ring = [[x0, 48.4], [x0 + 1.6, 48.4], [x0 + 1.6, 50], [x0, 50], [x0, 48.4]]
        return {
            "type": "Feature", "stac_version": "1.0.0", "id": name, "links": [],
            "geometry": {"type": "Polygon", "coordinates": [ring]}, "bbox": [x0, 48.4, x0 + 1.6, 50],
            "properties": {"datetime": "2020-01-01T00:00:00Z", "proj:shape": [16, 16],
                           "proj:transform": [0.1, 0, x0, 0, -0.1, 50], **proj},
            "assets": {"red": {"href": str(path), "type": "image/tiff; application=geotiff"}},
            "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"],
        }  # fmt: skip

    a = item("a", 10.0, "EPSG:4326", {"proj:code": "EPSG:4326"}, 1)
    b = item("b", 11.6, "OGC:CRS84", {"proj:wkt2": pyproj.CRS("OGC:CRS84").to_wkt()}, 2)
    cube = tp.stac.stack_items([a, b])
    assert cube.sizes["x"] == 32
    assert cube.sizes["y"] == 16
    pixels = np.asarray(cube.max("time").squeeze().values)
    assert pixels[0, 0] == 101
    assert pixels[0, 16] == 102
    assert (pixels[1:, :16] == 1).all()
    assert (pixels[1:, 16:] == 2).all()
    assert float(cube.x[0]) == pytest.approx(10.05)
    assert float(cube.x[-1]) == pytest.approx(13.15)
