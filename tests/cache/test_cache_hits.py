"""A hit gives exactly what a miss gave, on every store, for chips of many kinds; hits do not copy what they need not.

Elements: xarray chips from ``read_zarr().chip()`` (read-only views with
coordinates, CRS and encoding), numpy-backed DataArrays and Datasets of
several dtypes and shapes with nodata, non-default coordinates (descending,
integer, datetime, string, 2-D, scalar), and Samples with tensors. Equality:
values, dtype, dims, coordinates, attributes, name, CRS and transform, the
encoding entries that are plain data, and the writeable flag.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import xarray as xr

import terrapipe as tp
from terrapipe.cache import CacheStore, MemoryLRU, ZarrStore
from terrapipe.cache.codec import encode_value, fast_construction_ok
from terrapipe.cache.entry import pack_entry, unpack_entry
from tests.cache.conftest import make_store

zarr = pytest.importorskip("zarr")
STORES = ("memory", "zarr", "zarr-url", "zarr-memory", "redis")


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> CacheStore:
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    return make_store(request.param, tmp_path, url)


def cube(path: Path, dtype: str, *, nodata: Any) -> Path:
    """A 3 x 64 x 48 cube in a Zarr store, with nodata pixels, descending y, a CRS and a time."""
    rng = np.random.default_rng(0)
    values = (rng.random((3, 64, 48)) * 100).astype(dtype)
    values[:, :5, :7] = nodata
    da = xr.DataArray(
        values,
        dims=("band", "y", "x"),
        coords={
            "band": ["b02", "b03", "b8a"],
            "y": 5_000_000.0 - 10.0 * np.arange(64) - 5.0,
            "x": 600_000.0 + 10.0 * np.arange(48) + 5.0,
            "time": np.datetime64("2024-06-01T10:20:30", "ns"),
        },
        name="image",
        attrs={"_FillValue": nodata, "long_name": "reflectance"},
    )
    da = da.rio.write_crs("EPSG:32631").rio.write_nodata(nodata, encoded=False)
    da.to_dataset().to_zarr(path, zarr_format=3, encoding={"image": {"chunks": (1, 32, 16)}})
    return path


def same(a: Any, b: Any) -> None:
    """Assert that a hit's element is the miss's."""
    assert type(a) is type(b)
    if isinstance(a, xr.DataArray | xr.Dataset):
        xr.testing.assert_identical(a, b)
        for name in a.variables if isinstance(a, xr.Dataset) else [None, *a.coords]:
            va = (
                a.variable
                if name is None
                else a.variables[name]
                if isinstance(a, xr.Dataset)
                else a.coords[name].variable
            )
            vb = (
                b.variable
                if name is None
                else b.variables[name]
                if isinstance(b, xr.Dataset)
                else b.coords[name].variable
            )
            assert va.dtype == vb.dtype
            assert type(va) is type(vb)
            assert np.asarray(va.values).flags.writeable == np.asarray(vb.values).flags.writeable
        assert a.rio.crs == b.rio.crs
        if a.rio.crs is not None:
            assert a.rio.transform() == b.rio.transform()
        assert {n: type(i) for n, i in a.xindexes.items()} == {n: type(i) for n, i in b.xindexes.items()}
        plain = {k: v for k, v in a.encoding.items() if k in b.encoding}
        assert repr(plain) == repr({k: b.encoding[k] for k in plain})  # repr: NaN fill values compare equal
        assert "source" in b.encoding or "source" not in a.encoding
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            same(a[key], b[key])
    else:
        assert a == b


@pytest.mark.parametrize(
    ("dtype", "nodata"), [("uint16", 0), ("int8", -128), ("float32", np.nan), ("float64", -9999.0)]
)
def test_zarr_chips_hit_equals_miss_on_every_store(
    store: CacheStore, tmp_path: Path, dtype: str, nodata: Any
) -> None:
    path = cube(tmp_path / f"cube-{dtype}.zarr", dtype, nodata=nodata)

    def pipe(variables: Any) -> Any:
        return (
            tp.from_items([str(path)])
            .cache_point()
            .read_zarr(variables=variables)
            .chip({"y": 32, "x": 16}, overlap={"y": 8, "x": 0})
            .cache(store)
        )

    for variables in ("image", None):  # DataArray chips, Dataset chips
        first = pipe(variables)
        missed = list(first)
        again = pipe(variables)
        hit = list(again)
        assert (first.stats.misses, again.stats.hits, again.stats.misses) == (1, 1, 0)
        assert len(hit) == len(missed) > 4
        for a, b in zip(missed, hit, strict=True):
            same(a, b)
        data = hit[0]["image"] if variables is None else hit[0]
        assert not data.values.flags.writeable  # chips are read-only views, as on a miss
        with pytest.raises(ValueError, match="read-only"):
            data.values[0, 0, 0] = 1


def odd_arrays() -> list[Any]:
    """numpy-backed elements of several dtypes, shapes and coordinate kinds."""
    t = np.array(["2024-01-01", "2024-02-01"], dtype="datetime64[ns]")
    da2 = xr.DataArray(
        np.arange(2 * 3 * 4, dtype="complex64").reshape(2, 3, 4),
        dims=("time", "lat", "lon"),
        coords={
            "time": t,
            "lat": [30, 20, 10],  # integers, descending
            "lon": np.array([-1.5, -0.5, 0.5, 1.5], dtype="float32"),
            "label": ("time", np.array(["a", "bb"])),
            "area": (("lat", "lon"), np.ones((3, 4))),
            "spatial_ref": 0,
        },
        attrs={"units": "K", "flags": [1, 2], "scale": 0.01},
        name=None,
    )
    masked = xr.DataArray(np.array([[np.nan, 1.0], [2.0, np.inf]]), dims=("y", "x"), name="m")
    ds = xr.Dataset(
        {"a": (("y", "x"), np.array([[1, 2], [3, 4]], dtype="uint32")), "b": ("y", np.array([True, False]))},
        coords={"y": [0.5, 1.5], "x": ["p", "q"]},
        attrs={"title": "t"},
    )
    empty = xr.DataArray(np.zeros((0, 3), dtype="int64"), dims=("n", "k"), coords={"k": [1, 2, 3]})
    return [da2, masked, ds, empty, {"image": torch.arange(12, dtype=torch.bfloat16).reshape(3, 4), "n": 3}]


def test_numpy_elements_hit_equals_miss_on_every_store(store: CacheStore) -> None:
    elements = odd_arrays()

    def pipe() -> Any:
        return tp.from_items(list(range(len(elements)))).cache_point().map(elements.__getitem__).cache(store)

    first = pipe()
    missed = list(first)
    again = pipe()
    hit = list(again)
    assert again.stats.hits == len(elements)
    for a, b in zip(missed, hit, strict=True):
        same(a, b)
    assert hit[1].values.flags.writeable  # writable on a miss: writable (and a copy) on a hit
    hit[1].values[0, 0] = 7.0
    assert np.isnan(list(pipe())[1].values[0, 0])  # the store was not changed through it


def test_the_direct_constructors_are_used_and_give_what_xarray_gives() -> None:
    fast_construction_ok.cache_clear()
    assert fast_construction_ok()  # a new xarray that breaks it falls back to the public constructors
    assert fast_construction_ok.cache_info().misses == 1  # the check decodes without checking itself again


def test_memory_hits_share_the_stored_bytes_for_read_only_arrays_only() -> None:
    chip = np.arange(16, dtype="uint16").reshape(4, 4)
    chip.flags.writeable = False
    entry = pack_entry("k", [encode_value({"chip": chip, "copy": np.ones(3), "t": torch.ones(2)})])
    (back,) = unpack_entry(entry, "k")
    assert np.shares_memory(back["chip"], np.frombuffer(entry, np.uint8))  # no copy of a read-only chip
    assert not back["chip"].flags.writeable
    with pytest.raises(ValueError, match="WRITEABLE"):
        back["chip"].flags.writeable = True  # the stored bytes cannot be made writable
    assert back["copy"].flags.writeable
    assert not np.shares_memory(back["copy"], np.frombuffer(entry, np.uint8))
    back["t"].add_(1)
    assert unpack_entry(entry, "k")[0]["t"].tolist() == [1.0, 1.0]


def test_an_entry_handed_over_is_decoded_in_place(tmp_path: Path) -> None:
    store = ZarrStore(tmp_path / "c.zarr", chunk_bytes=100)
    value = {"a": np.arange(50, dtype="float64"), "t": torch.arange(7)}
    store.put("k", pack_entry("k", [encode_value(value)]))
    buffer = store.get_buffer("k")
    assert buffer is not None
    assert not buffer.readonly
    (back,) = unpack_entry(buffer, "k", owned=True)
    assert np.shares_memory(back["a"], np.asarray(buffer))
    assert back["a"].flags.writeable
    assert back["t"].tolist() == list(range(7))
    assert bytes(store.get_buffer("k") or b"") == store.get("k")


def test_an_entry_written_before_read_only_flags_decodes_writable() -> None:
    entry = pack_entry("k", [encode_value(np.arange(3))])
    assert b'"ro"' not in entry  # writable arrays carry no flag: entries of earlier versions read the same
    (back,) = unpack_entry(entry, "k")
    assert back.flags.writeable


def test_a_zarr_store_named_by_every_chip_is_walked_once_per_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canonical_module = importlib.import_module(
        "terrapipe.cache.canonical"
    )  # the package exports a function of that name

    path = cube(tmp_path / "cube.zarr", "uint16", nodata=0)
    chips = list(tp.from_items([str(path)]).read_zarr(variables="image").chip({"y": 32, "x": 16}))
    walks: list[str] = []
    real = canonical_module._tree

    def counting(root: str) -> Any:
        walks.append(root)
        return real(root)

    monkeypatch.setattr(canonical_module, "_tree", counting)
    pipe = tp.from_items(chips).cache_point().map(lambda c: c + 1).cache(MemoryLRU(2**24))
    assert len(list(pipe)) == len(chips)
    assert walks == [str(path)]  # encoding["source"] of every chip: one walk in the pass
    list(pipe)
    assert walks == [str(path)] * 2  # and again in the next pass: a change between passes is seen
    assert pipe.stats.hits == len(chips)


def test_memory_entries_are_checked_once_when_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    import zlib

    entry_module = importlib.import_module("terrapipe.cache.entry")
    calls: list[int] = []

    def crc32(data: Any, value: int = 0) -> int:
        calls.append(len(memoryview(data)))
        return zlib.crc32(data, value)

    monkeypatch.setattr(entry_module, "_crc32", crc32)
    store = MemoryLRU(2**24)
    pipe = tp.from_items([1, 2]).cache_point().map(lambda x: np.full(1000, x)).cache(store)
    list(pipe)
    written = len(calls)  # packing and the check when stored
    assert written >= 2
    for _ in range(3):
        assert [a[0] for a in pipe] == [1, 2]
    assert len(calls) == written  # hits: no checksum of every byte again
    assert pipe.stats.hits == 6
    key = next(iter(store.keys()))
    entry, intact = store.get_checked(key) or (b"", False)
    assert intact
    damaged = bytearray(entry)
    damaged[-10] ^= 1
    store.put(key, bytes(damaged))  # bytes put from elsewhere: checked when stored, found damaged
    assert store.get_checked(key) == (bytes(damaged), False)
    assert [a[0] for a in pipe] == [1, 2]
    assert pipe.stats.corrupt == 1


def test_entries_of_key_format_2_are_never_served() -> None:
    from terrapipe.cache.canonical import digest_json
    from terrapipe.cache.keys import KEY_FORMAT, element_identity, entry_key

    assert KEY_FORMAT == 4  # entries of format 2 lost a Dataset's encoding and numpy scalar types
    store = MemoryLRU(2**24)
    ds = xr.Dataset({"v": ("x", np.arange(3.0))}, attrs={"scale": np.float64(0.5)})
    ds.encoding["source"] = "scene.zarr"
    pipe = tp.from_items([1]).cache_point().map(lambda _: ds).cache(store)
    old_key = digest_json(
        {"format": 2, "config": pipe.config_digest, "element": element_identity(1)}, size=32
    )
    stale = ds.copy()
    stale.encoding = {}
    store.put(old_key, pack_entry(old_key, [encode_value(stale)]))  # what the old codec wrote
    assert pipe.key_of(1) == entry_key(element_identity(1), pipe.config_digest) != old_key
    (out,) = list(pipe)
    assert pipe.stats.misses == 1
    assert out.encoding == {"source": "scene.zarr"}
    (again,) = list(pipe)
    assert again.encoding == {"source": "scene.zarr"}
    assert type(again.attrs["scale"]) is np.float64


def test_format_2_entries_decode_as_format_1_entries_did(tmp_path: Path) -> None:
    """Chips, Datasets and odd elements from an entry of format 2 (a node per structure, compiled once)
    are those an entry of format 1 gave (a node per element): values byte for byte, every variable's
    type, dtype, attrs and encoding, index types, read-only flags; over two parts sharing indexes."""
    from tests.cache.test_cache_codec import pack_entry_1

    path = cube(tmp_path / "cube.zarr", "uint16", nodata=0)
    source = tp.from_items([str(path)]).read_zarr(variables="image").chip({"y": 32, "x": 16})
    chips = list(source)
    sets = list(tp.from_items([str(path)]).read_zarr().chip({"y": 32, "x": 16}))
    elements = [encode_value(v) for v in chips + sets + odd_arrays()]
    halves = [elements[: len(elements) // 2], elements[len(elements) // 2 :]]
    old_indexes: dict[Any, Any] = {}
    new_indexes: dict[Any, Any] = {}
    for n, half in enumerate(halves):
        old = unpack_entry(pack_entry_1(f"k.{n}", half), f"k.{n}", indexes=old_indexes)
        new = unpack_entry(pack_entry(f"k.{n}", half), f"k.{n}", indexes=new_indexes)
        for a, b in zip(old, new, strict=True):
            same(a, b)
            if isinstance(a, xr.DataArray | xr.Dataset):
                assert repr(a.encoding) == repr(b.encoding)
                pairs = (
                    zip(a.variables.values(), b.variables.values(), strict=True)
                    if isinstance(a, xr.Dataset)
                    else (
                        [(a.variable, b.variable)]
                        + [(a.coords[k].variable, b.coords[k].variable) for k in a.coords]
                    )
                )
                for va, vb in pairs:
                    assert repr((va.attrs, va.encoding)) == repr((vb.attrs, vb.encoding))  # NaN fill values
                    assert np.asarray(va.values).tobytes() == np.asarray(vb.values).tobytes()
    assert len(chips) >= 6
