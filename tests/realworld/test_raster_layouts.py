"""Rasters in other tools' layouts (``layouts.py``) through every raster flow, against rasterio and odc-stac.

Each layout is read by ``open_raster`` (whole and windows), the ``read_raster`` stage from the HTTP range
server, ``chip`` (each chip against a rasterio window read at the chip's own coordinates), ``stack_items`` on a
STAC item written for the file as ``rio-stac`` writes one (file and HTTP href; the native grid and resampled
grids, against odc-stac) and ``align_array`` (onto chip grids, against ``rasterio.warp.reproject``).
"""

from __future__ import annotations

import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.warp
from affine import Affine
from odc.geo.geobox import GeoBox
from rasterio.windows import Window

import terrapipe as tp
import terrapipe.fuse
from terrapipe.fuse import align_array
from terrapipe.stac.stack import stack_items
from tests.realworld import layouts

NAMES = list(layouts.LAYOUTS)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("layouts")
    return {name: layouts.write(folder / f"{name}.tif", name, seed=i) for i, name in enumerate(NAMES)}


def _same(got: np.ndarray[Any, Any], want: np.ndarray[Any, Any]) -> None:
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(got, want)


def _centres(transform: Affine, height: int, width: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    xs = np.array([(transform * (c + 0.5, 0.5))[0] for c in range(width)])
    ys = np.array([(transform * (0.5, r + 0.5))[1] for r in range(height)])
    return xs, ys


def _file_rows_cols(transform: Affine, xs: Any, ys: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The file's row and column of each pixel centre (x, y) of a grid aligned to the file's pixels."""
    inverse = ~transform
    cols = np.floor([(inverse * (float(x), float(ys[0])))[0] for x in xs]).astype(int)
    rows = np.floor([(inverse * (float(xs[0]), float(y)))[1] for y in ys]).astype(int)
    return rows, cols


def test_each_file_has_its_layout(files: dict[str, Path]) -> None:
    """The layouts are what they say (a test on a plain file would prove nothing)."""
    with rasterio.open(files["south-up"]) as src:
        assert src.transform.e > 0
    with rasterio.open(files["east-to-west"]) as src:
        assert src.transform.a < 0
    with rasterio.open(files["pixel-is-point"]) as src:
        assert src.tags()["AREA_OR_POINT"] == "Point"
    with rasterio.open(files["one-bit"]) as src:
        assert src.tags(1, "IMAGE_STRUCTURE").get("NBITS") == "1"
    with rasterio.open(files["palette"]) as src:
        assert src.colorinterp[0] == rasterio.enums.ColorInterp.palette
    with rasterio.open(files["internal-mask"]) as src:
        assert rasterio.enums.MaskFlags.per_dataset in src.mask_flag_enums[0]
        assert (src.read_masks(1) == 0).any()
    with rasterio.open(files["tiled-overviews"]) as src:
        assert src.overviews(1) == [2, 4, 8]
        assert src.block_shapes[0] == (256, 256)
    with rasterio.open(files["uint64"]) as src:
        assert int(src.read().max()) > 2**32  # values float32 or float64 would round


@pytest.mark.parametrize("name", NAMES)
def test_open_raster_equals_rasterio(files: dict[str, Path], name: str) -> None:
    path = files[name]
    da = tp.open_raster(path)
    with rasterio.open(path) as ref:
        assert da.rio.crs == ref.crs
        assert da.rio.transform() == ref.transform
        assert da.rio.nodata == ref.nodata or (np.isnan(da.rio.nodata) and np.isnan(ref.nodata))
        xs, ys = _centres(ref.transform, ref.height, ref.width)
        np.testing.assert_allclose(da.x.values, xs, rtol=0, atol=abs(ref.transform.a) * 1e-9)
        np.testing.assert_allclose(da.y.values, ys, rtol=0, atol=abs(ref.transform.e) * 1e-9)
        _same(da.values, ref.read())
        for window in (
            Window(0, 0, 7, 5),
            Window(11, 9, 20, 17),
            Window(ref.width - 3, ref.height - 2, 3, 2),
        ):
            rows, cols = window.toslices()
            _same(da.isel(y=rows, x=cols).values, ref.read(window=window))
        masked = tp.open_raster(path, masked=True).values
        expected = np.ma.filled(ref.read(masked=True).astype(masked.dtype), np.nan)
        np.testing.assert_array_equal(masked, expected)


@pytest.mark.parametrize("name", ["tiled-overviews"])
def test_overview_levels_equal_rasterio(files: dict[str, Path], name: str) -> None:
    for level in range(3):
        da = tp.open_raster(files[name], overview_level=level)
        with rasterio.open(files[name], overview_level=level) as ref:
            assert da.rio.transform() == ref.transform
            _same(da.values, ref.read())


@pytest.mark.parametrize("name", NAMES)
def test_read_raster_over_http_equals_local(
    files: dict[str, Path], name: str, range_server_session: Any
) -> None:
    served = range_server_session.root / f"{uuid.uuid4().hex[:8]}-{files[name].name}"
    shutil.copy(files[name], served)
    url = range_server_session.url_for(served)
    (da,) = list(tp.from_items([url]).read_raster(chunks=True))
    with rasterio.open(files[name]) as ref:
        assert da.rio.transform() == ref.transform
        _same(da.values, ref.read())


@pytest.mark.parametrize("name", NAMES)
def test_chips_equal_rasterio_windows_at_their_coordinates(files: dict[str, Path], name: str) -> None:
    """Each chip holds the file's pixels under its own x/y coordinates (a flipped axis must not flip a chip)."""
    path = files[name]
    chips = list(tp.from_items([str(path)]).read_raster().chip({"y": 16, "x": 16}, boundary="drop"))
    assert chips
    with rasterio.open(path) as ref:
        full = ref.read()
        for chip in chips:
            rows, cols = _file_rows_cols(ref.transform, chip.x.values, chip.y.values)
            assert np.all(np.diff(rows) == 1)  # a window, in file order
            assert np.all(np.diff(cols) == 1)
            _same(chip.values, full[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])


def _item(path: Path, href: str) -> dict[str, Any]:
    """A STAC item for the file as rio-stac writes one: projection v2 and raster v1.1 from the header."""
    from odc.geo.geom import BoundingBox

    with rasterio.open(path) as src:
        bands = [{"data_type": src.dtypes[0]} | ({"nodata": src.nodata} if src.nodata is not None else {})]
        for band in bands:
            if isinstance(band.get("nodata"), float) and np.isnan(band["nodata"]):
                band["nodata"] = "nan"  # the raster extension's spelling
        asset = {
            "href": href,
            "type": "image/tiff; application=geotiff",
            "roles": ["data"],
            "proj:code": src.crs.to_string(),
            "proj:shape": [src.height, src.width],
            "proj:transform": list(src.transform)[:6],
            "raster:bands": bands,
        }
        box = BoundingBox(*src.bounds, crs=src.crs).to_crs("EPSG:4326")
    west, south, east, north = box.left, box.bottom, box.right, box.top
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "id": path.stem,
        "bbox": [west, south, east, north],
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"datetime": "2024-05-01T10:00:00Z"},
        "links": [],
        "assets": {"data": asset},
    }


