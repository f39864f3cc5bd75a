"""Keys: stable across processes, changed by any change of element or configuration."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import xarray as xr

import terrapipe as tp
from terrapipe.cache import (
    MemoryLRU,
    UnkeyableValueError,
    canonical,
    describe_stage,
    element_identity,
    find_segment,
)
from terrapipe.cache.canonical import digest_json
from terrapipe.core.errors import InvalidArgumentError
from tests.cache.conftest import write_raster

SCALE = 2


def scaled(x: int) -> int:
    return x * SCALE


def key(value: Any) -> str:
    return digest_json(canonical(value))


def config_of(make_segment: Any) -> str:
    point = tp.from_items([1]).cache_point()
    return str(make_segment(point).cache(MemoryLRU(2**20)).config_digest)


SCRIPT = textwrap.dedent(
    """
    import terrapipe as tp, terrapipe.cache
    from terrapipe.cache import MemoryLRU
    import numpy as np

    def clip(x, low=0, high=10):
        return min(max(x, low), high)

    pipe = (tp.from_items(["a.tif", "b.tif"]).cache_point().map(clip).filter(lambda x: x != 3)
            .flatmap(lambda x: [x] * 2).cache(MemoryLRU(2**20), version="v1"))
    print(pipe.config_digest, pipe.key_of({"path": "a.tif", "window": (0, 0, np.int64(256), 256.5)}))
    """
)


def test_keys_are_the_same_in_another_process(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONHASHSEED": "random"}
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    namespace: dict[str, Any] = {"__name__": "__main__"}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(SCRIPT.replace("print(", "result = ("), "<string>", "exec"), namespace)
    finally:
        os.chdir(cwd)
    assert " ".join(namespace["result"]) == run.stdout.strip()  # another string-hash salt, same keys


def test_any_parameter_change_changes_the_configuration() -> None:
    base = config_of(lambda p: p.map(scaled).flatmap(lambda x: [x, x]))
    assert base == config_of(lambda p: p.map(scaled).flatmap(lambda x: [x, x]))
    variants = [
        lambda p: p.map(scaled).flatmap(lambda x: [x, x, x]),  # another body
        lambda p: p.map(scaled).flatmap(lambda y: [y, y]),  # another argument name
        lambda p: p.map(functools.partial(pow, 2)).flatmap(lambda x: [x, x]),
        lambda p: p.map(scaled).flatmap(lambda x: [x, x]).map(abs),  # one more stage
        lambda p: p.flatmap(lambda x: [x, x]).map(scaled),  # another order
    ]
    digests = {config_of(v) for v in variants}
    assert len(digests) == len(variants)
    assert base not in digests


def test_closure_defaults_and_globals_are_part_of_a_function() -> None:
    def make(factor: int, offset: int = 0) -> Any:
        return lambda x: x * factor + offset

    assert key(make(2)) == key(make(2))
    assert key(make(2)) != key(make(3))
    assert key(functools.partial(pow, 2)) != key(functools.partial(pow, 3))

    global SCALE
    before = key(scaled)
    SCALE = 3
    try:
        assert key(scaled) != before
    finally:
        SCALE = 2

    def with_default(x: int, k: int = 1) -> int:
        return x + k

    before = key(with_default)
    with_default.__defaults__ = (2,)
    assert key(with_default) != before


def test_stage_options_are_described_but_execution_options_are_not(tmp_path: Path) -> None:
    pytest.importorskip("terrapipe.io")
    path = write_raster(tmp_path / "a.tif")
    point = tp.from_items([str(path)]).cache_point()
    one = describe_stage(point.read_raster(bands=[1], on_error="skip"))
    two = describe_stage(point.read_raster(bands=[1], on_error="raise"))
    three = describe_stage(point.read_raster(bands=[2]))
    assert one == two != three


def test_file_size_and_mtime_are_part_of_the_identity(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "a.tif")
    spec = {"path": str(path), "row": 0}
    before = element_identity(spec)
    assert element_identity(spec) == before
    assert element_identity({"path": str(path), "row": 32}) != before
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert element_identity(spec) != before
    assert element_identity(Path(path)) != element_identity(str(path))  # typed differently, keyed differently
    assert element_identity("no/such/file.tif") == "no/such/file.tif"
    for uri in (f"file://{path}", f"file:{path}"):  # file URIs are files too
        assert element_identity(uri) == {"file": [uri, element_identity(str(path))["file"][1]]}


def test_zarr_folder_identity_follows_its_metadata(tmp_path: Path) -> None:
    import zarr

    store = tmp_path / "cube.zarr"
    zarr.create_array(store, shape=(4,), dtype="f4")
    before = element_identity(str(store))
    time.sleep(0.01)
    zarr.create_array(store, shape=(5,), dtype="f4", overwrite=True)
    assert element_identity(str(store)) != before


def test_stac_item_identity_covers_properties_and_asset_files(tmp_path: Path) -> None:
    pystac = pytest.importorskip("pystac")
    import datetime as dt

    asset = write_raster(tmp_path / "red.tif")

    def item(cloud: float) -> Any:
        out = pystac.Item(
            "s1", None, None, dt.datetime(2024, 6, 19, tzinfo=dt.UTC), {"eo:cloud_cover": cloud}
        )
        out.add_asset("red", pystac.Asset(str(asset)))
        return out

    before = element_identity(item(10.0))
    assert element_identity(item(10.0)) == before
    assert element_identity(item(12.0)) != before
    write_raster(asset, seed=9, size=32)
    assert element_identity(item(10.0)) != before


def test_array_identities_follow_contents() -> None:
    a = np.arange(6).reshape(2, 3)
    assert key(a) == key(a.copy()) != key(a.T.copy()) != key(a.astype("int32"))
    times = np.array(["2024-06-19", "2024-08-13"], dtype="datetime64[ns]")
    assert key(times) == key(times.copy()) != key(times[::-1].copy())
    assert key(np.array(1.5)) != key(np.array(2.5))  # 0-d
    assert key(np.array(["red", "nir"])) != key(np.array(["red", "swir"]))
    t = torch.arange(6.0)
    assert key(t) == key(t.clone()) != key(t + 1)
    sample = {"image": t, "meta": {"crs": "EPSG:32631", "bounds": (0.0, 0.0, 1.0, 1.0)}}
    moved = {"image": t, "meta": {"crs": "EPSG:32631", "bounds": (0.0, 0.0, 1.0, 2.0)}}
    assert key(sample) != key(moved)


def test_lazy_dataarray_is_keyed_by_source_and_window(tmp_path: Path) -> None:
    pytest.importorskip("terrapipe.io")
    from terrapipe.io import open_raster

    path = write_raster(tmp_path / "a.tif")
    da = open_raster(str(path))
    window = da.isel(y=slice(0, 32), x=slice(0, 32))
    other = da.isel(y=slice(0, 32), x=slice(32, 64))
    ident = element_identity(window)
    assert "lazy" in repr(ident)
    assert element_identity(open_raster(str(path)).isel(y=slice(0, 32), x=slice(0, 32))) == ident
    assert element_identity(other) != ident
    loaded = window.load()
    assert element_identity(loaded) != ident  # in memory: keyed by its values
    assert element_identity(loaded) == element_identity(loaded.copy(deep=True))


def test_in_memory_dataarray_identity_covers_coords_attrs_and_crs() -> None:
    da = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"), coords={"y": [0.0, 1.0], "x": [0.0, 1.0]})
    base = element_identity(da)
    assert element_identity(da.assign_coords(x=[5.0, 6.0])) != base
    assert element_identity(da.assign_attrs(units="K")) != base
    assert element_identity(da.rio.write_crs("EPSG:4326")) != base
    timed = da.expand_dims(time=np.array(["2024-06-19"], dtype="datetime64[ns]"))
    assert element_identity(timed) != element_identity(
        timed.assign_coords(time=np.array(["2024-06-20"], dtype="datetime64[ns]"))
    )


def test_unkeyable_values_say_what_to_do() -> None:
    lock = threading.Lock()
    with pytest.raises(UnkeyableValueError, match=r"lock.*version=.*key="):
        canonical({"lock": lock}, where="Stage.option")

    class Model:
        def __call__(self, x: Any) -> Any:
            return x

    point = tp.from_items([1]).cache_point()
    with pytest.raises(InvalidArgumentError, match=r"MapperIterDataPipe\.fn.*version="):
        point.map(Model()).cache(MemoryLRU(2**20))
    pipe = point.map(Model()).cache(MemoryLRU(2**20), version="model-v1")  # version stands in
    assert pipe.config_digest != point.map(Model()).cache(MemoryLRU(2**20), version="model-v2").config_digest


def test_cache_config_hook_describes_a_stage() -> None:
    class Scale:
        def __init__(self, factor: float) -> None:
            self.factor = factor

        def cache_config(self) -> dict[str, float]:
            return {"factor": self.factor}

        def __call__(self, x: float) -> float:
            return x * self.factor

    point = tp.from_items([1]).cache_point()
    one = point.map(Scale(2.0)).cache(MemoryLRU(2**20)).config_digest
    assert one == point.map(Scale(2.0)).cache(MemoryLRU(2**20)).config_digest
    assert one != point.map(Scale(3.0)).cache(MemoryLRU(2**20)).config_digest


class TwoSources(tp.Stage[Any]):
    def __init__(self, first: Any, second: Any) -> None:
        super().__init__()
        self.first, self.second = first, second

    def __iter__(self) -> Any:
        yield from self.first
        yield from self.second


def test_segment_checks() -> None:
    items = tp.from_items([1, 2])
    with pytest.raises(InvalidArgumentError, match="needs a cache_point"):
        items.map(abs).cache(MemoryLRU(2**20))
    with pytest.raises(InvalidArgumentError, match="nothing to cache"):
        items.cache_point().cache(MemoryLRU(2**20))
    for mixing in (
        lambda p: p.shuffle(),
        lambda p: p.batch(2),
        lambda p: p.header(1),
        lambda p: p.enumerate(),
    ):
        with pytest.raises(InvalidArgumentError, match="mixes elements"):
            mixing(items.cache_point().map(abs)).cache(MemoryLRU(2**20))
    with pytest.raises(InvalidArgumentError, match="mixes elements"):
        items.cache_point().zip(items).cache(MemoryLRU(2**20))
    with pytest.raises(InvalidArgumentError, match="reads 2 pipes"):
        TwoSources(items.cache_point(), items).cache(MemoryLRU(2**20))
    inner = items.cache_point().map(abs).cache(MemoryLRU(2**20))
    with pytest.raises(InvalidArgumentError, match="another cache"):
        inner.map(abs).cache(MemoryLRU(2**20))
    # mixing stages upstream of the point are fine; the nearest point wins
    segment = find_segment(items.shuffle().cache_point().map(abs).cache_point().map(str))
    assert [type(s).__name__ for s in segment.stages] == ["MapperIterDataPipe"]


def test_check_remote_asks_the_server_for_etag(tmp_path: Path) -> None:
    from terrapipe.core.errors import ReadError
    from tests.servers.http_range import range_server

    (tmp_path / "a.tif").write_bytes(b"first version")
    with range_server(tmp_path) as server:
        url = server.url_for("a.tif")
        assert element_identity(url) == url  # without check_remote: the URL alone
        before = element_identity(url, check_remote=True)
        assert before == element_identity(url, check_remote=True)
        (tmp_path / "a.tif").write_bytes(b"second version, longer")
        assert element_identity(url, check_remote=True) != before
        pipe = tp.from_items([url]).cache_point().map(len).cache(MemoryLRU(2**20), check_remote=True)
        assert list(pipe) == [len(url)]
        with pytest.raises(ReadError, match="cannot check"):
            element_identity(server.url_for("missing.tif"), check_remote=True)


def test_geodataframe_keys_digest_each_geometrys_wkb_in_row_order() -> None:
    """The vectorised WKB digest gives the key bytes the one-geometry-at-a-time digest gave."""
    gpd = pytest.importorskip("geopandas")
    import hashlib

    import shapely
    from shapely.geometry import GeometryCollection, LineString, MultiPolygon, Point, Polygon, box

    from terrapipe.cache.canonical import wkb_digest

    geoms = [
        box(0, 0, 1, 1),
        None,
        Polygon(),
        Point(),
        LineString([(0, 0, 1), (1, 1, 2)]),
        GeometryCollection([Point(1, 2), LineString([(0, 0), (1, 1)])]),
        MultiPolygon([box(0, 0, 1, 1), box(2, 2, 3, 3)]),
        shapely.from_wkt("POINT ZM (1 2 3 4)"),
        *[Point(i, -i) for i in range(20)],
    ]
    frame = gpd.GeoDataFrame({"v": range(len(geoms))}, geometry=geoms, crs="EPSG:32631")
    one_by_one = hashlib.blake2b(b"".join(b"" if g is None else g.wkb for g in geoms), digest_size=16)
    assert wkb_digest(frame.geometry) == wkb_digest(geoms) == one_by_one.digest()
    described = canonical(frame)
    assert isinstance(described, dict)
    assert described["frame"][2] == one_by_one.hexdigest()  # type: ignore[index]
    series = canonical(frame.geometry)
    assert isinstance(series, dict)
    assert series["frame"][2] == one_by_one.hexdigest()  # type: ignore[index]
    assert key(frame) != key(frame.iloc[::-1])
    assert key(frame) == key(frame.copy())
    assert wkb_digest([]) == hashlib.blake2b(b"", digest_size=16).digest()
    assert wkb_digest([None, None]) == wkb_digest([])
    many = shapely.points(np.arange(70_000.0), np.zeros(70_000))  # more than one block of 65536
    many[65_535] = None
    expected = hashlib.blake2b(b"".join(g.wkb for g in many if g is not None), digest_size=16).digest()
    assert wkb_digest(many) == expected
