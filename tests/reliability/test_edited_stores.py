"""Zarr stores whose metadata was edited after writing: decoded data must match what the metadata declares.

Every path that reads Zarr chunks (the chipper's direct decoder through
``tp.open_zarr``, ``xr.open_zarr(chunks=None)`` and dask-backed
``xr.open_zarr``; ``read_zarr``/``tp.open_zarr`` values through
zarr-python) must raise a ``ReadError`` naming the store, the variable and
the chunk key, never return values, when a chunk does not decode to the bytes
its metadata implies. Good stores (sharded, missing chunks) keep reading the
values zarr-python reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.core.errors import ReadError

zarr = pytest.importorskip("zarr")
numcodecs = pytest.importorskip("numcodecs")

SHAPE, CHUNKS = (1, 40, 40), (1, 32, 32)  # edge chunks are partial: read without decoding in place
WINDOW = {"y": 20, "x": 20}


def write(path: Path, fmt: int, dtype: str, compressor: str, *, shards: bool = False) -> np.ndarray:
    data = (np.arange(np.prod(SHAPE)).reshape(SHAPE) % 97).astype(dtype)
    if fmt == 3:
        codecs = {
            "none": None,
            "zstd": zarr.codecs.ZstdCodec(),
            "blosc": zarr.codecs.BloscCodec(),
            "gzip": zarr.codecs.GzipCodec(),
        }
    else:
        codecs = {
            "none": None,
            "zstd": numcodecs.Zstd(),
            "blosc": numcodecs.Blosc(),
            "zlib": numcodecs.Zlib(),
        }
    array = zarr.create_array(
        store=str(path),
        name="v",
        shape=SHAPE,
        chunks=CHUNKS,
        shards=(1, 64, 64) if shards else None,
        dtype=dtype,
        fill_value=0,
        compressors=codecs[compressor],
        zarr_format=fmt,
        **(
            {"dimension_names": ("band", "y", "x")}
            if fmt == 3
            else {"attributes": {"_ARRAY_DIMENSIONS": ["band", "y", "x"]}}
        ),
    )
    array[...] = data
    return data


def edit(path: Path, fmt: int, **changes: object) -> None:
    meta_path = path / "v" / ("zarr.json" if fmt == 3 else ".zarray")
    meta = json.loads(meta_path.read_text())
    for field, value in changes.items():
        if field == "dtype":
            meta["data_type" if fmt == 3 else "dtype"] = value
        elif field == "chunks" and fmt == 3:
            sharding = [c for c in meta["codecs"] if c["name"] == "sharding_indexed"]
            target = sharding[0]["configuration"] if sharding else meta["chunk_grid"]["configuration"]
            target["chunk_shape"] = value
        else:
            meta[field] = value
    meta_path.write_text(json.dumps(meta))


READERS = {
    "tp.open_zarr -> chip (direct decoder)": lambda p: list(
        tp.from_items([tp.open_zarr(p, variables="v")]).chip(WINDOW)
    ),
    "xr.open_zarr(chunks=None) -> chip": lambda p: list(
        tp.from_items([xr.open_zarr(p, chunks=None, consolidated=False).v]).chip(WINDOW)
    ),
    "xr.open_zarr (dask) -> chip": lambda p: list(
        tp.from_items([xr.open_zarr(p, consolidated=False).v]).chip(WINDOW)
    ),
    "read_zarr -> chip": lambda p: list(tp.from_items([p]).read_zarr(variables="v").chip(WINDOW)),
    "tp.open_zarr values": lambda p: tp.open_zarr(p, variables="v").values,
    "tp.open_zarr(chunks={}) values": lambda p: tp.open_zarr(p, variables="v", chunks={}).values,
    "tp.open_zarr isel values": lambda p: tp.open_zarr(p, variables="v").isel(y=slice(30, 40)).values,
}


def assert_every_reader_refuses(path: Path, key_part: str, *, sizes: bool = True) -> None:
    for name, read in READERS.items():
        with pytest.raises(ReadError) as info:
            read(str(path))
        text = str(info.value)
        assert str(path) in text, (name, text)
        assert "'v'" in text, (name, text)
        assert key_part in text, (name, text)
        if sizes:
            assert "bytes" in text, (name, text)
            assert "metadata" in text, (name, text)


@pytest.mark.parametrize(
    ("fmt", "compressor", "dtype", "edited"),
    [
        (3, "zstd", "float32", "float64"),  # the reported case: ~1e17 garbage before
        (3, "zstd", "float64", "float32"),  # chunk larger than declared: a prefix was read
        (3, "blosc", "int16", "int32"),
        (3, "gzip", "uint16", "uint8"),
        (3, "none", "uint8", "uint16"),
        (2, "zstd", "float32", "<f8"),
        (2, "blosc", "<u2", "|u1"),
        (2, "zlib", "int16", "<i4"),
        (2, "none", "float64", "<f4"),
    ],
)
def test_edited_data_type_is_a_read_error(tmp_path, fmt, compressor, dtype, edited):
    path = tmp_path / "cube.zarr"
    write(path, fmt, dtype, compressor)
    edit(path, fmt, dtype=edited)
    assert_every_reader_refuses(path, "c/0/" if fmt == 3 else "0.")


@pytest.mark.parametrize(
    ("fmt", "compressor", "chunks"),
    [(3, "zstd", [1, 16, 16]), (3, "blosc", [1, 64, 64]), (2, "zstd", [1, 64, 64]), (2, "none", [1, 16, 16])],
)
def test_edited_chunk_shape_is_a_read_error(tmp_path, fmt, compressor, chunks):
    path = tmp_path / "cube.zarr"
    write(path, fmt, "float32", compressor)
    edit(path, fmt, chunks=chunks)
    assert_every_reader_refuses(path, "c/0/" if fmt == 3 else "0.")


def test_edited_sharded_store_is_a_read_error(tmp_path):
    path = tmp_path / "cube.zarr"
    write(path, 3, "float32", "zstd", shards=True)
    edit(path, 3, dtype="float64")
    assert_every_reader_refuses(path, "c/0/0/0", sizes=False)


def test_corrupt_chunk_bytes_name_the_chunk(tmp_path):
    path = tmp_path / "cube.zarr"
    write(path, 3, "float32", "zstd")
    chunk = path / "v" / "c" / "0" / "1" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-7])  # a truncated frame
    assert_every_reader_refuses(path, "c/0/1/0", sizes=False)


def _reference(path: Path) -> np.ndarray:
    """zarr-python's read, with xarray's CF decoding (a v2 fill value reads as NaN) and nothing of ours."""
    ds = xr.open_dataset(path, engine="zarr", chunks=None, consolidated=False)
    return np.asarray(ds.v.values)


def _bytes(values: np.ndarray) -> bytes:
    return np.nan_to_num(np.ascontiguousarray(values), nan=-1.0).tobytes()


def _chips_of(array: np.ndarray) -> list[np.ndarray]:
    da = xr.DataArray(array, dims=("band", "y", "x"))
    return [c.values for c in tp.from_items([da]).chip(WINDOW)]


@pytest.mark.parametrize(
    ("fmt", "compressor", "shards", "edits"),
    [
        (3, "zstd", True, {}),
        (3, "blosc", False, {}),
        (2, "zstd", False, {}),
        (3, "zstd", False, {"shape": [1, 80, 80]}),  # a larger shape: new chunks read as fill
        (3, "none", False, {"shape": [1, 20, 30]}),  # a smaller one: fewer values, all right
        (3, "zstd", False, {"chunks": [1, 16, 64]}),  # same element count: the bytes cannot tell
    ],
)
def test_good_and_undetectable_stores_read_as_zarr_python_does(tmp_path, fmt, compressor, shards, edits):
    path = tmp_path / "cube.zarr"
    write(path, fmt, "float32", compressor, shards=shards)
    (path / "v" / ("c/0/1/1" if fmt == 3 and not shards else "c/0/0/0" if shards else "0.1.1")).unlink()
    if edits:
        edit(path, fmt, **edits)
    expected = _reference(path)
    raw = zarr.open_array(str(path / "v"), mode="r")[...]
    if raw.shape[1] >= 40 and raw.shape[2] >= 40:
        assert not raw[0, 32:40, 32:40].any()  # the missing chunk: fill value
    want = _chips_of(expected)
    for name, read in READERS.items():
        got = read(str(path))
        if isinstance(got, np.ndarray):
            if "isel" in name:
                expected_part = expected[:, 30:40]
                np.testing.assert_array_equal(got, expected_part, err_msg=name)
            else:
                np.testing.assert_array_equal(got, expected, err_msg=name)
        else:
            # chips of lazy inputs come in block-group order: compare them as a multiset
            assert sorted(_bytes(c.values) for c in got) == sorted(_bytes(r) for r in want), name


def test_device_zarr_reads_refuse_an_edited_store(tmp_path):
    """``read_zarr(device=...)`` reads through zarr-python too (here on the host: the same code path)."""
    import torch

    from terrapipe.gpu.zarr_gpu import DeviceZarrArray

    path = tmp_path / "cube.zarr"
    write(path, 3, "float32", "zstd")
    edit(path, 3, dtype="float64")
    backend = DeviceZarrArray(zarr.open_array(str(path / "v"), mode="r"), torch.device("cpu"))
    with pytest.raises(ReadError, match=r"chunk 'c/0/0/0' of variable 'v'.*implies 8192 bytes"):
        backend._read((slice(0, 1), slice(0, 20), slice(0, 20)))