STACKED = [n for n in NAMES if n not in ("internal-mask",)]  # one band per asset here: see the next test


@pytest.mark.parametrize("name", STACKED)
@pytest.mark.parametrize("where", ["file", "http"])
def test_stack_items_native_grid_equals_the_file(
    files: dict[str, Path], name: str, where: str, range_server_session: Any
) -> None:
    path = files[name]
    href = str(path)
    if where == "http":
        served = range_server_session.root / f"{uuid.uuid4().hex[:8]}-{path.name}"
        shutil.copy(path, served)
        href = range_server_session.url_for(served)
    cube = stack_items([_item(path, href)], bands=["data"])
    with rasterio.open(path) as ref:
        assert tuple(cube.odc.geobox.transform)[:6] == tuple(ref.transform)[:6]
        assert cube.dtype == np.dtype(ref.dtypes[0])
        _same(cube.isel(time=0).values, ref.read(1)[None])


GRIDS = {
    "finer": {"resolution": 7},
    "coarser": {"resolution": 20},
    "lonlat": {"crs": "EPSG:4326", "resolution": 0.0001},
}


@pytest.mark.parametrize("name", ["south-up", "east-to-west", "both-flipped", "pixel-is-point", "int8"])
@pytest.mark.parametrize("grid", list(GRIDS))
def test_stack_items_resampled_grids_equal_odc_stac(files: dict[str, Path], name: str, grid: str) -> None:
    import odc.stac
    import pystac

    item = _item(files[name], str(files[name]))
    cube = stack_items([item], bands=["data"], **GRIDS[grid])
    ref = odc.stac.load([pystac.Item.from_dict(item)], bands=["data"], geobox=cube.odc.geobox)["data"]
    assert cube.shape[-2:] == ref.shape[-2:]
    _same(cube.isel(time=0, band=0).values, ref.isel(time=0).values)
    assert cube.y.values[0] > cube.y.values[-1]  # the cube is north-up whichever way the file runs


def test_stack_items_multiband_with_internal_mask_reads_each_band(files: dict[str, Path]) -> None:
    """A 3-band file with a mask: each ``asset.N`` is band N's raw values, as odc-stac reads them."""
    item = _item(files["internal-mask"], str(files["internal-mask"]))
    item["assets"]["data"]["raster:bands"] *= 3
    cube = stack_items([item], bands=["data.1", "data.2", "data.3"])
    with rasterio.open(files["internal-mask"]) as ref:
        _same(cube.isel(time=0).values, ref.read())


def _chip_grids(path: Path) -> list[GeoBox]:
    with rasterio.open(path) as src:
        t, crs, height, width = src.transform, src.crs, src.height, src.width
    left, _, _, top = rasterio.transform.array_bounds(height, width, t)
    rx, ry = abs(t.a), abs(t.e)
    return [
        GeoBox((height, width), Affine(rx, 0, left, 0, -ry, top), crs),  # north-up, same pixels
        GeoBox((height // 2, width // 2), Affine(2 * rx, 0, left, 0, -2 * ry, top), crs),  # coarser
        GeoBox((16, 16), Affine(rx, 0, left + 5 * rx, 0, -ry, top - 7 * ry), crs),  # a chip inside
    ]


@pytest.mark.parametrize("name", ["south-up", "east-to-west", "both-flipped", "int8", "float-nan-nodata"])
def test_align_array_equals_rasterio_reproject(files: dict[str, Path], name: str) -> None:
    path = files[name]
    da = tp.open_raster(path)
    with rasterio.open(path) as src:
        pixels, nodata = src.read(), src.nodata
        src_transform, src_crs = src.transform, src.crs
    for grid in _chip_grids(path):
        got = align_array(da, grid, resampling="nearest")
        fill = nodata if nodata is not None else 0
        want = np.full((pixels.shape[0], *grid.shape), fill, dtype=pixels.dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rasterio.warp.reproject(
                pixels, want, src_transform=src_transform, src_crs=src_crs, dst_transform=grid.transform,
                dst_crs=grid.crs, resampling=rasterio.enums.Resampling.nearest, src_nodata=nodata, dst_nodata=fill,
            )  # fmt: skip
        _same(got.values, want)
