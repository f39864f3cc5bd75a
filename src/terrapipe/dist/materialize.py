"""``materialize``: run a pipeline's partitions as tasks on a Dask cluster and store the samples.

The heavy part of a pipeline (search, read, reproject, chip, label) runs
once, spread over a ``distributed.Client``; training then reads the result
with :func:`~terrapipe.dist.read_samples.read_samples`, on any number of
machines.

How it works
------------
1. The pipe is split into ``partitions`` by its own sharding stage
   (:mod:`terrapipe.dist.partition`): partition ``i`` is shard ``i`` of ``n``,
   so a chipper splits by storage block group and no block is read by two
   partitions unless windows cross into it.
2. The pipe is pickled once (cloudpickle) into a task whose result the
   partition tasks take as input; each task unpickles its own copy, so no
   state is shared, and the scheduler can recompute the pipe's bytes if the
   worker holding them dies.
3. Each partition is one task (:func:`~terrapipe.dist.partition.write_partition`),
   submitted with Dask ``retries``; at most ``max_in_flight`` are submitted
   at a time. A task writes its samples in chunks under a fresh attempt id
   and commits them with the partition's manifest, written last. A worker
   killed mid-task leaves only uncommitted chunks; Dask reruns the task
   elsewhere, and the leftovers are deleted at the end of the run
   (:meth:`~terrapipe.dist.store.SampleStore.clean`).
4. Resume: the store's header records the partition count and the
   pipeline's fingerprint; a partition whose manifest is there and verifies
   (chunk checksums) is skipped without running the pipe.

Failures: a task that still fails after its retries, or that killed the
workers that ran it, stops the run with a
:class:`~terrapipe.dist.errors.MaterializeError` naming the partition, the
sample it was producing and the error. Without a client the partitions run
one after the other in this process (same store, same resume).

Examples
--------
>>> import terrapipe as tp
>>> import terrapipe.dist
>>> pipe = tp.from_items(range(10)).map(lambda x: {"value": x * x})
>>> report = tp.dist.materialize(pipe, "squares.zarr", partitions=3)
>>> report.samples, report.written, report.skipped
(10, [0, 1, 2], [])
>>> tp.dist.materialize(pipe, "squares.zarr").skipped
[0, 1, 2]
>>> sorted(s["value"] for s in tp.dist.read_samples("squares.zarr"))
[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
"""

from __future__ import annotations

import os
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from terrapipe.core.checks import check_int
from terrapipe.core.errors import InvalidArgumentError, PipelineStateError, SkipsInEpochWarning
from terrapipe.core.optional import require
from terrapipe.core.pipe import GRAPH_LOCK, IterDataPipe, iter_graph
from terrapipe.dist.errors import MaterializeError
from terrapipe.dist.fingerprint import pipe_fingerprint
from terrapipe.dist.layout import StoreHeader
from terrapipe.dist.partition import NOTE_PREFIX, PartitionResult, Verify, write_partition
from terrapipe.dist.store import SampleStore
from terrapipe.io.storage import Storage
from terrapipe.io.zarr_object_store import refuse_http_writes
from terrapipe.run.loader_stats import LoaderStats
from terrapipe.run.progress import ProgressBar
from terrapipe.run.sharding import can_shard

__all__ = ["MaterializeReport", "materialize"]

#: Called with each partition's result as it finishes.
ProgressCallback = Callable[[PartitionResult], None]


