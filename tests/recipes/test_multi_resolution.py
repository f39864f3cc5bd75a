"""The multi-resolution recipe pairs every fine chip with a coarse chip of exactly its footprint.

On the sample world and on a scene whose corner is not on the 40 m grid (the
coarse grid is derived from the fine one, not snapped to multiples of 40 m).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
import xarray as xr
from affine import Affine

from terrapipe.fuse.grid import grid_of
from terrapipe.recipes import bundled_recipes, load_recipe
from terrapipe.recipes.functions import coarsen

#: A 3 km x 2.6 km scene inside the recipe's bbox whose corner is 10 m off the 40 m grid.
SHIFTED = Affine(10.0, 0.0, 728010.0, 0.0, -10.0, 5068730.0)
SHAPE = (260, 300)
BANDS = ("red", "green", "blue", "nir")


def _write_shifted_catalog(root: Path) -> Path:
    """A static catalog with one ``demo-s2`` item of four 10 m COG-like bands on ``SHIFTED``."""
    import pystac
    from odc.geo import geom

    rng = np.random.default_rng(7)
    height, width = SHAPE
    footprint = geom.box(
        SHIFTED.c, SHIFTED.f + SHIFTED.e * height, SHIFTED.c + SHIFTED.a * width, SHIFTED.f, "EPSG:32631"
    ).to_crs("EPSG:4326")
    item = pystac.Item(
        id="shifted",
        geometry=footprint.json,
        bbox=list(footprint.boundingbox),
        datetime=datetime(2024, 6, 10, 10, 30, tzinfo=UTC),
        properties={
            "proj:code": "EPSG:32631",
            "proj:shape": list(SHAPE),
            "proj:transform": list(SHIFTED)[:6],
        },
        collection="demo-s2",
    )
    for band in BANDS:
        path = root / f"{band}.tif"
        with rasterio.open(
            path, "w", driver="GTiff", height=height, width=width, count=1, dtype="uint16",
            crs="EPSG:32631", transform=SHIFTED, nodata=0, tiled=True, blockxsize=128, blockysize=128,
        ) as dst:  # fmt: skip
            dst.write(rng.integers(1, 10000, size=(1, height, width), dtype=np.uint16))
        item.add_asset(
            band,
            pystac.Asset(
                href=path.as_uri(),
                media_type=pystac.MediaType.COG,
                roles=["data"],
                extra_fields={"raster:bands": [{"data_type": "uint16", "nodata": 0}]},
            ),
        )
    collection = pystac.Collection(
        id="demo-s2",
        description="one scene off the 40 m grid",
        extent=pystac.Extent(
            pystac.SpatialExtent([item.bbox]), pystac.TemporalExtent([[item.datetime, item.datetime]])
        ),
    )
    collection.add_item(item)
    catalog = pystac.Catalog(id="shifted", description="multi-resolution test catalog")
    catalog.add_child(collection)
    catalog.normalize_hrefs(str(root / "stac"))
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "stac" / "catalog.json"


def _pairs(recipe_text: str, world: Any = None, *, path: Path | None = None) -> list[dict[str, Any]]:
    recipe = load_recipe(text=recipe_text, path=path)
    return list(recipe.build(world))


def _assert_same_footprints(pairs: list[dict[str, Any]]) -> None:
    assert pairs
    for index, pair in enumerate(pairs):
        fine, coarse = pair["fine"], pair["coarse"]
        assert tuple(fine["image"].shape) == (4, 128, 128), index
        assert tuple(coarse["image"].shape) == (4, 32, 32), index
        assert coarse["meta"]["bounds"] == fine["meta"]["bounds"], index  # exactly, not approximately
        assert (coarse["meta"]["transform"][0], fine["meta"]["transform"][0]) == (40.0, 10.0)
        # and the coarse pixels are made of the fine pixels under them
        torch.testing.assert_close(coarse["image"], torch.nn.functional.avg_pool2d(fine["image"], 4))


def _bundled_text() -> str:
    return bundled_recipes()["multi-resolution"].read_text(encoding="utf-8")


def test_every_pair_on_the_sample_world_covers_one_footprint(sample_world: Any) -> None:
    pairs = _pairs(_bundled_text(), sample_world)
    _assert_same_footprints(pairs)
    assert len({p["fine"]["meta"]["bounds"] for p in pairs}) == len(pairs)


def test_a_tile_corner_off_the_coarse_grid_still_pairs_exactly(tmp_path: Path) -> None:
    catalog = _write_shifted_catalog(tmp_path)
    text = _bundled_text()
    assert text.count("{$world: catalog}") == 2
    pairs = _pairs(text.replace("{$world: catalog}", str(catalog)), path=tmp_path / "shifted.yaml")
    assert len(pairs) == (SHAPE[0] // 128) * (SHAPE[1] // 128)
    _assert_same_footprints(pairs)
    left, _, _, top = pairs[0]["fine"]["meta"]["bounds"]
    assert (left % 40, top % 40) == (10.0, 10.0)  # the case a 40 m grid of its own gets wrong
    assert {p["coarse"]["meta"]["source_ids"] for p in pairs} == {("stac:shifted",)}


@pytest.mark.parametrize("origin", [(728010.0, 5068730.0), (600005.0, 5000003.0), (0.0, 0.0)])
def test_coarsen_keeps_the_footprint_for_any_origin(origin: tuple[float, float]) -> None:
    x0, y0 = origin
    data = np.arange(2 * 8 * 12, dtype="uint16").reshape(2, 8, 12)
    chip = xr.DataArray(
        data,
        dims=("band", "y", "x"),
        coords={"band": ["red", "nir"], "y": y0 - 5 - 10 * np.arange(8), "x": x0 + 5 + 10 * np.arange(12)},
        attrs={"nodata": 0},
    ).rio.write_crs("EPSG:32631")
    chip.encoding["source"] = "fine.tif"
    coarse = coarsen(chip, factor=4)
    fine_grid, coarse_grid = grid_of(chip), grid_of(coarse)
    assert coarse_grid.shape.yx == (2, 3)
    assert coarse_grid.affine == fine_grid.affine @ Affine.scale(4)
    assert coarse_grid.boundingbox == fine_grid.boundingbox
    assert coarse.rio.transform() == coarse_grid.affine
    assert list(coarse["band"].values) == ["red", "nir"]
    assert (coarse.encoding["source"], coarse.attrs["nodata"]) == ("fine.tif", 0)
    # nodata (0) is left out of the block means; a block of only nodata stays nodata
    expected = data.reshape(2, 2, 4, 3, 4).astype("float32")
    expected[expected == 0] = np.nan
    np.testing.assert_allclose(coarse.values, np.nanmean(expected, axis=(2, 4)))
    chip[0, :4, :4] = 0
    assert coarsen(chip, factor=4).values[0, 0, 0] == 0


def test_coarsen_refuses_what_would_change_the_footprint() -> None:
    chip = xr.DataArray(
        np.ones((6, 8)), dims=("y", "x"), coords={"y": 55.0 - 10 * np.arange(6), "x": 5.0 + 10 * np.arange(8)}
    ).rio.write_crs("EPSG:32631")
    with pytest.raises(ValueError, match=r"6 x 8 pixels cannot be cut into whole blocks of 4 x 4"):
        coarsen(chip, factor=4)
    with pytest.raises(ValueError, match="factor must be a whole number >= 1"):
        coarsen(chip, factor=0)
    with pytest.raises(ValueError, match="method must be one of"):
        coarsen(chip, factor=2, method="mode")
    assert coarsen(chip, factor=2, method="max").shape == (3, 4)
