"""The cache on the sample world: a second epoch from each backend equals the first."""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
import xarray as xr
from rasterio.windows import Window

import terrapipe as tp
from terrapipe.cache import RedisStore
from terrapipe.core.sample import Sample, geo_meta
from tests.cache.conftest import BACKENDS, make_store, samples_equal

pytest.importorskip("terrapipe.io")
pytest.importorskip("terrapipe.chip")


@pytest.mark.parametrize("kind", BACKENDS)
def test_read_raster_chip_second_epoch_equals_first(
    kind: str, sample_world: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import terrapipe.chip
    import terrapipe.io  # noqa: F401

    redis_url = request.getfixturevalue("redis_server").url if kind == "redis" else None
    store = make_store(kind, tmp_path, redis_url)
    paths = [str(sample_world.cog("red", date=d, tile=t)) for d in range(2) for t in range(2)]

    def chips(cached: bool) -> Any:
        pipe = tp.from_items(paths).cache_point().read_raster().chip({"y": 512, "x": 512})
        return pipe.cache(store) if cached else pipe

    reference = list(chips(cached=False))
    pipe = chips(cached=True)
    first, second = list(pipe), list(pipe)
    assert len(first) == len(reference) == 16
    assert pipe.stats.misses == 4
    assert pipe.stats.hits == 4
    assert pipe.stats.corrupt == 0
    for ref, a, b in zip(reference, first, second, strict=True):
        xr.testing.assert_identical(a, ref)
        xr.testing.assert_identical(b, ref)
        assert b.rio.crs == ref.rio.crs
        assert b.rio.transform() == ref.rio.transform()
    if isinstance(store, RedisStore):
        store.clear()


def read_item_window(item: Any) -> Sample:
    """The top-left 256² window of an item's four bands, as a Sample."""
    bands = []
    for key in ("blue", "green", "red", "nir"):
        with rasterio.open(item.assets[key].get_absolute_href()) as src:
            window = Window(0, 0, 256, 256)
            bands.append(src.read(1, window=window))
            transform, crs = src.window_transform(window), src.crs.to_string()
    image = torch.from_numpy(np.stack(bands).astype(np.float32))
    return Sample(
        image=image, meta=geo_meta(crs, transform, (256, 256), time=str(item.datetime), source_ids=[item.id])
    )


def test_stac_items_key_the_cache_and_asset_changes_invalidate(sample_world: Any, tmp_path: Path) -> None:
    pystac = pytest.importorskip("pystac")
    catalog = pystac.Catalog.from_file(str(sample_world.catalog))
    items = sorted(
        (i for i in catalog.get_items(recursive=True) if i.collection_id == sample_world.S2_COLLECTION),
        key=lambda i: i.id,
    )[:3]
    store = make_store("zarr", tmp_path, None)
    pipe = tp.from_items(items).cache_point().map(read_item_window).cache(store)
    first = list(pipe)
    assert samples_equal(list(pipe), first)
    assert pipe.stats.hits == 3
    assert samples_equal(first, [read_item_window(i) for i in items])

    # an asset file that changes (here: only its mtime) is a new entry for its item only
    href = items[1].assets["red"].get_absolute_href()
    red = Path(urllib.request.url2pathname(urllib.parse.urlsplit(href).path))
    stat = red.stat()
    os.utime(red, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    try:
        again = tp.from_items(items).cache_point().map(read_item_window).cache(store)
        assert samples_equal(list(again), first)
        assert (again.stats.hits, again.stats.misses) == (2, 1)
    finally:  # the world is shared by the session: put the file's time back
        os.utime(red, ns=(stat.st_atime_ns, stat.st_mtime_ns))
