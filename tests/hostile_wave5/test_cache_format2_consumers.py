"""Cache entries of format 2 (cache/entry.py: one node per structure, shared by the elements and parts of
an entry; cache/codec.py: one pandas index per small coordinate, shared too) against their consumers.

- A consumer that edits a chip of a hit (values, attrs, nested attrs, a coordinate's attrs, encoding, the
  grid mapping's attrs) before the next chip of the same entry is decoded: the next chip and the next hit
  are as computed, on a memory store and a local Zarr folder.
- One store holding entries of format 1 and of format 2 side by side, read in one pass.
- An entry of format 2 cut at every section boundary (magic, lengths, header, nodes, payload, checksum):
  counted corrupt, recomputed, never a wrong or missing element.
- Writers of one key at once (policy="refresh", an entry in parts) while readers read it: every reader
  gets every element once, in order, with the computed values.
All held when written (regression net).
"""

from __future__ import annotations

import contextlib
import copy
import json
import struct
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
import terrapipe.cache.parts as parts_module
from terrapipe.cache import MemoryLRU, ZarrStore
from terrapipe.cache.codec import encode_value
from terrapipe.cache.entry import MAGIC, pack_entry
from tests.cache.test_cache_codec import pack_entry_1

pytest.importorskip("zarr")


def chips(n: int) -> list[xr.DataArray]:
    """Three chips of one structure (one node, shared indexes): only their values differ."""
    out = []
    for k in range(3):
        da = xr.DataArray(
            np.full((2, 4, 4), 10.0 * n + k, dtype="float32"),
            dims=("band", "y", "x"),
            coords={
                "band": ["red", "nir"],
                "y": -10.0 * np.arange(4),
                "x": 10.0 * np.arange(4),
                "spatial_ref": 0,
            },
            attrs={"nodata": 0, "tags": {"a": 1}, "list": [1, 2]},
            name="image",
        )
        da.x.attrs["units"] = "m"
        da.spatial_ref.attrs["crs_wkt"] = "EPSG:32631"
        da.encoding["scale_factor"] = 1.0
        out.append(da)
    return out


def state(da: xr.DataArray) -> tuple[Any, ...]:
    return (
        da.values.tolist(),
        copy.deepcopy(dict(da.attrs)),
        da.x.attrs.get("units"),
        da.x.values.tolist(),
        da.band.values.tolist(),
        da.spatial_ref.attrs.get("crs_wkt"),
        da.encoding.get("scale_factor"),
        da.sel(band="nir", x=10.0).shape,
    )


def vandalise(da: xr.DataArray) -> None:
    """Everything a consumer may write to in place (what xarray or numpy refuse is skipped)."""
    edits = [
        lambda: da.values.__setitem__((0, 0, 0), -1.0),
        lambda: da.attrs.__setitem__("nodata", 5),
        lambda: da.attrs["tags"].__setitem__("a", 5),
        lambda: da.attrs["list"].append(9),
        lambda: da.x.attrs.__setitem__("units", "km"),
        lambda: da.coords["x"].attrs.__setitem__("units", "ft"),
        lambda: da.spatial_ref.attrs.__setitem__("crs_wkt", "EPSG:4326"),
        lambda: da.encoding.__setitem__("scale_factor", 7.0),
        lambda: da.coords["x"].values.__setitem__(0, -1.0),
        lambda: da.band.values.__setitem__(0, "zzz"),
        lambda: da.indexes["x"].values.__setitem__(0, -1.0),
    ]
    for edit in edits:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            edit()


