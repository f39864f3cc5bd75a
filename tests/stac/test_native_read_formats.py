"""stack_stac's native reader on the GeoTIFF layouts found in catalogs: same pixels as rasterio and odc-stac.

Every case writes two small one-band files (an item with two assets) whose
size is not a multiple of the block size (partial edge tiles or strips), in
one codec (LZW, DEFLATE, ZSTD), predictor (none, 2, 3), layout (tiled,
striped), data type (uint16, float32, int8), with nodata set or not, and
with or without overviews. The cube, computed whole, cut into chips, and
read by slices, must equal rasterio's reads of the files (where odc-stac's
nodata rule changes nothing) and odc-stac's load on the same grid, with the
same dtype, nodata and georeferencing. (The items declare the files'
nodata, so it is the cube's too: no pixel is remapped.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.stac import stack_items
from terrapipe.stac.native_read import SHARED_BAND_BLOCKS

rasterio = pytest.importorskip("rasterio")
odc_stac = pytest.importorskip("odc.stac")
pystac = pytest.importorskip("pystac")

_PROJ_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
_RASTER_EXT = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
HEIGHT, WIDTH = 150, 170  # 64-pixel blocks: partial tiles (and a partial strip) at the bottom and right
ORIGIN = (600000.0, 5000000.0)

#: (dtype, predictor, nodata): predictor 3 is for floats; nodata None is "unset".
KINDS = [
    ("uint16", 1, 0),
    ("uint16", 2, None),
    ("float32", 3, -9999.0),
    ("float32", 1, None),
    ("int8", 2, -128),
    ("int8", 1, None),
]


def _pixels(dtype: str, seed: int, nodata: Any) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kind = np.dtype(dtype)
    if kind.kind == "f":
        data = rng.normal(100.0, 30.0, size=(HEIGHT, WIDTH)).astype(dtype)
        data[40:44, 10:20] = np.nan
    else:
        info = np.iinfo(kind)
        data = rng.integers(max(info.min, -100), min(info.max, 3000), size=(HEIGHT, WIDTH)).astype(dtype)
    if nodata is not None:
        data[5:12, 30:90] = nodata  # a hole
    data[HEIGHT - 3 :, WIDTH - 5 :] = data[0, 0]  # the last partial tile has content too
    return data


def _write(path: Path, data: np.ndarray, *, compress: str, predictor: int, tiled: bool, nodata: Any,
           overviews: bool) -> str:  # fmt: skip
    profile: dict[str, Any] = {
        "driver": "GTiff", "width": WIDTH, "height": HEIGHT, "count": 1, "dtype": data.dtype.name,
        "crs": "EPSG:32631", "transform": rasterio.transform.from_origin(*ORIGIN, 10, 10),
        "compress": compress, "predictor": predictor, "nodata": nodata,
    }  # fmt: skip
    if tiled:
        profile.update(tiled=True, blockxsize=64, blockysize=64)
    else:
        profile.update(tiled=False, blockysize=16)  # strips of 16 rows; the last one partial
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        if overviews:
            dst.build_overviews([2, 4], rasterio.enums.Resampling.average)
    return str(path)


def _item(hrefs: dict[str, str], dtype: str, nodata: Any) -> Any:
    from odc.geo import geom

    west, north = ORIGIN
    footprint = geom.box(west, north - 10 * HEIGHT, west + 10 * WIDTH, north, "EPSG:32631").to_crs(
        "EPSG:4326"
    )
    band: dict[str, Any] = {"data_type": dtype}
    if nodata is not None:
        band["nodata"] = nodata
    assets = {
        key: {
            "href": href,
            "type": "image/tiff; application=geotiff",
            "roles": ["data"],
            "raster:bands": [band],
        }
        for key, href in hrefs.items()
    }
    return pystac.Item.from_dict(
        {
            "type": "Feature",
            "stac_version": "1.1.0",
            "stac_extensions": [_PROJ_EXT, _RASTER_EXT],
            "id": "scene",
            "geometry": footprint.json,
            "bbox": list(footprint.boundingbox),
            "properties": {
                "datetime": "2024-06-01T10:30:00Z",
                "proj:code": "EPSG:32631",
                "proj:shape": [HEIGHT, WIDTH],
                "proj:transform": [10.0, 0.0, west, 0.0, -10.0, north],
            },
            "links": [],
            "assets": assets,
        }
    )


@pytest.mark.parametrize(("tiled", "overviews"), [(True, False), (False, False), (True, True)],
                         ids=["tiled", "striped", "tiled-overviews"])  # fmt: skip
@pytest.mark.parametrize(
    ("dtype", "predictor", "nodata"), KINDS, ids=[f"{d}-p{p}-nd{n}" for d, p, n in KINDS]
)
@pytest.mark.parametrize("compress", ["lzw", "deflate", "zstd"])
def test_native_cube_equals_rasterio_and_odc_stac(
    tmp_path: Path, compress: str, dtype: str, predictor: int, nodata: Any, tiled: bool, overviews: bool
) -> None:
    data = {key: _pixels(dtype, seed, nodata) for seed, key in enumerate(("a", "b"))}
    options = {
        "compress": compress,
        "predictor": predictor,
        "tiled": tiled,
        "nodata": nodata,
        "overviews": overviews,
    }
    hrefs = {key: _write(tmp_path / f"{key}.tif", pixels, **options) for key, pixels in data.items()}
    with rasterio.open(hrefs["a"]) as src:  # what the file really is (the options were honoured)
        assert src.profile["compress"].lower() == compress
        assert src.profile["tiled"] == tiled
        assert (len(src.overviews(1)) > 0) == overviews
        assert src.nodata == nodata
        assert np.array_equal(src.read(1), data["a"], equal_nan=True)
        transform = src.transform
    item = _item(hrefs, dtype, nodata)

    cube = stack_items([item], bands=["a", "b"], chunks={"x": 64, "y": 64})
    assert cube.dtype == np.dtype(dtype)
    assert tuple(cube.odc.geobox.transform)[:6] == pytest.approx(tuple(transform)[:6])
    values = cube.values
    want = np.stack([data["a"], data["b"]])[None]  # one file covers the cube: its pixels as they are
    np.testing.assert_array_equal(values, want)  # NaN equals NaN here
    theirs = odc_stac.load([item], bands=["a", "b"], geobox=cube.odc.geobox, chunks={})
    np.testing.assert_array_equal(values, np.stack([theirs["a"].values, theirs["b"].values], axis=1))
    assert theirs["a"].dtype == cube.dtype
    assert cube.attrs.get("nodata") == theirs["a"].attrs.get("nodata")

    # the chip stage over the same cube: every chip is the cube's window (blocks of both bands at once)
    assert cube.chunks is not None
    assert cube.chunks[1] == (2,)
    chips = list(tp.from_items([cube]).chip({"y": 64, "x": 64}))
    assert len(chips) == (HEIGHT // 64) * (WIDTH // 64)
    for chip in chips:
        y0 = int(np.flatnonzero(cube.y.values == chip.y.values[0])[0])
        x0 = int(np.flatnonzero(cube.x.values == chip.x.values[0])[0])
        np.testing.assert_array_equal(chip.values, want[..., y0 : y0 + 64, x0 : x0 + 64].reshape(chip.shape))
    # a slice reads just its window: the last partial tile of one band
    np.testing.assert_array_equal(
        cube.isel(time=0, band=1, y=slice(128, None), x=slice(128, None)).values,
        want[0, 1, 128:, 128:],
    )


def test_small_local_cubes_keep_one_chunk_per_band(tmp_path: Path) -> None:
    """Below SHARED_BAND_BLOCKS blocks, bands are chunks of their own (decoded in parallel when computed)."""
    data = {key: _pixels("uint16", seed, 0) for seed, key in enumerate(("a", "b"))}
    options = {"compress": "deflate", "predictor": 2, "tiled": True, "nodata": 0, "overviews": False}
    hrefs = {key: _write(tmp_path / f"{key}.tif", pixels, **options) for key, pixels in data.items()}
    item = _item(hrefs, "uint16", 0)
    small = stack_items([item], bands=["a", "b"], chunks={"x": 256, "y": 256})  # one block
    many = stack_items([item], bands=["a", "b"], chunks={"x": 64, "y": 64})  # nine blocks
    assert small.chunks is not None
    assert many.chunks is not None
    assert small.chunks[1] == (1, 1)
    assert many.chunks[1] == (2,)
    assert SHARED_BAND_BLOCKS <= 9
    np.testing.assert_array_equal(small.values, many.values)
    np.testing.assert_array_equal(many.values[0], np.stack([data["a"], data["b"]]))
