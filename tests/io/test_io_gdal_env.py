"""GDAL's settings come with each open and read of a remote file; the process environment is never written."""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import rasterio
from rasterio.env import get_gdal_config

import terrapipe as tp
from terrapipe.core.errors import ReadError
from terrapipe.io.gdal_env import (
    GDAL_DEFAULTS,
    PER_OPEN_KEYS,
    apply_gdal_defaults,
    gdal_env,
    gdal_options,
    open_options,
    with_http_settings,
)
from terrapipe.io.paths import gdal_path
from terrapipe.io.raster_array import RasterSource


def _raw(key: str) -> str | None:
    value = get_gdal_config(key, normalize=False)
    return None if value is None else str(value)


@pytest.fixture
def no_user_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in GDAL_DEFAULTS:
        monkeypatch.delenv(key, raising=False)


def test_reading_writes_nothing_into_the_environment(no_user_settings: None, tmp_path) -> None:
    before = dict(os.environ)
    path = tmp_path / "a.tif"
    profile = {"driver": "GTiff", "width": 4, "height": 4, "count": 1, "dtype": "uint8", "crs": "EPSG:32631"}
    with rasterio.open(path, "w", transform=rasterio.transform.from_origin(0, 40, 10, 10), **profile) as dst:
        dst.write(np.ones((1, 4, 4), "uint8"))
    assert tp.open_raster(path).values.sum() == 16
    with gdal_env():
        pass
    assert dict(os.environ) == before


def test_a_remote_source_gdal_fetches_reads_inside_the_defaults(no_user_settings: None) -> None:
    # a VRT at a URL: GDAL fetches it (and its sources) itself, with terrapipe's per-open defaults
    source = RasterSource(path="https://h/a.vrt", gdal_path=gdal_path("https://h/a.vrt"))
    for key in PER_OPEN_KEYS:
        assert _raw(key) in (None, GDAL_DEFAULTS[key]) or key == "GDAL_HTTP_MULTIPLEX"
    with source.env():
        assert {key: _raw(key) for key in PER_OPEN_KEYS} == {key: GDAL_DEFAULTS[key] for key in PER_OPEN_KEYS}
    assert "GDAL_HTTP_TIMEOUT" not in os.environ


def test_a_raster_read_through_the_byte_layer_gets_no_gdal_option(no_user_settings: None) -> None:
    # a COG at a URL: GDAL reads it through terrapipe's byte layer (io/gdal_opener.py), no GDAL_HTTP_* option
    source = RasterSource(path="https://h/a.tif", gdal_path=gdal_path("https://h/a.tif"))
    assert source.through_byte_layer
    before = {key: _raw(key) for key in PER_OPEN_KEYS}
    with source.env():
        assert {key: _raw(key) for key in PER_OPEN_KEYS} == before


def test_a_local_source_gets_no_environment() -> None:
    source = RasterSource(path="/data/a.tif", gdal_path="/data/a.tif")
    env = source.env()
    assert not isinstance(env, rasterio.Env)


def test_a_storage_environment_carries_the_other_defaults(no_user_settings: None) -> None:
    storage = tp.Storage(timeout=7, retries=1)
    with storage.rasterio_env("https://h/a.tif"):
        assert _raw("GDAL_HTTP_TIMEOUT") == "7"  # the storage's own settings win
        assert _raw("GDAL_HTTP_MAX_RETRY") == "1"
        assert _raw("GDAL_HTTP_MERGE_CONSECUTIVE_RANGES") == "YES"
        assert _raw("GDAL_HTTP_CONNECTTIMEOUT") == GDAL_DEFAULTS["GDAL_HTTP_CONNECTTIMEOUT"]


def test_user_environment_variables_win(no_user_settings: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "77")
    monkeypatch.setenv("GDAL_HTTP_MULTIPLEX", "NO")
    options = open_options()
    assert "GDAL_HTTP_TIMEOUT" not in options
    assert "GDAL_HTTP_MULTIPLEX" not in options
    assert options["GDAL_HTTP_MAX_RETRY"] == GDAL_DEFAULTS["GDAL_HTTP_MAX_RETRY"]
    with gdal_env():
        assert _raw("GDAL_HTTP_TIMEOUT") == "77"
        assert _raw("GDAL_HTTP_MULTIPLEX") == "NO"
    assert gdal_options()["GDAL_HTTP_TIMEOUT"] == "77"