@dataclass(frozen=True)
class MaterializeReport:
    """What a materialize run did.

    Attributes
    ----------
    store
        The store (give it to :func:`~terrapipe.dist.read_samples.read_samples`).
    partitions
        How many partitions the store holds.
    results
        One :class:`~terrapipe.dist.partition.PartitionResult` per partition, in order.
    seconds
        Wall-clock time of the run.
    cleaned
        Left-over chunks of failed or repeated tasks deleted at the end.
    """

    store: SampleStore
    partitions: int
    results: tuple[PartitionResult, ...]
    seconds: float
    cleaned: int = 0

    @property
    def written(self) -> list[int]:
        """Partitions this run wrote."""
        return [r.partition for r in self.results if not r.skipped]

    @property
    def skipped(self) -> list[int]:
        """Partitions already in the store (verified) that this run kept."""
        return [r.partition for r in self.results if r.skipped]

    @property
    def elements_skipped(self) -> int:
        """Elements the pipe's stages skipped on error in the partitions this run wrote."""
        return sum(r.elements_skipped for r in self.results)

    @property
    def samples(self) -> int:
        """Samples in the store."""
        return sum(r.samples for r in self.results)

    @property
    def nbytes(self) -> int:
        """Bytes of the store's chunk entries."""
        return sum(r.nbytes for r in self.results)

    @property
    def samples_per_second(self) -> float:
        """Samples written by this run per second of the run."""
        written = sum(r.samples for r in self.results if not r.skipped)
        return written / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        return (
            f"{self.samples} samples in {self.partitions} partitions of {self.store} "
            f"({len(self.written)} written, {len(self.skipped)} kept, {self.nbytes / 2**20:.1f} MiB) "
            f"in {self.seconds:.1f} s ({self.samples_per_second:.1f} samples/s)"
            + (f"; {self.elements_skipped} element(s) skipped on error" if self.elements_skipped else "")
        )


def _client_threads(client: Any) -> int:
    return max(1, sum(int(n) for n in client.nthreads().values()))


def _check_client(client: Any) -> None:
    if client is None:
        return
    distributed = require("distributed", feature="materialize")
    if not isinstance(client, distributed.Client):
        raise InvalidArgumentError(
            f"materialize client must be a distributed.Client (or None to run here), got {client!r}"
        )


def _open_header(
    store: SampleStore,
    *,
    partitions: int | None,
    fingerprint: str,
    epoch: int,
    stages: tuple[str, ...],
    default_partitions: int,
    overwrite: bool,
) -> StoreHeader:
    header = None if overwrite else store.header()
    if header is None:
        if overwrite:
            store.clear()
        header = StoreHeader(partitions or default_partitions, fingerprint, epoch=epoch, stages=stages)
        store.write_header(header)
        return header
    if partitions is not None and partitions != header.partitions:
        raise InvalidArgumentError(
            f"{store} was materialized in {header.partitions} partitions, not {partitions}; leave "
            "partitions unset to resume it, or pass overwrite=True to start again"
        )
    if header.fingerprint != fingerprint:
        raise PipelineStateError(
            f"{store} holds samples of another pipeline configuration or epoch (stages "
            f"{list(header.stages)}, epoch {header.epoch}); resume it with the pipeline that wrote it, "
            "materialize into a new store, or pass overwrite=True to replace it"
        )
    return header


def _failure(
    err: BaseException, index: int, count: int, retries: int, store: SampleStore
) -> MaterializeError:
    notes = [n for n in getattr(err, "__notes__", []) if n.startswith(NOTE_PREFIX)]
    element = notes[-1].split(" failed ", 1)[-1] if notes else ""
    if type(err).__name__ == "KilledWorker":
        what = (
            f"killed the worker processes that ran it ({err}): a worker died while running it "
            "(out of memory? a crash in a native library?)"
        )
    else:
        tries = f" after {retries} {'retry' if retries == 1 else 'retries'}" if retries else ""
        where = f" {element}" if element else ""
        what = f"failed{tries}{where}: {type(err).__name__}: {err}"
    msg = (
        f"materialize: partition {index} of {count} {what}; the partitions already written stay "
        f"in {store}: fix the cause and run materialize again to finish it"
    )
    return MaterializeError(msg, partition=index, partitions=count, element=element)


def _hold(value: bytes) -> bytes:
    """Return the pickled pipe: the task the partitions take it from (recomputed if its worker dies)."""
    return value


def _run_here(
    blob: bytes,
    store: SampleStore,
    todo: Iterable[int],
    count: int,
    retries: int,
    options: Mapping[str, Any],
    done: Callable[[PartitionResult], None],
) -> None:
    for index in todo:
        for attempt in range(retries + 1):
            try:
                result = write_partition(blob, store, index, partitions=count, **options)
                break
            except Exception as err:
                if attempt == retries:
                    raise _failure(err, index, count, retries, store) from err
        done(result)


