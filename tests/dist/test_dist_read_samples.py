"""read_samples: exact resume, disjoint and complete shards (workers, ranks), shuffles, damaged chunks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import terrapipe as tp
import terrapipe.dist
from terrapipe.core.shard import ShardInfo, shard_scope
from terrapipe.core.state import check_resume, same_elements
from terrapipe.dist import ReadSamples, SampleStore
from tests.dist.dist_helpers import sample_key, small_pipe


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """29 samples in 4 partitions (8, 7, 7, 7) of chunks of at most 3 samples (12 chunks)."""
    path = tmp_path_factory.mktemp("read-samples") / "s.zarr"
    report = tp.dist.materialize(small_pipe(29), path, partitions=4, chunk_samples=3)
    assert sum(len(r.manifest.chunks) for r in report.results) == 12
    return path


def keys(samples: list[Any]) -> list[Any]:
    return [sample_key(s) for s in samples]


ALL = sorted(keys(list(small_pipe(29))))


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("stop_after", [0, 1, 7, 29, 40])
def test_resumes_exactly(store: Path, shuffle: bool, stop_after: int):
    full = check_resume(
        lambda: tp.dist.read_samples(store, shuffle=shuffle, shuffle_chunks=2, seed=3),
        stop_after=stop_after,
        epochs=2,
    )
    assert sorted(keys(full[:29])) == ALL == sorted(keys(full[29:]))
    if shuffle:
        assert keys(full[:29]) != keys(full[29:])  # another permutation each epoch


def test_order_without_shuffle_is_partition_by_partition(store: Path):
    pipe = small_pipe(29)
    expected = [s for i in range(4) for s in tp.dist.iter_partition(pipe, i, 4)]
    assert same_elements(list(tp.dist.read_samples(store, workers=0)), expected)
    assert same_elements(list(tp.dist.read_samples(store, workers=3, read_ahead=2)), expected)


def test_shuffle_depends_on_seed_and_epoch_only(store: Path):
    a = keys(list(tp.dist.read_samples(store, shuffle=True, seed=1)))
    b = keys(list(tp.dist.read_samples(store, shuffle=True, seed=1, workers=0)))
    c = keys(list(tp.dist.read_samples(store, shuffle=True, seed=2)))
    assert a == b != c
    assert sorted(a) == sorted(c) == ALL


@pytest.mark.parametrize("shuffle", [False, True])
def test_shards_are_disjoint_and_complete(store: Path, shuffle: bool):
    seen = []
    for rank in range(2):
        for worker in range(3):
            with shard_scope(ShardInfo(rank=rank, world_size=2, worker_id=worker, num_workers=3)):
                part = keys(list(tp.dist.read_samples(store, shuffle=shuffle, seed=5)))
            assert part  # 12 chunks over 6 shards: two each
            seen.extend(part)
    assert sorted(seen) == ALL


def test_loader_workers_read_every_sample_once(store: Path):
    batches = tp.loader(tp.dist.read_samples(store, shuffle=True), batch_size=4, workers=2)
    try:
        got = [tuple(meta["source_ids"]) for batch in batches for meta in batch["meta"]]
    finally:
        batches.close()
    assert sorted(got) == sorted(ids for _, ids in ALL)


def test_functional_form_len_and_several_stores(store: Path, tmp_path: Path):
    other = tmp_path / "other.zarr"
    tp.dist.materialize(small_pipe(5), other, partitions=1)
    pipe = tp.from_items([str(store), SampleStore(other)]).read_samples()
    assert isinstance(pipe, ReadSamples)
    assert len(pipe) == 34
    assert len(list(pipe)) == 34
    with pytest.raises(TypeError, match="from_items"):
        len(tp.from_items([store]).map(str).read_samples())


def test_a_damaged_chunk_raises_or_is_skipped(tmp_path: Path):
    path = tmp_path / "s.zarr"
    report = tp.dist.materialize(small_pipe(9), path, partitions=3, chunk_samples=2)
    record = report.results[2].manifest.chunks[0]
    tp.cache.ZarrStore(path).delete(record.key)
    with pytest.raises(
        tp.ReadError, match=r"is missing; run tp.materialize\(pipe, store\) again to rewrite partition 2"
    ):
        list(tp.dist.read_samples(path))
    skipping = tp.dist.read_samples(path, on_error="skip")
    assert len(list(skipping)) == 9 - record.samples
    assert skipping.stats.skipped == 1
    with pytest.warns(tp.SkippedElementWarning, match="partition 2"):
        list(tp.dist.read_samples(path, on_error="warn"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shuffle_chunks": 0}, "shuffle_chunks"),
        ({"workers": -1}, "workers"),
        ({"read_ahead": 0}, "read_ahead"),
        ({"on_error": "ignore"}, "on_error"),
    ],
)
def test_bad_arguments_are_refused(store: Path, kwargs: dict[str, Any], match: str):
    with pytest.raises(tp.InvalidArgumentError, match=match):
        tp.dist.read_samples(store, **kwargs)


def test_a_state_from_another_stage_is_refused(store: Path):
    with pytest.raises(tp.PipelineStateError, match="ReadSamples"):
        tp.dist.read_samples(store).load_state_dict({"epoch": 0, "offset": 1})
