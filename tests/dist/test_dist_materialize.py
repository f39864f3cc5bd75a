"""materialize without a cluster: partitions, resume with verification, refusals, failures naming the element."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

import terrapipe as tp
import terrapipe.dist
from terrapipe.core.state import same_elements
from terrapipe.dist import MaterializeError, SampleStore
from terrapipe.dist.layout import chunk_key
from tests.dist.dist_helpers import (
    broken_sample,
    chunk_keys,
    committed_chunks,
    flaky_sample,
    sample_key,
    small_pipe,
    small_sample,
)


class StopRunError(Exception):
    """Raised by a progress callback to stop a run."""


def test_read_back_equals_the_partitions_computed_here(tmp_path: Path):
    pipe = small_pipe(23)
    seen = []
    report = tp.dist.materialize(
        pipe, tmp_path / "s.zarr", partitions=4, chunk_samples=2, progress=seen.append
    )
    assert report.partitions == 4
    assert report.samples == 23
    assert report.written == [0, 1, 2, 3]
    assert report.skipped == []
    assert sorted(r.partition for r in seen) == [0, 1, 2, 3]
    assert [r.samples for r in report.results] == [6, 6, 6, 5]
    assert report.cleaned == 0
    assert "23 samples in 4 partitions" in str(report)

    expected = [s for i in range(4) for s in tp.dist.iter_partition(pipe, i, 4)]
    back = list(tp.dist.read_samples(tmp_path / "s.zarr"))
    assert same_elements(back, expected)
    assert sorted(map(sample_key, back)) == sorted(map(sample_key, pipe))
    assert committed_chunks(report.store) == chunk_keys(report.store)
    assert sum(len(r.manifest.chunks) for r in report.results) == 12  # ceil(6/2) * 3 + ceil(5/2)


def test_resume_skips_verified_partitions_and_rewrites_damaged_ones(tmp_path: Path):
    pipe = small_pipe(12)
    first = tp.dist.materialize(pipe, tmp_path / "s.zarr", partitions=3)
    again = tp.dist.materialize(pipe, tmp_path / "s.zarr")
    assert again.skipped == [0, 1, 2]
    assert again.written == []
    assert [r.manifest.attempt for r in again.results] == [r.manifest.attempt for r in first.results]

    # damage partition 1's chunk: the next run rewrites partition 1 only
    record = first.results[1].manifest.chunks[0]
    files = [
        p for p in (tmp_path / "s.zarr" / record.key).rglob("*") if p.is_file() and "zarr.json" not in p.name
    ]
    raw = bytearray(files[0].read_bytes())
    raw[-10] ^= 0x55
    files[0].write_bytes(bytes(raw))
    with pytest.raises(tp.ReadError, match="partition 1"):
        list(tp.dist.read_samples(tmp_path / "s.zarr"))
    fixed = tp.dist.materialize(pipe, tmp_path / "s.zarr")
    assert fixed.written == [1]
    assert fixed.skipped == [0, 2]
    assert "checksum" in (fixed.results[1].rewritten or "")
    assert fixed.cleaned == 1  # the damaged chunk, no longer named by a manifest
    back = list(tp.dist.read_samples(tmp_path / "s.zarr"))
    assert sorted(map(sample_key, back)) == sorted(map(sample_key, pipe))


def test_stop_and_resume_writes_each_partition_once(tmp_path: Path):
    pipe = small_pipe(30)

    def stop_after_two(result: Any) -> None:
        if result.partition == 1:
            raise StopRunError

    with pytest.raises(StopRunError):
        tp.dist.materialize(pipe, tmp_path / "s.zarr", partitions=5, chunk_samples=4, progress=stop_after_two)
    store = SampleStore(tmp_path / "s.zarr")
    before = {i: store.manifest(i) for i in range(5)}
    assert [i for i, m in before.items() if m is not None] == [0, 1]
    resumed = tp.dist.materialize(pipe, tmp_path / "s.zarr")
    assert resumed.skipped == [0, 1]
    assert resumed.written == [2, 3, 4]
    for i in (0, 1):  # not written again
        assert resumed.results[i].manifest == before[i]
    assert committed_chunks(store) == chunk_keys(store)  # none written twice, none left over
    back = list(tp.dist.read_samples(tmp_path / "s.zarr"))
    assert len(back) == 30
    assert same_elements(back, [s for i in range(5) for s in tp.dist.iter_partition(pipe, i, 5)])


def test_a_store_of_another_pipeline_or_partition_count_is_refused(tmp_path: Path):
    tp.dist.materialize(small_pipe(8), tmp_path / "s.zarr", partitions=2)
    with pytest.raises(tp.InvalidArgumentError, match="2 partitions, not 4"):
        tp.dist.materialize(small_pipe(8), tmp_path / "s.zarr", partitions=4)
    with pytest.raises(tp.PipelineStateError, match="another pipeline configuration"):
        tp.dist.materialize(small_pipe(9), tmp_path / "s.zarr")
    with pytest.raises(tp.PipelineStateError, match="epoch 0"):
        tp.dist.materialize(small_pipe(8), tmp_path / "s.zarr", epoch=1)
    replaced = tp.dist.materialize(small_pipe(9), tmp_path / "s.zarr", partitions=3, overwrite=True)
    assert replaced.samples == 9
    assert replaced.written == [0, 1, 2]
    assert len(tp.dist.read_samples(tmp_path / "s.zarr")) == 9


def test_left_overs_of_failed_attempts_are_removed(tmp_path: Path):
    store = SampleStore(tmp_path / "s.zarr")
    report = tp.dist.materialize(small_pipe(4), store, partitions=2)
    stray = chunk_key(1, "deadbeef0000", 0)
    store.write_chunk(1, "deadbeef0000", 0, [])
    assert stray in chunk_keys(store)
    again = tp.dist.materialize(small_pipe(4), store)
    assert again.cleaned == 1
    assert stray not in chunk_keys(store)
    assert again.skipped == report.written


def test_a_failing_element_is_named_and_retried(tmp_path: Path):
    failed_once = tmp_path / "failed-once"  # each try runs its own copy of the pipe: remember on disk
    flaky = functools.partial(flaky_sample, marker=failed_once)
    report = tp.dist.materialize(
        tp.from_items(list(range(10))).map(flaky), tmp_path / "ok.zarr", partitions=2, retries=1
    )
    assert report.samples == 10
    assert failed_once.exists()

    pipe = tp.from_items(list(range(10))).map(broken_sample)
    with pytest.raises(MaterializeError) as info:
        tp.dist.materialize(pipe, tmp_path / "bad.zarr", partitions=2, chunk_samples=1, retries=2)
    err = info.value
    assert (err.partition, err.partitions) == (1, 2)
    message = str(err)
    assert "partition 1 of 2" in message
    assert "after 2 retries" in message
    assert "item-7.tif: truncated file" in message
    assert "while producing its sample 3 (the one after bounds" in message
    assert "item-5" in message
    assert err.element.startswith("while producing its sample 3")
    assert isinstance(err.__cause__, tp.ReadError)
    store = SampleStore(tmp_path / "bad.zarr")
    assert store.manifest(0) is not None
    assert store.manifest(1) is None
    assert not [
        k for k in chunk_keys(store) if k.startswith("part-000001")
    ]  # the failed attempt's chunks are gone


def test_a_pipe_that_cannot_shard_is_refused_unless_one_partition(tmp_path: Path):
    unsplittable = tp.from_items(list(range(4)), shard=False).map(small_sample)
    with pytest.raises(tp.InvalidArgumentError, match="can shard"):
        tp.dist.materialize(unsplittable, tmp_path / "a.zarr", partitions=3)
    assert tp.dist.materialize(unsplittable, tmp_path / "b.zarr", partitions=1).samples == 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"partitions": 0}, "partitions"),
        ({"chunk_samples": 0}, "chunk_samples"),
        ({"retries": -1}, "retries"),
        ({"verify": "maybe"}, "verify"),
        ({"progress": "yes"}, "progress"),
        ({"client": object()}, "distributed.Client"),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict[str, Any], match: str):
    with pytest.raises(tp.InvalidArgumentError, match=match):
        tp.dist.materialize(small_pipe(2), tmp_path / "s.zarr", **kwargs)


def test_iter_partition_splits_disjoint_and_complete():
    pipe = small_pipe(11)
    parts = [list(tp.dist.iter_partition(pipe, i, 3)) for i in range(3)]
    assert sorted(sample_key(s) for p in parts for s in p) == sorted(map(sample_key, pipe))
    assert [len(p) for p in parts] == [4, 4, 3]
    with pytest.raises(tp.InvalidArgumentError, match="not one of 3"):
        tp.dist.iter_partition(pipe, 3, 3)
    assert same_elements(parts[0][0], small_sample(0))