def _run_on_cluster(
    client: Any,
    blob: bytes,
    store: SampleStore,
    todo: list[int],
    count: int,
    retries: int,
    max_in_flight: int,
    options: Mapping[str, Any],
    done: Callable[[PartitionResult], None],
) -> None:
    distributed = require("distributed", feature="materialize")
    run = uuid.uuid4().hex[:8]
    held = client.submit(_hold, blob, key=f"terrapipe-pipe-{run}", pure=False)
    running: dict[str, tuple[int, Any]] = {}
    queue = distributed.as_completed()
    upcoming = iter(todo)

    def submit_next() -> None:
        index = next(upcoming, None)
        if index is None:
            return
        future = client.submit(
            write_partition,
            held,
            store,
            index,
            partitions=count,
            key=f"terrapipe-partition-{run}-{index}",
            retries=retries,
            pure=False,
            **options,
        )
        running[future.key] = (index, future)
        queue.add(future)

    try:
        for _ in range(max_in_flight):
            submit_next()
        for future in queue:
            index, _ = running.pop(future.key)
            if future.status != "finished":
                try:
                    err = future.exception()
                except Exception as cancelled:  # cancelled: the scheduler restarted or forgot it
                    err = cancelled
                raise _failure(err, index, count, retries, store) from err
            result = future.result()
            future.release()
            done(result)
            submit_next()
    finally:
        client.cancel([future for _, future in running.values()] + [held])