@pytest.mark.parametrize("kind", ["memory", "zarr"])
def test_a_consumer_editing_a_chip_changes_no_other_chip_nor_the_next_hit(kind: str, tmp_path: Path) -> None:
    store = MemoryLRU(max_bytes=2**24) if kind == "memory" else ZarrStore(tmp_path / "c.zarr")
    pipe = tp.from_items([1]).cache_point().flatmap(chips).cache(store)
    want = [state(c) for c in chips(1)]
    assert [state(c) for c in pipe] == want  # the miss
    for _ in range(2):
        got = []
        for chip in pipe:  # each chip is edited before the next one is decoded
            got.append(state(chip))
            vandalise(chip)
            assert chip.attrs["tags"] == {"a": 5}  # the edits took (on this chip only)
            assert chip.values[0, 0, 0] == -1.0
        assert got == want
    assert (pipe.stats.hits, pipe.stats.misses) == (2, 1)


def make_arrays(n: int) -> list[np.ndarray[Any, Any]]:
    return [np.full(100, n * 10 + i, dtype=np.uint16) for i in range(3)]


def test_entries_of_format_1_and_2_in_one_store_read_in_one_pass(tmp_path: Path) -> None:
    store = ZarrStore(tmp_path / "mixed.zarr")
    pipe = tp.from_items([1, 2, 3]).cache_point().flatmap(make_arrays).cache(store)
    want = [a.tolist() for n in (1, 2, 3) for a in make_arrays(n)]
    store.put(pipe.key_of(1), pack_entry_1(pipe.key_of(1), [encode_value(a) for a in make_arrays(1)]))
    store.put(pipe.key_of(2), pack_entry(pipe.key_of(2), [encode_value(a) for a in make_arrays(2)]))
    assert [a.tolist() for a in pipe] == want
    assert (pipe.stats.hits, pipe.stats.misses, pipe.stats.corrupt) == (2, 1, 0)
    assert [a.tolist() for a in pipe] == want
    assert pipe.stats.hits == 5


def _cuts(blob: bytes) -> dict[str, int]:
    head, nodes = struct.unpack_from("<QQ", blob, len(MAGIC))
    end = len(MAGIC) + 16 + head + nodes
    return {
        "magic": 5,
        "lengths": len(MAGIC) + 9,
        "header": len(MAGIC) + 16 + head // 2,
        "nodes": len(MAGIC) + 16 + head + nodes // 2,
        "padding": end + 1,
        "payload": (end + len(blob)) // 2,
        "last_buffer": len(blob) - 5,
        "checksum": len(blob) - 2,
    }


def test_an_entry_of_format_2_cut_anywhere_is_recomputed(tmp_path: Path) -> None:
    store = ZarrStore(tmp_path / "cut.zarr")
    pipe = tp.from_items([4]).cache_point().flatmap(chips).cache(store)
    want = [state(c) for c in chips(4)]
    list(pipe)
    key = pipe.key_of(4)
    blob = bytes(store.get(key) or b"")
    assert blob.startswith(MAGIC)
    assert json.loads(blob[24 : 24 + struct.unpack_from("<Q", blob, 8)[0]])["format"] == 2
    for where, cut in _cuts(blob).items():
        store.put(key, blob[:cut])
        before = pipe.stats.corrupt
        assert [state(c) for c in pipe] == want, where
        assert pipe.stats.corrupt == before + 1, where
        assert bytes(store.get(key) or b"") == blob, where  # rewritten whole


def make_big(n: int) -> list[np.ndarray[Any, Any]]:
    return [np.full(1000, (n * 7 + i) % 256, dtype=np.uint8) for i in range(10)]


