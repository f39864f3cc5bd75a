"""``Storage.rasterio_env`` entered inside another one, and left on another thread.

acdcc28 sets a storage's credentials as thread-local GDAL options for the block and puts the
previous values back at its end. The block of one storage inside another's (a read of host b while
host a's environment is entered: a lazily read reference inside a chip's read, a user's own
``with``) keeps every option of the outer one that the inner one does not set, and
``header_options`` appends the inner headers to the outer ``GDAL_HTTP_HEADERS``. So a read of host
b, with b's storage, carries a's ``Authorization`` or a's S3 session token (signing with b's keys
to b's endpoint). Asserted here: inside a storage's block the GDAL options that carry a credential
are that storage's alone.

The other case: a generator suspended inside the block and finished on another thread (a pipe
handed to a thread pool) restores the values on the thread that finishes it; the thread that
entered keeps the credential for every later read. Asserted: after the generator ends, neither
thread holds it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

import terrapipe as tp

rasterio = pytest.importorskip("rasterio")
from rasterio.env import get_gdal_config  # noqa: E402

SECRET_OPTIONS = (
    "GDAL_HTTP_HEADERS",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "GS_OAUTH2_TOKEN",
)


def _seen() -> dict[str, Any]:
    return {key: get_gdal_config(key, normalize=False) for key in SECRET_OPTIONS}


A_HEADERS = (tp.Storage(headers={"Authorization": "Bearer a-s3cret"}), "https://a.example/x.tif")
A_KEYS = (
    tp.Storage(
        s3_endpoint="http://127.0.0.1:9", key_id="AKIA", secret="a-s3cret", session_token="a-s3cret-tok"
    ),
    "s3://bucket-a/x.tif",
)

INNER = {
    "public_https": (tp.Storage(), "https://b.example/y.tif"),
    "cookie_https": (tp.Storage(headers={"Cookie": "b=1"}), "https://b.example/y.tif"),
    "other_s3_keys": (
        tp.Storage(s3_endpoint="http://127.0.0.1:10", key_id="AKIB", secret="b-key"),
        "s3://bucket-b/y.tif",
    ),
    "anonymous_s3": (tp.Storage(s3_endpoint="http://127.0.0.1:10", anonymous=True), "s3://bucket-b/y.tif"),
}


def _own(storage: tp.Storage, url: str) -> dict[str, Any]:
    """What the storage's own block shows when entered alone."""
    with storage.rasterio_env(url):
        return _seen()


@pytest.mark.parametrize("outer", ["headers", "keys"])
@pytest.mark.parametrize("inner", list(INNER))
def test_an_inner_storage_sees_only_its_own_credentials(outer: str, inner: str) -> None:
    outer_storage, outer_url = A_HEADERS if outer == "headers" else A_KEYS
    inner_storage, inner_url = INNER[inner]
    alone = _own(inner_storage, inner_url)
    with outer_storage.rasterio_env(outer_url), inner_storage.rasterio_env(inner_url):
        nested = _seen()
    assert not any("a-s3cret" in str(v) for v in nested.values()), nested
    assert nested == alone


def test_nesting_puts_the_outer_values_back() -> None:
    """A control: when the inner block ends, the outer storage's options are back, then none."""
    storage, url = A_KEYS
    with storage.rasterio_env(url):
        before = _seen()
        with INNER["other_s3_keys"][0].rasterio_env(INNER["other_s3_keys"][1]):
            pass
        assert _seen() == before
    assert _seen() == dict.fromkeys(SECRET_OPTIONS)


def _suspended(storage: tp.Storage, url: str) -> Iterator[dict[str, Any]]:
    with storage.rasterio_env(url):
        yield _seen()


@pytest.mark.xfail(
    strict=True,
    reason="S: a generator suspended in Storage.rasterio_env and finished on another thread leaves the "
    "credential set on the thread that entered (its later reads of any host carry it)",
)
@pytest.mark.parametrize("case", ["headers", "keys"])
def test_a_block_left_on_another_thread_leaves_no_credential_behind(case: str) -> None:
    storage, url = A_HEADERS if case == "headers" else A_KEYS
    box: dict[str, Any] = {}
    entered = threading.Event()
    finish = threading.Event()

    def first_thread() -> None:
        generator = _suspended(storage, url)
        box["inside"] = next(generator)
        box["generator"] = generator
        entered.set()
        finish.wait(30)
        box["after"] = _seen()

    worker = threading.Thread(target=first_thread)
    worker.start()
    assert entered.wait(30)
    box["generator"].close()  # finished here, on another thread
    box["closer"] = _seen()
    finish.set()
    worker.join(30)
    assert any(box["inside"].values())  # the credential was set while inside
    assert box["closer"] == dict.fromkeys(SECRET_OPTIONS)
    assert box["after"] == dict.fromkeys(SECRET_OPTIONS), box["after"]
