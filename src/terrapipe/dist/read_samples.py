"""``read_samples``: train from a materialized store, sharded and shuffled by chunk, resumable.

A store written by :func:`~terrapipe.dist.materialize.materialize` holds its
samples in chunks (entries of up to ``chunk_samples`` samples, each with a
checksum). :class:`ReadSamples` plans each pass over chunks, never samples:

- the chunk list comes from the store's index (one read) or its partition
  manifests; an incomplete store is refused;
- with ``shuffle=True`` the chunk order is permuted with a seed every worker
  and rank shares (:func:`~terrapipe.core.shard.shared_seed`), then split
  round robin across DataLoader workers and DDP ranks, so the shards are
  disjoint and complete and each chunk is read by one shard only;
- each shard reads its chunks ahead on a few threads (bounded), verifies
  their checksums, and (with ``shuffle``) mixes the samples of
  ``shuffle_chunks`` consecutive chunks before yielding them.

Examples
--------
>>> import terrapipe as tp
>>> import terrapipe.dist
>>> _ = tp.dist.materialize(tp.from_items(range(6)).map(lambda x: {"x": x}), "six.zarr", partitions=2)
>>> [s["x"] for s in tp.dist.read_samples("six.zarr")]
[0, 2, 4, 1, 3, 5]
>>> pipe = tp.dist.read_samples("six.zarr", shuffle=True, seed=1)
>>> len(pipe), sorted(s["x"] for s in pipe)
(6, [0, 1, 2, 3, 4, 5])
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from terrapipe.chip.cursor import ItemCursor
from terrapipe.core.checks import check_int, check_mapping, check_storage
from terrapipe.core.errors import InvalidArgumentError, ReadError
from terrapipe.core.on_error import OnError, check_on_error, handle_error
from terrapipe.core.pipe import IterDataPipe, ShardMode, Stage, register
from terrapipe.core.shard import ShardInfo, shard_info, shard_range, shared_seed, worker_seed
from terrapipe.core.sources import FromItems
from terrapipe.core.state import ResumesNextPass
from terrapipe.dist.layout import ChunkRecord
from terrapipe.dist.store import SampleStore
from terrapipe.io.storage import Storage
from terrapipe.run.pmap import ParallelMap

__all__ = ["ReadSamples", "read_samples"]

_STATE_KEYS = ("epoch", "item", "buffer", "sample", "source")

#: One chunk read: its record, its samples, or the error that kept them from being read.
ChunkRead = tuple[ChunkRecord, list[Any] | None, ReadError | None]


class _ChunkLoader:
    """Read one chunk, catching read errors (so they reach ``on_error`` in order)."""

    def __init__(self, store: SampleStore) -> None:
        self.store = store

    def __call__(self, record: ChunkRecord) -> ChunkRead:
        try:
            return record, self.store.read_chunk(record), None
        except ReadError as err:
            return record, None, err


@register("read_samples")
class ReadSamples(ResumesNextPass, Stage[Any]):
    """Yield the samples of every materialized store in ``source``.

    Parameters
    ----------
    source
        A pipe of stores: folders, URLs, ``ZarrStore`` or ``SampleStore`` objects.
    shuffle
        Shuffle the chunk order (one permutation per epoch, the same on every
        worker and rank before the split) and the samples of every
        ``shuffle_chunks`` consecutive chunks of a shard.
    shuffle_chunks
        How many chunks' samples are mixed together with ``shuffle`` (memory:
        that many chunks are held at once).
    seed
        Seed of the shuffles, mixed with the epoch, store, rank and worker.
    workers
        Threads reading and verifying chunks ahead (0: read in the calling thread).
    read_ahead
        Most chunks being read or read and waiting (default ``2 * workers``).
    storage_options
        fsspec options for stores given as URLs (read with zarr's ``FsspecStore``).
    storage
        How to reach stores on buckets (:class:`terrapipe.Storage`): read
        through the byte layer (default ``tp.Storage.from_env()`` for a bucket
        URL without ``storage_options``). Neither shows in the stage's
        ``repr`` or in the text torch adds to errors raised through it.
    shard
        ``"auto"``: split the chunks across DataLoader workers and DDP ranks;
        ``False``: every worker reads everything.
    on_error
        A chunk that is missing or fails its checksum: ``"raise"``
        :class:`~terrapipe.core.errors.ReadError`, or ``"skip"`` / ``"warn"``
        its samples (counted per chunk in ``stats.skipped``).

    Raises
    ------
    InvalidArgumentError
        For bad arguments.
    ReadError
        For an empty or incomplete store, or (``on_error="raise"``) a damaged chunk.

    Notes
    -----
    Without shuffle the order is partition by partition, chunk by chunk
    (within a shard). ``len()`` is the number of samples over all shards when
    the source is ``from_items`` (the stores' indexes are read once), else
    unknown (``TypeError``). The samples of one chunk share one buffer;
    collating them copies. The stage is :class:`~terrapipe.core.state.Stateful`:
    a resumed pass re-reads the chunks of the interrupted buffer and skips
    what was yielded, without reading the chunks before it.
    """

    state_keys = _STATE_KEYS

    can_shard = True

    def __init__(
        self,
        source: IterDataPipe[Any],
        *,
        shuffle: bool = False,
        shuffle_chunks: int = 4,
        seed: int = 0,
        workers: int = 2,
        read_ahead: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
        shard: ShardMode = "auto",
        on_error: OnError = "raise",
        storage: Storage | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.shuffled = bool(shuffle)
        self.shuffle_chunks = check_int(shuffle_chunks, "read_samples shuffle_chunks", minimum=1)
        self.seed = check_int(seed, "read_samples seed", minimum=0)
        self.workers = check_int(workers, "read_samples workers", minimum=0)
        self.read_ahead = (
            max(1, 2 * self.workers)
            if read_ahead is None
            else check_int(read_ahead, "read_samples read_ahead", minimum=1)
        )
        # Private names: torch shows attributes named after parameters in the text it adds to every
        # error, and they may hold credentials; ``storage_location`` (endpoints, no credential) stands
        # for them in descriptions.
        self._fsspec_options = dict(
            check_mapping(
                storage_options if storage_options is not None else {}, "read_samples storage_options"
            )
        )
        check_storage(storage)
        if storage is not None and self._fsspec_options:
            raise InvalidArgumentError(
                "pass storage= (tp.Storage, the byte layer) or storage_options= (fsspec's options), not both"
            )
        self._storage_obj = storage
        if storage is not None or self._fsspec_options:
            from terrapipe.io.zarr_reader import _storage_location

            self.storage_location = _storage_location(storage, self._fsspec_options)
        self.shard = shard
        self.on_error = check_on_error(on_error)
        self._cursor = ItemCursor(source)
        self._resume: dict[str, Any] | None = None
        self._in_pass = False
        self._epoch = self._item = self._buffer = self._sample = 0
        self._length: int | None = None

    # -- planning -----------------------------------------------------------
    def _open(self, location: Any) -> SampleStore:
        return SampleStore.open(location, storage_options=self._fsspec_options, storage=self._storage_obj)

    @property
    def storage(self) -> Storage | None:
        """The :class:`~terrapipe.io.storage.Storage` bucket stores are read through."""
        return self._storage_obj

    def _buffers(self, store: SampleStore, epoch: int, item: int, info: ShardInfo) -> list[list[ChunkRecord]]:
        """Return this shard's chunks, grouped into the buffers whose samples are mixed."""
        records = [chunk for manifest in store.manifests() for chunk in manifest.chunks]
        order = np.arange(len(records))
        if self.shuffled:
            rng = np.random.default_rng(shared_seed(self.seed, epoch=epoch) ^ (item * 0x9E3779B1))
            order = rng.permutation(len(records))
        mine = [records[int(order[p])] for p in shard_range(len(records), info)]
        size = self.shuffle_chunks if self.shuffled else 1
        return [mine[i : i + size] for i in range(0, len(mine), size)]

    def _reads(self, store: SampleStore, records: list[ChunkRecord]) -> Iterator[ChunkRead]:
        load = _ChunkLoader(store)
        if self.workers == 0:
            return map(load, records)
        pipe = ParallelMap(
            FromItems(records, shard=False), load, workers=self.workers, max_in_flight=self.read_ahead
        )
        return iter(pipe)

    # -- iteration ----------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        resume, self._resume = self._resume, None
        self._epoch = epoch = self._begin_epoch()
        info = shard_info() if self._claim_sharding() else ShardInfo()
        start_item = int(resume["item"]) if resume else 0
        self._item, self._buffer, self._sample = start_item, 0, 0
        self._in_pass = True
        for item, location in self._cursor.items(
            start=start_item, snapshot=resume["source"] if resume else None
        ):
            self._item = item
            first = int(resume["buffer"]) if resume and item == start_item else 0
            skip = int(resume["sample"]) if resume and item == start_item else 0
            yield from self._read_store(self._open(location), epoch, item, info, first, skip)
            self._buffer, self._sample = 0, 0
            self._item = item + 1
        self._in_pass = False

    def _read_store(
        self, store: SampleStore, epoch: int, item: int, info: ShardInfo, first: int, skip: int
    ) -> Iterator[Any]:
        buffers = self._buffers(store, epoch, item, info)
        if first > len(buffers) or (first == len(buffers) and skip):
            raise InvalidArgumentError(
                f"cannot resume read_samples at chunk buffer {first} of {store}: this shard has "
                f"{len(buffers)}; was the state saved from the same pipeline and store?"
            )
        reads = self._reads(store, [r for buffer in buffers[first:] for r in buffer])
        try:
            for b in range(first, len(buffers)):
                self._buffer, self._sample = b, skip if b == first else 0
                samples: list[Any] = []
                for _ in buffers[b]:
                    record, chunk, err = next(reads)
                    if err is not None:
                        handle_error(err, on_error=self.on_error, stats=self.stats)
                        continue
                    samples.extend(chunk or ())
                    self.stats.bytes_read += record.nbytes
                if self.shuffled:
                    seed = worker_seed(self.seed, epoch=epoch, info=info) ^ (item << 20) ^ b
                    samples = [samples[i] for i in np.random.default_rng(seed).permutation(len(samples))]
                for position in range(self._sample, len(samples)):
                    self._sample = position + 1
                    self.stats.elements += 1
                    yield samples[position]
        finally:
            close = getattr(reads, "close", None)
            if close is not None:
                close()

    # -- state --------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Return ``{"epoch", "item", "buffer", "sample", "source"}``: where the pass stands.

        ``item`` is the index of the current store in this pass, ``buffer``
        the position of the current chunk buffer in this shard's order,
        ``sample`` how many of its samples were yielded, and ``source`` the
        source's state before the current store.
        """
        if self._in_pass:
            return {
                "epoch": self._epoch,
                "item": self._item,
                "buffer": self._buffer,
                "sample": self._sample,
                "source": self._cursor.snapshot if self._cursor.stateful else None,
            }
        return {
            "epoch": self._next_epoch,
            "item": 0,
            "buffer": 0,
            "sample": 0,
            "source": self._cursor.state(),
        }

    def __len__(self) -> int:
        if not isinstance(self.source, FromItems):
            raise TypeError(f"{type(self).__name__} knows its length only when its source is from_items")
        if self._length is None:
            self._length = sum(len(self._open(location)) for location in self.source.items)
        return self._length


def read_samples(
    store: Any,
    *,
    shuffle: bool = False,
    shuffle_chunks: int = 4,
    seed: int = 0,
    workers: int = 2,
    read_ahead: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    shard: ShardMode = "auto",
    on_error: OnError = "raise",
    storage: Storage | None = None,
) -> ReadSamples:
    """Read the samples of one materialized store (see :class:`ReadSamples` for the options).

    Examples
    --------
    >>> import terrapipe as tp
    >>> import terrapipe.dist
    >>> _ = tp.dist.materialize(tp.from_items(["a", "b"]).map(lambda s: {"name": s}), "ab.zarr")
    >>> [s["name"] for s in tp.dist.read_samples("ab.zarr")]
    ['a', 'b']
    """
    return ReadSamples(
        FromItems([store], shard=False),
        shuffle=shuffle,
        shuffle_chunks=shuffle_chunks,
        seed=seed,
        workers=workers,
        read_ahead=read_ahead,
        storage_options=storage_options,
        shard=shard,
        on_error=on_error,
        storage=storage,
    )
