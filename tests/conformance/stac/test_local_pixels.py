"""Pixels of a corpus item whose raster is shipped with it, against rasterio window reads.

rustac ships ``dataset_geo.tif`` (2667 x 2658 uint16, UTM 21N, pixels of
100.011 m) with a STAC item for it; the copy here points at the raster by a
relative href (``./dataset_geo.tif``), so it also checks that relative hrefs
are resolved against the item, not the working directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conformance.stac import corpus

pytest.importorskip("odc.stac")
rasterio = pytest.importorskip("rasterio")

ITEM = "rustac/dataset_geo/dataset_geo.json"
TIF = corpus.DATA / "rustac/dataset_geo/dataset_geo.tif"

#: (row slice, col slice) windows: a corner, the middle, the bottom-right edge (partial dask chunks).
WINDOWS = (
    (slice(0, 64), slice(0, 64)),
    (slice(1200, 1457), slice(900, 1190)),
    (slice(2600, 2667), slice(2500, 2658)),
)


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from another directory: an href resolved against the working directory would not be found."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _window(rows: slice, cols: slice) -> Any:
    with rasterio.open(TIF) as src:
        return src.read(1, window=((rows.start, rows.stop), (cols.start, cols.stop)))


@pytest.mark.usefixtures("elsewhere")
@pytest.mark.parametrize("chunks", [None, {"x": 1000, "y": 700}], ids=["tile-chunks", "given-chunks"])
def test_pixels_equal_rasterio_windows(chunks: Any) -> None:
    from terrapipe.stac.stack import stack_items

    cube = stack_items(corpus.pystac_items(ITEM), bands=["data"], chunks=chunks)
    with rasterio.open(TIF) as src:
        assert cube.shape == (1, 1, src.height, src.width)
        assert cube.dtype == np.dtype(src.dtypes[0])
        assert tuple(cube.odc.geobox.transform)[:6] == pytest.approx(tuple(src.transform)[:6])
    for rows, cols in WINDOWS:
        got = cube.isel(time=0, band=0, y=rows, x=cols).values
        np.testing.assert_array_equal(got, _window(rows, cols))


@pytest.mark.usefixtures("elsewhere")
def test_pixels_equal_odc_stac() -> None:
    import odc.stac

    from terrapipe.stac.stack import stack_items

    items = corpus.pystac_items(ITEM)
    cube = stack_items(items, bands=["data"], chunks={})
    ref = odc.stac.load(items, bands=["data"], geobox=cube.odc.geobox, chunks={})
    rows, cols = WINDOWS[1]
    np.testing.assert_array_equal(
        cube.isel(time=0, band=0, y=rows, x=cols).values, ref["data"].isel(time=0, y=rows, x=cols).values
    )


@pytest.mark.usefixtures("elsewhere")
def test_item_dict_with_self_link_reads_the_same_pixels() -> None:
    from terrapipe.stac.stack import stack_items

    record = corpus.read_file(ITEM)[0]
    record = dict(record, links=[{"rel": "self", "href": str(corpus.DATA / ITEM)}])
    cube = stack_items([record], bands=["data"], chunks={})
    rows, cols = WINDOWS[2]
    np.testing.assert_array_equal(cube.isel(time=0, band=0, y=rows, x=cols).values, _window(rows, cols))


def test_missing_raster_names_item_and_asset(elsewhere: Path) -> None:
    """A raster that is not there: a ReadError naming the item and the asset when the cube is computed."""
    from terrapipe.core.errors import ReadError
    from terrapipe.stac.stack import stack_items

    record = json.loads((corpus.DATA / ITEM).read_text())
    record["assets"]["data"]["href"] = "./missing.tif"
    path = elsewhere / "item" / "dataset_geo.json"
    path.parent.mkdir()
    path.write_text(json.dumps(record))
    import pystac

    item = pystac.Item.from_file(str(path))
    cube = stack_items([item], bands=["data"], chunks={}, dtype="uint16", nodata=0)
    with pytest.raises(ReadError) as caught:
        cube.isel(time=0, band=0, y=slice(0, 8), x=slice(0, 8)).compute()
    message = str(caught.value)
    assert "dataset_geo" in message
    assert "'data'" in message
    assert "missing.tif" in message


# --- a real multi-band item, with a raster made for it ------------------------------------------------

PSSCENE = "planet/psscene/optional-epsg.json"


@pytest.fixture
def psscene(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Planet's PSScene item (unchanged) next to a 4-band raster written to its metadata (values: band * 60 + row)."""
    from affine import Affine

    item_path = tmp_path / "scene" / Path(PSSCENE).name
    item_path.parent.mkdir()
    item_path.write_text((corpus.DATA / PSSCENE).read_text())
    asset = json.loads(item_path.read_text())["assets"]["visual"]
    height, width = asset["proj:shape"]
    rows = np.arange(height, dtype="uint8")[:, None] % 50
    data = np.stack([np.broadcast_to(rows + 60 * band, (height, width)) for band in range(4)]).astype("uint8")
    profile = {
        "driver": "GTiff",
        "count": 4,
        "height": height,
        "width": width,
        "dtype": "uint8",
        "crs": asset["proj:code"],
        "transform": Affine(*asset["proj:transform"][:6]),
        "tiled": True,
        "blockxsize": 128,
        "blockysize": 128,
    }
    with rasterio.open(item_path.parent / Path(asset["href"]).name, "w", **profile) as dst:
        dst.write(data)
    monkeypatch.chdir(tmp_path)  # not the item's folder: './...' must be resolved against the item
    return item_path


@pytest.mark.parametrize(
    ("bands", "indexes"),
    [(["red", "green", "blue"], [1, 2, 3]), (["blue", "red"], [3, 1]), (["Alpha"], [4]), (["visual.2"], [2])],
    ids=["rgb", "blue-red", "alpha-by-name", "asset.N"],
)
def test_multiband_asset_pixels(psscene: Path, bands: list[str], indexes: list[int]) -> None:
    """Each band of PSScene's 4-band ``visual`` asset holds the pixels of its ``eo:bands`` position (issue #17)."""
    import pystac

    from terrapipe.stac.stack import stack_items

    item = pystac.Item.from_file(str(psscene))
    cube = stack_items([item], bands=bands, nodata=0)
    href = item.assets["visual"].get_absolute_href()
    with rasterio.open(href) as src:
        want = src.read(indexes)
    np.testing.assert_array_equal(cube.isel(time=0).values, want)


def test_multiband_asset_pixels_equal_odc_stac(psscene: Path) -> None:
    import odc.stac
    import pystac

    from terrapipe.stac.stack import stack_items

    items = [pystac.Item.from_file(str(psscene))]
    cube = stack_items(items, bands=["blue", "green"], chunks={})
    ref = odc.stac.load(items, bands=["blue", "green"], geobox=cube.odc.geobox, chunks={})
    for band in ("blue", "green"):
        np.testing.assert_array_equal(cube.sel(band=band).values, ref[band].values)
