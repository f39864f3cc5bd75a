"""A VRT naming many HTTP(S) sources (a mosaic): its source check costs each source once per process.

``io/remote_sources.check_vrt_sources`` asks for every source of a VRT at its open (a source GDAL
cannot open read as zeros). It ran at each open of the VRT (each reader thread's, each pass's) and
asked for the HTTP(S) sources one after the other from one thread: 200 sources on a local server
took 8.9 s at the open against 2.7 s for the whole read of the mosaic. Now they are asked on up to
``ASK_THREADS`` threads at once, and a VRT whose HTTP(S) sources were all found is not asked again
in the process. What must hold still: a missing source is refused at every open; a remote VRT that
names a VRT is checked again at every open (the inner one may change to name a local file).
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.core.per_process import PerProcess
from terrapipe.io import remote_sources
from terrapipe.io.sidecars import rasterio_gdal
from tests.forking import in_forked_child
from tests.io.conftest import write_cog
from tests.servers.header_server import HeaderServer, start_header_server
from tests.servers.latency_http import LatencyServer, start_latency_server

pytest.importorskip("rasterio")

SOURCES = 12


def _mosaic(names: list[str], *, relative: bool = True) -> str:
    sources = "".join(
        f"""<SimpleSource><SourceFilename relativeToVRT="{int(relative)}">{name}</SourceFilename>
<SourceBand>1</SourceBand><SrcRect xOff="0" yOff="0" xSize="32" ySize="32"/>
<DstRect xOff="{32 * i}" yOff="0" xSize="32" ySize="32"/></SimpleSource>"""
        for i, name in enumerate(names)
    )
    return f"""<VRTDataset rasterXSize="{32 * len(names)}" rasterYSize="32"><SRS>EPSG:32631</SRS>
