"""tp.loader's process workers read buckets after the main process did (obstore does not survive fork).

obstore's I/O threads are not copied into a forked child, and a store made
there hangs too: a child forked after its parent used obstore cannot read a
bucket. ``tp.loader(method="process")`` then starts its workers from the
forkserver (a clean process) when the pipe pickles; against the real S3
server and the Azure Blob emulator, with ``workers=2``, every sample comes
exactly once. A pipe that cannot pickle is forked as before and its bucket
read is the named ``WorkerError`` (never a hang); an explicit
``multiprocessing_context`` is kept.
"""

from __future__ import annotations

import functools
import multiprocessing
import os

import pytest

import terrapipe as tp
from terrapipe.core.errors import WorkerError
from terrapipe.io import object_store
from terrapipe.io.storage import Storage
from tests.storage.conftest import Bucket

pytestmark = pytest.mark.timeout(120)

COUNT = 8


def _read(url: str, storage: Storage) -> tuple[str, bytes, int]:
    return url, object_store.get(url, storage), os.getpid()


def _objects(bucket: Bucket) -> dict[str, bytes]:
    objects = {f"{bucket.root}/forked/{i}.bin": bytes([i]) * (1000 + i) for i in range(COUNT)}
    for url, data in objects.items():
        bucket.put(url.split("/", 3)[3], data)
    return objects


@pytest.mark.parametrize("kind", ["s3", "azure"])
def test_process_workers_read_a_bucket_the_parent_read(kind: str, request: pytest.FixtureRequest) -> None:
    bucket: Bucket = request.getfixturevalue(f"{kind}_bucket")
    objects = _objects(bucket)
    urls = sorted(objects)
    assert object_store.get(urls[0], bucket.storage) == objects[urls[0]]  # the parent has used obstore
    assert object_store.list_objects(f"{bucket.root}/forked/", bucket.storage) == urls
    assert multiprocessing.get_start_method() == "fork"  # Linux's default: the case that hung
    pipe = tp.from_items(urls).map(functools.partial(_read, storage=bucket.storage))
    got = list(tp.loader(pipe, workers=2, method="process", timeout=90))
    assert sorted(url for url, _, _ in got) == urls  # every sample exactly once
    assert all(data == objects[url] for url, data, _ in got)
    assert len({pid for _, _, pid in got}) == 2
    assert os.getpid() not in {pid for _, _, pid in got}


@pytest.mark.filterwarnings("ignore:Local function is not supported by pickle")
def test_a_pipe_that_cannot_pickle_is_forked_and_fails_by_name(s3_bucket: Bucket) -> None:
    objects = _objects(s3_bucket)
    urls = sorted(objects)
    object_store.get(urls[0], s3_bucket.storage)
    storage = s3_bucket.storage
    pipe = tp.from_items(urls).map(lambda url: object_store.get(url, storage))  # a lambda: fork only
    assert object_store.worker_start_method("fork", pipe) == "fork"
    with pytest.raises(WorkerError, match="forkserver"):
        list(tp.loader(pipe, workers=2, method="process", timeout=90))


def test_the_start_method_changes_only_for_a_bucket_pipe_forked_after_obstore_ran() -> None:
    pipe = tp.from_items(["s3://bucket/a.bin", "/local/b.bin"])
    assert object_store.worker_start_method("spawn", pipe) == "spawn"
    object_store.get(__file__)  # a local read through obstore
    assert object_store.worker_start_method("fork", pipe) == "forkserver"
    assert object_store.worker_start_method("forkserver", pipe) == "forkserver"
    assert object_store.worker_start_method("fork", tp.from_items(range(4))) == "fork"  # names no bucket
    assert object_store.worker_start_method("fork", tp.from_items(["/local/a.bin", "https://h/b"])) == "fork"
    marker = "x" * 100_000 + "abfs://c@acc.dfs.core.windows.net/k"  # past the first pickle frame
    assert object_store.worker_start_method("fork", tp.from_items([marker])) == "forkserver"
