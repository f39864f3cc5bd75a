"""Opening a remote Zarr store fetches its metadata and index coordinates at once (io/zarr_prefetch.py).

What is opened must be what xarray opens from the same bytes: compared with
``open_zarr`` of the local folder (the path that fetches nothing ahead) and
with ``xr.open_zarr``, on v2 and v3, consolidated and not, with datetime
coordinates, scale/offset, fill values, non-monotonic, one-chunk, many-chunk
and sharded coordinates, a group, and stores over HTTP (``HTTPStore``), obstore
over HTTP (``storage=``) and a listing store.
"""

from __future__ import annotations

import asyncio
import pickle
import warnings
from collections.abc import AsyncIterator, Iterable
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

from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest  # noqa: E402
from zarr.buffer import default_buffer_prototype  # noqa: E402
from zarr.storage import LocalStore, MemoryStore, WrapperStore  # noqa: E402

from terrapipe.io import zarr_prefetch  # noqa: E402
from terrapipe.io.http_store import HTTPStore  # noqa: E402
from terrapipe.io.obstore_runtime import run_on_thread_loop  # noqa: E402
from terrapipe.io.zarr_direct import direct_zarr  # noqa: E402
from terrapipe.io.zarr_prefetch import PrefetchedStore, prefetch_open  # noqa: E402

TIMES = 5


def cube() -> xr.Dataset:
    """A cube with the coordinates xarray decodes on opening: datetimes, scaled, masked, unsorted."""
    rng = np.random.default_rng(3)
    ds = xr.Dataset(
        {
            "v": (("time", "level", "y", "x"), rng.normal(280, 5, (TIMES, 3, 6, 8)).astype("float32")),
            "n": (("y", "x"), np.arange(48, dtype="uint16").reshape(6, 8)),
        },
        coords={
            "time": np.datetime64("2024-06-01", "ns") + np.arange(TIMES) * np.timedelta64(6, "h"),
            "level": [850.0, np.nan, 500.0],  # a fill value in an index
            "y": [30.5, 20.5, 40.5, 10.5, 0.5, 50.5],  # not monotonic
            "x": 100.0 + 0.25 * np.arange(8),  # stored scaled (int16, scale_factor, add_offset)
            "lat": (("y", "x"), np.linspace(-1, 1, 48).reshape(6, 8)),  # not an index: stays lazy
        },
        attrs={"title": "prefetch", "history": "made in a test"},
    )
    ds.v.attrs.update(units="K", long_name="temperature")
    ds.x.attrs["units"] = "degrees_east"
    return ds.rio.write_crs("EPSG:4326")


def encoding(zarr_format: int, *, shards: bool = False) -> dict[str, Any]:
    enc: dict[str, Any] = {
        "v": {"chunks": (1, 3, 3, 4), "scale_factor": 0.01, "add_offset": 280.0, "dtype": "int16",
              "_FillValue": -32768},
        "time": {"chunks": (2,), "units": "hours since 2024-01-01", "dtype": "int64"},  # 3 chunks
        "level": {"_FillValue": -9999.0},
        "x": {"dtype": "int16", "scale_factor": 0.25, "add_offset": 100.0, "_FillValue": -1},
    }  # fmt: skip
    if shards and zarr_format == 3:
        enc["y"] = {"chunks": (2,), "shards": (6,)}
    return enc


