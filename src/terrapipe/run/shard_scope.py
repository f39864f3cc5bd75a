"""Tell the stages of a pipe which shard they are (re-exported from :mod:`terrapipe.core.shard`).

``tp.loader`` runs one copy of a pipe per worker thread or process. Inside a
worker, :func:`terrapipe.core.shard.shard_info` must report *that* worker (and
the rank of the parent process, which a spawned process cannot ask
``torch.distributed`` for), so that sharding stages split the work exactly as
they do inside a DataLoader worker. :func:`shard_scope` sets that answer for
the current thread.

Examples
--------
>>> from terrapipe.core.shard import ShardInfo, shard_info
>>> from terrapipe.run.shard_scope import shard_scope
>>> with shard_scope(ShardInfo(worker_id=1, num_workers=3)):
...     shard_info()
ShardInfo(rank=0, world_size=1, worker_id=1, num_workers=3)
>>> shard_info()
ShardInfo(rank=0, world_size=1, worker_id=0, num_workers=1)
"""

from __future__ import annotations

from terrapipe.core.shard import shard_scope

__all__ = ["shard_scope"]
