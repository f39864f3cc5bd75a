"""One partition of a pipe: iterate it as shard ``i`` of ``n``, and write it to a sample store.

A pipe already knows how to split its work: its most downstream sharding
stage (``from_items``, ``chip``, ``sample_windows``, ``read_samples``, a torch
``sharding_filter``) takes the items, block groups or windows of shard ``i`` of
``n`` that :func:`~terrapipe.core.shard.shard_info` reports. A partition is
that shard, run under :func:`~terrapipe.core.shard.shard_scope` in any
process: no torch workers needed, and the partitions are disjoint and
together hold every sample once, split by storage block where the sharding
stage is a chipper.

:func:`write_partition` is the task :func:`~terrapipe.dist.materialize.materialize`
runs on a worker for each partition: it skips a partition whose manifest is
in the store and verifies; otherwise it writes the samples in chunks under a
fresh attempt id and commits them with the manifest, written last. A run
that dies part-way leaves only chunks no manifest names (see
:mod:`terrapipe.dist.layout`), so a retry cannot duplicate or lose samples.

Examples
--------
>>> import terrapipe as tp
>>> pipe = tp.from_items(range(10))
>>> [list(iter_partition(pipe, i, 3)) for i in range(3)]
[[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from terrapipe.cache.codec import Encoded, encode_value
from terrapipe.cache.entry import CorruptEntryError
from terrapipe.core.checks import check_int
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.optional import require
from terrapipe.core.pipe import IterDataPipe, set_epoch
from terrapipe.core.shard import ShardInfo, shard_scope
from terrapipe.dist.layout import ChunkRecord, PartitionManifest
from terrapipe.dist.store import SampleStore
from terrapipe.run._describe import describe_element
from terrapipe.run.graph_lock import copy_pipe
from terrapipe.run.loader_stats import Report, StatsReporter
from terrapipe.run.sharding import apply_torch_sharding

__all__ = ["PartitionResult", "Verify", "iter_partition", "write_partition"]

#: How a committed partition is checked before it is skipped.
Verify = Literal["checksum", "exists"]

#: Prefix of the note a failing partition adds to its error.
NOTE_PREFIX = "materialize: "


@dataclass(frozen=True)
class PartitionResult:
    """What one partition task did.

    Attributes
    ----------
    partition
        The partition.
    manifest
        The partition's manifest as the store holds it after the task.
    seconds
        Time the task took (verification only, for a skipped partition).
    skipped
        ``True`` when a verified copy was already in the store (written by
        an earlier run, or by another run of the same task that finished
        first) and this task wrote nothing.
    worker
        ``host:pid`` of the process that ran the task.
    rewritten
        Why an earlier copy in the store was not kept (``None`` if there was none).
    stats
        The counters of the task's copy of the pipe (elements skipped on
        error among them), as :mod:`~terrapipe.run.loader_stats` reports them;
        ``None`` for a kept partition.
    """

    partition: int
    manifest: PartitionManifest
    seconds: float
    skipped: bool
    worker: str
    rewritten: str | None = None
    stats: Report | None = None

    @property
    def elements_skipped(self) -> int:
        """Elements the task's stages skipped on error (``on_error="skip"`` or ``"warn"``)."""
        return 0 if self.stats is None else sum(counters[1] for counters in self.stats[1])

    @property
    def samples(self) -> int:
        """Samples the partition holds."""
        return self.manifest.samples

    @property
    def nbytes(self) -> int:
        """Bytes of its chunk entries."""
        return self.manifest.nbytes


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _check_index(index: int, count: int) -> tuple[int, int]:
    index, count = check_int(index, "partition"), check_int(count, "partitions")
    if count < 1 or not 0 <= index < count:
        raise InvalidArgumentError(f"partition {index!r} is not one of {count!r} partitions")
    return index, count


def _samples(pipe: IterDataPipe[Any], index: int, count: int, epoch: int) -> Iterator[Any]:
    """Iterate ``pipe`` itself as shard ``index`` of ``count`` (the scope is entered around each step)."""
    info = ShardInfo(worker_id=index, num_workers=count)
    with shard_scope(info):
        apply_torch_sharding(pipe, info)
        set_epoch(pipe, epoch)
        iterator = iter(pipe)
    try:
        while True:
            with shard_scope(info):
                try:
                    sample = next(iterator)
                except StopIteration:
                    return
            yield sample
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            with shard_scope(info):
                close()


def iter_partition(
    pipe: IterDataPipe[Any], index: int, count: int, *, epoch: int = 0, copy: bool = True
) -> Iterator[Any]:
    """Yield the samples of partition ``index`` of ``count`` of ``pipe``, in this thread.

    It is what a materialize task writes, so it also serves to check a store
    against the pipe in one process.

    Parameters
    ----------
    pipe
        The pipeline.
    index, count
        Which partition, of how many.
    epoch
        The epoch to run.
    copy
        Run a copy of the pipe (default); ``False`` runs the pipe itself, so
        that its stages' counters (``stats``, a chipper's ``counters``) show
        what the partition did.

    Raises
    ------
    InvalidArgumentError
        For a partition number outside ``[0, count)``.
    """
    index, count = _check_index(index, count)
    return _samples(copy_pipe(pipe) if copy else pipe, index, count, epoch)


