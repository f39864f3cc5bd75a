"""Rasters other projects ship, read through terrapipe, equal rasterio's read (#17)."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

import terrapipe as tp
from tests.conformance.files.corpus import DATA, RASTERS, UNSUPPORTED_RASTERS

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def _reference(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rasterio.open(path, **kwargs)


def _windows(height, width):
    """A top-left window, one across block edges, the bottom-right corner, a single pixel."""
    return [
        Window(0, 0, min(width, 7), min(height, 5)),
        Window(width // 3, height // 3, max(1, width // 2), max(1, height // 2)),
        Window(max(0, width - 9), max(0, height - 4), min(width, 9), min(height, 4)),
        Window(width - 1, height - 1, 1, 1),
    ]


def _same(a, b):
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    assert a.shape == b.shape
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", RASTERS)
def test_raster_equals_rasterio(name):
    path = DATA / name
    da = tp.open_raster(path)
    with _reference(path) as ref:
        assert da.shape == (ref.count, ref.height, ref.width)
        assert da.dtype == np.dtype(ref.dtypes[0])
        assert da.rio.crs == ref.crs
        assert da.rio.transform() == ref.transform
        assert da.rio.nodata == ref.nodata or (np.isnan(da.rio.nodata) and np.isnan(ref.nodata))
        assert da.encoding["overviews"] == ref.overviews(1)
        assert da.attrs.get("scale_factor", 1.0) == ref.scales[0]
        assert da.attrs.get("add_offset", 0.0) == ref.offsets[0]
        # pixel centres
        assert da.x.values[0] == pytest.approx((ref.transform * (0.5, 0.5))[0])
        assert da.y.values[-1] == pytest.approx((ref.transform * (0.5, ref.height - 0.5))[1])
        _same(da.values, ref.read())
        for window in _windows(ref.height, ref.width):
            rows, cols = window.toslices()
            _same(da.isel(y=rows, x=cols).values, ref.read(window=window))


@pytest.mark.parametrize("name", RASTERS)
def test_masked_read_equals_rasterio_mask(name):
    path = DATA / name
    da = tp.open_raster(path, masked=True)
    with _reference(path) as ref:
        expected = np.ma.filled(ref.read(masked=True).astype(da.dtype), np.nan)
        np.testing.assert_array_equal(da.values, expected)
        window = _windows(ref.height, ref.width)[1]
        rows, cols = window.toslices()
        part = np.ma.filled(ref.read(window=window, masked=True).astype(da.dtype), np.nan)
        np.testing.assert_array_equal(da.isel(y=rows, x=cols).values, part)


@pytest.mark.parametrize("name", [n for n in RASTERS if n.endswith(".tif")])
def test_band_selection_equals_rasterio(name):
    path = DATA / name
    with _reference(path) as ref:
        indexes = list(range(ref.count, 0, -1))  # every band, last first
        got = tp.open_raster(path, bands=indexes)
        _same(got.values, ref.read(indexes))
        assert got.band.values.tolist() == indexes


@pytest.mark.parametrize(
    "name", ["rasterio/cogeo.tif", "rasterio/goes.tif", "rasterio/red.tif", "rioxarray/cog.tif"]
)
def test_overviews_equal_rasterio(name):
    path = DATA / name
    with _reference(path) as full:
        levels = len(full.overviews(1))
    assert levels > 0
    for level in range(levels):
        da = tp.open_raster(path, overview_level=level)
        with _reference(path, overview_level=level) as ref:
            assert da.shape == (ref.count, ref.height, ref.width)
            assert da.rio.transform() == ref.transform
            _same(da.values, ref.read())


@pytest.mark.parametrize("name", ["rasterio/goes.tif", "rasterio/RGBA.uint16.tif"])
def test_internal_mask_and_alpha_are_applied(name):
    # goes.tif: an internal mask band (cogeo.tif has one too, all valid); RGBA: an alpha band,
    # which masks the colour bands, not itself (as rasterio does)
    path = DATA / name
    with _reference(path) as ref:
        assert rasterio.enums.MaskFlags.per_dataset in ref.mask_flag_enums[0]
        invalid = ref.read_masks() == 0
    assert invalid.any()
    assert not invalid.all()
    masked = tp.open_raster(path, masked=True).values
    np.testing.assert_array_equal(np.isnan(masked), invalid)


def _with_its_sources(name, folder):
    """The file ``name``, beside the VRT sources GDAL's test data names but does not ship (a missing
    source is an error of its own, raised first: tests/storage/test_vrt_sources.py)."""
    if name != "gdal/gcps.vrt":
        return DATA / name
    shutil.copy(DATA / name, folder / "gcps.vrt")
    with rasterio.open(folder / "utmsmall.tif", "w", driver="GTiff", width=100, height=100, count=1,
                       dtype="uint8") as dst:  # fmt: skip
        dst.write(np.zeros((1, 100, 100), "uint8"))
    return folder / "gcps.vrt"


@pytest.mark.parametrize(("name", "message"), UNSUPPORTED_RASTERS)
def test_unsupported_rasters_are_named_errors(name, message, tmp_path):
    path = _with_its_sources(name, tmp_path)
    with pytest.raises(tp.ReadError, match=rf"{name.rsplit('/', 1)[1]}'.*{message}"):
        tp.open_raster(path)
    pipe = tp.from_items([str(path)]).read_raster(on_error="skip")
    assert list(pipe) == []
    assert pipe.stats.skipped == 1


def test_scale_and_offset_are_kept_per_band(tmp_path):
    # None of the real files carries scale/offset tags; this one is written here with rasterio.
    path = tmp_path / "scaled.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=4, height=3, count=2, dtype="int16", crs="EPSG:32631",
        transform=rasterio.transform.from_origin(0, 30, 10, 10),
    ) as dst:  # fmt: skip
        dst.write(np.arange(24, dtype="int16").reshape(2, 3, 4))
        dst.scales = (0.5, 0.25)
        dst.offsets = (10.0, -1.0)
    both = tp.open_raster(path)
    assert both.attrs["scales"] == (0.5, 0.25)
    assert both.attrs["offsets"] == (10.0, -1.0)
    assert "scale_factor" not in both.attrs  # one value would mis-scale the other band
    second = tp.open_raster(path, bands=[2])
    assert second.attrs["scale_factor"] == 0.25
    assert second.attrs["add_offset"] == -1.0
    with rasterio.open(path) as ref:
        _same(both.values, ref.read())


@pytest.mark.parametrize("name", RASTERS)
def test_read_raster_stage_with_dask_chunks_equals_rasterio(name):
    path = DATA / name
    (da,) = list(tp.from_items([str(path)]).read_raster(chunks=True))
    with _reference(path) as ref:
        assert da.chunks is not None
        _same(da.values, ref.read())
        window = _windows(ref.height, ref.width)[1]
        rows, cols = window.toslices()
        _same(da.isel(y=rows, x=cols).values, ref.read(window=window))
