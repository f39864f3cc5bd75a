"""Entries: elements to JSON + raw bytes and back, checksums, never pickle."""

from __future__ import annotations

import datetime as dt
import json
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rioxarray  # noqa: F401
import torch
import xarray as xr
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st

from terrapipe.cache.codec import decode_value, encode_value
from terrapipe.cache.entry import MAGIC, MAGIC_1, CorruptEntryError, pack_entry, unpack_entry
from terrapipe.core.errors import CacheError
from terrapipe.core.sample import Sample, geo_meta
from tests.cache.conftest import samples_equal


def roundtrip(value: Any) -> Any:
    (back,) = unpack_entry(pack_entry("k", [encode_value(value)]), "k")
    return back


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype="uint16").reshape(2, 3, 4),
        np.linspace(0, 1, 7, dtype="float32"),
        np.array([[True, False]]),
        np.array([1 + 2j], dtype="complex128"),
        np.array(["2024-06-19T10:00", "NaT"], dtype="datetime64[ns]"),
        np.array(["red", "nir"]),
        np.array(["a", "bc"], dtype=object),
        np.zeros((0, 3), dtype="int64"),
        np.array(3.5, dtype=">f8"),  # 0-d, big-endian
        np.arange(12, dtype="int32").reshape(3, 4).T,  # not C-contiguous
    ],
)
def test_numpy_arrays_round_trip(array: np.ndarray) -> None:
    back = roundtrip(array)
    assert back.dtype == array.dtype
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize(
    "tensor",
    [
        torch.arange(6, dtype=torch.float32).reshape(2, 3),
        torch.tensor([1.5, -2.0], dtype=torch.bfloat16),
        torch.tensor([True, False]),
        torch.tensor(7, dtype=torch.int64),  # 0-d
        torch.empty(0, 4, dtype=torch.uint8),
        torch.arange(12, dtype=torch.int16).reshape(3, 4).t(),  # not contiguous
        torch.tensor([1 + 1j], dtype=torch.complex64).conj(),  # lazy conjugate
    ],
)
def test_tensors_round_trip(tensor: torch.Tensor) -> None:
    back = roundtrip(tensor)
    assert back.dtype == tensor.dtype
    assert back.shape == tensor.shape
    assert torch.equal(back, tensor.resolve_conj())


def test_sample_round_trips_with_meta() -> None:
    meta = geo_meta(
        "EPSG:32631", (10.0, 0.0, 6e5, 0.0, -10.0, 5e6), (4, 4), time="2024-06-19", source_ids=["a.tif"]
    )
    sample = Sample(
        image=torch.rand(3, 4, 4),
        mask=torch.randint(0, 5, (4, 4)),
        boxes=torch.zeros(0, 4),
        labels=torch.tensor([], dtype=torch.int64),
        variables={"t2m": torch.rand(2, 4, 4)},
        meta=meta,
    )
    back = roundtrip(sample)
    assert samples_equal(back, sample)
    assert back["meta"] == meta
    assert isinstance(back["meta"]["transform"], tuple)


def test_plain_values_round_trip() -> None:
    value = {
        "none": None,
        1: [1.5, float("nan"), float("inf"), -0.0, 2**70],
        (1, "a"): ("x", b"\x00bytes"),
        "when": dt.datetime(2024, 6, 19, 10, 30, tzinfo=dt.UTC),
        "day": dt.date(2024, 6, 19),
        "span": dt.timedelta(days=2, seconds=3, microseconds=4),
        "path": Path("/data/a.tif"),
        "affine": Affine(10, 0, 600000, 0, -10, 5e6),
        "np": [np.float32(1.5), np.int64(-3), np.dtype("uint16")],
        "torch_dtype": torch.float16,
    }
    back = roundtrip(value)
    assert list(back) == list(value)
    assert back[1][0] == 1.5
    assert np.isnan(back[1][1])
    assert back[1][2] == float("inf")
    assert back[1][4] == 2**70
    assert str(back[1][3]) == "-0.0"
    for key in ["none", (1, "a"), "when", "day", "span", "path", "affine", "torch_dtype"]:
        assert back[key] == value[key]
        assert type(back[key]) is type(value[key])
    assert [type(v) for v in back["np"]] == [np.float32, np.int64, np.dtype("uint16").__class__]
    assert back["np"][:2] == value["np"][:2]


