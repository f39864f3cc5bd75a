"""``read_zarr`` reads a remote store's first data chunks while the store opens (io/zarr_read_ahead.py).

The chunks read ahead must be handed to whoever reads them next (the chipper's
direct decoder, or zarr-python through the store), each once, so no chunk is
read twice and every value is the one the local store gives; a read ahead
that failed is read again by its reader and named as before; ``open_zarr``
(the function) reads nothing ahead; a pickled copy or a forked child reads
every chunk itself.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.core.errors import ReadError
from tests.io.conftest import unique
from tests.servers.http_range import RangeServer

zarr = pytest.importorskip("zarr")
pytest.importorskip("obstore")

from terrapipe.io import zarr_read_ahead  # noqa: E402
from terrapipe.io.zarr_prefetch import PrefetchedStore  # noqa: E402
from terrapipe.io.zarr_read_ahead import ReadAhead, first_chunk_keys  # noqa: E402

SIDE = 24  # 4 x 6 = 24 chunks of 6 x 4


def write(root: Path, zarr_format: int) -> Path:
    path = root / unique(f"ahead-v{zarr_format}.zarr")
    rng = np.random.default_rng(zarr_format)
    ds = xr.Dataset(
        {
            "v": (("y", "x"), rng.integers(0, 1000, (SIDE, SIDE)).astype("uint16")),
            "w": (("y", "x"), rng.normal(0, 1, (SIDE, SIDE)).astype("float32")),
        },
        coords={"y": np.arange(SIDE) * -10.0 + 5000, "x": np.arange(SIDE) * 10.0},
    )
    enc = {"v": {"chunks": (6, 4)}, "w": {"chunks": (6, 4)}}
    ds.to_zarr(path, zarr_format=zarr_format, consolidated=True, encoding=enc)
    return path


def chunk_path(path: Path, zarr_format: int, name: str, row: int, col: int) -> str:
    return f"/{path.name}/{name}/" + (f"c/{row}/{col}" if zarr_format == 3 else f"{row}.{col}")


def opened(url: str, **kwargs: Any) -> xr.DataArray | xr.Dataset:
    (ds,) = list(tp.from_items([url]).read_zarr(**kwargs))
    return ds


def chips(url: str, **kwargs: Any) -> list[np.ndarray]:
    """The chips' pixels (a Dataset's variables stacked in name order)."""
    pipe = tp.from_items([url]).read_zarr(**kwargs).chip({"y": 6, "x": 4}, output="numpy")
    out = []
    for array, _meta in pipe:
        if isinstance(array, dict):
            array = np.stack([np.asarray(array[name], dtype="float64") for name in sorted(array)])
        out.append(np.array(array))
    return out


def store_of(variable: xr.Variable) -> Any:
    from terrapipe.io.zarr_chunks import zarr_under

    found = zarr_under(variable)
    assert found is not None
    return found[0].store


def requests_of(server: RangeServer, prefix: str) -> dict[str, int]:
    return {p: e["requests"] for p, e in server.stats()["paths"].items() if p.startswith(prefix)}


def wait_for(condition: Any, seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


# -- what is read, and when ------------------------------------------------------------------------------
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_first_chunks_are_read_while_the_store_opens(http_root, server, zarr_format):
    """Before: no data chunk was asked for until a reader read one."""
    path = write(http_root, zarr_format)
    ds = opened(f"{server.url}/{path.name}", variables="v")
    first = [chunk_path(path, zarr_format, "v", 0, c) for c in range(6)] + [
        chunk_path(path, zarr_format, "v", 1, 0)
    ]
    assert wait_for(lambda: set(first) <= set(requests_of(server, f"/{path.name}/v/")))
    assert not requests_of(server, f"/{path.name}/w/")  # only the variable asked for
    assert ds.shape == (SIDE, SIDE)


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("through", ["http", "obstore"])
@pytest.mark.parametrize("variables", ["v", None])
def test_chips_equal_the_local_store_and_each_chunk_is_read_once(
    http_root, server, zarr_format, through, variables
):
    path = write(http_root, zarr_format)
    storage = tp.Storage() if through == "obstore" else None
    ours = chips(f"{server.url}/{path.name}", variables=variables, storage=storage)
    local = chips(str(path), variables=variables)
    assert len(ours) == len(local) == 24
    for a, b in zip(ours, local, strict=True):
        np.testing.assert_array_equal(a, b)
    for name in ("v", "w") if variables is None else ("v",):
        counts = requests_of(server, f"/{path.name}/{name}/")
        chunk_keys = {p for p in counts if "/." not in p and not p.endswith("zarr.json")}
        assert len(chunk_keys) == 24, name
        assert {p: n for p, n in counts.items() if n != 1} == {}, name  # read ahead, then taken: once


def test_reads_through_zarr_take_the_chunks_read_ahead(http_root, server):
    path = write(http_root, 3)
    ds = opened(f"{server.url}/{path.name}", variables="v")
    store = store_of(ds.variable)
    assert isinstance(store, PrefetchedStore)
    assert store.ahead is not None
    assert len(store.ahead) > 0
    np.testing.assert_array_equal(ds.values, tp.open_zarr(path, variables="v").values)
    counts = requests_of(server, f"/{path.name}/v/c/")
    assert len(counts) == 24
    assert {p: n for p, n in counts.items() if n != 1} == {}
    assert len(store.ahead) == 0  # every chunk read ahead was handed out


def test_open_zarr_reads_nothing_ahead(http_root, server):
    path = write(http_root, 2)
    ds = tp.open_zarr(f"{server.url}/{path.name}", variables="v")
    assert store_of(ds.variable).ahead is None
    time.sleep(0.2)
    assert not requests_of(server, f"/{path.name}/v/0")


def test_isel_before_the_chip_reads_the_right_values(http_root, server):
    """A read ahead that the reader never uses changes nothing (the chunks are only held)."""
    path = write(http_root, 2)
    url = f"{server.url}/{path.name}"
    pipe = tp.from_items([url]).read_zarr(variables="v").map(lambda da: da.isel(y=slice(12, None)))
    got = [np.array(a) for a, _ in pipe.chip({"y": 6, "x": 4}, output="numpy")]
    want = tp.open_zarr(path, variables="v").isel(y=slice(12, None)).values
    assert (
        np.concatenate([np.concatenate(got[i : i + 6], axis=1) for i in range(0, 12, 6)]).tolist()
        == want.tolist()
    )


# -- failures -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("through", ["http", "obstore"])
def test_a_refused_chunk_read_ahead_is_read_again_and_named(http_root, server, through):
    path = write(http_root, 2)
    server.fault(f"/{path.name}/v/0.1", status=403)
    storage = tp.Storage(retries=0) if through == "obstore" else None
    ds = opened(
        f"{server.url}/{path.name}?sig=s3cr3t", variables="v", storage=storage
    )  # the open itself works
    with pytest.raises(ReadError) as caught:
        list(tp.from_items([ds]).chip({"y": 6, "x": 4}, output="numpy"))
    assert f"{server.url}/{path.name}/v/0.1" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
    assert requests_of(server, f"/{path.name}/v/0.1")[f"/{path.name}/v/0.1"] >= 2  # ahead, then its reader


def test_a_transient_failure_is_retried_by_the_read_ahead(http_root, server):
    path = write(http_root, 3)
    server.fault(f"/{path.name}/v/c/0/0", status=503, count=1)
    got = chips(f"{server.url}/{path.name}", variables="v")
    np.testing.assert_array_equal(got[0], tp.open_zarr(path, variables="v").values[:6, :4])


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_missing_chunk_read_ahead_is_the_fill_value(http_root, server, zarr_format):
    """Also a v2 array whose fill value is null (xarray writes such): zeros, as zarr reads it (was a TypeError)."""
    path = write(http_root, zarr_format)
    os.remove(str(path) + chunk_path(path, zarr_format, "v", 0, 0)[len(f"/{path.name}") :])
    got = chips(f"{server.url}/{path.name}", variables="v")
    local = chips(str(path), variables="v")  # zarr's fill value where the chunk has no file
    assert (got[0] == got[0].flat[0]).all()
    for a, b in zip(got, local, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_failed_open_leaves_no_read_ahead_running(http_root, server, monkeypatch):
    path = write(http_root, 2)
    server.fault(f"/{path.name}/x/0", status=403)
    settled: list[int] = []
    real = ReadAhead.settle

    def spy(self: ReadAhead) -> None:
        real(self)
        settled.append(len(self))

    monkeypatch.setattr(ReadAhead, "settle", spy)
    with pytest.raises(ReadError):
        opened(f"{server.url}/{path.name}", variables="v")
    assert settled == [0]


# -- copies and forks --------------------------------------------------------------------------------------
def test_a_pickled_copy_reads_every_chunk_itself(http_root, server):
    path = write(http_root, 2)
    ds = opened(f"{server.url}/{path.name}", variables="v")
    again = pickle.loads(pickle.dumps(ds))
    assert len(store_of(again.variable).ahead) == 0
    np.testing.assert_array_equal(again.values, tp.open_zarr(path, variables="v").values)
    np.testing.assert_array_equal(ds.values, again.values)


def test_read_ahead_in_another_process_is_not_used():
    gate = threading.Event()
    ahead = ReadAhead(lambda key: (gate.wait(5), key.encode())[1], ["a", "b"], wait=5.0)
    ahead.pid = -1  # as in a forked child, where the threads reading them do not exist
    assert ahead.take("a") == (False, None)
    gate.set()
    ahead.pid = os.getpid()
    assert ahead.take("b") == (True, b"b")


def test_take_waits_at_most_the_deadline_and_failures_are_not_values():
    def fetch(key: str) -> bytes | None:
        if key == "slow":
            time.sleep(1.0)
        if key == "bad":
            raise ReadError("refused")
        return None

    ahead = ReadAhead(fetch, ["slow", "bad", "gone"], wait=0.1)
    assert ahead.take("slow") == (False, None)  # late: the reader reads it again
    assert ahead.take("bad") == (False, None)
    assert ahead.take("gone") == (True, None)  # the store has no such chunk: the fill value
    assert len(ahead) == 0


def test_settle_waits_for_the_reads_running():
    done: list[str] = []

    def fetch(key: str) -> bytes:
        time.sleep(0.2)
        done.append(key)
        return b""

    ahead = ReadAhead(fetch, ["a", "b", "c"], wait=5.0)
    ahead.settle()
    assert sorted(done) == ["a", "b", "c"]
    assert len(ahead) == 0


# -- which chunks --------------------------------------------------------------------------------------------
def _v2(shape: list[int], chunks: list[int], dtype: str = "<u2", **extra: Any) -> dict[str, Any]:
    return {"shape": shape, "chunks": chunks, "dtype": dtype, **extra}


def _v3(shape: list[int], chunks: list[int], **extra: Any) -> dict[str, Any]:
    meta = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": "uint16",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
        "codecs": [{"name": "bytes"}],
    }
    return {**meta, **extra}


def test_keys_are_the_first_chunks_in_grid_order_taking_turns():
    members = {"a/.zarray": _v2([4, 4], [2, 2]), "b/.zarray": _v2([2, 6], [2, 2], dimension_separator="/")}
    assert first_chunk_keys(members, ["a", "b"], "", 5, 10**6) == [
        "a/0.0",
        "b/0/0",
        "a/0.1",
        "b/0/1",
        "a/1.0",
    ]
    assert first_chunk_keys(members, ["b", "missing"], "g/", 10, 10**6) == ["g/b/0/0", "g/b/0/1", "g/b/0/2"]


def test_keys_stay_within_the_byte_bound():
    members = {"a/.zarray": _v2([4, 4], [2, 2])}  # 8 bytes a chunk
    assert first_chunk_keys(members, ["a"], "", 10, 17) == ["a/0.0", "a/0.1"]
    assert first_chunk_keys(members, ["a"], "", 10, 7) == []


def test_without_names_the_data_variables_only():
    members = {
        "v/.zarray": _v2([4, 4], [4, 4]),
        "v/.zattrs": {"_ARRAY_DIMENSIONS": ["y", "x"]},
        "x/.zarray": _v2([4], [4]),
        "x/.zattrs": {"_ARRAY_DIMENSIONS": ["x"]},
        "t/.zarray": _v2([4], [4]),  # 1-D, not an index: left out too
        "t/.zattrs": {"_ARRAY_DIMENSIONS": ["x"]},
    }
    assert first_chunk_keys(members, None, "", 10, 10**6) == ["v/0.0"]


def test_v3_key_encodings_and_what_is_left_out():
    members = {
        "d": _v3([4, 4], [2, 4]),
        "s": _v3([4, 4], [2, 4], chunk_key_encoding={"name": "default", "configuration": {"separator": "."}}),
        "v2": _v3([4, 4], [2, 4], chunk_key_encoding={"name": "v2", "configuration": {"separator": "."}}),
        "sharded": _v3([4, 4], [4, 4], codecs=[{"name": "sharding_indexed", "configuration": {}}]),
        "transformed": _v3([4, 4], [4, 4], storage_transformers=[{"name": "x"}]),
        "irregular": _v3([4, 4], [4, 4], chunk_grid={"name": "rectilinear"}),
    }
    names = ["d", "s", "v2", "sharded", "transformed", "irregular"]
    assert first_chunk_keys(members, names, "", 3, 10**6) == ["d/c/0/0", "s/c.0.0", "v2/0.0"]


@pytest.mark.parametrize(
    "meta",
    [
        {"shape": "4", "chunks": [2], "dtype": "<u2"},
        {"shape": [4], "chunks": [0], "dtype": "<u2"},
        {"shape": [4, 4], "chunks": [2], "dtype": "<u2"},
        {"shape": [True], "chunks": [1], "dtype": "<u2"},
        "not a document",
    ],
)
def test_metadata_it_cannot_read_reads_nothing_ahead(meta):
    assert first_chunk_keys({"a/.zarray": meta}, ["a"], "", 4, 10**6) == []


def test_bound_on_bytes_is_the_module_constant(http_root, server, monkeypatch):
    path = write(http_root, 2)
    monkeypatch.setattr(zarr_read_ahead, "MAX_AHEAD_BYTES", 0)
    ds = opened(f"{server.url}/{path.name}", variables="v")
    assert store_of(ds.variable).ahead is None
