"""Layout of a materialized sample store: entry keys, the header, partition manifests, the index.

A store written by :func:`~terrapipe.dist.materialize.materialize` is a
:class:`~terrapipe.cache.zarr_store.ZarrStore` (a Zarr v3 hierarchy in a
folder or behind any fsspec URL) holding terrapipe entries: checksummed
frames of JSON plus raw buffers (:mod:`terrapipe.cache.entry`), never pickles.

========================================  =============================================
key                                       entry
========================================  =============================================
``samples``                               :class:`StoreHeader`: partition count, pipeline
                                          fingerprint, epoch (written first)
``part-000003.<attempt>.000000``          chunk 0 of partition 3 as written by one attempt
                                          (a task run): up to ``chunk_samples`` samples
``part-000003``                           :class:`PartitionManifest` of partition 3: the
                                          attempt's chunks with counts and checksums
                                          (written last: the partition's commit marker)
``samples-index``                         every manifest in one entry (written when a run
                                          completes; readers open the store with one read)
========================================  =============================================

A chunk key carries its attempt, so two runs of the same partition (a task
Dask retried after its worker died while the first was still writing) never
write the same entry; the manifest that lands names a complete set of
chunks, and chunks no manifest names are left-overs that
:meth:`~terrapipe.dist.store.SampleStore.clean` removes.

Everything here is pure: records and their JSON form, no I/O.

Examples
--------
>>> chunk_key(3, "a1b2c3d4e5f6", 0)
'part-000003.a1b2c3d4e5f6.000000'
>>> manifest_key(3), partition_of("part-000003.a1b2c3d4e5f6.000000")
('part-000003', 3)
>>> m = PartitionManifest(partition=3, partitions=8, fingerprint="f", attempt="a1b2c3d4e5f6",
...     chunks=(ChunkRecord("part-000003.a1b2c3d4e5f6.000000", 5, 1024, "0badf00d"),))
>>> m.samples, PartitionManifest.from_json(m.to_json()) == m
(5, True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from terrapipe.core.checks import check_int

__all__ = [
    "FORMAT",
    "HEADER_KEY",
    "INDEX_KEY",
    "KIND",
    "ChunkRecord",
    "PartitionManifest",
    "StoreHeader",
    "chunk_key",
    "is_chunk_key",
    "manifest_key",
    "partition_of",
]

#: Layout version (bumped on incompatible changes).
FORMAT = 1
#: What the header's ``kind`` says.
KIND = "terrapipe-samples"
HEADER_KEY = "samples"
INDEX_KEY = "samples-index"
_PART = "part-{:06d}"
_CHUNK_KEY = re.compile(r"^part-(\d{6,})\.([0-9a-f]{1,32})\.(\d{6,})$")
_MANIFEST_KEY = re.compile(r"^part-(\d{6,})$")


def manifest_key(partition: int) -> str:
    """Key of partition ``partition``'s manifest."""
    return _PART.format(partition)


def chunk_key(partition: int, attempt: str, chunk: int) -> str:
    """Key of chunk ``chunk`` written by ``attempt`` of partition ``partition``."""
    return f"{_PART.format(partition)}.{attempt}.{chunk:06d}"


def partition_of(key: str) -> int | None:
    """Partition a manifest or chunk key belongs to (``None`` for other keys)."""
    match = _CHUNK_KEY.match(key) or _MANIFEST_KEY.match(key)
    return int(match.group(1)) if match else None


def is_chunk_key(key: str) -> bool:
    """Whether ``key`` names a chunk entry."""
    return _CHUNK_KEY.match(key) is not None