def geo_dataarray() -> xr.DataArray:
    da = xr.DataArray(
        np.arange(2 * 3 * 4, dtype="uint16").reshape(2, 3, 4),
        dims=("band", "y", "x"),
        coords={
            "band": ["red", "nir"],
            "y": 5e6 - 10 * np.arange(3) - 5,
            "x": 6e5 + 10 * np.arange(4) + 5,
            "time": np.datetime64("2024-06-19T10:00:00", "ns"),
        },
        name="reflectance",
        attrs={"scale_factor": 1e-4, "_FillValue": np.uint16(0), "long_name": ("red", "nir")},
    )
    da = da.rio.write_crs("EPSG:32631").rio.write_transform(Affine(10, 0, 6e5, 0, -10, 5e6))
    da.encoding = {"source": "/data/scene.tif", "dtype": np.dtype("uint16"), "compressor": object()}
    return da


def test_dataarray_round_trips_with_crs_coords_and_encoding() -> None:
    da = geo_dataarray()
    back = roundtrip(da)
    xr.testing.assert_identical(back, da)
    assert back.rio.crs == da.rio.crs
    assert back.rio.transform() == da.rio.transform()
    assert back.encoding == {
        "source": "/data/scene.tif",
        "dtype": np.dtype("uint16"),
    }  # codec objects dropped
    assert back.indexes["x"].equals(da.indexes["x"])


def test_dataset_round_trips() -> None:
    ds = xr.Dataset(
        {"t2m": (("time", "y"), np.random.default_rng(0).random((2, 3))), "flag": ("y", np.array([1, 0, 1]))},
        coords={"time": np.array(["2024-01-01", "2024-02-01"], dtype="datetime64[ns]"), "y": [1.0, 2.0, 3.0]},
        attrs={"title": "climate"},
    )
    xr.testing.assert_identical(roundtrip(ds), ds)


def test_stac_item_and_geodataframe_round_trip(tmp_path: Path) -> None:
    pystac = pytest.importorskip("pystac")
    gpd = pytest.importorskip("geopandas")
    from shapely.geometry import Point, box

    item = pystac.Item(
        "scene-1",
        box(0, 0, 1, 1).__geo_interface__,
        [0, 0, 1, 1],
        dt.datetime(2024, 6, 19, tzinfo=dt.UTC),
        {},
    )
    item.add_asset("red", pystac.Asset(str(tmp_path / "red.tif"), media_type="image/tiff"))
    back = roundtrip(item)
    assert back.id == "scene-1"
    assert back.assets["red"].href == str(tmp_path / "red.tif")
    assert back.datetime == item.datetime

    gdf = gpd.GeoDataFrame({"cls": [1, 2]}, geometry=[Point(0, 0), Point(1, 1)], crs="EPSG:4326")
    back = roundtrip(gdf)
    assert back.crs == gdf.crs
    assert back.geometry.equals(gdf.geometry)
    assert back["cls"].tolist() == [1, 2]
    assert roundtrip(Point(3, 4)).equals(Point(3, 4))


def test_decoded_arrays_are_writable_and_do_not_alias_the_entry() -> None:
    blob = pack_entry("k", [encode_value({"a": np.arange(4), "t": torch.arange(4)})])
    first = unpack_entry(blob, "k")[0]
    first["a"][:] = 99
    first["t"].add_(100)
    second = unpack_entry(blob, "k")[0]
    assert second["a"].tolist() == [0, 1, 2, 3]
    assert second["t"].tolist() == [0, 1, 2, 3]


def test_encoding_copies_so_later_changes_do_not_leak() -> None:
    array = np.zeros(4)
    encoded = encode_value(array)
    array[:] = 1
    assert unpack_entry(pack_entry("k", [encoded]), "k")[0].tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize(
    "value",
    [object(), np.array([object()], dtype=object), torch.zeros(2).to_sparse(), lambda x: x],
    ids=["object", "object-array", "sparse", "function"],
)
def test_unsupported_values_raise_cache_error(value: Any) -> None:
    with pytest.raises(CacheError, match="never pickles"):
        encode_value({"deep": [value]})


def test_entry_layout_is_magic_header_nodes_aligned_payload_checksum() -> None:
    elements = [
        encode_value(np.arange(3, dtype="uint8")),
        encode_value("x"),
        encode_value(np.arange(5, dtype="uint8")),
    ]
    blob = pack_entry("key-1", elements)
    assert blob.startswith(MAGIC)
    size, nodes_size = struct.unpack_from("<QQ", blob, len(MAGIC))
    header = json.loads(blob[24 : 24 + size])
    nodes = json.loads(blob[24 + size : 24 + size + nodes_size])
    assert header["key"] == "key-1"
    assert header["payload"] == 128
    assert header["elements"] == [[0, 3], [1], [2, 5]]  # node, then each buffer's size
    assert nodes == [elements[0].node, "x", elements[2].node]
    assert (len(blob) - 4) % 64 == 0


