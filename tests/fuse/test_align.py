"""align_to: equals rasterio.warp.reproject of the same window, reads only that window, bad input."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.warp
import xarray as xr
from affine import Affine
from rasterio.enums import Resampling

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError, ReadError, SkippedElementWarning
from terrapipe.fuse import align_array, grid_of, reference_window
from terrapipe.fuse.align import kernel_margin
from tests.fuse.conftest import make_chip, smooth_dem, write_raster
from tests.servers.http_range import start_range_server

RESAMPLINGS = ["nearest", "bilinear", "cubic", "average", "lanczos"]


def _reproject(
    source: np.ndarray, src_transform: Affine, src_crs: str, chip: xr.DataArray, how: str
) -> np.ndarray:
    grid = grid_of(chip)
    out = np.full(grid.shape.yx, -9999, np.float32)
    rasterio.warp.reproject(
        source,
        out,
        src_transform=src_transform,
        src_crs=src_crs,
        src_nodata=-9999,
        dst_transform=grid.affine,
        dst_crs=str(grid.crs),
        dst_nodata=-9999,
        resampling=Resampling[how],
    )
    return out


@pytest.mark.parametrize("how", RESAMPLINGS)
def test_equals_reproject_of_the_same_window(dem_4326: Path, utm_chip: xr.DataArray, how: str) -> None:
    ds = next(iter(tp.from_items([utm_chip]).align_to(dem_4326, name="dem", resampling=how)))
    ref_grid = grid_of(tp.open_raster(dem_4326))
    rows, cols = reference_window(ref_grid, grid_of(utm_chip), Resampling[how])
    with rasterio.open(dem_4326) as src:
        window = rasterio.windows.Window.from_slices(rows, cols)
        pixels = src.read(1, window=window)
        window_transform = src.window_transform(window)
        whole = src.read(1)
        whole_transform = src.transform
    expected = _reproject(pixels, window_transform, "EPSG:4326", utm_chip, how)
    np.testing.assert_array_equal(ds["dem"].values, expected)
    # ... and reading the window only loses nothing against reprojecting the whole file
    full = _reproject(whole, whole_transform, "EPSG:4326", utm_chip, how)
    np.testing.assert_allclose(ds["dem"].values, full, rtol=0, atol=1e-3)


def test_window_covers_the_chip_footprint(dem_4326: Path, utm_chip: xr.DataArray) -> None:
    grid = grid_of(utm_chip)
    left, bottom, right, top = rasterio.warp.transform_bounds(
        "EPSG:32631", "EPSG:4326", *grid.boundingbox, densify_pts=21
    )
    with rasterio.open(dem_4326) as src:
        need = rasterio.windows.from_bounds(left, bottom, right, top, transform=src.transform)
    rows, cols = reference_window(grid_of(tp.open_raster(dem_4326)), grid, Resampling.bilinear)
    assert rows.start <= need.row_off
    assert rows.stop >= need.row_off + need.height
    assert cols.start <= need.col_off
    assert cols.stop >= need.col_off + need.width
    # the margin stays small: a few pixels around the footprint
    assert rows.stop - rows.start <= need.height + 2 * 3 + 2


def test_adds_a_2d_variable_with_the_chip_grid(dem_4326: Path, utm_chip: xr.DataArray) -> None:
    stage = tp.from_items([utm_chip]).align_to(dem_4326)
    ds = next(iter(stage))
    assert isinstance(ds, xr.Dataset)
    assert set(ds.data_vars) == {"image", "dem"}
    assert ds["dem"].dims == ("y", "x")
    assert ds["dem"].dtype == np.float32
    np.testing.assert_array_equal(ds["image"].values, utm_chip.values)
    assert ds.rio.crs.to_epsg() == 32631
    assert ds["dem"].attrs["_FillValue"] == -9999
    assert ds["dem"].encoding["source"] == str(dem_4326)
    assert stage.stats.elements == 1
    assert 0 < stage.stats.bytes_read < 512 * 768 * 4 / 4


def test_chip_outside_gives_nodata_not_an_error(dem_4326: Path) -> None:
    far = make_chip("EPSG:32631", Affine(10, 0, 300000, 0, -10, 4000000), (16, 16))
    stage = tp.from_items([far]).align_to(dem_4326, name="dem")
    ds = next(iter(stage))
    assert (ds["dem"].values == -9999).all()
    assert stage.stats.bytes_read == 0


def test_chip_half_outside(dem_4326: Path) -> None:
    with rasterio.open(dem_4326) as src:
        left, _, _, top = src.bounds
    # a chip in EPSG:4326 straddling the DEM's west edge
    chip = make_chip("EPSG:4326", Affine(1 / 7200, 0, left - 10 / 7200, 0, -1 / 7200, top - 0.01), (20, 20))
    ds = next(iter(tp.from_items([chip]).align_to(dem_4326, name="dem", resampling="nearest")))
    values = ds["dem"].values
    assert (values[:, :10] == -9999).all()
    assert (values[:, 11:] != -9999).all()


def test_time_chips_and_datasets_keep_their_variables(dem_4326: Path, utm_chip: xr.DataArray) -> None:
    stack = xr.concat([utm_chip, utm_chip + 1], dim="time").assign_coords(
        time=np.array(["2024-04-15", "2024-06-19"], dtype="datetime64[ns]")
    )
    ds = next(iter(tp.from_items([stack.to_dataset(name="s2")]).align_to(dem_4326, name="elevation")))
    assert ds["s2"].dims == ("time", "band", "y", "x")
    assert ds["elevation"].dims == ("y", "x")


def test_multiband_reference_gets_its_own_band_dim(tmp_path: Path, utm_chip: xr.DataArray) -> None:
    data = np.stack([smooth_dem(64, 64)[0], smooth_dem(64, 64, seed=1)[0]])
    path = write_raster(
        tmp_path / "two.tif",
        data,
        crs="EPSG:32631",
        transform=Affine(20, 0, 734800, 0, -20, 5073200),
        block=None,
    )
    ds = next(iter(tp.from_items([utm_chip]).align_to(path, name="aux")))
    assert ds["aux"].dims == ("aux_band", "y", "x")
    assert ds["aux"].shape == (2, 64, 64)


def test_dataarray_reference_and_align_array(dem_4326: Path, utm_chip: xr.DataArray) -> None:
    reference = tp.open_raster(dem_4326).rename("height")
    in_memory = reference.copy(data=reference.values)
    a = next(iter(tp.from_items([utm_chip]).align_to(in_memory)))
    b = next(iter(tp.from_items([utm_chip]).align_to(dem_4326, name="height")))
    np.testing.assert_array_equal(a["height"].values, b["height"].values)
    single = align_array(dem_4326, utm_chip)
    assert single.dims == ("band", "y", "x")
    np.testing.assert_array_equal(single.values[0], b["height"].values)
    np.testing.assert_array_equal(single.x.values, utm_chip.x.values)


def test_only_the_window_is_read_over_http(tmp_path: Path) -> None:
    root = tmp_path / "served"
    root.mkdir()
    data = smooth_dem(2048, 2048)
    name = f"big-dem-{uuid.uuid4().hex[:8]}.tif"
    transform = Affine(1 / 3600, 0, 5.5, 0, -1 / 3600, 46.2)
    path = write_raster(root / name, data, crs="EPSG:4326", transform=transform, nodata=-9999, compress=None)
    size = path.stat().st_size
    server = start_range_server(root)
    try:
        url = server.url_for(name)
        chip = make_chip("EPSG:32631", Affine(10, 0, 735000, 0, -10, 5073000), (64, 64))
        server.reset()
        ds = next(iter(tp.from_items([chip]).align_to(url, name="dem")))
        served = server.bytes_served()
        local = next(iter(tp.from_items([chip]).align_to(path, name="dem")))
    finally:
        server.stop()
    np.testing.assert_array_equal(ds["dem"].values, local["dem"].values)
    # the chip's window touches a handful of the 64 tiles (each 256 KiB): far less than the 16 MiB file
    assert served < size / 8, (served, size)


def test_kernel_margin_grows_when_shrinking() -> None:
    assert kernel_margin(Resampling.nearest, 0.5) == 2
    assert kernel_margin(Resampling.lanczos, 1.0) == 4
    assert kernel_margin(Resampling.average, 10.0) == 11


def test_bad_arguments(dem_4326: Path, utm_chip: xr.DataArray) -> None:
    with pytest.raises(InvalidArgumentError, match="resampling must be one of"):
        tp.from_items([utm_chip]).align_to(dem_4326, resampling="blurry")
    with pytest.raises(InvalidArgumentError, match="align_to name must be a non-empty str"):
        tp.from_items([utm_chip]).align_to(dem_4326, name="")
    with pytest.raises(ReadError, match="cannot open raster"):
        tp.from_items([utm_chip]).align_to(dem_4326.parent / "missing.tif")
    nameless = xr.DataArray(
        np.zeros((4, 4)), dims=("y", "x"), coords={"y": [3.5, 2.5, 1.5, 0.5], "x": [0.5, 1.5, 2.5, 3.5]}
    )
    with pytest.raises(InvalidArgumentError, match="name="):
        tp.from_items([utm_chip]).align_to(nameless.rio.write_crs("EPSG:32631"))
    with pytest.raises(InvalidArgumentError, match="has no CRS"):
        tp.from_items([utm_chip]).align_to(nameless, name="x")


def test_chip_without_crs_and_name_clash(dem_4326: Path, utm_chip: xr.DataArray) -> None:
    no_crs = utm_chip.drop_vars("spatial_ref")
    with pytest.raises(InvalidArgumentError, match="has no CRS"):
        next(iter(tp.from_items([no_crs]).align_to(dem_4326)))
    with pytest.raises(InvalidArgumentError, match="already has a variable 'image'"):
        next(iter(tp.from_items([utm_chip]).align_to(dem_4326, name="image")))
    with pytest.raises(InvalidArgumentError, match="xarray chips"):
        next(iter(tp.from_items([np.zeros((2, 2))]).align_to(dem_4326)))


def test_unreadable_window_follows_on_error(tmp_path: Path, utm_chip: xr.DataArray, dem_4326: Path) -> None:
    path = tmp_path / "dem.tif"
    shutil.copy(dem_4326, path)
    skip = tp.from_items([utm_chip, utm_chip]).align_to(path, on_error="skip")
    warn = tp.from_items([utm_chip]).align_to(path, on_error="warn")
    raising = tp.from_items([utm_chip]).align_to(path)
    # corrupt the tiles after opening (the header stays readable)
    with open(path, "r+b") as handle:
        handle.seek(4096)
        handle.write(b"\xff" * (path.stat().st_size - 8192))
    from terrapipe.io import close_thread_handles

    close_thread_handles()
    assert list(skip) == []
    assert skip.stats.skipped == 2
    with pytest.raises(TypeError, match="length is unknown"):
        len(skip)
    with pytest.warns(SkippedElementWarning):
        assert list(warn) == []
    with pytest.raises(ReadError):
        list(raising)
