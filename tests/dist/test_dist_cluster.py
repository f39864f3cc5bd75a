"""materialize and pmap on a real Dask LocalCluster (2 worker processes on 127.0.0.1).

The sample world's land-cover segmentation pipeline (STAC search -> stack_stac ->
mosaic -> chip -> align DEM -> rasterize land cover -> tensors, 64 chips) is
materialized in 8 partitions; a worker is killed by pid mid-run, a run is
stopped and resumed, and the store read back equals the pipeline computed here.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

import terrapipe as tp
import terrapipe.dist
from terrapipe.core.state import same_elements
from terrapipe.dist import MaterializeError, PartitionResult, SampleStore
from tests.dist.conftest import wait_until_idle
from tests.dist.dist_helpers import (
    PARTITIONS,
    broken_sample,
    chunk_keys,
    committed_chunks,
    sample_key,
    segmentation_pipe,
    small_pipe,
)
from tests.run.run_helpers import Counter

pytest.importorskip("distributed")


class StopRunError(Exception):
    """Raised by a progress callback to stop a run."""


@pytest.fixture(scope="module")
def segmentation(sample_world: Any) -> tuple[Any, list[Any]]:
    """The pipe, and its partitions computed in this process one after the other."""
    pipe = segmentation_pipe(sample_world)
    expected = [s for i in range(PARTITIONS) for s in tp.dist.iter_partition(pipe, i, PARTITIONS)]
    assert len(expected) == len(set(map(sample_key, expected))) == 64  # the pass's 64 chips, each once
    return pipe, expected


def check_store(store: SampleStore, expected: list[Any]) -> None:
    """Read back equals computing in process; every chunk in the store is named by one manifest."""
    assert same_elements(list(tp.dist.read_samples(store)), expected)
    assert committed_chunks(store) == chunk_keys(store)
    assert [m.partition for m in store.manifests()] == list(range(PARTITIONS))


def test_a_killed_worker_does_not_stop_the_run(dask_client: Any, segmentation: Any, tmp_path: Path):
    pipe, expected = segmentation
    wait_until_idle(dask_client)
    pids = dask_client.run(os.getpid)
    killed: list[str] = []

    def kill_a_busy_worker(result: PartitionResult) -> None:
        if killed:
            return
        for address, keys in dask_client.processing().items():
            if keys and address in pids:
                os.kill(pids[address], signal.SIGKILL)
                killed.append(address)
                return

    report = tp.dist.materialize(
        pipe, tmp_path / "seg.zarr", client=dask_client, partitions=PARTITIONS, chunk_samples=2,
        progress=kill_a_busy_worker,
    )  # fmt: skip
    assert killed, "no worker was busy when the first partition finished"
    assert report.written == list(range(PARTITIONS))
    assert report.samples == 64
    assert len({r.worker for r in report.results}) >= 2
    check_store(report.store, expected)


def test_stop_then_resume_writes_no_partition_twice(dask_client: Any, segmentation: Any, tmp_path: Path):
    pipe, expected = segmentation
    wait_until_idle(dask_client)
    finished: list[int] = []

    def stop_after_three(result: PartitionResult) -> None:
        finished.append(result.partition)
        if len(finished) == 3:
            raise StopRunError

    with pytest.raises(StopRunError):
        tp.dist.materialize(
            pipe, tmp_path / "seg.zarr", client=dask_client, partitions=PARTITIONS, progress=stop_after_three
        )
    wait_until_idle(dask_client)  # tasks that were running when the run stopped may still commit
    store = SampleStore(tmp_path / "seg.zarr")
    before = {i: store.manifest(i) for i in range(PARTITIONS)}
    committed = sorted(i for i, m in before.items() if m is not None)
    assert set(finished) <= set(committed)
    assert len(committed) < PARTITIONS

    report = tp.dist.materialize(pipe, tmp_path / "seg.zarr", client=dask_client)
    assert report.skipped == committed
    assert report.written == sorted(set(range(PARTITIONS)) - set(committed))
    for i in committed:  # kept as they were: same attempt, same chunks
        assert report.results[i].manifest == before[i]
    check_store(store, expected)


def test_a_failing_partition_is_retried_then_reported(dask_client: Any, tmp_path: Path):
    wait_until_idle(dask_client)
    pipe = tp.from_items(list(range(10))).map(broken_sample)
    with pytest.raises(
        MaterializeError, match=r"partition 1 of 2 failed after 1 retry while producing its sample 3"
    ) as info:
        tp.dist.materialize(pipe, tmp_path / "bad.zarr", client=dask_client, partitions=2, retries=1)
    assert "item-5" in info.value.element
    assert "truncated file" in str(info.value)
    assert isinstance(info.value.__cause__, tp.ReadError)
    good = tp.dist.materialize(small_pipe(10), tmp_path / "good.zarr", client=dask_client, partitions=3)
    assert good.samples == 10
    assert len(tp.dist.read_samples(good.store)) == 10


def test_pmap_on_the_cluster_streams_in_order_with_bounded_futures(dask_client: Any):
    wait_until_idle(dask_client)
    read = Counter()
    pipe = (
        tp.from_items(list(range(30)))
        .map(read)
        .pmap(lambda x: (x * x, os.getpid()), executor=dask_client, max_in_flight=3)
    )
    out = []
    for value in pipe:
        out.append(value)
        assert read.value - len(out) <= 3
    assert [v for v, _ in out] == [x * x for x in range(30)]
    assert {pid for _, pid in out} <= set(dask_client.run(os.getpid).values())
    assert (
        tp.from_items([1]).pmap(abs, executor=dask_client).max_in_flight == 4
    )  # twice the cluster's threads

    def fail_on_seven(x: int) -> int:
        if x == 7:
            raise ValueError("seven is not allowed")
        return x

    with pytest.raises(ValueError, match="seven") as info:
        list(tp.from_items(list(range(10))).pmap(fail_on_seven, executor=dask_client))
    assert any("failed on element 7" in note for note in info.value.__notes__)
    assert list(tp.from_items(list(range(50))).pmap(abs, executor=dask_client).header(3)) == [0, 1, 2]
    unordered = tp.from_items(list(range(12))).pmap(abs, executor=dask_client, ordered=False)
    assert sorted(unordered) == list(range(12))