def test_elements_of_one_structure_share_one_node() -> None:
    chips = [
        xr.DataArray(np.full((2, 3), i, dtype="uint16"), dims=("y", "x"), coords={"x": [i, i + 1, i + 2]})
        for i in range(4)
    ]
    blob = pack_entry("k", [encode_value(c) for c in chips])
    size, nodes_size = struct.unpack_from("<QQ", blob, len(MAGIC))
    assert len(json.loads(blob[24 + size : 24 + size + nodes_size])) == 1
    assert [row[0] for row in json.loads(blob[24 : 24 + size])["elements"]] == [0, 0, 0, 0]
    back = unpack_entry(blob, "k")
    for a, b in zip(chips, back, strict=True):
        xr.testing.assert_identical(a, b)
    back[0].attrs["changed"] = 1  # nothing mutable is shared between elements built from one node
    back[0].x.attrs["changed"] = 1
    back[0].encoding["changed"] = 1
    assert all("changed" not in (c.attrs | c.x.attrs | c.encoding) for c in back[1:])


def test_empty_entry() -> None:
    assert unpack_entry(pack_entry("k", []), "k") == []


def test_every_flipped_byte_is_detected() -> None:
    blob = pack_entry("k", [encode_value({"image": torch.arange(40, dtype=torch.uint8)})])
    for position in range(0, len(blob), 7):
        damaged = bytearray(blob)
        damaged[position] ^= 0x01
        with pytest.raises(CorruptEntryError):
            unpack_entry(bytes(damaged), "k")


def test_truncated_wrong_key_and_garbage_are_corrupt() -> None:
    blob = pack_entry("k", [encode_value(1)])
    for bad, key in [(blob[:-1], "k"), (blob[:10], "k"), (b"", "k"), (blob, "other"), (b"\x80" * 100, "k")]:
        with pytest.raises(CorruptEntryError):
            unpack_entry(bad, key)


def forge(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """An entry of format 1 with a valid checksum around an arbitrary header (a hostile writer)."""
    import zlib

    text = json.dumps(header).encode()
    head = MAGIC_1 + struct.pack("<Q", len(text)) + text
    body = head + bytes(-len(head) % 64) + payload
    return body + struct.pack("<I", zlib.crc32(body))


def forge_2(header: Any, nodes: Any, payload: bytes = b"", *, sizes: tuple[int, int] | None = None) -> bytes:
    """An entry of format 2 with a valid checksum around an arbitrary header and nodes."""
    import zlib

    text, listed = json.dumps(header).encode(), json.dumps(nodes).encode()
    head = MAGIC + struct.pack("<QQ", *(sizes or (len(text), len(listed)))) + text + listed
    body = head + bytes(-len(head) % 64) + payload
    return body + struct.pack("<I", zlib.crc32(body))


class _Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, ("raise SystemExit('pickle ran code')",))


def test_a_hostile_entry_cannot_run_code() -> None:
    pickled = pickle.dumps(_Boom())
    attempts = [
        {"$": "pickle", "b": 0},
        {"$": "ndarray", "dtype": "O", "shape": [1], "b": 0},
        {"$": "ndarray", "dtype": "|O", "shape": [1], "b": 0},
        {"$": "npscalar", "dtype": "O", "hex": pickled.hex()},
        {"$": "torch_dtype", "v": "torch.storage"},
    ]
    for node in attempts:
        header = {"format": 1, "key": "k", "elements": [{"node": node, "buffers": [[0, len(pickled)]]}]}
        header["payload"] = len(pickled)
        with pytest.raises(CorruptEntryError):
            unpack_entry(forge(header, pickled), "k")
    # a size mismatch between header and buffer is refused too
    node = {"$": "ndarray", "dtype": "<f8", "shape": [100], "b": 0}
    header = {"format": 1, "key": "k", "elements": [{"node": node, "buffers": [[0, 8]]}], "payload": 8}
    with pytest.raises(CorruptEntryError, match="wrong size"):
        unpack_entry(forge(header, bytes(8)), "k")