def materialize(
    pipe: IterDataPipe[Any],
    store: Any,
    *,
    client: Any = None,
    partitions: int | None = None,
    epoch: int = 0,
    chunk_samples: int = 64,
    chunk_bytes: int = 64 * 2**20,
    retries: int = 2,
    max_in_flight: int | None = None,
    verify: Verify = "checksum",
    overwrite: bool = False,
    progress: bool | ProgressCallback = False,
    version: str | None = None,
    compress: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    storage: Storage | None = None,
) -> MaterializeReport:
    """Run ``pipe`` in partitions on a Dask cluster and write its samples to a Zarr store.

    Parameters
    ----------
    pipe
        The pipeline. It must pickle with cloudpickle (lambdas are fine; open
        files are not) and, for more than one partition, contain a stage that
        shards (``from_items``, ``chip``, ``sample_windows``, ...).
    store
        Where to write: a folder, a bucket URL (``s3://bucket/run.zarr``), an fsspec URL, a
        :class:`~terrapipe.cache.zarr_store.ZarrStore` (for obstore), or a
        :class:`~terrapipe.dist.store.SampleStore`. Every worker must reach it.
    client
        A ``distributed.Client``; ``None`` runs the partitions here, one after
        the other.
    partitions
        How many partitions (tasks). Default: the store's count when resuming,
        else 4 per worker thread of the cluster (8 without a client).
    epoch
        The epoch the pipeline runs (seeded shuffles depend on it).
    chunk_samples, chunk_bytes
        Samples are written in chunks of at most this many samples, closed
        early when they reach this many bytes; readers shuffle and shard by chunk.
    retries
        How many times Dask reruns a task that raised (a worker that dies is
        handled by Dask's ``allowed-failures`` on top).
    max_in_flight
        Most partition tasks submitted at once (default: twice the cluster's
        threads, at least 4).
    verify
        How partitions already in the store are checked before they are
        skipped: ``"checksum"`` (read and check every chunk) or ``"exists"``.
    overwrite
        Delete what the store holds and start again.
    progress
        ``True``: draw a progress bar (needs ``rich``); a function: called with
        each :class:`~terrapipe.dist.partition.PartitionResult` as its task
        finishes (raise from it to stop the run; finished partitions are kept).
    version
        A label mixed into the pipeline's fingerprint (see
        :func:`~terrapipe.dist.fingerprint.pipe_fingerprint`).
    compress, storage_options
        Zstandard compression of chunks and fsspec options, for a store given
        as a folder or URL.
    storage
        How to reach a bucket store (:class:`terrapipe.Storage`): a store at
        ``s3://``, ``gs://``, ``az://`` or ``abfs://`` is written through the
        byte layer (obstore; default ``tp.Storage.from_env()`` when no
        ``storage_options`` are given). Read it back with
        ``read_samples(url, storage=...)``.

    Returns
    -------
    MaterializeReport
        Per partition: samples, bytes, time, whether it was kept from before.

    Raises
    ------
    InvalidArgumentError
        For bad arguments, a pipe that cannot be split, or a partition count
        other than the store's when resuming.
    PipelineStateError
        When the store holds samples of another pipeline or epoch.
    MaterializeError
        When a partition fails after its retries, or kills its workers.
    """
    chunk_samples = check_int(chunk_samples, "materialize chunk_samples", minimum=1)
    chunk_bytes = check_int(chunk_bytes, "materialize chunk_bytes", minimum=1)
    if partitions is not None:
        partitions = check_int(partitions, "materialize partitions", minimum=1)
    if max_in_flight is not None:
        max_in_flight = check_int(max_in_flight, "materialize max_in_flight", minimum=1)
    retries = check_int(retries, "materialize retries", minimum=0)
    if verify not in ("checksum", "exists"):
        raise InvalidArgumentError(f"materialize verify must be 'checksum' or 'exists', got {verify!r}")
    if not (isinstance(progress, bool) or callable(progress)):
        raise InvalidArgumentError(f"materialize progress must be a bool or a function, got {progress!r}")
    _check_client(client)
    if isinstance(store, str | os.PathLike):  # before any request: HTTP(S) is read only
        refuse_http_writes(os.fspath(store), "materialize to")
    started = time.perf_counter()
    samples = (
        store
        if isinstance(store, SampleStore)
        else SampleStore(store, compress=compress, storage_options=storage_options, storage=storage)
    )
    threads = _client_threads(client) if client is not None else 2
    header = _open_header(
        samples,
        partitions=partitions,
        fingerprint=pipe_fingerprint(pipe, epoch=epoch, version=version),
        epoch=epoch,
        stages=tuple(type(dp).__name__ for dp in iter_graph(pipe)),
        default_partitions=4 * threads,
        overwrite=overwrite,
    )
    count = header.partitions
    if count > 1 and not can_shard(pipe):
        raise InvalidArgumentError(
            f"materialize splits the pipe into {count} partitions with its sharding stage, but no stage of "
            f"{type(pipe).__name__} can shard (from_items, chip, sample_windows, ...); every partition would "
            "hold every sample. Start the pipe with tp.from_items(...), or pass partitions=1"
        )
    cloudpickle = require("cloudpickle", extra="dask", feature="materialize")
    with GRAPH_LOCK:
        blob = cloudpickle.dumps(pipe)
    samples.drop_index()
    options = {
        "fingerprint": header.fingerprint,
        "epoch": epoch,
        "chunk_samples": chunk_samples,
        "chunk_bytes": chunk_bytes,
        "verify": verify,
    }
    results: dict[int, PartitionResult] = {}
    bar = ProgressBar(count, "materialize", disable=progress is not True)

    totals = LoaderStats(pipe, count)

    def done(result: PartitionResult) -> None:
        results[result.partition] = result
        totals.update(result.partition, result.stats)
        bar.advance()
        if callable(progress):
            progress(result)

    try:
        todo = list(range(count))
        if client is None:
            _run_here(blob, samples, todo, count, retries, options, done)
        else:
            in_flight = max_in_flight or max(4, 2 * threads)
            _run_on_cluster(client, blob, samples, todo, count, retries, in_flight, options, done)
    finally:
        bar.close()
    manifests = [results[i].manifest for i in range(count)]
    samples.write_index(manifests)
    cleaned = samples.clean(manifests)
    skipped = [s for s in totals.stages() if s.skipped]
    if skipped:
        where = ", ".join(f"{s.name}: {s.skipped}" for s in skipped)
        last = skipped[0].last_errors[-1] if skipped[0].last_errors else "?"
        warnings.warn(
            f"materialize: {sum(s.skipped for s in skipped)} element(s) skipped on error ({where}); "
            f"last error: {last}. The report's results and the pipe's stages' stats hold the counts",
            SkipsInEpochWarning,
            stacklevel=2,
        )
    return MaterializeReport(
        store=samples,
        partitions=count,
        results=tuple(results[i] for i in range(count)),
        seconds=time.perf_counter() - started,
        cleaned=cleaned,
    )
