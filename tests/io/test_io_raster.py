from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr
from rasterio.windows import Window

import terrapipe as tp
from terrapipe.io import open_raster
from terrapipe.io.raster_array import close_thread_handles, open_handle_count


def test_open_matches_rioxarray_and_rasterio(cog_factory):
    path, data = cog_factory(count=3, descriptions=("red", "green", "nir"))
    da = open_raster(path)
    ref = rioxarray.open_rasterio(path)
    assert da.dims == ("band", "y", "x")
    assert da.shape == data.shape
    assert da.dtype == np.uint16
    np.testing.assert_array_equal(da.band, [1, 2, 3])
    np.testing.assert_allclose(da.x, ref.x)
    np.testing.assert_allclose(da.y, ref.y)
    assert da.rio.crs == ref.rio.crs
    assert da.rio.transform() == ref.rio.transform()
    assert da.rio.nodata == 0
    assert da.attrs["_FillValue"] == 0
    assert da.attrs["long_name"] == ("red", "green", "nir")
    assert "spatial_ref" in da.coords
    assert da.encoding["source"] == str(path)
    assert da.encoding["preferred_chunks"] == {"band": 3, "y": 128, "x": 128}
    assert da.encoding["overviews"] == [2, 4, 8]
    np.testing.assert_array_equal(da.values, data)
    np.testing.assert_array_equal(da.values, ref.values)


def test_window_reads_match_rasterio(cog_factory):
    path, data = cog_factory()
    da = open_raster(path)
    with rasterio.open(path) as src:
        expected = src.read(window=Window(100, 37, 256, 200))
    got = da.isel(y=slice(37, 237), x=slice(100, 356)).values
    np.testing.assert_array_equal(got, expected)
    # steps, reversed slices, integer and array indexing (outer indexing)
    np.testing.assert_array_equal(da[:, ::7, 3::5].values, data[:, ::7, 3::5])
    np.testing.assert_array_equal(da[1, ::-3, 10].values, data[1, ::-3, 10])
    np.testing.assert_array_equal(
        da[[2, 0], [5, 400, 9], 3:9].values, data[[2, 0]][:, [5, 400, 9]][:, :, 3:9]
    )
    assert int(da[2, 511, 639]) == data[2, 511, 639]
    assert da[:, 10:10, :].values.shape == (3, 0, 640)


@pytest.mark.parametrize(
    ("options", "pick"),
    [
        ({}, [0, 1, 2]),
        ({"bands": [3, 1]}, [2, 0]),
        ({"masked": True}, [0, 1, 2]),
        ({"lock": True}, [0, 1, 2]),
    ],
)
def test_plain_windows_equal_the_file_and_the_general_path(cog_factory, options, pick):
    # a window of whole bands is read straight (no xarray indexing adapter): same pixels, same metadata
    path, data = cog_factory(count=3)
    expected = data[pick].astype("float32") if options.get("masked") else data[pick]
    if options.get("masked"):
        expected[expected == 0] = np.nan
    da = open_raster(path, **options)
    backend = da.variable._data.array.array
    windows = [
        (slice(37, 237), slice(100, 356)),
        (slice(0, 2), slice(0, 5)),
        (slice(-50, None), slice(None, 20)),
        (slice(500, 900), slice(630, 700)),  # past the edge: clipped, as numpy does
        (slice(None), slice(None)),
    ]
    for ys, xs in windows:
        got = da.isel(y=ys, x=xs)
        np.testing.assert_array_equal(got.values, expected[:, ys, xs])
        general = backend._read((slice(None), ys, xs))  # the explicit-indexing path
        np.testing.assert_array_equal(got.values, general)
        assert got.dtype == da.dtype
        np.testing.assert_array_equal(got.x, da.x.values[xs])
        np.testing.assert_array_equal(got.y, da.y.values[ys])
        assert got.rio.transform() == da.isel(y=ys, x=xs).rio.transform()
        assert got.attrs == da.attrs
        assert got.encoding == da.encoding