def pack_entry_1(key: str, elements: list[Any]) -> bytes:
    """An entry as terrapipe wrote it before format 2 (a node and buffer offsets per element)."""
    layout, payload = [], b""
    for element in elements:
        spans = []
        for buf in element.buffers:
            spans.append([len(payload), len(buf)])
            payload += buf + bytes(-len(buf) % 64)
        layout.append({"node": element.node, "buffers": spans})
    return forge({"format": 1, "key": key, "elements": layout, "payload": len(payload)}, payload)


def test_entries_of_format_1_still_read_as_before() -> None:
    da = xr.DataArray(
        np.arange(24, dtype="uint16").reshape(2, 3, 4),
        dims=("band", "y", "x"),
        coords={"band": ["red", "nir"], "y": [3.0, 2.0, 1.0], "x": np.arange(4.0), "spatial_ref": 0},
        attrs={"nodata": 0},
        name="image",
    )
    da.encoding["dtype"] = "uint16"
    values = [
        da.isel(x=slice(0, 2)),
        da.isel(x=slice(2, 4)),
        {"n": 1, "t": (1, [2])},
        torch.arange(3),
        b"raw",
    ]
    old = pack_entry_1("k", [encode_value(v) for v in values])
    new = pack_entry("k", [encode_value(v) for v in values])
    assert old.startswith(MAGIC_1)
    assert new.startswith(MAGIC)
    assert len(new) < len(old)
    for a, b in zip(unpack_entry(old, "k"), unpack_entry(new, "k"), strict=True):
        if isinstance(a, xr.DataArray):
            xr.testing.assert_identical(a, b)
            assert a.encoding == b.encoding
            assert a.y.encoding == b.y.encoding
            assert {n: type(i) for n, i in a.xindexes.items()} == {n: type(i) for n, i in b.xindexes.items()}
        elif isinstance(a, torch.Tensor):
            assert torch.equal(a, b)
            assert a.dtype == b.dtype
        else:
            assert a == b
            assert repr(a) == repr(b)
    damaged = bytearray(old)
    damaged[30] ^= 1
    with pytest.raises(CorruptEntryError, match="checksum"):
        unpack_entry(bytes(damaged), "k")


def test_a_hostile_entry_of_format_2_is_corrupt() -> None:
    pickled = pickle.dumps(_Boom())
    for node in [
        {"$": "pickle", "b": 0},
        {"$": "ndarray", "dtype": "|O", "shape": [1], "b": 0},
        {"$": ["list"]},
    ]:
        header = {"format": 2, "key": "k", "elements": [[0, len(pickled)]], "payload": len(pickled)}
        with pytest.raises(CorruptEntryError):
            unpack_entry(forge_2(header, [node], pickled + bytes(-len(pickled) % 64)), "k")
    node = {"$": "ndarray", "dtype": "<u1", "shape": [8], "b": 0}
    good = {"format": 2, "key": "k", "elements": [[0, 8]], "payload": 64}
    assert unpack_entry(forge_2(good, [node], bytes(64)), "k")[0].tolist() == [0] * 8
    bad_rows = {
        "node index past the list": [[1, 8]],
        "negative node index": [[-1, 8]],
        "bool node index": [[True, 8]],
        "text node index": [["0", 8]],
        "no node": [[]],
        "row not a list": [0],
        "negative size": [[0, -8]],
        "bool size": [[0, True]],
        "buffer past the payload": [[0, 8], [0, 64]],
        "buffers short of the payload": [],
    }
    for rows in bad_rows.values():
        with pytest.raises(CorruptEntryError):
            unpack_entry(forge_2({**good, "elements": rows}, [node], bytes(64)), "k")
    with pytest.raises(CorruptEntryError, match="wrong size"):
        unpack_entry(forge_2({**good, "elements": [[0, 4]]}, [node], bytes(64)), "k")
    with pytest.raises(CorruptEntryError, match="longer than the entry"):
        unpack_entry(forge_2(good, [node], bytes(64), sizes=(10**6, 0)), "k")
    with pytest.raises(CorruptEntryError):  # the nodes section is not a list
        unpack_entry(forge_2(good, {"0": node}, bytes(64)), "k")
    with pytest.raises(CorruptEntryError):  # another format number under the magic of format 2
        unpack_entry(forge_2({**good, "format": 1}, [node], bytes(64)), "k")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=4) | st.integers(), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_plain_structures_round_trip_exactly(value: Any) -> None:
    back = decode_value(encode_value(value).node, [])
    assert back == value
    assert type(back) is type(value)
    assert repr(back) == repr(value)
