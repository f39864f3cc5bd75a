"""The direct Zarr chunk decoder against zarr-python's own reads."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.io.zarr_direct import direct_zarr

zarr = pytest.importorskip("zarr")
numcodecs = pytest.importorskip("numcodecs")

COMPRESSORS = {
    "zstd": (zarr.codecs.ZstdCodec(), numcodecs.Zstd()),
    "blosc": (zarr.codecs.BloscCodec(), numcodecs.Blosc()),
    "gzip": (zarr.codecs.GzipCodec(), numcodecs.GZip()),
    "none": (None, None),
}


def write(path, fmt: int, compressor: str, dtype: str, *, endian: str = "little", fill=7):
    shape, chunks = (3, 11, 13), (2, 4, 5)
    v3_codec, v2_codec = COMPRESSORS[compressor]
    if fmt == 3:
        serializer = zarr.codecs.BytesCodec(endian=endian if np.dtype(dtype).itemsize > 1 else None)
        array = zarr.create_array(
            store=str(path),
            name="v",
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            fill_value=fill,
            serializer=serializer,
            compressors=None if v3_codec is None else v3_codec,
            dimension_names=("t", "y", "x"),
            zarr_format=3,
        )
    else:
        stored = (
            np.dtype(dtype).newbyteorder(">" if endian == "big" else "<")
            if np.dtype(dtype).itemsize > 1
            else dtype
        )
        array = zarr.create_array(
            store=str(path),
            name="v",
            shape=shape,
            chunks=chunks,
            dtype=stored,
            fill_value=fill,
            compressors=v2_codec,
            zarr_format=2,
            attributes={"_ARRAY_DIMENSIONS": ["t", "y", "x"]},
        )
    data = (np.arange(np.prod(shape)) % 120).reshape(shape).astype(dtype)
    array[:, :8, :] = data[:, :8, :]  # rows 8.. of every chunk row 2 stay unwritten: missing chunks
    expected = data.copy()
    expected[:, 8:, :] = fill
    return expected


@pytest.mark.parametrize(
    ("fmt", "compressor", "dtype", "endian"),
    [
        (3, "zstd", "uint16", "little"),
        (3, "blosc", "float32", "little"),
        (3, "gzip", "int8", "little"),
        (3, "none", "float64", "big"),
        (2, "zstd", "int32", "little"),
        (2, "blosc", "uint16", "little"),
        (2, "none", "float32", "little"),
    ],
)
def test_direct_reads_match_zarr(tmp_path, fmt, compressor, dtype, endian):
    expected = write(tmp_path / "a.zarr", fmt, compressor, dtype, endian=endian)
    ds = xr.open_zarr(tmp_path / "a.zarr", chunks=None, consolidated=False, mask_and_scale=False)
    direct = direct_zarr(ds.v.variable)
    assert direct is not None
    rng = np.random.default_rng(0)
    for _ in range(40):
        lo = [int(rng.integers(0, n)) for n in expected.shape]
        hi = [int(rng.integers(a + 1, n + 1)) for a, n in zip(lo, expected.shape, strict=True)]
        key = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        got = direct.read(key)
        assert got.dtype == ds.v.dtype
        np.testing.assert_array_equal(got, expected[key])
        np.testing.assert_array_equal(got, ds.v.variable[key].values)
        buffer = np.full(direct.shape_of(key), 99, dtype=direct.dtype)  # as the reader allocates it
        assert direct.read(key, buffer) is buffer
        np.testing.assert_array_equal(buffer, expected[key])


def test_big_endian_v2_is_left_to_xarray_and_still_right(tmp_path):
    expected = write(tmp_path / "a.zarr", 2, "zstd", "int32", endian="big")
    cube = xr.open_zarr(tmp_path / "a.zarr", chunks=None, consolidated=False, mask_and_scale=False).v
    assert direct_zarr(cube.variable) is None  # xarray converts the byte order: keep its path
    chip = next(iter(tp.from_items([cube]).chip({"y": 4, "x": 5})))
    np.testing.assert_array_equal(chip.values, expected[:, :4, :5])


def test_lazily_sliced_variables_keep_their_offsets(tmp_path):
    expected = write(tmp_path / "a.zarr", 3, "zstd", "uint16")
    ds = xr.open_zarr(tmp_path / "a.zarr", chunks=None, consolidated=False)
    sliced = ds.v.isel(y=slice(3, 10), x=slice(2, None))
    direct = direct_zarr(sliced.variable)
    assert direct is not None
    np.testing.assert_array_equal(
        direct.read((slice(0, 3), slice(1, 6), slice(0, 11))), expected[:, 4:9, 2:13]
    )
    chips = list(tp.from_items([sliced]).chip({"y": 3, "x": 4}))
    windows = {expected[:, 3 + y : 6 + y, 2 + x : 6 + x].tobytes() for y in (0, 3) for x in (0, 4)}
    assert len(chips) == 4
    assert {chip.values.tobytes() for chip in chips} == windows


def test_unsupported_layouts_use_the_normal_path(tmp_path):
    # CF masking: xarray decodes values, so the direct path must step aside
    ds = xr.Dataset({"v": (("y", "x"), np.arange(20.0).reshape(4, 5))})
    ds.v.encoding["_FillValue"] = 3.0
    ds.to_zarr(tmp_path / "cf.zarr", consolidated=False)
    opened = xr.open_zarr(tmp_path / "cf.zarr", chunks=None, consolidated=False)
    assert direct_zarr(opened.v.variable) is None
    assert np.isnan(next(iter(tp.from_items([opened.v]).chip({"y": 4, "x": 5}))).values[0, 3])
    # sharding
    sharded = zarr.create_array(
        store=str(tmp_path / "s.zarr"),
        name="v",
        shape=(8, 8),
        chunks=(2, 2),
        shards=(4, 4),
        dtype="int16",
        dimension_names=("y", "x"),
    )
    sharded[:] = 1
    opened_sharded = xr.open_zarr(tmp_path / "s.zarr", chunks=None, consolidated=False).v
    assert direct_zarr(opened_sharded.variable) is None
    assert int(next(iter(tp.from_items([opened_sharded]).chip(4))).sum()) == 16
    # dask and in-memory variables
    assert direct_zarr(opened.v.chunk().variable) is None
    assert direct_zarr(xr.Variable("x", np.zeros(3))) is None


def test_chip_decodes_each_chunk_once_through_the_direct_path(tmp_path):
    data = np.arange(2 * 32 * 32, dtype="uint16").reshape(2, 32, 32)
    xr.Dataset({"v": (("band", "y", "x"), data)}).to_zarr(
        tmp_path / "c.zarr", encoding={"v": {"chunks": (1, 8, 8)}}, consolidated=False
    )
    cube = xr.open_zarr(tmp_path / "c.zarr", chunks=None, consolidated=False).v
    pipe = tp.from_items([cube]).chip({"y": 4, "x": 4}, overlap=1)
    chips = list(pipe)
    assert len(chips) == 10 * 10
    assert direct_zarr(cube.variable) is not None
    assert pipe.counters.blocks_read == 16  # 4 x 4 blocks of 8 x 8 pixels, all bands
    np.testing.assert_array_equal(chips[0].values, data[:, :4, :4])