def test_bands_by_index_and_name(cog_factory):
    path, data = cog_factory(descriptions=("red", "green", "nir"))
    np.testing.assert_array_equal(open_raster(path, bands=[3, 1]).values, data[[2, 0]])
    by_name = open_raster(path, bands=["nir", "red"])
    np.testing.assert_array_equal(by_name.band, [3, 1])
    np.testing.assert_array_equal(by_name.values, data[[2, 0]])
    single = open_raster(path, bands=2)
    assert single.shape == (1, 512, 640)
    assert single.attrs["long_name"] == "green"
    assert single.encoding["preferred_chunks"]["band"] == 1


def test_bad_arguments_are_invalid_argument_errors(cog_factory):
    path, _ = cog_factory()
    for bad in ([0], [], [1.5], True):
        with pytest.raises(tp.InvalidArgumentError, match="band"):
            open_raster(path, bands=bad)
    with pytest.raises(tp.InvalidArgumentError, match="overview_level"):
        open_raster(path, overview_level=-1)
    with pytest.raises(tp.InvalidArgumentError, match="expected a path, URL or STAC asset"):
        open_raster(None)  # type: ignore[arg-type]


def test_overview_level(cog_factory):
    path, _ = cog_factory()
    da = open_raster(path, overview_level=0)
    with rasterio.open(path, overview_level=0) as src:
        expected = src.read()
        transform = src.transform
    assert da.shape == (3, 256, 320)
    assert da.rio.transform() == transform
    assert transform.a == 20
    np.testing.assert_array_equal(da.values, expected)
    assert da.encoding["overview_level"] == 0
    with pytest.raises(tp.ReadError, match=r"overview_level=3 asked, but the file has 3 overview"):
        open_raster(path, overview_level=3)


def test_masked_reads_nan_and_keeps_nodata_in_encoding(cog_factory):
    path, data = cog_factory(count=1)
    da = open_raster(path, masked=True)
    assert da.dtype == np.float32
    assert "_FillValue" not in da.attrs
    assert da.encoding["_FillValue"] == 0
    assert da.rio.encoded_nodata == 0
    values = da.values
    assert np.isnan(values[0, :5, :7]).all()
    np.testing.assert_array_equal(values[0, 5:, 7:], data[0, 5:, 7:].astype("float32"))


def test_chunks_follow_storage_blocks(cog_factory):
    pytest.importorskip("dask")
    path, data = cog_factory()
    da = open_raster(path, chunks=True)
    assert da.chunks == ((3,), (128,) * 4, (128,) * 5)
    assert da.encoding["preferred_chunks"] == {"band": 3, "y": 128, "x": 128}
    np.testing.assert_array_equal(da[:, 100:300, 50:60].values, data[:, 100:300, 50:60])
    auto = open_raster(path, chunks="auto")
    assert auto.chunks is not None
    assert auto.chunks[1][0] % 128 == 0 or auto.chunks[1][0] == 512
    explicit = open_raster(path, chunks={"y": 256, "x": 320})
    assert explicit.chunks == ((3,), (256, 256), (320, 320))
    np.testing.assert_array_equal(explicit.values, data)


def test_lazy_open_reads_no_pixels_until_asked(cog_factory, server):
    path, data = cog_factory(count=1, height=1024, width=1024, block=256, compress="none")
    size = path.stat().st_size
    da = open_raster(server.url_for(path), verify=False)
    opened = server.bytes_served(f"/{path.name}")
    assert opened < 0.05 * size  # header only
    window = da.isel(y=slice(300, 400), x=slice(600, 700)).values
    np.testing.assert_array_equal(window[0], data[0, 300:400, 600:700])
    assert server.bytes_served(f"/{path.name}") < 0.2 * size


def test_remote_equals_local(cog_factory, server):
    path, data = cog_factory(descriptions=("a", "b", "c"))
    local = open_raster(path)
    remote = open_raster(server.url_for(path))
    assert remote.encoding["source"] == server.url_for(path)
    xr.testing.assert_identical(remote.drop_encoding(), local.drop_encoding())
    np.testing.assert_array_equal(remote.values, data)
    over_remote = open_raster(server.url_for(path), overview_level=1)
    np.testing.assert_array_equal(over_remote.values, open_raster(path, overview_level=1).values)