def test_a_user_rasterio_env_wins(no_user_settings: None) -> None:
    with rasterio.Env(GDAL_HTTP_TIMEOUT="5"), gdal_env():
        assert _raw("GDAL_HTTP_TIMEOUT") == "5"
        assert _raw("GDAL_HTTP_MAX_RETRY") == GDAL_DEFAULTS["GDAL_HTTP_MAX_RETRY"]


def test_another_threads_environment_ending_does_not_take_ours(no_user_settings: None) -> None:
    """The main thread's rasterio.Env sets GDAL's global options; a reader thread keeps its own."""
    inside, go, seen = threading.Event(), threading.Event(), {}

    def reader() -> None:
        with gdal_env():
            inside.set()
            go.wait(10)
            seen["timeout"] = _raw("GDAL_HTTP_TIMEOUT")

    with gdal_env():  # main thread: global options
        thread = threading.Thread(target=reader)
        thread.start()
        inside.wait(10)
    go.set()  # the main thread's environment has ended
    thread.join(10)
    assert seen == {"timeout": GDAL_DEFAULTS["GDAL_HTTP_TIMEOUT"]}


def test_apply_gdal_defaults_is_only_what_you_call(
    no_user_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "77")
    assert "GDAL_HTTP_MAX_RETRY" not in os.environ
    values = apply_gdal_defaults()
    try:
        assert values["GDAL_HTTP_TIMEOUT"] == "77"
        assert os.environ["GDAL_HTTP_MAX_RETRY"] == GDAL_DEFAULTS["GDAL_HTTP_MAX_RETRY"]
    finally:
        for key in GDAL_DEFAULTS:
            if key != "GDAL_HTTP_TIMEOUT":
                os.environ.pop(key, None)


def test_http_settings_go_into_a_vsicurl_name(
    no_user_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "9")
    name = with_http_settings(gdal_path("https://h/a.fgb?sig=1&x=2"))
    assert name.startswith(
        "/vsicurl?empty_dir=yes&use_head=no&timeout=9&connecttimeout=10&max_retry=3&retry_delay=0.5&url="
    )  # use_head=no: a URL with a query may be signed for GET only
    assert tp.io.paths.source_name(name) == "https://h/a.fgb?sig=1&x=2"
    kept = with_http_settings("/vsicurl?timeout=2&url=https%3A%2F%2Fh%2Fa")
    assert kept.startswith("/vsicurl?timeout=2&connecttimeout=10&")
    assert "&timeout=" not in kept
    assert with_http_settings("/data/a.fgb") == "/data/a.fgb"
    assert with_http_settings("/vsicurl/https://h/a.fgb") == "/vsicurl/https://h/a.fgb"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


def test_a_vector_over_http_is_bounded_without_any_environment(
    no_user_settings: None, monkeypatch: pytest.MonkeyPatch, silent_server: str
) -> None:
    """pyogrio's GDAL gets the time-out from the /vsicurl? URL: a silent server ends in a ReadError."""
    # terrapipe's defaults shortened (30 s is slow to test); nothing in the environment, so only the URL carries them
    defaults = {**GDAL_DEFAULTS, "GDAL_HTTP_TIMEOUT": "1", "GDAL_HTTP_MAX_RETRY": "0"}
    monkeypatch.setattr("terrapipe.io.gdal_env.GDAL_DEFAULTS", defaults)
    monkeypatch.setattr("terrapipe.io.vector._check_structure", lambda *a, **k: (None, False))
    start = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pyogrio: "HTTP response code ... 0"
        with pytest.raises(ReadError):
            tp.open_vector(f"{silent_server}/a.fgb")
    assert time.monotonic() - start < 20


def test_local_sidecar_files_still_work(tmp_path):
    # A world file next to a local TIFF is found: EMPTY_DIR is only set for remote files.
    path = tmp_path / "plain.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8") as dst:
            dst.write(np.ones((1, 4, 4), "uint8"))
    (tmp_path / "plain.tfw").write_text("10\n0\n0\n-10\n500005\n4999995\n")
    with rasterio.open(path) as src:
        assert src.transform.c == 500_000
