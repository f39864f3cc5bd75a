"""A storage's credentials are GDAL options of the reading thread only, in the main thread too.

``rasterio.Env`` sets process-wide GDAL options when entered in the main thread (thread-local ones
in any other), so a ``Storage``'s ``Authorization`` header or keys given through it were read by
every other thread while the main thread opened a file: a plain read of another host in a pool
thread sent the header there, and a ``rasterio.Env`` entered meanwhile in a pool thread took the
header for a value of its own and put it back, thread-locally, for good (the pool thread sent it
with every later read). ``Storage.rasterio_env`` now sets them with
``gdal_cache.thread_local_options``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

import terrapipe as tp
from terrapipe.io.gdal_cache import thread_local_options

rasterio = pytest.importorskip("rasterio")
from rasterio.env import get_gdal_config  # noqa: E402

HEADERS = tp.Storage(headers={"Authorization": "Bearer s3cret"})
KEYS = tp.Storage(s3_endpoint="http://127.0.0.1:9", key_id="AKIDEXAMPLE", secret="s3cret-key")
SECRET_OPTIONS = ("GDAL_HTTP_HEADERS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
CASES = {"headers": (HEADERS, "https://h/a.tif"), "keys": (KEYS, "s3://bucket/a.tif")}


def _in_thread(function: Callable[[], Any]) -> Any:
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.append(function()))
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive()
    return out[0]


def _seen() -> dict[str, Any]:
    return {key: get_gdal_config(key, normalize=False) for key in SECRET_OPTIONS}


@pytest.mark.parametrize("case", sorted(CASES))
def test_another_thread_never_sees_the_main_threads_storage_options(case: str) -> None:
    storage, url = CASES[case]
    assert threading.current_thread() is threading.main_thread()
    with storage.rasterio_env(url):
        mine = _seen()
        other = _in_thread(_seen)
    assert any(mine.values())  # the calling thread has them
    assert other == dict.fromkeys(SECRET_OPTIONS)
    assert _seen() == dict.fromkeys(SECRET_OPTIONS)  # and not after the block


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_thread_entering_an_env_meanwhile_keeps_nothing_of_it(case: str) -> None:
    storage, url = CASES[case]

    def other_storage_then_look() -> dict[str, Any]:
        # an environment of its own with the same keys, entered while the main thread is in the storage's
        with tp.Storage(headers={"Authorization": "Bearer other"}).rasterio_env("https://h2/b.tif"):
            pass
        with tp.Storage(key_id="other", secret="other-key").rasterio_env("s3://other/b.tif"):
            pass
        with rasterio.Env(GDAL_HTTP_HEADERS="X-Test: 1"):
            pass
        return _seen()

    with storage.rasterio_env(url):
        after = _in_thread(other_storage_then_look)
    assert after == dict.fromkeys(SECRET_OPTIONS)


def test_nested_storage_environments_restore_the_outer_values() -> None:
    def nested() -> tuple[Any, Any, Any]:
        with HEADERS.rasterio_env("https://h/a.tif"):
            outer = get_gdal_config("GDAL_HTTP_HEADERS")
            with tp.Storage(headers={"Cookie": "c=1"}).rasterio_env("https://h/a.tif"):
                inner = get_gdal_config("GDAL_HTTP_HEADERS")
            back = get_gdal_config("GDAL_HTTP_HEADERS")
        return outer, inner, back

    for outer, inner, back in (nested(), _in_thread(nested)):
        assert outer == "Authorization: Bearer s3cret"
        assert inner.endswith("Cookie: c=1")
        assert back == outer
    assert get_gdal_config("GDAL_HTTP_HEADERS") is None


def test_thread_local_options_are_the_calling_threads_only_and_restored() -> None:
    with thread_local_options({"GDAL_HTTP_USERAGENT": "outer"}) as done:
        assert done
        with thread_local_options({"GDAL_HTTP_USERAGENT": "inner"}):
            assert get_gdal_config("GDAL_HTTP_USERAGENT") == "inner"
            assert _in_thread(lambda: get_gdal_config("GDAL_HTTP_USERAGENT")) is None
        assert get_gdal_config("GDAL_HTTP_USERAGENT") == "outer"
    assert get_gdal_config("GDAL_HTTP_USERAGENT") is None