def test_remote_window_read_fetches_a_fraction_of_the_file(cog_factory, server):
    path, data = cog_factory(count=2, height=2048, width=2048, block=256, compress="none")
    size = path.stat().st_size
    url = server.url_for(path)
    da = open_raster(url)
    server.reset()
    window = da.isel(y=slice(512, 768), x=slice(1024, 1280)).values
    np.testing.assert_array_equal(window, data[:, 512:768, 1024:1280])
    fetched = server.bytes_served(f"/{path.name}")
    tile_bytes = 2 * 256 * 256 * 2
    assert tile_bytes <= fetched < 0.05 * size, (fetched, size)
    log = server.stats()["log"]
    assert all(entry["status"] == 206 for entry in log if entry["method"] == "GET")


def test_parallel_window_reads_from_one_file(cog_factory, server):
    path, _ = cog_factory(count=2, height=1024, width=1024, block=128)
    rng = np.random.default_rng(1)
    windows = [
        (int(rng.integers(0, 900)), int(rng.integers(0, 900)), int(rng.integers(1, 124))) for _ in range(200)
    ]
    errors: list[str] = []

    def work(da: xr.DataArray, part: list[tuple[int, int, int]]) -> None:
        with rasterio.open(path) as ref:
            for row, col, size in part:
                got = da.isel(y=slice(row, row + size), x=slice(col, col + size)).values
                want = ref.read(window=Window(col, row, size, size))
                if not np.array_equal(got, want):
                    errors.append(f"{da.encoding['source']} window {row},{col},{size}")

    for source in (str(path), server.url_for(path)):
        da = open_raster(source)
        threads = [threading.Thread(target=work, args=(da, windows[i::8])) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors
        assert not any(t.is_alive() for t in threads)


def test_lock_true_serialises_and_reads_right(cog_factory):
    path, data = cog_factory()
    da = open_raster(path, lock=True)
    np.testing.assert_array_equal(da[:, 10:20, 30:40].values, data[:, 10:20, 30:40])


@pytest.mark.parametrize(
    "key",
    [
        (slice(None), slice(10, 20), slice(30, 40)),
        (slice(None), slice(0, 1), slice(0, 1)),
        (slice(None), slice(None), slice(None)),
        (slice(None), slice(-7, None), slice(250, 1000)),
        (slice(None), slice(5, 300, 1), slice(-20, -3)),
        (slice(1, 3), slice(10, 20), slice(30, 40)),
        (slice(None), slice(10, 20, 2), slice(30, 40)),
        (0, slice(10, 20), 7),
    ],
)
def test_every_read_path_gives_the_same_window(cog_factory, key):
    # a plain local read (every band, step-1 rows/columns) takes the short path; a lock, a mask or
    # another key the general one: the same values, dtype and shape as numpy's indexing
    path, data = cog_factory(count=3)
    for da in (open_raster(path), open_raster(path, lock=True)):
        got = da[key].values
        assert got.dtype == data.dtype
        assert got.shape == data[key].shape
        np.testing.assert_array_equal(got, data[key])
    masked = open_raster(path, masked=True)[key].values
    np.testing.assert_array_equal(masked, np.where(data[key] == 0, np.nan, data[key]))


def test_pickle_carries_no_handle_and_reopens(cog_factory):
    path, data = cog_factory()
    da = open_raster(path)
    _ = da[:, :4, :4].values
    blob = pickle.dumps(da)
    assert len(blob) < 200_000  # coordinates and metadata, no pixels, no dataset
    close_thread_handles()
    assert open_handle_count() == 0
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back[:, 100:110, 5:9].values, data[:, 100:110, 5:9])
    assert open_handle_count() == 1


def test_stage_yields_one_array_per_path(cog_factory):
    (a, _), (b, db_) = cog_factory(count=1), cog_factory(count=2)
    pipe = tp.from_items([a, str(b)]).read_raster(bands=[1])
    arrays = list(pipe)
    assert [x.shape for x in arrays] == [(1, 512, 640), (1, 512, 640)]
    np.testing.assert_array_equal(arrays[1].values, db_[:1])
    assert len(pipe) == 2
    assert pipe.stats.elements == 2


def test_stage_accepts_stac_assets(cog_factory):
    pystac = pytest.importorskip("pystac")
    path, data = cog_factory(count=1)
    asset = pystac.Asset(href=str(path), media_type=pystac.MediaType.COG)
    (da,) = list(tp.from_items([asset]).read_raster())
    np.testing.assert_array_equal(da.values, data)