@pytest.mark.parametrize("kind", ["memory", "zarr"])
def test_writers_of_one_key_at_once_never_cost_a_reader_an_element(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parts_module, "PART_BYTES", 3000)  # the entry in 4 parts
    store = MemoryLRU(max_bytes=2**24) if kind == "memory" else ZarrStore(tmp_path / "race.zarr")
    want = [a.tolist() for a in make_big(1)]
    errors: list[str] = []

    def run(policy: str) -> None:
        for _ in range(4):
            pipe = tp.from_items([1]).cache_point().flatmap(make_big).cache(store, policy=policy)
            try:
                got = [a.tolist() for a in pipe]
            except Exception as err:
                errors.append(f"{policy}: {type(err).__name__}: {err}")
                return
            if got != want:
                errors.append(f"{policy}: {len(got)} elements, firsts {[g[0] for g in got]}")

    threads = [
        threading.Thread(target=run, args=(p,)) for p in ("refresh", "refresh", "read-write", "read-write")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    hit = tp.from_items([1]).cache_point().flatmap(make_big).cache(store)
    assert [a.tolist() for a in hit] == want
    assert (hit.stats.hits, hit.stats.corrupt) == (1, 0)


def scene(n: int) -> xr.DataArray:
    return xr.DataArray(
        np.arange(2 * 64 * 64, dtype="float32").reshape(2, 64, 64) + n,
        dims=("band", "y", "x"),
        coords={"band": [1, 2], "y": -10.0 * np.arange(64), "x": 10.0 * np.arange(64)},
        name="image",
    )


def _values_of(element: Any) -> np.ndarray[Any, Any]:
    return np.asarray(element[0] if isinstance(element, tuple) else element.values)


@pytest.mark.parametrize("output", ["xarray", "numpy"])
def test_a_consumer_writing_through_torch_never_changes_the_next_hit(output: str) -> None:
    import warnings

    import torch

    store = MemoryLRU(max_bytes=2**24)
    pipe = tp.from_items([1]).cache_point().map(scene).chip({"y": 32, "x": 32}, output=output).cache(store)
    want = [_values_of(c).copy() for c in pipe]
    for chip in pipe:  # a hit
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch: 'The given NumPy array is not writable'
            tensor = torch.as_tensor(_values_of(chip))
        tensor -= 1000.0  # the consumer's in-place normalisation
    got = [_values_of(c) for c in pipe]
    assert pipe.stats.hits == 2
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))


def placed_scene(n: int) -> xr.DataArray:
    import rioxarray  # noqa: F401 - the .rio accessor

    return scene(n).rio.write_crs("EPSG:32631")


@pytest.mark.parametrize("output", ["xarray", "numpy"])
def test_to_tensor_of_a_hit_is_the_consumer_s_own(output: str) -> None:
    """terrapipe's own path copies a read-only chip (core.dtypes.to_torch): in-place edits of the samples
    or of a loader's batches never reach the memory store (holds)."""
    import torch

    store = MemoryLRU(max_bytes=2**24)
    cached = (
        tp.from_items([1])
        .cache_point()
        .map(placed_scene)
        .chip({"y": 32, "x": 32}, output=output)
        .cache(store)
    )
    pipe = cached.to_tensor()
    want = [s["image"].clone() for s in pipe]
    for sample in pipe:
        sample["image"] -= 1000.0
    for batch in tp.loader(pipe, batch_size=4):
        batch["image"] -= 5.0
    got = [s["image"] for s in pipe]
    assert cached.stats.hits == 2  # the loader iterates its own copy of the pipe (same store)
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("kind", ["zarr", "zarr-url", "zarr-memory"])
def test_a_consumer_writing_through_torch_leaves_a_zarr_store_s_next_hit(kind: str, tmp_path: Path) -> None:
    """The sibling of the MemoryLRU case on Zarr stores (a folder, file://, memory://): holds."""
    import uuid
    import warnings

    import torch

    where = {
        "zarr": str(tmp_path / "c.zarr"),
        "zarr-url": f"file://{tmp_path / 'u.zarr'}",
        "zarr-memory": f"memory://h5-{uuid.uuid4().hex}",
    }[kind]
    pipe = tp.from_items([1]).cache_point().map(scene).chip({"y": 32, "x": 32}).cache(ZarrStore(where))
    want = [_values_of(c).copy() for c in pipe]
    for chip in pipe:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            tensor = torch.as_tensor(_values_of(chip))
        tensor -= 1000.0
    got = [_values_of(c) for c in pipe]
    assert pipe.stats.hits == 2
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
