"""Fault injection: COG, Zarr and STAC API requests against servers that fail on purpose.

The range server (``tests/servers/http_range.py``) and the STAC fault proxy
(``tests/stac/fault_proxy.py``) answer 500/429/503, answer slowly, drop the
connection, or send half of a body. What terrapipe promises:

- a transient fault is retried (bounded, with back-off) and the data read is
  exactly the data on the server;
- a fault that persists ends, after a bounded number of tries and a bounded
  time, in a ``ReadError`` / ``STACSearchError`` naming the URL, the cause and
  what to do;
- once the server recovers, the same URL is read again (no failure cached);
- ``on_error="skip"`` skips and counts;
- a long run with 5% of requests faulted and ``on_error="skip"`` delivers
  every sample of the healthy files exactly once, with the right values.

The 429/500/503/time-out behaviour of the STAC search itself is in
``tests/stac/test_stac_faults.py``, the GDAL time-out in
``tests/io/test_io_raster_errors.py``; not repeated here.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.core.errors import ReadError, STACSearchError
from terrapipe.io.http_store import HTTPStore
from tests.reliability.data import ORIGIN, PIXEL, cube, write_cog, write_zarr
from tests.servers.http_range import RangeServer
from tests.stac.fault_proxy import FaultProxy

pytestmark = pytest.mark.timeout(120)

FAST_STAC = {"storage": tp.Storage(timeout=2.0, retries=3, backoff=0.01, max_backoff=0.05)}

#: (kind, status, delay) of each fault the servers inject.
FAULTS = {
    "500": ("status", 500, 0.0),
    "429": ("status", 429, 0.0),
    "503": ("status", 503, 0.0),
    "drop": ("drop", None, 0.0),
    "truncate": ("truncate", None, 0.0),
    "slow": ("status", None, 0.3),
}
#: What the message of a persistent fault says (the cause), per kind.
CAUSES = {"503": "HTTP 503", "drop": "closed without an answer", "truncate": "cut short"}


def _name(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def _fault(server: RangeServer | FaultProxy, prefix: str, name: str, **kwargs: Any) -> None:
    kind, status, delay = FAULTS[name]
    server.fault(prefix, kind=kind, status=status, delay=delay, **kwargs)


def _fast_store(url: str, *, retries: int = 3, timeout: float = 5.0) -> HTTPStore:
    return HTTPStore(url, retries=retries, retry_delay=0.01, timeout=timeout)


# -- transient faults are retried ---------------------------------------------------------------------


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_transient_fault_on_a_cog_read_is_retried(fault: str, server: RangeServer, http_root: Path) -> None:
    path = http_root / f"{_name('cog')}.tif"
    data = write_cog(path, seed=1)
    da = tp.open_raster(server.url_for(path))
    _fault(server, f"/{path.name}", fault, count=1)
    np.testing.assert_array_equal(da[:, :128, :128].values, data[:, :128, :128])
    served_faults = server.stats()["faults_served"]
    assert sum(served_faults.values()) == 1


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_transient_fault_on_a_zarr_chunk_is_retried(
    fault: str, server: RangeServer, http_root: Path
) -> None:
    ds = cube(times=2, size=64)
    path = write_zarr(http_root / f"{_name('cube')}.zarr", ds)
    remote = tp.open_zarr(_fast_store(server.url_for(path)), variables="t2m", consolidated=True)
    _fault(server, f"/{path.name}/t2m/c/", fault, count=1)
    np.testing.assert_array_equal(remote.values, ds.t2m.values)
    assert sum(server.stats()["faults_served"].values()) == 1


@pytest.mark.parametrize("fault", ["drop", "truncate", "slow"])
def test_a_transient_fault_on_a_stac_page_is_retried(
    fault: str, stac_proxy: FaultProxy, sample_world: Any
) -> None:
    _fault(stac_proxy, "/search", fault, count=1)
    got = [i.id for i in tp.search_stac(stac_proxy.url, collections=["demo-s2"], limit=2, **FAST_STAC)]
    assert got == list(sample_world.s2_item_ids)


# -- persistent faults end in a named error, after bounded tries and time ----------------------------


@pytest.mark.parametrize("fault", ["503", "drop"])
def test_a_persistent_fault_on_a_cog_ends_in_a_read_error(
    fault: str, server: RangeServer, http_root: Path
) -> None:
    path = http_root / f"{_name('dead')}.tif"
    write_cog(path)
    da = tp.open_raster(server.url_for(path))
    _fault(server, f"/{path.name}", fault)
    started = time.monotonic()
    with pytest.raises(ReadError) as info:
        da[:, :128, :128].values  # noqa: B018
    message = str(info.value)
    assert path.name in message
    assert CAUSES[fault] in message
    assert any(hint in message for hint in ("retry later", "re-create or re-download", "check the server"))
    assert time.monotonic() - started < 10
    faults = sum(server.stats()["faults_served"].values())
    assert 1 < faults <= 4 * 4  # GDAL_HTTP_MAX_RETRY=3: 4 tries (GDAL's or ours) of at most a few ranges


def test_cog_answers_that_are_always_cut_short_still_give_the_exact_pixels(
    server: RangeServer, http_root: Path
) -> None:
    path = http_root / f"{_name('short')}.tif"
    data = write_cog(path, seed=5)
    da = tp.open_raster(server.url_for(path))
    _fault(server, f"/{path.name}", "truncate")
    np.testing.assert_array_equal(da[:, :128, :128].values, data[:, :128, :128])  # GDAL asks for the rest
    assert server.stats()["faults_served"]["truncate"] >= 1


@pytest.mark.parametrize("fault", list(CAUSES))
def test_a_persistent_fault_on_a_zarr_chunk_ends_in_a_read_error(
    fault: str, server: RangeServer, http_root: Path
) -> None:
    ds = cube(times=1, size=32)
    path = write_zarr(http_root / f"{_name('cube')}.zarr", ds)
    remote = tp.open_zarr(_fast_store(server.url_for(path), retries=2), variables="t2m", consolidated=True)
    _fault(server, f"/{path.name}/t2m/c/", fault)
    with pytest.raises(ReadError, match=r"t2m/c/0/0/0'.*\(after 3 tries\); .*(retry later|check the server)"):
        remote.values  # noqa: B018
    assert server.stats()["faults_served"] == {FAULTS[fault][0]: 3}


def test_a_zarr_chunk_slower_than_the_timeout_is_retried_then_named(
    server: RangeServer, http_root: Path
) -> None:
    ds = cube(times=1, size=32)
    path = write_zarr(http_root / f"{_name('cube')}.zarr", ds)
    remote = tp.open_zarr(
        _fast_store(server.url_for(path), retries=1, timeout=0.3), variables="t2m", consolidated=True
    )
    server.fault(f"/{path.name}/t2m/c/", status=None, delay=0.6, count=1)
    np.testing.assert_array_equal(remote.values, ds.t2m.values)  # the second try answers at once
    server.fault(f"/{path.name}/t2m/c/", status=None, delay=0.6)
    with pytest.raises(
        ReadError, match=r"did not answer within 0\.3 s \(after 2 tries\); check that it is up"
    ):
        remote.values  # noqa: B018


@pytest.mark.parametrize("fault", ["drop", "truncate"])
def test_a_persistent_fault_on_a_stac_api_ends_in_a_search_error(fault: str, stac_proxy: FaultProxy) -> None:
    _fault(stac_proxy, "/search", fault)
    started = time.monotonic()
    with pytest.raises(
        STACSearchError, match=r"/search: .* \(after 4 tries\); check (that )?the server"
    ) as info:
        list(tp.search_stac(stac_proxy.url, collections=["demo-s2"], **FAST_STAC))
    assert stac_proxy.url in str(info.value)
    assert sum(1 for entry in stac_proxy.log() if entry["path"] == "/search") == 4
    assert time.monotonic() - started < 5


# -- recovery: a failure is not remembered --------------------------------------------------------------


def test_a_cog_that_failed_to_open_opens_once_the_server_recovers(
    server: RangeServer, http_root: Path
) -> None:
    path = http_root / f"{_name('flaky')}.tif"
    data = write_cog(path, seed=2)
    for fault in ("503", "drop", "truncate"):
        url = f"{server.url_for(path)}?try={fault}"  # GDAL caches by URL: a fresh one per kind
        _fault(server, f"/{path.name}", fault)
        with pytest.raises(ReadError, match=CAUSES[fault]):
            tp.open_raster(url)
        server.clear_faults()
        np.testing.assert_array_equal(tp.open_raster(url).values, data)  # GDAL asks the server again


def test_a_cog_read_that_failed_succeeds_once_the_server_recovers(
    server: RangeServer, http_root: Path
) -> None:
    path = http_root / f"{_name('flaky')}.tif"
    data = write_cog(path, seed=3)
    da = tp.open_raster(server.url_for(path))
    _fault(server, f"/{path.name}", "503")
    with pytest.raises(ReadError):
        da.values  # noqa: B018
    server.clear_faults()
    np.testing.assert_array_equal(da.values, data)


def test_a_vector_that_failed_to_open_opens_once_the_server_recovers(
    server: RangeServer, http_root: Path
) -> None:
    import geopandas as gpd
    from shapely.geometry import box

    path = http_root / f"{_name('roads')}.fgb"
    gpd.GeoDataFrame({"a": [1, 2]}, geometry=[box(0, 0, 1, 1), box(2, 2, 3, 3)], crs="EPSG:4326").to_file(
        path
    )
    _fault(server, f"/{path.name}", "503")
    with pytest.raises(ReadError, match=r"HTTP 503"):
        tp.open_vector(server.url_for(path))
    server.clear_faults()
    assert len(tp.open_vector(server.url_for(path))) == 2


# -- on_error="skip" skips and counts ------------------------------------------------------------------


def test_skip_counts_files_that_cannot_be_opened(server: RangeServer, http_root: Path) -> None:
    paths = [http_root / f"{_name('s')}.tif" for _ in range(4)]
    for i, path in enumerate(paths):
        write_cog(path, seed=i, size=64)
    _fault(server, f"/{paths[1].name}", "503")
    _fault(server, f"/{paths[3].name}", "drop")
    pipe = tp.from_items([server.url_for(p) for p in paths]).read_raster(on_error="skip")
    opened = [da.encoding["source"] for da in pipe]
    assert opened == [server.url_for(paths[0]), server.url_for(paths[2])]
    assert pipe.stats.skipped == 2
    assert paths[1].name in pipe.stats.last_errors[0]
    assert paths[3].name in pipe.stats.last_errors[1]


def test_skip_counts_the_windows_of_blocks_that_cannot_be_read(server: RangeServer, http_root: Path) -> None:
    path = http_root / f"{_name('mid')}.tif"
    data = write_cog(path, seed=4, size=256, block=128)
    da = tp.open_raster(server.url_for(path))
    _fault(server, f"/{path.name}", "503")  # after the open: every block read fails
    chips = tp.from_items([da]).chip(128, on_error="skip", workers=0)
    assert list(chips) == []
    assert chips.stats.skipped == 4  # one per window group (here: one window each)
    server.clear_faults()
    values = [c.values for c in chips]  # next epoch: the server is back
    assert len(values) == 4
    np.testing.assert_array_equal(values[0], data[:, :128, :128])


# -- the long run ----------------------------------------------------------------------------------------

N_COGS = 24
DEAD = (5, 17)  # these files fail on every request: skipped and counted
SIZE = 512
CHIP = 128
ZARR_CHUNK = 16  # 8 x 8 x 8 = 512 chunks: one request each


@pytest.fixture
def long_run_files(http_root: Path) -> dict[str, Any]:
    folder = http_root / _name("long-run")
    folder.mkdir()
    cogs = {}
    for i in range(N_COGS):
        path = folder / f"scene-{i:02d}.tif"
        cogs[path.name] = write_cog(path, seed=100 + i, size=SIZE, block=CHIP)
    ds = cube(times=8, size=128, seed=7)
    zarr_path = write_zarr(folder / "cube.zarr", ds, chunks=(1, ZARR_CHUNK, ZARR_CHUNK))
    return {"folder": folder, "cogs": cogs, "cube": ds, "zarr": zarr_path}


def _inject_five_percent(server: RangeServer | FaultProxy, prefix: str, seed: int) -> None:
    """Hit ~5% of the requests under ``prefix``, with each kind of fault in turn."""
    mix = [
        {"kind": kind, "status": status, "delay": 0.05 if delay else 0.0}
        for kind, status, delay in FAULTS.values()
    ]
    if isinstance(server, RangeServer):
        server.fault(prefix, rate=0.05, seed=seed, cycle=mix)
        return
    for k, entry in enumerate(mix):  # the proxy has no cycle: six faults of ~0.85% each
        server.fault(
            prefix,
            kind=entry["kind"],
            status=entry["status"],
            delay=entry["delay"],
            rate=0.0086,
            seed=seed + k,
        )


def test_five_percent_faults_with_skip_deliver_every_healthy_sample_exactly_once(
    server: RangeServer, stac_proxy: FaultProxy, long_run_files: dict[str, Any], sample_world: Any
) -> None:
    folder: Path = long_run_files["folder"]
    for i in DEAD:
        server.fault(f"/{folder.name}/scene-{i:02d}.tif", status=503)  # first: these always fail
    _inject_five_percent(server, f"/{folder.name}/", seed=11)
    _inject_five_percent(stac_proxy, "/search", seed=23)

    # COGs: read_raster -> chip, both skipping what fails
    urls = [server.url_for(folder / name) for name in sorted(long_run_files["cogs"])]
    opened = tp.from_items(urls).read_raster(on_error="skip")
    chips = opened.chip(CHIP, output="numpy", workers=0, on_error="skip")
    seen: Counter[tuple[str, int, int]] = Counter()
    for array, meta in chips:
        name = meta["source_ids"][0].rsplit("/", 1)[1]
        row = round((ORIGIN[1] - meta["transform"][5]) / PIXEL)
        col = round((meta["transform"][2] - ORIGIN[0]) / PIXEL)
        np.testing.assert_array_equal(
            array, long_run_files["cogs"][name][:, row : row + CHIP, col : col + CHIP]
        )
        seen[(name, row, col)] += 1
    healthy = [n for i, n in enumerate(sorted(long_run_files["cogs"])) if i not in DEAD]
    expected = {(n, r, c) for n in healthy for r in range(0, SIZE, CHIP) for c in range(0, SIZE, CHIP)}
    assert set(seen) == expected
    assert set(seen.values()) == {1}
    assert opened.stats.skipped == len(DEAD)
    assert chips.stats.skipped == 0  # every transient fault was retried

    # Zarr: every chunk read through the faulty server
    ds = long_run_files["cube"]
    store = HTTPStore(server.url_for(long_run_files["zarr"]), retries=3, retry_delay=0.01, timeout=5)
    remote = tp.open_zarr(store, variables="t2m", consolidated=True)
    zarr_chips = tp.from_items([remote]).chip(
        {"time": 1, "y": ZARR_CHUNK, "x": ZARR_CHUNK}, workers=0, on_error="skip"
    )
    zarr_seen: Counter[tuple[int, int, int]] = Counter()
    times = list(ds.time.values)
    for chip in zarr_chips:
        t = times.index(chip.time.values[0])
        row = round((ORIGIN[1] - float(chip.y[0])) / PIXEL - 0.5)
        col = round((float(chip.x[0]) - ORIGIN[0]) / PIXEL - 0.5)
        expected_values = ds.t2m.values[t : t + 1, row : row + ZARR_CHUNK, col : col + ZARR_CHUNK]
        np.testing.assert_array_equal(chip.values, expected_values)
        zarr_seen[(t, row, col)] += 1
    assert len(zarr_seen) == 8 * 8 * 8
    assert set(zarr_seen.values()) == {1}
    assert zarr_chips.stats.skipped == 0

    # STAC: 60 paged searches through the faulty proxy
    queries = [{"collections": ["demo-s2"]}, {"collections": ["demo-dem"]}] * 30
    pipe = tp.from_items(queries).search_stac(stac_proxy.url, limit=1, on_error="skip", **FAST_STAC)
    ids = Counter(item.id for item in pipe)
    assert ids == Counter({**dict.fromkeys(sample_world.s2_item_ids, 30), "demo-dem-30m": 30})
    assert pipe.stats.skipped == 0

    stats = server.stats()
    hit = stats["faults_served"]
    assert set(hit) == {"status", "drop", "truncate", "delay"}, hit
    dead = sum(v["requests"] for k, v in stats["paths"].items() if any(f"scene-{i:02d}" in k for i in DEAD))
    healthy_requests = stats["total_requests"] - dead
    assert healthy_requests < 5000
    assert 0.025 < (sum(hit.values()) - dead) / healthy_requests < 0.1