<GeoTransform>500000, 10, 0, 4000000, 0, -10</GeoTransform>
<VRTRasterBand dataType="UInt16" band="1">{sources}</VRTRasterBand></VRTDataset>"""


def _whole_mosaic(folder: Path, name: str) -> str:
    """Write the VRT ``name`` naming every tile, side by side; return its name."""
    (folder / name).write_text(_mosaic([f"s{i}.tif" for i in range(SOURCES)]))
    return name


def _on_a_new_thread(open_: Callable[[], Any]) -> Any:
    """Run ``open_`` on a thread of its own (a reader thread's first open: no handle of this thread's kept)."""
    done: list[Any] = []

    def run() -> None:
        try:
            done.append((True, open_()))
        except BaseException as err:
            done.append((False, err))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert done, "the open did not end within 60 s"
    ok, value = done[0]
    if not ok:
        raise value
    return value


def _forget_gdal_answers() -> None:
    """Make GDAL forget what it knows of remote files (as its bounded caches do, under load)."""
    gdal = rasterio_gdal()
    assert gdal is not None
    gdal.VSICurlClearCache.argtypes, gdal.VSICurlClearCache.restype = [], None
    gdal.VSICurlClearCache()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    folder = tmp_path_factory.mktemp("mosaic")
    tiles = [
        write_cog(folder / f"s{i}.tif", count=1, height=32, width=32, block=32, seed=i)[0]
        for i in range(SOURCES)
    ]
    return folder, np.concatenate(tiles, axis=1)


@pytest.fixture(scope="module")
def served(root: tuple[Path, np.ndarray]) -> Iterator[HeaderServer]:
    server = start_header_server(root[0], "Authorization=Bearer unused")
    try:
        yield server
    finally:
        server.stop()


def _source_requests(server: HeaderServer) -> list[str]:
    return [
        f"{r['method']} {r['path']}" for r in server.requests() if r["path"].split("?")[0].endswith(".tif")
    ]


def test_a_mosaic_opened_again_asks_for_no_source_again(
    root: tuple[Path, np.ndarray], served: HeaderServer, unique_name: Any
) -> None:
    folder, pixels = root
    name = _whole_mosaic(folder, unique_name("m.vrt"))
    url = f"{served.url}/{name}"
    np.testing.assert_array_equal(tp.open_raster(url).values[0], pixels)
    _forget_gdal_answers()
    served.reset()
    again = _on_a_new_thread(lambda: tp.open_raster(url, verify=False))  # the open alone: no pixel read
    assert _source_requests(served) == []  # was one HEAD per source (12), at each open
    chips = list(tp.from_items([again]).chip({"y": 32, "x": 32}, workers=4))
    np.testing.assert_array_equal(np.concatenate([c.values[0] for c in chips], axis=1), pixels)
    heads = [r for r in _source_requests(served) if r.startswith("HEAD")]
    assert len(heads) <= SOURCES + 4, heads  # GDAL's own opens at the read (a thread may race another)


def test_a_missing_source_is_refused_at_every_open_and_named_in_the_vrts_order(
    root: tuple[Path, np.ndarray], served: HeaderServer, unique_name: Any
) -> None:
    folder, _ = root
    name = unique_name("gone.vrt")
    names = [f"s{i}.tif" for i in range(SOURCES)]
    names[5], names[9] = "missing5.tif", "missing9.tif"
    (folder / name).write_text(_mosaic(names))
    for _ in range(3):
        with pytest.raises(tp.ReadError, match=r"2 of its 12 VRT source\(s\) cannot be read") as caught:
            _on_a_new_thread(lambda: tp.open_raster(f"{served.url}/{name}"))
        assert "missing5.tif" in str(caught.value)
        assert "missing9" not in str(caught.value)


def test_a_vrt_rewritten_to_name_a_missing_source_is_refused(
    root: tuple[Path, np.ndarray], served: HeaderServer, unique_name: Any
) -> None:
    folder, _ = root
    name = unique_name("changing.vrt")
    (folder / name).write_text(_mosaic([f"s{i}.tif" for i in range(3)]))
    url = f"{served.url}/{name}"
    tp.open_raster(url)  # found whole: remembered
    (folder / name).write_text(_mosaic(["s0.tif", "gone.tif", "s2.tif"]))
    _forget_gdal_answers()  # GDAL keeps the VRT's bytes too
    with pytest.raises(tp.ReadError, match="VRT source"):
        _on_a_new_thread(lambda: tp.open_raster(url))


def test_a_remote_vrt_naming_a_vrt_is_checked_again_at_every_open(
    root: tuple[Path, np.ndarray], served: HeaderServer, unique_name: Any, tmp_path: Path
) -> None:
    """The inner VRT may name a file on this machine by the next open: never remembered as good."""
    folder, _ = root
    inner, outer = unique_name("inner.vrt"), unique_name("outer.vrt")
    (folder / inner).write_text(_mosaic(["s0.tif"]))
    (folder / outer).write_text(_mosaic([f"/vsicurl/{served.url}/{inner}"], relative=False))
    tp.open_raster(f"{served.url}/{outer}")
    private = write_cog(tmp_path / "private.tif", count=1, height=32, width=32, block=32, seed=99)
    (folder / inner).write_text(_mosaic([str(tmp_path / "private.tif")], relative=False))
    _forget_gdal_answers()
    got = None
    with pytest.raises(tp.ReadError, match="names a file on this machine"):
        got = _on_a_new_thread(lambda: np.asarray(tp.open_raster(f"{served.url}/{outer}").values))
    assert got is None or not np.array_equal(got[0], private[0])


@pytest.fixture(scope="module")
def slow(root: tuple[Path, np.ndarray]) -> Iterator[LatencyServer]:
    server = start_latency_server(root[0], latency=0.2)
    try:
        yield server
    finally:
        server.stop()


def test_a_mosaics_sources_are_asked_for_at_once(
    root: tuple[Path, np.ndarray], slow: LatencyServer, unique_name: Any
) -> None:
    folder, pixels = root
    name = _whole_mosaic(folder, unique_name("slow.vrt"))
    slow.set_link(reset_peak=True)
    da = _on_a_new_thread(lambda: tp.open_raster(f"{slow.url}/{name}", verify=False))
    peak = slow.link()["peak_in_flight"]
    assert peak >= 4, peak  # was 1: one source after the other, 0.2 s each
    np.testing.assert_array_equal(da.values[0], pixels)


def test_the_source_check_never_sends_the_vrts_credential(
    root: tuple[Path, np.ndarray], served: HeaderServer, unique_name: Any
) -> None:
    folder, _ = root
    name = _whole_mosaic(folder, unique_name("auth.vrt"))
    _forget_gdal_answers()
    served.reset()
    storage = tp.Storage(headers={"Authorization": "Bearer s3cret"})
    _on_a_new_thread(lambda: tp.open_raster(f"{served.url}/{name}", storage=storage))
    sources = [r for r in served.requests() if r["path"].endswith(".tif")]
    assert sources
    assert not [r for r in sources if "s3cret" in str(r["headers"])]


def test_the_vrts_remembered_stay_within_checked_vrts(
    served: HeaderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_sources, "CHECKED_VRTS", 3)
    monkeypatch.setattr(remote_sources, "_CHECKED", PerProcess(lambda: (threading.Lock(), OrderedDict())))
    for i in range(6):
        remote_sources.check_vrt_sources(f"{served.url}/m{i}.vrt", [f"/vsicurl/{served.url}/s0.tif"])
    assert list(remote_sources._CHECKED.get()[1]) == [
        remote_sources._checked_key(f"{served.url}/m{i}.vrt", [f"/vsicurl/{served.url}/s0.tif"])
        for i in (3, 4, 5)
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork")
def test_a_forked_child_starts_with_nothing_remembered_and_checks_again(
    root: tuple[Path, np.ndarray], served: HeaderServer, unique_name: Any
) -> None:
    folder, pixels = root
    url = f"{served.url}/{_whole_mosaic(folder, unique_name('forked.vrt'))}"
    tp.open_raster(url)
    assert len(remote_sources._CHECKED.get()[1]) >= 1

    def child() -> tuple[int, int, float]:
        before = len(remote_sources._CHECKED.get()[1])  # the parent's are not the child's
        total = float(_on_a_new_thread(lambda: tp.open_raster(url).values).sum())
        return before, len(remote_sources._CHECKED.get()[1]), total

    before, after, total = in_forked_child(child)
    assert (before, after, total) == (0, 1, float(pixels.sum()))