def _describe_sample(sample: Any) -> str:
    meta = sample.get("meta") if isinstance(sample, dict) else None
    if isinstance(meta, dict) and ("bounds" in meta or "source_ids" in meta):
        return f"bounds {meta.get('bounds')} of {list(meta.get('source_ids') or [])}"
    if hasattr(sample, "rio"):
        try:
            return f"bounds {tuple(sample.rio.bounds())} of {sample.encoding.get('source', sample.name)!r}"
        except Exception:  # no CRS or transform: describe it by shape
            pass
    return describe_element(sample)


def _failure_note(index: int, count: int, produced: int, last: Any) -> str:
    after = f"the one after {_describe_sample(last)}" if produced else "its first"
    return f"{NOTE_PREFIX}partition {index} of {count} failed while producing its sample {produced} ({after})"


def _committed(store: SampleStore, index: int, count: int, fingerprint: str) -> PartitionManifest | None:
    try:
        manifest = store.manifest(index)
    except CorruptEntryError:
        return None
    if manifest is None or manifest.partitions != count or manifest.fingerprint != fingerprint:
        return None
    return manifest


def _kept(manifest: PartitionManifest, seconds: float) -> PartitionResult:
    return PartitionResult(manifest.partition, manifest, seconds, skipped=True, worker=_worker_name())


def write_partition(
    pipe: bytes,
    store: SampleStore,
    index: int,
    *,
    partitions: int,
    fingerprint: str,
    epoch: int = 0,
    chunk_samples: int = 64,
    chunk_bytes: int = 64 * 2**20,
    verify: Verify = "checksum",
) -> PartitionResult:
    """Write partition ``index`` of a pickled pipe into ``store`` (the task of a materialize run).

    Parameters
    ----------
    pipe
        The pipeline, pickled with cloudpickle (each task unpickles its own copy).
    store
        The sample store.
    index
        The partition.
    partitions
        How many partitions there are.
    fingerprint
        The pipeline's fingerprint (recorded in the manifest; a manifest with
        another one is rewritten).
    epoch
        The epoch to run.
    chunk_samples, chunk_bytes
        A chunk is written when it holds this many samples or bytes.
    verify
        How a partition already in the store is checked before it is kept:
        ``"checksum"`` reads its chunks and checks them, ``"exists"`` only
        checks that they exist.

    Returns
    -------
    PartitionResult
        What the task did.

    Raises
    ------
    Exception
        Whatever the pipe raised, with a note naming the partition and the
        sample it was producing; the chunks written so far are deleted.
    """
    started = time.perf_counter()
    existing = None
    rewritten: str | None = None
    try:
        existing = store.manifest(index)
    except CorruptEntryError as err:
        rewritten = str(err)
    if existing is not None:
        if existing.partitions != partitions or existing.fingerprint != fingerprint:
            rewritten = "it was written by another pipeline configuration"
        else:
            rewritten = store.verify(existing, checksums=verify == "checksum")
            if rewritten is None:
                return _kept(existing, time.perf_counter() - started)

    cloudpickle = require("cloudpickle", extra="dask", feature="materialize")
    copy: IterDataPipe[Any] = cloudpickle.loads(pipe)
    reporter = StatsReporter(copy)
    attempt = uuid.uuid4().hex[:12]
    records: list[ChunkRecord] = []
    pending: list[Encoded] = []
    pending_bytes = produced = 0
    last: Any = None
    try:
        for sample in _samples(copy, index, partitions, epoch):
            pending.append(encode_value(sample, where=f"sample {produced} of partition {index}"))
            pending_bytes += pending[-1].nbytes
            produced += 1
            last = sample
            if len(pending) >= chunk_samples or pending_bytes >= chunk_bytes:
                records.append(store.write_chunk(index, attempt, len(records), pending))
                pending, pending_bytes = [], 0
        if pending:
            records.append(store.write_chunk(index, attempt, len(records), pending))
    except Exception as err:
        store.discard(r.key for r in records)
        err.add_note(_failure_note(index, partitions, produced, last))
        raise

    # Another run of this task may have committed meanwhile (a worker declared
    # dead that was only slow): keep the first commit, drop this run's chunks.
    winner = _committed(store, index, partitions, fingerprint)
    stale = existing.attempt if existing is not None else None
    if (
        winner is not None
        and winner.attempt not in (attempt, stale)
        and store.verify(winner, checksums=False) is None
    ):
        store.discard(r.key for r in records)
        return _kept(winner, time.perf_counter() - started)
    seconds = time.perf_counter() - started
    manifest = PartitionManifest(
        partition=index,
        partitions=partitions,
        fingerprint=fingerprint,
        attempt=attempt,
        chunks=tuple(records),
        seconds=seconds,
        worker=_worker_name(),
    )
    store.write_manifest(manifest)
    return PartitionResult(
        index,
        manifest,
        seconds,
        skipped=False,
        worker=manifest.worker,
        rewritten=rewritten,
        stats=reporter.poll(force=True),
    )
