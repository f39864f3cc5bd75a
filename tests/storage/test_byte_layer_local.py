"""The byte layer on local files and plain HTTP: ranges, caps, deadlines, redaction."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from terrapipe.core.errors import InvalidArgumentError, ReadError
from terrapipe.io import object_store, obstore_runtime
from terrapipe.io.object_store import join_url
from terrapipe.io.storage import Storage
from tests.servers.hostile_http import HostileServer, start_hostile_server

pytest.importorskip("obstore")


def test_local_get_range_size_list(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    blob = tmp_path / "sub" / "a.bin"
    blob.write_bytes(bytes(range(256)))
    assert object_store.get(str(blob)) == bytes(range(256))
    assert object_store.get(blob.as_uri(), range=(250, 256)) == bytes(range(250, 256))
    assert object_store.size(str(blob)) == 256
    assert object_store.list_objects(str(tmp_path)) == [str(blob)]
    with pytest.raises(ReadError, match="no such object"):
        object_store.get(str(tmp_path / "missing.bin"))
    with pytest.raises(InvalidArgumentError, match="range"):
        object_store.get(str(blob), range=(5, 5))


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileServer]:
    """The hostile HTTP server (a process) serving ``fast``: 100 bytes; its ``trickle-headers`` mode is slow."""
    root = tmp_path_factory.mktemp("byte-layer-local")
    (root / "fast").write_bytes(b"x" * 100)
    with start_hostile_server(root, max_seconds=5, lifetime=120) as server:
        yield server


def test_deadline_bounds_a_read(http_server: HostileServer) -> None:
    slow = http_server.url_for("trickle-headers", "fast")  # the status line and headers, a byte a second
    start = time.monotonic()
    with pytest.raises(ReadError, match=r"deadline of 0\.5 s"):
        object_store.get(f"{slow}?token=abc123", Storage(deadline=0.5, retries=0))
    assert time.monotonic() - start < 2.5


def test_http_errors_name_no_query(http_server: HostileServer) -> None:
    fast = http_server.url_for("plain", "fast")
    assert object_store.get(f"{fast}?sig=zzz") == b"x" * 100
    with pytest.raises(ReadError) as info:
        object_store.get(f"{fast}?sig=secret-sig-123", max_bytes=10)
    assert "secret-sig-123" not in str(info.value)
    assert fast in str(info.value)


def test_join_url_stays_in_the_bucket() -> None:
    assert join_url("s3://b/a/catalog.json", "../../../../x.json") == "s3://b/x.json"
    assert join_url("s3://b/a/catalog.json", "/root.json") == "s3://b/root.json"
    assert join_url("az://c/a/b/c.json", "./d/e.json") == "az://c/a/b/d/e.json"
    assert join_url("gs://b/a/c.json", "s3://other/x.json") == "s3://other/x.json"


def test_stores_kept_for_reuse_are_bounded() -> None:
    """One store (and its connection pool) per (Storage, bucket) is kept, at most MAX_STORES of them."""
    storage = Storage(endpoint="http://127.0.0.1:9", region="us-east-1", anonymous=True)
    obstore_runtime.STORES.clear()
    first, _ = object_store._locate("s3://bucket-0/a.json", storage)
    assert object_store._locate("s3://bucket-0/b.json", storage)[0] is first  # reused
    for i in range(obstore_runtime.MAX_STORES + 8):
        object_store._locate(f"s3://bucket-{i}/a.json", storage)
    assert len(obstore_runtime.STORES) == obstore_runtime.MAX_STORES
    assert object_store._locate("s3://bucket-0/a.json", storage)[0] is not first  # the oldest went