def write(
    root: Path, zarr_format: int, consolidated: bool, *, group: str | None = None, shards: bool = False
) -> Path:
    path = root / unique(f"pre-v{zarr_format}{'c' if consolidated else 'u'}.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr's notes on v3 consolidated metadata
        cube().to_zarr(
            path,
            zarr_format=zarr_format,
            consolidated=consolidated,
            encoding=encoding(zarr_format, shards=shards),
            group=group,
        )
    return path


def assert_same(ours: xr.Dataset, ref: xr.Dataset, *, plain: bool = False, ordered: bool = True) -> None:
    """Values, coordinates, attributes, dtypes and encoding; ``plain``: ``ref`` is xarray's own open.

    ``ordered=False`` for a listed store: zarr yields a listed group's members as their metadata
    arrives (``asyncio.as_completed``), so their order varies from one open to the next anyway.
    """
    xr.testing.assert_identical(ours, ref)
    assert (list if ordered else sorted)(ours.variables) == (list if ordered else sorted)(ref.variables)
    assert ours.xindexes.keys() == ref.xindexes.keys()
    # open_zarr adds these (the source, the chunks by name, the CRS the rioxarray way)
    added = ("source", "preferred_chunks", "grid_mapping") if plain else ("source",)
    for name, var in ref.variables.items():
        assert ours[name].dtype == var.dtype, name
        mine = {k: _comparable(v) for k, v in ours[name].encoding.items() if k not in added}
        theirs = {k: _comparable(v) for k, v in var.encoding.items() if k not in added}
        assert mine == theirs, name


def _comparable(value: Any) -> Any:
    return value if isinstance(value, np.dtype) else repr(value)  # codecs compare by repr


def _xarray(path: Path, consolidated: bool, group: str | None = None) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(path, chunks=None, consolidated=consolidated, decode_coords="all", group=group)


# -- the same Dataset as without prefetching -----------------------------------------------------------
@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("through", ["http", "obstore"])
def test_remote_open_equals_local_and_xarray(http_root, server, zarr_format, through):
    path = write(http_root, zarr_format, consolidated=True)
    storage = tp.Storage() if through == "obstore" else None
    ours = tp.open_zarr(f"{server.url}/{path.name}", storage=storage)
    assert_same(ours, tp.open_zarr(path))  # the local open fetches nothing ahead
    assert_same(ours.drop_vars("spatial_ref"), _xarray(path, True).drop_vars("spatial_ref"), plain=True)
    assert np.isnat(ours.time.values).sum() == 0
    assert np.isnan(ours.level.values).sum() == 1


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("consolidated", [True, False, None])
def test_listing_store_open_equals_xarray(tmp_path, zarr_format, consolidated):
    """A store that can list (a bucket): without consolidated metadata the listing is fetched ahead too."""
    path = write(tmp_path, zarr_format, consolidated=bool(consolidated))
    store = run_on_thread_loop(prefetch_open(LocalStore(path, read_only=True), None, consolidated))
    assert ("" in store.listings) is not bool(consolidated)  # listed only without consolidated metadata
    with Offline(store), warnings.catch_warnings():  # nothing beyond what was fetched ahead is read
        warnings.simplefilter("ignore")
        ours = xr.open_zarr(store, chunks=None, consolidated=consolidated, decode_coords="all")
    store.release()
    assert_same(ours, _xarray(path, bool(consolidated)), plain=True, ordered=bool(consolidated))


def test_dask_chunks(http_root, server):
    pytest.importorskip("dask")
    path = write(http_root, 3, consolidated=True)
    ours = tp.open_zarr(f"{server.url}/{path.name}", chunks={})
    assert ours.v.chunks == tp.open_zarr(path, chunks={}).v.chunks
    assert_same(ours.compute(), tp.open_zarr(path).compute())


def test_sharded_coordinate_is_served_by_ranges_of_the_fetched_shard(http_root, server):
    path = write(http_root, 3, consolidated=True, shards=True)
    ours = tp.open_zarr(f"{server.url}/{path.name}")
    assert_same(ours, tp.open_zarr(path))
    log = server.stats()["log"]
    assert [e["range"] for e in log if "/y/" in e["path"]] == [None]  # the shard once, whole


def test_group(http_root, server):
    path = write(http_root, 2, consolidated=True, group="g1")
    ours = tp.open_zarr(f"{server.url}/{path.name}", group="g1")
    assert_same(ours, tp.open_zarr(path, group="g1"))
    assert f"/{path.name}/g1/time/0" in server.stats()["paths"]


@pytest.fixture(scope="module")
def s3() -> Any:
    """The S3 server with a store of each format, consolidated and not (written before rclone lists them)."""
    import os

    from tests.servers.object_stores import (
        ALLOW_SKIP_ENV,
        S3_KEY_ID,
        S3_SECRET,
        ServerMissingError,
        start_s3_server,
    )

    try:
        server = start_s3_server(("private",))
    except ServerMissingError as err:  # CI has rclone (the test extra); a bare machine may skip
        if os.environ.get(ALLOW_SKIP_ENV) == "1":
            pytest.skip(str(err))
        raise
    try:
        bucket = Path(server.extra["root"]) / "private"
        paths = {(f, c): write(bucket, f, consolidated=c) for f in (2, 3) for c in (True, False)}
        storage = tp.Storage(
            s3_endpoint=server.endpoint, key_id=S3_KEY_ID, secret=S3_SECRET, region="us-east-1"
        )
        yield paths, storage
    finally:
        server.stop()


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("consolidated", [True, False])
def test_bucket_open_equals_local(s3, zarr_format, consolidated, monkeypatch):
    """On a bucket (it lists): the listing and each array's metadata are fetched ahead without consolidation."""
    paths, storage = s3
    path = paths[zarr_format, consolidated]
    made: list[PrefetchedStore] = []

    async def spy(*args: Any, **kwargs: Any) -> PrefetchedStore:
        made.append(await prefetch_open(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(zarr_prefetch, "prefetch_open", spy)
    ours = tp.open_zarr(f"s3://private/{path.name}", storage=storage)
    assert_same(ours, tp.open_zarr(path), ordered=consolidated)
    assert len(made) == 1
    assert made[0].fetched == {}  # released
    assert _store_of(ours.n.variable) is made[0]


# -- what is requested ---------------------------------------------------------------------------------
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_each_key_is_requested_once(http_root, server, zarr_format):
    """Before, xarray read the datetime coordinate three times, and each coordinate one after the other."""
    path = write(http_root, zarr_format, consolidated=True)
    tp.open_zarr(f"{server.url}/{path.name}")
    paths = server.stats()["paths"]
    assert {p: e["requests"] for p, e in paths.items() if e["requests"] != 1} == {}
    chunk = "c/" if zarr_format == 3 else ""
    coordinate_chunks = {
        f"/{path.name}/{name}/{chunk}{i}"
        for name, n in [("time", 3), ("level", 1), ("y", 1), ("x", 1)]
        for i in range(n)
    }
    assert coordinate_chunks <= set(paths)
    assert not any("/v/" in p or "/lat/" in p for p in paths)  # data and 2-D coordinates stay lazy


def test_coordinates_are_read_at_once(http_root):
    """All six coordinate chunks are in flight together (before: three arrays one after another)."""
    from tests.servers.latency_http import latency_server

    path = write(http_root, 2, consolidated=True)
    with latency_server(http_root, latency=0.2, rate=0) as slow:
        tp.open_zarr(f"{slow.url}/{path.name}")
        assert slow.link()["peak_in_flight"] >= 6


def test_bounds_leave_large_coordinates_to_xarray(http_root, server, monkeypatch):
    path = write(http_root, 3, consolidated=True)
    monkeypatch.setattr(zarr_prefetch, "MAX_COORD_BYTES", 40)  # level (24 bytes) fits, time (40) does not
    ours = tp.open_zarr(f"{server.url}/{path.name}")
    assert_same(ours, tp.open_zarr(path))
    monkeypatch.setattr(zarr_prefetch, "MAX_KEYS", 2)
    assert_same(tp.open_zarr(f"{server.url}/{path.name}"), tp.open_zarr(path))


# -- after the open --------------------------------------------------------------------------------------
def test_released_store_reads_data_pickles_and_reads_directly(http_root, server):
    path = write(http_root, 3, consolidated=True)
    ours = tp.open_zarr(f"{server.url}/{path.name}")
    store = ours.n.encoding.get("source")
    assert store == f"{server.url}/{path.name}"
    wrapped = _store_of(ours.n.variable)
    assert isinstance(wrapped, PrefetchedStore)
    assert wrapped.fetched == {}
    assert wrapped.listings == {}
    assert str(wrapped) == str(wrapped.inner)
    assert repr(wrapped) == repr(wrapped.inner)
    assert direct_zarr(ours.n.variable) is not None  # the chip stage's direct decoder sees through it
    again = pickle.loads(pickle.dumps(ours))
    assert_same(again, tp.open_zarr(path))


def _store_of(variable: xr.Variable) -> Any:
    from terrapipe.io.zarr_chunks import zarr_under

    found = zarr_under(variable)
    assert found is not None
    return found[0].store


# -- errors ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["time/0", ".zmetadata"])
def test_refused_key_is_a_read_error_naming_it(http_root, server: RangeServer, key):
    path = write(http_root, 2, consolidated=True)
    server.fault(f"/{path.name}/{key}", status=403)
    with pytest.raises(ReadError) as caught:
        tp.open_zarr(f"{server.url}/{path.name}?token=s3cr3t")
    assert f"{server.url}/{path.name}/{key}" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_transient_failure_is_retried(http_root, server: RangeServer):
    path = write(http_root, 3, consolidated=True)
    server.fault(f"/{path.name}/time/c/1", status=503, count=1)
    assert_same(tp.open_zarr(f"{server.url}/{path.name}"), tp.open_zarr(path))


@pytest.mark.parametrize("bad", [["a"], "many", [None], [1, 2]])
def test_metadata_it_cannot_read_is_left_to_zarr(http_root, server, bad):
    """An edited document: nothing is fetched ahead for it, and the open fails as it did (a ReadError)."""
    import json

    path = write(http_root, 2, consolidated=True)
    meta = json.loads((path / ".zmetadata").read_text())
    meta["metadata"]["time/.zarray"]["shape"] = bad
    (path / ".zmetadata").write_text(json.dumps(meta))
    with pytest.raises(ReadError, match="cannot open Zarr store"):
        tp.open_zarr(f"{server.url}/{path.name}")


def test_failure_that_is_not_named_is_left_to_zarr(tmp_path):
    """A store failing with another exception: nothing is kept for that key, zarr meets the failure itself."""
    path = write(tmp_path, 3, consolidated=True)

    class Flaky(WrapperStore):  # type: ignore[type-arg]
        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            if key == "time/c/0":
                raise OSError("flaky")
            return await self._store.get(key, prototype, byte_range)

    store = run_on_thread_loop(prefetch_open(Flaky(LocalStore(path, read_only=True))))
    assert "time/c/0" not in store.fetched
    assert store.fetched["time/c/1"] is not None


# -- the store's own behaviour ---------------------------------------------------------------------------
class Offline(WrapperStore):  # type: ignore[type-arg]
    """Wrap a PrefetchedStore's inner store so that any request reaching it fails the test."""

    def __init__(self, prefetched: PrefetchedStore) -> None:
        super().__init__(prefetched.inner)
        self.prefetched = prefetched

    def __enter__(self) -> Offline:
        self.inner, self.prefetched._store = self.prefetched._store, self
        return self

    def __exit__(self, *exc: object) -> None:
        self.prefetched._store = self.inner

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        raise AssertionError(f"{key} read while opening")

    async def exists(self, key: str) -> bool:
        raise AssertionError(f"{key} looked up while opening")

    def list_dir(self, prefix: str) -> AsyncIterator[str]:
        raise AssertionError(f"{prefix!r} listed while opening")


def _get(store: Any, key: str, byte_range: Any = None) -> bytes | None:
    found = asyncio.run(store.get(key, default_buffer_prototype(), byte_range))
    return None if found is None else bytes(found.to_bytes())


def test_prefetched_store_serves_ranges_and_passes_the_rest_on():
    inner = MemoryStore()
    asyncio.run(inner.set("b", default_buffer_prototype().buffer.from_bytes(b"inner")))
    store = PrefetchedStore(inner, {"a": b"0123456789", "gone": None}, {"": ("a", "b")})
    assert _get(store, "a", RangeByteRequest(2, 5)) == b"234"
    assert _get(store, "a", OffsetByteRequest(7)) == b"789"
    assert _get(store, "a", SuffixByteRequest(3)) == b"789"
    assert _get(store, "a", RangeByteRequest(8, 20)) is None  # outside: the store answers (it has no "a")
    assert _get(store, "gone") is None
    assert _get(store, "b") == b"inner"
    assert asyncio.run(store.exists("gone")) is False
    assert asyncio.run(store.exists("b")) is True

    async def names(prefix: str) -> list[str]:
        return [n async for n in store.list_dir(prefix)]

    assert asyncio.run(names("")) == ["a", "b"]
    pairs: Iterable[tuple[str, Any]] = [("a", RangeByteRequest(0, 2)), ("b", None)]
    got = asyncio.run(store.get_partial_values(default_buffer_prototype(), pairs))
    assert [g.to_bytes() if g is not None else None for g in got] == [b"01", b"inner"]
    assert store == PrefetchedStore(inner)  # as its store: equal, and hashable where it is
    http = HTTPStore("http://127.0.0.1:9/cube.zarr")
    assert hash(PrefetchedStore(http, {"a": b""})) == hash(PrefetchedStore(http))
    store.release()
    assert _get(store, "a") is None
    assert asyncio.run(names("")) == ["b"]
