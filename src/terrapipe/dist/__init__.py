"""Scale-out on Dask distributed: materialize a pipeline across a cluster, then train from the result.

Importing it registers the functional name ``read_samples``. Dask is imported
only when a client is used (``pip install 'terrapipe[dask]'``).

- :func:`materialize` runs a pipe's partitions (shard ``i`` of ``n``, split by
  its own sharding stage) as tasks on a ``distributed.Client`` and writes the
  samples to a Zarr store (folder, fsspec URL, obstore), resumable and safe
  against retried tasks;
- :func:`read_samples` trains from the store: chunk-aware, sharded across
  workers and DDP ranks, shuffled, resumable;
- ``pipe.pmap(fn, executor=client)`` runs one stage on the cluster.

Examples
--------
>>> import terrapipe as tp
>>> import terrapipe.dist
>>> report = tp.dist.materialize(tp.from_items(range(4)).map(lambda x: {"x": x}), "four.zarr", partitions=2)
>>> report.samples, [s["x"] for s in tp.dist.read_samples("four.zarr")]
(4, [0, 2, 1, 3])
"""

from terrapipe.dist.errors import MaterializeError
from terrapipe.dist.fingerprint import pipe_fingerprint
from terrapipe.dist.layout import ChunkRecord, PartitionManifest, StoreHeader
from terrapipe.dist.materialize import MaterializeReport, materialize
from terrapipe.dist.partition import PartitionResult, iter_partition, write_partition
from terrapipe.dist.read_samples import ReadSamples, read_samples
from terrapipe.dist.store import SampleStore

__all__ = [
    "ChunkRecord",
    "MaterializeError",
    "MaterializeReport",
    "PartitionManifest",
    "PartitionResult",
    "ReadSamples",
    "SampleStore",
    "StoreHeader",
    "iter_partition",
    "materialize",
    "pipe_fingerprint",
    "read_samples",
    "write_partition",
]
