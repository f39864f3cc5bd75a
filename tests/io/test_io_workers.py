"""Pipes that opened files go to DataLoader workers (fork and spawn) and read right."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from torch.utils.data import DataLoader

import terrapipe as tp
from terrapipe.io import open_raster, open_zarr


def window_sum(da):
    """Top-level (picklable) reader used in the workers."""
    return int(da.isel(y=slice(64, 192), x=slice(32, 160)).values.astype(np.int64).sum())


def _expected(data):
    return int(data[:, 64:192, 32:160].astype(np.int64).sum())


def measure(item):
    """Top-level (picklable) reader run in the workers: open paths, read arrays."""
    if isinstance(item, str):
        item = open_raster(item)
    if "time" in item.dims:  # a Zarr variable
        return round(float(item.isel(time=1).values.mean()), 4)
    return window_sum(item)


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_pipes_and_opened_arrays_in_dataloader_workers(context, cog_factory, zarr_factory, server):
    made = [cog_factory(count=2, seed=i) for i in range(4)]
    zpath, zref = zarr_factory()
    paths = [str(made[0][0]), server.url_for(made[1][0])]
    # Opened (and read) here, before the workers start: handles and connections exist.
    arrays = [open_raster(made[2][0]), open_raster(server.url_for(made[3][0]))]
    cube = open_zarr(server.url_for(zpath), variables="t2m")
    for da in [*arrays, cube]:
        _ = da[(slice(0, 1),) * da.ndim].values
    pickle.dumps([*arrays, cube])  # no rasterio dataset, no socket inside

    # A pipe whose reader stage has opened files in this process (first pass here),
    # chained with arrays opened here: all of it goes to the workers.
    pipe = (
        tp.from_items(paths).read_raster().map(window_sum).concat(tp.from_items([*arrays, cube]).map(measure))
    )
    want = [_expected(d) for _, d in made] + [round(float(zref.t2m.isel(time=1).values.mean()), 4)]
    assert sorted(pipe) == sorted(want)
    loader = DataLoader(pipe, batch_size=None, num_workers=2, multiprocessing_context=context, timeout=120)
    assert sorted(loader) == sorted(want)


def open_and_read_windows(url):
    """Open in the worker and read 16 windows: many range requests on fresh files."""
    da = open_raster(url)
    return sum(
        int(da.isel(y=slice(k * 60, k * 60 + 50), x=slice(k * 70, k * 70 + 50)).values.astype(np.int64).sum())
        for k in range(8)
    )


def test_forked_workers_do_not_share_the_parents_http_connection(cog_factory, server, monkeypatch):
    # Regression: the parent's keep-alive GDAL connection was inherited by both workers,
    # which then read each other's answers ("got 103253 bytes, expected 116543").
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "5")
    first, _ = cog_factory(count=1, seed=20, height=1024, width=1024, block=256, compress="none")
    made = [
        cog_factory(count=1, seed=21 + i, height=1024, width=1024, block=256, compress="none")
        for i in range(4)
    ]
    _ = open_raster(server.url_for(first))[:, :10, :10].values  # a live connection in this thread
    urls = [server.url_for(p) for p, _ in made]
    loader = DataLoader(
        tp.from_items(urls).map(open_and_read_windows),
        batch_size=None,
        num_workers=2,
        multiprocessing_context="fork",
        timeout=120,
    )
    expected = [open_and_read_windows(str(p)) for p, _ in made]
    assert sorted(loader) == sorted(expected)


def test_fork_hook_clears_gdal_connections():
    from terrapipe.io.gdal_fork import clear_gdal_http_connections, loaded_gdal_libraries

    if not loaded_gdal_libraries():
        pytest.skip("no /proc/self/maps here")
    assert clear_gdal_http_connections() >= 1