def _field(data: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in data:
        raise ValueError(f"{where} lacks {name!r}")
    value = data[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ValueError(f"{where} field {name!r} has the wrong type: {value!r}")
    return value


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk entry of a partition.

    Attributes
    ----------
    key
        Its key in the store.
    samples
        Samples it holds.
    nbytes
        Size of the entry.
    checksum
        The entry's CRC-32 (hex, as :func:`~terrapipe.cache.entry.entry_digest` reads it).
    """

    key: str
    samples: int
    nbytes: int
    checksum: str

    def to_json(self) -> list[Any]:
        """Return ``[key, samples, nbytes, checksum]``."""
        return [self.key, self.samples, self.nbytes, self.checksum]

    @classmethod
    def from_json(cls, data: Any) -> ChunkRecord:
        """Inverse of :meth:`to_json` (``ValueError`` for a malformed record)."""
        if not (isinstance(data, list | tuple) and len(data) == 4):
            raise ValueError(f"malformed chunk record {data!r}")
        key, samples, nbytes, checksum = data
        if not (isinstance(key, str) and is_chunk_key(key) and isinstance(checksum, str)):
            raise ValueError(f"malformed chunk record {data!r}")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (samples, nbytes)):
            raise ValueError(f"malformed chunk record {data!r}")
        return cls(key, samples, nbytes, checksum)


@dataclass(frozen=True)
class PartitionManifest:
    """What one partition holds: written after all its chunks, it commits the partition.

    Attributes
    ----------
    partition, partitions
        This partition's number and how many there are.
    fingerprint
        The fingerprint of the pipeline (and epoch) that produced it.
    attempt
        The id of the task run that wrote it (part of its chunk keys).
    chunks
        Its chunks, in sample order.
    seconds
        Time the task spent producing and writing it.
    worker
        ``host:pid`` of the process that wrote it.
    """

    partition: int
    partitions: int
    fingerprint: str
    attempt: str
    chunks: tuple[ChunkRecord, ...] = ()
    seconds: float = 0.0
    worker: str = ""

    @property
    def samples(self) -> int:
        """Samples in the partition."""
        return sum(c.samples for c in self.chunks)

    @property
    def nbytes(self) -> int:
        """Bytes of its chunk entries."""
        return sum(c.nbytes for c in self.chunks)

    def to_json(self) -> dict[str, Any]:
        """Return the manifest as plain JSON data."""
        return {
            "format": FORMAT,
            "partition": self.partition,
            "partitions": self.partitions,
            "fingerprint": self.fingerprint,
            "attempt": self.attempt,
            "chunks": [c.to_json() for c in self.chunks],
            "seconds": float(self.seconds),
            "worker": self.worker,
        }

    @classmethod
    def from_json(cls, data: Any) -> PartitionManifest:
        """Inverse of :meth:`to_json` (``ValueError`` for a malformed manifest)."""
        where = "partition manifest"
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a format-{FORMAT} {where}")
        chunks = tuple(ChunkRecord.from_json(c) for c in _field(data, "chunks", list, where))
        return cls(
            partition=_field(data, "partition", int, where),
            partitions=_field(data, "partitions", int, where),
            fingerprint=_field(data, "fingerprint", str, where),
            attempt=_field(data, "attempt", str, where),
            chunks=chunks,
            seconds=float(_field(data, "seconds", (int, float), where)),
            worker=_field(data, "worker", str, where),
        )


@dataclass(frozen=True)
class StoreHeader:
    """The store's description, written before any partition.

    Attributes
    ----------
    partitions
        How many partitions the pipeline is split into.
    fingerprint
        Fingerprint of the pipeline's configuration and epoch
        (:func:`~terrapipe.dist.fingerprint.pipe_fingerprint`).
    epoch
        The epoch the pipeline ran (seeded shuffles and samplers depend on it).
    stages
        The pipeline's stage names, downstream first (for people reading it).
    """

    partitions: int
    fingerprint: str
    epoch: int = 0
    stages: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "partitions", check_int(self.partitions, "partitions", minimum=1))  # frozen

    def to_json(self) -> dict[str, Any]:
        """Return the header as plain JSON data."""
        return {
            "format": FORMAT,
            "kind": KIND,
            "partitions": self.partitions,
            "fingerprint": self.fingerprint,
            "epoch": self.epoch,
            "stages": list(self.stages),
        }

    @classmethod
    def from_json(cls, data: Any) -> StoreHeader:
        """Inverse of :meth:`to_json` (``ValueError`` for something else)."""
        if not isinstance(data, dict) or data.get("kind") != KIND or data.get("format") != FORMAT:
            raise ValueError(f"not a format-{FORMAT} {KIND} header")
        where = "store header"
        stages = _field(data, "stages", list, where)
        return cls(
            partitions=_field(data, "partitions", int, where),
            fingerprint=_field(data, "fingerprint", str, where),
            epoch=_field(data, "epoch", int, where),
            stages=tuple(str(s) for s in stages),
        )
